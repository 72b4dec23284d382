"""The planned population: who exists on which local day, and how each day goes for them.

One pass over the days, vectorised over users: founders and the initial users
join on day 0; Poisson sign-ups (``population.signups_per_day``, capped by
``max_signups_per_day`` and by ``population.max`` live users) and replacements
(``lifecycle.replacement``) join on later days at a uniform time of their own
local day; the lifecycle (:class:`~sim_engine.model.plan.lifecycle.LifeArrays`)
decides every later day. The result is small: a code byte per user-day and a few
arrays per user, from which any chunk of users is planned independently
(:mod:`sim_engine.model.plan.events`).

The pass is global because growth is: the population cap and replacements depend
on how many users have churned. Its randomness is hashed per user and day (and a
run-level generator for arrival counts), so it does not depend on chunks either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from sim_engine.model.behaviour import compile_personas
from sim_engine.model.plan.calendar import ZoneCalendar
from sim_engine.model.plan.lifecycle import ACTIVE, CHURNED, STATES, Changes, LifeArrays
from sim_engine.model.plan.rand import run_key, uniform, user_keys
from sim_engine.model.scenario import Scenario

__all__ = [
    "ABSENT",
    "ACTIVE_BIT",
    "BINGE_BIT",
    "JOIN_BIT",
    "STATE_MASK",
    "Population",
    "plan_population",
]

STATE_MASK, ACTIVE_BIT, BINGE_BIT, JOIN_BIT = 0x07, 0x08, 0x10, 0x20
ABSENT = 0xFF
"""Code of a user-day before the user joined."""
_PERSONA, _ZONE, _TIME = 200, 201, 202
_GROWTH_STREAM = 0x67726F77


@dataclass
class Population:
    """Everyone a run plans, and their days.

    Attributes:
        key: the run key (:func:`~sim_engine.model.plan.rand.run_key`).
        calendar: the zones' local calendars.
        created_ts: float64 per user: simulated epoch seconds of joining.
        join_day: int32 per user: the local day of joining.
        persona, zone, segment: int per user (indices into the scenario's personas,
            ``calendar.zones`` and ``lifecycle.segments``).
        founder: bool per user.
        codes: uint8 ``(users, days)``: lifecycle state (``& STATE_MASK``, index into
            ``STATES``), active, binging, joined that day; ``ABSENT`` before joining.
        churn_day: int32 per user, the day it churned, ``-1`` if never.
        changes: per day, that day's lifecycle transitions.
    """

    key: int
    calendar: ZoneCalendar
    created_ts: npt.NDArray[np.float64]
    join_day: npt.NDArray[np.int32]
    persona: npt.NDArray[np.int16]
    zone: npt.NDArray[np.int16]
    segment: npt.NDArray[np.int8]
    founder: npt.NDArray[np.bool_]
    codes: npt.NDArray[np.uint8]
    churn_day: npt.NDArray[np.int32]
    changes: list[Changes] = field(default_factory=list)
    first: int = 0

    @property
    def size(self) -> int:
        """How many users the run plans (in this slice)."""
        return len(self.created_ts)

    def slice(self, lo: int, hi: int) -> Population:
        """Return users ``lo`` to ``hi - 1`` (global indices; no lifecycle changes)."""
        a, b = lo - self.first, hi - self.first
        return Population(
            key=self.key,
            calendar=self.calendar,
            created_ts=self.created_ts[a:b],
            join_day=self.join_day[a:b],
            persona=self.persona[a:b],
            zone=self.zone[a:b],
            segment=self.segment[a:b],
            founder=self.founder[a:b],
            codes=self.codes[a:b],
            churn_day=self.churn_day[a:b],
            first=lo,
        )


class _Pass:
    """The state of the day-by-day pass (arrays sized for the most users possible)."""

    def __init__(self, scenario: Scenario, users: int, days: int, start: date, seed: int) -> None:
        self.scenario = scenario
        self.days = days
        self.key = run_key(seed)
        self.life = scenario.lifecycle if scenario.lifecycle.enabled else None
        pop = scenario.population
        self.growth = np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(_GROWTH_STREAM,))
        )
        arrivals = self.growth.poisson(pop.signups_per_day, size=days) if days > 1 else np.zeros(1)
        if pop.max_signups_per_day is not None:
            arrivals = np.minimum(arrivals, pop.max_signups_per_day)
        self.arrivals = arrivals.astype(np.int64)
        self.limit = max(pop.max, users + len(pop.founders))
        replacing = self.life is not None and self.life.replacement.enabled
        extra = self.life.replacement.daily.high * days if self.life and replacing else 0
        cap = len(pop.founders) + users + int(self.arrivals[1:].sum()) + extra
        self.calendar = ZoneCalendar.build(list(pop.timezones), start, days)
        self.n = 0
        self.live = 0
        self.created = np.zeros(cap, np.float64)
        self.join = np.zeros(cap, np.int32)
        self.persona = np.zeros(cap, np.int16)
        self.zone = np.zeros(cap, np.int16)
        self.founder = np.zeros(cap, np.bool_)
        self.churn = np.full(cap, -1, np.int32)
        self.codes = np.full((cap, days), ABSENT, np.uint8)
        self.arrays = LifeArrays(self.life, cap) if self.life is not None else None
        names = list(scenario.personas)
        shares = scenario.persona_shares()
        self._persona_cum = np.cumsum([shares[n] for n in names]) / sum(shares.values())
        zones = list(pop.timezones.values())
        self._zone_cum = np.cumsum(zones) / sum(zones)
        self._persona_names = names
        self._day_weights = np.asarray([p.week.day_weights for p in compile_personas(scenario)])
        self.changes: list[Changes] = []

    def _replacing(self) -> bool:
        return self.life is not None and self.life.replacement.enabled

    def admit(self, count: int, day: int, founders: list[int | None] | None = None) -> None:
        """Add ``count`` users joining on ``day`` (founders first, with forced personas)."""
        count = min(count, len(self.created) - self.n)
        if count <= 0:
            return
        idx = np.arange(self.n, self.n + count, dtype=np.int64)
        keys = user_keys(self.key, idx)
        persona = np.searchsorted(self._persona_cum, uniform(keys, _PERSONA), "right")
        persona = np.minimum(persona, len(self._persona_cum) - 1)
        is_founder = np.zeros(count, np.bool_)
        for i, forced in enumerate(founders or []):
            is_founder[i] = True
            if forced is not None:
                persona[i] = forced
        zone = np.minimum(
            np.searchsorted(self._zone_cum, uniform(keys, _ZONE), "right"), len(self._zone_cum) - 1
        )
        mid = self.calendar.midnights
        start, end = mid[zone, day], mid[zone, day + 1]
        at = start if day == 0 else start + uniform(keys, _TIME) * (end - start)
        self.created[idx], self.join[idx] = at, day
        self.persona[idx], self.zone[idx], self.founder[idx] = persona, zone, is_founder
        state = 0
        if self.arrays is not None:
            self.arrays.admit(idx, keys, day, is_founder)
        else:
            state = ACTIVE
        self.codes[idx, day] = state | 0x08 | 0x20
        self.n += count
        self.live += count

    def decide(self, day: int) -> None:
        """Decide day ``day`` for everyone who joined before it."""
        idx = np.flatnonzero(self.join[: self.n] < day)
        if self.arrays is None:
            self.codes[idx, day] = ACTIVE | 0x08
            return
        life = self.arrays
        idx = idx[life.state[idx] != CHURNED]
        keys = user_keys(self.key, idx)
        weight = self._day_weights[self.persona[idx], self.calendar.weekday(day)]
        active, changes = life.decide(idx, keys, day, self.calendar.date(day), weight)
        codes = life.state[idx].astype(np.uint8) | np.where(active, 0x08, 0).astype(np.uint8)
        codes |= np.where(life.binging(idx), 0x10, 0).astype(np.uint8)
        self.codes[idx, day] = codes
        churned = idx[life.state[idx] == CHURNED]
        self.churn[churned] = day
        self.live -= len(churned)
        gone = np.flatnonzero(self.churn[: self.n] >= 0)
        self.codes[gone[self.churn[gone] < day], day] = CHURNED
        changes.day = day
        self.changes.append(changes)

    def joining(self, day: int) -> int:
        """How many users join on ``day`` (arrivals within the caps, then replacements)."""
        room = max(0, self.limit - self.live)
        count = min(int(self.arrivals[day]), room)
        if self._replacing() and self.life is not None:
            rep = self.life.replacement
            deficit = rep.target_pool - (self.live + count)
            if deficit > 0:
                count += min(deficit, int(self.growth.integers(rep.daily.low, rep.daily.high + 1)))
        return count


def plan_population(
    scenario: Scenario, users: int, days: int, start: date, seed: int
) -> Population:
    """Plan who exists on each of ``days`` local dates from ``start``, and their lifecycle.

    Args:
        scenario: the validated scenario (population, personas, lifecycle).
        users: the initial population (after the scenario's founders), joining on day 0.
        days: how many local dates (at least 1).
        start: the first local date.
        seed: the run seed.

    Returns:
        The :class:`Population`.
    """
    run = _Pass(scenario, users, days, start, seed)
    index = {name: i for i, name in enumerate(run._persona_names)}
    founders = [index[f.persona] if f.persona else None for f in scenario.population.founders]
    run.admit(len(founders), 0, founders)
    run.admit(users, 0)
    for day in range(1, days):
        run.decide(day)
        run.admit(run.joining(day), day)
    n = run.n
    segment = run.arrays.segment[:n] if run.arrays is not None else np.zeros(n, np.int8)
    return Population(
        key=run.key,
        calendar=run.calendar,
        created_ts=run.created[:n],
        join_day=run.join[:n],
        persona=run.persona[:n],
        zone=run.zone[:n],
        segment=segment,
        founder=run.founder[:n],
        codes=run.codes[:n],
        churn_day=run.churn[:n],
        changes=run.changes,
    )


def state_names() -> tuple[str, ...]:
    """Lifecycle state names by code (the ``lifecycle_state`` column's dictionary)."""
    return tuple(s.value for s in STATES)
