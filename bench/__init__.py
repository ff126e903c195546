"""Benchmarks: what one instrumented sync event costs the caller, against stdlib JSON logging.

Run with `make bench` (or `python -m bench --quick` for a short run). Results are printed
as a table and written to `bench/results/latest.json`. Benchmarks report; they never fail
the process because a goal was missed.
"""
