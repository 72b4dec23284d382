"""The simulated clock: the one place that maps simulated time to wall time.

Simulated time is a float of **simulated seconds since the Unix epoch (UTC)**,
named ``sim_*`` everywhere in the code; wall time is only ever read here (and in
targets, to measure latency). Three clocks share the :class:`Clock` protocol:

* :class:`ScaledClock` -- runs ``speed`` simulated seconds per wall second
  (``1`` is real time, ``3600`` is a simulated hour per wall second); it can be
  paused, resumed and re-speeded while running.
* :class:`FastForwardClock` -- ``--speed max``: never waits; the engine jumps it
  from one due event to the next.
* :class:`ManualClock` -- for tests: time moves only when the test (or the
  engine, through :meth:`sleep_until`) moves it, so a simulated week takes
  milliseconds.

Modelled on trio's ``Clock`` seam and SimPy's ``RealtimeEnvironment``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "FastForwardClock",
    "ManualClock",
    "ScaledClock",
    "make_clock",
    "parse_speed",
    "to_sim_seconds",
]


@runtime_checkable
class Clock(Protocol):
    """What the engine needs from a clock.

    Attributes:
        jumps: True when the clock does not follow the wall clock (``max`` or
            manual): the engine then moves it itself with :meth:`sleep_until`.
    """

    jumps: bool

    def now(self) -> float:
        """Return the current simulated time in simulated epoch seconds (UTC)."""
        ...

    async def sleep_until(self, sim_t: float) -> None:
        """Return once the simulated time has reached ``sim_t`` (simulated epoch seconds)."""
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
        ValueError: the text is neither ``max`` nor a positive number.
    """
    if isinstance(text, (int, float)):
        factor = float(text)
    else:
        cleaned = text.strip().lower()
        if cleaned == "max":
            return None
        cleaned = cleaned.removesuffix("x")
        try:
            factor = float(cleaned)
        except ValueError:
            raise ValueError(f"speed must be 'max' or a positive number, got {text!r}") from None
    if not factor > 0:
        raise ValueError(f"speed must be 'max' or a positive number, got {text!r}")
    return factor


class ManualClock:
    """A clock that moves only when told to; ``sleep_until`` jumps to the target.

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

    async def sleep_until(self, sim_t: float) -> None:
        """Jump to ``sim_t`` (no-op if it is in the past) and yield once to the loop."""
        if sim_t > self._now:
            self._now = sim_t
        await asyncio.sleep(0)


class FastForwardClock(ManualClock):
    """``--speed max``: time jumps from due event to due event, as fast as the machine allows."""

    speed: float | None = None


class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall clock.

    ``sim_now = sim_anchor + (wall_now - wall_anchor) * speed`` while running;
    it stands still while paused. Changing the speed re-anchors, so simulated
    time never jumps.

    Args:
        start: simulated start, in simulated epoch seconds.
        speed: simulated seconds per wall second (> 0).
        wall: the wall-clock source in wall seconds (default ``time.monotonic``);
            injectable for tests.
    """

    jumps = False

    def __init__(
        self, start: float, speed: float = 1.0, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._wall = wall
        self._speed = float(speed)
        self._sim_anchor = float(start)
        self._wall_anchor = wall()
        self._paused = False
        self._changed = asyncio.Event() if _has_loop() else None

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self._speed

    @property
    def paused(self) -> bool:
        """True while the clock stands still."""
        return self._paused

    def now(self) -> float:
        """Return the current simulated time (simulated epoch seconds)."""
        if self._paused:
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

    def set_speed(self, speed: float) -> None:
        """Change the speed (simulated seconds per wall second) without a jump in time.

        Raises:
            ValueError: ``speed`` is not positive.
        """
        if not speed > 0:
            raise ValueError("speed must be positive")
        self._reanchor()
        self._speed = float(speed)
        self._notify()

    def wall_seconds_until(self, sim_t: float) -> float | None:
        """Return the wall seconds until simulated time reaches ``sim_t`` (None while paused)."""
        if self._paused:
            return None
        return max(0.0, (sim_t - self.now()) / self._speed)

    async def sleep_until(self, sim_t: float) -> None:
        """Wait (in wall time) until simulated time reaches ``sim_t``.

        Wakes early and recomputes when the clock is paused, resumed or
        re-speeded, so a speed change takes effect at once.
        """
        if self._changed is None:
            self._changed = asyncio.Event()
        while True:
            remaining_sim_s = sim_t - self.now()
            if remaining_sim_s <= 0 and not self._paused:
                return
            self._changed.clear()
            # uvloop rounds timers to whole milliseconds: a shorter timeout would spin.
            timeout_wall_s = None if self._paused else max(remaining_sim_s / self._speed, 0.001)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_wall_s)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def make_clock(speed: float | None, start: float) -> ManualClock | ScaledClock:
    """Build the clock for a run.

    Args:
        speed: simulated seconds per wall second, or None for ``max``.
        start: simulated start, in simulated epoch seconds.
    """
    if speed is None:
        return FastForwardClock(start)
    return ScaledClock(start, speed)
