"""Benchmarks of the cost of tenancy: `python -m bench.run` (or `make bench`)."""
