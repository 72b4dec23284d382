"""Tests of the simulated clocks: manual, fast-forward and scaled (wall-clock driven)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import pytest

from helpers import ListSink, always_ok_api, busy_overrides, utc_scenario
from sim_engine.engine.clock import (
    Clock,
    FastForwardClock,
    ManualClock,
    ScaledClock,
    SimClock,
    SpeedControl,
    make_clock,
    parse_speed,
    to_sim_seconds,
)
from sim_engine.engine.simulation import Simulation
from sim_engine.engine.stall import STALL_CEILING_S, STALL_FLOOR_S, StallMeter
from sim_engine.model.records import ActionRecord, ActionRequest, Outcome
from sim_engine.model.scenario import Scenario
from sim_engine.targets.mock import MockTarget

T = TypeVar("T")

# A Wednesday evening in UTC: every persona of the default routine is relaxing (busy).
BUSY_START = datetime(2024, 5, 15, 19, 0, tzinfo=timezone.utc).timestamp()


class FakeWall:
    """A wall clock that moves only when the test moves it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


# -- parse_speed / make_clock / to_sim_seconds -------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max", None),
        (" MAX ", None),
        ("1", 1.0),
        ("60", 60.0),
        ("3600", 3600.0),
        ("3600x", 3600.0),
        ("0.5", 0.5),
        (60, 60.0),
        (2.5, 2.5),
    ],
)
def test_parse_speed_accepts(text: str | float, expected: float | None) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize("text", ["fast", "", "0", "-1", "x", "nan", "60y", 0, -3])
def test_parse_speed_rejects(text: str | float) -> None:
    with pytest.raises(ValueError, match="speed"):
        parse_speed(text)


def test_make_clock() -> None:
    ff = make_clock(None, 100.0)
    assert ff.jumps is True and ff.speed is None
    assert ff.now() == 100.0
    scaled = make_clock(60.0, 100.0)
    assert scaled.jumps is False
    assert scaled.speed == 60.0
    assert abs(scaled.now() - 100.0) < 60.0  # ran for well under a wall second
    for clock in (ff, scaled, ManualClock()):
        assert isinstance(clock, Clock)
    assert isinstance(ff, SpeedControl) and not isinstance(ManualClock(), SpeedControl)


def test_to_sim_seconds() -> None:
    aware = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert to_sim_seconds(aware) == datetime(2024, 1, 1, 10, tzinfo=timezone.utc).timestamp()
    naive = datetime(2024, 1, 1, 12)
    assert to_sim_seconds(naive) == datetime(2024, 1, 1, 12, tzinfo=timezone.utc).timestamp()


# -- ManualClock / FastForwardClock ------------------------------------------------------


def test_manual_clock_advance() -> None:
    clock = ManualClock(10.0)
    assert clock.jumps is True
    assert clock.now() == 10.0
    clock.advance(5)
    assert clock.now() == 15.0
    clock.advance(0)
    assert clock.now() == 15.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert clock.now() == 15.0


@pytest.mark.parametrize("cls", [ManualClock, FastForwardClock])
async def test_jumping_clock_sleep_until(cls: type[ManualClock]) -> None:
    clock = cls(100.0)
    started = time.perf_counter()
    await clock.sleep_until(100.0 + 7 * 86400)  # a simulated week
    assert clock.now() == 100.0 + 7 * 86400
    await clock.sleep_until(50.0)  # the past: no-op, never backwards
    assert clock.now() == 100.0 + 7 * 86400
    assert time.perf_counter() - started < 0.5


def test_fast_forward_clock_is_max_speed() -> None:
    clock = FastForwardClock(0.0)
    assert clock.jumps is True
    assert clock.speed is None


# -- ScaledClock with a fake wall --------------------------------------------------------


def test_scaled_clock_follows_wall_times_speed() -> None:
    wall = FakeWall()
    clock = ScaledClock(start=5000.0, speed=60.0, wall=wall)
    assert clock.now() == 5000.0
    wall.advance(1.0)
    assert clock.now() == 5060.0
    wall.advance(2.5)
    assert clock.now() == 5000.0 + 3.5 * 60
    assert clock.speed == 60.0
    assert clock.paused is False


def test_scaled_clock_pause_freezes_and_resume_continues_without_jump() -> None:
    wall = FakeWall()
    clock = ScaledClock(start=0.0, speed=10.0, wall=wall)
    wall.advance(1.0)
    assert clock.now() == 10.0
    clock.pause()
    assert clock.paused is True
    wall.advance(100.0)
    assert clock.now() == 10.0  # frozen
    clock.pause()  # idempotent
    wall.advance(5.0)
    assert clock.now() == 10.0
    clock.resume()
    assert clock.paused is False
    assert clock.now() == 10.0  # no jump: the paused wall time does not count
    wall.advance(1.0)
    assert clock.now() == 20.0
    clock.resume()  # idempotent
    assert clock.now() == 20.0


def test_scaled_clock_set_speed_without_jump() -> None:
    wall = FakeWall()
    clock = ScaledClock(start=0.0, speed=1.0, wall=wall)
    wall.advance(10.0)
    assert clock.now() == 10.0
    clock.set_speed(3600.0)
    assert clock.speed == 3600.0
    assert clock.now() == 10.0  # no jump on the change itself
    wall.advance(1.0)
    assert clock.now() == 3610.0
    clock.set_speed(0.5)
    assert clock.now() == 3610.0
    wall.advance(2.0)
    assert clock.now() == 3611.0


def test_scaled_clock_set_speed_while_paused() -> None:
    wall = FakeWall()
    clock = ScaledClock(start=0.0, speed=2.0, wall=wall)
    wall.advance(1.0)
    clock.pause()
    clock.set_speed(100.0)
    wall.advance(10.0)
    assert clock.now() == 2.0
    clock.resume()
    wall.advance(1.0)
    assert clock.now() == 102.0


@pytest.mark.parametrize("bad", [0, -1.0])
def test_scaled_clock_rejects_non_positive_speed(bad: float) -> None:
    with pytest.raises(ValueError):
        ScaledClock(0.0, bad, wall=FakeWall())
    clock = ScaledClock(0.0, 1.0, wall=FakeWall())
    with pytest.raises(ValueError):
        clock.set_speed(bad)
    assert clock.speed == 1.0


async def test_scaled_clock_sleep_until_past_returns_at_once() -> None:
    clock = ScaledClock(1000.0, 1.0)
    started = time.perf_counter()
    await clock.sleep_until(999.0)
    await clock.sleep_until(clock.now())
    assert time.perf_counter() - started < 0.1


async def test_scaled_clock_sleep_waits_while_paused_until_resumed() -> None:
    clock = ScaledClock(0.0, 1000.0)
    clock.pause()
    task = asyncio.ensure_future(clock.sleep_until(clock.now() + 10.0))  # 10 ms when running
    await asyncio.sleep(0.1)
    assert not task.done()
    frozen = clock.now()
    clock.resume()
    await asyncio.wait_for(task, 1.0)
    assert clock.now() >= frozen + 10.0


async def test_scaled_clock_set_speed_wakes_a_sleeper() -> None:
    clock = ScaledClock(0.0, 1.0)
    task = asyncio.ensure_future(clock.sleep_until(100.0))  # 100 wall seconds at speed 1
    await asyncio.sleep(0.05)
    assert not task.done()
    started = time.perf_counter()
    clock.set_speed(100_000.0)
    await asyncio.wait_for(task, 1.0)
    assert time.perf_counter() - started < 0.5
    assert clock.now() >= 100.0


def test_one_clock_switches_between_a_factor_and_max_without_a_jump() -> None:
    wall = FakeWall()
    clock = SimClock(1000.0, 60.0, wall=wall)
    wall.t += 2.0
    assert clock.now() == 1120.0
    clock.set_speed(None)  # max: the same object now jumps
    assert clock.jumps is True and clock.speed is None
    wall.t += 50.0
    assert clock.now() == 1120.0  # wall time no longer moves it
    assert clock.wall_seconds_until(5000.0) == 0.0
    clock.set_speed(10.0)  # back to a factor, anchored where it stood
    assert clock.jumps is False and clock.now() == 1120.0
    wall.t += 1.0
    assert clock.now() == 1130.0
    with pytest.raises(ValueError):
        clock.set_speed(0.0)


async def test_a_sleeper_wakes_when_the_clock_switches_to_max() -> None:
    clock = SimClock(0.0, 1.0)  # a simulated day would take a wall day
    sleeper = asyncio.ensure_future(clock.sleep_until(86400.0))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.set_speed(None)
    await asyncio.wait_for(sleeper, 1.0)
    assert clock.now() == 86400.0


# -- live clocks on an injected wall clock: a virtual-time event loop -----------------------


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is virtual: when nothing is ready to run, it jumps to
    the next timer instead of sleeping. Code that only waits on timers (a live clock,
    the engine against a mock target) runs as it would in real time, in no wall time,
    with exact timings. The clocks under test read the same time (``wall=loop.time``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_s = 1000.0

    def time(self) -> float:
        return self._virtual_s

    def _run_once(self) -> None:
        ready = self._ready  # type: ignore[attr-defined]
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            self._virtual_s = max(self._virtual_s, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def run_virtual(main: Callable[[asyncio.AbstractEventLoop], Awaitable[T]]) -> T:
    """Run ``main(loop)`` to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


def test_virtual_time_passes_only_through_timers() -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
        started_wall, started = time.perf_counter(), loop.time()
        await asyncio.sleep(3600.0)  # an hour of the loop's time
        return loop.time() - started, time.perf_counter() - started_wall

    virtual_s, wall_s = run_virtual(main)
    assert virtual_s == pytest.approx(3600.0, abs=1e-6)
    assert wall_s < 1.0  # not a real hour


def test_scaled_clock_keeps_pace_one_simulated_hour_per_wall_second() -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
        clock = ScaledClock(BUSY_START, 3600.0, wall=loop.time)
        started = loop.time()
        await clock.sleep_until(BUSY_START + 3600)
        return loop.time() - started, clock.now()

    elapsed, now = run_virtual(main)
    assert elapsed == pytest.approx(1.0, abs=0.002)  # timers round to the millisecond
    assert BUSY_START + 3600 <= now <= BUSY_START + 3600 + 0.002 * 3600


def _scenario(users: int) -> Scenario:
    """:func:`utc_scenario` with this module's seed, busy (:func:`busy_overrides`): these
    tests count timeouts and paces of the engine, not the default users' realism."""
    return utc_scenario(users, seed=11).with_overrides(**busy_overrides())


def test_engine_run_keeps_pace_with_scaled_clock() -> None:
    sink = ListSink()

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[float, Simulation, int]:
        clock = ScaledClock(BUSY_START, 3600.0, wall=loop.time)
        clock.pause()  # building the population takes wall time: keep it out of the run
        sim = Simulation(_scenario(100), always_ok_api(), clock, [sink], duration_s=3600)
        clock.resume()
        started = loop.time()
        stats = await sim.run()
        return loop.time() - started, sim, stats.actions

    elapsed, sim, actions_count = run_virtual(main)
    assert sim.start_s == BUSY_START
    assert elapsed == pytest.approx(1.0, abs=0.01)  # a simulated hour in one wall second
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    assert actions_count == len(actions) > 50
    assert all(sim.start_s <= r.sim_ts < sim.end_s for r in actions)
    # actions happen when their simulated time comes, not all at once
    assert max(r.sim_ts for r in actions) - min(r.sim_ts for r in actions) > 1800


async def test_fast_forward_day_runs_far_faster_than_real_time() -> None:
    sink = ListSink()
    clock = FastForwardClock(BUSY_START)
    sim = Simulation(_scenario(200), always_ok_api(), clock, [sink], duration_s=86400)
    stats = await sim.run()
    assert clock.now() == BUSY_START + 86400
    assert stats.actions > 1000
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    assert max(r.sim_ts for r in actions) - min(r.sim_ts for r in actions) > 12 * 3600


def test_scaled_run_lasts_its_duration_even_when_everyone_sleeps() -> None:
    night = datetime(2024, 5, 15, 2, 0, tzinfo=timezone.utc).timestamp()  # all asleep (UTC)

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[float, float, float]:
        clock = ScaledClock(night, 36_000.0, wall=loop.time)  # a simulated hour: 0.1 s
        clock.pause()
        sim = Simulation(_scenario(5), always_ok_api(), clock, [], duration_s=3600)
        clock.resume()
        started = loop.time()
        await sim.run()
        return loop.time() - started, clock.now(), sim.end_s

    elapsed, now, end_s = run_virtual(main)
    assert now >= end_s
    assert elapsed == pytest.approx(0.1, abs=0.002)


def test_stop_ends_a_scaled_run_promptly() -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> float:
        clock = ScaledClock(BUSY_START, 60.0, wall=loop.time)  # a day: 24 wall minutes
        sim = Simulation(_scenario(20), always_ok_api(), clock, [], duration_s=86400)
        loop.call_later(0.2, sim.stop)
        started = loop.time()
        await sim.run()
        return loop.time() - started

    assert run_virtual(main) == pytest.approx(0.2, abs=0.01)


# -- at --speed max, a request waiting on the wall clock does not freeze everyone ----------


def _slow_api(every: int, wait_s: float) -> tuple[MockTarget, list[int]]:
    """Every ``every``-th non-sign-up request waits ``wait_s`` (a timeout); the rest answer
    at once. Returns the target and the list of user ids that waited (filled as it runs)."""
    fast = always_ok_api()
    count = itertools.count(1)
    slow: list[int] = []

    async def handle(req: ActionRequest) -> Outcome:
        if req.action not in ("sign_up", "log_in") and next(count) % every == 0:
            slow.append(req.user_id)
            await asyncio.sleep(wait_s)
            return Outcome(0, False, wait_s * 1000, error="timeout")
        return await fast.send(req)

    return MockTarget(handle), slow


def test_timeouts_at_max_speed_do_not_freeze_other_users() -> None:
    """10% of requests wait 10 s of wall time. Before, the lookahead waited for the oldest
    in-flight request, so every timeout stopped all users for its 10 s; now a request
    counts as stalled after a threshold (0.5 s by default) and the others go on. The
    waiting user's own steps stay in order."""
    sink = ListSink()
    target, slow_users = _slow_api(every=10, wait_s=10.0)

    async def main(loop: asyncio.AbstractEventLoop) -> float:
        clock = FastForwardClock(BUSY_START)
        sim = Simulation(_scenario(100), target, clock, [sink], duration_s=6 * 3600)
        started = loop.time()
        await sim.run()
        return loop.time() - started

    elapsed = run_virtual(main)
    slow = len(slow_users)
    assert slow >= 30
    # before: about slow x 10 s (each timeout held everyone); with a fixed 0.5 s
    # threshold each held the others for 0.5 s; now for the floor (50 ms)
    assert elapsed < 0.2 * slow * 10.0, (elapsed, slow)
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    by_user: dict[int, list[float]] = {}
    for record in actions:
        by_user.setdefault(record.user_id, []).append(record.sim_ts)
    for times in by_user.values():  # each user's actions in the order it took them
        assert times == sorted(times)


def _timeouts_run(stall: StallMeter) -> tuple[float, int]:
    """A 6-hour run where every tenth request waits 1 s: (loop seconds, requests that waited)."""
    target, slow_users = _slow_api(every=10, wait_s=1.0)

    async def main(loop: asyncio.AbstractEventLoop) -> float:
        clock = FastForwardClock(BUSY_START)
        sim = Simulation(_scenario(100), target, clock, duration_s=6 * 3600, stall=stall)
        started = loop.time()
        await sim.run()
        return loop.time() - started

    return run_virtual(main), len(slow_users)


def test_an_adaptive_stall_threshold_holds_others_far_less_than_the_fixed_one() -> None:
    """Answers come at once, so the adaptive threshold drops to its floor (5 ms): each
    1-s timeout holds the other users for 5 ms instead of 0.5 s."""
    fixed_s, fixed_slow = _timeouts_run(StallMeter())
    adaptive_s, adaptive_slow = _timeouts_run(StallMeter.adaptive())
    assert min(fixed_slow, adaptive_slow) >= 30
    assert fixed_s / fixed_slow >= 0.3  # about half a second per timeout
    assert adaptive_s / adaptive_slow < 0.1, (adaptive_s, adaptive_slow)


def test_the_stall_threshold_follows_the_median_answer_time() -> None:
    """Fast answers bring the threshold down to the floor; a slow target (or an
    in-process app queueing behind its peers) raises it to the ceiling; a tail of
    timeouts (a third of the answers) does not move the median."""
    assert StallMeter().threshold_s == STALL_CEILING_S  # fixed by default
    fixed = StallMeter()
    for _ in range(64):
        fixed.observe(0.0002)
    assert fixed.threshold_s == STALL_CEILING_S
    meter = StallMeter(floor_s=STALL_FLOOR_S, window=64, every=8)
    assert meter.threshold_s == STALL_CEILING_S  # nothing known yet: the safe side
    for _ in range(64):
        meter.observe(0.0002)
    assert meter.threshold_s == STALL_FLOOR_S  # 5 x 0.2 ms = 1 ms, floored
    for i in range(64):
        meter.observe(10.0 if i % 3 == 0 else 0.004)
    assert meter.threshold_s == pytest.approx(0.02)  # 5 x 4 ms: the timeouts ignored
    for _ in range(64):
        meter.observe(0.2)
    assert meter.threshold_s == STALL_CEILING_S


def test_a_stopped_run_cancels_actions_still_waiting_after_the_request_timeout() -> None:
    """Requests held for 300 s (a target's Backoff gate): ``stop()`` at 20 s ends the run
    after at most ``target.timeout_s`` (10 s) more, not when the last gate opens."""
    target, slow_users = _slow_api(every=5, wait_s=300.0)
    scenario = _scenario(50)

    async def main(loop: asyncio.AbstractEventLoop) -> float:
        sim = Simulation(scenario, target, FastForwardClock(BUSY_START), duration_s=6 * 3600)
        loop.call_later(20.0, sim.stop)
        started = loop.time()
        await sim.run()
        return loop.time() - started

    elapsed = run_virtual(main)
    assert slow_users, "no request was held"
    assert 20.0 <= elapsed <= 20.0 + scenario.target.timeout_s + 0.5, elapsed
