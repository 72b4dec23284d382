"""Backfill, then live (issue 15, must-have 3): ``run --backfill 2d`` plays the last two
days at max speed -- the demo API stores the simulated times it is sent -- then goes on
at 1x from now with the same users."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import (
    ListSink,
    always_ok_api,
    assert_one_line_error,
    busy_scenario_file,
    read_jsonl,
    sim_engine,
    sim_engine_popen,
    terminate,
    utc_scenario,
)
from sim_engine.engine.simulation import Simulation
from sim_engine.model.records import ActionRecord
from sim_engine.observe.control import CONTROL_FILE, send_command
from sim_engine.runs.backfill import CatchUpClock
from test_clock import FakeWall, run_virtual

DAY_S = 86400.0


async def test_catch_up_clock_never_passes_the_wall_clock() -> None:
    """At max it jumps to due events in the past; the first one after the wall clock
    stops the jump at the wall clock, turns the clock to 1x and returns before that
    event (the engine waits for it in wall time, where stop and pause wake it)."""
    epoch = 1_000_000.0  # the injected wall clock (epoch seconds), standing still
    wall = FakeWall()
    clock = CatchUpClock(epoch - 5 * DAY_S, epoch=lambda: epoch, wall=wall)
    assert clock.paused and clock.now() == epoch - 5 * DAY_S  # created paused
    clock.resume()
    await clock.sleep_until(epoch - 60.0)
    assert clock.jumps and clock.now() == epoch - 60.0 and clock.live_at is None
    await clock.sleep_until(epoch + 0.2)  # an event 0.2 s after "now": not jumped to
    assert clock.live_at == epoch and clock.speed == 1.0 and not clock.jumps
    assert clock.now() == epoch and clock.wall_seconds_until(epoch + 0.2) == pytest.approx(0.2)
    wall.advance(0.2)  # one simulated second per wall second from here
    assert clock.now() == pytest.approx(epoch + 0.2)
    await clock.sleep_until(epoch + 0.2)  # reached: returns at once
    assert clock.live_at == epoch  # goes live once


# 02:00 UTC: the default routine's users (all in UTC here) sleep until the morning.
NIGHT = datetime(2024, 5, 16, 2, 0, tzinfo=timezone.utc).timestamp()


def _live_then(
    command: Callable[[Simulation], None],
) -> tuple[float, float, CatchUpClock, ListSink]:
    """Backfill 6 simulated hours up to NIGHT on a virtual-time loop (the wall clock is
    the loop's), apply ``command`` to the run once live, stop it a second later.
    Returns the loop seconds from the stop to the end of the run, the simulated time
    at the stop, the clock and the records."""
    sink = ListSink()

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[float, float, CatchUpClock]:
        began = loop.time()
        clock = CatchUpClock(
            NIGHT - 6 * 3600, epoch=lambda: NIGHT + loop.time() - began, wall=loop.time
        )
        sim = Simulation(utc_scenario(20, seed=11), always_ok_api(), clock, [sink])
        clock.resume()
        run = asyncio.ensure_future(sim.run())
        while clock.live_at is None:
            await asyncio.sleep(0.001)
        command(sim)
        await asyncio.sleep(1.0)
        stopped_at, sim_stop = loop.time(), clock.now()
        sim.stop()
        await asyncio.wait({run}, timeout=DAY_S)  # the loop's time: a hang fails, fast
        took = loop.time() - stopped_at
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        return took, sim_stop, clock

    took, sim_stop, clock = run_virtual(main)
    return took, sim_stop, clock, sink


@pytest.mark.parametrize("command", [lambda sim: None, Simulation.pause], ids=["live", "paused"])
def test_stop_right_after_going_live_ends_the_run_at_once(
    command: Callable[[Simulation], None],
) -> None:
    """Once live, the next due event is hours away (everyone asleep): a stop (or a pause
    then a stop) ends the run at once. Before the fix the engine sat in the clock's wait
    for that event: the run ended hours (of the loop's time) after the stop."""
    took, sim_stop, clock, sink = _live_then(command)
    assert took < 0.05
    assert clock.live_at is not None and NIGHT <= clock.live_at < NIGHT + 1.0
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    assert len(actions) > 50 and min(r.sim_ts for r in actions) < NIGHT - 3600  # backfilled
    assert max(r.sim_ts for r in actions) <= sim_stop  # nothing dated after the stop


def test_backfill_then_live_with_the_same_users(tmp_path: Path) -> None:
    """Two days backfilled against the demo API, then 1x; ``ctl stop`` ends it at once
    (before the fix it could wait for the next due event: on the loaded machine the old
    code failed 4 runs in 5, proc.wait timing out after the stop; 10 in 10 pass)."""
    out = tmp_path / "run"
    began = time.time()
    busy = busy_scenario_file(tmp_path / "busy.yaml")  # nobody quits: all 40 stay known
    proc = sim_engine_popen(
        "run", "--target", "inprocess", "--users", "40", "--backfill", "2d",
        "--scenario", str(busy),
        "--duration", "forever", "--out", str(out), "--no-dashboard", "-q",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (out / CONTROL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        status = send_command(out, "status")
        while status["speed"] != 1:  # still backfilling at max
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
            status = send_command(out, "status")
        assert abs(status["sim_ts"] - time.time()) < 1.5  # simulated time is wall time now
        live = status
        time.sleep(2.0)
        later = send_command(out, "status")
        assert 1.0 < later["sim_ts"] - live["sim_ts"] < 3.5  # 1x: a wall second each
        assert later["known"] >= live["known"] >= 40  # the same population goes on
        send_command(out, "stop")
        proc.wait(timeout=60)
    finally:
        terminate(proc)
    assert proc.returncode == 0
    actions = read_jsonl(out / "actions.jsonl")
    times = sorted(a["sim_ts"] for a in actions)
    assert times[0] < began - 1.5 * DAY_S and times[-1] > began - 0.5 * DAY_S
    days = {int((t - (began - 2 * DAY_S)) // DAY_S) for t in times}
    assert {0, 1} <= days  # both backfilled days have activity
    # the demo API stored the simulated times: its posts are dated in the past
    with sqlite3.connect(out / "demo.db") as db:
        dates = [datetime.fromisoformat(r[0]).timestamp() for r in db.execute(
            "SELECT created_at FROM posts")]  # fmt: skip
    assert dates and min(dates) < began - DAY_S
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["go_live"] is True and run["speed"] == "max"


def test_backfill_refuses_a_start(tmp_path: Path) -> None:
    proc = sim_engine("run", "--backfill", "90d", "--start", "2026-01-01",
                      "--out", str(tmp_path / "x"), timeout=60)  # fmt: skip
    assert "--backfill sets the start" in assert_one_line_error(proc, 2)
