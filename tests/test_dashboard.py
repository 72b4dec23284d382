"""Tests of the live dashboard (``sim_engine.observe.dashboard``).

``render()`` is checked on plain snapshots printed to a ``StringIO`` console; the
counters through the sink interface; the snapshot against a real simulation.
``capture()`` renders a snapshot taken in the middle of a real run; with
``SIM_ENGINE_SCREENSHOT=docs/images/dashboard.svg`` the screenshot test writes it
there (the README's picture)::

    SIM_ENGINE_SCREENSHOT=docs/images/dashboard.svg pytest tests/test_dashboard.py -k screenshot
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import os
import sys
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from helpers import utc_scenario
from sim_engine import ActionRecord, ActionRequest, Outcome, Simulation, UserRecord
from sim_engine.engine.clock import FastForwardClock, ScaledClock
from sim_engine.model.records import LifecycleRecord
from sim_engine.model.scenario import Scenario, default_scenario
from sim_engine.observe.dashboard import (
    KEYS,
    Activity,
    Dashboard,
    DashboardSnapshot,
    fit,
    render,
    target_statistics,
)
from sim_engine.targets import MockTarget

MONDAY = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
BUSY = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc).timestamp()
DAY_S = 86400.0


def text_of(renderable: Any, width: int = 120) -> str:
    console = Console(file=StringIO(), width=width, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def snapshot(**changes: Any) -> DashboardSnapshot:
    values: dict[str, Any] = {
        "sim_now": MONDAY + 14 * 3600 + 5 * 60,
        "start_s": MONDAY,
        "end_s": MONDAY + DAY_S,
        "speed": 3600.0,
        "state": "running",
        "title": "sim-engine · default · seed 7",
        "wall_elapsed_s": 83.0,
        "users": 1200,
        "signed_up": 1180,
        "actions": 5230,
        "failed": 31,
        "in_flight": 3,
        "lifecycle": {"ACTIVE": 800, "NEW": 200, "CASUAL": 150, "DORMANT": 50},
        "persona": {"lurker": 500, "chatterbox": 300, "night_owl": 200, "content_curator": 200},
        "routine": {"working": 600, "relaxing": 300, "sleeping": 300},
        "in_session": 42,
        "actions_per_s": 43.5,
        "actions_per_sim_hour": 1234.0,
        "effective_speed": 3600.0,
        "eta_wall_s": 15.0,
        "success_rate": 0.9941,
        "latency_ms": {"p50": 3.1, "p95": 8.2, "p99": 15.0},
        "rate_limited": 17,
        "retries": 9,
        "breakers": {"GET /posts/{id}": "open", "POST /posts": "closed"},
        "recent": (
            Activity("14:04:59 +01", 12, "lurker", "browse", 200, 3.1, True),
            Activity("09:05:00 -05", 13, "chatterbox", "post 17", 500, 12.2, False, "HTTP 500"),
            Activity("14:05:01 +00", 14, "night_owl", "joined"),
        ),
        "keys": True,
    }
    values.update(changes)
    return DashboardSnapshot(**values)


# -- render -------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [120, 80])
def test_render_shows_every_section_and_figure(width: int) -> None:
    out = text_of(render(snapshot()), width)
    for section in ("users", "actions", "health", "recent activity", "sim-engine · default"):
        assert section in out, section
    # simulated date-time, speed, state, wall time
    assert "Mon 2026-03-02 14:05:00 UTC" in out
    assert "speed 3600x" in out and "RUNNING" in out and "0:01:23" in out
    # progress of a run with a duration
    assert "58.7%" in out and "14h 05m of 1d 00h simulated" in out and "ETA 0:00:15" in out
    # users by lifecycle state, persona and routine state
    for name, n in (("ACTIVE", "800"), ("lurker", "500"), ("working", "600"), ("sleeping", "300")):
        assert any(name in line and n in line for line in out.splitlines()), name
    assert "1,200" in out and "1,180" in out and "active 42" in out
    # throughput, success, latency, rate limits and breakers
    assert "5,230" in out and "43.5" in out and "1,234" in out
    assert "99.4%" in out
    assert "3.1 ms" in out and "8.2 ms" in out and "15.0 ms" in out
    assert "17" in out and "1 open" in out and "GET /posts/{id}" in out
    assert "POST /posts" not in out  # closed breakers are not listed
    # recent activity, newest first
    assert out.index("#14") < out.index("#13") < out.index("#12")
    assert "post 17" in out and "HTTP 500" in out and "joined" in out and "09:05:00 -05" in out
    # keys
    for key, what in KEYS.items():
        assert what in out, key


def test_render_variants() -> None:
    paused = text_of(render(snapshot(state="paused", keys=False, message="paused")))
    assert "PAUSED" in paused and "sim-engine ctl" in paused and "pause/resume" not in paused
    stopping = text_of(render(snapshot(state="stopping")))
    assert "STOPPING" in stopping and "outputs are written" in stopping
    assert "pause/resume" not in stopping  # no keys once the run ends
    maxed = text_of(render(snapshot(speed=None, effective_speed=52310.0)))
    assert "speed max (≈52,310x)" in maxed
    open_ended = text_of(render(snapshot(end_s=math.inf, sim_now=MONDAY + 2 * DAY_S + 3600)))
    assert "2d 01h simulated so far (open-ended run)" in open_ended
    empty = text_of(
        render(
            snapshot(
                recent=(),
                success_rate=None,
                latency_ms={},
                actions_per_sim_hour=None,
                lifecycle={},
                breakers={},
            )
        )
    )
    assert "waiting for the first action" in empty
    assert "all closed" in empty and "—" in empty
    half = text_of(render(snapshot(breakers={"GET /posts": "half_open"})))
    assert "1 half-open" in half


# -- the sink's counters ------------------------------------------------------------------


def action(n: int, **changes: Any) -> ActionRecord:
    values: dict[str, Any] = {
        "sim_time": f"2026-03-02T10:{n % 60:02d}:00.000+01:00",
        "sim_ts": MONDAY + 9 * 3600 + n * 60,
        "user_id": n,
        "persona": "lurker",
        "state": "working",
        "action": "browse_feed",
        "status": 200,
        "ok": True,
        "latency_ms": 2.0,
    }
    values.update(changes)
    return ActionRecord(**values)


def test_sink_counts_actions_failures_429_latency_and_recent() -> None:
    dash = Dashboard(Console(file=StringIO()), recent=5)
    assert dash.sinks() == [dash]
    for n in range(90):
        dash.emit(action(n, latency_ms=1.0 + n % 10))
    for n in range(5):
        dash.emit(action(100 + n, status=429, ok=False, error="HTTP 429", latency_ms=50.0))
    dash.emit(action(200, status=0, ok=False, error="timeout", latency_ms=5000.0))
    dash.emit(action(201, status=0, ok=False, skipped=True, error="circuit open", latency_ms=0))
    dash.emit(action(202, retries=2, ok=True))
    dash.emit(
        UserRecord(
            "2026-03-02T10:00:00.000+01:00",
            MONDAY,
            7,
            "lurker",
            "A B",
            "a@b.c",
            "UTC",
            "AB",
            None,
            3,
        )
    )
    dash.emit(
        LifecycleRecord(
            "2026-03-02T10:00:00.000+01:00", MONDAY, 7, "state", "NEW", "ACTIVE", "busy"
        )
    )
    dash.emit(
        LifecycleRecord(
            "2026-03-02T10:00:00.000+01:00", MONDAY, 7, "pattern", "DAILY", "BINGE", "x"
        )
    )
    dash.close()
    assert dash.actions == 98
    assert dash.failed == 7
    assert dash.rate_limited == 5
    assert dash.retries == 2
    lat = dash.latency_ms()
    assert lat["p50"] == pytest.approx(6.0, abs=0.1)
    assert 10.0 <= lat["p95"] <= 50.1
    assert lat["p99"] == pytest.approx(50.0, rel=0.01)  # the timeout is in; the skip is not
    # the feed keeps the latest records (a pattern change is not news)
    kinds = [type(r).__name__ for r in dash._recent]
    assert kinds == [
        "ActionRecord",
        "ActionRecord",
        "ActionRecord",
        "UserRecord",
        "LifecycleRecord",
    ]


def test_rates_over_a_sliding_wall_window() -> None:
    dash = Dashboard(Console(file=StringIO()))
    assert dash.rates(100.0, 0.0) == (0.0, None, None)
    for n in range(50):
        dash.emit(action(n))
    per_s, per_hour, speed = dash.rates(101.0, 3600.0)  # 50 actions in 1 wall s, 1 sim hour
    assert per_s == pytest.approx(50.0)
    assert per_hour == pytest.approx(50.0)
    assert speed == pytest.approx(3600.0)
    for t in range(2, 12):  # ten more seconds at 10 actions/s and 60x
        for n in range(10):
            dash.emit(action(n))
        per_s, per_hour, speed = dash.rates(100.0 + t, 3600.0 + (t - 1) * 60.0)
    assert per_s == pytest.approx(10.0, rel=0.05)  # the first, faster second has left the window
    assert per_hour == pytest.approx(600.0, rel=0.05)
    assert speed == pytest.approx(60.0, rel=0.05)
    # paused: time stands still, no action
    for t in range(12, 20):
        per_s, per_hour, speed = dash.rates(100.0 + t, 3600.0 + 10 * 60.0)
    assert per_s == 0.0 and per_hour is None and speed is None


# -- against a simulation -----------------------------------------------------------------


def quick_api() -> MockTarget:
    ids = itertools.count(1)

    def handle(req: ActionRequest) -> Outcome:
        if req.action == "sign_up":
            return Outcome(201, True, 0.4, remote_id=req.user_id, endpoint="POST /users")
        if req.action == "log_in":
            return Outcome(200, True, 0.4, token=f"t{req.user_id}", endpoint="POST /auth/login")
        if req.action == "browse_feed":
            return Outcome(200, True, 0.9, feed_ids=((1, 1), (2, 2)), endpoint="GET /posts")
        if req.action == "create_post":
            return Outcome(201, True, 1.3, post_id=next(ids), endpoint="POST /posts")
        if req.action == "delete_post":
            return Outcome(204, True, 0.5, post_id=req.post_id)
        return Outcome(200, True, 0.6, post_id=req.post_id)

    return MockTarget(handle)


def scenario(users: int) -> Scenario:
    """:func:`utc_scenario` with this module's seed."""
    return utc_scenario(users, seed=3)


class FakeWall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_breakdown_is_read_at_most_once_a_second() -> None:
    sim = Simulation(scenario(50), quick_api(), FastForwardClock(BUSY), secret="x")
    sim.populate()
    calls = 0
    real = sim.breakdown

    def counting() -> dict[str, dict[str, int]]:
        nonlocal calls
        calls += 1
        return real()

    sim.breakdown = counting  # type: ignore[method-assign]
    wall = FakeWall()
    dash = Dashboard(Console(file=StringIO()), wall=wall)
    await dash.start(sim)  # not a terminal: no display, no task
    for _ in range(10):  # ten frames in 0.9 s
        snap = dash.snapshot()
        wall.now += 0.1
    assert calls == 1
    wall.now += 0.2
    dash.snapshot()
    assert calls == 2
    for _ in range(30):  # 3 s at 10 frames a second
        wall.now += 0.1
        dash.snapshot()
    assert 4 <= calls <= 5
    assert snap.users == 50 and snap.persona and sum(snap.persona.values()) == 50
    assert sum(snap.routine.values()) == 50 and snap.lifecycle == {"NEW": 50}
    assert snap.state == "running" and snap.speed is None and snap.end_s == math.inf
    await dash.stop()


async def test_snapshot_of_a_running_simulation() -> None:
    dash = Dashboard(Console(file=StringIO(), width=120), recent=8)
    clock = ScaledClock(BUSY, 3600.0)
    clock.pause()
    sim = Simulation(scenario(150), quick_api(), clock, dash.sinks(), duration_s=DAY_S, secret="x")
    sim.populate()
    await dash.start(sim)
    clock.resume()
    task = asyncio.ensure_future(sim.run())
    for _ in range(6):
        await asyncio.sleep(0.1)
        snap = dash.snapshot()
    sim.pause()
    paused = dash.snapshot()
    sim.stop()
    await task
    last = dash.snapshot()  # actions in flight at the pause were answered while stopping
    await dash.stop()
    assert last.actions == dash.actions >= snap.actions > 0 and snap.success_rate == 1.0
    assert snap.speed == 3600.0 and snap.state == "running"
    assert snap.start_s < snap.sim_now < snap.end_s == pytest.approx(BUSY + DAY_S, abs=1)
    assert snap.actions_per_s > 0 and snap.actions_per_sim_hour and snap.actions_per_sim_hour > 0
    assert snap.effective_speed == pytest.approx(3600.0, rel=0.3)
    assert snap.eta_wall_s == pytest.approx((snap.end_s - snap.sim_now) / 3600.0)
    assert snap.latency_ms["p50"] > 0
    assert 0 < len(snap.recent) <= 8
    assert paused.state == "paused" and paused.eta_wall_s is None
    assert snap.rate_limited == 0 and snap.breakers == {}
    out = text_of(render(snap))
    assert "speed 3600x" in out and "RUNNING" in out


async def test_live_display_on_a_terminal() -> None:
    console = Console(file=StringIO(), width=120, height=60, force_terminal=True)
    dash = Dashboard(console, refresh_s=0.05, keys=False)
    clock = ScaledClock(BUSY, 3600.0)
    sim = Simulation(scenario(60), quick_api(), clock, dash.sinks(), duration_s=600, secret="x")
    await dash.start(sim)
    await sim.run()
    await dash.stop()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert out.count("recent activity") >= 2  # refreshed, then the last frame
    assert "100.0%" in out  # the last frame shows the whole run
    assert "\x1b[" in out  # drawn with terminal control codes


async def test_short_terminal_trims_the_feed() -> None:
    console = Console(file=StringIO(), width=120, height=30, force_terminal=True)
    dash = Dashboard(console, keys=False, recent=12)
    sim = Simulation(scenario(30), quick_api(), FastForwardClock(BUSY), dash.sinks(), secret="x")
    sim.populate()
    await dash.start(sim)
    for n in range(12):
        dash.emit(action(n))
    lines = console.render_lines(dash._frame(), pad=False)
    assert len(lines) <= 30
    await dash.stop()


@pytest.mark.parametrize(
    ("width", "height", "feed"),
    [(120, 60, 3), (120, 24, 3), (80, 40, 3), (80, 24, 1), (80, 18, 0), (60, 20, 0)],
)
def test_fit_makes_the_dashboard_fit_the_terminal(width: int, height: int, feed: int) -> None:
    console = Console(file=StringIO(), width=width, height=height, color_system=None)
    snap = snapshot()
    lines = console.render_lines(fit(snap, console), pad=False)
    text = "\n".join("".join(seg.text for seg in line) for line in lines)
    assert len(lines) <= height or feed == 0
    assert "5,230" in text and "99.4%" in text  # the figures always show
    shown = sum(f"#{a.user_id} " in text for a in snap.recent)
    assert shown >= feed
    if height >= 60:
        assert shown == len(snap.recent) and "latency p95" in text  # all of it


async def test_nothing_is_drawn_when_the_console_is_not_a_terminal() -> None:
    console = Console(file=StringIO(), width=120)
    assert not console.is_terminal
    dash = Dashboard(console)
    sim = Simulation(scenario(10), quick_api(), FastForwardClock(BUSY), dash.sinks(), secret="x")
    await dash.start(sim)
    await asyncio.sleep(0.05)
    await dash.stop()
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals only")
async def test_keys_from_a_terminal_and_the_terminal_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pty
    import termios

    master, slave = pty.openpty()
    stdin = os.fdopen(slave, "r", closefd=True)
    try:
        monkeypatch.setattr(sys, "stdin", stdin)
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON
        console = Console(file=StringIO(), width=120, height=50, force_terminal=True)
        dash = Dashboard(console, refresh_s=0.05)
        sim = Simulation(scenario(10), quick_api(), ScaledClock(BUSY, 60.0), secret="x")
        await dash.start(sim)
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: keys without Enter
        os.write(master, b"p")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if sim.paused:
                break
        assert sim.paused
        os.write(master, b"+q")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if sim.stopping:
                break
        assert sim.speed == 120.0 and sim.stopping
        await dash.stop()
        assert termios.tcgetattr(slave) == before  # restored
        assert "pause/resume" in console.file.getvalue()  # type: ignore[attr-defined]
    finally:
        stdin.close()
        os.close(master)


async def test_keys_pause_resume_speed_and_stop() -> None:
    clock = ScaledClock(BUSY, 60.0)
    sim = Simulation(scenario(10), quick_api(), clock, secret="x")
    dash = Dashboard(Console(file=StringIO()), keys=False)
    await dash.start(sim)
    assert dash.handle_key("p") == "paused" and sim.paused
    assert dash.handle_key("p") == "resumed" and not sim.paused
    assert dash.handle_key("+") == "speed 120x" and sim.speed == 120.0
    assert dash.handle_key("-") == "speed 60x" and sim.speed == 60.0
    assert dash.handle_key("-") == "speed 30x"
    assert dash.handle_key("m") == "speed max" and sim.speed is None
    assert dash.handle_key("+") is None  # already as fast as it goes
    assert dash.handle_key("-") == "speed 30x" and sim.speed == 30.0  # back from max
    assert dash.handle_key("x") is None
    assert dash.snapshot().message == "speed 30x"
    assert dash.handle_key("q") == "stopping…" and sim.stopping
    assert dash.handle_key("p") is None  # nothing to do once stopping
    await dash.stop()


def test_target_statistics_is_read_defensively() -> None:
    class Transport:
        def __init__(self, stats: Any) -> None:
            self.stats = stats

        def statistics(self) -> Any:
            if isinstance(self.stats, Exception):
                raise self.stats
            return self.stats

    class Target:
        def __init__(self, stats: Any) -> None:
            self.transport = Transport(stats)

    good = {
        "rate_limited": 7,
        "retries": 3,
        "breakers": {"GET /posts": "open", "POST /posts": {"state": "half-open"}, "x": None},
    }
    assert target_statistics(Target(good)) == {
        "rate_limited": 7,
        "retries": 3,
        "breakers": {"GET /posts": "open", "POST /posts": "half_open"},
    }
    assert target_statistics(object()) == {}
    assert target_statistics(Target(RuntimeError("boom"))) == {}
    assert target_statistics(Target(["not", "a", "dict"])) == {}
    assert target_statistics(Target({"rate_limited": "many", "breakers": 3})) == {}


async def test_snapshot_uses_the_targets_rate_limits_and_breakers() -> None:
    class Stats:
        def statistics(self) -> dict[str, Any]:
            return {"rate_limited": 11, "retries": 4, "breakers": {"GET /posts": "open"}}

    target = quick_api()
    target.transport = Stats()  # type: ignore[attr-defined]
    sim = Simulation(scenario(5), target, FastForwardClock(BUSY), secret="x")
    dash = Dashboard(Console(file=StringIO()))
    await dash.start(sim)
    snap = dash.snapshot()
    assert snap.rate_limited == 11 and snap.retries == 4
    assert snap.breakers == {"GET /posts": "open"}
    await dash.stop()


def test_cli_uses_the_dashboard_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim_engine.cli.main import _use_dashboard

    class Stdout(StringIO):
        tty = False

        def isatty(self) -> bool:
            return self.tty

    fake = Stdout()
    monkeypatch.setattr(sys, "stdout", fake)
    assert not _use_dashboard(None, quiet=False, verbose=False)
    assert not _use_dashboard(True, quiet=False, verbose=False)  # no terminal: plain lines
    fake.tty = True
    assert _use_dashboard(None, quiet=False, verbose=False)
    assert not _use_dashboard(None, quiet=True, verbose=False)
    assert not _use_dashboard(None, quiet=False, verbose=True)
    assert _use_dashboard(True, quiet=False, verbose=True)
    assert not _use_dashboard(False, quiet=False, verbose=False)


# -- a real run, mid-way: the screenshot ----------------------------------------------------


async def capture(
    users: int = 120,
    warm_days: float = 0.0,
    live_s: float = 0.6,
    demo: bool = False,
    days: float = 7.0,
) -> DashboardSnapshot:
    """Run a real simulation (``warm_days`` at max speed, then ``live_s`` wall seconds at
    3600x, refreshing like the live display) and return a snapshot taken mid-run."""
    start = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc).timestamp()
    if demo:
        from sim_engine import bind_target
        from sim_engine.demo import create_app
        from sim_engine.targets.inprocess import AsgiTransport

        sc = default_scenario().with_overrides(**{"population.initial": users, "seed": 7})
        transport: Any = AsgiTransport(create_app(), headers={"X-Synthetic": "true"})
        try:
            from sim_engine.targets.resilient import ResilientTransport

            transport = ResilientTransport(transport, sc.limits)
        except (ImportError, AttributeError):  # pragma: no cover - without resilience
            pass
        target: Any = bind_target(sc, transport)
    else:
        sc, target = scenario(users), quick_api()
    dash = Dashboard(Console(file=StringIO(), width=120), keys=False)
    sim = Simulation(sc, target, FastForwardClock(start), dash.sinks(), duration_s=days * DAY_S)
    sim.populate()
    await dash.start(sim)
    task = asyncio.ensure_future(sim.run())
    while sim.statistics().sim_now < start + warm_days * DAY_S and not task.done():
        await asyncio.sleep(0.01)
    sim.set_speed(3600.0)
    snap = dash.snapshot()
    for _ in range(max(1, round(live_s / 0.25))):
        await asyncio.sleep(0.25)
        snap = dash.snapshot()
    sim.stop()
    await task
    await dash.stop()
    await target.aclose()
    return snap


async def test_screenshot_of_a_real_run(tmp_path: Path) -> None:
    path = os.environ.get("SIM_ENGINE_SCREENSHOT")
    if path:
        # past the first week, so that users have left the NEW state
        snap = await capture(users=250, warm_days=8.0, live_s=2.0, demo=True, days=14.0)
    else:
        snap = await capture()
    assert snap.actions > 0 and snap.state == "running"
    console = Console(record=True, width=120, file=StringIO(), force_terminal=True)
    console.print(render(dataclasses.replace(snap, keys=True)))  # as on a terminal
    assert "recent activity" in console.export_text(clear=False)
    target = Path(path) if path else tmp_path / "dashboard.svg"
    console.save_svg(str(target), title="sim-engine run")
    svg = target.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "sim-engine" in svg
