"""Benchmarks: `python -m benchmarks`. Never part of the tests; they print, they do not assert."""

# The pseudonymisation key the benchmarks run with (unless FAZHI_HMAC_KEY is set): not a secret,
# but as long as a real one (32 bytes or more), which the warehouse requires.
HMAC_KEY = "benchmark-key-not-a-secret-0123456789"
