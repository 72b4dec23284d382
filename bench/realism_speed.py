"""``sim-engine realism`` on a 1,000,000-event log: seconds and events per second.

The log is synthetic and written once to a temporary directory as CSV and as Parquet:
20,000 users with log-normal activity (heavy-tailed), bursty gaps, a local offset
column (seconds) and an action column (5 % writes), over 60 days; and the same rows
as a run's ``actions.jsonl`` (every field of an action record, ISO times with the
local offset; about 300 MB). Timed end to end
in a subprocess, as a user runs it: ``python -m sim_engine realism LOG --json``
(interpreter start, imports, reading, every estimator, the JSON). Baseline in the
same run: reading the same file alone with pyarrow (``pyarrow.csv.read_csv`` /
``pyarrow.parquet.read_table`` / ``pyarrow.json.read_json``), in process.

Goal (issue 11): under 10 s for 1,000,000 events on the 2-core machine.

Run: ``python bench/realism_speed.py`` (about a minute); ``--events N`` to change
the size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from _common import fmt_int, print_table, write_results

GOAL_S = 10.0
START = 1_772_409_600.0  # Monday 2026-03-02 00:00 UTC


def make_log(events: int, seed: int = 1) -> pa.Table:
    """A synthetic log of ``events`` rows: user, timestamp (unix s), tz (s), action."""
    rng = np.random.default_rng(seed)
    users = max(events // 50, 2)
    weight = rng.lognormal(0.0, 1.2, users)
    user = rng.choice(users, size=events, p=weight / weight.sum())
    t = START + rng.uniform(0, 60 * 86_400.0, events)
    t += rng.pareto(1.0, events).clip(0, 50) * 60.0  # bursty shifts
    offset = rng.choice([-18_000, 0, 3_600, 32_400], size=users)[user]
    action = np.where(rng.random(events) < 0.05, "create_post", "browse_feed")
    return pa.table({"user_id": user, "timestamp": np.round(t, 3), "tz": offset, "action": action})


def write_actions_jsonl(table: pa.Table, path: Path) -> None:
    """The rows as a run's ``actions.jsonl`` (every field an action record has), by DuckDB."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("log", table)
    sign = "CASE WHEN tz < 0 THEN '-' ELSE '+' END"
    offset = f"printf('%s%02d:%02d', {sign}, abs(tz) // 3600, (abs(tz) % 3600) // 60)"
    local = (
        "strftime(make_timestamp(CAST((timestamp + tz) * 1e6 AS BIGINT)), '%Y-%m-%dT%H:%M:%S.%g')"
    )
    con.execute(
        f"""COPY (SELECT {local} || {offset} AS sim_time, timestamp AS sim_ts, user_id,
        'lurker' AS persona, 'relaxing' AS state, action, 200 AS status, true AS ok,
        10.5 AS latency_ms, NULL AS post_id, 1 AS session_id, NULL AS error,
        'GET /posts' AS endpoint, false AS skipped, 0 AS retries, false AS intended,
        'action' AS kind FROM log) TO '{path}' (FORMAT JSON)"""
    )
    con.close()


def _timed_cli(path: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sim_engine", "realism", str(path), "--tz-col", "tz", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"realism failed on {path}: {proc.stderr.strip()}")
    return elapsed


def _timed(read: object, path: Path) -> float:
    t0 = time.perf_counter()
    read(path)  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    table = make_log(args.events)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, parquet_path = Path(tmp) / "log.csv", Path(tmp) / "log.parquet"
        jsonl_path = Path(tmp) / "actions.jsonl"
        pacsv.write_csv(table, csv_path)
        pq.write_table(table, parquet_path)
        write_actions_jsonl(table, jsonl_path)
        for name, path, read in (
            ("CSV", csv_path, pacsv.read_csv),
            ("Parquet", parquet_path, pq.read_table),
            ("actions.jsonl", jsonl_path, pajson.read_json),
        ):
            baseline = min(_timed(read, path) for _ in range(3))
            realism = min(_timed_cli(path) for _ in range(2))
            results[name] = {"realism_s": realism, "pyarrow_read_s": baseline}
            rows.append(
                [
                    name,
                    f"{realism:.2f}",
                    fmt_int(args.events / realism),
                    f"{baseline:.3f}",
                    f"{realism / baseline:.0f}x",
                    "yes" if realism < GOAL_S else "NO",
                ]
            )
    print_table(
        ["log", "realism s", "events/s", "pyarrow read s", "ratio", f"< {GOAL_S:.0f} s"],
        rows,
        title=f"sim-engine realism on {fmt_int(args.events)} events (best of 2; read: best of 3)",
    )
    write_results("realism_speed", {"events": args.events, "results": results})


if __name__ == "__main__":
    main()
