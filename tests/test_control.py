"""Tests of run control: the control endpoint (``observe.control``) and ``sim-engine ctl``.

In-process tests run a real :class:`Simulation` on a :class:`ScaledClock` against a
:class:`MockTarget` with a :class:`ControlServer`; the client (:func:`send_command`,
blocking urllib) runs in a thread so the event loop can answer. The CLI test drives
a real ``python -m sim_engine run`` subprocess from another "shell".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import (
    ListSink,
    always_ok_api,
    read_jsonl,
    reap,
    sim_engine,
    sim_engine_popen,
    utc_scenario,
)
from sim_engine import ActionRecord, Simulation
from sim_engine.cli.main import cli
from sim_engine.engine.clock import ScaledClock
from sim_engine.model.scenario import default_scenario
from sim_engine.observe.control import (
    CONTROL_FILE,
    ControlError,
    ControlServer,
    format_speed,
    format_status,
    send_command,
)

# Wednesday 2024-05-15 18:00 UTC: most of a UTC population is awake and acting.
BUSY_START = datetime(2024, 5, 15, 18, 0, tzinfo=timezone.utc).timestamp()
STATUS_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00  speed (\d+x|max)  (running|paused|stopping)"
    r"  users \d+ known, \d+ joined, \d+ active  actions \d+$"
)


class Collect(ListSink):
    """A :class:`ListSink` that also counts its action records."""

    def actions(self) -> int:
        return sum(isinstance(r, ActionRecord) for r in self.records)


@dataclass
class Running:
    sim: Simulation
    server: ControlServer
    sink: Collect
    task: asyncio.Task[Any]
    run_dir: Path

    async def send(self, command: str, value: object = None) -> dict[str, Any]:
        return await asyncio.to_thread(send_command, self.run_dir, command, value)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    scenario = utc_scenario(200, seed=5)
    sink = Collect()
    clock = ScaledClock(BUSY_START, 3600.0)
    clock.pause()
    sim = Simulation(scenario, always_ok_api(), clock, [sink], duration_s=86400.0, secret="x")
    sim.populate()
    server = ControlServer(tmp_path)
    await server.start(sim)
    clock.resume()
    task = asyncio.ensure_future(sim.run())
    try:
        yield Running(sim, server, sink, task, tmp_path)
    finally:
        sim.stop()
        await asyncio.wait_for(task, 10)
        await server.stop()


def raw_request(url: str, token: str | None, method: str = "GET", body: Any = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read())


def http_error(url: str, token: str | None, method: str = "GET", body: Any = None) -> Any:
    with pytest.raises(urllib.error.HTTPError) as info:
        raw_request(url, token, method, body)
    return info.value.code, json.loads(info.value.read())


async def ahttp_error(url: str, token: str | None, method: str = "GET", body: Any = None) -> Any:
    """:func:`http_error` from a thread, so that the event loop can answer."""
    return await asyncio.to_thread(http_error, url, token, method, body)


# -- the endpoint -------------------------------------------------------------------------


async def test_status_and_control_file(running: Running) -> None:
    path = running.run_dir / CONTROL_FILE
    info = json.loads(path.read_text())
    assert set(info) == {"url", "token", "pid"}
    assert info["url"].startswith("http://127.0.0.1:")
    assert info["pid"] == os.getpid() and len(info["token"]) >= 40
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await asyncio.sleep(0.3)
    status = await running.send("status")
    assert status["state"] == "running"
    assert status["speed"] == 3600.0
    assert status["users"] == 200
    assert status["actions"] > 0
    assert status["in_flight"] >= 0 and status["failed"] == 0
    sim_time = datetime.fromisoformat(status["sim_time"])
    assert sim_time.utcoffset() is not None and sim_time.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert sim_time.timestamp() == pytest.approx(status["sim_ts"], abs=1)
    assert BUSY_START < status["sim_ts"] < BUSY_START + 3600
    assert status["start"] == "2024-05-15T18:00:00+00:00"
    assert status["end"] == "2024-05-16T18:00:00+00:00"
    assert STATUS_LINE.match(format_status(status)), format_status(status)


async def test_pause_stops_actions_and_time_then_resume(running: Running) -> None:
    await asyncio.sleep(0.2)
    paused = await running.send("pause")
    assert paused["state"] == "paused"
    assert running.sim.paused
    await asyncio.sleep(0.05)  # answers already on their way may still land
    before_actions = running.sink.actions()
    before = await running.send("status")
    await asyncio.sleep(0.5)
    after = await running.send("status")
    assert running.sink.actions() == before_actions  # a paused run takes no action
    assert after["sim_ts"] == before["sim_ts"] == paused["sim_ts"]  # its clock stands still
    assert after["actions"] == before["actions"]
    assert after["state"] == "paused"

    resumed = await running.send("resume")
    assert resumed["state"] == "running"
    await asyncio.sleep(0.3)
    later = await running.send("status")
    # 0.3 wall s at 3600x is ~18 simulated minutes, continuing from where it stood
    assert later["sim_ts"] - after["sim_ts"] == pytest.approx(0.3 * 3600, rel=0.5)
    assert running.sink.actions() > before_actions


async def test_speed_changes_show_in_status(running: Running) -> None:
    status = await running.send("speed", 60)
    assert status["speed"] == 60.0
    assert (await running.send("status"))["speed"] == 60.0
    assert running.sim.speed == 60.0
    t0 = (await running.send("status"))["sim_ts"]
    await asyncio.sleep(0.3)
    t1 = (await running.send("status"))["sim_ts"]
    assert t1 - t0 == pytest.approx(0.3 * 60, rel=0.6)  # minutes, no longer hours
    assert (await running.send("speed", "max"))["speed"] == "max"
    assert running.sim.speed is None
    assert (await running.send("speed", "7200x"))["speed"] == 7200.0


async def test_bad_speed_is_a_400_with_a_message(running: Running) -> None:
    info = json.loads((running.run_dir / CONTROL_FILE).read_text())
    url, token = info["url"] + "/speed", info["token"]
    for body in ({"speed": -3}, {"speed": 0}, {"speed": "fast"}, {"speed": True}, {}, b"not json"):
        code, answer = await ahttp_error(url, token, "POST", body)
        assert code == 400, body
        assert answer["error"], body
    assert "positive number" in (await ahttp_error(url, token, "POST", {"speed": -3}))[1]["error"]
    assert running.sim.speed == 3600.0
    with pytest.raises(ValueError):
        send_command(running.run_dir, "speed", "fast")  # the client checks before sending
    with pytest.raises(ValueError):
        send_command(running.run_dir, "rewind")


async def test_stop_ends_the_run(running: Running) -> None:
    status = await running.send("stop")
    assert status["state"] == "stopping"
    stats = await asyncio.wait_for(running.task, 5)
    assert stats.actions == running.sink.actions()
    assert running.sim.stopping
    # once stopping, pausing is refused (409) but status still answers
    with pytest.raises(ControlError, match="stopping"):
        await running.send("pause")
    assert (await running.send("status"))["state"] == "stopping"


async def test_requests_without_the_token_get_401(running: Running) -> None:
    info = json.loads((running.run_dir / CONTROL_FILE).read_text())
    url = info["url"]
    assert (await ahttp_error(url + "/status", None))[0] == 401
    assert (await ahttp_error(url + "/status", "wrong"))[0] == 401
    assert (await ahttp_error(url + "/status", info["token"][:-1]))[0] == 401
    assert (await ahttp_error(url + "/stop", "wrong", "POST", {}))[0] == 401
    assert not running.sim.stopping
    answer = await asyncio.to_thread(raw_request, url + "/status", info["token"])
    assert answer["state"] == "running"
    # a client holding a wrong token is told so in one line
    (running.run_dir / CONTROL_FILE).write_text(json.dumps({**info, "token": "nope"}))
    with pytest.raises(ControlError, match="refused the token"):
        await running.send("status")


async def test_stop_removes_the_control_file(tmp_path: Path) -> None:
    scenario = default_scenario().with_overrides(**{"population.initial": 5})
    sim = Simulation(scenario, always_ok_api(), ScaledClock(BUSY_START, 60.0), [], secret="x")
    server = ControlServer(tmp_path)
    await server.start(sim)
    assert (tmp_path / CONTROL_FILE).exists()
    await server.stop()
    assert not (tmp_path / CONTROL_FILE).exists()
    with pytest.raises(ControlError, match="no running simulation in"):
        await asyncio.to_thread(send_command, tmp_path, "status")


def test_missing_control_file_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError) as info:
        send_command(tmp_path, "status")
    assert str(info.value) == f"no running simulation in {tmp_path}"
    with pytest.raises(ControlError, match="no running simulation"):
        send_command(tmp_path / "missing", "pause")


def test_unreachable_server_is_a_control_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    info = {"url": f"http://127.0.0.1:{port}", "token": "t", "pid": os.getpid()}
    (tmp_path / CONTROL_FILE).write_text(json.dumps(info))
    with pytest.raises(ControlError, match="cannot reach the simulation") as exc:
        send_command(tmp_path, "status", timeout_s=2)
    assert "\n" not in str(exc.value)
    # left behind by a process that is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / CONTROL_FILE).write_text(json.dumps({**info, "pid": dead.pid}))
    with pytest.raises(ControlError, match=r"no running simulation .* left from process"):
        send_command(tmp_path, "status", timeout_s=2)
    (tmp_path / CONTROL_FILE).write_text("{not json")
    with pytest.raises(ControlError, match="cannot read"):
        send_command(tmp_path, "status")


def test_format_speed_and_status() -> None:
    assert format_speed(3600.0) == "3600x"
    assert format_speed(0.5) == "0.5x"
    assert format_speed("max") == "max"
    line = format_status(
        {
            "sim_time": "2026-03-02T14:05:00+00:00",
            "speed": 3600.0,
            "state": "running",
            "known": 120,
            "joined": 100,
            "active": 7,
            "actions": 5230,
        }
    )
    assert line == (
        "2026-03-02T14:05:00+00:00  speed 3600x  running  users 120 known, 100 joined, "
        "7 active  actions 5230"
    )


# -- the command line against a real run ---------------------------------------------------


def ctl(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ctl", *args])
    return result.exit_code, result.output


def test_ctl_command_against_a_real_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = sim_engine_popen(
        "run",
        *("--target", "inprocess", "--speed", "60", "--duration", "1d", "--users", "20"),
        *("--out", str(out), "--no-dashboard"),
    )
    try:
        deadline = time.monotonic() + 30
        while not (out / CONTROL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never opened its control endpoint"
            time.sleep(0.05)

        # the real command, in a subprocess like another shell
        status = sim_engine("ctl", str(out), "status", timeout=30)
        assert status.returncode == 0, status.stderr
        assert STATUS_LINE.match(status.stdout.strip()), status.stdout
        assert "speed 60x  running  users 20 known" in status.stdout

        code, output = ctl(str(out), "pause")
        assert code == 0 and output.startswith("pause: ") and "  paused  " in output, output
        first = ctl(str(out), "status")[1].split("  ")[0]
        time.sleep(0.3)
        assert ctl(str(out), "status")[1].split("  ")[0] == first  # time stands still

        code, output = ctl(str(out), "speed", "120")
        assert code == 0 and "speed 120x  paused" in output, output
        code, output = ctl(str(out), "resume")
        assert code == 0 and "speed 120x  running" in output, output

        # bad input: exit 2, one line, nothing sent
        for args in (("speed",), ("speed", "fast"), ("speed", "-1"), ("pause", "now"), ("jump",)):
            code, output = ctl(str(out), *args)
            assert code == 2, (args, output)

        code, output = ctl(str(out), "stop")
        assert code == 0 and "stopping" in output, output
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        reap(proc)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "Interrupted" in stdout or "Done" in stdout
    assert not (out / CONTROL_FILE).exists()
    code, output = ctl(str(out), "status")
    assert code == 1
    assert output.strip() == f"sim-engine: error: no running simulation in {out}"
    log = read_jsonl(out / "log.jsonl")
    events = [e["event"] for e in log]
    assert events[0] == "run started" and events[-1] == "run stopped"
    for command in ("control: pause", "control: resume", "control: speed", "control: stop"):
        assert command in events
