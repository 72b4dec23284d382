"""``run --format parquet|duckdb|csv|jsonl``: the event engine's records as the dataset
``generate`` writes (same tables, same schema, same writers).

:class:`DatasetSink` is a :class:`~sim_engine.model.records.Sink`. It buffers the
action records as ``events`` rows and writes them as parts every ``flush_rows`` rows
and at the end, partitioned by the user's local date::

    DIR/events/date=YYYY-MM-DD/part-NNNNNNNNN.parquet   (NNNNNNNNN: the part's first action)

(CSV and JSONL parts, and DuckDB's, are staged as Parquet under ``DIR/.dataset`` and
converted at the end.) When the run ends it writes the tables built from the whole
run: ``sessions`` (from the events), ``users`` and ``lifecycle_changes`` (from
``users.jsonl`` and ``lifecycle.jsonl``) and ``daily_metrics``, then
``DIR/manifest.json``.

Resume: ``manifest.json`` (written when the run starts, and after each part) names
the format and counts the actions the parts hold (``actions``). A resumed run (its
``actions.jsonl`` repaired and kept) reads the actions after that count back from
``actions.jsonl`` and writes them first, so the events are exactly the lines of
``actions.jsonl``: a part cut short by a kill is written again under the same name
(no duplicate rows), and what the run did between its last part and the kill is not
lost.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from sim_engine.datasets.records import (
    EventRows,
    daily_metrics_of,
    lifecycle_of,
    sessions_of,
    users_of,
)
from sim_engine.datasets.schema import EVENTS
from sim_engine.datasets.writers import EXTENSIONS, FORMATS, load_duckdb, write_table
from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, UserRecord
from sim_engine.model.scenario import Scenario

__all__ = ["MANIFEST", "DatasetSink"]

MANIFEST = "manifest.json"
_STAGE = ".dataset"


def _records(path: Path, kind: type[Any], skip: int = 0) -> list[Any]:
    """The records of a run's JSON lines file (``skip`` lines left out)."""
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i < skip or not line.strip():
                continue
            data = json.loads(line)
            data.pop("kind", None)
            if kind is LifecycleRecord:
                data["old"], data["new"] = data.pop("from"), data.pop("to")
            out.append(kind(**data))
    return out


class DatasetSink:
    """Writes a run's records as the dataset tables (see the module docstring).

    Args:
        out_dir: the run directory (``actions.jsonl``, ``users.jsonl`` and
            ``lifecycle.jsonl`` are there: a resumed run reads them back).
        fmt: one of :data:`~sim_engine.datasets.writers.FORMATS`.
        scenario: the run's scenario (founders; the lifecycle's initial state).
        resumed: continue the dataset of a resumed run.
        flush_rows: action records per part.

    Raises:
        ValueError: an unknown format.
        OSError: the directory cannot be written.
    """

    def __init__(
        self,
        out_dir: Path,
        fmt: str,
        scenario: Scenario,
        resumed: bool = False,
        flush_rows: int = 100_000,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown --format {fmt!r} (use {', '.join(FORMATS)})")
        self.out, self.fmt, self.flush_rows = out_dir, fmt, flush_rows
        self.parts = out_dir if fmt == "parquet" else out_dir / _STAGE
        self.initial = "NEW" if scenario.lifecycle.enabled else "ACTIVE"
        founders = scenario.population.founders
        self.founders = {f.email for f in founders if f.email} | {f.name for f in founders}
        self.buffer = EventRows()
        self.segments: dict[int, str] = {}
        self.states: dict[int, str] = {}
        self.actions = 0  # action records in written parts
        self._closed = False
        out_dir.mkdir(parents=True, exist_ok=True)
        if resumed:
            self._recover()
        self._manifest(complete=False)  # from the start: a resumed run knows its format

    def _recover(self) -> None:
        """Take back the users' segments and states, and the actions not yet in parts."""
        path = self.out / MANIFEST
        if path.exists():
            self.actions = int(json.loads(path.read_text()).get("actions", 0))
        for user in _records(self.out / "users.jsonl", UserRecord):
            self.emit(user)
        for change in _records(self.out / "lifecycle.jsonl", LifecycleRecord):
            self.emit(change)
        for action in _records(self.out / "actions.jsonl", ActionRecord, self.actions):
            self.emit(action)

    def emit(self, record: Record) -> None:
        """Take one record (actions are buffered; users and state changes remembered)."""
        if isinstance(record, ActionRecord):
            uid = record.user_id
            self.buffer.add(
                record, self.segments.get(uid, "default"), self.states.get(uid, self.initial)
            )
            if len(self.buffer) >= self.flush_rows:
                self.flush()
        elif isinstance(record, UserRecord):
            self.segments[record.user_id] = record.segment or "default"
        elif isinstance(record, LifecycleRecord) and record.change == "state":
            self.states[record.user_id] = record.new

    def flush(self) -> None:
        """Write the buffered actions as parts, then count them in the manifest."""
        count = len(self.buffer)
        if count == 0:
            return
        for day, table in self.buffer.take().items():
            path = self.parts / "events" / f"date={day}" / f"part-{self.actions:09d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_table(table, path, "parquet")
        self.actions += count
        self._manifest(complete=False)

    def _manifest(self, complete: bool, tables: dict[str, list[str]] | None = None) -> None:
        data = {"source": "run", "format": self.fmt, "actions": self.actions, "complete": complete}
        if tables is not None:
            data["tables"] = tables
        tmp = self.out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.out / MANIFEST)

    def close(self) -> None:
        """Write the last part and the run's tables; later calls do nothing.

        Raises:
            OSError: a table cannot be written.
        """
        if self._closed:
            return
        self._closed = True
        self.flush()
        users = _records(self.out / "users.jsonl", UserRecord)
        changes = _records(self.out / "lifecycle.jsonl", LifecycleRecord)
        events = self._events()
        tables = {
            "users": users_of(users, changes, self.founders),
            "lifecycle_changes": lifecycle_of(changes),
            "daily_metrics": daily_metrics_of(events, users, changes, self.initial),
        }
        files = self._write(events, tables)
        self._manifest(complete=True, tables=files)

    def _events(self) -> pa.Table:
        folder = self.parts / "events"
        if not folder.exists():
            return EVENTS.empty_table()
        return ds.dataset(folder, format="parquet", schema=EVENTS).to_table()

    def _write(self, events: pa.Table, tables: dict[str, pa.Table]) -> dict[str, list[str]]:
        """Write the sessions (by local date of their start) and ``tables`` as staged
        Parquet; then :meth:`_finish` puts them in the format. Returns the files."""
        shutil.rmtree(self.parts / "sessions", ignore_errors=True)
        files: dict[str, list[str]] = {
            "events": sorted(
                str(p.relative_to(self.parts))
                for p in (self.parts / "events").glob("date=*/part-*.parquet")
            ),
            "sessions": [],
        }
        sessions, dates = sessions_of(events)
        for day in pc.unique(dates).to_pylist():
            rel = f"sessions/date={day}/part-000000000.parquet"
            (self.parts / rel).parent.mkdir(parents=True, exist_ok=True)
            write_table(sessions.filter(pc.equal(dates, day)), self.parts / rel, "parquet")
            files["sessions"].append(rel)
        for name, table in tables.items():
            write_table(table, self.parts / f"{name}.parquet", "parquet")
            files[name] = [f"{name}.parquet"]
        return self._finish(files)

    def _finish(self, files: dict[str, list[str]]) -> dict[str, list[str]]:
        """Move the tables to their format: DuckDB loads them, text formats convert them."""
        if self.fmt == "duckdb":
            load_duckdb(self.out, {k: [self.parts / f for f in v] for k, v in files.items()})
            return {k: ["dataset.duckdb"] for k in files}
        if self.fmt == "parquet":
            return files
        ext = EXTENSIONS[self.fmt]
        out: dict[str, list[str]] = {}
        for name, rels in files.items():
            out[name] = []
            for rel in rels:
                target = str(Path(rel).with_suffix(ext))
                (self.out / target).parent.mkdir(parents=True, exist_ok=True)
                write_table(ds.dataset(self.parts / rel).to_table(), self.out / target, self.fmt)
                out[name].append(target)
        return out
