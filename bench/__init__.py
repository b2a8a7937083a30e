"""Reproducible benchmarks (`make bench`): one module per area, collected by bench.run."""
