"""The behaviour model: routines and personas compiled for fast, pure planning.

Planning decides *when* a user wakes and *what kind* of action it takes. It is
synchronous, does no I/O and depends only on its inputs and the random
generator passed in, so the same model serves live, accelerated and
fast-forward runs.

Session starts follow a non-homogeneous Poisson process whose rate at local
time ``t`` is ``sessions_per_day * intensity(t) * hour_weight(t) / W``, where
``W`` is the mean weekday integral of ``intensity * hour_weight``; so a persona
averages ``sessions_per_day`` sessions on a weekday, none while sleeping, and
most in its relaxing blocks. The next start is drawn exactly by integrating
the piecewise-constant rate over a compiled weekly table (no per-user timers,
no rejection loops through the night).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from sim_engine.model.builtin import social_api
from sim_engine.model.scenario import ACTIONS, PersonaSpec, RoutineSpec, Scenario, SessionSpec

__all__ = [
    "MINUTES_PER_WEEK",
    "CompiledPersona",
    "WeekTable",
    "compile_personas",
    "compile_week",
    "write_actions",
]

MINUTES_PER_WEEK = 7 * 24 * 60
_WEEK_S = MINUTES_PER_WEEK * 60.0
_EPOCH_WEEKDAY_OFFSET_S = 3 * 86400.0  # 1970-01-01 was a Thursday: Monday 00:00 is 3 days earlier


@dataclass(frozen=True, slots=True)
class WeekTable:
    """A persona's week as piecewise-constant segments of (shifted) local time.

    Attributes:
        starts_s: segment start, seconds after local Monday 00:00 (ascending, first is 0).
        rates: session-start rate per simulated second in each segment.
        states: routine state name in each segment.
        day_weights: each weekday's routine intensity (0 = Monday) over the mean
            weekday's: about 0.8 on the default routine's weekend days.
    """

    starts_s: tuple[float, ...]
    rates: tuple[float, ...]
    states: tuple[str, ...]
    day_weights: tuple[float, ...] = (1.0,) * 7

    def index(self, week_s: float) -> int:
        """Return the segment holding ``week_s`` seconds after local Monday 00:00."""
        return bisect_right(self.starts_s, week_s) - 1

    def end_s(self, i: int) -> float:
        """Return the end of segment ``i`` (seconds after local Monday 00:00)."""
        return self.starts_s[i + 1] if i + 1 < len(self.starts_s) else _WEEK_S


def _intensity_by_minute(routine: RoutineSpec, weekend: bool) -> list[tuple[str, float]]:
    blocks = routine.weekend if weekend else routine.weekday
    out: list[tuple[str, float]] = []
    for block in blocks:
        start, end = block.minutes()
        level = block.intensity if block.intensity is not None else routine.intensity[block.state]
        if block.state == "sleeping":
            level = 0.0
        out.extend([(block.state, level)] * (end - start))
    return out


def compile_week(routine: RoutineSpec, persona: PersonaSpec) -> WeekTable:
    """Compile a routine and a persona into a :class:`WeekTable`.

    The table is indexed by *shifted* local time: local time minus
    ``persona.hour_shift_h``, so a Night Owl (shift +6 h) is in the routine's
    00:00 block at 06:00 local.
    """
    days = [_intensity_by_minute(routine, weekend=d >= 5) for d in range(7)]
    weights = persona.hour_weights or (1.0,) * 24
    shift_min = round(persona.hour_shift_h * 60)
    minute_levels: list[tuple[str, float]] = []
    for minute in range(MINUTES_PER_WEEK):
        state, level = days[minute // 1440][minute % 1440]
        local_hour = ((minute + shift_min) % 1440) // 60  # hour_weights are by real local hour
        minute_levels.append((state, level * weights[local_hour]))
    weekday_mass = sum(level for _, level in minute_levels[: 5 * 1440]) / 5 * 60.0  # per day, s
    per_s = persona.sessions_per_day / weekday_mass if weekday_mass > 0 else 0.0
    day_mass = [sum(lv for _, lv in minute_levels[d * 1440 : (d + 1) * 1440]) for d in range(7)]
    mean_weekday = sum(day_mass[:5]) / 5
    weights_by_day = tuple(m / mean_weekday if mean_weekday > 0 else 1.0 for m in day_mass)
    starts: list[float] = []
    rates: list[float] = []
    states: list[str] = []
    for minute, (state, level) in enumerate(minute_levels):
        rate = level * per_s
        if not states or states[-1] != state or rates[-1] != rate:
            starts.append(minute * 60.0)
            rates.append(rate)
            states.append(state)
    return WeekTable(tuple(starts), tuple(rates), tuple(states), weights_by_day)


def _cumulative(
    weights: dict[str, float], spec: PersonaSpec
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Action names and cumulative weights (``post_frequency``/``update_frequency`` applied)."""
    # The social API's actions in their canonical order, then any others (``api``
    # section) in the scenario's order.
    names = tuple(a for a in ACTIONS if weights.get(a, 0.0) > 0) + tuple(
        a for a, w in weights.items() if a not in ACTIONS and w > 0
    )
    scaled = []
    for name in names:
        w = weights[name]
        if name == "create_post":
            w *= spec.post_frequency
        elif name == "update_post":
            w *= spec.update_frequency
        scaled.append(w)
    return names, tuple(accumulate(scaled))


class CompiledPersona:
    """A persona ready for planning.

    Args:
        name: persona name.
        spec: the persona's scenario entry.
        routine: the scenario's routine.
        index: the persona's position in the scenario.
        writes: the action names a user's posting multiplier applies to (the API's
            actions whose method is not GET).
    """

    __slots__ = ("_cum", "_writes_in", "index", "name", "session", "spec", "week", "writes")

    def __init__(
        self,
        name: str,
        spec: PersonaSpec,
        routine: RoutineSpec,
        index: int = 0,
        writes: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.index = index
        self.spec = spec
        self.writes = writes
        self.session: SessionSpec = spec.session
        self.week = compile_week(routine, spec)
        self._cum: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
            state: _cumulative(w, spec) for state, w in spec.actions.items()
        }
        # routine states whose actions include a write (the posting multiplier applies)
        self._writes_in = {
            state: not writes.isdisjoint(names) for state, (names, _) in self._cum.items()
        }

    # -- routine -------------------------------------------------------------------------

    def _week_s(self, sim_t: float, utc_offset_s: float) -> float:
        shifted = sim_t + utc_offset_s - self.spec.hour_shift_h * 3600.0
        return (shifted + _EPOCH_WEEKDAY_OFFSET_S) % _WEEK_S

    def state_at(self, sim_t: float, utc_offset_s: float) -> str:
        """Return the routine state at ``sim_t`` (simulated epoch s) at that UTC offset (s)."""
        return self.week.states[self.week.index(self._week_s(sim_t, utc_offset_s))]

    def rate_at(self, sim_t: float, utc_offset_s: float) -> float:
        """Return the session-start rate (per simulated second) at ``sim_t``."""
        return self.week.rates[self.week.index(self._week_s(sim_t, utc_offset_s))]

    def day_weight(self, weekday: int) -> float:
        """The routine's intensity on ``weekday`` (0 = Monday) over a mean weekday's."""
        return self.week.day_weights[weekday]

    def next_session_start(
        self, sim_t: float, utc_offset_s: float, rng: random.Random, activity: float = 1.0
    ) -> float:
        """Draw the next session start after ``sim_t`` (simulated epoch seconds).

        Exact inversion of the cumulative hazard over the weekly table: draw
        ``E ~ Exp(1)`` and walk segments, spending ``rate * activity * length`` of it
        (``activity``: the user's multiplier, :mod:`sim_engine.model.plan.propensity`).
        Returns ``math.inf`` when the persona never acts.
        """
        week = self.week
        budget = rng.expovariate(1.0) / activity
        pos = self._week_s(sim_t, utc_offset_s)
        i = week.index(pos)
        elapsed = 0.0
        for _ in range(len(week.starts_s) * 2 + 2):
            end = week.end_s(i)
            rate = week.rates[i]
            span = end - pos
            if rate > 0 and rate * span >= budget:
                return sim_t + elapsed + budget / rate
            budget -= rate * span
            elapsed += span
            pos = end
            i += 1
            if i == len(week.starts_s):
                i, pos = 0, 0.0
        if all(r == 0 for r in week.rates):
            return math.inf
        # Very long gap (tiny rates): keep walking from the new point.
        return self.next_session_start(sim_t + elapsed, utc_offset_s, rng, activity)

    def follow_up_start(self, sim_t: float, rng: random.Random) -> float:
        """After a session ending at ``sim_t``: a follow-up session's start, or ``inf``.

        With chance ``session.follow_up.probability``, ``sim_t`` plus a log-normal delay
        (no draw at all when the chance is 0, so other scenarios' draws are unchanged).
        """
        spec = self.session.follow_up
        if spec.probability <= 0 or rng.random() >= spec.probability:
            return math.inf
        return sim_t + rng.lognormvariate(math.log(spec.median_s), spec.sigma)

    def session_start_within(
        self, sim_t: float, end_t: float, utc_offset_s: float, rng: random.Random
    ) -> float:
        """Draw one session start in ``[sim_t, end_t)``, given that there is one.

        The density is proportional to the session-start rate (the routine's
        intensity), so an active day's first session lands where the persona is
        likely to be awake and free. Returns ``math.inf`` when the rate is zero
        throughout the interval.
        """
        week = self.week
        pos = self._week_s(sim_t, utc_offset_s)
        i = week.index(pos)
        spans: list[tuple[float, float, float]] = []  # (elapsed at segment start, span, rate)
        elapsed, mass = 0.0, 0.0
        while elapsed < end_t - sim_t:
            span = min(week.end_s(i) - pos, end_t - sim_t - elapsed)
            spans.append((elapsed, span, week.rates[i]))
            mass += week.rates[i] * span
            elapsed += span
            pos = week.end_s(i)
            i += 1
            if i == len(week.starts_s):
                i, pos = 0, 0.0
        if mass <= 0:
            return math.inf
        budget = rng.random() * mass
        for start, span, rate in spans:
            if rate > 0 and rate * span >= budget:
                return sim_t + start + budget / rate
            budget -= rate * span
        return sim_t + elapsed  # rounding: the very end

    # -- sessions and actions ------------------------------------------------------------

    def session_length(self, rng: random.Random) -> int:
        """Draw the number of actions in a session: geometric with the persona's mean, capped."""
        mean = self.session.mean_actions
        if mean <= 1.0:
            return 1
        p = 1.0 / mean
        k = 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))
        return min(k, self.session.max_actions)

    def think_time_s(self, rng: random.Random) -> float:
        """Draw a think time (simulated seconds): lognormal around the persona's median."""
        tt = self.session.think_time
        return max(tt.min_s, rng.lognormvariate(math.log(tt.median_s), tt.sigma))

    def choose_action(
        self,
        state: str,
        rng: random.Random,
        multipliers: dict[str, float] | None = None,
        posting: float = 1.0,
    ) -> str:
        """Draw an action name from the weight matrix of routine ``state``.

        Args:
            state: ``working`` or ``relaxing``.
            rng: the user's generator.
            multipliers: action -> factor on its weight (session affinity, seed 001).
            posting: the user's posting multiplier on the weights of :attr:`writes`.

        Raises:
            KeyError: ``state`` has no weights (``sleeping`` never acts).
        """
        names, cum = self._cum[state]
        if posting != 1.0 and self._writes_in[state]:
            factors = dict.fromkeys(self.writes, posting)
            for name, f in (multipliers or {}).items():
                factors[name] = factors.get(name, 1.0) * f
            multipliers = factors
        if multipliers:
            weights = [c - (cum[i - 1] if i else 0.0) for i, c in enumerate(cum)]
            scaled = [w * multipliers.get(n, 1.0) for n, w in zip(names, weights, strict=True)]
            return rng.choices(names, scaled)[0]
        return names[bisect_right(cum, rng.random() * cum[-1])]

    def action_probabilities(self, state: str) -> dict[str, float]:
        """Return the normalised action probabilities in ``state`` (for reports and tests)."""
        names, cum = self._cum[state]
        prev = 0.0
        out = {}
        for name, c in zip(names, cum, strict=True):
            out[name] = (c - prev) / cum[-1]
            prev = c
        return out


def write_actions(scenario: Scenario) -> frozenset[str]:
    """The scenario's write actions: those of its API description (the ``api`` section,
    else the demo API's) whose method is not GET."""
    api = scenario.api if scenario.api is not None else social_api()
    return frozenset(n for n, a in api.actions.items() if a.method.upper() != "GET")


def compile_personas(scenario: Scenario) -> list[CompiledPersona]:
    """Compile every persona of a scenario, in file order (index = position)."""
    writes = write_actions(scenario)
    return [
        CompiledPersona(name, spec, scenario.routine, index=i, writes=writes)
        for i, (name, spec) in enumerate(scenario.personas.items())
    ]
