"""Benchmarks run on demand: M3 accuracy and intervals, PBS hierarchy."""
