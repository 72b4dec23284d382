"""Composition of whole runs: the runner, the load test, cleanup, run directories."""
