"""Shapes of load: stages of virtual users (closed model) or of arrival rates (open model).

A :class:`Profile` is a piecewise-linear function of wall seconds since the
start of the test: ``--stages 30s:10,2m:100,30s:0`` ramps from the start value
to 10 over 30 s, to 100 over the next 2 minutes, and down to 0 over the last
30 s (k6's ``stages``). Its value is a number of virtual users (closed model,
k6's ``ramping-vus``) or iterations per second (open model, k6's
``constant-arrival-rate`` and ``ramping-arrival-rate``).

The two session policies plug these into the engine's scheduler (one
iteration -- one drawn action, or a whole drawn workflow -- per session):

* :class:`StagedUsersPolicy`: virtual user ``r`` (0-based, in the order the
  users were made) is active while the profile is at least ``r + 1``; it waits
  a uniform ``[delay_min, delay_max]`` before each iteration, and stops when
  the profile falls below it (the iteration in flight finishes).
* :class:`ArrivalRatePolicy`: iterations arrive at the profile's rate whatever
  the answers (open model). The ``k``-th arrival is due when the integral of
  the rate reaches ``k``; virtual user ``u`` of ``N`` takes arrivals
  ``u, u + N, u + 2N...`` (round robin). When its previous iteration is still
  running at one of its slots, that slot is dropped (counted in
  :attr:`ArrivalRatePolicy.dropped`) and the latency that held it up is
  corrected for coordinated omission (HdrHistogram's
  ``record_corrected_value`` with the interval :meth:`ArrivalRatePolicy.interval_us`).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser
from sim_engine.model.settings_spec import parse_duration

__all__ = ["ArrivalRatePolicy", "Profile", "StagedUsersPolicy", "StagesError", "parse_stages"]

_EPS = 1e-9


class StagesError(ValueError):
    """``--stages`` that cannot be read; ``str()`` is one line."""


def parse_stages(text: str) -> list[tuple[float, float]]:
    """Parse ``30s:10,2m:100,30s:0`` into ``[(30.0, 10.0), (120.0, 100.0), (30.0, 0.0)]``.

    Each stage is ``DURATION:TARGET`` (duration as ``--duration``: ``90s``, ``5m``,
    ``1h``; target a number >= 0: users, or iterations per second).

    Raises:
        StagesError: one line naming the stage that is wrong.
    """
    stages = []
    for part in text.split(","):
        duration_text, sep, target_text = part.strip().partition(":")
        if not sep:
            raise StagesError(f"--stages: {part.strip()!r} is not DURATION:TARGET (e.g. 30s:10)")
        try:
            duration = parse_duration(duration_text.strip())
        except ValueError as exc:
            raise StagesError(f"--stages: {part.strip()!r}: {exc}") from None
        try:
            target = float(target_text)
        except ValueError:
            raise StagesError(f"--stages: {part.strip()!r}: target is not a number") from None
        if not (math.isfinite(target) and target >= 0):
            raise StagesError(f"--stages: {part.strip()!r}: target must be a number >= 0")
        stages.append((duration, target))
    if sum(d for d, _ in stages) <= 0:
        raise StagesError("--stages: the stages last no time at all")
    return stages


@dataclass(frozen=True)
class Profile:
    """A piecewise-linear value over wall seconds since the start, constant after the end.

    Attributes:
        times: breakpoints (seconds since the start, increasing, from 0).
        values: the value at each breakpoint.
    """

    times: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, start: float, stages: Sequence[tuple[float, float]]) -> Profile:
        """From a start value and ``(duration, target)`` stages (a ramp each)."""
        times, values = [0.0], [start]
        for duration, target in stages:
            if duration <= 0:
                values[-1] = target  # a jump
                continue
            times.append(times[-1] + duration)
            values.append(target)
        return cls(tuple(times), tuple(values))

    @classmethod
    def constant(cls, value: float, duration_s: float) -> Profile:
        """``value`` from 0 to ``duration_s``."""
        return cls((0.0, duration_s), (value, value))

    @property
    def end(self) -> float:
        """Seconds until the last breakpoint (the length of the test)."""
        return self.times[-1]

    @property
    def peak(self) -> float:
        """The largest value."""
        return max(self.values)

    def _segment(self, t: float) -> int:
        return min(max(bisect_right(self.times, t) - 1, 0), len(self.times) - 2)

    def value(self, t: float) -> float:
        """The value at ``t`` seconds (the first value before 0, the last after the end)."""
        if t <= 0 or len(self.times) == 1:
            return self.values[0]
        if t >= self.end:
            return self.values[-1]
        i = self._segment(t)
        t0, t1 = self.times[i], self.times[i + 1]
        v0, v1 = self.values[i], self.values[i + 1]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def integral(self, t: float) -> float:
        """The area under the profile from 0 to ``t`` (``t`` clamped to ``[0, end]``)."""
        t = min(max(t, 0.0), self.end)
        total = 0.0
        for i in range(len(self.times) - 1):
            t0, t1 = self.times[i], self.times[i + 1]
            if t0 >= t:
                break
            upto = min(t1, t)
            total += (self.values[i] + self.value(upto)) / 2 * (upto - t0)
        return total

    def time_of_integral(self, area: float) -> float:
        """The first ``t`` where :meth:`integral` reaches ``area`` (``inf``: not by the end)."""
        done = 0.0
        for i in range(len(self.times) - 1):
            t0, t1 = self.times[i], self.times[i + 1]
            v0, v1 = self.values[i], self.values[i + 1]
            seg = (v0 + v1) / 2 * (t1 - t0)
            if done + seg >= area - _EPS and seg > 0:
                return t0 + _solve_ramp(v0, (v1 - v0) / (t1 - t0), area - done)
            done += seg
        return math.inf

    def first_at_least(self, level: float, t: float) -> float:
        """The first time ``>= t`` where the value is at least ``level`` (``inf``: none before
        the end)."""
        if self.value(t) >= level - _EPS:
            return t
        for i in range(self._segment(t), len(self.times) - 1):
            t0, t1 = self.times[i], self.times[i + 1]
            v0, v1 = self.values[i], self.values[i + 1]
            if t1 <= t or v1 < level - _EPS:
                continue
            crossing = t0 + (level - v0) / (v1 - v0) * (t1 - t0) if v1 != v0 else t0
            return max(t, crossing)
        return math.inf


def _solve_ramp(v0: float, slope: float, area: float) -> float:
    """The ``x >= 0`` where ``v0 * x + slope * x**2 / 2`` reaches ``area``."""
    if abs(slope) < _EPS:
        return area / v0
    disc = max(v0 * v0 + 2 * slope * area, 0.0)
    return (math.sqrt(disc) - v0) / slope


class _Ranks:
    """Virtual users' ranks (0, 1, 2...) in the order the test first sees them."""

    def __init__(self) -> None:
        self._ranks: dict[int, int] = {}

    def of(self, user: SimUser) -> int:
        rank = self._ranks.get(user.user_id)
        if rank is None:
            rank = self._ranks[user.user_id] = len(self._ranks)
        return rank


class StagedUsersPolicy:
    """Closed model with ramping virtual users (k6's ``ramping-vus``).

    Args:
        profile: virtual users over wall seconds since ``start_s``.
        start_s: the test's start (the clock's epoch seconds; speed 1).
        delay_min_s, delay_max_s: uniform wait before each iteration (wall seconds).
    """

    def __init__(
        self, profile: Profile, start_s: float, delay_min_s: float, delay_max_s: float
    ) -> None:
        self.profile = profile
        self._start = start_s
        self._delays = (delay_min_s, delay_max_s)
        self._ranks = _Ranks()

    def state(self, persona: CompiledPersona, sim_t: float, offset_s: float) -> str:
        """Always awake: the persona's ``relaxing`` matrix (``working`` without one)."""
        return "relaxing" if "relaxing" in persona.spec.actions else "working"

    def next_start(
        self, persona: CompiledPersona, user: SimUser, sim_t: float, offset_s: float,
        rng: random.Random, ended: bool = False,
    ) -> float:  # fmt: skip
        """The next iteration: after a uniform delay, once the profile reaches this user
        (``inf`` when it never does again)."""
        rank = self._ranks.of(user)
        t = sim_t - self._start
        if user.session_id > 0:
            t += rng.uniform(*self._delays)
        at = self.profile.first_at_least(rank + 1, t)
        return self._start + at if at < self.profile.end else math.inf

    def length(self, persona: CompiledPersona, user: SimUser, rng: random.Random) -> int:
        """One iteration per session."""
        return 1

    def think_s(
        self, persona: CompiledPersona, rng: random.Random, step_s: float | None = None
    ) -> float:
        """The uniform delay (between sign-up and the first request, and workflow steps)."""
        return rng.uniform(*self._delays)

    def users_at(self, sim_t: float) -> int:
        """Virtual users the profile asks for at ``sim_t``."""
        return int(self.profile.value(sim_t - self._start) + _EPS)


class ArrivalRatePolicy:
    """Open model: iterations at the profile's rate (k6's constant/ramping arrival rate).

    Args:
        profile: iterations per wall second over wall seconds since ``start_s``.
        start_s: the test's start (the clock's epoch seconds; speed 1).
        users: the virtual users sharing the arrivals (each takes every ``users``-th).

    Every virtual user signs up at the start; its sign-up session ends there, and its
    first iteration waits for its first slot. The sign-up step is recognised by
    :meth:`length` being asked for a user without a token just before it (the
    engine opens a session, then plans its first step).
    """

    def __init__(self, profile: Profile, start_s: float, users: int) -> None:
        self.profile = profile
        self._start = start_s
        self._users = users
        self._ranks = _Ranks()
        self._next: dict[int, int] = {}  # user id -> index of its next arrival
        self._signing_up = False
        self.dropped = 0
        self.iterations = 0

    def state(self, persona: CompiledPersona, sim_t: float, offset_s: float) -> str:
        """Always awake: the persona's ``relaxing`` matrix (``working`` without one)."""
        return "relaxing" if "relaxing" in persona.spec.actions else "working"

    def next_start(
        self, persona: CompiledPersona, user: SimUser, sim_t: float, offset_s: float,
        rng: random.Random, ended: bool = False,
    ) -> float:  # fmt: skip
        """At once for the sign-up; then this user's next arrival slot not yet past
        (slots missed while its iteration ran are dropped)."""
        rank = self._ranks.of(user)
        if user.session_id == 0:
            self._next[user.user_id] = rank
            return sim_t
        k = self._next[user.user_id]
        reached = self.profile.integral(sim_t - self._start)
        if k < reached - _EPS:  # slots already past (the previous iteration or the sign-up
            late = math.ceil((reached - _EPS - k) / self._users)  # ran late): dropped
            self.dropped += late
            k += late * self._users
        self._next[user.user_id] = k + self._users
        at = self.profile.time_of_integral(k)
        if at >= self.profile.end:
            return math.inf
        self.iterations += 1
        return self._start + at

    def length(self, persona: CompiledPersona, user: SimUser, rng: random.Random) -> int:
        """One iteration per session (the sign-up session is cut after the sign-up)."""
        if user.token is None:
            self._signing_up = True
        return 1

    def think_s(
        self, persona: CompiledPersona, rng: random.Random, step_s: float | None = None
    ) -> float:
        """No wait inside an iteration; after the sign-up, ``inf`` (the session ends, and
        the first iteration waits for its slot)."""
        if self._signing_up:
            self._signing_up = False
            return math.inf
        return 0.0

    def interval_us(self, sim_t: float) -> int:
        """One virtual user's interval between arrivals at ``sim_t`` (wall microseconds;
        0 when the rate is 0): the coordinated-omission correction's expected interval."""
        rate = self.profile.value(sim_t - self._start)
        return int(self._users / rate * 1e6) if rate > 0 else 0

    def users_at(self, sim_t: float) -> int:
        """The virtual users (all of them take arrivals)."""
        return self._users
