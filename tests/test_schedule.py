"""The ``schedule:`` section (issue 15, must-have 1): business hours in a time zone,
weekdays, or a cron expression gate session starts on top of the routines."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from helpers import ListSink, always_ok_api, busy_scenario
from sim_engine import ActionRecord, Simulation
from sim_engine.engine.clock import FastForwardClock
from sim_engine.model.plan.events import ChunkPlanner, PlanModel
from sim_engine.model.plan.population import plan_population
from sim_engine.model.scenario import Scenario, ScenarioError, default_scenario
from sim_engine.model.schedule_spec import Day, Schedule, ScheduleSpec

LA = ZoneInfo("America/Los_Angeles")
# Monday 2026-03-02 00:00 in Los Angeles (08:00 UTC).
MONDAY_LA = datetime(2026, 3, 2, tzinfo=LA).timestamp()
SIGNUP = ("sign_up", "log_in", "delete_account")
WEEKDAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")


def _at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, 2 + day, hour, minute, tzinfo=LA).timestamp()


def test_business_hours_open_and_next_opening() -> None:
    s = Schedule(ScheduleSpec(timezone="America/Los_Angeles", hours="09:00-21:00",
                              days=("mon", "tue", "wed", "thu", "fri")))  # fmt: skip
    assert not s.is_open(_at(0, 8, 59))
    assert s.is_open(_at(0, 9, 0))
    assert s.is_open(_at(0, 20, 59))
    assert not s.is_open(_at(0, 21, 0))
    assert s.next_open(_at(0, 22)) == _at(1, 9)
    # Friday night -> Monday 09:00 (Saturday 7 March, Sunday 8 March is closed)
    assert s.next_open(_at(4, 21, 30)) == _at(7, 9)
    assert not s.is_open(_at(5, 12))
    assert s.next_open(_at(0, 10)) == _at(0, 10)  # open: now


def test_overnight_hours_belong_to_the_day_they_start() -> None:
    s = Schedule(ScheduleSpec(hours="22:00-06:00", days=("fri",)))
    fri_utc = datetime(2026, 3, 6, tzinfo=timezone.utc).timestamp()
    assert s.is_open(fri_utc + 23 * 3600)
    assert s.is_open(fri_utc + 86400 + 5 * 3600)  # Saturday 05:00: Friday's night
    assert not s.is_open(fri_utc + 5 * 3600)  # Friday 05:00: Thursday's night, closed


def test_cron_windows() -> None:
    s = Schedule(ScheduleSpec(cron="*/30 * * * *", window="5m"))
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc).timestamp()
    assert s.is_open(t0)
    assert s.is_open(t0 + 299)
    assert not s.is_open(t0 + 300)
    assert s.next_open(t0 + 300) == t0 + 1800
    assert s.spread_s() == 300


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"hours": "9-21"}, "hours must look like"),
        ({"hours": "09:00-09:00"}, "same time"),
        ({"cron": "every day"}, "not a cron expression"),
        ({"cron": "0 * * * *", "hours": "09:00-10:00"}, "either cron or hours"),
        ({"days": []}, "never open"),
        ({"days": ["someday"]}, "schedule.days"),
    ],
)
def test_bad_schedules_are_one_line_errors(section: dict[str, object], message: str) -> None:
    data = default_scenario().model_dump(mode="json")
    data["schedule"] = section
    with pytest.raises(ScenarioError, match=message):
        from sim_engine.model.scenario import validate_scenario

        validate_scenario(data)


async def _actions(scenario: Scenario, days: float) -> list[ActionRecord]:
    sink = ListSink()
    sim = Simulation(scenario, always_ok_api(), FastForwardClock(MONDAY_LA), sinks=[sink],
                     duration_s=days * 86400, secret="x")  # fmt: skip
    await sim.run()
    return [r for r in sink.records if isinstance(r, ActionRecord)]


async def test_business_hours_gate_every_session_start() -> None:
    """Seed 000: 9-21 in Los Angeles on weekdays. Without the schedule, a third of the
    default population's actions fall outside those hours (the control), so a gate that
    did nothing fails; with it, no session starts outside (sessions running at 21:00 may
    finish, so actions may run a little past the close, never before the opening)."""
    base = default_scenario().with_overrides(**{"population.initial": 60, "seed": 3})
    gated = base.model_copy(update={"schedule": ScheduleSpec(
        timezone="America/Los_Angeles", hours="09:00-21:00",
        days=("mon", "tue", "wed", "thu", "fri"))})  # fmt: skip
    free = await _actions(base, 7)
    outside = [a for a in free if not 9 <= datetime.fromtimestamp(a.sim_ts, LA).hour < 21]
    assert len(outside) > 0.15 * len(free)
    # A churned user's clean-up (delete_account, at its local midnight) is not a visit.
    actions = [a for a in await _actions(gated, 7) if a.action != "delete_account"]
    assert len(actions) > 200
    hours = Counter(datetime.fromtimestamp(a.sim_ts, LA).hour for a in actions)
    days = Counter(datetime.fromtimestamp(a.sim_ts, LA).weekday() for a in actions)
    assert all(h >= 9 for h in hours), hours
    late = sum(n for h, n in hours.items() if h >= 22)
    assert late < 0.02 * len(actions), hours  # at most a session's tail past 21:00
    weekend = sum(days[d] for d in (5, 6))
    assert weekend < 0.01 * len(actions), days


@pytest.mark.parametrize(
    "spec",
    [
        ScheduleSpec(timezone="America/Los_Angeles", hours="09:00-21:00", days=WEEKDAYS),
        ScheduleSpec(hours="22:00-06:00", days=("fri", "sat")),
        ScheduleSpec(timezone="Europe/Paris", days=("sun",)),  # whole days, across DST
        ScheduleSpec(cron="*/30 * * * *", window="5m"),
        ScheduleSpec(cron="0 9 * * 1", window="2h"),
    ],
    ids=["business", "overnight", "days", "cron", "weekly-cron"],
)
def test_openings_agree_with_is_open_and_next_open(spec: ScheduleSpec) -> None:
    """The planner's intervals answer like the engine's :meth:`Schedule.is_open` and
    :meth:`Schedule.next_open` at random instants over four weeks (DST on 8 and 29 March)."""
    s = Schedule(spec)
    lo = MONDAY_LA
    hi = lo + 28 * 86400
    opens, closes = (np.asarray(a) for a in s.openings(lo, hi))
    assert np.all(np.diff(opens) > 0) and np.all(np.diff(closes) >= 0) and opens[-1] > hi
    for t in np.random.default_rng(5).uniform(lo, hi, 2000).tolist():
        i = int(np.searchsorted(opens, t, side="right")) - 1
        is_open = i >= 0 and t < closes[i]
        assert is_open == s.is_open(t), (spec, t)
        assert (t if is_open else opens[i + 1]) == s.next_open(t), (spec, t)


def _planned(scenario: Scenario, users: int, days: int) -> tuple[list[float], list[float]]:
    """``generate``'s planner: (event times without sign-ups, session starts) from
    MONDAY_LA over ``days`` days."""
    pop = plan_population(scenario, users, days + 1, date(2026, 3, 2), 3)
    model = PlanModel(scenario)
    planner = ChunkPlanner(model, pop.slice(0, pop.size))
    signup = [model.names.index(n) for n in ("sign_up", "log_in")]
    times: list[float] = []
    starts: list[float] = []
    for d in range(days + 1):
        plan = planner.plan_day(d)
        times += plan.ts[~np.isin(plan.action, signup)].tolist()
        starts += plan.start.tolist()
    end = MONDAY_LA + days * 86400

    def within(ts: list[float]) -> list[float]:
        return [t for t in ts if MONDAY_LA <= t < end]

    return within(times), within(starts)


def _hourly_la(times: list[float]) -> np.ndarray:
    hours = Counter(datetime.fromtimestamp(t, LA).hour for t in times)
    counts = np.asarray([hours[h] for h in range(24)], dtype=float)
    shares: np.ndarray = counts / counts.sum()
    return shares


async def test_generate_gates_like_run() -> None:
    """Seed 000's business hours in ``generate``: the planner starts no session while the
    schedule is closed, and its actions fall in the same hours as the engine's (same
    scenario, 300 users, two weeks; they share the model, not their random numbers).
    Measured: 26,420 planned vs 27,529 engine actions, hourly L1 distance 0.11, share
    in the opening hour 0.229 vs 0.207. The ungated planner (the control) has 35 % of
    its actions outside the hours and an L1 distance of 0.72; a gate that dropped
    closed sessions instead of moving them to the opening would miss the opening-hour
    peak (the engine's 0.21)."""
    spec = ScheduleSpec(timezone="America/Los_Angeles", hours="09:00-21:00", days=WEEKDAYS)
    # Busy (helpers.busy_overrides, the figures above): the realistic defaults' heavy-tailed
    # per-user activity and churn hazard make 300 users' volume vary by 16 % from seed to
    # seed (planner, seeds 1-10: 6,600 to 11,078 actions), too much for the 12 % bound
    # (6,415 planned vs 5,279 simulated here with them; 3,000 users agree within 10 %).
    free = busy_scenario(**{"population.initial": 300, "population.signups_per_day": 0, "seed": 3})
    gated = free.model_copy(update={"schedule": spec})
    engine = [a.sim_ts for a in await _actions(gated, 14) if a.action not in SIGNUP]
    planned, starts = _planned(gated, 300, 14)
    schedule = Schedule(spec)
    assert len(starts) > 3000 and not [t for t in starts if not schedule.is_open(t)]
    assert 0.88 < len(planned) / len(engine) < 1.12
    hourly, expected = _hourly_la(planned), _hourly_la(engine)
    assert hourly[:9].sum() == 0 and hourly[22:].sum() < 0.02  # a session's tail at most
    assert not [t for t in planned if datetime.fromtimestamp(t, LA).weekday() >= 5]
    assert np.abs(hourly - expected).sum() < 0.25
    assert abs(hourly[9] - expected[9]) < 0.05 and expected[9] > 0.15  # the opening peak
    control = _hourly_la(_planned(free, 300, 14)[0])
    assert control[list(range(9)) + list(range(21, 24))].sum() > 0.2
    assert np.abs(control - expected).sum() > 0.5
