"""Always-on runs (issue 15): ``--duration forever`` and one truth for the counts.

A real ``sim-engine run`` subprocess runs without an end, is paused through ``ctl``,
and then ``ctl status``, Prometheus, the summary line and ``metrics.json`` must report
the same users (known, joined, active) and the same simulated span.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from helpers import (
    busy_scenario_file,
    checkpoint_s,
    interrupt_after_checkpoint,
    sim_engine,
    sim_engine_popen,
    terminate,
)
from sim_engine.demo.launcher import find_free_port
from sim_engine.observe.control import CONTROL_FILE, ControlError, send_command
from sim_engine.observe.health import HealthState
from test_prometheus import scrape, value

DAY_S = 86400.0


def _wait_for(path: Path, proc: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET (``seconds_since_refresh`` left out: it varies)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            code, body = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        code, body = exc.code, json.loads(exc.read())
    body.pop("seconds_since_refresh", None)
    return code, body


def test_health_goes_stale_when_the_loop_stops_beating() -> None:
    clock = [100.0]
    health = HealthState(stale_s=10.0, clock=lambda: clock[0])
    assert health.readiness() == (503, {"ready": False, "state": "starting"})
    health.beat("running")
    clock[0] += 9.9
    assert health.health()[0] == 200 and health.readiness()[0] == 200
    clock[0] += 0.2
    assert health.health() == (503, {"status": "stale", "seconds_since_refresh": 10.1})
    health.beat("stopping")
    assert health.health()[0] == 200 and health.readiness()[0] == 503


def _settled_status(out: Path) -> dict[str, Any]:
    """The status once the paused run has no action in flight and its counts stand still."""
    deadline = time.monotonic() + 30
    last: dict[str, Any] | None = None
    while True:
        status = send_command(out, "status")
        if last is not None and status["in_flight"] == 0 and status == last:
            return status
        assert time.monotonic() < deadline, status
        last = status
        time.sleep(0.5)


def _stop(out: Path, proc: Any) -> tuple[str, dict[str, Any]]:
    """``ctl stop`` the run, check it exits 0; its stdout and ``metrics.json``."""
    send_command(out, "stop")
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout
    metrics: dict[str, Any] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return stdout, metrics


def test_forever_run_and_one_truth_for_counts(tmp_path: Path) -> None:
    out, port = tmp_path / "run", find_free_port()
    busy = busy_scenario_file(tmp_path / "busy.yaml")  # nobody quits: all 40 stay known
    proc = sim_engine_popen(
        "run", "--users", "40", "--speed", "86400", "--duration", "forever",
        "--scenario", str(busy),
        "--start", "2026-03-02T00:00:00+00:00", "--out", str(out),
        "--metrics-port", str(port), "--no-dashboard", "-q",
    )  # fmt: skip
    try:
        _wait_for(out / CONTROL_FILE, proc)
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
        assert _get(f"http://127.0.0.1:{port}/readyz") == (200, {"ready": True, "state": "running"})
        time.sleep(3.0)  # past the scenario's default of one day (a day per wall second)
        send_command(out, "pause")
        status = _settled_status(out)
        assert status["state"] == "paused" and status["end"] is None
        assert status["simulated_seconds"] > 1.5 * DAY_S  # forever: not stopped at 1d
        assert status["known"] == status["users"] >= 40
        assert 0 < status["joined"] <= status["known"]
        time.sleep(2.5)  # the exporter refreshes its gauges every wall second
        text = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(text, "sim_engine_known_users") == status["known"]
        assert value(text, "sim_engine_joined_users") == status["joined"]
        assert value(text, "sim_engine_active_sessions") == status["active"]
        start = value(text, "sim_engine_simulated_start_time_seconds")
        now = value(text, "sim_engine_simulated_time_seconds")
        assert start is not None and now is not None
        assert abs((now - start) - status["simulated_seconds"]) < 0.01
        assert _get(f"http://127.0.0.1:{port}/readyz") == (200, {"ready": True, "state": "paused"})
        stdout, metrics = _stop(out, proc)
    finally:
        terminate(proc)
    counts = {k: status[k] for k in ("known", "joined", "active")}
    assert metrics["users"] == counts
    assert metrics["summary"]["users"] == status["joined"]
    assert abs(metrics["run"]["simulated_seconds"] - status["simulated_seconds"]) < 0.01
    assert metrics["run"]["interrupted"]  # ctl stop
    line = f"users {counts['joined']} joined, {counts['known']} known, {counts['active']} active"
    assert line in stdout, stdout
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["end_s"] is None


def test_duration_words(tmp_path: Path) -> None:
    """``forever`` is a duration (any case); other words are a one-line error, exit 2."""
    from helpers import sim_engine

    bad = sim_engine("run", "--duration", "always", "--out", str(tmp_path / "x"), timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "Invalid value for '--duration': not a duration: 'always'" in bad.stderr
    assert "or forever to run until stopped" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_resume_if_exists_starts_resumes_and_respects_the_end(tmp_path: Path) -> None:
    """A service restarting ``run --out DIR --resume-if-exists``: the first start makes
    the run, a restart after a crash resumes it (``--users`` of the unit is ignored: it
    shaped the run when it started), a restart after the end does nothing."""
    out = tmp_path / "run"
    args = ["--target", "inprocess", "--users", "20", "--speed", "43200", "--duration", "2d",
            "--start", "2026-03-02", "--out", str(out), "-q", "--resume-if-exists"]  # fmt: skip
    code, stderr = interrupt_after_checkpoint(args, out, settle_s=0.5)
    assert code == 0, stderr
    again = sim_engine("run", *args[:-2], "--users", "99", "-q", "--resume-if-exists",
                       timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "holds an unfinished run: resuming it" in again.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["run"]["resumed"] and not metrics["run"]["interrupted"]
    assert abs(metrics["run"]["simulated_seconds"] - 2 * DAY_S) < 1
    assert metrics["users"]["known"] < 99
    before = (out / "metrics.json").stat().st_mtime_ns
    done = sim_engine("run", *args, timeout=120)
    assert done.returncode == 0 and "holds a finished run; nothing to resume" in done.stdout
    assert (out / "metrics.json").stat().st_mtime_ns == before


def test_resume_if_exists_keeps_the_kill_switch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--target", "inprocess", "--users", "20", "--speed", "43200", "--duration", "2d",
            "--out", str(out), "-q", "--resume-if-exists"]  # fmt: skip
    code, stderr = interrupt_after_checkpoint(args, out, settle_s=0.2)
    assert code == 0, stderr
    assert sim_engine("kill", str(out), timeout=60).returncode == 0
    kill_files = list(out.glob("*KILL*")) + list(out.glob("*kill*"))
    proc = sim_engine("run", *args, timeout=120)
    assert proc.returncode == 0 and "kill switch" in proc.stdout, proc.stdout + proc.stderr
    assert kill_files and all(p.exists() for p in kill_files)  # still there: still stopped
    assert sim_engine("run", "--resume-if-exists", timeout=60).returncode == 2  # needs --out


def test_a_resumed_run_counts_its_span_from_where_it_began(tmp_path: Path) -> None:
    """After ``--resume``, ``ctl status``, Prometheus and ``metrics.json`` give one
    simulated span, from the run's first start (the resumed process's status and start
    gauge counted from the resume point: a span shorter than metrics.json's by the
    simulated time before the interruption)."""
    out, port = tmp_path / "run", find_free_port()
    start = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    args = ["--target", "inprocess", "--users", "20", "--speed", "43200", "--duration",
            "forever", "--start", "2026-03-02T00:00:00+00:00", "--out", str(out),
            "--no-dashboard", "-q"]  # fmt: skip
    code, stderr = interrupt_after_checkpoint(args, out, settle_s=0.5)
    assert code == 0, stderr
    before = checkpoint_s(out / "state.db")
    assert before is not None and before - start > 600  # the first process's share
    proc = sim_engine_popen("run", "--resume", str(out), "--metrics-port", str(port),
                            "--no-dashboard", "-q")  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _ready(port) != 200 or not _controllable(out):  # control.json comes after
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        send_command(out, "pause")
        status = _settled_status(out)
        assert status["start"] == "2026-03-02T00:00:00+00:00"
        assert status["simulated_seconds"] >= before - start
        time.sleep(2.5)  # the exporter refreshes its gauges every wall second
        text = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(text, "sim_engine_simulated_start_time_seconds") == start
        now = value(text, "sim_engine_simulated_time_seconds")
        assert now is not None and abs(now - start - status["simulated_seconds"]) < 0.01
        _, metrics = _stop(out, proc)
    finally:
        terminate(proc)
    assert metrics["run"]["resumed"] and metrics["start"].startswith("2026-03-02T00:00:00")
    assert abs(metrics["run"]["simulated_seconds"] - status["simulated_seconds"]) < 0.01


def _ready(port: int) -> int:
    """``/readyz``'s status code (0 while nothing listens)."""
    try:
        return _get(f"http://127.0.0.1:{port}/readyz")[0]
    except OSError:
        return 0


def _controllable(out: Path) -> bool:
    """True once the resumed process answers ``ctl status`` (its own control file)."""
    try:
        send_command(out, "status")
    except ControlError:
        return False
    return True
