"""Tests of the Prometheus exporter add-on (``sim_engine.observe.prometheus``) and its dashboard.

Record-to-metric mapping is read from the exporter's own registry; the gauges
from a live exporter over a :class:`Simulation` (no run needed); the contract
(``sim-engine run ... --metrics-port PORT``) from a real subprocess scraped
while it runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import sim_engine
from helpers import reap, sim_engine_popen
from sim_engine import ActionRecord, Outcome, Simulation, UserRecord, default_scenario
from sim_engine._version import __version__ as leaf_version
from sim_engine.cli.main import cli
from sim_engine.demo.launcher import find_free_port
from sim_engine.engine.clock import FastForwardClock, ScaledClock
from sim_engine.model.records import LifecycleRecord
from sim_engine.observe.prometheus import (
    ERROR_CATEGORIES,
    LATENCY_BUCKETS_S,
    MetricsPortError,
    PrometheusExporter,
    breaker_states,
    error_category,
)
from sim_engine.targets import MockTarget

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "grafana" / "sim-engine.json"
START = 1_780_000_000.0  # simulated epoch seconds


def action(
    name: str = "read_post",
    status: int = 200,
    ok: bool = True,
    latency_ms: float = 3.0,
    endpoint: str | None = "GET /posts/{id}",
    **kw: Any,
) -> ActionRecord:
    return ActionRecord(
        sim_time="2026-05-28T20:26:40+00:00",
        sim_ts=START,
        user_id=1,
        persona="lurker",
        state="relaxing",
        action=name,
        status=status,
        ok=ok,
        latency_ms=latency_ms,
        endpoint=endpoint,
        **kw,
    )


def user_record(user_id: int = 1) -> UserRecord:
    return UserRecord(
        "2026-05-28T20:26:40+00:00", START, user_id, "lurker", "A B", "a@b.c", "UTC", "AB", None, 7
    )


def lifecycle(change: str, old: str, new: str) -> LifecycleRecord:
    return LifecycleRecord("2026-05-28T20:26:40+00:00", START, 1, change, old, new, "because")


def scrape(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode("utf-8"))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into ``{(sample name, sorted labels): value}``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


class BreakerTransport:
    """A transport-like object exposing circuit breaker states."""

    def __init__(self, breakers: Any) -> None:
        self.breakers = breakers

    def statistics(self) -> Any:
        return {"breakers": self.breakers, "retries": 0}


class Target(MockTarget):
    """A mock target that wraps a transport with breakers, like SocialApiTarget."""

    def __init__(self, breakers: Any = None) -> None:
        super().__init__(lambda _r: Outcome(200, True, 1.0))
        self.transport = BreakerTransport(breakers or {})


def make_sim(target: Any = None, clock: Any = None, users: int = 40) -> Simulation:
    scenario = default_scenario().with_overrides(**{"population.initial": users, "seed": 3})
    sim = Simulation(
        scenario,
        target or Target(),
        clock or FastForwardClock(START),
        duration_s=3600.0,
    )
    sim.populate()
    return sim


# -- record -> metric mapping --------------------------------------------------------------


def test_requests_actions_and_latency_from_records() -> None:
    exp = PrometheusExporter(0)
    exp.emit(action(latency_ms=3.0))
    exp.emit(action(latency_ms=40.0))
    exp.emit(action("browse_feed", endpoint="GET /posts", latency_ms=0.5))
    get = exp.registry.get_sample_value
    read = {"action": "read_post", "endpoint": "GET /posts/{id}", "status": "200"}
    assert get("sim_engine_requests_total", read) == 2
    feed = {"action": "browse_feed", "endpoint": "GET /posts", "status": "200"}
    assert get("sim_engine_requests_total", feed) == 1
    assert get("sim_engine_actions_total", {"action": "read_post"}) == 2
    # latency in seconds, cumulative buckets
    bucket = "sim_engine_request_duration_seconds_bucket"
    assert get(bucket, {"action": "read_post", "le": "0.0025"}) == 0
    assert get(bucket, {"action": "read_post", "le": "0.005"}) == 1
    assert get(bucket, {"action": "read_post", "le": "0.05"}) == 2
    assert get(bucket, {"action": "read_post", "le": "+Inf"}) == 2
    assert get(bucket, {"action": "browse_feed", "le": "0.001"}) == 1
    assert get("sim_engine_request_duration_seconds_sum", {"action": "read_post"}) == (
        pytest.approx(0.043)
    )
    assert get("sim_engine_request_duration_seconds_count", {"action": "read_post"}) == 2
    # no errors, but every category is exposed at 0
    for category in ERROR_CATEGORIES:
        assert get("sim_engine_errors_total", {"category": category}) == 0
    assert LATENCY_BUCKETS_S[0] == 0.001 and LATENCY_BUCKETS_S[-1] == 30.0


def test_exposition_text_follows_conventions() -> None:
    exp = PrometheusExporter(0)
    exp.emit(action())
    exp.emit(user_record())
    text = generate_latest(exp.registry).decode()
    assert "# TYPE sim_engine_requests_total counter" in text
    assert "# TYPE sim_engine_request_duration_seconds histogram" in text
    assert "# TYPE sim_engine_simulated_time_seconds gauge" in text
    assert (
        'sim_engine_requests_total{action="read_post",endpoint="GET /posts/{id}",status="200"} 1.0'
        in text
    )
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("sim_engine_")
        if family.type == "counter":
            assert any(s.name == family.name + "_total" for s in family.samples) or not (
                family.samples
            )
        else:
            assert not family.name.endswith("_total"), family.name  # _total is for counters
    # nothing from the process-wide registry (process_*, python_gc_*)
    assert "process_" not in text and "python_gc" not in text


@pytest.mark.parametrize(
    ("kw", "category"),
    [
        ({"status": 200, "ok": True}, None),
        ({"status": 0, "ok": False, "error": "timeout"}, "timeout"),
        ({"status": 0, "ok": False, "error": "Read timed out"}, "timeout"),
        ({"status": 0, "ok": False, "error": "Cannot connect to host"}, "connection"),
        ({"status": 404, "ok": False, "error": "HTTP 404: {}"}, "http_4xx"),
        ({"status": 429, "ok": False, "error": "HTTP 429: slow down"}, "http_4xx"),
        ({"status": 503, "ok": False, "error": "HTTP 503: busy"}, "http_5xx"),
        ({"status": 200, "ok": False, "error": "bad answer (not JSON): <html>"}, "bad_answer"),
        ({"status": 302, "ok": False, "error": "HTTP 302: moved"}, "bad_answer"),
        ({"status": 0, "ok": False, "error": "circuit open", "skipped": True}, "skipped"),
        ({"status": 503, "ok": False, "skipped": True}, "skipped"),
    ],
)
def test_error_category(kw: dict[str, Any], category: str | None) -> None:
    assert error_category(action(**kw)) == category


def test_errors_rate_limits_retries_and_skips() -> None:
    exp = PrometheusExporter(0)
    exp.emit(action(status=0, ok=False, error="timeout", latency_ms=10_000.0, retries=2))
    exp.emit(action(status=429, ok=False, error="HTTP 429: slow", retries=3))
    exp.emit(action(status=429, ok=False, error="HTTP 429: slow"))
    exp.emit(action(status=503, ok=False, error="HTTP 503"))
    exp.emit(action(status=0, ok=False, error="circuit open", skipped=True, latency_ms=0.0))
    exp.emit(action(status=200, ok=True, retries=1))
    get = exp.registry.get_sample_value
    assert get("sim_engine_errors_total", {"category": "timeout"}) == 1
    assert get("sim_engine_errors_total", {"category": "http_4xx"}) == 2
    assert get("sim_engine_errors_total", {"category": "http_5xx"}) == 1
    assert get("sim_engine_errors_total", {"category": "skipped"}) == 1
    assert get("sim_engine_errors_total", {"category": "connection"}) == 0
    assert get("sim_engine_rate_limited_total") == 2
    assert get("sim_engine_retries_total") == 6
    # a skipped action is an action, not a request: no request count, no latency
    assert get("sim_engine_actions_total", {"action": "read_post"}) == 6
    base = {"action": "read_post", "endpoint": "GET /posts/{id}"}
    assert get("sim_engine_requests_total", {**base, "status": "0"}) == 1
    assert get("sim_engine_requests_total", {**base, "status": "429"}) == 2
    assert get("sim_engine_request_duration_seconds_count", {"action": "read_post"}) == 5
    assert get("sim_engine_request_duration_seconds_bucket", {"action": "read_post", "le": "10.0"})
    # an action without an endpoint (a non-HTTP target) still counts
    exp.emit(action("create_post", endpoint=None))
    labels = {"action": "create_post", "endpoint": "", "status": "200"}
    assert get("sim_engine_requests_total", labels) == 1


def test_signups_and_lifecycle_transitions() -> None:
    exp = PrometheusExporter(0)
    exp.emit(user_record(1))
    exp.emit(user_record(2))
    exp.emit(lifecycle("state", "NEW", "ACTIVE"))
    exp.emit(lifecycle("state", "NEW", "ACTIVE"))
    exp.emit(lifecycle("state", "DORMANT", "CHURNED"))
    exp.emit(lifecycle("pattern", "steady", "weekend"))  # not a state change
    exp.emit(lifecycle("cleanup", "CHURNED", "DELETED"))
    exp.emit(lifecycle("cleanup", "CHURNED", "KEPT"))
    get = exp.registry.get_sample_value
    assert get("sim_engine_signups_total") == 2
    assert get("sim_engine_lifecycle_transitions_total", {"from": "NEW", "to": "ACTIVE"}) == 2
    assert get("sim_engine_lifecycle_transitions_total", {"from": "DORMANT", "to": "CHURNED"}) == 1
    transitions = exp.registry.get_sample_value
    assert transitions("sim_engine_lifecycle_transitions_total", {"from": "steady"}) is None
    assert get("sim_engine_churn_cleanups_total", {"result": "deleted"}) == 1
    assert get("sim_engine_churn_cleanups_total", {"result": "kept"}) == 1


def test_exporters_have_their_own_registries() -> None:
    a, b = PrometheusExporter(0), PrometheusExporter(0)
    a.emit(action())
    assert a.registry is not b.registry
    assert a.registry.get_sample_value("sim_engine_actions_total", {"action": "read_post"}) == 1
    assert b.registry.get_sample_value("sim_engine_actions_total", {"action": "read_post"}) is None
    assert a.sinks() == [a]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        PrometheusExporter(70000)
    with pytest.raises(ValueError, match="refresh_s"):
        PrometheusExporter(0, refresh_s=0)


# -- circuit breakers ----------------------------------------------------------------------


def test_breaker_states_read_defensively() -> None:
    class WithStats:
        def __init__(self, stats: Any) -> None:
            self.stats = stats

        def statistics(self) -> Any:
            return self.stats

    assert breaker_states(object()) == {}
    assert breaker_states(WithStats(None)) == {}
    assert breaker_states(WithStats({"requests": 3})) == {}
    assert breaker_states(WithStats({"breakers": "open"})) == {}
    direct = WithStats({"breakers": {"GET /posts": "open", "POST /posts": "half-open"}})
    assert breaker_states(direct) == {"GET /posts": "open", "POST /posts": "half_open"}
    nested = Target({"GET /posts": {"state": "closed", "failures": 0}, "PUT /x": "weird"})
    assert breaker_states(nested) == {"GET /posts": "closed"}


# -- a live exporter over a simulation -----------------------------------------------------


async def test_live_exporter_serves_gauges_and_stops() -> None:
    target = Target({"GET /posts": "closed", "POST /posts": "open", "GET /posts/{id}": "half_open"})
    clock = FastForwardClock(START)
    sim = make_sim(target, clock)
    exp = PrometheusExporter(0, refresh_s=60)
    await exp.start(sim)
    try:
        assert exp.port > 0
        assert exp.url == f"http://127.0.0.1:{exp.port}/metrics"
        text = await asyncio.to_thread(scrape, exp.url)
        by_persona = {
            labels[0][1]: v
            for (name, labels), v in samples(text).items()
            if name == "sim_engine_users_by_persona"
        }
        assert set(by_persona) == {p.name for p in sim.personas}
        assert sum(by_persona.values()) == len(sim.users) == 40
        assert value(text, "sim_engine_known_users") == 40
        assert value(text, "sim_engine_users", lifecycle_state="NEW") == sim.breakdown()[
            "lifecycle"
        ].get("NEW", 0)
        for state in ("ACTIVE", "CASUAL", "DORMANT", "CHURNED"):
            assert value(text, "sim_engine_users", lifecycle_state=state) is not None
        assert value(text, "sim_engine_active_sessions") == 0
        assert value(text, "sim_engine_in_flight_requests") == 0
        assert value(text, "sim_engine_simulated_time_seconds") == START
        assert value(text, "sim_engine_simulated_start_time_seconds") == START
        assert value(text, "sim_engine_simulated_end_time_seconds") == START + 3600
        assert value(text, "sim_engine_speed_ratio") == float("inf")  # --speed max
        assert "sim_engine_speed_ratio +Inf" in text
        assert value(text, "sim_engine_paused") == 0
        assert value(text, "sim_engine_circuit_breaker_state", endpoint="GET /posts") == 0
        assert value(text, "sim_engine_circuit_breaker_state", endpoint="GET /posts/{id}") == 1
        assert value(text, "sim_engine_circuit_breaker_state", endpoint="POST /posts") == 2
        assert value(text, "sim_engine_run_info", version="0.1.0", scenario="default") == 1
        assert leaf_version == sim_engine.__version__ == "0.1.0"  # one version, two names

        # the next refresh follows the simulation: clock, pause, breakers that went away
        sim.add_users(5)
        await clock.sleep_until(START + 600)  # at max speed the clock jumps there
        sim.pause()
        target.transport.breakers = {"GET /posts": "open"}
        exp.refresh()
        text = await asyncio.to_thread(scrape, exp.url)
        assert value(text, "sim_engine_simulated_time_seconds") == START + 600
        assert value(text, "sim_engine_known_users") == 45
        assert value(text, "sim_engine_paused") == 1
        assert value(text, "sim_engine_circuit_breaker_state", endpoint="GET /posts") == 2
        assert value(text, "sim_engine_circuit_breaker_state", endpoint="POST /posts") is None
    finally:
        await exp.stop()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape, exp.url, 1)
    # the port is released: it can be listened on again at once (as a restarted exporter does)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not a listener
        sock.bind(("127.0.0.1", exp.port))
        sock.listen()
    await exp.stop()  # a second stop is harmless


async def test_refresh_task_runs_in_the_loop() -> None:
    clock = ScaledClock(START, 3600.0)
    sim = make_sim(clock=clock, users=5)
    exp = PrometheusExporter(0, refresh_s=0.05)
    await exp.start(sim)
    try:
        first = exp.registry.get_sample_value("sim_engine_simulated_time_seconds")
        assert exp.registry.get_sample_value("sim_engine_speed_ratio") == 3600
        await asyncio.sleep(0.3)
        second = exp.registry.get_sample_value("sim_engine_simulated_time_seconds")
        assert first is not None and second is not None and second > first + 100
        sim.set_speed(60.0)
        await asyncio.sleep(0.2)
        assert exp.registry.get_sample_value("sim_engine_speed_ratio") == 60
    finally:
        await exp.stop()


async def test_a_failing_statistics_does_not_end_the_refreshes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Target):
        def statistics(self) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        breaker_states(Broken())
    sim = make_sim(Broken(), clock=ScaledClock(START, 3600.0), users=3)
    exp = PrometheusExporter(0, refresh_s=0.05)
    await exp.start(sim)
    try:
        first = exp.registry.get_sample_value("sim_engine_simulated_time_seconds")
        await asyncio.sleep(0.25)
        assert exp._task is not None and not exp._task.done()
        # gauges read before the breakers are still set by each refresh
        second = exp.registry.get_sample_value("sim_engine_simulated_time_seconds")
        assert first is not None and second is not None and second > first
        text = await asyncio.to_thread(scrape, exp.url)
        assert value(text, "sim_engine_known_users") == 3
    finally:
        await exp.stop()
    assert sum("refreshing the gauges failed" in r.message for r in caplog.records) == 1


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exp = PrometheusExporter(port)
        with pytest.raises(MetricsPortError) as info:
            await exp.start(make_sim(users=2))
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert message == f"cannot serve metrics on 127.0.0.1:{port}: already in use"
    assert "\n" not in message and info.value.strerror == message
    await exp.stop()  # nothing started: nothing to stop


# -- the Grafana dashboard -----------------------------------------------------------------


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            queries.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        queries.append(query["query"] if isinstance(query, dict) else str(query))
    return queries


async def test_dashboard_uses_only_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] >= 36
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    titles = {p["title"] for p in dashboard["panels"]}
    for title in (
        "Throughput",
        "Latency percentiles",
        "Errors by category",
        "Users by lifecycle state",
        "Users by persona",
        "Actions by type",
        "Simulated time",
        "Rate-limit hits and retries",
        "Circuit breaker states",
    ):
        assert title in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert panel["targets"], panel["title"]

    # a live exporter with every family populated
    sim = make_sim(Target({"GET /posts": "open"}))
    exp = PrometheusExporter(0, refresh_s=60)
    for record in (
        action(),
        action(status=429, ok=False, error="HTTP 429", retries=1),
        user_record(),
        lifecycle("state", "NEW", "ACTIVE"),
        lifecycle("cleanup", "CHURNED", "DELETED"),
    ):
        exp.emit(record)
    await exp.start(sim)
    try:
        text = await asyncio.to_thread(scrape, exp.url)
    finally:
        await exp.stop()
    exposed = {name for name, _ in samples(text)}

    queries = _dashboard_queries(dashboard)
    used = {m for q in queries for m in re.findall(r"\bsim_engine_[a-zA-Z0-9_:]*", q)}
    missing = used - exposed
    assert not missing, f"dashboard uses metrics the exporter does not expose: {sorted(missing)}"
    for needed in (
        "sim_engine_requests_total",
        "sim_engine_request_duration_seconds_bucket",
        "sim_engine_errors_total",
        "sim_engine_users",
        "sim_engine_users_by_persona",
        "sim_engine_actions_total",
        "sim_engine_simulated_time_seconds",
        "sim_engine_rate_limited_total",
        "sim_engine_circuit_breaker_state",
    ):
        assert needed in used
    assert any("histogram_quantile(0.99" in q for q in queries)


# -- the command line ----------------------------------------------------------------------


def test_cli_metrics_port_option() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["run", "--help"])
    assert "--metrics-port PORT" in result.output
    result = runner.invoke(cli, ["run", "--metrics-port", "70000"])
    assert result.exit_code == 2
    assert "--metrics-port" in result.output


def test_run_serves_metrics_while_running(tmp_path: Path) -> None:
    port = find_free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    args = ["--target", "inprocess", "--speed", "3600", "--duration", "3h", "--users", "30"]
    more = ["--metrics-port", str(port), "--out", str(tmp_path / "out")]
    proc = sim_engine_popen("run", *args, "-q", *more)
    try:
        deadline = time.monotonic() + 15
        first = None
        while first is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the metrics endpoint never answered"
            try:
                first = scrape(url, timeout=2)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        time.sleep(1.3)  # more than one refresh (1 wall s) = more than an hour simulated
        second = scrape(url, timeout=2)
        out, err = proc.communicate(timeout=30)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "Done:" in out

    assert "# TYPE sim_engine_requests_total counter" in second
    assert "# TYPE sim_engine_request_duration_seconds histogram" in second
    assert re.search(
        r'^sim_engine_requests_total\{action="[a-z_]+",endpoint="[A-Z]+ /[^"]*",status="\d+"\} '
        r"\d+\.0$",
        second,
        re.MULTILINE,
    )
    t1 = value(first, "sim_engine_simulated_time_seconds")
    t2 = value(second, "sim_engine_simulated_time_seconds")
    assert t1 is not None and t2 is not None and t2 > t1 + 1800
    assert value(second, "sim_engine_speed_ratio") == 3600
    assert value(second, "sim_engine_known_users") == pytest.approx(30, abs=5)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    total = sum(v for (name, _), v in samples(second).items() if name == "sim_engine_actions_total")
    assert 0 < total <= metrics["summary"]["actions"]
    # the server is gone with the run
    with pytest.raises(urllib.error.URLError):
        scrape(url, timeout=1)
