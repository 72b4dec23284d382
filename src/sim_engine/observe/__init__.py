"""Watching and steering a run: dashboard, Prometheus, report, logs, run control."""
