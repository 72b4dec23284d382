"""Growth of the population: founders, the initial users, Poisson sign-ups, replacements.

New users arrive as a Poisson process at ``population.signups_per_day`` (capped
per run day by ``max_signups_per_day`` and in all by ``population.max``).
Admitting a user gives it a lifecycle status (when the scenario has a
``lifecycle`` section), its first local midnight and its first session.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime

from sim_engine.engine.capabilities import Routine
from sim_engine.engine.events import ARRIVAL, DAY, DAY_S, SESSION, next_midnight, offset_of
from sim_engine.engine.ledger import Ledger
from sim_engine.engine.scheduler import Scheduler
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.lifecycle import new_status
from sim_engine.model.plan.propensity import user_propensities
from sim_engine.model.population import IdentityFactory, SimUser, save_rng, user_rng
from sim_engine.model.scenario import FounderSpec, Scenario

__all__ = ["Growth"]


class Growth:
    """Creates users and schedules arrivals.

    Args:
        scenario: the validated scenario.
        personas: the compiled personas, by index.
        factory: makes identities.
        ledger: the run's users.
        scheduler: where arrivals and first events go.
        routine: when each user's first session starts.

    Attributes:
        rng: the run-level generator of arrivals and replacements (saved in checkpoints).
        arrivals_today: arrivals since the current run day began (for the daily cap).
    """

    def __init__(
        self,
        scenario: Scenario,
        personas: list[CompiledPersona],
        factory: IdentityFactory,
        ledger: Ledger,
        scheduler: Scheduler,
        routine: Routine,
    ) -> None:
        self._scenario = scenario
        self._pop = scenario.population
        self._personas = personas
        self.factory = factory
        self._ledger = ledger
        self._scheduler = scheduler
        self._routine = routine
        self._life = scenario.lifecycle if scenario.lifecycle.enabled else None
        self._persona_index = {p.name: p.index for p in personas}
        self.rng = random.Random(scenario.seed * 7919 + 1)
        self.arrivals_today = 0
        self._not_before_s = -math.inf

    def full(self) -> bool:
        """True when the population has reached ``population.max``."""
        return len(self._ledger.users) >= self._pop.max

    def add_users(self, count: int, sim_t: float) -> list[SimUser]:
        """Create up to ``count`` users at ``sim_t`` (fewer when the maximum is reached)."""
        made = []
        for _ in range(count):
            if self.full():
                break
            made.append(self.create(sim_t))
        return made

    def create_founder(self, spec: FounderSpec, sim_t: float) -> SimUser:
        """Create a founder account (seed 001): never churns, stable password."""
        persona = self._persona_index[spec.persona] if spec.persona else None
        user = self.factory.create(sim_t, persona=persona, name=spec.name, email=spec.email)
        user.founder = True
        return self._admit(user, sim_t)

    def create(self, sim_t: float) -> SimUser:
        """Create one user at ``sim_t``; it signs up at its first session."""
        return self._admit(self.factory.create(sim_t), sim_t)

    def _admit(self, user: SimUser, sim_t: float) -> SimUser:
        spec = self._personas[user.persona].spec
        user.activity, user.posting = user_propensities(
            self._scenario.seed, user.user_id, spec.activity_sigma, spec.posting_sigma
        )
        self._ledger.add(user)
        rng = user_rng(user)
        local = datetime.fromtimestamp(sim_t, user.tz)
        if self._life is not None:
            user.life = new_status(self._life, local.date().toordinal(), rng)
            user.life.active_today = True  # joining is the first day's activity
            user.day_end = next_midnight(local)
            self._scheduler.push(user.day_end, DAY, user)
        persona = self._personas[user.persona]
        first = self._routine.next_start(persona, user, sim_t, offset_of(local), rng)
        save_rng(user, rng)
        if math.isfinite(first):
            self._scheduler.push(first, SESSION, user)
        return user

    def start(self, sim_t: float) -> None:
        """Schedule the first arrival after ``sim_t`` (when sign-ups are on), or after the
        last user a resumed run found (see :meth:`resume_after`)."""
        if self._pop.signups_per_day > 0:
            self._scheduler.push(max(sim_t, self._not_before_s) + self._gap_s(), ARRIVAL, None)

    def resume_after(self, now: float, created: Sequence[float]) -> None:
        """A resumed run restarts its clock at its last checkpoint (``now``, simulated
        epoch seconds); users created after it (``created``: every saved user's creation
        time) were saved as they joined: they count as today's arrivals, and arrivals go
        on after the last of them instead of being drawn again."""
        later = [t for t in created if t > now]
        self.arrivals_today += len(later)
        self._not_before_s = max([now, *later])

    def on_arrival(self, sim_t: float) -> None:
        """An arrival: a new user (within the caps), and the next arrival."""
        cap = self._pop.max_signups_per_day
        if not self.full() and (cap is None or self.arrivals_today < cap):
            self.arrivals_today += 1
            self.create(sim_t)
        self._scheduler.push(sim_t + self._gap_s(), ARRIVAL, None)

    def _gap_s(self) -> float:
        return self.rng.expovariate(self._pop.signups_per_day / DAY_S)
