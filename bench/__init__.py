"""Benchmarks: `python -m bench` runs every bench/<name>.py that has a main(); see bench/__main__.py."""
