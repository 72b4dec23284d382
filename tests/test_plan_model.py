"""The vectorised planner against the behaviour model it plans in bulk.

The oracle is the model itself, called the scalar way the event engine calls it:
``CompiledPersona.session_start_within`` / ``next_session_start`` / ``think_time_s``
/ ``choose_action`` for sessions, ``new_status`` + ``decide_day`` for lifecycles,
with Python's ``random``. The planner (numpy, hashed draws) must agree with it in
distribution: hourly shares of events in local time, sessions per active user-day,
events per session, the action mix per persona and routine state, and the retention
and lifecycle-state shares of a cohort. Each check is also run against a deliberately
wrong planner (UTC instead of local time; uniform action weights; one session a day;
patterns never assigned; no life events) and must reject it: none passes whatever it gets.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from helpers import uniform_action_draw
from sim_engine.model.behaviour import CompiledPersona, compile_personas
from sim_engine.model.lifecycle import (
    REFERENCE_MEAN_ACTIONS,
    LifecycleSpec,
    LifecycleState,
    decide_day,
    depth_range,
    geometric_depth,
    new_status,
)
from sim_engine.model.plan import events as plan_events
from sim_engine.model.plan.calendar import ZoneCalendar
from sim_engine.model.plan.events import ChunkPlanner, DayPlan, PlanModel
from sim_engine.model.plan.lifecycle import STATES
from sim_engine.model.plan.population import ACTIVE_BIT, Population, plan_population
from sim_engine.model.plan.propensity import propensities
from sim_engine.model.plan.rand import user_keys
from sim_engine.model.plan.tables import ActionTable
from sim_engine.model.scenario import Scenario, default_scenario

START = date(2026, 3, 2)  # a Monday; New York changes to summer time on Sunday 8 March
DAYS = 14
ZONES = ("America/New_York", "Asia/Tokyo")
KEY = 12345
ACTIVE = STATES.index(LifecycleState.ACTIVE)
Rows = list[tuple[int, int, int, float, str, str]]  # (user, day, session, time, state, action)


def _scenario() -> Scenario:
    return default_scenario().with_overrides(
        **{"population.timezones": {z: 1.0 for z in ZONES}, "population.signups_per_day": 0}
    )


def _population(scenario: Scenario, users: int) -> Population:
    """Users all ACTIVE and active every day, signed up before day 0, half in each zone."""
    cal = ZoneCalendar.build(list(ZONES), START, DAYS)
    idx = np.arange(users)
    codes = np.full((users, DAYS), ACTIVE | ACTIVE_BIT, np.uint8)
    return Population(
        key=KEY,
        calendar=cal,
        created_ts=cal.midnights[idx % 2, 0] - 86400.0,
        join_day=np.full(users, -1, np.int32),
        persona=(idx // 2 % len(scenario.personas)).astype(np.int16),
        zone=(idx % 2).astype(np.int16),
        segment=np.zeros(users, np.int8),
        founder=np.zeros(users, np.bool_),
        codes=codes,
        churn_day=np.full(users, -1, np.int32),
    )


def _plan(scenario: Scenario, users: int) -> list[DayPlan]:
    planner = ChunkPlanner(PlanModel(scenario), _population(scenario, users))
    planner.signed[:] = True
    return [planner.plan_day(d) for d in range(DAYS)]


# -- the scalar oracle ------------------------------------------------------------------------


def _offset(zone: ZoneInfo, t: float) -> float:
    delta = datetime.fromtimestamp(t, zone).utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def _scalar_day(
    persona: CompiledPersona,
    life: LifecycleSpec,
    zone: ZoneInfo,
    day: date,
    rng: random.Random,
    propensity: tuple[float, float] = (1.0, 1.0),
) -> Iterator[tuple[int, float, str, str]]:
    """One ACTIVE user-day the engine's way: yields (session number, time, state, action).

    ``propensity``: the user's (activity, posting) multipliers."""
    activity, posting = propensity
    start = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp()
    offset = _offset(zone, start + 1.0)
    low, high = depth_range(life, "ACTIVE", persona.session.mean_actions / REFERENCE_MEAN_ACTIONS)
    t = persona.session_start_within(start, end, offset, rng)
    session = 0
    while t < end:
        length = min(geometric_depth(low, high, rng.random()), persona.session.max_actions)
        now = last = t
        for step in range(length):
            state = persona.state_at(now, _offset(zone, now))
            if state == "sleeping":
                break
            yield session, now, state, persona.choose_action(state, rng, posting=posting)
            last = now
            think = persona.think_time_s(rng)
            if step < length - 1 and think > persona.session.inactivity_timeout_s:
                break
            now += think
        session += 1
        t = min(
            persona.next_session_start(last, offset, rng, activity),
            persona.follow_up_start(last, rng),
        )


def _scalar(scenario: Scenario, users: int) -> Rows:
    """(user, day, session, time, state, action) for the same users as :func:`_population`."""
    personas = compile_personas(scenario)
    rng = random.Random(99)
    rows = []
    keys = user_keys(KEY, np.arange(users, dtype=np.int64))  # the planner's users' keys
    for user in range(users):
        persona = personas[user // 2 % len(personas)]
        zone = ZoneInfo(ZONES[user % 2])
        activity, posting = propensities(
            keys[user : user + 1], persona.spec.activity_sigma, persona.spec.posting_sigma
        )
        mult = (float(activity[0]), float(posting[0]))
        for d in range(DAYS):
            for s, t, state, action in _scalar_day(
                persona, scenario.lifecycle, zone, START + timedelta(days=d), rng, mult
            ):
                rows.append((user, d, s, t, state, action))
    return rows


@pytest.fixture(scope="module")
def scalar() -> Rows:
    return _scalar(_scenario(), 600)


# -- statistics -------------------------------------------------------------------------------


def _local_hours(users: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Local hour of each event, from zoneinfo (not from the planner's offset column)."""
    hours = np.empty(len(ts), np.int64)
    for i, (u, t) in enumerate(zip(users.tolist(), ts.tolist(), strict=True)):
        hours[i] = datetime.fromtimestamp(t, ZoneInfo(ZONES[u % 2])).hour
    return hours


def _shares(hours: np.ndarray) -> np.ndarray:
    counts = np.bincount(hours, minlength=24).astype(float)
    shares: np.ndarray = counts / counts.sum()
    return shares


def _figures(plans: list[DayPlan]) -> dict[str, float]:
    sessions = sum(len(p.session_id) for p in plans)
    user_days = sum(len(np.unique(p.s_user)) for p in plans)
    events = sum(p.events for p in plans)
    return {"sessions_per_day": sessions / user_days, "events_per_session": events / sessions}


def _scalar_figures(rows: Rows) -> dict[str, float]:
    sessions = len({(u, d, s) for u, d, s, *_ in rows})
    user_days = len({(u, d) for u, d, *_ in rows})
    return {"sessions_per_day": sessions / user_days, "events_per_session": len(rows) / sessions}


def _hourly_l1(plans: list[DayPlan], rows: Rows) -> float:
    user = np.concatenate([p.user for p in plans])
    ts = np.concatenate([p.ts for p in plans])
    ref_users = np.asarray([r[0] for r in rows])
    ref_ts = np.asarray([r[3] for r in rows])
    return float(
        np.abs(_shares(_local_hours(user, ts)) - _shares(_local_hours(ref_users, ref_ts))).sum()
    )


# -- hourly shares in local time ---------------------------------------------------------------

# L1 distance of two 24-bin histograms of about 60,000 events each: sampling noise is about
# 0.02; a planner in UTC shifts New York by 5 hours and Tokyo by 9 and lands near 0.9.
HOURLY_L1 = 0.06


def test_hourly_shares_in_local_time_follow_the_model(scalar: Rows) -> None:
    assert _hourly_l1(_plan(_scenario(), 600), scalar) < HOURLY_L1


def test_a_planner_in_utc_is_rejected(scalar: Rows, monkeypatch: pytest.MonkeyPatch) -> None:
    def utc(self: ZoneCalendar, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.zeros(t.shape, np.int32)

    monkeypatch.setattr(ZoneCalendar, "offsets", utc)
    assert _hourly_l1(_plan(_scenario(), 600), scalar) > HOURLY_L1 * 3


# -- sessions per active user-day, events per session ------------------------------------------


def test_sessions_per_day_and_events_per_session_follow_the_model(scalar: Rows) -> None:
    got, want = _figures(_plan(_scenario(), 600)), _scalar_figures(scalar)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=0.05), (name, got, want)


def test_one_session_a_day_is_rejected(scalar: Rows, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_events, "MAX_ROUNDS", 0)
    got, want = _figures(_plan(_scenario(), 600)), _scalar_figures(scalar)
    assert got["sessions_per_day"] < want["sessions_per_day"] * 0.8


# -- action mix per persona and routine state ---------------------------------------------------


def _worst_mix_gap(plans: list[DayPlan], scenario: Scenario) -> float:
    """Largest |observed - model probability| over personas x states x actions."""
    model = PlanModel(scenario)
    personas = compile_personas(scenario)
    pop = _population(scenario, 600)
    worst = 0.0
    action = np.concatenate([p.action for p in plans])
    routine = np.concatenate([p.routine for p in plans])
    persona = pop.persona[np.concatenate([p.user for p in plans])]
    for p in personas:
        for code, state in ((1, "working"), (2, "relaxing")):
            mask = (persona == p.index) & (routine == code)
            counts = Counter(model.names[a] for a in action[mask].tolist())
            total = sum(counts.values())
            assert total > 1000, (p.name, state, total)
            for name, prob in p.action_probabilities(state).items():
                worst = max(worst, abs(counts[name] / total - prob))
    return worst


def _same_posting() -> Scenario:
    """The scenario with every user's posting multiplier 1 (``posting_sigma`` 0), so the
    mix is the weights' own; tests/test_realism_model.py tests the multiplier."""
    personas = _scenario().model_dump(mode="json")["personas"]
    for spec in personas.values():
        spec["posting_sigma"] = 0.0
    return _scenario().with_overrides(personas=personas)


def test_action_mix_per_persona_and_state_follows_the_weights() -> None:
    # Each cell has over 1,000 events: 4 standard errors of a share are at most 0.06,
    # and under 0.03 for all but the smallest cells.
    assert _worst_mix_gap(_plan(_same_posting(), 600), _same_posting()) < 0.04


def test_uniform_action_weights_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ActionTable, "draw", uniform_action_draw)
    assert _worst_mix_gap(_plan(_same_posting(), 600), _same_posting()) > 0.1


# -- retention and lifecycle states of a cohort -------------------------------------------------

COHORT, LIFE_DAYS = 3000, 61


def _scalar_cohort(spec: LifecycleSpec, weights: tuple[float, ...] = (1.0,) * 7) -> np.ndarray:
    """(users, days) lifecycle code: state, +8 when active (the planner's code layout).

    ``weights``: the personas' day weights by weekday (the default routine's are the
    same for every persona)."""
    rng = random.Random(5)
    out = np.zeros((COHORT, LIFE_DAYS), np.uint8)
    states = list(LifecycleState)
    for u in range(COHORT):
        status = new_status(spec, START.toordinal(), rng)
        out[u, 0] = 8
        for d in range(1, LIFE_DAYS):
            today = START + timedelta(days=d)
            decision = decide_day(spec, status, today, rng, day_weight=weights[today.weekday()])
            out[u, d] = states.index(status.state) | (8 if decision.active else 0)
    return out


def _cohort_figures(codes: np.ndarray) -> dict[str, float]:
    active = (codes & 8) != 0
    figures = {f"D{n}": float(active[:, n].mean()) for n in (1, 7, 14, 30, 60)}
    for day in (30, 60):
        for s, state in enumerate(STATES):
            figures[f"{state.value}@{day}"] = float(((codes[:, day] & 7) == s).mean())
    return figures


def _planned_cohort(scenario: Scenario) -> np.ndarray:
    pop = plan_population(scenario, COHORT, LIFE_DAYS, START, 11)
    return pop.codes


def _no_hazard() -> Scenario:
    """The scenario without the churn hazard: most of a cohort stays, so the patterns and
    life events show in its retention and states (with the hazard most users are gone
    before patterns are drawn on day 14)."""
    return _scenario().with_overrides(**{"lifecycle.churn_hazard.first_day": 0.0})


def _weights(scenario: Scenario) -> tuple[float, ...]:
    weights = compile_personas(scenario)[0].week.day_weights
    assert all(p.week.day_weights == weights for p in compile_personas(scenario))
    return weights


@pytest.fixture(scope="module")
def scalar_cohort() -> dict[str, float]:
    return _cohort_figures(_scalar_cohort(_scenario().lifecycle, _weights(_scenario())))


@pytest.fixture(scope="module")
def scalar_cohort_no_hazard() -> dict[str, float]:
    return _cohort_figures(_scalar_cohort(_no_hazard().lifecycle, _weights(_no_hazard())))


def _worst_cohort_gap(scenario: Scenario, want: dict[str, float]) -> float:
    got = _cohort_figures(_planned_cohort(scenario))
    return max(abs(got[k] - want[k]) for k in want)


def test_retention_and_state_shares_follow_decide_day(
    scalar_cohort: dict[str, float], scalar_cohort_no_hazard: dict[str, float]
) -> None:
    # Shares of 3,000 users: 4 standard errors are at most 0.037.
    assert _worst_cohort_gap(_scenario(), scalar_cohort) < 0.04
    assert _worst_cohort_gap(_no_hazard(), scalar_cohort_no_hazard) < 0.04


def test_a_lifecycle_without_the_churn_hazard_is_rejected(
    scalar_cohort: dict[str, float],
) -> None:
    assert _worst_cohort_gap(_no_hazard(), scalar_cohort) > 0.3


def test_a_lifecycle_that_never_assigns_patterns_is_rejected(
    scalar_cohort_no_hazard: dict[str, float],
) -> None:
    # Everyone stays DAILY (the pattern is never drawn from the segment's table).
    wrong = _no_hazard().with_overrides(**{"lifecycle.pattern_after_days": 1_000_000})
    assert _worst_cohort_gap(wrong, scalar_cohort_no_hazard) > 0.1


def test_a_lifecycle_without_life_events_is_rejected(
    scalar_cohort_no_hazard: dict[str, float],
) -> None:
    # No vacations, sickness, busy weeks or hype: a planner skipping ``_events``.
    wrong = _no_hazard().with_overrides(**{"lifecycle.events": {}})
    assert _worst_cohort_gap(wrong, scalar_cohort_no_hazard) > 0.06
