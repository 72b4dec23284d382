"""``load --processes 2`` against the demo server on 127.0.0.1: the live view, the CSV
history, ``--abort-on-fail`` and the Prometheus metrics work from the workers' merged
figures."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import assert_one_line_error, sim_engine
from sim_engine.demo.launcher import find_free_port
from sim_engine.model.scenario import default_scenario
from sim_engine.observe.merged_metrics import MergedMetrics
from sim_engine.runs.load_stats import SETUP_ACTIONS
from sim_engine.runs.load_thresholds import parse_threshold
from sim_engine.runs.loadtest import LoadOptions, format_summary, run_load


def _options(tmp_path: Path, **changes: Any) -> LoadOptions:
    settings: dict[str, Any] = {
        "scenario": default_scenario(),
        "users": 4,
        # 40 requests of at least 15 ms: over 0.6 s, two ticks of the 0.3 s view
        "delay_min_ms": 15.0,
        "delay_max_ms": 25.0,
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


def _get(url: str) -> tuple[int, str]:
    """One GET on loopback: the status and the body (a 503 too)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples called ``name`` in a scrape: (labels, value)."""
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def _by(text: str, name: str, label: str, setup: bool = False) -> dict[str, float]:
    """``name`` summed by ``label``: the requests only, or (``setup``) sign-up and log-in only."""
    out: dict[str, float] = {}
    for labels, value in _samples(text, name):
        if (labels["action"] in SETUP_ACTIONS) == setup:
            out[labels[label]] = out.get(labels[label], 0.0) + value
    return out


class _Scraper(threading.Thread):
    """Scrapes ``/metrics`` and ``/healthz`` every 0.1 s while the test runs."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.metrics: list[str] = []
        self.health: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            with contextlib.suppress(OSError):  # not listening yet, or closed already
                code, text = _get(f"{self.base}/metrics")
                if code == 200:
                    self.metrics.append(text)
                self.health.append(_get(f"{self.base}/healthz")[0])


def test_two_processes_serve_the_workers_merged_prometheus_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_end: list[str] = []
    stop = MergedMetrics.stop

    def scrape_then_stop(self: MergedMetrics) -> None:  # the final figures are in by now
        at_end.append(_get(self.url)[1])
        stop(self)

    monkeypatch.setattr(MergedMetrics, "stop", scrape_then_stop)
    port = find_free_port()
    scraper = _Scraper(port)
    scraper.start()
    options = _options(tmp_path, min_requests=150, max_requests=150, metrics_port=port)
    try:
        result = run_load(options)
    finally:
        scraper.done.set()
        scraper.join()
    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert data["requests"] == result.requests == 4 * 150
    (final,) = at_end
    requests = _by(final, "sim_engine_requests_total", "endpoint")
    assert requests == {name: row["requests"] for name, row in data["by_endpoint"].items()}
    signups = _by(final, "sim_engine_requests_total", "action", setup=True)
    assert signups == {name: row["requests"] for name, row in data["setup"].items()}
    counts = _by(final, "sim_engine_request_duration_seconds_count", "action")
    assert counts == {name: row["requests"] for name, row in data["by_action"].items()}
    buckets = _samples(final, "sim_engine_request_duration_seconds_bucket")
    inf = sum(v for labels, v in buckets if labels["le"] == "+Inf")
    assert inf == sum(n for _, n in _samples(final, "sim_engine_request_duration_seconds_count"))
    failed = data["failed"] + sum(row["failed"] for row in data["setup"].values())
    assert sum(v for _, v in _samples(final, "sim_engine_errors_total")) == failed
    assert _samples(final, "sim_engine_run_info")[0][1] == 1.0  # a max, not a sum
    totals = [
        sum(_by(text, "sim_engine_requests_total", "endpoint").values()) for text in scraper.metrics
    ]
    assert totals == sorted(totals), totals  # counters never go down
    assert any(0 < t < result.requests for t in totals), totals  # merged while it ran
    assert 200 in scraper.health


def test_two_processes_stop_at_once_when_the_metrics_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = sim_engine("load", "-q", "--processes", "2", "--metrics-port", port)
    line = assert_one_line_error(proc, 1)
    assert f"cannot serve metrics on 127.0.0.1:{port}: already in use" in line
