"""Documents people read, made from the published database."""
