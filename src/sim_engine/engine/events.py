"""The engine's event kinds and the local-time arithmetic that schedules them.

The :class:`~sim_engine.engine.scheduler.Scheduler` keeps ``(sim_time, seq,
kind, user)`` events; the kinds below tag them. They, and the helpers that turn
a simulated time into a user's local midnight or UTC offset, are shared by the
engine's collaborators, so they live apart to keep the imports one-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
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
    return offset_of(datetime.fromtimestamp(sim_t, user.tz))


def local_iso(user: SimUser, sim_t: float) -> str:
    """Return ``sim_t`` as ISO 8601 with the user's UTC offset, to the millisecond."""
    return datetime.fromtimestamp(sim_t, user.tz).isoformat(timespec="milliseconds")


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
