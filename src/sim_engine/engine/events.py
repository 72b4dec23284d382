"""The engine's event kinds and the local-time arithmetic that schedules them.

:class:`~sim_engine.engine.simulation.Simulation` keeps one heap of ``(sim_time, seq, kind,
user)`` events; the kinds below tag them. They, and the helpers that turn a
simulated time into a user's local midnight or UTC offset, are shared by the
engine and its mixins (``engine_daily``, ``engine_state``), so they live apart
to keep the imports one-way: every engine module imports this one, and it
imports none of them. Internal to the engine modules.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sim_engine.model.population import SimUser

_ARRIVAL, _SESSION, _NEXT, _DAY, _TICK, _REPLACE = 0, 1, 2, 3, 4, 5
_DAY_S = 86400.0


def _next_midnight(local: datetime) -> float:
    """Return the simulated epoch seconds of the local midnight after ``local``."""
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=local.tzinfo).timestamp()


def _offset_of(local: datetime) -> float:
    """Return the UTC offset of ``local`` in seconds (0 for a naive time)."""
    delta = local.utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def _offset_s(user: SimUser, sim_t: float) -> float:
    """Return the user's UTC offset in seconds at simulated time ``sim_t``."""
    return _offset_of(datetime.fromtimestamp(sim_t, user.tz))
