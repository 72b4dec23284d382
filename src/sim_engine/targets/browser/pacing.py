"""Simulated time through a flow: the user's think times between its steps.

A :class:`StepPacer` walks one action's steps (the ``login`` flow's and the mapped
flow's) through simulated time. Before every step but the first it draws a think time
from the acting user's persona (the engine's ``think_s``, see
:class:`~sim_engine.engine.capabilities.Paced`), waits for it on a live clock (the
run's speed turns it into wall seconds; a jumping clock, ``--speed max`` or a test's
``ManualClock``, does not wait) and stamps the following requests with the step's
simulated time (``X-Sim-Time``). Without a think source (a target the engine did not
pace) the steps follow each other as fast as the pages allow, all at the action's time.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import datetime

from sim_engine.engine.clock import Clock

__all__ = ["StepPacer", "ThinkSource"]

ThinkSource = Callable[[int, random.Random], float]
"""``think_s(user_id, rng)``: a think time in simulated seconds (the engine's)."""


class StepPacer:
    """The simulated time of one action's steps.

    Args:
        user_id: the acting user.
        sim_time: the action's dispatch time (simulated epoch seconds).
        sim_time_iso: the same instant with the user's UTC offset (steps keep it).
        think: the think-time source (None: no think times).
        rng: the user's generator for think times.
        clock: the run's clock (None, or a jumping one: never waits).
        stamp: sets the page's ``X-Sim-Time`` to an ISO 8601 time.

    Attributes:
        offset_s: simulated seconds from the dispatch to the current step.
    """

    def __init__(
        self,
        user_id: int,
        sim_time: float,
        sim_time_iso: str,
        think: ThinkSource | None,
        rng: random.Random,
        clock: Clock | None,
        stamp: Callable[[str], Awaitable[None]],
    ) -> None:
        self._user_id = user_id
        self._start = sim_time
        self._tz = datetime.fromisoformat(sim_time_iso).tzinfo
        self._think = think
        self._rng = rng
        self._clock = clock
        self._stamp = stamp
        self._started = False
        self.offset_s = 0.0

    async def next_step(self) -> float:
        """Get to the next step's simulated time (the first step: at once) and return
        its offset from the dispatch, in simulated seconds."""
        if not self._started or self._think is None:
            self._started = True
            return self.offset_s
        self.offset_s += max(0.0, self._think(self._user_id, self._rng))
        at = self._start + self.offset_s
        if self._clock is not None and not self._clock.jumps:
            await self._clock.sleep_until(at)
        await self._stamp(datetime.fromtimestamp(at, self._tz).isoformat(timespec="milliseconds"))
        return self.offset_s
