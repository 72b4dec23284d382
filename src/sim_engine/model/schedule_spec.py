"""The ``schedule:`` section: when simulated users may start sessions at all.

A schedule gates activity on top of the routines (issue 15): seed 000's business
hours ("9am-9pm" in ``America/Los_Angeles``, weekdays) or seed 003's cron job
(``*/30 * * * *``, each firing open for a while). A session a routine plans while
the schedule is closed is moved to the schedule's next opening, spread over the
first part of the opening so that users do not all start on the same second.
Sessions already running finish. Times are simulated epoch seconds.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from sim_engine.model.settings_spec import parse_duration

__all__ = ["DAY_NAMES", "Schedule", "ScheduleSpec"]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names of ``schedule.days``, Monday first (``datetime.weekday()`` order)."""

_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_SPREAD_MAX_S = 3600.0  # deferred sessions start within the first hour of an opening

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class ScheduleSpec(BaseModel):
    """When users may start sessions (all fields optional; no section: always).

    Attributes:
        timezone: IANA zone the hours, days and cron expression are read in
            (default ``UTC``; seed 000: ``America/Los_Angeles``).
        hours: opening hours ``HH:MM-HH:MM`` (seed 000: ``09:00-21:00``); an end
            before the start crosses midnight (``22:00-06:00``).
        days: the days open (default every day), e.g. ``[mon, tue, wed, thu, fri]``.
        cron: a cron expression (five fields) whose firings open the schedule for
            ``window`` each (seed 003: ``*/30 * * * *``); not with ``hours``/``days``.
        window: how long each cron firing stays open (default ``10m``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    hours: str | None = None
    days: tuple[Day, ...] | None = None
    cron: str | None = None
    window: str = "10m"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_hours(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter  # imported when used: every process loads this module

        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r} (five fields, e.g. */30 * * * *)")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not parse_duration(value) > 0:
            raise ValueError(f"window must be longer than 0, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if self.cron is not None and (self.hours is not None or self.days is not None):
            raise ValueError("give either cron or hours/days, not both")
        if self.days is not None and not self.days:
            raise ValueError("days is empty: the schedule would never open")
        return self


def _parse_hours(text: str) -> tuple[int, int]:
    """``HH:MM-HH:MM`` into (start, end) minutes of the day; raises ValueError."""
    match = _HOURS_RE.match(text)
    if not match:
        raise ValueError(f"hours must look like 09:00-21:00, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"hours must look like 09:00-21:00, got {text!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"hours {text!r} open and close at the same time")
    return start, end


class Schedule:
    """A compiled :class:`ScheduleSpec`: is it open at a time, and when does it open next.

    Args:
        spec: the scenario's ``schedule`` section.
    """

    def __init__(self, spec: ScheduleSpec) -> None:
        self.spec = spec
        self._tz = ZoneInfo(spec.timezone)
        self._hours = _parse_hours(spec.hours) if spec.hours else None
        self._days = {DAY_NAMES.index(d) for d in spec.days} if spec.days else None
        self._window_s = parse_duration(spec.window)

    def is_open(self, sim_t: float) -> bool:
        """True when sessions may start at ``sim_t`` (simulated epoch seconds)."""
        local = datetime.fromtimestamp(sim_t, self._tz)
        if self.spec.cron is not None:
            from croniter import croniter

            # The last firing at or before sim_t: firings fall on whole seconds, and
            # get_prev is strictly before its base (sim_t + 1 s let a firing up to a
            # second ahead count as open).
            base = datetime.fromtimestamp(math.floor(sim_t) + 1, self._tz)
            prev = croniter(self.spec.cron, base).get_prev(datetime)
            return bool(sim_t - prev.timestamp() < self._window_s)
        return self._open_local(local)

    def _open_local(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self._hours is None:
            return self._days is None or day in self._days
        start, end = self._hours
        if start < end:
            return start <= minute < end and (self._days is None or day in self._days)
        if minute >= start:  # the evening part of an overnight opening
            return self._days is None or day in self._days
        if minute < end:  # the morning part belongs to the previous day's opening
            return self._days is None or (day - 1) % 7 in self._days
        return False

    def next_open(self, sim_t: float) -> float:
        """The first time at or after ``sim_t`` when the schedule is open (epoch seconds)."""
        if self.is_open(sim_t):
            return sim_t
        local = datetime.fromtimestamp(sim_t, self._tz)
        if self.spec.cron is not None:
            from croniter import croniter

            return float(croniter(self.spec.cron, local).get_next(datetime).timestamp())
        # Openings start on a whole minute: look at each day's opening minute in turn.
        for ahead in range(9):
            day = (local + timedelta(days=ahead)).date()
            minute = self._hours[0] if self._hours else 0
            opening = datetime(day.year, day.month, day.day, tzinfo=self._tz) + timedelta(
                minutes=minute
            )
            t = opening.astimezone(timezone.utc).timestamp()
            if t >= sim_t and self.is_open(t):
                return t
        raise AssertionError("unreachable: a valid schedule opens within a week")

    def openings(self, lo: float, hi: float) -> tuple[list[float], list[float]]:
        """The schedule's openings as sorted epoch-second intervals ``[open, close)``, for
        ``generate``'s planner (vectorised :meth:`is_open`/:meth:`next_open`).

        Covers every instant from ``lo`` to ``hi`` (simulated epoch seconds) and the first
        opening after ``hi``. Intervals may touch (whole open days) and, for a cron window
        longer than its period, overlap; ``close`` never decreases.
        """
        opens: list[float] = []
        closes: list[float] = []
        if self.spec.cron is not None:
            from croniter import croniter

            it = croniter(self.spec.cron, datetime.fromtimestamp(lo - self._window_s, self._tz))
            while not opens or opens[-1] <= hi:
                t = float(it.get_next(datetime).timestamp())
                opens.append(t)
                closes.append(t + self._window_s)
            return opens, closes
        start, end = self._hours or (0, 1440)
        length = (end - start) % 1440 or 1440
        first = datetime.fromtimestamp(lo, self._tz).date() - timedelta(days=1)
        for ahead in range(int((hi - lo) // 86400) + 10):
            day = first + timedelta(days=ahead)
            if self._days is not None and day.weekday() not in self._days:
                continue
            midnight = datetime(day.year, day.month, day.day, tzinfo=self._tz)
            t0 = (midnight + timedelta(minutes=start)).astimezone(timezone.utc).timestamp()
            t1 = (midnight + timedelta(minutes=start + length)).astimezone(timezone.utc)
            opens.append(t0)
            closes.append(t1.timestamp())
            if t0 > hi:
                break
        return opens, closes

    def spread_s(self) -> float:
        """Seconds over which sessions deferred to an opening are spread (at most one hour)."""
        if self.spec.cron is not None:
            return min(self._window_s, _SPREAD_MAX_S)
        if self._hours is None:
            return _SPREAD_MAX_S
        start, end = self._hours
        return min(((end - start) % 1440) * 60.0, _SPREAD_MAX_S)
