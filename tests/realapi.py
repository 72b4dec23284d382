"""Helpers for the end-to-end tests on real third-party APIs (Kinto, Jupyter Server).

Each such test starts the API's own server (installed by ``scripts/test-deps.sh`` in a
virtualenv of its own under ``examples/NAME/.venv``; the tests install nothing) on a free
127.0.0.1 port, drives it with the real ``sim-engine`` command and reads the server's own
data back. A server that is missing or does not answer fails the test, never skips it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import installed_command, sim_engine, terminate

ROOT = Path(__file__).resolve().parents[1]

#: Wall seconds a server gets to answer its first request.
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Http:
    """A JSON client of one server: base URL and the headers every request carries."""

    base_url: str
    headers: Mapping[str, str]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        """Send one request; return (status, decoded JSON body or None, headers).

        4xx and 5xx answers are returned, not raised; a connection failure raises OSError.
        """
        status, raw, headers = self.raw(method, path, body)
        return status, (json.loads(raw) if raw.strip() else None), headers

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, dict[str, str]]:
        """As :meth:`call`, with the answer's body as bytes (a YAML document...)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        req = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status, got = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            raw, status, got = err.read(), err.code, dict(err.headers)
        return status, raw, got

    def get(self, path: str) -> Any:
        """GET ``path``; fail the test unless it answers 200."""
        status, body, _ = self.call("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP Basic auth."""
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def start_server(
    argv: Sequence[str],
    *,
    cwd: Path,
    log_path: Path,
    ready: Callable[[], bool],
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process and wait until ``ready()`` is true.

    Args:
        argv: the command line; its output goes to ``log_path``.
        ready: probe called every 0.1 s; OSError counts as "not yet".
    Raises:
        pytest.fail.Exception: the process exited or did not become ready within
            ``START_TIMEOUT_S`` wall seconds (the process is stopped first).
    """
    if not Path(argv[0]).exists():
        pytest.fail(f"{argv[0]} is missing: run `bash scripts/test-deps.sh` (.ci/run does)")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if ready():
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            terminate(proc)
            tail = log_path.read_text("utf-8", errors="replace")[-2000:]
            pytest.fail(f"{Path(argv[0]).name} did not start (exit {proc.poll()}): {tail}")
        time.sleep(0.1)


def run_day(scenario: Path, base_url: str, out: Path, *extra: str) -> None:
    """``sim-engine run`` one simulated day at ``--speed max`` with seed 7; fail unless exit 0."""
    argv = ["run", "--scenario", str(scenario), "--target", base_url, "--speed", "max"]
    argv += ["--duration", "1d", "--seed", "7", "--out", str(out), "-q", *extra]
    proc = sim_engine(*argv, timeout=180, command=installed_command(), cwd=ROOT)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
    )


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; none for a missing file, blank lines skipped."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def ok(actions: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The successful records of action ``name``."""
    return [r for r in actions if r["action"] == name and r["ok"]]


def success_rate(actions: list[dict[str, Any]]) -> float:
    """Share of the run's records that succeeded (deliberate errors and skips left out)."""
    counted = [r for r in actions if not r.get("skipped") and not r.get("intended")]
    assert counted, "the run recorded no action"
    return sum(1 for r in counted if r["ok"]) / len(counted)


def failures(actions: list[dict[str, Any]]) -> Counter[tuple[str, Any]]:
    """(action, status) -> how many failed: what to print when a rate is too low."""
    return Counter((r["action"], r.get("status")) for r in actions if not r["ok"])
