"""``sim-engine generate``: deterministic datasets in every format, a manifest, resume, errors.

Determinism: the rows (and a hash of their content) are the same for two chunk sizes
and for one and two worker processes (the process pool; Ray: test_generate_ray.py).
DuckDB queries the Parquet output. An interrupted run keeps its complete chunks with a
manifest saying the dataset is incomplete, and ``resume`` finishes it into the same
dataset as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from helpers import assert_one_line_error, sim_engine
from sim_engine.datasets.schema import SCHEMAS
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.generate import GenerateError, GenerateOptions, generate

START = date(2026, 3, 2)


def _options(out: Path, **kw: object) -> GenerateOptions:
    base: dict[str, object] = {
        "users": 120, "days": 6, "start": START, "seed": 3, "out": out, "fmt": "parquet",
    }  # fmt: skip
    base.update(kw)
    return GenerateOptions(**base)  # type: ignore[arg-type]


def _read(out: Path, table: str) -> pa.Table:
    if (out / f"{table}.parquet").exists():
        return ds.dataset(out / f"{table}.parquet").to_table()
    return ds.dataset(out / table, format="parquet", partitioning="hive").to_table()


def _digest(out: Path, table: str, key: str) -> tuple[int, str]:
    """Rows and a hash of their content, in ``key`` order, whatever the files."""
    rows = _read(out, table).sort_by(key)
    h = hashlib.sha256()
    for name in rows.column_names:
        h.update(name.encode())
        h.update(repr(rows.column(name).to_pylist()).encode())
    return rows.num_rows, h.hexdigest()


def _digests(out: Path) -> dict[str, tuple[int, str]]:
    keys = {"events": "event_id", "sessions": "session_id", "users": "user_id"}
    return {t: _digest(out, t, k) for t, k in keys.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "ref"
    summary = generate(default_scenario(), _options(out, chunk_users=1000))
    # A substantial dataset: 3,449 events (the realistic default's users act about an
    # eighth as much as the previous ones, docs/realism-defaults.md; those made > 5,000).
    assert summary.complete and summary.events > 3000
    return out


def test_rows_do_not_depend_on_chunk_size_or_workers(reference: Path, tmp_path: Path) -> None:
    want = _digests(reference)
    small = generate(default_scenario(), _options(tmp_path / "small", chunk_users=37))
    assert small.chunks == 5  # 174 users: 120 initial and 54 sign-ups
    assert _digests(tmp_path / "small") == want
    two = generate(
        default_scenario(),
        _options(tmp_path / "two", chunk_users=50, workers=2, backend="processes"),
    )
    assert two.chunks == 4
    assert _digests(tmp_path / "two") == want
    generate(default_scenario(), _options(tmp_path / "seed", seed=4))
    assert _digests(tmp_path / "seed")["events"] != want["events"]


def test_tables_follow_the_schema_and_the_manifest_lists_them(reference: Path) -> None:
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["partitions"] == [f"2026-03-0{d}" for d in range(2, 8)]
    for table, schema in SCHEMAS.items():
        files = manifest["tables"][table]
        assert files and all((reference / f).is_file() for f in files)
        got = _read(reference, table).schema
        for field in schema:
            assert got.field(field.name).type == field.type or (
                pa.types.is_dictionary(field.type)
                and pa.types.is_dictionary(got.field(field.name).type)
            ), field.name
    events = _read(reference, "events")
    assert set(events.column("event").to_pylist()) >= {"sign_up", "log_in", "browse_feed"}
    users = _read(reference, "users")
    assert users.num_rows == len(set(users.column("email").to_pylist()))
    metrics = _read(reference, "daily_metrics")
    assert sum(metrics.column("events").to_pylist()) == events.num_rows


def test_duckdb_queries_the_parquet_output(reference: Path) -> None:
    glob = str(reference / "events" / "*" / "*.parquet")
    con = duckdb.connect()
    hourly = con.execute(
        f"SELECT date_trunc('hour', ts_utc) AS h, count(*) FROM read_parquet('{glob}', "
        "hive_partitioning = true) GROUP BY h ORDER BY h"
    ).fetchall()
    total = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()
    assert total is not None and sum(n for _, n in hourly) == total[0] > 3000
    assert len(hourly) > 24 * 4  # six local days in five time zones
    # Local time is UTC plus the user's offset, DST included (New York: -5 h, then -4 h).
    offsets = con.execute(
        f"SELECT DISTINCT utc_offset_s FROM read_parquet('{glob}') "
        "WHERE ts_local - ts_utc::TIMESTAMP != to_seconds(utc_offset_s)"
    ).fetchall()
    assert offsets == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "duckdb"])
def test_other_formats_hold_the_same_rows(reference: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / fmt
    summary = generate(default_scenario(), _options(out, fmt=fmt))
    want = _read(reference, "events")
    con = duckdb.connect(str(out / "dataset.duckdb")) if fmt == "duckdb" else duckdb.connect()
    source = {
        "csv": f"read_csv('{out}/events/*/*.csv')",
        "jsonl": f"read_json('{out}/events/*/*.jsonl')",
        "duckdb": "events",
    }[fmt]
    row = con.execute(
        f"SELECT count(*), sum(user_id), count(DISTINCT event) FROM {source}"
    ).fetchone()
    # 13 events: sign_up, log_in and the 11 persona actions of the demo API
    assert row == (want.num_rows, sum(want.column("user_id").to_pylist()), 13)
    assert summary.events == want.num_rows
    if fmt == "duckdb":
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        assert tables == set(SCHEMAS)


def test_an_interrupted_dataset_resumes_into_the_same_rows(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    seen = []

    def stop_in_second_chunk(events: int, steps: int) -> None:
        seen.append(events)
        if len(seen) == 9:  # day 3 of the second chunk (6 days a chunk)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(default_scenario(), _options(out, chunk_users=50), stop_in_second_chunk)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and set(manifest["chunks"]) == {"0"}
    assert all((out / f).is_file() for f in manifest["chunks"]["0"]["files"])
    summary = generate(default_scenario(), _options(out, chunk_users=50, resume=True))
    assert summary.complete
    assert _digests(out) == _digests(reference)


def test_resume_refuses_a_different_run(reference: Path) -> None:
    with pytest.raises(GenerateError, match="seed"):
        generate(default_scenario(), _options(reference, seed=99, chunk_users=1000, resume=True))
    with pytest.raises(GenerateError, match="not an empty directory"):
        generate(default_scenario(), _options(reference))


# -- the command line ----------------------------------------------------------------------------


def test_cli_generates_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = sim_engine(
        "generate", "--users", "50", "--days", "2", "--start", "2026-01-05", "--seed", "1",
        "--out", str(out), "--format", "parquet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "events/s" in proc.stdout
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--format", "xml"], 2, "--format"),
        (["--users", "0"], 2, "--users"),
        (["--days", "0"], 2, "--days"),
        (["--days", "100000"], 2, "--days"),
        (["--start", "2026-13-01"], 2, "--start"),
        (["--workers", "0"], 2, "--workers"),
        (["--chunk-users", "0"], 2, "--chunk-users"),
        (["--backend", "threads"], 2, "--backend"),
        (["--ray-address", "nowhere"], 2, "--ray-address"),
        (["--ray-address", "127.0.0.1:1", "--backend", "processes"], 2, "--ray-address"),
        (["--resume"], 2, "nothing to resume"),
        (["--scenario", "/nonexistent.yaml"], 2, "nonexistent"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    options = {
        "--users": "10",
        "--days": "2",
        "--start": "2026-01-05",
        "--out": str(tmp_path / "o"),
    }
    flags = [a for a in args if a == "--resume"]
    rest = [a for a in args if a != "--resume"]
    options.update(zip(rest[::2], rest[1::2], strict=True))
    argv = [x for pair in options.items() for x in pair] + flags
    line = assert_one_line_error(sim_engine("generate", *argv), code)
    assert words in line
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_cli_output_that_cannot_be_written_is_a_runtime_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = sim_engine(
        "generate", "--users", "5", "--days", "1", "--start", "2026-01-05", "--out",
        str(blocker / "sub"),
    )  # fmt: skip
    line = assert_one_line_error(proc, 1)
    assert "cannot write" in line
    used = sim_engine(
        "generate", "--users", "5", "--days", "1", "--start", "2026-01-05", "--out", str(blocker)
    )
    assert "not an empty directory" in assert_one_line_error(used, 2)
