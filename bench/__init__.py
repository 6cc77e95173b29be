"""Benchmarks: `python -m bench` measures every performance target in one run,
beside the plain llama-index baseline, prints a table and writes JSON."""
