"""A scenario's event log planned in memory by ``generate``'s vectorised planner.

:func:`simulate` plans the population and every local day of it with
:func:`~sim_engine.model.plan.population.plan_population` and
:class:`~sim_engine.model.plan.events.ChunkPlanner` (what ``sim-engine generate``
runs per chunk, here one chunk and no files), drops the sign-up and log-in events,
and returns the events as arrays that :func:`~sim_engine.realism.estimators.facts`
measures. Times are simulated epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from sim_engine.model.plan.events import SIGNUP_EVENTS, ChunkPlanner, PlanModel
from sim_engine.model.plan.population import plan_population
from sim_engine.model.scenario import Scenario

__all__ = ["SimulatedLog", "simulate"]


@dataclass(frozen=True, slots=True, eq=False)
class SimulatedLog:
    """Planned events, one entry per event, sign-up and log-in left out.

    Attributes:
        user: int64 user index; ``t``: float64 simulated epoch seconds (UTC);
        offset_s: float64 the user's UTC offset at the event (s); ``action``: int16
        index into ``names``; ``planned_users``: users the population planned (with
        those who never acted).
    """

    user: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]
    offset_s: npt.NDArray[np.float64]
    action: npt.NDArray[np.int16]
    names: tuple[str, ...]
    planned_users: int = 0

    def select(self, keep: npt.NDArray[np.bool_]) -> SimulatedLog:
        """The events where ``keep`` is True."""
        return SimulatedLog(
            self.user[keep],
            self.t[keep],
            self.offset_s[keep],
            self.action[keep],
            self.names,
            self.planned_users,
        )

    def is_action(self, names: frozenset[str] | set[str]) -> npt.NDArray[np.bool_]:
        """True for events whose action is in ``names``."""
        wanted = np.asarray([n in names for n in self.names], dtype=bool)
        return wanted[self.action]


def simulate(scenario: Scenario, initial: int, days: int, start: date, seed: int) -> SimulatedLog:
    """Plan ``days`` local dates from ``start`` of ``scenario`` with ``initial`` users on day 0.

    Arrivals after day 0 follow the scenario's ``population.signups_per_day``.
    Deterministic: the same arguments give the same events.
    """
    pop = plan_population(scenario, initial, days, start, seed)
    model = PlanModel(scenario)
    planner = ChunkPlanner(model, pop.slice(0, pop.size))
    users, ts, offsets, actions = [], [], [], []
    signup = np.asarray([model.names.index(n) for n in SIGNUP_EVENTS], dtype=np.int16)
    for day in range(days):
        plan = planner.plan_day(day)
        keep = ~np.isin(plan.action, signup)
        users.append(plan.user[keep])
        ts.append(plan.ts[keep])
        offsets.append(plan.offset[keep])
        actions.append(plan.action[keep])
    if not users:
        empty = np.zeros(0)
        return SimulatedLog(
            empty.astype(np.int64), empty, empty, empty.astype(np.int16), model.names, pop.size
        )
    return SimulatedLog(
        np.concatenate(users),
        np.concatenate(ts),
        np.concatenate(offsets).astype(np.float64),
        np.concatenate(actions),
        model.names,
        pop.size,
    )
