"""Tests of the simulated clocks: manual, fast-forward and scaled (wall-clock driven)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from helpers import ListSink, always_ok_api, utc_scenario
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
from sim_engine.model.records import ActionRecord
from sim_engine.model.scenario import Scenario

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


# -- real time: the clock keeps pace -----------------------------------------------------


async def test_scaled_clock_keeps_pace_one_simulated_hour_per_wall_second() -> None:
    start = BUSY_START
    clock = ScaledClock(start, 3600.0)
    wall_started = time.perf_counter()
    await clock.sleep_until(start + 3600)
    elapsed = time.perf_counter() - wall_started
    assert 0.9 <= elapsed <= 1.5, elapsed
    assert clock.now() >= start + 3600


def _scenario(users: int) -> Scenario:
    """:func:`utc_scenario` with this module's seed."""
    return utc_scenario(users, seed=11)


async def test_engine_run_keeps_pace_with_scaled_clock() -> None:
    sink = ListSink()
    clock = ScaledClock(BUSY_START, 3600.0)
    clock.pause()  # building the population takes wall time: keep it out of the run
    sim = Simulation(_scenario(100), always_ok_api(), clock, [sink], duration_s=3600)
    assert sim.start_s == pytest.approx(BUSY_START, abs=1.0)
    clock.resume()
    wall_started = time.perf_counter()
    stats = await sim.run()
    elapsed = time.perf_counter() - wall_started
    assert 0.9 <= elapsed <= 2.0, elapsed
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    assert stats.actions == len(actions) > 50
    assert all(sim.start_s <= r.sim_ts < sim.end_s for r in actions)
    # actions happen when their simulated time comes, not all at once
    assert max(r.sim_ts for r in actions) - min(r.sim_ts for r in actions) > 1800


async def test_fast_forward_day_runs_far_faster_than_real_time() -> None:
    sink = ListSink()
    clock = FastForwardClock(BUSY_START)
    sim = Simulation(_scenario(200), always_ok_api(), clock, [sink], duration_s=86400)
    wall_started = time.perf_counter()
    stats = await sim.run()
    elapsed = time.perf_counter() - wall_started
    assert elapsed < 10.0, elapsed  # > 8,640x real time
    assert clock.now() == BUSY_START + 86400
    assert stats.actions > 1000
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    assert max(r.sim_ts for r in actions) - min(r.sim_ts for r in actions) > 12 * 3600


async def test_scaled_run_lasts_its_duration_even_when_everyone_sleeps() -> None:
    night = datetime(2024, 5, 15, 2, 0, tzinfo=timezone.utc).timestamp()  # all asleep (UTC)
    clock = ScaledClock(night, 36_000.0)  # one simulated hour = 0.1 wall s
    clock.pause()
    sim = Simulation(_scenario(5), always_ok_api(), clock, [], duration_s=3600)
    clock.resume()
    wall_started = time.perf_counter()
    await sim.run()
    elapsed = time.perf_counter() - wall_started
    assert clock.now() >= sim.end_s
    assert 0.08 <= elapsed <= 1.0, elapsed


async def test_stop_ends_a_scaled_run_promptly() -> None:
    clock = ScaledClock(BUSY_START, 60.0)  # a day would take 24 wall minutes
    sim = Simulation(_scenario(20), always_ok_api(), clock, [], duration_s=86400)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, sim.stop)
    wall_started = time.perf_counter()
    await asyncio.wait_for(sim.run(), 5.0)
    assert time.perf_counter() - wall_started < 1.0
