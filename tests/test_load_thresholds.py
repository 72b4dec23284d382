"""Thresholds (``--threshold``): grammar, verdicts over known records, live checks, exit codes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import BUSY_START, assert_one_line_error, sim_engine
from sim_engine.model.records import ActionRecord
from sim_engine.runs.load_stats import LoadStats, error_kind
from sim_engine.runs.load_thresholds import (
    ThresholdError,
    ThresholdGuard,
    evaluate,
    parse_threshold,
    parse_thresholds,
)


def record(
    latency_ms: float,
    *,
    ok: bool = True,
    status: int = 200,
    action: str = "browse_feed",
    endpoint: str | None = "GET /posts",
    error: str | None = None,
) -> ActionRecord:
    return ActionRecord(
        sim_time="2026-01-01T00:00:00+00:00",
        sim_ts=0.0,
        user_id=1,
        persona="p",
        state="relaxing",
        action=action,
        status=status,
        ok=ok,
        latency_ms=latency_ms,
        session_id=1,
        endpoint=endpoint,
        error=error,
    )


def stats_of(records: list[ActionRecord]) -> LoadStats:
    stats = LoadStats()
    for r in records:
        stats.emit(r)
    return stats


# -- grammar --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "metric", "op", "limit"),
    [
        ("p95<200ms", None, "p95", "<", 200.0),
        ("p95 < 200", None, "p95", "<", 200.0),
        ("p99.9<=1.5s", None, "p99.9", "<=", 1500.0),
        ("avg<50ms", None, "avg", "<", 50.0),
        ("error_rate<1%", None, "error_rate", "<", 0.01),
        ("error_rate<0.05", None, "error_rate", "<", 0.05),
        ("rps>500", None, "rps", ">", 500.0),
        ("requests>=10", None, "requests", ">=", 10.0),
        ("GET /posts/{id}:p99<500ms", "GET /posts/{id}", "p99", "<", 500.0),
        ("read_post: error_rate < 2%", "read_post", "error_rate", "<", 0.02),
    ],
)
def test_grammar(text: str, scope: str | None, metric: str, op: str, limit: float) -> None:
    t = parse_threshold(text)
    assert (t.scope, t.metric, t.op) == (scope, metric, op)
    assert t.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("p95", "expected [SCOPE:]METRIC OP VALUE"),
        ("p95=200ms", "expected [SCOPE:]METRIC OP VALUE"),
        ("p95<fast", "expected [SCOPE:]METRIC OP VALUE"),
        ("p95<20%", "takes ms or s"),
        ("p101<2ms", "percentile lies in"),
        ("error_rate<3ms", "takes % or a fraction"),
        ("rps>5%", "plain number"),
        ("latency<2ms", "unknown metric 'latency'"),
    ],
)
def test_bad_grammar(text: str, needle: str) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse_threshold(text)
    message = str(caught.value)
    assert needle in message and "\n" not in message
    assert repr(text) in message


# -- verdicts -------------------------------------------------------------------------------


def test_verdicts_over_known_latencies() -> None:
    # 1..100 ms, one each: p95 is 95 ms, p50 50 ms, max 100 ms, avg 50.5 ms
    stats = stats_of([record(float(ms)) for ms in range(1, 101)])
    rules = parse_thresholds(
        ["p95<96ms", "p95<94ms", "p50<=50.1ms", "max<100ms", "avg<51ms", "rps>=10", "rps>11"]
    )
    verdicts = evaluate(rules, stats, wall_s=10.0)
    assert [v.passed for v in verdicts] == [True, False, True, False, True, True, False]
    assert verdicts[1].value == pytest.approx(95.0, rel=0.01)
    assert verdicts[1].line() == "threshold failed: p95<94ms (p95 was 95.0 ms)"
    assert verdicts[5].line() == "threshold passed: rps>=10 (rps was 10.0/s)"


def test_error_rate_scopes_and_missing_scope() -> None:
    records = [record(5.0) for _ in range(90)]
    records += [record(5.0, ok=False, status=503, error="503") for _ in range(10)]
    records += [
        record(9.0, action="read_post", endpoint="GET /posts/{id}", ok=False, status=404)
        for _ in range(5)
    ]
    records += [record(1.0, action="sign_up", endpoint="POST /users", ok=False, status=500)]
    stats = stats_of(records)
    rules = parse_thresholds(
        [
            "error_rate<15%",  # 15 of 105 = 14.3%
            "error_rate<14%",
            "GET /posts:error_rate<=10%",  # the endpoint: 10 of 100
            "read_post:error_rate<50%",  # the action: 5 of 5
            "GET /nothing:p95<1s",
            "failures<=15",
            "GET /nothing:requests<1",
        ]
    )
    verdicts = evaluate(rules, stats, wall_s=1.0)
    assert [v.passed for v in verdicts] == [True, False, True, False, False, True, True]
    assert verdicts[0].value == pytest.approx(15 / 105)
    assert (
        verdicts[4].line() == "threshold failed: GET /nothing:p95<1s (no requests for GET /nothing)"
    )
    # sign-up is setup in a load test: not among the requests
    assert stats.total.requests == 105 and stats.setup["sign_up"].failed == 1


def test_error_kinds() -> None:
    refused = (
        "Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]"
    )
    assert error_kind(0, refused) == "refused"
    assert (
        error_kind(
            0, "Cannot connect to host nowhere.invalid:80 ssl:default [Name or service not known]"
        )
        == "dns"
    )
    assert (
        error_kind(0, "Cannot connect to host x:443 ssl:True [SSLCertVerificationError]") == "tls"
    )
    assert error_kind(0, "timeout") == "timeout"
    assert error_kind(0, "Server disconnected") == "disconnected"
    assert error_kind(0, "response too large: 9 bytes, limit 1") == "too_large"
    assert error_kind(200, "unexpected body: not JSON") == "garbage_body"
    assert error_kind(404, None) == "http_4xx"
    assert error_kind(503, None) == "http_5xx"
    stats = stats_of(
        [record(1.0, ok=False, status=0, error="timeout"), record(1.0, ok=False, status=502)]
    )
    assert dict(stats.total.errors) == {"timeout": 1, "http_5xx": 1}


def test_live_guard_skips_volume_and_stops_the_simulation() -> None:
    now = [100.0]
    stats = LoadStats()
    guard = ThresholdGuard(
        parse_thresholds(["rps>1000", "error_rate<10%"]), stats, abort=True, now=lambda: now[0]
    )

    class FakeSim:
        stopped = 0

        def stop(self) -> None:
            self.stopped += 1

    async def scenario() -> FakeSim:
        sim = FakeSim()
        guard.every_s = 0.01
        await guard.start(sim)  # type: ignore[arg-type]
        for _ in range(20):
            stats.emit(record(1.0))
        now[0] += 5.0
        await asyncio.sleep(0.05)
        assert sim.stopped == 0  # rps>1000 is not judged live; the error rate is 0
        for _ in range(5):
            stats.emit(record(1.0, ok=False, status=500))
        await asyncio.sleep(0.05)
        await guard.stop()
        return sim

    sim = asyncio.run(scenario())
    assert sim.stopped == 1
    assert guard.aborted is not None and guard.aborted.threshold.text == "error_rate<10%"
    final = guard.verdicts()
    assert [v.passed for v in final] == [False, False]
    assert final[0].value == pytest.approx(25 / 5.0)  # 25 requests over the injected 5 s


# -- the commands -----------------------------------------------------------------------------


def _load_args(out: Path, *extra: str) -> list[str]:
    return [
        "load", "--target", "inprocess", "--users", "4",
        "--min-request-count", "10", "--max-request-count", "10",
        "--delay-min", "0", "--delay-max", "2", "--seed", "3", "--out", str(out), *extra,
    ]  # fmt: skip


def test_load_exit_codes_follow_the_thresholds(tmp_path: Path) -> None:
    ok = sim_engine(*_load_args(tmp_path / "a", "--threshold", "requests>=40", "-q"))
    assert ok.returncode == 0, ok.stderr
    assert "threshold passed: requests>=40 (requests was 40)" in ok.stdout
    failed = sim_engine(
        *_load_args(tmp_path / "b", "--threshold", "p50<0.001ms", "--threshold", "rps>1e9", "-q")
    )
    assert failed.returncode == 2  # 1e9 is not a number in the grammar
    assert "--threshold 'rps>1e9'" in failed.stderr
    rules = ["--threshold", "p50<0.001ms", "--threshold", "requests<40"]
    rules += ["--threshold", "error_rate<100%"]
    failed = sim_engine(*_load_args(tmp_path / "c", *rules, "-q"))
    assert failed.returncode == 1, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in failed.stderr
    assert lines[0].startswith("sim-engine: threshold failed: p50<0.001ms (p50 was ")
    assert lines[1] == "sim-engine: threshold failed: requests<40 (requests was 40)"
    data = json.loads((tmp_path / "c" / "load.json").read_text("utf-8"))
    assert [t["passed"] for t in data["thresholds"]] == [False, False, True]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--threshold", "p95<<2"], "--threshold 'p95<<2': expected"),
        (["--abort-on-fail"], "--abort-on-fail needs at least one --threshold"),
    ],
)
def test_bad_thresholds_exit_2(args: list[str], needle: str) -> None:
    for command in (["load", "--target", "inprocess"], ["run", "--target", "inprocess"]):
        line = assert_one_line_error(sim_engine(*command, *args), 2)
        assert needle in line


def test_run_takes_thresholds_too(tmp_path: Path) -> None:
    args: list[Any] = [
        "run", "--target", "inprocess", "--speed", "max", "--duration", "6h", "--start", BUSY_START,
        "--users", "5", "--seed", "4", "-q", "--out",
    ]  # fmt: skip
    ok = sim_engine(*args, str(tmp_path / "a"), "--threshold", "requests>0")
    assert ok.returncode == 0, ok.stderr
    assert "threshold passed: requests>0" in ok.stdout
    failed = sim_engine(*args, str(tmp_path / "b"), "--threshold", "requests<1")
    assert failed.returncode == 1
    assert failed.stderr.startswith("sim-engine: threshold failed: requests<1 (requests was ")


def test_run_abort_on_fail_stops_the_run_early(tmp_path: Path) -> None:
    # a simulated day at 60x would take 24 wall minutes; the first live check stops it
    started = time.monotonic()
    proc = sim_engine(
        "run", "--target", "inprocess", "--speed", "60", "--duration", "1d",
        "--start", BUSY_START, "--users", "20", "--seed", "4", "-q",
        "--out", str(tmp_path / "run"), "--threshold", "p50<0.001ms", "--abort-on-fail",
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 90
    assert proc.stderr.startswith("sim-engine: threshold failed: p50<0.001ms (p50 was ")
    assert "Interrupted" in proc.stdout  # outputs still written, the summary printed
    assert (tmp_path / "run" / "metrics.json").exists()
