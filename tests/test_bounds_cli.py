"""Bad input through the real command line, with timeouts: one line, never a traceback.

The other half of ``test_fuzz_bounds.py`` (which fuzzes the values in-process): the
cases of issue 13's audit that gave tracebacks, run as ``python -m sim_engine`` in
subprocesses (exit 2, one line, no run directory left behind); a start refused
because the target is unreachable leaves no directory either, so the same ``--out``
is used again; ``demo-server --db`` pointing at a directory (or at a file that is no
database), and a port already taken, are one-line errors; numbers at their bounds
run to the end within a timeout (no hang).
"""

from __future__ import annotations

import re
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from helpers import sim_engine
from sim_engine.cli.main import cli
from sim_engine.model.bounds import MAX_SPEED, MAX_START, MIN_START


def _assert_clean_refusal(result: Result) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [
        ln for ln in result.stderr.splitlines() if re.match(r"(Error|sim-engine: error): ", ln)
    ]
    assert len(errors) == 1, result.stderr


# -- demo-server --------------------------------------------------------------------------------


def test_demo_server_db_must_be_an_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "text").write_text("not a database, just some text in a file\n" * 4)
    for db in (tmp_path / "dir", tmp_path / "text", tmp_path / "missing" / "x.db"):
        result = CliRunner().invoke(cli, ["demo-server", "--port", "0", "--db", str(db)])
        _assert_clean_refusal(result)
        assert "--db" in result.stderr


def test_demo_server_on_a_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = sim_engine("demo-server", "--port", str(port), timeout=30)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim-engine: error: cannot listen"), lines


# -- through the real command line, with timeouts -----------------------------------------------


def _scenario(directory: Path, name: str, clock: dict[str, Any]) -> str:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"clock": clock}), encoding="utf-8")
    return str(path)


def test_the_audits_tracebacks_are_one_line_errors_without_a_run_dir(tmp_path: Path) -> None:
    cases: list[list[str]] = [
        ["--speed", "inf"],
        ["--speed", "1e308"],
        ["--duration", "99999999999999w"],
        ["--start", "0001-01-01"],
        ["--start", "9999-12-31T12:00"],
        ["--scenario", _scenario(tmp_path, "speed", {"speed": 1e308})],
        ["--scenario", _scenario(tmp_path, "duration", {"duration": "99999999999999w"})],
        ["--scenario", _scenario(tmp_path, "start", {"start": "0001-01-01"})],
        ["--scenario", _scenario(tmp_path, "end", {"start": "9999-12-31T12:00:00"})],
    ]
    jobs = [
        ("run", "--target", "inprocess", *c, "--out", str(tmp_path / f"o{i}"))
        for i, c in enumerate(cases)
    ]
    jobs.append(("run", "--target", "http://[::1", "--out", str(tmp_path / "url")))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: sim_engine(*job, timeout=60), jobs))
    for job, proc in zip(jobs, results, strict=True):
        assert proc.returncode == 2, (job, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, job
        errors = [ln for ln in proc.stderr.splitlines() if "rror: " in ln]
        assert len(errors) == 1, (job, proc.stderr)
        assert not Path(job[-1]).exists(), job  # nothing to resume or to refuse later


def test_a_refused_start_leaves_no_run_dir_and_the_out_is_reused(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        out = tmp_path / "run"
        proc = sim_engine(
            "run",
            "--target",
            f"http://127.0.0.1:{port}",
            "--duration",
            "1h",
            "--out",
            str(out),
            "-q",
            timeout=60,
        )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    again = sim_engine(
        "run",
        "--target",
        "inprocess",
        "--speed",
        "max",
        "--duration",
        "1h",
        "--users",
        "3",
        "--out",
        str(out),
        "-q",
        timeout=60,
    )
    assert again.returncode == 0, again.stderr


def test_numbers_at_their_bounds_run_to_the_end(tmp_path: Path) -> None:
    last_start = (MAX_START - timedelta(hours=1)).isoformat()
    bounded = {
        "population": {"initial": 5, "max": 50, "signups_per_day": 100_000},
        "target": {"timeout_s": 86_400},
        "limits": {
            "read_timeout_s": 86_400,
            "connect_timeout_s": 86_400,
            "min_action_interval_s": 0,
        },
        "state": {"checkpoint_every_s": 86_400},
        "output": {"users_sample_s": 86_400},
    }
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(bounded), encoding="utf-8")
    jobs = [
        ("--start", MIN_START.isoformat(), "--speed", "max"),
        ("--start", last_start, "--speed", "max", "--scenario", str(path)),
        (
            "--start",
            datetime(2024, 5, 15, tzinfo=timezone.utc).isoformat(),
            "--speed",
            f"{MAX_SPEED:.0f}",
        ),
    ]
    runs = [
        (
            "run",
            "--target",
            "inprocess",
            "--duration",
            "1h",
            "-q",
            "--out",
            str(tmp_path / f"o{i}"),
            *j,
        )
        for i, j in enumerate(jobs)
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda job: sim_engine(*job, timeout=120), runs))
    for job, proc in zip(runs, results, strict=True):
        assert proc.returncode == 0, (job, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, job


def _smallest(path: Path) -> Path:
    """A scenario at the small end: the rarest personas, the finest sampling, and
    near-zero think times, timeouts, back-offs and checkpoint intervals."""
    base = yaml.safe_load(
        resources.files("sim_engine.model").joinpath("default_scenario.yaml").read_text("utf-8")
    )
    for i, persona in enumerate(base["personas"].values()):
        if i % 2:
            persona["sessions_per_day"] = 0.01
        else:
            session = persona.setdefault("session", {})
            session["think_time"] = {"median_s": 1e-9, "min_s": 1e-9, "sigma": 0}
            session["inactivity_timeout_s"] = 1e-9
    small = {
        "personas": base["personas"],
        "output": {"users_sample_s": 1},
        "target": {"timeout_s": 1e-9},
        "limits": {
            "min_action_interval_s": 0,
            "backoff": {"base_s": 1e-9, "max_s": 1e-9},
            "circuit_breaker": {"open_s": 1e-9},
        },
        "state": {"checkpoint_every_s": 1e-9},
    }
    path.write_text(yaml.safe_dump(small), encoding="utf-8")
    return path


def test_numbers_at_their_small_end_run_to_the_end(tmp_path: Path) -> None:
    scenario = _smallest(tmp_path / "small.yaml")
    args = ("run", "--scenario", str(scenario), "--target", "inprocess", "--speed", "max")
    proc = sim_engine(
        *args, "--duration", "2d", "--users", "20", "-q", "--out", str(tmp_path / "o"), timeout=120
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: every action timed out
    assert "Traceback" not in proc.stderr
