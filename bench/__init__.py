"""Benchmark scripts. Each measures a baseline in the same run and ends with one ``RESULT key=value ...`` line."""
