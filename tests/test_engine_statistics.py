"""Statistical tests of the whole engine: what a run's records say about the model.

``test_behaviour.py`` checks the pure model (``CompiledPersona``) draw by draw; these
tests check that the *engine* uses it as the scenario says, from the records a run
emits: the action mix in each recorded routine state follows that persona's weight
matrix (a chi-square goodness-of-fit test), and the gaps between one user's actions
within a session follow the persona's think-time distribution (Kolmogorov-Smirnov).

Each runs the default scenario (no ``api`` section, so no workflow steps) once, with
a fixed seed, under a fast-forward clock against an instant mock target: latency
adds nothing to a gap, and every action succeeds, so the users' memory (feed seen,
own posts) can be rebuilt from the records. Expected values come from the scenario's
numbers, computed here (an independent oracle), not from the code under test.

Two wrong engines pass every other test but fail these (checked by patching
``CompiledPersona`` in a scratch run): one that picks actions from one state's
matrix whatever the routine state, and one with a constant 5 s think time. Each
test also shows on its own data that its check bites (a nearby wrong model is
rejected). The statistics (chi-square and Kolmogorov survival functions) are
computed here: scipy is not a dependency.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Literal, cast

import pytest

from helpers import ListSink, always_ok_api, busy_scenario
from sim_engine import ActionRecord, Simulation
from sim_engine.engine.clock import FastForwardClock
from sim_engine.model.scenario import ACTIONS, PersonaSpec, Scenario, ThinkTimeSpec

# Monday 2026-03-02 00:00 UTC; a week covers weekdays and a weekend.
MONDAY = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
DAYS = 7
USERS = 300
SEED = 11
#: Actions drawn from a persona's weight matrix (sign_up/log_in are not).
MATRIX = ACTIONS  # the demo API's persona actions, the social ones included
State = Literal["working", "relaxing"]
STATES: tuple[State, State] = ("working", "relaxing")
#: Significance level of each test: a correct engine fails it with this probability
#: (but the seed is fixed, so a given run passes or fails every time).
ALPHA = 0.001

Cell = tuple[str, str, bool, bool]  # persona, state, feed seen this session, owns posts


# -- the statistics ------------------------------------------------------------------------


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-square with ``df`` (>= 1) degrees of freedom (closed form)."""
    if math.isinf(x):
        return 0.0
    h = x / 2.0
    if df % 2 == 0:
        term = total = math.exp(-h)
        for i in range(1, df // 2):
            term *= h / i
            total += term
        return min(1.0, total)
    total = math.erfc(math.sqrt(h))
    term = math.exp(-h) * math.sqrt(h) / math.gamma(1.5)
    for i in range(1, (df + 1) // 2):
        total += term
        term *= h / (i + 0.5)
    return min(1.0, total)


def ks_pvalue(d: float, n: int) -> float:
    """P(D_n >= d) for the one-sample Kolmogorov-Smirnov statistic (Stephens' approximation)."""
    sqrt_n = math.sqrt(n)
    lam = (sqrt_n + 0.12 + 0.11 / sqrt_n) * d
    if lam < 0.2:
        return 1.0
    total = math.fsum(2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, total))


def ks_uniform(values: Iterable[float]) -> tuple[float, float]:
    """(D, p-value) of the Kolmogorov-Smirnov test of ``values`` against Uniform(0, 1)."""
    u = sorted(values)
    n = len(u)
    d = max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(u))
    return d, ks_pvalue(d, n)


def pearson(observed: Mapping[str, int], probs: Mapping[str, float]) -> tuple[float, int]:
    """Pearson's statistic and degrees of freedom of ``observed`` counts against ``probs``.

    Categories with an expected count under 5 are pooled, smallest first, as usual.
    An observed category absent from ``probs`` (probability 0) gives an infinite statistic.
    """
    if set(observed) - set(probs):
        return math.inf, 1
    n = sum(observed.values())
    bins: list[tuple[float, int]] = []
    pool_e, pool_o = 0.0, 0
    for name in sorted(probs, key=lambda a: probs[a]):
        pool_e += n * probs[name]
        pool_o += observed.get(name, 0)
        if pool_e >= 5:
            bins.append((pool_e, pool_o))
            pool_e, pool_o = 0.0, 0
    if pool_e > 0 and bins:
        e, o = bins.pop()
        bins.append((e + pool_e, o + pool_o))
    stat = sum((o - e) ** 2 / e for e, o in bins)
    return stat, max(len(bins) - 1, 0)


def test_the_statistics_match_published_quantiles() -> None:
    # 95th percentiles of chi-square (df 1, 2, 5, 30) and Kolmogorov's 1.358 / sqrt(n).
    for x, df in ((3.841, 1), (5.991, 2), (11.070, 5), (43.773, 30)):
        assert chi2_sf(x, df) == pytest.approx(0.05, abs=2e-4), df
    assert chi2_sf(0.0, 3) == pytest.approx(1.0)
    assert ks_pvalue(1.358 / math.sqrt(10_000), 10_000) == pytest.approx(0.05, abs=2e-3)
    assert ks_pvalue(1.628 / math.sqrt(10_000), 10_000) == pytest.approx(0.01, abs=1e-3)


# -- one run of the engine -------------------------------------------------------------------


def _scenario() -> Scenario:
    # The busy scenario (helpers.busy_overrides: every user of a persona draws from its
    # matrix alone, no posting multiplier; sessions long enough for 1,000 gaps each), a
    # closed population (arrivals would add nothing but time). These tests check the
    # engine's draws; tests/test_realism_model.py checks the default's per-user spread.
    return busy_scenario(
        **{"population.initial": USERS, "population.signups_per_day": 0, "seed": SEED}
    )


def simulate() -> list[ActionRecord]:
    """Run the default scenario for a week against an instant mock target; its actions."""
    sink = ListSink()
    sim = Simulation(
        _scenario(),
        always_ok_api(),
        FastForwardClock(MONDAY),
        sinks=[sink],
        duration_s=DAYS * 86400.0,
        secret="x",
    )
    asyncio.run(sim.run())
    return [r for r in sink.records if isinstance(r, ActionRecord)]


@pytest.fixture(scope="module")
def actions() -> list[ActionRecord]:
    """The week's action records, shared by the tests of this module (one run)."""
    return simulate()


# -- the action mix per recorded state ---------------------------------------------------------


def matrix_probs(spec: PersonaSpec, state: str) -> dict[str, float]:
    """Action probabilities from the persona's weight matrix and post/update multipliers."""
    weights = dict(spec.actions[cast(State, state)])
    weights["create_post"] = weights.get("create_post", 0.0) * spec.post_frequency
    weights["update_post"] = weights.get("update_post", 0.0) * spec.update_frequency
    total = sum(weights.values())
    return {a: w / total for a, w in weights.items() if w > 0}


def recorded_probs(
    matrix: Mapping[str, float], feed_seen: bool, owns_posts: bool
) -> dict[str, float]:
    """What the record shows for a draw from ``matrix``, given the user's memory.

    The mock target does not resolve actions (it is no ``ActionResolver``), so the
    engine sends every drawn action as drawn: whatever the user's memory, the record
    is the draw. (A target that resolves would send a fallback -- ``browse_feed`` --
    for a ``read_post`` with nothing seen or an ``update_post`` with nothing owned;
    the cells keep the memory split so that such a target could be tested the same way.)
    """
    return dict(matrix)


def mix_by_cell(actions: Iterable[ActionRecord]) -> dict[Cell, Counter[str]]:
    """Count recorded matrix actions by persona, state and the user's memory before each.

    Memory is rebuilt from the records (every action of the mock target succeeds, and
    its feed pages are never empty): a feed seen since this session started, and the
    number of own posts (created minus deleted).
    """
    seen: set[tuple[int, int]] = set()
    posts: Counter[int] = Counter()
    cells: dict[Cell, Counter[str]] = defaultdict(Counter)
    for r in actions:
        if r.action not in MATRIX:
            continue  # sign_up, log_in; a churned user's clean-up (delete_account)
        assert r.ok, r
        session = (r.user_id, r.session_id)
        cells[r.persona, r.state, session in seen, posts[r.user_id] > 0][r.action] += 1
        if r.action == "browse_feed":
            seen.add(session)
        elif r.action == "create_post":
            posts[r.user_id] += 1
        elif r.action == "delete_post":
            posts[r.user_id] -= 1
    return cells


def mix_fit(
    cells: Mapping[Cell, Counter[str]], personas: Mapping[str, PersonaSpec], swap: bool = False
) -> tuple[float, int, list[str]]:
    """Chi-square (statistic, df, worst cells) of every cell against its matrix.

    Within a cell the draws are independent with the same probabilities, so cells
    are independent multinomials: the statistics and degrees of freedom add up.
    ``swap`` compares each state with the *other* state's matrix (a wrong model).
    """
    total, df = 0.0, 0
    worst: list[tuple[float, str]] = []
    for (persona, state, feed_seen, owns), counts in cells.items():
        matrix_state = STATES[1 - STATES.index(state)] if swap else state
        probs = recorded_probs(matrix_probs(personas[persona], matrix_state), feed_seen, owns)
        stat, cell_df = pearson(counts, probs)
        total += stat
        df += cell_df
        worst.append((stat / max(cell_df, 1), f"{persona}/{state}/{feed_seen}/{owns}: {counts}"))
    return total, df, [text for _, text in sorted(worst, reverse=True)[:3]]


def test_action_mix_per_recorded_state_follows_the_persona_matrix(
    actions: list[ActionRecord],
) -> None:
    personas = _scenario().personas
    cells = mix_by_cell(actions)
    assert {r.state for r in actions if r.action in MATRIX} == set(STATES)
    # Enough data in every persona and state: at least 150 matrix actions each.
    per_state: Counter[tuple[str, str]] = Counter()
    for (persona, state, _, _), counts in cells.items():
        per_state[persona, state] += sum(counts.values())
    assert min(per_state[p, s] for p in personas for s in STATES) >= 150, per_state
    stat, df, worst = mix_fit(cells, personas)
    assert df >= 40, df
    p_value = chi2_sf(stat, df)
    assert p_value > ALPHA, (stat, df, p_value, worst)
    # The check bites: each persona's records against the other state's matrix are
    # rejected (an engine that ignores the state looks like this in half of its cells).
    for persona in personas:
        mine = {cell: counts for cell, counts in cells.items() if cell[0] == persona}
        wrong, wrong_df, _ = mix_fit(mine, personas, swap=True)
        assert chi2_sf(wrong, wrong_df) < 1e-9, (persona, wrong, wrong_df)


# -- think time between actions ------------------------------------------------------------


def session_gaps(actions: Iterable[ActionRecord]) -> dict[str, list[float]]:
    """Simulated seconds between one user's consecutive dispatches within a session, by persona.

    A dispatch is one ``sim_ts`` (sign-up and log-in go together). Only routine
    states count (a churned user's clean-up is not part of a session).
    """
    times: dict[tuple[str, int, int], set[float]] = defaultdict(set)
    for r in actions:
        if r.state in STATES:
            times[r.persona, r.user_id, r.session_id].add(r.sim_ts)
    gaps: dict[str, list[float]] = defaultdict(list)
    for (persona, _, _), stamps in times.items():
        ordered = sorted(stamps)
        gaps[persona].extend(b - a for a, b in itertools.pairwise(ordered))
    return gaps


def lognormal_cdf(x: float, think: ThinkTimeSpec) -> float:
    """P(lognormal(median, sigma) <= x)."""
    if think.sigma == 0:
        return float(x >= think.median_s)
    z = math.log(x / think.median_s) / think.sigma
    return 0.5 * math.erfc(-z / math.sqrt(2))


def gap_pit(
    gaps: Iterable[float], spec: PersonaSpec, floor_s: float, rng: random.Random
) -> Iterator[float]:
    """Probability integral transform of the gaps under the model: Uniform(0, 1) if it holds.

    A gap is ``max(lognormal, think_time.min_s, limits.min_action_interval_s)``, and it
    is only seen within a session when at most ``inactivity_timeout_s`` (a longer one
    ends the session). Gaps at the floor (an atom) get a uniform draw below its mass.
    """
    think = spec.session.think_time
    floor = max(floor_s, think.min_s)
    cap = lognormal_cdf(spec.session.inactivity_timeout_s, think)
    at_floor = lognormal_cdf(floor, think) / cap
    for gap in gaps:
        assert floor - 1e-5 <= gap <= spec.session.inactivity_timeout_s + 1e-5, gap
        if gap <= floor + 1e-5:
            yield rng.uniform(0.0, at_floor)
        else:
            yield min(1.0, lognormal_cdf(gap, think) / cap)


def _scaled_median(spec: PersonaSpec, factor: float) -> PersonaSpec:
    think = spec.session.think_time.model_copy(
        update={"median_s": spec.session.think_time.median_s * factor}
    )
    return spec.model_copy(
        update={"session": spec.session.model_copy(update={"think_time": think})}
    )


def test_gaps_within_a_session_follow_the_think_time_distribution(
    actions: list[ActionRecord],
) -> None:
    scenario = _scenario()
    floor_s = scenario.limits.min_action_interval_s
    gaps = session_gaps(actions)
    assert set(gaps) == set(scenario.personas)
    for persona, spec in scenario.personas.items():
        assert len(gaps[persona]) >= 1000, (persona, len(gaps[persona]))
        d, p_value = ks_uniform(gap_pit(gaps[persona], spec, floor_s, random.Random(SEED)))
        # Four tests: each at ALPHA / 4 (Bonferroni), ALPHA in all.
        assert p_value > ALPHA / 4, (persona, len(gaps[persona]), d, p_value)
        # The check bites: a median 20% off is rejected on the same gaps.
        for factor in (0.8, 1.2):
            wrong = _scaled_median(spec, factor)
            _, p_wrong = ks_uniform(gap_pit(gaps[persona], wrong, floor_s, random.Random(SEED)))
            assert p_wrong < 1e-6, (persona, factor, p_wrong)
