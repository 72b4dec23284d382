"""The simulated clock: the one place that maps simulated time to wall time.

Simulated time is a float of **simulated seconds since the Unix epoch (UTC)**,
named ``sim_*`` everywhere in the code; wall time is only ever read here (and in
targets, to measure latency). Every clock shares the :class:`Clock` protocol:

* :class:`SimClock` -- the run's one controllable clock: ``speed`` simulated
  seconds per wall second (``1`` is real time, ``3600`` a simulated hour per wall
  second) or ``max`` (jumps from due event to due event); it can be paused,
  resumed and switched between a factor and ``max`` while running, without ever
  being replaced (:class:`SpeedControl`). :class:`ScaledClock` and
  :class:`FastForwardClock` are a ``SimClock`` started at a factor or at ``max``.
* :class:`ManualClock` -- for tests: time moves only when the test (or the
  engine, through :meth:`sleep_until`) moves it, so a simulated week takes
  milliseconds.

Modelled on trio's ``Clock`` seam and SimPy's ``RealtimeEnvironment``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

from sim_engine.model.bounds import check_speed

__all__ = [
    "Clock",
    "FastForwardClock",
    "ManualClock",
    "ScaledClock",
    "SimClock",
    "SpeedControl",
    "make_clock",
    "parse_speed",
    "to_sim_seconds",
]


@runtime_checkable
class Clock(Protocol):
    """What the engine needs from a clock (every clock here, and any of yours).

    ``jumps`` is True when the clock does not follow the wall clock (``max`` or
    manual): the engine then moves it itself with :meth:`sleep_until`.
    """

    @property
    def jumps(self) -> bool:
        """True when the engine moves the clock from event to event."""
        ...

    def now(self) -> float:
        """Return the current simulated time in simulated epoch seconds (UTC)."""
        ...

    async def sleep_until(self, sim_t: float) -> None:
        """Return once the simulated time has reached ``sim_t`` (simulated epoch seconds).

        A jumping clock that stops jumping during the call (a backfill going live) may
        return earlier, with ``now() < sim_t``: the engine then waits in wall time.
        """
        ...

    def wall_seconds_until(self, sim_t: float) -> float | None:
        """Return the wall seconds until ``sim_t`` (0 for a jumping clock, None while paused)."""
        ...


@runtime_checkable
class SpeedControl(Protocol):
    """A clock that can be paused, resumed and re-speeded at run time (run control).

    Its ``speed`` is simulated seconds per wall second, or None at ``max``.
    """

    @property
    def speed(self) -> float | None:
        """Simulated seconds per wall second; None for ``max``."""
        ...

    def pause(self) -> None:
        """Stop simulated time until :meth:`resume`."""
        ...

    def resume(self) -> None:
        """Let simulated time run again from where it stood."""
        ...

    def set_speed(self, speed: float | None) -> None:
        """Run ``speed`` simulated seconds per wall second, or jump (``None``: ``max``)."""
        ...


def to_sim_seconds(value: datetime) -> float:
    """Convert an aware (or naive, taken as UTC) datetime to simulated epoch seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def parse_speed(text: str | float | int) -> float | None:
    """Parse a speed option: ``"max"`` gives None, otherwise a positive factor.

    Args:
        text: ``"max"``, or a number of simulated seconds per wall second
            (``1``, ``60``, ``"3600"``, ``"60x"``).

    Raises:
        ValueError: the text is neither ``max`` nor a finite number above 0 and at
            most :data:`~sim_engine.model.bounds.MAX_SPEED` (a million).
    """
    if isinstance(text, (int, float)):
        try:
            factor = float(text)
        except OverflowError:  # an int too large for a float
            factor = math.inf
    else:
        cleaned = text.strip().lower()
        if cleaned == "max":
            return None
        cleaned = cleaned.removesuffix("x")
        try:
            factor = float(cleaned)
        except ValueError:
            raise ValueError(f"speed must be 'max' or a positive number, got {text!r}") from None
    try:
        return check_speed(factor)
    except ValueError as exc:
        raise ValueError(f"{exc}, got {text!r}") from None


class ManualClock:
    """A clock that moves only when told to; ``sleep_until`` jumps to the target (tests).

    Args:
        start: simulated start, in simulated epoch seconds.
    """

    jumps = True

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """Return the current simulated time (simulated epoch seconds)."""
        return self._now

    def advance(self, delta_s: float) -> None:
        """Move the clock forward by ``delta_s`` simulated seconds.

        Raises:
            ValueError: ``delta_s`` is negative.
        """
        if delta_s < 0:
            raise ValueError("a clock never goes backwards")
        self._now += delta_s

    def wall_seconds_until(self, sim_t: float) -> float | None:
        """A jumping clock never waits: always 0."""
        return 0.0

    async def sleep_until(self, sim_t: float) -> None:
        """Jump to ``sim_t`` (no-op if it is in the past) and yield once to the loop."""
        if sim_t > self._now:
            self._now = sim_t
        await asyncio.sleep(0)


class SimClock:
    """The run's one controllable clock: a speed factor or ``max``, switchable at run time.

    With a factor, ``sim_now = sim_anchor + (wall_now - wall_anchor) * speed``
    while running, and time stands still while paused. With ``max`` (``speed``
    None) the clock jumps: the engine moves it to each due event with
    :meth:`sleep_until`. Changing the speed (factor to factor, factor to
    ``max`` or back) re-anchors at the current simulated time, so simulated
    time never jumps and whoever holds the clock keeps holding the right one.

    Args:
        start: simulated start, in simulated epoch seconds.
        speed: simulated seconds per wall second (> 0), or None for ``max``.
        wall: the wall-clock source in wall seconds (default ``time.monotonic``);
            injectable for tests.

    Raises:
        ValueError: ``speed`` is not positive.
    """

    def __init__(
        self,
        start: float,
        speed: float | None = 1.0,
        wall: Callable[[], float] = time.monotonic,
        paused: bool = False,
    ) -> None:
        _check_speed(speed)
        self._wall = wall
        self._speed = None if speed is None else float(speed)
        self._sim_anchor = float(start)
        self._wall_anchor = wall()
        self._paused = paused  # created paused: exactly ``start`` until resume()
        self._changed: asyncio.Event | None = None

    @property
    def jumps(self) -> bool:
        """True at ``max``: time moves only when the engine moves it."""
        return self._speed is None

    @property
    def speed(self) -> float | None:
        """Simulated seconds per wall second; None for ``max``."""
        return self._speed

    @property
    def paused(self) -> bool:
        """True while the clock stands still."""
        return self._paused

    def now(self) -> float:
        """Return the current simulated time (simulated epoch seconds)."""
        if self._paused or self._speed is None:
            return self._sim_anchor
        return self._sim_anchor + (self._wall() - self._wall_anchor) * self._speed

    def _reanchor(self) -> None:
        self._sim_anchor = self.now()
        self._wall_anchor = self._wall()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def pause(self) -> None:
        """Stop simulated time; :meth:`sleep_until` waits until :meth:`resume`."""
        if not self._paused:
            self._reanchor()
            self._paused = True
            self._notify()

    def resume(self) -> None:
        """Let simulated time run again from where it stood."""
        if self._paused:
            self._wall_anchor = self._wall()
            self._paused = False
            self._notify()

    def set_speed(self, speed: float | None) -> None:
        """Change the speed without a jump in time: a factor, or None for ``max``.

        Raises:
            ValueError: ``speed`` is not positive.
        """
        _check_speed(speed)
        self._reanchor()
        self._speed = None if speed is None else float(speed)
        self._notify()

    def wall_seconds_until(self, sim_t: float) -> float | None:
        """Return the wall seconds until simulated time reaches ``sim_t``.

        0 at ``max`` (the engine jumps); None while paused (no end in sight).
        """
        if self._paused:
            return None
        if self._speed is None:
            return 0.0
        return max(0.0, (sim_t - self.now()) / self._speed)

    async def sleep_until(self, sim_t: float) -> None:
        """Reach ``sim_t``: jump to it at ``max``, or wait for it in wall time.

        Wakes early and recomputes when the clock is paused, resumed or
        re-speeded, so a speed change (including to ``max``) takes effect at once.
        """
        if self._changed is None:
            self._changed = asyncio.Event()
        while True:
            if self._speed is None and not self._paused:
                if sim_t > self._sim_anchor:
                    self._sim_anchor = sim_t
                await asyncio.sleep(0)
                return
            wait_s = self.wall_seconds_until(sim_t)
            if wait_s is not None and wait_s <= 0:
                return
            self._changed.clear()
            # uvloop rounds timers to whole milliseconds: a shorter timeout would spin.
            timeout = None if wait_s is None else max(wait_s, 0.001)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)


class ScaledClock(SimClock):
    """A :class:`SimClock` started at a speed factor (``1`` is real time)."""

    def __init__(
        self, start: float, speed: float = 1.0, wall: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(start, speed, wall)


class FastForwardClock(SimClock):
    """A :class:`SimClock` started at ``max``: time jumps from due event to due event."""

    def __init__(self, start: float = 0.0, wall: Callable[[], float] = time.monotonic) -> None:
        super().__init__(start, None, wall)


def _check_speed(speed: float | None) -> None:
    if speed is not None and not speed > 0:
        raise ValueError("speed must be positive (or None for max)")


def make_clock(speed: float | None, start: float, paused: bool = False) -> SimClock:
    """Build the clock for a run.

    Args:
        speed: simulated seconds per wall second, or None for ``max``.
        start: simulated start, in simulated epoch seconds.
        paused: start paused (the runner: setting up takes no simulated time, not even
            the microseconds between building the clock and pausing it).
    """
    return SimClock(start, speed, paused=paused)
