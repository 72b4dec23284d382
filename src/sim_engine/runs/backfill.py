"""Backfill, then live (issue 15, must-have 3): ``run --backfill 90d``.

The run starts 90 simulated days ago at ``--speed max`` -- the population lives
through those days as fast as the target allows -- and, once simulated time reaches
the wall clock, goes on at 1x with the same users, memories and lifecycle states:
the run's clock is a :class:`CatchUpClock`.

The switch is exact and never dates an action in the future: at ``max`` the clock
jumps from due event to due event, and the first jump that would pass the wall clock
stops at the wall clock instead; the clock turns to 1x there, and that event (and all
after it) is waited for in real time, by the engine's wall-clock branch (where
``stop`` and ``pause`` wake the wait).

The demo API stores the simulated time each request carries (``X-Sim-Time``), so its
posts, comments and likes get their past dates; other APIs store their own clock's
time, and their history exists only in the run's outputs (``actions.jsonl``, the
analytics events, ``generate``'s datasets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sim_engine.engine.clock import SimClock, make_clock

__all__ = ["CatchUpClock", "run_clock"]

_log = logging.getLogger(__name__)


class CatchUpClock(SimClock):
    """A run's clock at ``max`` until simulated time reaches the wall clock, then at 1x.

    Created paused, like every run's clock (the runner resumes it when the run starts).

    Args:
        start: the simulated start (epoch seconds), in the past.
        epoch: the wall clock in epoch seconds (``time.time``; injectable for tests).
        wall: the monotonic wall clock the speed factor runs on (``time.monotonic``).

    Attributes:
        live_at: the simulated time (epoch seconds) the run went live at (None before).
    """

    def __init__(
        self,
        start: float,
        epoch: Callable[[], float] = time.time,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(start, None, wall, paused=True)
        self._epoch = epoch
        self.live_at: float | None = None

    async def sleep_until(self, sim_t: float) -> None:
        """Jump to ``sim_t`` while it is in the past; else go live and return at once.

        Going live jumps to the wall clock and turns the clock to 1x, then returns
        *before* ``sim_t``: the caller (the engine) sees that the clock no longer jumps
        and waits for ``sim_t`` in its wall-clock branch, where ``stop`` and ``pause``
        wake it. (Waiting here, inside the engine's jump branch, held a ``ctl stop``
        until the next due event, possibly hours after a quiet night.)
        """
        if self.live_at is None and self.jumps and not self.paused and sim_t > self._epoch():
            now = self._epoch()
            await super().sleep_until(now)  # at max: a jump to the wall clock
            self.set_speed(1.0)  # from here, one simulated second per wall second
            self.live_at = now
            _log.info("backfill done: live at 1x", extra={"live_at": self.live_at})
            return
        await super().sleep_until(sim_t)


def run_clock(speed: float | None, start_s: float, backfill: bool) -> SimClock:
    """A run's clock, created paused (setting up and populating take wall time, not
    simulated time): a :class:`CatchUpClock` for a backfill at ``max``, else ``speed``'s."""
    if backfill and speed is None:
        return CatchUpClock(start_s)
    return make_clock(speed, start_s, paused=True)
