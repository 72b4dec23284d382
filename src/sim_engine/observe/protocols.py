"""What the observers need of a running simulation, as small protocols.

:class:`~sim_engine.engine.simulation.Simulation` satisfies both; typing an
observer against them (instead of the concrete class) says which members it
reads and lets tests pass a stand-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sim_engine.engine.simulation import SimulationStats

__all__ = ["RunControl", "RunStatus"]


class RunStatus(Protocol):
    """A run's progress: its simulated span, speed, state and counters."""

    @property
    def start_s(self) -> float:
        """Where this process's simulation started (simulated epoch seconds; a resumed
        run's resume point)."""
        ...

    @property
    def run_start_s(self) -> float:
        """Where the run began (simulated epoch seconds), kept across resumes: the start
        every view's simulated span counts from (:mod:`sim_engine.observe.counts`)."""
        ...

    @property
    def end_s(self) -> float:
        """The simulated end (simulated epoch seconds; ``inf`` when open-ended)."""
        ...

    @property
    def speed(self) -> float | None:
        """Simulated seconds per wall second as set (None: as fast as possible)."""
        ...

    @property
    def state(self) -> str:
        """``running``, ``paused`` or ``stopping``."""
        ...

    def statistics(self) -> SimulationStats:
        """Return the run's counters now (simulated time, users, actions...)."""
        ...

    def breakdown(self) -> dict[str, dict[str, int]]:
        """Count users by lifecycle state, persona, routine state and session."""
        ...


class RunControl(RunStatus, Protocol):
    """Steering a run: pause, resume, change the speed, stop."""

    @property
    def paused(self) -> bool:
        """True while the simulated clock stands still."""
        ...

    @property
    def stopping(self) -> bool:
        """True once the run is ending (commands are refused then)."""
        ...

    def pause(self) -> None:
        """Stop the simulated clock; no more actions start."""
        ...

    def resume(self) -> None:
        """Let simulated time run again."""
        ...

    def set_speed(self, speed: float | None) -> None:
        """Set simulated seconds per wall second (None: as fast as possible)."""
        ...

    def stop(self) -> None:
        """End the run gracefully (in-flight actions finish, outputs are written)."""
        ...
