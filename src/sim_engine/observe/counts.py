"""One truth for user counts: the words and figures every view of a run shares.

The dashboard, ``ctl status``, Prometheus, the end-of-run summary and ``metrics.json``
all report the same three counts (issue 15, must-have 6), computed here:

- ``known``: users the engine knows now (created and not forgotten: the initial
  population, arrivals and replacements, churned-but-kept included), whether or not
  they have signed up yet (a user signs up at its first session);
- ``joined``: of all users ever created, those who signed up on the target
  (cumulative; churned users stay counted);
- ``active``: users in a session now.

The simulated span is ``sim_now - run_start_s`` (simulated seconds,
:func:`simulated_span`), where ``run_start_s`` is where the run began -- kept across
``--resume``, so a resumed run's ``ctl status``, Prometheus start gauge, dashboard and
web page count from the same start as ``metrics.json``. Setting up takes none of it
(the runner's clock is paused until the run starts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim_engine.engine.simulation import SimulationStats

__all__ = ["UserCounts", "simulated_span", "user_counts"]


@dataclass(frozen=True)
class UserCounts:
    """The users of a run now (see the module docstring for each word)."""

    known: int
    joined: int
    active: int

    def as_dict(self) -> dict[str, int]:
        """``{"known": n, "joined": n, "active": n}``."""
        return asdict(self)


def user_counts(stats: SimulationStats, breakdown: Mapping[str, Mapping[str, int]]) -> UserCounts:
    """The counts from a run's statistics and its population breakdown
    (:meth:`~sim_engine.engine.simulation.Simulation.breakdown`)."""
    active = int(breakdown.get("session", {}).get("in_session", 0))
    return UserCounts(known=stats.users, joined=stats.signed_up, active=active)


def simulated_span(sim_now: float, run_start_s: float) -> float:
    """The run's simulated span: simulated seconds from where the run began (kept across
    resumes) to ``sim_now``, rounded to the millisecond."""
    return round(sim_now - run_start_s, 3)
