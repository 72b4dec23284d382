"""Event logs into plain numpy arrays (:class:`EventLog`), through DuckDB.

Readable: a run directory or its ``actions.jsonl``; a dataset directory written by
``sim-engine generate`` (its ``events`` table, in any of its formats); any CSV, TSV,
Parquet or JSON Lines file (or a directory of Parquet files) with a user and a time
column, and optionally an action and a time-zone column. DuckDB parses and converts
every column in bulk (its CSV sniffer finds the delimiter and whether there is a
header); nothing loops over rows in Python. docs/realism.md lists the options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sim_engine.realism.sources import GENERIC, LogError, Source, find_source

__all__ = ["TIME_UNITS", "EventLog", "LogError", "LogOptions", "read_log"]

TIME_UNITS = ("s", "ms", "iso")
"""Timestamp units: unix seconds, unix milliseconds, ISO 8601 text."""

_MS_THRESHOLD = 1e11  # a numeric time above this is milliseconds (1e11 s is the year 5138)
_OFFSET_RE = re.compile(r"^(Z|UTC|[+-]\d{2}:?\d{2})$")
_ISO_OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True, slots=True)
class LogOptions:
    """How to read a generic log's columns; None means a guess.

    Our own logs (``actions.jsonl``, ``generate`` datasets) ignore these options:
    their columns are known.

    Attributes:
        user_col, time_col, action_col, tz_col: a column name, or a 1-based position
            (``"4"``) for files without a header.
        time_unit: ``"s"``, ``"ms"`` or ``"iso"``; None: numbers above 1e11 are
            milliseconds, below seconds; text is ISO 8601; timestamps are themselves.
    """

    user_col: str | None = None
    time_col: str | None = None
    action_col: str | None = None
    tz_col: str | None = None
    time_unit: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class EventLog:
    """One event log as arrays, one entry per event, in the file's order.

    Attributes:
        user: int64 user codes (equal ids, equal codes).
        t: float64 unix seconds, UTC.
        offset_s: float64 local offset from UTC in seconds (DST included) or None
            (no time zone in the log: local time is UTC).
        action: int32 index into ``action_names`` or None (no action column).
        action_names: the distinct actions, in code order.
        source: what was read (path and kind), for reports.
    """

    user: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]
    offset_s: npt.NDArray[np.float64] | None
    action: npt.NDArray[np.int32] | None
    action_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.t.size)

    def has_action(self, names: tuple[str, ...] | list[str]) -> npt.NDArray[np.bool_] | None:
        """True for events whose action is in ``names``; None without an action column."""
        if self.action is None:
            return None
        wanted = np.array([n in set(names) for n in self.action_names], dtype=bool)
        return wanted[self.action] if wanted.size else np.zeros(self.t.size, dtype=bool)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(role: str, given: str | None, source: Source, required: bool) -> str | None:
    columns = source.columns
    if given is not None:
        if given in columns:
            return given
        if given.isdigit() and 1 <= int(given) <= len(columns):
            return columns[int(given) - 1]
        raise LogError(
            f"{source.label}: no {role} column {given!r} (columns: {', '.join(columns)})"
        )
    for candidate in source.defaults.get(role, ()):
        if candidate in columns:
            return candidate
    if required:
        raise LogError(
            f"{source.label}: no {role} column found (columns: {', '.join(columns)}); "
            f"name it with --{role}-col"
        )
    return None


def _time_sql(col: str, kind: str, unit: str | None, source: Source) -> str:
    """SQL giving unix seconds (NULL where unparseable) for column ``col`` of type ``kind``."""
    q = _quote(col)
    numeric = any(k in kind for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL"))
    if "TIMESTAMP" in kind or kind == "DATE":
        if unit not in (None, "iso"):
            raise LogError(f"{source.label}: column {col!r} holds timestamps, not unix {unit}")
        return f"epoch(CAST({q} AS TIMESTAMPTZ))"
    if unit == "iso" or (unit is None and not numeric):
        return f"epoch(TRY_CAST({q} AS TIMESTAMPTZ))"
    seconds = f"TRY_CAST({q} AS DOUBLE)"
    if unit == "ms":
        return f"({seconds} / 1000.0)"
    if unit == "s":
        return seconds
    return f"(CASE WHEN {seconds} > {_MS_THRESHOLD} THEN {seconds} / 1000.0 ELSE {seconds} END)"


def _iso_offset_sql(col: str) -> str:
    """Offset in seconds of ISO strings carrying one (local wall time minus UTC)."""
    q = _quote(col)
    local = f"epoch(TRY_CAST(regexp_replace({q}, '{_ISO_OFFSET}', '') AS TIMESTAMP))"
    return f"({local} - epoch(TRY_CAST({q} AS TIMESTAMPTZ)))"


def _tz_sql(con: duckdb.DuckDBPyConnection, col: str, kind: str, t_sql: str, source: Source) -> str:
    """SQL giving each event's offset in seconds from a time-zone column."""
    q = _quote(col)
    if any(k in kind for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL")):
        return f"CAST({q} AS DOUBLE)"
    rows = con.sql(f"SELECT DISTINCT CAST({q} AS VARCHAR) FROM {source.relation}").fetchall()
    zones = [str(r[0]) for r in rows if r[0] is not None]
    if all(_OFFSET_RE.match(z) for z in zones):
        text = f"replace(replace(CAST({q} AS VARCHAR), 'UTC', 'Z'), ':', '')"
        sign = f"(CASE WHEN {text}[1] = '-' THEN -1 ELSE 1 END)"
        hours = f"TRY_CAST({text}[2:3] AS INTEGER)"
        minutes = f"TRY_CAST({text}[4:5] AS INTEGER)"
        return (
            f"(CASE WHEN {text} = 'Z' THEN 0 ELSE {sign} * ({hours} * 3600 + {minutes} * 60) END)"
        )
    for zone in zones:
        try:
            ZoneInfo(zone)
        except (ValueError, KeyError, OSError):
            raise LogError(
                f"{source.label}: unknown time zone {zone!r} in column {col!r}"
            ) from None
    return f"(epoch(timezone({q}, to_timestamp({t_sql}))) - {t_sql})"


def _first_bad_time(con: duckdb.DuckDBPyConnection, source: Source, col: str, t_sql: str) -> str:
    rows = con.sql(
        f"SELECT n, raw FROM (SELECT row_number() OVER () AS n, CAST({_quote(col)} AS VARCHAR)"
        f" AS raw, {t_sql} AS t FROM {source.relation}) WHERE t IS NULL LIMIT 1"
    ).fetchall()
    n, raw = (rows[0][0], rows[0][1]) if rows else (0, None)
    what = "no time" if raw is None or raw == "" else f"unparseable time {raw!r}"
    return f"{source.label}: row {n} has {what} in column {col!r}"


def _codes(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
    encoded = pc.dictionary_encode(column.cast(pa.string())).combine_chunks()
    names = tuple(str(v) for v in encoded.dictionary.to_pylist())
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), names


def _query(con: duckdb.DuckDBPyConnection, source: Source, options: LogOptions) -> pa.Table:
    user = _column("user", options.user_col, source, True)
    time = _column("time", options.time_col, source, True)
    action = _column("action", options.action_col, source, False)
    tz = _column("tz", options.tz_col, source, False)
    assert user is not None and time is not None
    if source.types[source.columns.index(time)] == "TIMESTAMP WITH TIME ZONE":
        source = source.as_text(time)  # DuckDB's sniffer would drop the local offsets
    types = dict(zip(source.columns, source.types, strict=True))
    t_sql = _time_sql(time, types[time], options.time_unit, source)
    parts = [f"{_quote(user)} AS u", f"{t_sql} AS t"]
    if tz is not None:
        parts.append(f"{_tz_sql(con, tz, types[tz], t_sql, source)} AS off")
    elif types[time] == "VARCHAR" and options.time_unit in (None, "iso"):
        parts.append(f"{_iso_offset_sql(time)} AS off")
    if action is not None:
        parts.append(f"{_quote(action)} AS a")
    where = f" WHERE {source.where}" if source.where else ""
    table = con.sql(f"SELECT {', '.join(parts)} FROM {source.relation}{where}").to_arrow_table()
    if table.num_rows == 0:
        raise LogError(f"{source.label}: the log has no events")
    if table.column("t").null_count:
        raise LogError(_first_bad_time(con, source, time, t_sql))
    if table.column("u").null_count:
        raise LogError(f"{source.label}: some rows have no user in column {user!r}")
    return table


def _to_log(table: pa.Table, label: str) -> EventLog:
    user_col = table.column("u")
    if pa.types.is_integer(user_col.type):
        user = user_col.to_numpy().astype(np.int64)
    else:
        user, _ = _codes(user_col)
    offset = None
    if "off" in table.column_names:
        offset = table.column("off").cast(pa.float64()).fill_null(0.0).to_numpy()
    action: npt.NDArray[np.int32] | None = None
    names: tuple[str, ...] = ()
    if "a" in table.column_names:
        codes, names = _codes(table.column("a").fill_null("(none)"))
        action = codes.astype(np.int32)
    return EventLog(
        user=user,
        t=table.column("t").cast(pa.float64()).to_numpy(),
        offset_s=offset,
        action=action,
        action_names=names,
        source=label,
    )


def read_log(path: str | Path, options: LogOptions | None = None) -> EventLog:
    """Read an event log into arrays.

    Args:
        path: a file or directory (see the module docstring).
        options: column names, positions and the time unit.

    Returns:
        The log, :class:`EventLog`.

    Raises:
        LogError: missing or empty file, unknown format, a missing column, an
            unparseable time or time zone, rows without a user (one-line message).
    """
    opts = options or LogOptions()
    if opts.time_unit is not None and opts.time_unit not in TIME_UNITS:
        raise LogError(f"time unit {opts.time_unit!r}: expected one of {', '.join(TIME_UNITS)}")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        source = find_source(con, Path(path))
        if source.defaults is not GENERIC:
            opts = LogOptions()  # our own logs describe themselves
        return _to_log(_query(con, source, opts), source.label)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogError(f"{path}: cannot read: {first}") from None
    finally:
        con.close()
