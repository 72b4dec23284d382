"""``run --format``: the event engine writes the tables ``generate`` writes.

A short in-process run gives the five tables with the schema ``generate``'s come
with (one schema, ``datasets/schema.py``), as many events as ``actions.jsonl`` has
lines, sessions and users that agree with the run's own files, and DuckDB queries
them. A run killed between two parts and resumed still has exactly the lines of its
``actions.jsonl`` as events: none lost, none twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from helpers import (
    assert_one_line_error,
    checkpoint_s,
    read_jsonl,
    reap,
    sim_engine,
    sim_engine_popen,
)
from sim_engine.datasets.schema import SCHEMAS
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.runner import RunOptions, execute

START = datetime.fromisoformat("2026-03-06T08:00:00+00:00").timestamp()


def _run(out: Path, fmt: str, hours: float = 30) -> None:
    scenario = default_scenario().with_overrides(**{"population.initial": 20, "seed": 9})
    options = RunOptions(
        scenario, "inprocess", None, hours * 3600.0, START, out, control=False,
        dataset_format=fmt,
    )  # fmt: skip
    execute(options)


def _read(out: Path, table: str) -> pa.Table:
    if (out / f"{table}.parquet").exists():
        return ds.dataset(out / f"{table}.parquet").to_table()
    return ds.dataset(out / table, format="parquet", partitioning="hive").to_table()


@pytest.fixture(scope="module")
def parquet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "parquet"
    _run(out, "parquet")
    return out


def test_a_run_writes_the_generate_schema_and_every_action(parquet_run: Path) -> None:
    out = parquet_run
    for name, schema in SCHEMAS.items():
        got = _read(out, name).schema
        partitioned = name in ("events", "sessions")  # the date partition is a column too
        assert schema.names == [n for n in got.names if n != "date" or not partitioned], name
        for field in schema:
            assert got.field(field.name).type == field.type, (name, field.name)
    actions = read_jsonl(out / "actions.jsonl")
    events = _read(out, "events")
    assert events.num_rows == len(actions) > 200
    assert len(set(events.column("event_id").to_pylist())) == events.num_rows
    assert sorted(events.column("event").to_pylist()) == sorted(a["action"] for a in actions)
    pairs = {(a["user_id"], a["session_id"]) for a in actions}
    assert _read(out, "sessions").num_rows == len(pairs)
    assert _read(out, "users").num_rows == len(read_jsonl(out / "users.jsonl"))
    metrics = _read(out, "daily_metrics")
    assert sum(metrics.column("events").to_pylist()) == len(actions)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["actions"] == len(actions)


def test_local_time_is_utc_plus_the_users_offset_and_duckdb_queries_it(parquet_run: Path) -> None:
    glob = str(parquet_run / "events" / "*" / "*.parquet")
    con = duckdb.connect()
    source = f"read_parquet('{glob}', hive_partitioning = true)"
    counts = Counter(a["action"] for a in read_jsonl(parquet_run / "actions.jsonl"))
    by_event = con.execute(f"SELECT event, count(*) FROM {source} GROUP BY event")
    assert dict(by_event.fetchall()) == counts
    dates = con.execute(f"SELECT count(DISTINCT date) FROM {source}").fetchall()
    assert dates[0][0] >= 2  # partitioned by the users' local dates
    actions = {
        (a["user_id"], round(a["sim_ts"] * 1000)): a["sim_time"]
        for a in read_jsonl(parquet_run / "actions.jsonl")
    }
    rows = con.execute(
        f"SELECT user_id, epoch_ms(ts_utc), ts_local, utc_offset_s FROM read_parquet('{glob}')"
    ).fetchall()
    offsets = set()
    for uid, ms, local, offset in rows:
        when = datetime.fromisoformat(actions[(uid, ms)])  # truncated to the millisecond
        assert abs(when.replace(tzinfo=None) - local) <= timedelta(milliseconds=1)
        assert offset == when.utcoffset().total_seconds()  # type: ignore[union-attr]
        offsets.add(offset)
    assert len(offsets) > 1


@pytest.mark.parametrize("fmt", ["duckdb", "csv"])
def test_other_formats_hold_the_same_events(parquet_run: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / fmt
    _run(out, fmt)
    want = len(read_jsonl(out / "actions.jsonl"))
    con = duckdb.connect(str(out / "dataset.duckdb")) if fmt == "duckdb" else duckdb.connect()
    source = "events" if fmt == "duckdb" else f"read_csv('{out}/events/*/*.csv')"
    row = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {source}").fetchone()
    assert row == (want, want)
    if fmt == "duckdb":
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        assert tables == set(SCHEMAS)


def test_a_killed_and_resumed_run_has_each_action_once(tmp_path: Path) -> None:
    """SIGKILL after the first checkpoint: no close, the buffered events are lost with
    the process; the resumed run takes them back from actions.jsonl."""
    out = tmp_path / "cut"
    args = ["--target", "inprocess", "--speed", "max", "--duration", "4d", "--users", "40",
            "--seed", "3", "--out", str(out), "--format", "parquet", "-q"]  # fmt: skip
    proc = sim_engine_popen("run", *args)
    try:
        deadline = time.monotonic() + 60
        while checkpoint_s(out / "state.db") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        reap(proc)
    assert not (out / "events").exists() or not (out / "users.parquet").exists()
    resumed = sim_engine("run", "--resume", str(out), "-q", timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    actions = read_jsonl(out / "actions.jsonl")
    events = _read(out, "events")
    assert events.num_rows == len(actions) > 100
    ids = events.column("event_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_an_unknown_format_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = sim_engine("run", "--target", "inprocess", "--format", "xlsx", "--out",
                      str(tmp_path / "x"), "--duration", "1h", "-q")  # fmt: skip
    assert "unknown --format 'xlsx'" in assert_one_line_error(proc, 2)
