"""Read views over the published database (no Prefect, GX or pandas on this path)."""
