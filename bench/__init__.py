"""Benchmarks: each `bench/<name>.py` or `bench/<name>/__init__.py` with a `main()` is one bench.

`python -m bench` (or `make bench`) runs them all; `python -m bench ingest dataplane` runs the named ones.
Benches print numbers (with a baseline measured in the same run); they never assert.
"""
