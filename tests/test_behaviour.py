"""Tests of the pure behaviour model (``sim_engine.model.behaviour.CompiledPersona``).

Statistical properties are checked with fixed seeds and tolerances of about
four standard deviations of the quantity measured; each test names in a
comment a plausible *wrong* model and what it would give, and that value lies
well outside the tolerance. Expected values are computed here from the
scenario's routine blocks and weight matrices (an independent oracle), not
from the code under test.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Literal, cast

import pytest

from sim_engine.model.behaviour import CompiledPersona, compile_personas
from sim_engine.model.scenario import ACTIONS, PersonaSpec, RoutineSpec, Scenario, default_scenario

# Monday 2026-03-02 00:00:00 UTC.
MONDAY = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
WEEK_S = 7 * 86400.0
PERSONAS = ("lurker", "chatterbox", "night_owl", "content_curator")
RoutineState = Literal["working", "relaxing"]  # the keys of a persona's weight matrix


# -- an independent oracle of the routine ------------------------------------------------


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def routine_block(routine: RoutineSpec, shift_h: float, local: datetime) -> tuple[str, float]:
    """(state, intensity) at wall-clock ``local`` for a persona shifted ``shift_h`` hours."""
    shifted = local.replace(tzinfo=None) - timedelta(hours=shift_h)
    blocks = routine.weekend if shifted.weekday() >= 5 else routine.weekday
    minute = shifted.hour * 60 + shifted.minute
    for block in blocks:
        if _minutes(block.start) <= minute < _minutes(block.end):
            if block.state == "sleeping":
                return "sleeping", 0.0
            level = (
                block.intensity if block.intensity is not None else routine.intensity[block.state]
            )
            return block.state, level
    raise AssertionError(f"routine does not cover {shifted}")


def day_mass(routine: RoutineSpec, weekend: bool, state: str | None = None) -> float:
    """Integral of intensity over one day (intensity-minutes), optionally for one state only."""
    blocks = routine.weekend if weekend else routine.weekday
    total = 0.0
    for block in blocks:
        if block.state == "sleeping" or (state is not None and block.state != state):
            continue
        level = block.intensity if block.intensity is not None else routine.intensity[block.state]
        total += level * (_minutes(block.end) - _minutes(block.start))
    return total


def expected_mix(spec: PersonaSpec, state: str) -> dict[str, float]:
    """Action probabilities from the weight matrix and the post/update multipliers."""
    weights = dict(spec.actions[cast(RoutineState, state)])
    weights["create_post"] = weights.get("create_post", 0.0) * spec.post_frequency
    weights["update_post"] = weights.get("update_post", 0.0) * spec.update_frequency
    total = sum(weights.values())
    return {a: weights.get(a, 0.0) / total for a in ACTIONS}


def mix_problems(counts: Mapping[str, int], expected: Mapping[str, float]) -> list[str]:
    """The check used on action mixes: every action's count within 4.5 sigma (binomial).

    Actions of probability 0 must never appear; unknown actions never either.
    Returns the list of violations (empty: the mix matches).
    """
    n = sum(counts.values())
    problems = [f"unknown action {a!r}" for a in counts if a not in ACTIONS]
    for action in ACTIONS:
        p = expected.get(action, 0.0)
        seen = counts.get(action, 0)
        if p == 0.0:
            if seen:
                problems.append(f"{action}: weight 0 but drawn {seen} times")
            continue
        sigma = math.sqrt(n * p * (1.0 - p)) if p < 1.0 else 0.0
        if abs(seen - n * p) > 4.5 * sigma + 1e-9:
            problems.append(f"{action}: {seen} drawn, {n * p:.0f} ± {4.5 * sigma:.0f} expected")
    return problems


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return default_scenario()


@pytest.fixture(scope="module")
def personas(scenario: Scenario) -> dict[str, CompiledPersona]:
    return {p.name: p for p in compile_personas(scenario)}


def session_chain(
    persona: CompiledPersona, start: float, end: float, offset_s: float, seed: int
) -> list[float]:
    """Successive session starts drawn with ``next_session_start`` from ``start`` until ``end``."""
    rng = random.Random(seed)
    out = []
    t = persona.next_session_start(start, offset_s, rng)
    while t < end:
        out.append(t)
        t = persona.next_session_start(t, offset_s, rng)
    return out


WEEKS = 1000


@pytest.fixture(scope="module")
def long_chains(personas: dict[str, CompiledPersona]) -> dict[str, list[float]]:
    """1000 simulated weeks of session starts per persona, in UTC (offset 0)."""
    return {
        name: session_chain(personas[name], MONDAY, MONDAY + WEEKS * WEEK_S, 0.0, seed=i + 1)
        for i, name in enumerate(PERSONAS)
    }


# -- routine: when sessions start --------------------------------------------------------


@pytest.mark.parametrize("name", PERSONAS)
@pytest.mark.parametrize("offset_h", [0.0, 9.0, -5.0, 5.5])
def test_session_starts_never_in_a_sleeping_segment(
    scenario: Scenario, personas: dict[str, CompiledPersona], name: str, offset_h: float
) -> None:
    persona = personas[name]
    offset_s = offset_h * 3600.0
    tz = timezone(timedelta(hours=offset_h))
    starts = session_chain(persona, MONDAY, MONDAY + 40 * WEEK_S, offset_s, seed=17)
    assert len(starts) > 40 * 5 * persona.spec.sessions_per_day * 0.8  # it really did draw
    assert starts == sorted(starts) and starts[0] > MONDAY
    for t in starts:
        local = datetime.fromtimestamp(t, tz)
        state, level = routine_block(scenario.routine, persona.spec.hour_shift_h, local)
        assert state != "sleeping", f"{name} starts a session at {local.isoformat()} (asleep)"
        assert level > 0
        assert persona.state_at(t, offset_s) == state  # the compiled table agrees with the oracle


def test_never_starts_from_inside_the_night(personas: dict[str, CompiledPersona]) -> None:
    """Draws made from a sleeping instant land after the night, in the next waking block."""
    lurker = personas["lurker"]
    rng = random.Random(5)
    three_am = MONDAY + 3 * 3600.0  # Monday 03:00 UTC: asleep until 06:00
    for _ in range(2000):
        t = lurker.next_session_start(three_am, 0.0, rng)
        assert t >= MONDAY + 6 * 3600.0
    assert lurker.rate_at(three_am, 0.0) == 0.0
    assert lurker.state_at(three_am, 0.0) == "sleeping"


def _shifted_day(t: float, shift_h: float) -> int:
    """Weekday (0 = Monday) of the persona's routine clock (UTC minus its shift)."""
    return (datetime.fromtimestamp(t, timezone.utc) - timedelta(hours=shift_h)).weekday()


@pytest.mark.parametrize("name", PERSONAS)
def test_weekday_sessions_average_sessions_per_day(
    personas: dict[str, CompiledPersona], long_chains: dict[str, list[float]], name: str
) -> None:
    # Days are counted on the persona's routine clock (local time minus hour_shift_h):
    # a Night Owl's "Monday" runs from Monday 06:00 to Tuesday 06:00 local. The window is
    # exactly WEEKS weeks long, so it holds each routine weekday exactly WEEKS times.
    spec = personas[name].spec
    weekday = sum(1 for t in long_chains[name] if _shifted_day(t, spec.hour_shift_h) < 5)
    expected = spec.sessions_per_day * 5 * WEEKS
    # Poisson count: ±4 sigma. Lurker: 10,000 ± 400. A rate normalised over the whole week
    # instead of a weekday (weekday mean 2 * 7 / 6.64 = 2.11/day) gives 10,542: fails.
    assert abs(weekday - expected) <= 4 * math.sqrt(expected), (weekday, expected)


@pytest.mark.parametrize("name", PERSONAS)
def test_weekend_activity_is_lower_as_the_routine_says(
    scenario: Scenario,
    personas: dict[str, CompiledPersona],
    long_chains: dict[str, list[float]],
    name: str,
) -> None:
    spec = personas[name].spec
    ratio = day_mass(scenario.routine, weekend=True) / day_mass(scenario.routine, weekend=False)
    assert 0.66 < ratio < 0.72  # default routine: 7.4 / 10.7 = 0.692 intensity-hours
    weekend = sum(1 for t in long_chains[name] if _shifted_day(t, spec.hour_shift_h) >= 5)
    expected = spec.sessions_per_day * ratio * 2 * WEEKS
    # Poisson ±4 sigma (lurker: 2,768 ± 210). A model without weekends (weekend days like
    # weekdays) gives 4,000; one with half-active weekends gives 2,000: both fail.
    assert abs(weekend - expected) <= 4 * math.sqrt(expected), (weekend, expected)
    weekday = len(long_chains[name]) - weekend
    assert weekend / 2 < weekday / 5  # per day, weekends are quieter


@pytest.mark.parametrize("name", PERSONAS)
def test_weekday_sessions_start_mostly_while_relaxing(
    scenario: Scenario,
    personas: dict[str, CompiledPersona],
    long_chains: dict[str, list[float]],
    name: str,
) -> None:
    spec = personas[name].spec
    routine = scenario.routine
    p_relax = day_mass(routine, False, "relaxing") / day_mass(routine, False)  # 480/642 = 0.748
    states = [
        routine_block(routine, spec.hour_shift_h, datetime.fromtimestamp(t, timezone.utc))[0]
        for t in long_chains[name]
        if _shifted_day(t, spec.hour_shift_h) < 5
    ]
    n = len(states)
    relaxing = states.count("relaxing")
    # Binomial ±4 sigma (lurker: 0.748 ± 0.017). Ignoring intensity (uniform over waking
    # hours: 8 h relaxing of 17 h) gives 0.47: fails.
    assert abs(relaxing / n - p_relax) <= 4 * math.sqrt(p_relax * (1 - p_relax) / n)
    assert set(states) == {"working", "relaxing"}


def _peak_hour(hours: list[int], window: int = 5) -> int:
    """Centre of the busiest ``window``-hour circular window of a list of hours."""
    hist = Counter(hours)
    half = window // 2
    sums = {h: sum(hist[(h + d) % 24] for d in range(-half, half + 1)) for h in range(24)}
    return max(range(24), key=lambda h: sums[h])


def _circular_mean_hour(hours: list[int]) -> float:
    angles = [2 * math.pi * (h + 0.5) / 24 for h in hours]
    x = sum(math.cos(a) for a in angles)
    y = sum(math.sin(a) for a in angles)
    return (math.atan2(y, x) / (2 * math.pi) * 24) % 24


def test_night_owl_is_busiest_hours_later_than_lurker(
    personas: dict[str, CompiledPersona],
) -> None:
    # A New York lurker and a Tokyo night owl over 200 simulated weeks (one week of 200
    # users each), compared in their own local hours.
    def local_hours(name: str, offset_h: float, seed: int) -> list[int]:
        persona = personas[name]
        starts = session_chain(persona, MONDAY, MONDAY + 200 * WEEK_S, offset_h * 3600.0, seed=seed)
        tz = timezone(timedelta(hours=offset_h))
        return [datetime.fromtimestamp(t, tz).hour for t in starts]

    lurker = local_hours("lurker", -5.0, seed=23)
    owl = local_hours("night_owl", 9.0, seed=24)
    # The routine's busiest hours are 18-23 (weekday relaxing, 1.0): the lurker's 5-hour
    # peak window centres on 20:00, the owl's (shift 6 h) on 02:00 the next night.
    lurker_peak, owl_peak = _peak_hour(lurker), _peak_hour(owl)
    assert 19 <= lurker_peak <= 21, lurker_peak
    later = (owl_peak - lurker_peak) % 24
    # No shift would give 0, a shift the wrong way 18 (= 6 h earlier): both fail.
    assert 4 <= later <= 8, (lurker_peak, owl_peak)
    # The whole daily profile moves by the shift: the circular mean hours differ by 6 h.
    # Their difference has a standard deviation of 0.25 h here (measured over 100 seeds):
    # ±1 h is 4 sigma, and a 3-hour or 9-hour shift would fail.
    mean_later = (_circular_mean_hour(owl) - _circular_mean_hour(lurker)) % 24
    assert abs(mean_later - 6.0) <= 1.0, mean_later
    # Hours asleep every day of the week (weekday 23-06 and weekend 01-08 on the routine
    # clock): the lurker never starts at 01-05 local, the owl never at 07-11 local.
    assert not [h for h in lurker if 1 <= h <= 5]
    assert not [h for h in owl if 7 <= h <= 11]


# -- actions: what a session does --------------------------------------------------------

N_DRAWS = 20_000


def _draw_mix(persona: CompiledPersona, state: str, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(persona.choose_action(state, rng) for _ in range(N_DRAWS))


@pytest.mark.parametrize("name", PERSONAS)
@pytest.mark.parametrize("state", ["working", "relaxing"])
def test_action_mix_follows_the_weight_matrix(
    personas: dict[str, CompiledPersona], name: str, state: str
) -> None:
    persona = personas[name]
    expected = expected_mix(persona.spec, state)
    counts = _draw_mix(persona, state, seed=PERSONAS.index(name) * 2 + (state == "relaxing"))
    assert mix_problems(counts, expected) == []
    # The reported probabilities agree with the matrix too.
    reported = persona.action_probabilities(state)
    for action in ACTIONS:
        assert reported.get(action, 0.0) == pytest.approx(expected[action], abs=1e-12)
    # Also within ±1.5 percentage points, action by action.
    for action in ACTIONS:
        assert abs(counts[action] / N_DRAWS - expected[action]) <= 0.015


def _swap(weights: Mapping[str, float], a: str, b: str) -> dict[str, float]:
    swapped = dict(weights)
    swapped[a], swapped[b] = weights.get(b, 0.0), weights.get(a, 0.0)
    return swapped


@pytest.mark.parametrize(
    ("name", "state", "a", "b"),
    [
        ("lurker", "relaxing", "browse_feed", "read_post"),  # 5 <-> 6: 45.2% vs 54.3%
        ("lurker", "working", "browse_feed", "read_post"),  # 6 <-> 4
        ("chatterbox", "relaxing", "create_post", "update_post"),  # 3 <-> 1.5
        ("night_owl", "relaxing", "create_post", "update_post"),  # 0.6 <-> 0.2: rare actions
        ("content_curator", "working", "create_post", "delete_post"),  # 0.8 <-> 0.2
    ],
)
def test_action_mix_check_detects_swapped_weights(
    scenario: Scenario, personas: dict[str, CompiledPersona], name: str, state: str, a: str, b: str
) -> None:
    persona = personas[name]
    right = expected_mix(persona.spec, state)
    matrix = cast(RoutineState, state)
    wrong_actions = {**persona.spec.actions, matrix: _swap(persona.spec.actions[matrix], a, b)}
    wrong_spec = persona.spec.model_copy(update={"actions": wrong_actions})
    wrong = expected_mix(wrong_spec, state)
    assert right != wrong
    # Draws of the true persona fail against the swapped matrix ...
    counts = _draw_mix(persona, state, seed=99)
    assert mix_problems(counts, right) == []
    assert mix_problems(counts, wrong), "the check missed a swapped matrix"
    # ... and a persona compiled from the swapped matrix fails against the true one.
    swapped_persona = CompiledPersona(name, wrong_spec, scenario.routine)
    wrong_counts = _draw_mix(swapped_persona, state, seed=99)
    assert mix_problems(wrong_counts, right), "the check missed a swapped matrix"
    assert mix_problems(wrong_counts, wrong) == []


def test_post_and_update_frequency_scale_the_matrix(scenario: Scenario) -> None:
    varied = scenario.with_overrides(
        **{"personas.chatterbox.post_frequency": 3.0, "personas.chatterbox.update_frequency": 0.5}
    )
    spec = varied.personas["chatterbox"]
    persona = CompiledPersona("chatterbox", spec, varied.routine)
    # create 1.8 of 3 + 4 + 1.8 + 0.1 + 0.02 and the social actions' 1 + 0.2 + 0.05 + 0.1
    # + 0.4 + 0.04
    expected = expected_mix(spec, "relaxing")
    assert expected["create_post"] == pytest.approx(1.8 / 10.71)
    counts = _draw_mix(persona, "relaxing", seed=3)
    assert mix_problems(counts, expected) == []
    # Ignoring the multipliers (create 0.6 of 9.61 = 6.2% instead of 16.8%) is detected.
    assert mix_problems(counts, expected_mix(scenario.personas["chatterbox"], "relaxing"))


def test_sleeping_has_no_actions(personas: dict[str, CompiledPersona]) -> None:
    with pytest.raises(KeyError):
        personas["lurker"].choose_action("sleeping", random.Random(1))


# -- sessions: how long and how fast -----------------------------------------------------


def _capped_geometric_mean(mean: float, cap: int) -> float:
    p = 1.0 / mean
    return (1.0 - (1.0 - p) ** cap) / p  # sum over k < cap of P(K > k)


@pytest.mark.parametrize(
    ("name", "mean_actions", "max_actions"),
    [
        ("lurker", None, None),  # default: mean 5, cap 30
        ("chatterbox", None, None),  # default: mean 6, cap 40
        ("content_curator", 6.0, 8),  # a tight cap: capped mean 4.60, not 6
    ],
)
def test_session_length_is_capped_geometric(
    scenario: Scenario, name: str, mean_actions: float | None, max_actions: int | None
) -> None:
    spec = scenario.personas[name]
    if mean_actions is not None:
        session = spec.session.model_copy(
            update={"mean_actions": mean_actions, "max_actions": max_actions}
        )
        spec = spec.model_copy(update={"session": session})
    persona = CompiledPersona(name, spec, scenario.routine)
    mean, cap = spec.session.mean_actions, spec.session.max_actions
    rng = random.Random(41)
    n = 50_000
    lengths = [persona.session_length(rng) for _ in range(n)]
    assert min(lengths) == 1 and max(lengths) <= cap
    expected = _capped_geometric_mean(mean, cap)
    sd = math.sqrt(sum((x - expected) ** 2 for x in lengths) / n)
    # Mean within 4 standard errors (mean 5: ± 0.08). Off-by-one (1 + geometric) gives 6;
    # ignoring the cap of 8 gives 6.0 instead of 4.60: both fail.
    assert abs(sum(lengths) / n - expected) <= 4 * sd / math.sqrt(n), (expected, sd)
    # Geometric shape: P(length = 1) = 1/mean (mean 5: 0.20 ± 0.007). A Poisson or a
    # uniform 1..9 with the same mean gives 0.02 or 0.11: fails.
    p1 = 1.0 / mean
    assert abs(lengths.count(1) / n - p1) <= 4 * math.sqrt(p1 * (1 - p1) / n)
    if cap < 30:
        p_cap = (1.0 - p1) ** (cap - 1)  # every longer session is cut to the cap
        assert abs(lengths.count(cap) / n - p_cap) <= 4 * math.sqrt(p_cap * (1 - p_cap) / n)


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))]


@pytest.mark.parametrize("name", PERSONAS)
def test_think_time_median_and_spread(personas: dict[str, CompiledPersona], name: str) -> None:
    persona = personas[name]
    tt = persona.session.think_time
    rng = random.Random(8)
    n = 20_000
    draws = sorted(persona.think_time_s(rng) for _ in range(n))
    assert draws[0] >= tt.min_s
    median = _quantile(draws, 0.5)
    # Standard error of a lognormal sample median: m * sigma * sqrt(pi / 2n) (0.9% here);
    # 4 of them. A lognormal whose *mean* is median_s (median = 25 / e^0.5 = 15.2 for the
    # lurker) or an exponential with mean median_s (median 17.3) fails.
    se = tt.median_s * tt.sigma * math.sqrt(math.pi / (2 * n))
    assert abs(median - tt.median_s) <= 4 * se, (median, tt.median_s)
    # Spread: the log interquartile range is 2 * 0.6745 * sigma (± ~3%).
    sigma_hat = math.log(_quantile(draws, 0.75) / _quantile(draws, 0.25)) / (2 * 0.6745)
    assert sigma_hat == pytest.approx(tt.sigma, rel=0.05)


def test_think_time_floor(scenario: Scenario) -> None:
    spec = scenario.personas["lurker"]
    think = spec.session.think_time.model_copy(
        update={"median_s": 20.0, "sigma": 1.0, "min_s": 10.0}
    )
    session = spec.session.model_copy(update={"think_time": think})
    persona = CompiledPersona(
        "lurker", spec.model_copy(update={"session": session}), scenario.routine
    )
    rng = random.Random(12)
    n = 20_000
    draws = [persona.think_time_s(rng) for _ in range(n)]
    assert min(draws) == 10.0
    # P(lognormal(ln 20, 1) < 10) = Phi(-ln 2) = 0.244: that share sits exactly on the floor.
    p = 0.5 * math.erfc(math.log(2.0) / math.sqrt(2.0))
    assert abs(draws.count(10.0) / n - p) <= 4 * math.sqrt(p * (1 - p) / n)
