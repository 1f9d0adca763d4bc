"""Demo tooling: the sample generator, the HTTP source simulator, the sample county."""
