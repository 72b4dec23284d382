"""What one frame of the live dashboard shows, as plain values, and reading it.

:class:`DashboardSnapshot` is one frame (:class:`Activity` one line of its
recent-activity feed); :func:`target_statistics` reads a target's rate
limiting, retries and circuit breakers defensively; :func:`activity_of` turns a
record into a feed line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, UserRecord
from sim_engine.observe.redact import redact_text
from sim_engine.sinks.console import SHORT_NAMES
from sim_engine.targets.starvation import describe

__all__ = [
    "KEYS",
    "Activity",
    "DashboardSnapshot",
    "activity_of",
    "target_statistics",
]

KEYS = {
    "p": "pause/resume",
    "+": "faster",
    "-": "slower",
    "m": "max speed",
    "q": "stop",
}
"""The dashboard's keys and what they do."""


@dataclass(frozen=True)
class Activity:
    """One line of the recent-activity feed.

    Attributes:
        sim_time: the user's local simulated time (``HH:MM:SS +HH``).
        user_id: the engine's id of the user.
        persona: persona name ("" when unknown).
        what: ``browse``, ``post 17``, ``joined``, ``ACTIVE → DORMANT``...
        status: HTTP status (None for non-actions; 0: no response).
        latency_ms: wall milliseconds (None for non-actions).
        ok: success (non-actions are ok).
        note: the error, ``skipped``, or a retry count.
    """

    sim_time: str
    user_id: int
    persona: str
    what: str
    status: int | None = None
    latency_ms: float | None = None
    ok: bool = True
    note: str = ""


@dataclass(frozen=True)
class DashboardSnapshot:
    """Everything one frame of the dashboard shows, as plain values.

    Times are simulated epoch seconds (``sim_now``, ``start_s``, ``end_s``:
    ``inf`` when open-ended) or wall seconds (``wall_elapsed_s``, ``eta_wall_s``).
    ``starving`` is the warning line while the target's ``Backoff`` / ``Retry-After``
    holds back most requests (:func:`sim_engine.targets.starvation.describe`), else "".
    ``page_steps`` counts browser steps so far and ``page_load_ms`` is the median load
    time (wall ms, Navigation Timing) of the documents they opened (None before one).
    """

    sim_now: float
    start_s: float
    end_s: float = math.inf
    speed: float | None = 1.0
    state: str = "running"
    title: str = "sim-engine"
    wall_elapsed_s: float = 0.0
    users: int = 0
    signed_up: int = 0
    actions: int = 0
    failed: int = 0
    in_flight: int = 0
    lifecycle: Mapping[str, int] = field(default_factory=dict)
    persona: Mapping[str, int] = field(default_factory=dict)
    routine: Mapping[str, int] = field(default_factory=dict)
    in_session: int = 0
    actions_per_s: float = 0.0
    actions_per_sim_hour: float | None = None
    effective_speed: float | None = None
    eta_wall_s: float | None = None
    success_rate: float | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    rate_limited: int = 0
    retries: int = 0
    page_steps: int = 0
    page_load_ms: float | None = None
    breakers: Mapping[str, str] = field(default_factory=dict)
    starving: str = ""
    recent: tuple[Activity, ...] = ()
    keys: bool = False
    message: str = ""


def target_statistics(target: object) -> dict[str, Any]:
    """Return ``{"rate_limited": n, "retries": n, "breakers": {endpoint: state}}`` (and
    ``"starving": line`` while the target's backoff holds back most requests) from a
    target's (or its transport's) ``statistics()``; ``{}`` when neither has one.

    Read defensively: a missing, failing or odd-shaped ``statistics`` gives ``{}``
    or leaves keys out; breaker states are ``closed``, ``half_open`` or ``open``.
    """
    for obj in (target, getattr(target, "transport", None)):
        read = getattr(obj, "statistics", None)
        if not callable(read):
            continue
        try:
            stats = read()
        except Exception:  # another component's bug must not take the dashboard down
            return {}
        if not isinstance(stats, Mapping):
            return {}
        out: dict[str, Any] = {}
        for key in ("rate_limited", "retries"):
            value = stats.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = int(value)
        starving = stats.get("starving")
        if isinstance(starving, Mapping):
            out["starving"] = describe(dict(starving))
        breakers = stats.get("breakers")
        if isinstance(breakers, Mapping):
            states: dict[str, str] = {}
            for endpoint, value in breakers.items():
                state = value.get("state") if isinstance(value, Mapping) else value
                if state is not None:
                    name = str(getattr(state, "value", state)).lower().replace("-", "_")
                    states[str(endpoint)] = name
            out["breakers"] = states
        return out
    return {}


def _local(iso: str) -> str:
    """``2026-03-02T09:05:00.000-05:00`` -> ``09:05:00 -05`` (the user's local time)."""
    clock = iso[11:19]
    if iso.endswith("Z"):
        return f"{clock} +00"
    offset = iso[-6:] if len(iso) >= 25 and iso[-6] in "+-" else ""
    return f"{clock} {offset.removesuffix(':00')}".rstrip()


def activity_of(record: Record) -> Activity | None:
    """The feed line of a record: actions, users joining, lifecycle state changes (else None)."""
    if isinstance(record, ActionRecord):
        what = SHORT_NAMES.get(record.action, record.action)
        if record.post_id is not None:
            what += f" {record.post_id}"
        if record.page is not None:
            what += f" · {record.page.get('step', '')}"
        if record.skipped:
            note = "skipped" + (f": {record.error}" if record.error else "")
        else:
            note = record.error or ""
        note = redact_text(note)
        if record.retries:
            note = f"{record.retries} retries" + (f"; {note}" if note else "")
        return Activity(
            _local(record.sim_time),
            record.user_id,
            record.persona,
            what,
            record.status,
            record.latency_ms,
            record.ok,
            note,
        )
    if isinstance(record, UserRecord):
        return Activity(_local(record.sim_time), record.user_id, record.persona, "joined")
    if isinstance(record, LifecycleRecord) and record.change == "state":
        return Activity(_local(record.sim_time), record.user_id, "", f"{record.old} → {record.new}")
    return None
