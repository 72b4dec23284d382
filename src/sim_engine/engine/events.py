"""The engine's event kinds and the local-time arithmetic that schedules them.

The :class:`~sim_engine.engine.scheduler.Scheduler` keeps ``(sim_time, seq,
kind, user)`` events; the kinds below tag them. They, and the helpers that turn
a simulated time into a user's local midnight or UTC offset, are shared by the
engine's collaborators, so they live apart to keep the imports one-way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser

__all__ = [
    "ARRIVAL",
    "DAY",
    "DAY_S",
    "NEXT",
    "REPLACE",
    "SESSION",
    "TICK",
    "local_iso",
    "next_midnight",
    "offset_of",
    "offset_s",
    "population_breakdown",
]

ARRIVAL, SESSION, NEXT, DAY, TICK, REPLACE = 0, 1, 2, 3, 4, 5
DAY_S = 86400.0


def next_midnight(local: datetime) -> float:
    """Return the simulated epoch seconds of the local midnight after ``local``."""
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=local.tzinfo).timestamp()


def offset_of(local: datetime) -> float:
    """Return the UTC offset of ``local`` in seconds (0 for a naive time)."""
    delta = local.utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def offset_s(user: SimUser, sim_t: float) -> float:
    """Return the user's UTC offset in seconds at simulated time ``sim_t``."""
    return _zone_offset(user.tz, sim_t)[0]


def local_iso(user: SimUser, sim_t: float) -> str:
    """Return ``sim_t`` as ISO 8601 with the user's UTC offset, to the millisecond.

    The same text as ``datetime.fromtimestamp(sim_t, user.tz).isoformat(timespec=
    "milliseconds")`` (microseconds rounded half to even, then cut to milliseconds), at a
    fraction of its cost: the offset comes from a cache of 15-minute windows, and the
    text up to the second is reused, per zone, while the second stays the same (a load
    test formats thousands of times a second).
    """
    whole = math.floor(sim_t)
    micros = round((sim_t - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    tz = user.tz
    last = _LAST_SECOND.get(tz)
    if last is None or last[0] != whole:
        offset, suffix = _zone_offset(tz, whole)  # offsets change on whole seconds
        second = datetime.fromtimestamp(whole + offset, timezone.utc)
        last = (whole, second.strftime("%Y-%m-%dT%H:%M:%S."), suffix)
        if len(_LAST_SECOND) >= _MAX_CACHED:
            _LAST_SECOND.clear()
        _LAST_SECOND[tz] = last
    return f"{last[1]}{micros // 1000:03d}{last[2]}"


_WINDOW_S = 900  # offsets are cached per 15-minute window of UTC time
_MAX_CACHED = 65_536
_OFFSETS: dict[tuple[tzinfo, int], tuple[float, str]] = {}
# zone -> (whole second, "YYYY-MM-DDTHH:MM:SS." of it there, offset suffix)
_LAST_SECOND: dict[tzinfo, tuple[int, str, str]] = {}


def _zone_offset(tz: tzinfo, sim_t: float) -> tuple[float, str]:
    """The UTC offset (seconds) of ``tz`` at ``sim_t`` and its ISO suffix (``+02:00``).

    Cached per 15-minute window when the offset is the same at both ends of the window;
    a window holding a transition is computed exactly every time.
    """
    window = int(sim_t // _WINDOW_S)
    key = (tz, window)
    cached = _OFFSETS.get(key)
    if cached is not None:
        return cached
    entry = _offset_entry(tz, sim_t)
    start = window * _WINDOW_S
    if _offset_entry(tz, start) == entry == _offset_entry(tz, start + _WINDOW_S - 1e-3):
        if len(_OFFSETS) >= _MAX_CACHED:
            _OFFSETS.clear()
        _OFFSETS[key] = entry
    return entry


def _offset_entry(tz: tzinfo, sim_t: float) -> tuple[float, str]:
    local = datetime.fromtimestamp(sim_t, tz)
    text = local.isoformat(timespec="seconds")
    return offset_of(local), text[19:]


def population_breakdown(
    users: Iterable[SimUser], personas: list[CompiledPersona], now: float
) -> dict[str, dict[str, int]]:
    """Count users by lifecycle state, persona and routine state at ``now``.

    Returns ``{"lifecycle": {...}, "persona": {...}, "routine": {...},
    "session": {"in_session": n}}``; the routine state is computed once per
    (persona, time zone).
    """
    lifecycle: dict[str, int] = {}
    persona: dict[str, int] = {}
    routine: dict[str, int] = {}
    cache: dict[tuple[int, Any], str] = {}
    in_session = 0
    for user in users:
        p = personas[user.persona]
        persona[p.name] = persona.get(p.name, 0) + 1
        if user.life is not None:
            key = user.life.state.value
            lifecycle[key] = lifecycle.get(key, 0) + 1
        group = (user.persona, user.tz)
        state = cache.get(group)
        if state is None:
            state = cache[group] = p.state_at(now, offset_s(user, now))
        routine[state] = routine.get(state, 0) + 1
        in_session += user.session_left > 0
    return {
        "lifecycle": lifecycle,
        "persona": persona,
        "routine": routine,
        "session": {"in_session": in_session},
    }
