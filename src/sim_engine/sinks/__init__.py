"""Sinks: where records go (JSONL files, the console). Adapters at the edge."""

from sim_engine.sinks.console import ConsoleSink
from sim_engine.sinks.jsonl import JsonlSink

__all__ = ["ConsoleSink", "JsonlSink"]
