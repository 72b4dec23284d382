"""Backfill, then live (issue 15, must-have 3): ``run --backfill 90d``.

The run starts 90 simulated days ago at ``--speed max`` -- the population lives
through those days as fast as the target allows -- and, once simulated time has
caught up with the wall clock, goes on at 1x with the same users, memories and
lifecycle states: :class:`GoLive` watches the clock and switches it.

The switch is exact: when simulated time passes the wall clock (at ``max`` it moves
in jumps, so by up to one jump), the run pauses, waits on the wall clock for as long
as it is ahead, then resumes at 1x, so that from then on simulated time is wall time.

The demo API stores the simulated time each request carries (``X-Sim-Time``), so its
posts, comments and likes get their past dates; other APIs store their own clock's
time, and their history exists only in the run's outputs (``actions.jsonl``, the
analytics events, ``generate``'s datasets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sim_engine.model.records import Sink

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = ["GoLive"]

_log = logging.getLogger(__name__)


class GoLive:
    """The add-on that switches a backfilling run to 1x when it reaches the wall clock.

    Args:
        wall: the wall clock, epoch seconds (``time.time``; injectable for tests).
        poll_s: wall seconds between two looks at the clock while backfilling.

    Attributes:
        live_at: the simulated time (epoch seconds) the run went live at (None before).
    """

    def __init__(self, wall: Callable[[], float] = time.time, poll_s: float = 0.01) -> None:
        self._wall = wall
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self.live_at: float | None = None

    def sinks(self) -> list[Sink]:
        """No sinks."""
        return []

    async def start(self, sim: Simulation) -> None:
        """Watch ``sim``'s clock from now on."""
        self._task = asyncio.ensure_future(self._watch(sim))

    async def stop(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, sim: Simulation) -> None:
        while sim.speed is None and not sim.stopping:
            if sim.statistics().sim_now >= self._wall():
                await self._switch(sim)
                return
            await asyncio.sleep(self._poll_s)

    async def _switch(self, sim: Simulation) -> None:
        sim.pause()
        ahead = sim.statistics().sim_now - self._wall()
        if ahead > 0:
            await asyncio.sleep(ahead)  # the paused clock waits for the wall clock
        if sim.stopping:
            return
        sim.set_speed(1.0)
        sim.resume()
        self.live_at = sim.statistics().sim_now
        _log.info("backfill done: live at 1x", extra={"ahead_s": round(max(ahead, 0.0), 3)})
