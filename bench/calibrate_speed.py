"""``sim-engine calibrate`` on a 1,000,000-event log: seconds end to end, and its verdict.

The log is planned once by the vectorised planner from a scenario of the calibrated
family (a human day in UTC+2, heavy-tailed activity and posting, follow-ups, a churn
hazard; 60 days from Monday 2026-01-05) with the population scaled so that it holds
about ``--events`` events, and written as Parquet with a user, a timestamp (unix s),
a time-zone offset (s) and an action column. Timed end to end in a subprocess, as a
user runs it: ``python -m sim_engine calibrate LOG --tz-col tz -o OUT --json``
(interpreter start, reading, the fitting rounds, the full-size simulation and the
comparison). Baseline in the same run: ``sim-engine realism`` on the same file (one
read and one measurement), so the ratio says what the fitting costs on top.

Goal (issue 11): under 2 minutes for 1,000,000 events on the 2-core machine.

Run: ``python bench/calibrate_speed.py`` (a few minutes); ``--events N`` for another size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _common import fmt_int, print_table, write_results
from sim_engine.realism.scenario_fit import Params, to_scenario
from sim_engine.realism.simulate import simulate

GOAL_S = 120.0
_DAY = [0.05, 0.03, 0.02, 0.02, 0.02, 0.04, 0.1, 0.25, 0.4, 0.5, 0.55, 0.6,
        0.65, 0.6, 0.55, 0.55, 0.6, 0.7, 0.85, 1.0, 0.95, 0.8, 0.5, 0.2]  # fmt: skip
SOURCE = Params(
    start=date(2026, 1, 5),
    days=60,
    seed=5,
    zones={"Etc/GMT-2": 1.0},
    weekday=tuple(_DAY),
    weekend=tuple(0.7 * x for x in _DAY[-1:] + _DAY[:-1]),
    actions={"browse_feed": 0.6, "read_post": 0.3, "create_post": 0.1},
    sessions_per_day=1.0,
    activity_sigma=1.0,
    posting_sigma=1.5,
    depth_high=4,
    think_median_s=30.0,
    follow_p=0.4,
    return_p=0.5,
    hazard_first_day=0.3,
    initial=400,
    signups_per_day=25.0,
)


def make_log(events: int) -> pa.Table:
    """Plan the source scenario sized to about ``events`` events; return its rows."""
    probe = simulate(to_scenario(SOURCE), SOURCE.initial, SOURCE.days, SOURCE.start, SOURCE.seed)
    p = SOURCE.scaled(events / max(probe.t.size, 1))
    sim = simulate(to_scenario(p), p.initial, p.days, p.start, p.seed)
    return pa.table(
        {
            "user_id": sim.user,
            "timestamp": np.round(sim.t, 3),
            "tz": sim.offset_s.astype(np.int64),
            "action": np.asarray(sim.names)[sim.action],
        }
    )


def _timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sim_engine", *args], capture_output=True, text=True, check=False
    )
    return time.perf_counter() - t0, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    table = make_log(args.events)
    planned = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        log, out = Path(tmp) / "log.parquet", Path(tmp) / "fitted.yaml"
        pq.write_table(table, log)
        realism_s, proc = _timed(["realism", str(log), "--tz-col", "tz", "--json"])
        if proc.returncode != 0:
            raise SystemExit(f"realism failed: {proc.stderr.strip()}")
        cmd = ["calibrate", str(log), "--tz-col", "tz", "-o", str(out), "--json"]
        calibrate_s, proc = _timed(cmd)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"calibrate failed: {proc.stderr.strip()}")
        doc = json.loads(proc.stdout)
    checks = {c["name"]: c["distance"] for c in doc["checks"]}
    rows = [
        ["realism (baseline)", f"{realism_s:.1f}", "1x", ""],
        [
            "calibrate",
            f"{calibrate_s:.1f}",
            f"{calibrate_s / realism_s:.0f}x",
            "yes" if calibrate_s <= GOAL_S else "NO",
        ],
    ]
    print_table(
        ("command", "seconds", "vs realism", f"under {GOAL_S:.0f} s"),
        rows,
        f"calibrate on {fmt_int(table.num_rows)} events (planned in {planned:.0f} s), "
        f"{doc['rounds']} rounds, tolerances {'met' if doc['passed'] else 'MISSED'}: "
        + ", ".join(f"{k} {v:+.3f}" for k, v in checks.items() if v is not None),
    )
    write_results(
        "calibrate_speed",
        {
            "events": table.num_rows,
            "calibrate_s": calibrate_s,
            "realism_s": realism_s,
            "rounds": doc["rounds"],
            "passed": doc["passed"],
            "distances": checks,
        },
    )


if __name__ == "__main__":
    main()
