"""Where an event log's rows come from: a DuckDB relation and its default columns.

:func:`find_source` recognises a run directory (``actions.jsonl``), a ``generate``
dataset directory (its ``events`` table as Parquet, CSV or JSON Lines parts, or
``dataset.duckdb``), a directory of Parquet files, and CSV, TSV, Parquet or JSON
Lines files by extension.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

__all__ = ["LogError", "Source", "find_source"]


class LogError(ValueError):
    """An event log cannot be read; the message is one line naming the file and the problem."""


GENERIC: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "user", "userid", "uid", "distinct_id", "actor", "actor_id"),
    "time": ("timestamp", "ts", "time", "ts_utc", "event_time", "created_at", "datetime"),
    "action": ("action", "event", "event_type", "event_name", "type"),
    "tz": ("tz", "timezone", "time_zone", "utc_offset_s"),
}
"""Column names tried, in order, when an option does not name the column."""
ACTIONS_JSONL: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "time": ("sim_time",),
    "action": ("action",),
    "tz": (),
}
DATASET: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "time": ("ts_utc",),
    "action": ("event",),
    "tz": ("utc_offset_s",),
}
_EXTENSIONS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".txt": "read_csv",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
    ".json": "read_json",
}
_PART_KINDS = (("parquet", "read_parquet"), ("csv", "read_csv"), ("jsonl", "read_json"))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Source:
    """A DuckDB relation over a log's rows, with its columns and defaults.

    Attributes:
        label: the path and what it was read as, for messages.
        function: ``read_csv``, ``read_json``, ``read_parquet`` or ``table``.
        target: the function's first argument (SQL) or the table's name.
        columns, types: the relation's column names and DuckDB types.
        defaults: column names tried per role (user, time, action, tz).
        where: an SQL filter on the rows (empty: none).
        args: extra SQL arguments of the function.
    """

    label: str
    function: str
    target: str
    columns: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    defaults: dict[str, tuple[str, ...]] = field(default_factory=lambda: GENERIC)
    where: str = ""
    args: str = ""

    @property
    def relation(self) -> str:
        """The SQL of the rows (a table function call or a table name)."""
        if self.function == "table":
            return self.target
        return f"{self.function}({self.target}{self.args})"

    def described(self, con: duckdb.DuckDBPyConnection) -> Source:
        """The same source with its columns and types read from DuckDB."""
        rows = con.sql(f"DESCRIBE SELECT * FROM {self.relation}").fetchall()
        return dataclasses.replace(
            self, columns=tuple(str(r[0]) for r in rows), types=tuple(str(r[1]) for r in rows)
        )

    def as_text(self, column: str) -> Source:
        """The same source with ``column`` read as text (to keep ISO offsets)."""
        if self.function == "read_csv":
            extra = f", types={{{_literal(column)}: 'VARCHAR'}}"
        elif self.function == "read_json":
            typed = ", ".join(
                f"{_literal(c)}: {_literal('VARCHAR' if c == column else t)}"
                for c, t in zip(self.columns, self.types, strict=True)
            )
            extra = f", columns={{{typed}}}"
        else:
            return self
        types = tuple(
            "VARCHAR" if c == column else t for c, t in zip(self.columns, self.types, strict=True)
        )
        return dataclasses.replace(self, args=self.args + extra, types=types)


def _run_directory(path: Path) -> Source:
    return Source(
        label=f"{path} (actions.jsonl)",
        function="read_json",
        target=_literal(str(path)),
        args=", format='newline_delimited'",
        defaults=ACTIONS_JSONL,
    )


def _dataset(con: duckdb.DuckDBPyConnection, path: Path) -> Source | None:
    events = path / "events"
    for ext, function in _PART_KINDS:
        if events.is_dir() and any(events.rglob(f"*.{ext}")):
            extra = ", hive_partitioning=true" if ext == "parquet" else ""
            if ext == "jsonl":
                extra = ", format='newline_delimited'"
            glob = _literal(str(events / "**" / f"*.{ext}"))
            return Source(f"{path} (dataset, {ext})", function, glob, defaults=DATASET, args=extra)
    db = path / "dataset.duckdb"
    if db.is_file():
        con.execute(f"ATTACH {_literal(str(db))} AS dataset (READ_ONLY)")
        return Source(f"{path} (dataset, duckdb)", "table", "dataset.events", defaults=DATASET)
    return None


def _directory(con: duckdb.DuckDBPyConnection, path: Path) -> Source:
    if (path / "actions.jsonl").is_file():
        return _run_directory(path / "actions.jsonl")
    dataset = _dataset(con, path)
    if dataset is not None:
        return dataset
    if any(path.rglob("*.parquet")):
        glob = _literal(str(path / "**" / "*.parquet"))
        return Source(f"{path} (Parquet files)", "read_parquet", glob)
    raise LogError(
        f"{path}: a directory with no actions.jsonl, no dataset (events/) and no Parquet files"
    )


def _file(path: Path) -> Source:
    if path.stat().st_size == 0:
        raise LogError(f"{path}: the file is empty")
    function = _EXTENSIONS.get(path.suffix.lower())
    if function is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise LogError(f"{path}: unknown log format {path.suffix!r} (known: {known})")
    if path.name == "actions.jsonl":
        return _run_directory(path)
    args = ", format='newline_delimited'" if function == "read_json" else ""
    if path.suffix.lower() == ".tsv":
        args = ", delim='\\t'"
    return Source(f"{path}", function, _literal(str(path)), args=args)


def find_source(con: duckdb.DuckDBPyConnection, path: Path) -> Source:
    """The rows of the log at ``path``, described (columns and types known).

    Raises:
        LogError: the path does not exist, is empty, or is of no known kind.
        duckdb.Error: DuckDB cannot parse the file (the caller makes it one line).
    """
    if not path.exists():
        raise LogError(f"{path}: no such file or directory")
    source = _directory(con, path) if path.is_dir() else _file(path)
    source = source.described(con)
    if source.defaults is ACTIONS_JSONL and "kind" in source.columns:
        source = dataclasses.replace(source, where="kind = 'action'")
    return source
