"""Tests of the ``sim-engine`` command line: exit codes, one-line errors, outputs, Ctrl-C.

Exit codes and stderr are checked on the real thing (``python -m sim_engine`` in a
subprocess); Click's ``CliRunner`` is used where only the output matters.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import (
    BUSY_START,
    assert_one_line_error,
    busy_scenario_file,
    read_jsonl,
    reap,
    sim_engine,
    sim_engine_popen,
    terminate,
)
from sim_engine import __version__
from sim_engine.cli.main import cli
from sim_engine.demo.launcher import find_free_port


def fast_run(out: Path, duration: str, users: int, *more: str) -> list[str]:
    """``run`` arguments: in-process at speed max from BUSY_START for ``duration`` with
    ``users``, writing to ``out``; then ``more``."""
    return [
        "run",
        *("--target", "inprocess", "--speed", "max"),
        *("--duration", duration, "--users", str(users), "--start", BUSY_START),
        *("--out", str(out), *more),
    ]


@pytest.fixture
def bad_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("population:\n  initial: many\n", encoding="utf-8")
    return path


# -- help / version ----------------------------------------------------------------------


def test_python_m_help() -> None:
    proc = sim_engine("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "validate", "demo-server"):
        assert command in proc.stdout
    run_help = sim_engine("run", "--help")
    assert run_help.returncode == 0
    for option in (
        "--scenario",
        "--target",
        "--speed",
        "--duration",
        "--users",
        "--seed",
        "--out",
        "--start",
        "--quiet",
        "--verbose",
    ):
        assert option in run_help.stdout


def test_version() -> None:
    proc = sim_engine("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"sim-engine, version {__version__}"


# -- validate ----------------------------------------------------------------------------


def test_validate_good_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: small\npopulation:\n  initial: 5\n", encoding="utf-8")
    proc = sim_engine("validate", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "ok" in proc.stdout
    assert "small" in proc.stdout
    assert "lurker" in proc.stdout


def test_validate_bad_file(bad_scenario: Path) -> None:
    line = assert_one_line_error(sim_engine("validate", str(bad_scenario)), 2)
    assert "population.initial" in line
    assert str(bad_scenario) in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("population:\n  inital: 5\n", "population.inital"),
        ("population:\n  timezones: {Nowhere/City: 1}\n", "population.timezones"),
        (
            "personas:\n  p:\n    share: 1\n    actions:\n"
            "      working: {browse_feed: 1, dance: 1}\n      relaxing: {browse_feed: 1}\n",
            "personas.p.actions.working",
        ),
        ("name: x\nclock: [1, 2\n", "line "),
        ("- a list\n", "mapping"),
    ],
)
def test_validate_bad_files_in_process(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert expected in lines[0]


def test_validate_missing_file(tmp_path: Path) -> None:
    line = assert_one_line_error(sim_engine("validate", str(tmp_path / "nope.yaml")), 2)
    assert "cannot read" in line


# -- run: bad input ----------------------------------------------------------------------


def test_run_with_malformed_scenario(bad_scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = sim_engine("run", "--scenario", str(bad_scenario), "--out", str(out))
    line = assert_one_line_error(proc, 2)
    assert "population.initial" in line
    assert not out.exists()  # nothing ran


def test_run_with_unreachable_target(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{find_free_port()}"  # nothing listens there
    proc = sim_engine("run", "--target", url, "--duration", "1h", "--out", str(tmp_path / "o"))
    assert proc.returncode != 0
    line = assert_one_line_error(proc, 1)
    assert url in line
    assert "reach" in line


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--speed", "fast"),
        ("--speed", "0"),
        ("--speed", "-5"),
        ("--duration", "2y"),
        ("--duration", "soon"),
        ("--users", "-1"),
        ("--start", "yesterday"),
    ],
)
def test_run_bad_option_exits_2(option: str, value: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", option, value, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_run_bad_speed_and_duration_subprocess(tmp_path: Path) -> None:
    for args in (["--speed", "fast"], ["--duration", "2y"]):
        proc = sim_engine("run", *args, "--out", str(tmp_path / "o"))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert args[0] in proc.stderr


# -- run: in-process ---------------------------------------------------------------------


def test_run_inprocess(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = sim_engine(
        "run",
        *("--target", "inprocess", "--speed", "max", "--duration", "6h", "--users", "30"),
        *("--seed", "3", "--out", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("actions.jsonl", "users.jsonl", "metrics.json", "scenario.json"):
        assert (out / name).is_file(), name
    actions = read_jsonl(out / "actions.jsonl")
    assert actions
    for record in actions:
        dt = datetime.fromisoformat(str(record["sim_time"]))
        assert dt.tzinfo is not None
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["target"] == "inprocess"
    assert metrics["run"]["seed"] == 3
    assert metrics["run"]["speed"] == "max"
    assert metrics["run"]["interrupted"] is False
    assert metrics["run"]["simulated_seconds"] == pytest.approx(6 * 3600, abs=1)
    assert metrics["summary"]["actions"] == len(actions)
    scenario = json.loads((out / "scenario.json").read_text())
    assert scenario["population"]["initial"] == 30
    assert scenario["seed"] == 3
    # header, then hourly progress lines (speed max is not per-action), then the summary
    assert proc.stdout.startswith(f"sim-engine {__version__}: 30 users, speed max")
    assert "Done: 6.0 simulated hours" in proc.stdout


def test_run_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    def run(out: Path) -> list[tuple[object, ...]]:
        result = CliRunner().invoke(cli, fast_run(out, "3h", 15, "--seed", "5", "-q"))
        assert result.exit_code == 0, result.output
        return [
            (a["sim_time"], a["user_id"], a["action"], a["status"], a["post_id"])
            for a in read_jsonl(out / "actions.jsonl")
        ]

    first = run(tmp_path / "a")
    assert first
    assert first == run(tmp_path / "b")


def test_start_option_sets_simulated_time(tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, fast_run(out, "2h", 20, "-q"))
    assert result.exit_code == 0, result.output
    start = datetime.fromisoformat(BUSY_START.replace("Z", "+00:00")).timestamp()
    actions = read_jsonl(out / "actions.jsonl")
    assert actions
    for record in actions:
        t = datetime.fromisoformat(str(record["sim_time"])).timestamp()
        assert start <= t < start + 2 * 3600
    metrics = json.loads((out / "metrics.json").read_text())
    assert datetime.fromisoformat(metrics["start"]).timestamp() == start


def test_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    proc = sim_engine(*fast_run(tmp_path / "o", "3h", 20, "--quiet"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("Done: 3.0 simulated hours")
    assert lines[-1].startswith("  outputs: ")
    assert all(line.startswith(("Done:", "  ")) for line in lines), lines
    assert len(lines) <= 6
    assert "sim-engine 0.1.0" not in proc.stdout  # no header
    assert "[2024-" not in proc.stdout  # no hourly lines
    assert proc.stderr == ""


def test_verbose_prints_one_line_per_action(tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, fast_run(out, "2h", 20, "--verbose"))
    assert result.exit_code == 0, result.output
    actions = read_jsonl(out / "actions.jsonl")
    assert actions
    stdout = result.stdout
    # each action's simulated time starts a console line
    action_lines = [
        line for line in stdout.splitlines() if line.startswith("2024-") and " + " not in line
    ]
    assert len(action_lines) == len(actions)
    assert sum("sign-up" in line for line in action_lines) == sum(
        a["action"] == "sign_up" for a in actions
    )
    assert "browse" in stdout
    assert "joined" in stdout


def test_max_speed_without_verbose_prints_hourly_lines(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, fast_run(tmp_path / "o", "3h", 20))
    assert result.exit_code == 0, result.output
    hourly = [line for line in result.stdout.splitlines() if line.startswith("[2024-05-15 ")]
    assert 1 <= len(hourly) <= 4
    assert not any(line.startswith("2024-") for line in result.stdout.splitlines())


def test_unwritable_output_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = sim_engine(
        "run",
        *("--target", "inprocess", "--speed", "max", "--duration", "1h", "--users", "2"),
        *("--out", str(blocker / "sub")),
    )
    line = assert_one_line_error(proc, 1)
    assert "cannot write output" in line


# -- Ctrl-C --------------------------------------------------------------------------------


def test_sigint_stops_gracefully_and_writes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "o"
    busy = busy_scenario_file(tmp_path / "busy.yaml")  # someone logs in within seconds
    proc = sim_engine_popen(
        "run",
        *("--target", "inprocess", "--speed", "60", "--duration", "1d", "--users", "20"),
        *("--start", BUSY_START, "--out", str(out), "--scenario", str(busy)),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        # wait until the run is under way (at speed 60 every action is printed)
        started = time.monotonic()
        seen: list[str] = []
        while time.monotonic() - started < 15:
            try:
                seen.append(lines.get(timeout=0.2))
            except queue.Empty:
                continue
            if any(" log-in " in line for line in seen):
                break
        assert any(" log-in " in line for line in seen), seen
        time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        assert time.monotonic() - sent < 5
    finally:
        reap(proc)
    reader.join(timeout=5)
    while not lines.empty():
        seen.append(lines.get())
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert any(line.startswith("Interrupted:") for line in seen), seen

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["interrupted"] is True
    # a simulated day at speed 60 would take 24 wall minutes; this one stopped early
    assert 0 < metrics["run"]["simulated_seconds"] < 3600
    actions = read_jsonl(out / "actions.jsonl")
    assert actions
    for record in actions:
        assert {"sim_time", "user_id", "persona", "state", "action", "status"} <= set(record)
    assert metrics["summary"]["actions"] == len(actions)
    users = read_jsonl(out / "users.jsonl")
    assert users and all(user["kind"] == "user" for user in users)


# -- demo-server --------------------------------------------------------------------------


def test_demo_server_command() -> None:
    port = find_free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim_engine", "demo-server", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert body == {"status": "ok"}
    finally:
        terminate(proc)
        if proc.stderr is not None:
            proc.stderr.close()
