"""Tests of the long-term dynamics (``sim_engine.model.lifecycle``): pure, seeded and fast.

Statistical checks use fixed seeds and tolerances of about ±4 sigma (or wider
where noted); the comment beside each names a plausible wrong model and why it
falls outside the tolerance. Exact arithmetic (streaks, engagement, the
DORMANT multiplier, boundaries in days) is checked on single, hand-built
statuses.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

import pytest

from sim_engine.model.lifecycle import (
    ALLOWED_TRANSITIONS,
    ActivityPattern,
    DayDecision,
    LifecycleSpec,
    LifecycleState,
    LifecycleStatus,
    LifeEvent,
    assign_pattern,
    decide_day,
    new_status,
    pattern_probability,
    session_depth,
)

S = LifecycleState
P = ActivityPattern
E = LifeEvent
MONDAY = date(2026, 3, 2)  # a Monday
NEVER = 10**6  # days: "never" for dormant_after_days / churn_after_days


def tolerance(p: float, n: int, sigmas: float = 4.0) -> float:
    """``sigmas`` binomial standard deviations of a proportion ``p`` over ``n`` trials."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def make_spec(**changes: Any) -> LifecycleSpec:
    """A LifecycleSpec built from its dict form (nested dicts keep unnamed defaults)."""
    return LifecycleSpec.model_validate(changes)


def neutral_spec(**changes: Any) -> LifecycleSpec:
    """Only the pattern's base probability decides: no events, streak bonus, engagement
    shift, dormancy or churn."""
    data: dict[str, Any] = {
        "events": {},
        "engagement": {"enabled": False},
        "streak": {"bonus": 0.0},
        "dormant_after_days": NEVER,
        "churn_after_days": NEVER,
    }
    data.update(changes)
    return make_spec(**data)


def _state(status: LifecycleStatus) -> LifecycleState:
    """``status.state``, read through a call: mypy does not carry an earlier check over."""
    return status.state


def status_for(
    pattern: P = P.DAILY,
    state: S = S.ACTIVE,
    *,
    engagement: float = 50.0,
    streak: int = 0,
    inactive_days: int = 0,
    day: date = MONDAY,
    segment: str = "Standard",
) -> LifecycleStatus:
    """A settled user (pattern already assigned, long past NEW) in a known state."""
    return LifecycleStatus(
        segment=segment,
        signup_day=day.toordinal() - 400,
        engagement=engagement,
        state=state,
        pattern=pattern,
        pattern_assigned=True,
        streak=streak,
        inactive_days=inactive_days,
    )


def days_from(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


# -- the state machine itself --------------------------------------------------------------


def test_allowed_transitions_are_the_issue_s_state_machine() -> None:
    expected = {
        S.NEW: {S.ACTIVE, S.CASUAL, S.DORMANT, S.CHURNED},
        S.ACTIVE: {S.CASUAL, S.DORMANT, S.CHURNED},
        S.CASUAL: {S.ACTIVE, S.DORMANT, S.CHURNED},
        S.DORMANT: {S.ACTIVE, S.CHURNED},
        S.CHURNED: set(),
    }
    assert expected == ALLOWED_TRANSITIONS
    # CHURNED is reachable from every other state (DORMANT after long inactivity, any
    # state by the churn hazard), and is final.
    assert [s for s, nxt in ALLOWED_TRANSITIONS.items() if S.CHURNED in nxt] == [
        S.NEW,
        S.ACTIVE,
        S.CASUAL,
        S.DORMANT,
    ]


def test_defaults_are_seed_003s_figures() -> None:
    spec = LifecycleSpec()
    assert (spec.new_days, spec.pattern_after_days) == (7, 14)
    assert (spec.dormant_after_days, spec.churn_after_days) == (14, 30)
    assert spec.churn_daily_probability == 0.03
    pat = spec.patterns
    assert (pat.daily, pat.regular, pat.weekend_weekday, pat.weekend_weekend) == (
        0.85,
        0.45,
        0.15,
        0.85,
    )
    assert (pat.binge_normal, pat.binge_binging, pat.monthly, pat.monthly_spike) == (
        0.05,
        0.90,
        0.03,
        0.80,
    )
    assert (pat.binge_days.low, pat.binge_days.high) == (3, 7)
    assert (pat.cooldown_days.low, pat.cooldown_days.high) == (10, 21)
    assert (pat.monthly_spike_days.low, pat.monthly_spike_days.high) == (1, 3)
    assert pat.regular_boost_weekdays == (3, 4, 5)  # Thursday, Friday, Saturday
    events = {
        e: (v.daily_probability, v.days.low, v.days.high, v.return_probability)
        for e, v in spec.events.items()
    }
    assert events == {
        E.VACATION: (0.005, 7, 14, 0.0),
        E.SICK: (0.01, 3, 5, 0.10),
        E.BUSY_WORK: (0.02, 5, 10, 0.20),
        E.NEW_RELEASE_HYPE: (0.01, 3, 7, 0.95),
    }
    st, eng = spec.streak, spec.engagement
    assert (st.every_days, st.bonus, st.max_bonus, st.break_min_days, st.break_penalty) == (
        3,
        0.05,
        0.20,
        7,
        10.0,
    )
    assert (eng.start.low, eng.start.high, eng.active_gain, eng.inactive_loss, eng.divisor) == (
        85,
        95,
        2.0,
        1.0,
        200.0,
    )
    depth = {k: (v.low, v.high) for k, v in spec.session_depth.items()}
    assert depth["NEW"] == (3, 8) and depth["ACTIVE"] == (2, 5)
    assert depth["CASUAL"] == (1, 3) and depth["BINGE"] == (5, 15)
    assert spec.cleanup.delete_share == 0.9
    assert (spec.replacement.target_pool, spec.replacement.daily.low) == (400, 2)
    assert spec.replacement.daily.high == 5 and spec.replacement.enabled is False


def test_new_status_starts_new_daily_with_engagement_85_to_95() -> None:
    spec = LifecycleSpec()
    rng = random.Random(1)
    scores: Counter[float] = Counter()
    for _ in range(3000):
        st = new_status(spec, MONDAY.toordinal(), rng)
        assert (st.state, st.pattern, st.pattern_assigned) == (S.NEW, P.DAILY, False)
        assert st.signup_day == MONDAY.toordinal() and st.segment in spec.segments
        scores[st.engagement] += 1
    # Whole numbers 85..95, every one of them drawn (a 0-100 or 85-94 draw would fail).
    assert set(scores) == {float(v) for v in range(85, 96)}


# -- pattern assignment ---------------------------------------------------------------------


def test_pattern_shares_after_assignment_match_the_segment_mix() -> None:
    # 10,000 new users stepped day by day through their first 14 days with the default
    # spec: each gets its pattern on day 14 exactly (never before), drawn from its
    # segment's distribution. Expected overall share = Σ_segment share × distribution
    # (DAILY .15, REGULAR .3875, WEEKEND .20, BINGE .15, MONTHLY .1125); tolerance
    # ±2 points (about ±4σ for n = 10,000). A uniform draw (20 % each) misses REGULAR
    # by 19 points; ignoring the segment is caught by the per-segment check below
    # (Premium's DAILY is .25, Basic's .05, tolerance about ±3.5 points).
    spec = LifecycleSpec()
    rng = random.Random(2026)
    n = 10_000
    start = MONDAY.toordinal()
    by_segment: dict[str, Counter[P]] = defaultdict(Counter)
    overall: Counter[P] = Counter()
    for _ in range(n):
        st = new_status(spec, start, rng)
        assigned_on = None
        for age in range(1, 15):
            decision = decide_day(spec, st, date.fromordinal(start + age), rng)
            changes = [t for t in decision.transitions if t.change == "pattern"]
            if changes:
                assert assigned_on is None, "the pattern is assigned once"
                assigned_on = age
                (t,) = changes
                assert t.old == "DAILY" and t.new == st.pattern.value and t.reason
            elif assigned_on is None:
                assert st.pattern is P.DAILY and not st.pattern_assigned
        assert assigned_on == 14
        assert st.pattern_assigned
        by_segment[st.segment][st.pattern] += 1
        overall[st.pattern] += 1
    seg_total = sum(spec.segments.values())
    for pattern in P:
        expected = sum(
            spec.segments[s] / seg_total * spec.pattern_distribution[s][pattern]
            for s in spec.segments
        )
        assert abs(overall[pattern] / n - expected) <= 0.02, (pattern, overall[pattern] / n)
    for segment, share in spec.segments.items():
        count = sum(by_segment[segment].values())
        assert abs(count / n - share / seg_total) <= tolerance(share / seg_total, n)
        for pattern, p in spec.pattern_distribution[segment].items():
            got = by_segment[segment][pattern] / count
            assert abs(got - p) <= tolerance(p, count), (segment, pattern, got, p)


def test_assign_pattern_follows_a_custom_distribution() -> None:
    # A custom single-segment distribution: MONTHLY .7, BINGE .3 (others 0).
    spec = make_spec(
        segments={"Only": 1.0},
        pattern_distribution={"Only": {"MONTHLY": 0.7, "BINGE": 0.3, "DAILY": 0.0}},
    )
    rng = random.Random(5)
    got = Counter(assign_pattern(spec, "Only", rng) for _ in range(10_000))
    assert set(got) == {P.MONTHLY, P.BINGE}
    assert abs(got[P.MONTHLY] / 10_000 - 0.7) <= 0.02


# -- activity patterns ----------------------------------------------------------------------


def active_rates(
    spec: LifecycleSpec, pattern: P, n_users: int, days: list[date], seed: int
) -> tuple[dict[date, float], dict[date, set[float]]]:
    """Step ``n_users`` settled users of ``pattern`` through ``days``; return the active
    rate per date and the return probabilities decided per date."""
    rng = random.Random(seed)
    users = [status_for(pattern) for _ in range(n_users)]
    active: Counter[date] = Counter()
    probs: dict[date, set[float]] = defaultdict(set)
    for day in days:
        for st in users:
            d = decide_day(spec, st, day, rng)
            active[day] += d.active
            probs[day].add(round(d.return_probability, 12))
    return {day: active[day] / n_users for day in days}, probs


def test_weekend_pattern_is_15_percent_on_weekdays_and_85_on_weekends() -> None:
    # 2,000 WEEKEND users over 4 weeks, modifiers neutralised: weekdays 40,000 user-days
    # (σ ≈ .0018), weekends 16,000 (σ ≈ .0028); tolerance ±.02. A weekend taken as
    # Friday–Saturday (an off-by-one in weekday()) gives 0.5 on Fridays and Sundays and
    # weekday/weekend rates of .29/.50; a flat 50 % pattern gives .5/.5 — both fail, and
    # so does the ratio check (expected 0.85/0.15 ≈ 5.67).
    spec = neutral_spec()
    days = days_from(MONDAY, 28)
    rates, probs = active_rates(spec, P.WEEKEND, 2000, days, seed=11)
    weekday = [rates[d] for d in days if d.weekday() < 5]
    weekend = [rates[d] for d in days if d.weekday() >= 5]
    weekday_rate, weekend_rate = sum(weekday) / len(weekday), sum(weekend) / len(weekend)
    assert abs(weekday_rate - 0.15) <= 0.02
    assert abs(weekend_rate - 0.85) <= 0.02
    assert 4.5 <= weekend_rate / weekday_rate <= 7.0
    for d in days:  # every single day, too (2,000 users: σ ≤ .008)
        assert abs(rates[d] - (0.85 if d.weekday() >= 5 else 0.15)) <= 0.04, d
        assert probs[d] == {0.85 if d.weekday() >= 5 else 0.15}


def test_monthly_pattern_spikes_on_days_1_to_3() -> None:
    # 1,500 MONTHLY users over 92 days (Mar 4 – Jun 3: spike days Apr, May, Jun 1–3).
    # Spike days (9 × 1,500 = 13,500 user-days, σ ≈ .0035) expect .80, other days
    # (124,500, σ ≈ .0005) expect .03; tolerances ±.02 / ±.005. A spike shifted by a day
    # (days 2–4, or 0-based days 0–2 = the 1st and 2nd only) puts the spike-day rate near
    # .54 and fails; a flat 3 % fails the spike; a 1–3 spike read with the wrong field
    # (weekday, day of the year) fails both.
    spec = neutral_spec()
    days = days_from(date(2026, 3, 4), 92)
    rates, probs = active_rates(spec, P.MONTHLY, 1500, days, seed=12)
    spike = [d for d in days if d.day <= 3]
    other = [d for d in days if d.day > 3]
    assert len(spike) == 9
    spike_rate = sum(rates[d] for d in spike) / len(spike)
    other_rate = sum(rates[d] for d in other) / len(other)
    assert abs(spike_rate - 0.80) <= 0.02
    assert abs(other_rate - 0.03) <= 0.005
    for d in days:
        assert probs[d] == {0.80 if d.day <= 3 else 0.03}
        assert abs(rates[d] - (0.80 if d.day <= 3 else 0.03)) <= 0.05, d


def test_regular_pattern_is_boosted_thursday_to_saturday() -> None:
    # 2,000 REGULAR users over 4 weeks: 8,000 user-days per weekday (σ ≈ .0055);
    # tolerance ±.025 per weekday. Expected .45, with +.15 (= .60) on Thu, Fri, Sat.
    # A Friday–Sunday boost misses Thursday (.45 vs .60) and Sunday (.60 vs .45); no
    # boost misses Thu–Sat by .15 — all outside the tolerance.
    spec = neutral_spec()
    days = days_from(MONDAY, 28)
    rates, probs = active_rates(spec, P.REGULAR, 2000, days, seed=13)
    by_weekday: dict[int, list[float]] = defaultdict(list)
    for d in days:
        by_weekday[d.weekday()].append(rates[d])
        assert probs[d] == {0.60 if d.weekday() in (3, 4, 5) else 0.45}
    for wd, values in by_weekday.items():
        expected = 0.60 if wd in (3, 4, 5) else 0.45
        assert abs(sum(values) / len(values) - expected) <= 0.025, wd


def test_binge_pattern_cycles_3_to_7_day_binges_and_10_to_21_day_cooldowns() -> None:
    # 300 BINGE users over 400 days. A day is "binging" when its return probability is
    # BINGE's binging one (.90). Complete binges must last 3–7 days and complete
    # cooldowns 10–21 (every length reached, means near 5 and 15.5); activity is ~90 %
    # while binging and ~5 % in cooldown. A cycle off by one (binges of 2–6 or 4–8 days,
    # cooldowns of 9–20 or 11–22) produces lengths outside the ranges; binging at the
    # normal 5 % (or cooldown at 90 %) misses the rates by far more than ±.02.
    spec = neutral_spec()
    rng = random.Random(14)
    days = days_from(MONDAY, 400)
    binges: Counter[int] = Counter()
    cooldowns: Counter[int] = Counter()
    act = {True: [0, 0], False: [0, 0]}  # binging -> [active days, days]
    for _ in range(300):
        st = status_for(P.BINGE)
        st.cooldown_left = spec.patterns.cooldown_days.draw(rng)  # as new_status does
        runs: list[tuple[bool, int]] = []
        for day in days:
            d = decide_day(spec, st, day, rng)
            binging = d.return_probability == spec.patterns.binge_binging
            assert binging == (st.binge_left > 0)
            if not binging:
                assert d.return_probability == spec.patterns.binge_normal
            act[binging][0] += d.active
            act[binging][1] += 1
            if runs and runs[-1][0] == binging:
                runs[-1] = (binging, runs[-1][1] + 1)
            else:
                runs.append((binging, 1))
        for binging, length in runs[1:-1]:  # the first and last runs are cut
            (binges if binging else cooldowns)[length] += 1
    assert set(binges) == set(range(3, 8))
    assert set(cooldowns) == set(range(10, 22))
    mean_binge = sum(k * v for k, v in binges.items()) / sum(binges.values())
    mean_cool = sum(k * v for k, v in cooldowns.items()) / sum(cooldowns.values())
    assert abs(mean_binge - 5.0) <= 0.2 and abs(mean_cool - 15.5) <= 0.4
    binge_rate = act[True][0] / act[True][1]
    cool_rate = act[False][0] / act[False][1]
    assert abs(binge_rate - 0.90) <= max(0.02, tolerance(0.9, act[True][1]))
    assert abs(cool_rate - 0.05) <= max(0.01, tolerance(0.05, act[False][1]))
    # Share of days binging ≈ 5 / (5 + 15.5) ≈ .244.
    share = act[True][1] / (act[True][1] + act[False][1])
    assert abs(share - 5 / 20.5) <= 0.02


def test_daily_pattern_and_pattern_probability() -> None:
    spec = LifecycleSpec().patterns
    st = status_for(P.BINGE)
    assert pattern_probability(spec, st, P.DAILY, MONDAY) == 0.85
    assert pattern_probability(spec, st, P.BINGE, MONDAY) == 0.05
    st.binge_left = 2
    assert pattern_probability(spec, st, P.BINGE, MONDAY) == 0.90
    saturday = MONDAY + timedelta(days=5)
    assert pattern_probability(spec, st, P.WEEKEND, saturday) == 0.85
    assert pattern_probability(spec, st, P.REGULAR, saturday) == pytest.approx(0.60)
    assert pattern_probability(spec, st, P.MONTHLY, date(2026, 4, 3)) == 0.80
    assert pattern_probability(spec, st, P.MONTHLY, date(2026, 4, 4)) == 0.03


# -- life events ----------------------------------------------------------------------------


EVENT_SPECS = {
    E.VACATION: (0.005, 7, 14, 0.0),
    E.SICK: (0.01, 3, 5, 0.10),
    E.BUSY_WORK: (0.02, 5, 10, 0.20),
    E.NEW_RELEASE_HYPE: (0.01, 3, 7, 0.95),
}


def _only_event(event: E, daily_probability: float) -> LifecycleSpec:
    _, low, high, ret = EVENT_SPECS[event]
    return make_spec(
        events={
            event.value: {
                "daily_probability": daily_probability,
                "days": [low, high],
                "return_probability": ret,
            }
        }
    )


@pytest.mark.parametrize("event", list(E))
def test_life_event_starts_at_its_daily_odds(event: E) -> None:
    # 40,000 users, one day, only this event enabled (with its default odds). VACATION
    # expects 200 starts (σ ≈ 14), BUSY_WORK 800 (σ ≈ 28); tolerance ±4σ. Swapping two
    # events' odds (e.g. VACATION at SICK's 1 %) doubles or halves the count; a weekly
    # chance read as daily (× 7) is far off — all outside ±4σ.
    p = EVENT_SPECS[event][0]
    spec = _only_event(event, p)
    assert spec.events == {event: LifecycleSpec().events[event]}  # the default odds, alone
    rng = random.Random(100 + list(E).index(event))
    n = 40_000
    started = 0
    for _ in range(n):
        st = status_for(P.DAILY, engagement=90.0)
        d = decide_day(spec, st, MONDAY, rng)
        events = [t for t in d.transitions if t.change == "event"]
        if st.event is not None:
            started += 1
            (t,) = events
            assert (t.old, t.new) == ("none", event.value) and t.reason
            assert d.return_probability == EVENT_SPECS[event][3]  # applies from day one
        else:
            assert not events
    assert abs(started / n - p) <= tolerance(p, n), started


@pytest.mark.parametrize("event", list(E))
def test_life_event_lasts_within_its_range_at_its_return_probability(event: E) -> None:
    # 3,000 users start the event on day one (odds forced to 1), then odds 0: each event
    # lasts low..high days (every length reached), the "event ended" record comes the day
    # after its last day, and every day of it has exactly the event's return probability
    # (activity rate within ±4σ of it). An event one day too long (length + 1) or too short
    # leaves the range; an event whose probability is added to the pattern's (DAILY .85
    # with engagement 90) instead of replacing it gives ≥ .85 and fails all but HYPE's
    # exact-equality check.
    _, low, high, ret = EVENT_SPECS[event]
    start_spec = _only_event(event, 1.0)
    run_spec = _only_event(event, 0.0)
    rng = random.Random(200 + list(E).index(event))
    lengths: Counter[int] = Counter()
    active = total = 0
    for _ in range(3000):
        st = status_for(P.DAILY, engagement=90.0)
        d = decide_day(start_spec, st, MONDAY, rng)
        assert st.event is event
        days = 1
        active += d.active
        total += 1
        day = MONDAY
        while True:
            day += timedelta(days=1)
            d = decide_day(run_spec, st, day, rng)
            ended = [t for t in d.transitions if t.change == "event"]
            if ended:
                assert (ended[0].old, ended[0].new) == (event.value, "none")
                assert ended[0].reason
                assert st.event is None
                assert d.return_probability != ret or event is E.NEW_RELEASE_HYPE
                break
            assert st.event is event
            assert d.return_probability == ret
            days += 1
            active += d.active
            total += 1
            assert days <= high
        lengths[days] += 1
    assert set(lengths) == set(range(low, high + 1))
    assert abs(active / total - ret) <= tolerance(ret, total) + 1e-12


def test_one_event_at_a_time_and_a_new_one_may_start_the_day_another_ends() -> None:
    spec = _only_event(E.SICK, 1.0)
    st = status_for()
    rng = random.Random(3)
    decide_day(spec, st, MONDAY, rng)
    first_until = st.event_until
    day = MONDAY
    while day.toordinal() <= first_until:
        day += timedelta(days=1)
        d = decide_day(spec, st, day, rng)
        starts = [t for t in d.transitions if t.new == "SICK"]
        assert not starts or day.toordinal() > first_until  # no overlap
    assert [(t.old, t.new) for t in d.transitions if t.change == "event"] == [
        ("SICK", "none"),
        ("none", "SICK"),
    ]


# -- streaks and engagement (exact) ---------------------------------------------------------


def _forced(active: bool, **changes: Any) -> LifecycleSpec:
    """A spec whose DAILY probability forces the day (1: active, 0: inactive)."""
    data: dict[str, Any] = {
        "events": {},
        "patterns": {"daily": 1.0 if active else 0.0},
        "dormant_after_days": NEVER,
        "churn_after_days": NEVER,
    }
    if not active:
        data["streak"] = {"bonus": 0.0}
        data["engagement"] = {"enabled": False}
    data.update(changes)
    return make_spec(**data)


@pytest.mark.parametrize(
    ("before", "after"), [(90.0, 92.0), (98.5, 100.0), (99.0, 100.0), (100.0, 100.0), (0.0, 2.0)]
)
def test_active_day_adds_2_engagement_capped_at_100(before: float, after: float) -> None:
    st = status_for(engagement=before, streak=4, inactive_days=0)
    d = decide_day(_forced(True), st, MONDAY, random.Random(1))
    assert d.active and st.active_today
    assert st.engagement == after
    assert st.streak == 5 and st.inactive_days == 0


def test_active_day_resets_inactive_days() -> None:
    st = status_for(engagement=60.0, streak=0, inactive_days=9)
    decide_day(_forced(True), st, MONDAY, random.Random(1))
    assert (st.streak, st.inactive_days, st.engagement) == (1, 0, 62.0)


@pytest.mark.parametrize(
    ("engagement", "streak", "after"),
    [
        (90.0, 0, 89.0),  # -1 per inactive day
        (90.0, 6, 89.0),  # a 6-day streak breaks without penalty
        (90.0, 7, 79.0),  # breaking a 7-day streak: -10, then -1
        (90.0, 12, 79.0),
        (0.5, 0, 0.0),  # floor at 0
        (0.0, 0, 0.0),
        (5.0, 8, 0.0),  # penalty and loss floored at 0
    ],
)
def test_inactive_day_costs_1_and_breaking_a_7_day_streak_costs_10(
    engagement: float, streak: int, after: float
) -> None:
    # A penalty from 6 days (or only above 7) fails the 6/7 rows; a missing floor fails 0.5.
    st = status_for(engagement=engagement, streak=streak, inactive_days=2)
    d = decide_day(_forced(False), st, MONDAY, random.Random(1))
    assert not d.active and not st.active_today
    assert st.engagement == after
    assert (st.streak, st.inactive_days) == (0, 3)


def test_streak_of_alternating_days_accumulates_engagement_exactly() -> None:
    st = status_for(engagement=90.0, streak=0)
    on, off = _forced(True), _forced(False)
    rng = random.Random(1)
    for day, spec in zip(days_from(MONDAY, 12), [on] * 8 + [off] + [on] * 2 + [off], strict=True):
        decide_day(spec, st, day, rng)
    # 90 +2×5 (capped at 100) +2 +2 (capped) → 100, break of an 8-day streak: 100-10-1 = 89,
    # +2 +2 = 93, break of a 2-day streak: 92.
    assert st.engagement == 92.0
    assert (st.streak, st.inactive_days) == (0, 1)


@pytest.mark.parametrize(
    ("streak", "bonus"),
    [
        (0, 0.0),
        (2, 0.0),
        (3, 0.05),
        (5, 0.05),
        (6, 0.10),
        (9, 0.15),
        (12, 0.20),
        (15, 0.20),
        (40, 0.20),
    ],
)
def test_streak_bonus_is_5_points_per_3_days_capped_at_20(streak: int, bonus: float) -> None:
    # Base DAILY .30, engagement 50 (no shift): return probability .30 + bonus. A bonus per
    # day (or per 3 days uncapped) gives e.g. .45/.60 at streak 9/40 and fails.
    spec = make_spec(events={}, patterns={"daily": 0.30})
    st = status_for(engagement=50.0, streak=streak)
    d = decide_day(spec, st, MONDAY, random.Random(1))
    assert d.return_probability == pytest.approx(0.30 + bonus, abs=1e-12)


@pytest.mark.parametrize(
    ("engagement", "shift"),
    [(50.0, 0.0), (90.0, 0.2), (10.0, -0.2), (100.0, 0.25), (0.0, -0.25), (70.0, 0.1)],
)
def test_engagement_shifts_return_probability_by_score_minus_50_over_200(
    engagement: float, shift: float
) -> None:
    spec = make_spec(events={}, patterns={"daily": 0.5})
    d = decide_day(spec, status_for(engagement=engagement), MONDAY, random.Random(1))
    assert d.return_probability == pytest.approx(0.5 + shift, abs=1e-12)
    off = make_spec(events={}, patterns={"daily": 0.5}, engagement={"enabled": False})
    d = decide_day(off, status_for(engagement=engagement), MONDAY, random.Random(1))
    assert d.return_probability == pytest.approx(0.5, abs=1e-12)


def test_return_probability_combines_and_clips() -> None:
    spec = make_spec(events={}, patterns={"daily": 0.85})
    # .85 + .20 (streak 12) + .20 (engagement 90) → clipped to 1.
    assert (
        decide_day(
            spec, status_for(engagement=90, streak=12), MONDAY, random.Random(1)
        ).return_probability
        == 1.0
    )
    low = make_spec(events={}, patterns={"monthly": 0.03})
    # .03 - .25 (engagement 0) → clipped to 0.
    assert (
        decide_day(
            low, status_for(P.MONTHLY, engagement=0), date(2026, 3, 10), random.Random(1)
        ).return_probability
        == 0.0
    )
    # DORMANT: (.30 + .05 + .10) × .3 = .135.
    spec = make_spec(events={}, patterns={"daily": 0.30}, dormant_after_days=NEVER)
    st = status_for(state=S.DORMANT, engagement=70, streak=3, inactive_days=20)
    assert decide_day(spec, st, MONDAY, random.Random(1)).return_probability == pytest.approx(
        0.135, abs=1e-12
    )


# -- dormancy, churn, reactivation ------------------------------------------------------------


def test_dormant_users_churn_at_3_percent_a_day() -> None:
    # 20,000 DORMANT users past 30 inactive days with a zero return probability: the share
    # churned in one day ≈ .03 (σ ≈ .0012, tolerance ±4σ ≈ ±.005). A 1 % or 5 % daily
    # chance, or churn of every eligible user, falls outside.
    spec = make_spec(
        events={}, patterns={"daily": 0.0}, streak={"bonus": 0.0}, engagement={"enabled": False}
    )
    rng = random.Random(31)
    n = 20_000
    churned = 0
    for i in range(n):
        st = status_for(state=S.DORMANT, inactive_days=30 + i % 40)
        d = decide_day(spec, st, MONDAY, rng)
        assert d.return_probability == 0.0 and not d.active
        if st.state is S.CHURNED:
            churned += 1
            (t,) = [t for t in d.transitions if t.change == "state"]
            assert (t.old, t.new) == ("DORMANT", "CHURNED") and t.reason
            assert str(st.inactive_days) in t.reason
        else:
            assert st.state is S.DORMANT and not d.transitions
    assert abs(churned / n - 0.03) <= tolerance(0.03, n)


def test_churn_needs_30_inactive_days_counting_today() -> None:
    spec = make_spec(
        events={},
        patterns={"daily": 0.0},
        streak={"bonus": 0.0},
        engagement={"enabled": False},
        churn_daily_probability=1.0,
    )
    rng = random.Random(1)
    for before in range(14, 29):  # 29th inactive day at most: never churns
        st = status_for(state=S.DORMANT, inactive_days=before)
        decide_day(spec, st, MONDAY, rng)
        assert st.state is S.DORMANT, before
    st = status_for(state=S.DORMANT, inactive_days=29)  # today is the 30th inactive day
    decide_day(spec, st, MONDAY, rng)
    assert st.state is S.CHURNED and st.inactive_days == 30


def test_a_churned_user_never_acts_nor_changes() -> None:
    spec = make_spec(patterns={"daily": 1.0})
    st = status_for(state=S.CHURNED, engagement=100.0)
    for day in days_from(MONDAY, 30):
        assert decide_day(spec, st, day, random.Random(day.toordinal())) == DayDecision(False, 0.0)
    assert st.state is S.CHURNED


def test_non_churnable_users_never_churn() -> None:
    spec = make_spec(
        events={},
        patterns={"daily": 0.0},
        streak={"bonus": 0.0},
        engagement={"enabled": False},
        churn_daily_probability=1.0,
    )
    rng = random.Random(2)
    users = [status_for(state=S.DORMANT, inactive_days=100) for _ in range(500)]
    for day in days_from(MONDAY, 60):
        for st in users:
            decide_day(spec, st, day, rng, churnable=False)
    assert all(st.state is S.DORMANT for st in users)
    assert all(st.inactive_days == 160 for st in users)


def test_dormant_users_reactivate_at_return_probability_times_multiplier() -> None:
    # DAILY base .5 (no streak bonus, no engagement shift) while DORMANT: .5 × .3 = .15.
    # 20,000 users, one day: share DORMANT → ACTIVE ≈ .15 (σ ≈ .0025, ±4σ ≈ ±.01). Without
    # the multiplier the share would be .5; with the multiplier applied twice, .045.
    spec = make_spec(
        events={}, patterns={"daily": 0.5}, streak={"bonus": 0.0}, engagement={"enabled": False}
    )
    rng = random.Random(41)
    n = 20_000
    back = 0
    for _ in range(n):
        st = status_for(state=S.DORMANT, inactive_days=20)
        d = decide_day(spec, st, MONDAY, rng)
        assert d.return_probability == pytest.approx(0.15, abs=1e-12)
        if d.active:
            back += 1
            assert st.state is S.ACTIVE and st.inactive_days == 0
            (t,) = [t for t in d.transitions if t.change == "state"]
            assert (t.old, t.new) == ("DORMANT", "ACTIVE") and "reactivat" in t.reason
        else:
            assert st.state is S.DORMANT
    assert abs(back / n - 0.15) <= tolerance(0.15, n)


# -- transitions over whole lives ---------------------------------------------------------------


def test_whole_lives_follow_the_state_machine_with_reasons() -> None:
    # 3,000 users from sign-up over 200 days with the default spec. Every state transition
    # is allowed by ALLOWED_TRANSITIONS, starts from the user's current state and has a
    # reason; NEW ends exactly 7 days after sign-up; DORMANT is entered on exactly the
    # 14th inactive day; CHURNED never before 30 inactive days; a CHURNED user never
    # changes again. Every edge of the machine occurs at least once.
    spec = LifecycleSpec()
    rng = random.Random(77)
    start = MONDAY.toordinal()
    edges: Counter[tuple[str, str]] = Counter()
    churned_at: list[int] = []
    for _ in range(3000):
        st = new_status(spec, start, rng)
        for age in range(1, 201):
            before = st.state
            d = decide_day(spec, st, date.fromordinal(start + age), rng)
            changes = [t for t in d.transitions if t.change == "state"]
            assert len(changes) <= 1
            for t in d.transitions:
                assert t.reason.strip(), t
                assert t.change in ("state", "pattern", "event")
            if before is S.CHURNED:
                assert not d.transitions and not d.active
                continue
            if not changes:
                assert st.state is before
                assert not (before is S.NEW and age == spec.new_days)
                continue
            (t,) = changes
            assert t.old == before.value and t.new == st.state.value
            assert st.state in ALLOWED_TRANSITIONS[before]
            edges[(t.old, t.new)] += 1
            if before is S.NEW:
                assert age == spec.new_days
            if st.state is S.DORMANT:
                assert st.inactive_days == spec.dormant_after_days
                assert not d.active
            if st.state is S.CHURNED:
                assert before is S.DORMANT and st.inactive_days >= spec.churn_after_days
                assert not d.active and not st.active_today
                churned_at.append(st.inactive_days)
            if t.new == "ACTIVE" and before is S.DORMANT:
                assert d.active
    expected_edges = {
        ("NEW", "ACTIVE"),
        ("ACTIVE", "CASUAL"),
        ("CASUAL", "ACTIVE"),
        ("ACTIVE", "DORMANT"),
        ("CASUAL", "DORMANT"),
        ("DORMANT", "ACTIVE"),
        ("DORMANT", "CHURNED"),
    }
    assert expected_edges <= set(edges), edges
    assert min(churned_at) >= 30


def test_new_users_become_active_on_day_7() -> None:
    spec = LifecycleSpec()
    rng = random.Random(8)
    for _ in range(200):
        st = new_status(spec, MONDAY.toordinal(), rng)
        for age in range(1, 8):
            d = decide_day(spec, st, MONDAY + timedelta(days=age), rng)
            if age < 7:
                assert st.state is S.NEW
            else:
                (t,) = [t for t in d.transitions if t.change == "state"]
                assert (t.old, t.new) == ("NEW", "ACTIVE") and "7 days" in t.reason
                assert st.state is S.ACTIVE


def test_dormant_after_exactly_14_inactive_days() -> None:
    spec = make_spec(
        events={}, patterns={"daily": 0.0}, streak={"bonus": 0.0}, engagement={"enabled": False}
    )
    st = status_for(engagement=90.0)
    rng = random.Random(1)
    for n, day in enumerate(days_from(MONDAY, 14), start=1):
        d = decide_day(spec, st, day, rng)
        if n < 14:
            assert st.state is S.ACTIVE, n
        else:
            (t,) = [t for t in d.transitions if t.change == "state"]
            assert (t.old, t.new) == ("ACTIVE", "DORMANT") and "14" in t.reason


def test_casual_below_50_and_back_to_active_above_65() -> None:
    spec = make_spec(
        events={}, patterns={"daily": 0.0}, streak={"bonus": 0.0}, engagement={"enabled": False}
    )
    st = status_for(engagement=50.0)
    d = decide_day(spec, st, MONDAY, random.Random(1))  # 50 → 49
    assert st.state is S.CASUAL and d.transitions[0].reason.startswith("engagement 49")
    up = make_spec(events={}, patterns={"daily": 1.0})
    st.engagement = 62.0
    decide_day(up, st, MONDAY + timedelta(days=1), random.Random(1))  # 62 → 64
    assert st.state is S.CASUAL
    decide_day(up, st, MONDAY + timedelta(days=2), random.Random(1))  # 64 → 66
    assert _state(st) is S.ACTIVE


# -- session depth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "pattern", "binge_left", "low", "high"),
    [
        (S.NEW, P.DAILY, 0, 3, 8),
        (S.ACTIVE, P.REGULAR, 0, 2, 5),
        (S.CASUAL, P.WEEKEND, 0, 1, 3),
        (S.ACTIVE, P.BINGE, 3, 5, 15),  # while binging
        (S.CASUAL, P.BINGE, 1, 5, 15),
        (S.ACTIVE, P.BINGE, 0, 2, 5),  # a BINGE user in cooldown: its state's range
        (S.ACTIVE, P.DAILY, 3, 2, 5),  # binge_left is meaningless for other patterns
    ],
)
def test_session_depth_by_state(state: S, pattern: P, binge_left: int, low: int, high: int) -> None:
    spec = LifecycleSpec()
    st = status_for(pattern, state)
    st.binge_left = binge_left
    rng = random.Random(9)
    got = Counter(session_depth(spec, st, rng) for _ in range(4000))
    assert set(got) == set(range(low, high + 1))
