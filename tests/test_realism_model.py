"""The model's realism mechanisms (issue 11 item 2), each planned both ways, seeded.

* geometric session lengths (``lifecycle.session_depth``): most sessions as short as
  the range allows, instead of every length in it equally likely;
* per-user propensities: heavy-tailed activity and posting multipliers, identical
  for a user in the engine and in the planner;
* a churn hazard that falls with tenure: cohort survival close to a power law;
* follow-up sessions: bursty returns after a session;
* day weights: lighter routine days are also days fewer users come.

Each test names the figure the old model gives, which its tolerance rejects.
"""

from __future__ import annotations

import asyncio
import random
from datetime import date, datetime, timedelta, timezone

import numpy as np

from helpers import ListSink, always_ok_api
from sim_engine import ActionRecord, Simulation
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.policies import PersonaPolicy
from sim_engine.model.behaviour import compile_personas
from sim_engine.model.lifecycle import (
    LifecycleSpec,
    LifecycleState,
    decide_day,
    geometric_depth,
    new_status,
)
from sim_engine.model.plan.events import ChunkPlanner, PlanModel, geometric_depths
from sim_engine.model.plan.lifecycle import CHURNED, LifeArrays
from sim_engine.model.plan.population import plan_population
from sim_engine.model.plan.propensity import propensities, user_propensities
from sim_engine.model.plan.rand import run_key, user_keys
from sim_engine.model.plan.tables import ActionTable
from sim_engine.model.population import SimUser
from sim_engine.model.scenario import Scenario, default_scenario
from sim_engine.realism import facts

N = 20_000
START = date(2026, 3, 2)  # a Monday


def _gini(x: np.ndarray) -> float:
    s = np.sort(x)
    cum = np.cumsum(s)
    return float((len(s) + 1 - 2 * (cum / cum[-1]).sum()) / len(s))


# -- geometric session lengths -----------------------------------------------------------


def test_session_depth_is_geometric_in_both_planners() -> None:
    # Range 1-5: geometric from 1 with mean extra (5 - 1) / 2 = 2, so P(1) = 1/3 and
    # P(k) / P(k - 1) = 2/3; a uniform draw (the old model) gives P(1) = 0.2.
    rng = random.Random(3)
    scalar = np.asarray([geometric_depth(1, 5, rng.random()) for _ in range(N)])
    u = np.random.default_rng(3).random(N)
    bulk = geometric_depths(np.ones(N, np.int64), np.full(N, 5, np.int64), u)
    for lengths in (scalar, bulk):
        share = np.bincount(lengths, minlength=6)[1:] / N
        assert abs(share[0] - 1 / 3) < 0.015
        assert abs(share[1] / share[0] - 2 / 3) < 0.05
        assert lengths.max() == 5
    assert geometric_depth(3, 3, 0.99) == 3


def test_engine_session_lengths_follow_the_state_range() -> None:
    spec = LifecycleSpec()  # ACTIVE 2-5: P(2) = 1 / (1 + 1.5) = 0.4 (uniform: 0.25)
    persona = compile_personas(default_scenario())[0]
    persona_scale = persona.session.mean_actions / 4.0
    policy = PersonaPolicy(spec)
    user = SimUser(1, 0, 0.0, "A B", "a@b.test", None, 1)  # type: ignore[arg-type]
    rng = random.Random(5)
    user.life = new_status(spec, 0, rng)
    user.life.state = LifecycleState.ACTIVE
    low = max(1, round(2 * persona_scale))
    lengths = np.asarray([policy.length(persona, user, rng) for _ in range(N)])
    high = max(low, round(5 * persona_scale))
    expected = 1.0 / (1.0 + (high - low) / 2.0) if high > low else 1.0
    assert abs(float((lengths == low).mean()) - expected) < 0.015


# -- per-user propensities ---------------------------------------------------------------


def test_propensities_are_heavy_tailed_with_mean_one_and_the_same_both_ways() -> None:
    keys = user_keys(run_key(7), np.arange(N, dtype=np.int64))
    activity, posting = propensities(keys, 1.0, 2.0)
    assert abs(activity.mean() - 1.0) < 0.05
    assert abs(np.median(np.log(activity)) + 0.5) < 0.03  # median exp(-sigma^2 / 2)
    assert abs(np.std(np.log(posting)) - 2.0) < 0.05
    # The top 10 % of users hold most of the posting propensity (a Gini the old,
    # homogeneous model cannot have: 0).
    top = np.sort(posting)[-N // 10 :].sum() / posting.sum()
    assert top > 0.6
    assert _gini(posting) > 0.8
    for user_id in (1, 2, 999):
        a, p = user_propensities(7, user_id, 1.0, 2.0)
        assert (a, p) == (activity[user_id - 1], posting[user_id - 1])
    assert user_propensities(7, 5, 0.0, 0.0) == (1.0, 1.0)


def test_posting_multiplier_scales_write_odds_in_engine_and_planner() -> None:
    persona = compile_personas(default_scenario())[1]  # chatterbox
    probs = persona.action_probabilities("relaxing")
    w = sum(v for k, v in probs.items() if k in persona.writes)
    m = 5.0
    want = m * w / (m * w + 1 - w)  # write share with writes weighing 5x
    rng = random.Random(9)
    drawn = [persona.choose_action("relaxing", rng, posting=m) for _ in range(N)]
    scalar = float(np.mean([a in persona.writes for a in drawn]))
    model = PlanModel(default_scenario())
    table: ActionTable = model.actions
    codes = table.draw(
        np.full(N, 1, np.int64), np.full(N, 2, np.int8), np.random.default_rng(9).random(N),
        np.full(N, m),
    )  # fmt: skip
    names = np.asarray(model.names)[codes]
    bulk = float(np.isin(names, sorted(persona.writes)).mean())
    for share in (scalar, bulk):
        assert abs(share - want) < 0.015, (share, want, w)  # without the multiplier: w
    assert abs(want - w) > 0.1


# -- churn hazard ------------------------------------------------------------------------


def _hazard_spec() -> LifecycleSpec:
    return LifecycleSpec.model_validate({"churn_hazard": {"first_day": 0.45, "decay": 1.0}})


def _survival(days: int, first_day: float) -> np.ndarray:
    a = np.arange(1, days + 1, dtype=np.float64)
    out: np.ndarray = np.cumprod(1 - first_day * a**-1.0)
    return out


def test_churn_hazard_survival_both_ways() -> None:
    spec = _hazard_spec()
    want = _survival(30, 0.45)  # day 1: 0.55, day 7: 0.32, day 30: 0.19
    # The event engine's scalar decisions.
    users = 4000
    alive = np.zeros(30)
    rng = random.Random(1)
    for _ in range(users):
        status = new_status(spec, START.toordinal(), rng)
        for d in range(1, 31):
            decide_day(spec, status, START + timedelta(days=d), rng)
            if status.state is LifecycleState.CHURNED:
                break
            alive[d - 1] += 1
    assert np.abs(alive / users - want).max() < 0.03
    # The planner's arrays.
    life = LifeArrays(spec, N)
    idx = np.arange(N, dtype=np.int64)
    keys = user_keys(run_key(2), idx)
    life.admit(idx, keys, 0, np.zeros(N, np.bool_))
    bulk = []
    for d in range(1, 31):
        live = idx[life.state != CHURNED]
        life.decide(live, keys[live], d, START + timedelta(days=d))
        bulk.append(float((life.state != CHURNED).mean()))
    assert np.abs(np.asarray(bulk) - want).max() < 0.015
    # A power law: log survival is close to linear in log day (the old model keeps
    # every user for 30+ days: survival 1).
    slope, _ = np.polyfit(np.log(np.arange(1, 31)), np.log(bulk), 1)
    assert -0.6 < slope < -0.3


def test_founders_never_quit() -> None:
    spec = _hazard_spec()
    rng = random.Random(4)
    status = new_status(spec, START.toordinal(), rng)
    for d in range(1, 61):
        decide_day(spec, status, START + timedelta(days=d), rng, churnable=False)
    assert status.state is not LifecycleState.CHURNED


# -- follow-up sessions and day weights ---------------------------------------------------


def _planned_gaps(scenario: Scenario, users: int = 3000, days: int = 14) -> np.ndarray:
    pop = plan_population(scenario, users, days, START, 7)
    planner = ChunkPlanner(PlanModel(scenario), pop.slice(0, pop.size))
    starts, who = [], []
    for d in range(days):
        plan = planner.plan_day(d)
        starts.append(plan.start)
        who.append(plan.s_user)
    s, u = np.concatenate(starts), np.concatenate(who)
    order = np.lexsort((s, u))
    s, u = s[order], u[order]
    same = u[1:] == u[:-1]
    out: np.ndarray = np.diff(s)[same]
    return out


def _one_zone(follow_up: float) -> Scenario:
    personas = default_scenario().model_dump(mode="json")["personas"]
    for spec in personas.values():
        spec["session"]["follow_up"] = {"probability": follow_up, "median_s": 3600, "sigma": 1}
    return default_scenario().with_overrides(
        **{
            "population.timezones": {"Europe/London": 1.0},
            "lifecycle.enabled": False,
            "personas": personas,
        }
    )


def test_follow_up_sessions_cluster_returns() -> None:
    # Gaps between one user's session starts: with follow-ups (probability 0.5, median
    # an hour) a share of returns come within two hours, far more than without.
    follow = _planned_gaps(_one_zone(0.5))
    plain = _planned_gaps(_one_zone(0.0))
    near = float((follow < 7200).mean())
    near_plain = float((plain < 7200).mean())
    assert near > near_plain + 0.1, (near, near_plain)
    # The engine's policy draws the same delays: the earlier of the routine and the
    # follow-up, which is within two hours in about half of the cases plus the routine's.
    persona = compile_personas(_one_zone(0.5))[0]
    policy = PersonaPolicy(None)
    user = SimUser(1, 0, 0.0, "A B", "a@b.test", None, 1)  # type: ignore[arg-type]
    rng = random.Random(8)
    t0 = 1772445600.0  # Monday 2026-03-02 10:00 UTC, a relaxing hour in London
    gaps = np.asarray([policy.next_start(persona, user, t0, 0.0, rng, ended=True) - t0
                       for _ in range(4000)])  # fmt: skip
    again = np.asarray([policy.next_start(persona, user, t0, 0.0, rng) - t0 for _ in range(4000)])
    assert float((gaps < 7200).mean()) > float((again < 7200).mean()) + 0.25


def test_lighter_days_have_fewer_active_users() -> None:
    # The default routine's weekend days weigh less than a weekday; the return
    # probability follows (the old model ignored the routine: same share every day).
    persona = compile_personas(default_scenario())[0]
    assert persona.day_weight(0) == 1.0
    assert 0.5 < persona.day_weight(5) < 0.9
    spec = LifecycleSpec()
    rng = random.Random(6)
    active = {True: 0, False: 0}
    for i in range(4000):
        status = new_status(spec, 0, rng)
        status.state = LifecycleState.ACTIVE
        status.engagement = 50.0
        weekend = i % 2 == 0
        d = decide_day(
            spec, status, START + timedelta(days=5 if weekend else 1), rng,
            day_weight=persona.day_weight(5 if weekend else 1),
        )  # fmt: skip
        active[weekend] += d.active
    ratio = active[True] / active[False]
    assert abs(ratio - persona.day_weight(5)) < 0.06


def test_the_default_scenario_meets_the_realism_goals_in_both_planners() -> None:
    # The default population, smaller than bench/realism.py's (1,500 users, 35 days, one
    # zone), measured with the realism estimators. The seed 003 defaults gave 11 %
    # never-writers, 5.0 actions per session, 0.1 % single-action sessions, reads per
    # write 4.9, weekend/weekday 0.93 and D30 retention 54 %: each fails here.
    scenario = default_scenario().with_overrides(**{"population.timezones": {"UTC": 1.0}})
    days = 35
    pop = plan_population(scenario, 1500, days, START, 7)
    model = PlanModel(scenario)
    planner = ChunkPlanner(model, pop.slice(0, pop.size))
    plans = [planner.plan_day(d) for d in range(days)]
    names = np.asarray(model.names)[np.concatenate([p.action for p in plans])]
    keep = ~np.isin(names, ("sign_up", "log_in"))
    f = facts(
        np.concatenate([p.user for p in plans])[keep],
        np.concatenate([p.ts for p in plans])[keep],
        is_write=np.isin(names[keep], ("create_post", "update_post", "delete_post")),
        span_end_s=float(pop.calendar.midnights[0, -1]),
    )
    assert f.never_write_share is not None and f.never_write_share >= 0.6
    assert f.gini_writes is not None and f.gini_writes >= 0.7
    assert f.reads_per_write is not None and f.reads_per_write >= 20
    assert 2.0 <= f.session_mean_events <= 4.0
    assert 0.4 <= f.session_single_share <= 0.7
    assert f.d30 is not None and 0.04 <= f.d30 <= 0.16
    assert f.weekend_weekday is not None and 0.5 <= f.weekend_weekday <= 0.85
    assert f.burstiness_median is not None and 0.28 <= f.burstiness_median <= 0.6
    assert f.trough_peak <= 0.1


def test_the_engine_runs_the_default_scenario_as_the_planner_does() -> None:
    # The event engine on the same default population (600 users, 21 days, one zone,
    # an instant mock target): the same facts within the bench goals. The parity test
    # compares the two figure by figure.
    scenario = default_scenario().with_overrides(
        **{"population.timezones": {"UTC": 1.0}, "population.initial": 600, "seed": 5}
    )
    sink = ListSink()
    start = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    sim = Simulation(scenario, always_ok_api(), FastForwardClock(start), [sink], 21 * 86400.0, "x")
    asyncio.run(sim.run())
    acts = [r for r in sink.records if isinstance(r, ActionRecord)
            and r.action not in ("sign_up", "log_in", "delete_account")]  # fmt: skip
    f = facts(
        np.asarray([r.user_id for r in acts]),
        np.asarray([r.sim_ts for r in acts]),
        is_write=np.asarray(
            [r.action in ("create_post", "update_post", "delete_post") for r in acts]
        ),
    )
    assert f.never_write_share is not None and f.never_write_share >= 0.6
    assert f.reads_per_write is not None and f.reads_per_write >= 20
    assert 2.0 <= f.session_mean_events <= 4.0
    assert 0.4 <= f.session_single_share <= 0.7
