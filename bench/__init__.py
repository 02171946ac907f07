"""Benchmarks for Taskdeck; run them from the project root (see bench/throughput.py)."""
