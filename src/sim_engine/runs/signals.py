"""SIGINT and SIGTERM stop a run gracefully (``run`` and ``load`` both install them)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from sim_engine.engine.simulation import Simulation

__all__ = ["install_stop_signals", "remove_stop_signals"]


def install_stop_signals(sim: Simulation) -> list[int]:
    """Make SIGINT/SIGTERM stop the run gracefully; the returned list fills when one arrives."""
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        received.append(signum)
        sim.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
    return received


def remove_stop_signals() -> None:
    """Give SIGINT and SIGTERM back their default handling (after :func:`install_stop_signals`)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signum)
