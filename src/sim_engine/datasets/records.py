"""The event engine's records into the dataset's tables (``run --format ...``).

``generate`` builds its tables from planned columns (:mod:`sim_engine.datasets.build`);
a run has records instead (:mod:`sim_engine.model.records`). This module turns them
into the same tables with the same schema (:mod:`sim_engine.datasets.schema`):

* ``events``: one row per action record (:class:`EventRows` buffers them);
  ``event_id`` is a 63-bit hash of the user, simulated time, action and session
  (the same record gives the same id); ``session_id`` is ``user_id << 26`` plus the
  user's session number; ``lifecycle_state`` the user's state when acting (``NEW``
  until its first change; ``ACTIVE`` without a lifecycle); ``properties`` is
  ``{"is_synthetic":true,"action":...}`` as in ``generate``, with ``"ok":false`` and
  the ``status`` for an action that failed;
* ``sessions``: from the events, one row per session (:func:`sessions_of`);
* ``users``, ``lifecycle_changes``: from the user and lifecycle records;
* ``daily_metrics``: per local date, from the above (:func:`daily_metrics_of`):
  ``active_users`` is the users with events that day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sim_engine.datasets.build import properties_json
from sim_engine.datasets.schema import DAILY_METRICS, EVENTS, LIFECYCLE_CHANGES, SESSIONS, USERS
from sim_engine.model.records import ActionRecord, LifecycleRecord, UserRecord

__all__ = [
    "SESSION_SHIFT",
    "EventRows",
    "daily_metrics_of",
    "event_id",
    "lifecycle_of",
    "offset_seconds",
    "sessions_of",
    "users_of",
]

SESSION_SHIFT = 26
"""``session_id = user_id << SESSION_SHIFT | session number`` (as ``generate`` packs its ids)."""
_STATES = ("NEW", "ACTIVE", "CASUAL", "DORMANT", "CHURNED")
_OFFSETS: dict[str, int] = {}


def offset_seconds(iso: str) -> int:
    """The UTC offset (seconds) an ISO 8601 time ends with (``+01:00``, ``-05:30``)."""
    tail = iso[-6:]
    known = _OFFSETS.get(tail)
    if known is None:
        sign = -1 if tail[0] == "-" else 1
        known = _OFFSETS[tail] = sign * (int(tail[1:3]) * 3600 + int(tail[4:6]) * 60)
    return known


def event_id(record: ActionRecord) -> int:
    """A 63-bit id of an action record: its user, simulated time, action and session."""
    key = f"{record.user_id}|{record.sim_ts!r}|{record.action}|{record.session_id}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


def _properties(record: ActionRecord) -> str:
    if record.ok:
        return properties_json(record.action)
    data = {"is_synthetic": True, "action": record.action, "ok": False, "status": record.status}
    return json.dumps(data, separators=(",", ":"))


class EventRows:
    """Action records buffered as the ``events`` table's columns, with each row's
    partition (the user's local date)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in EVENTS.names}
        self.dates: list[str] = []

    def __len__(self) -> int:
        return len(self.dates)

    def add(self, record: ActionRecord, segment: str, state: str) -> None:
        """Buffer one action record of a user in ``segment`` and lifecycle ``state``."""
        c = self.cols
        offset = offset_seconds(record.sim_time)
        ms = round(record.sim_ts * 1000)
        c["event_id"].append(event_id(record))
        c["user_id"].append(record.user_id)
        c["ts_utc"].append(ms)
        c["ts_local"].append(ms + offset * 1000)
        c["utc_offset_s"].append(offset)
        c["event"].append(record.action)
        c["session_id"].append(record.user_id << SESSION_SHIFT | record.session_id)
        c["persona"].append(record.persona)
        c["lifecycle_state"].append(state)
        c["routine_state"].append(record.state)
        c["segment"].append(segment)
        c["properties"].append(_properties(record))
        self.dates.append(record.sim_time[:10])

    def take(self) -> dict[str, pa.Table]:
        """The buffered rows as one ``events`` table per local date; the buffer is emptied."""
        table = pa.Table.from_pydict(
            {n: pa.array(v, type=_plain(EVENTS.field(n).type)) for n, v in self.cols.items()}
        )
        dates = pa.array(self.dates)
        self.__init__()  # type: ignore[misc]
        out = {}
        for day in pc.unique(dates).to_pylist():
            out[day] = conform(table.filter(pc.equal(dates, day)), EVENTS)
        return out


def _plain(kind: pa.DataType) -> pa.DataType:
    """The type a column is built in before :func:`conform` (strings for dictionaries)."""
    return pa.string() if pa.types.is_dictionary(kind) else kind


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns cast to ``schema`` (strings dictionary-encoded), in its order."""
    cols = []
    for f in schema:
        col = table.column(f.name)
        if pa.types.is_dictionary(f.type):
            col = pc.dictionary_encode(col.cast(pa.string())).cast(f.type)
        else:
            col = col.cast(f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def sessions_of(events: pa.Table) -> tuple[pa.Table, pa.Array]:
    """The ``sessions`` table of an ``events`` table (a session's first row gives its
    persona and lifecycle state), and each session's local date (``YYYY-MM-DD``) of start."""
    names = ["session_id", "user_id", "ts_utc", "ts_local", "persona", "lifecycle_state"]
    plain = pa.table(
        {n: events.column(n).cast(_plain(events.schema.field(n).type)) for n in names}
    ).sort_by([("session_id", "ascending"), ("ts_utc", "ascending")])
    grouped = plain.group_by("session_id", use_threads=False).aggregate(
        [
            ("user_id", "min"), ("ts_utc", "min"), ("ts_utc", "max"), ("ts_utc", "count"),
            ("ts_local", "min"), ("persona", "first"), ("lifecycle_state", "first"),
        ]
    ).sort_by("session_id")  # fmt: skip
    table = pa.table(
        {
            "session_id": grouped["session_id"],
            "user_id": grouped["user_id_min"],
            "start_utc": grouped["ts_utc_min"],
            "end_utc": grouped["ts_utc_max"],
            "events": grouped["ts_utc_count"],
            "persona": grouped["persona_first"],
            "lifecycle_state": grouped["lifecycle_state_first"],
        }
    )
    local = pc.cast(pc.cast(grouped["ts_local_min"], pa.date32()), pa.string())
    return conform(table, SESSIONS), local


def users_of(
    users: Iterable[UserRecord], changes: Sequence[LifecycleRecord], founders: set[str]
) -> pa.Table:
    """The ``users`` table: each user once (its last record), churn from ``changes``;
    ``founders``: the scenario's founders' emails and names."""
    latest = {u.user_id: u for u in users}
    churned: dict[int, int] = {}
    for c in changes:
        if c.change == "state" and c.new == "CHURNED":
            churned.setdefault(c.user_id, round(c.sim_ts * 1000))
    rows = sorted(latest.values(), key=lambda u: u.user_id)
    table = pa.table(
        {
            "user_id": [u.user_id for u in rows],
            "name": [u.name for u in rows],
            "email": [u.email for u in rows],
            "persona": [u.persona for u in rows],
            "segment": [u.segment or "default" for u in rows],
            "timezone": [u.timezone for u in rows],
            "signup_utc": pa.array([round(u.sim_ts * 1000) for u in rows], pa.int64()),
            "churn_utc": pa.array([churned.get(u.user_id) for u in rows], pa.int64()),
            "founder": [u.email in founders or u.name in founders for u in rows],
        }
    )
    return conform(table, USERS)


def lifecycle_of(changes: Sequence[LifecycleRecord]) -> pa.Table:
    """The ``lifecycle_changes`` table."""
    table = pa.table(
        {
            "user_id": pa.array([c.user_id for c in changes], pa.int64()),
            "ts_utc": pa.array([round(c.sim_ts * 1000) for c in changes], pa.int64()),
            "change": pa.array([c.change for c in changes], pa.string()),
            "old": pa.array([c.old for c in changes], pa.string()),
            "new": pa.array([c.new for c in changes], pa.string()),
        }
    )
    return conform(table, LIFECYCLE_CHANGES)


def daily_metrics_of(
    events: pa.Table,
    users: Sequence[UserRecord],
    changes: Sequence[LifecycleRecord],
    initial: str,
) -> pa.Table:
    """The ``daily_metrics`` table, one row per local date with events or sign-ups.

    Args:
        events: the ``events`` table (``ts_local`` gives each row's local date).
        users: the users (a sign-up's local date is its record's).
        changes: the lifecycle changes (each at its local date).
        initial: a user's lifecycle state before its first change.
    """
    local = pc.cast(pc.cast(events.column("ts_local"), pa.timestamp("ms")), pa.date32())
    per_day: dict[date, tuple[set[int], set[int], int]] = {}
    for day, uid, sid in zip(local.to_pylist(), events.column("user_id").to_pylist(),
                             events.column("session_id").to_pylist(), strict=True):  # fmt: skip
        who, sessions, n = per_day.get(day, (set(), set(), 0))
        who.add(uid)
        sessions.add(sid)
        per_day[day] = (who, sessions, n + 1)
    signup = {u.user_id: date.fromisoformat(u.sim_time[:10]) for u in users}
    moves = sorted(
        (date.fromisoformat(c.sim_time[:10]), c.user_id, c.new)
        for c in changes
        if c.change == "state"
    )
    days = sorted(set(per_day) | set(signup.values()))
    state: dict[int, str] = {}
    rows: dict[str, list[Any]] = {name: [] for name in DAILY_METRICS.names}
    i = 0
    for day in days:
        while i < len(moves) and moves[i][0] <= day:
            state[moves[i][1]] = moves[i][2]
            i += 1
        joined = [u for u, d in signup.items() if d <= day]
        who, sessions, n = per_day.get(day, (set(), set(), 0))
        counts = dict.fromkeys(_STATES, 0)
        for u in joined:
            s = state.get(u, initial)
            counts[s] = counts.get(s, 0) + 1
        values = [day, len(joined), sum(1 for d in signup.values() if d == day), len(who),
                  len(who), len(sessions), n, *(counts[s] for s in _STATES)]  # fmt: skip
        for name, value in zip(DAILY_METRICS.names, values, strict=True):
            rows[name].append(value)
    return conform(pa.table(rows), DAILY_METRICS) if days else DAILY_METRICS.empty_table()
