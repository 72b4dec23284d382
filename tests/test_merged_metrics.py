"""Several exporters' metrics merged (``load --processes N --metrics-port``): counters and
histograms summed, gauges summed or taken by their largest or smallest value."""

from __future__ import annotations

import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sim_engine.observe.merged_metrics import MergedMetrics, snapshot
from sim_engine.observe.prometheus import PrometheusExporter
from test_prometheus import action


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _two_workers() -> tuple[PrometheusExporter, PrometheusExporter]:
    one, two = PrometheusExporter(0, serve=False), PrometheusExporter(0, serve=False)
    for latency_ms in (0.5, 3.0, 40.0):  # buckets 1 ms, 5 ms, 50 ms
        one.emit(action(latency_ms=latency_ms))
    two.emit(action(latency_ms=3.0))
    two.emit(action(status=503, ok=False, latency_ms=2000.0))
    two.emit(action("browse_feed", endpoint="GET /posts", latency_ms=0.2))
    for exporter, (clock, start, sessions) in ((one, (100, 10, 3)), (two, (250, 20, 4))):
        exporter._sim_time.set(clock)
        exporter._sim_start.set(start)
        exporter._sessions.set(sessions)
        exporter._info.labels("v", "default").set(1)
    return one, two


def test_counters_and_histograms_are_summed_over_the_processes() -> None:
    one, two = _two_workers()
    merged = MergedMetrics(0)  # not started: its registry renders the merged figures
    merged.update(0, snapshot(one.registry))
    merged.update(1, snapshot(two.registry))
    rendered = _values(generate_latest(merged.registry).decode())
    read = (("action", "read_post"), ("endpoint", "GET /posts/{id}"))
    assert rendered[("sim_engine_requests_total", (*read, ("status", "200")))] == 4
    assert rendered[("sim_engine_requests_total", (*read, ("status", "503")))] == 1
    feed = (("action", "browse_feed"), ("endpoint", "GET /posts"), ("status", "200"))
    assert rendered[("sim_engine_requests_total", feed)] == 1  # one process's series only
    bucket = "sim_engine_request_duration_seconds_bucket"
    bounds = ("0.001", "0.005", "0.05", "+Inf")
    le = {b: rendered[(bucket, (("action", "read_post"), ("le", b)))] for b in bounds}
    assert le == {"0.001": 1, "0.005": 3, "0.05": 4, "+Inf": 5}
    assert rendered[("sim_engine_request_duration_seconds_count", (("action", "read_post"),))] == 5
    total = rendered[("sim_engine_request_duration_seconds_sum", (("action", "read_post"),))]
    assert abs(total - (0.0005 + 0.003 + 0.04 + 0.003 + 2.0)) < 1e-9
    assert rendered[("sim_engine_errors_total", (("category", "http_5xx"),))] == 1
    assert rendered[("sim_engine_active_sessions", ())] == 7  # gauges summed by default
    assert rendered[("sim_engine_simulated_time_seconds", ())] == 250  # ... the clock: the latest
    assert rendered[("sim_engine_simulated_start_time_seconds", ())] == 10  # the start: the first
    assert rendered[("sim_engine_run_info", (("scenario", "default"), ("version", "v")))] == 1


def test_the_merged_server_answers_metrics_and_health() -> None:
    one, two = _two_workers()
    served = MergedMetrics(0)
    served.start()
    try:
        with urllib.request.urlopen(served.url, timeout=5) as answer:
            assert answer.read() == b""  # no process reported yet
        served.update(0, snapshot(one.registry))
        served.update(1, snapshot(two.registry))
        served.update(0, snapshot(one.registry))  # the latest of each process, not a sum of reports
        with urllib.request.urlopen(served.url, timeout=5) as answer:
            text = answer.read().decode()
        base = served.url.removesuffix("/metrics")
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
            assert b'"running"' in answer.read()
    finally:
        served.stop()
    read = (("action", "read_post"), ("endpoint", "GET /posts/{id}"), ("status", "200"))
    assert _values(text)[("sim_engine_requests_total", read)] == 4
