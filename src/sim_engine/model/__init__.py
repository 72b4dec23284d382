"""The behaviour model: pure, deterministic, no I/O, no asyncio, no wall clock."""
