"""Benchmarks that are not part of the test suite (see ``make bench-db`` and docs/performance.md)."""
