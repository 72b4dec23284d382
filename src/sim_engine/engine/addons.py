"""The add-on seam: things that watch or steer a run from the edge.

An add-on contributes sinks (records it wants to see), starts when the
simulation is built, and stops after the run. The Prometheus exporter, the
live dashboard and the control endpoint are add-ons; the runner builds the
ones the command line asked for. Add-ons may read
:meth:`Simulation.statistics` and :meth:`Simulation.breakdown` and call its
run-control methods (``pause``, ``resume``, ``set_speed``, ``stop``), never its
private state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sim_engine.model.records import Sink

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = ["Addon"]


class Addon(Protocol):
    """Something that watches or steers a run."""

    def sinks(self) -> list[Sink]:
        """Return the sinks to register with the simulation (may be empty)."""
        ...

    async def start(self, sim: Simulation) -> None:
        """Begin (open servers, start refresh tasks); called once before the run."""
        ...

    async def stop(self) -> None:
        """End (close servers, cancel tasks); called once after the run, even on error."""
        ...
