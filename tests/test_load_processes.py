"""``load --processes 2`` against the demo server on 127.0.0.1: the live view, the CSV
history and ``--abort-on-fail`` work from the workers' merged figures."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from helpers import assert_one_line_error, sim_engine
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.load_thresholds import parse_threshold
from sim_engine.runs.loadtest import LoadOptions, format_summary, run_load


def _options(tmp_path: Path, **changes: Any) -> LoadOptions:
    settings: dict[str, Any] = {
        "scenario": default_scenario(),
        "users": 4,
        "delay_min_ms": 5.0,
        "delay_max_ms": 10.0,
        "target_url": None,  # the built-in demo server on 127.0.0.1
        "out_dir": tmp_path / "out",
        "processes": 2,
        "progress_every_s": 0.3,
    }
    settings.update(changes)
    return LoadOptions(**settings)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))


def test_two_processes_show_the_live_view_and_write_the_csv_history(tmp_path: Path) -> None:
    console = io.StringIO()
    prefix = str(tmp_path / "csv" / "run")
    options = _options(
        tmp_path, min_requests=40, max_requests=40, console=console,
        csv_prefix=prefix, csv_every_s=0.3,
    )  # fmt: skip
    result = run_load(options)
    assert result.requests == 4 * 40  # 2 + 2 users, 40 requests each
    assert result.target.startswith("http://127.0.0.1:")
    lines = [line for line in console.getvalue().splitlines() if "req/s now" in line]
    assert lines, console.getvalue()  # the parent's live view, from the merged figures
    history = [r for r in _rows(Path(f"{prefix}_stats_history.csv")) if r["Name"] == "Aggregated"]
    assert len(history) >= 2  # rows while the test ran, and the last one at the end
    totals = [int(r["Total Request Count"]) for r in history]
    assert totals == sorted(totals) and totals[-1] == result.requests
    assert any(0 < t < result.requests for t in totals)  # merged mid-test, not only at the end
    assert sum(float(r["Requests/s"]) > 0 for r in history) >= 1
    assert len(result.timeline) >= 2 and result.timeline[-1]["requests"] == result.requests
    stats = {r["Name"]: r for r in _rows(Path(f"{prefix}_stats.csv"))}
    assert int(stats["Aggregated"]["Request Count"]) == result.requests


def test_abort_on_fail_stops_every_worker(tmp_path: Path) -> None:
    rule = parse_threshold("p50<0.001ms")  # no answer comes back within a microsecond
    options = _options(
        tmp_path, duration_s=60.0, min_requests=10**9, max_requests=10**9,
        thresholds=(rule,), abort_on_fail=True,
    )  # fmt: skip
    result = run_load(options)
    assert result.aborted is not None and result.aborted.threshold.text == "p50<0.001ms"
    assert result.wall_s < 55  # stopped long before the duration
    assert result.requests > 0 and result.cut_short
    assert format_summary(result)[0].startswith("Aborted (threshold failed)")
    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert data["aborted_by"] == "p50<0.001ms" and data["processes"] == 2


def test_processes_refuse_the_metrics_port() -> None:
    args = ["--processes", "2", "--metrics-port", "0"]
    line = assert_one_line_error(sim_engine("load", "-q", "--target", "inprocess", *args), 2)
    assert "--metrics-port needs one process" in line
