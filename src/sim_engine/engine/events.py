"""The engine's event kinds and the local-time arithmetic that schedules them.

The :class:`~sim_engine.engine.scheduler.Scheduler` keeps ``(sim_time, seq,
kind, user)`` events; the kinds below tag them. They, and the helpers that turn
a simulated time into a user's local midnight or UTC offset, are shared by the
engine's collaborators, so they live apart to keep the imports one-way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
