"""The built-in demo server dies with ``sim-engine run``, whatever kills the run.

``sim-engine run`` without a target starts ``python -m sim_engine.demo --db OUT/demo.db``
as a child. These tests kill the CLI process alone (not its process group, as a crash or
the OOM killer would) at random points, from the child's first instant (its start-up,
while the CLI waits for ``/health``) to well into the run, and check that no demo server
of that run (found by its command line, which holds the run's ``--db`` path) is left
behind within a bounded wait. Every server found alive after the wait is killed, so a
failing test leaves nothing running.

The kill points come from ``SIM_ORPHAN_SEED`` (default fixed), so a failure repeats;
``SIM_ORPHAN_KILLS`` sets the number of SIGKILLs (10).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from helpers import SIM_ENGINE
from sim_engine.demo.launcher import DemoServer

KILLS = int(os.environ.get("SIM_ORPHAN_KILLS", "10"))
TERMS = 3
SEED = int(os.environ.get("SIM_ORPHAN_SEED", "20240515"))
APPEAR_S = 30.0  # wall seconds for the CLI to launch its demo server
KILL_WITHIN_S = 3.0  # kill points: up to this long after the demo server appears
GONE_WITHIN_S = 10.0  # a demo server must be gone this long after its parent died


def _demo_servers(db: Path) -> list[psutil.Process]:
    """The live ``python -m sim_engine.demo`` processes serving ``db``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "sim_engine.demo" in cmdline and str(db) in cmdline:
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


def _start_run(out: Path) -> subprocess.Popen[bytes]:
    """``sim-engine run`` against the default target (the demo server), long enough."""
    cmd = [*SIM_ENGINE, "run", "--out", str(out), "--speed", "60", "--duration", "2d", "-q"]
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_for_server(proc: subprocess.Popen[bytes], db: Path) -> None:
    """Wait (at most APPEAR_S) until the run's demo server process exists."""
    deadline = time.monotonic() + APPEAR_S
    while not _demo_servers(db):
        assert proc.poll() is None, f"sim-engine run exited with {proc.returncode} early"
        assert time.monotonic() < deadline, f"no demo server for {db} after {APPEAR_S}s"
        time.sleep(0.02)


def _survivors(db: Path) -> list[int]:
    """Wait (at most GONE_WITHIN_S) for the run's demo servers to exit; kill and return
    the pids of those still alive after that."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while (alive := _demo_servers(db)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for server in alive:
        with contextlib.suppress(psutil.Error):
            server.kill()
    return [server.pid for server in alive]


def _kill_run(out: Path, sig: signal.Signals, after_s: float) -> list[int]:
    """Start a run, send ``sig`` to the CLI process ``after_s`` seconds after its demo
    server appeared, and return the pids of that run's demo servers left alive."""
    db = out / "demo.db"
    proc = _start_run(out)
    try:
        _wait_for_server(proc, db)
        time.sleep(after_s)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return _survivors(db)


def test_sigkill_of_the_run_at_random_points_leaves_no_demo_server(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    orphans: dict[str, list[int]] = {}
    for i in range(KILLS):
        # The first kills land in the server's start-up (the CLI waits for /health).
        after_s = rng.uniform(0.0, 0.3) if i < KILLS // 2 else rng.uniform(0.0, KILL_WITHIN_S)
        left = _kill_run(tmp_path / f"run{i}", signal.SIGKILL, after_s)
        if left:
            orphans[f"kill {i} at +{after_s:.2f}s"] = left
    assert not orphans, f"demo servers outlived their SIGKILLed run: {orphans}"


def test_sigterm_during_start_up_leaves_no_demo_server(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    orphans: dict[str, list[int]] = {}
    for i in range(TERMS):
        after_s = rng.uniform(0.0, 0.3)
        left = _kill_run(tmp_path / f"run{i}", signal.SIGTERM, after_s)
        if left:
            orphans[f"term {i} at +{after_s:.2f}s"] = left
    assert not orphans, f"demo servers outlived their SIGTERMed run: {orphans}"


# A launcher that starts the server from a worker thread, prints the server's pid and
# database, and sleeps: the parent-death signal is not armed then (it would fire when the
# thread ends), so only the watchdog can stop the server once this launcher is killed.
_THREAD_LAUNCHER = """
import sys, threading, time
from sim_engine.demo.launcher import DemoServer
srv = DemoServer(db_path=sys.argv[1])
worker = threading.Thread(target=srv.start)
worker.start()
worker.join()
print(srv.pid, flush=True)
time.sleep(60)
"""


def test_the_watchdog_stops_a_server_launched_from_a_worker_thread(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    launcher = subprocess.Popen(
        [sys.executable, "-c", _THREAD_LAUNCHER, str(db)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        assert launcher.stdout.readline().strip().isdigit()
        assert _demo_servers(db)
        launcher.kill()
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert _survivors(db) == []


def test_a_server_started_from_a_finished_thread_keeps_serving(tmp_path: Path) -> None:
    srv = DemoServer(db_path=str(tmp_path / "demo.db"))
    worker = threading.Thread(target=srv.start)
    worker.start()
    worker.join()
    try:
        time.sleep(0.5)  # a parent-death signal tied to the finished thread would fire here
        assert srv.running
        with urllib.request.urlopen(f"{srv.base_url}/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        srv.stop()
