"""A snapshot of a run's counters (:meth:`~sim_engine.engine.simulation.Simulation.statistics`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SimulationStats"]


@dataclass(frozen=True, slots=True)
class SimulationStats:
    """A snapshot of a run (see :meth:`Simulation.statistics`).

    Attributes:
        sim_now: current simulated time (simulated epoch seconds).
        users: users created so far; ``signed_up``: of them, signed up on the target.
        actions: actions completed; ``failed``: of them, not ok.
        in_flight: actions awaiting an answer.
        scheduled: events waiting in the heap.
        idle: steps at which nothing was possible (an ``api`` section's guards,
            e.g. nothing to read yet): the user only thought.
    """

    sim_now: float
    users: int
    signed_up: int
    actions: int
    failed: int
    in_flight: int
    scheduled: int
    idle: int = 0
