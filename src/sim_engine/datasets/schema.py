"""The schema of a generated dataset, defined once (pyarrow) and documented in docs/generate.md.

Times are simulated instants: ``ts_utc`` is UTC, ``ts_local`` the same instant on
the user's wall clock (no zone; ``utc_offset_s`` says how far from UTC, DST
included). Categorical columns are dictionary-encoded (a few bytes per row in
Parquet). ``date`` is the partition: the user's local date of the planned day.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["SCHEMAS", "TABLES"]

_DICT8 = pa.dictionary(pa.int8(), pa.string())
_DICT16 = pa.dictionary(pa.int16(), pa.string())
_TS = pa.timestamp("ms", tz="UTC")
_LOCAL = pa.timestamp("ms")

EVENTS = pa.schema(
    [
        pa.field("event_id", pa.int64(), False),
        pa.field("user_id", pa.int64(), False),
        pa.field("ts_utc", _TS, False),
        pa.field("ts_local", _LOCAL, False),
        pa.field("utc_offset_s", pa.int32(), False),
        pa.field("event", _DICT16, False),
        pa.field("session_id", pa.int64(), False),
        pa.field("persona", _DICT16, False),
        pa.field("lifecycle_state", _DICT8, False),
        pa.field("routine_state", _DICT8, False),
        pa.field("segment", _DICT8, False),
        pa.field("properties", _DICT16, False),
    ]
)
SESSIONS = pa.schema(
    [
        pa.field("session_id", pa.int64(), False),
        pa.field("user_id", pa.int64(), False),
        pa.field("start_utc", _TS, False),
        pa.field("end_utc", _TS, False),
        pa.field("events", pa.int32(), False),
        pa.field("persona", _DICT16, False),
        pa.field("lifecycle_state", _DICT8, False),
    ]
)
USERS = pa.schema(
    [
        pa.field("user_id", pa.int64(), False),
        pa.field("name", pa.string(), False),
        pa.field("email", pa.string(), False),
        pa.field("persona", _DICT16, False),
        pa.field("segment", _DICT8, False),
        pa.field("timezone", _DICT16, False),
        pa.field("signup_utc", _TS, False),
        pa.field("churn_utc", _TS, True),
        pa.field("founder", pa.bool_(), False),
    ]
)
LIFECYCLE_CHANGES = pa.schema(
    [
        pa.field("user_id", pa.int64(), False),
        pa.field("ts_utc", _TS, False),
        pa.field("change", _DICT8, False),
        pa.field("old", _DICT8, False),
        pa.field("new", _DICT8, False),
    ]
)
DAILY_METRICS = pa.schema(
    [
        pa.field("date", pa.date32(), False),
        pa.field("users_total", pa.int64(), False),
        pa.field("signups", pa.int64(), False),
        pa.field("active_users", pa.int64(), False),
        pa.field("users_with_events", pa.int64(), False),
        pa.field("sessions", pa.int64(), False),
        pa.field("events", pa.int64(), False),
        pa.field("new", pa.int64(), False),
        pa.field("active", pa.int64(), False),
        pa.field("casual", pa.int64(), False),
        pa.field("dormant", pa.int64(), False),
        pa.field("churned", pa.int64(), False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "events": EVENTS,
    "sessions": SESSIONS,
    "users": USERS,
    "lifecycle_changes": LIFECYCLE_CHANGES,
    "daily_metrics": DAILY_METRICS,
}
"""Every table of a dataset, by name."""

TABLES: dict[str, str] = {
    "events": "one row per action (and a user's sign-up and log-in), partitioned by date",
    "sessions": "one row per session with at least one event, partitioned by date",
    "users": "one row per user: identity, persona, segment, time zone, sign-up, churn",
    "lifecycle_changes": "state, pattern and life-event changes decided at local midnights",
    "daily_metrics": "one row per local date: population, sign-ups, activity, lifecycle states",
}
"""What each table holds (for docs and the summary)."""
