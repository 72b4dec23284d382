"""Telling the user when the target's backoff starves the run (console, ``log.jsonl``).

The run's :class:`~sim_engine.targets.resilient.ResilientTransport` measures
which requests the target's ``Backoff`` / ``Retry-After`` held back
(:mod:`sim_engine.targets.starvation`) and reports it in its ``statistics()``
(``starving`` now, ``starvation`` episodes). :class:`StarvationWatch` reads it
once a wall second and writes one warning line when most requests start being
held back, naming the endpoints and the delays they asked for, and one when
that ends; the dashboard shows the same line while it lasts, and ``metrics.json``
lists the episodes (:func:`starvation_of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from sim_engine.model.records import Sink
from sim_engine.targets.starvation import describe

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = ["StarvationWatch", "starvation_of", "starvation_summary"]

_log = logging.getLogger("sim_engine.starvation")


def starvation_of(target: object) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Return ``(starving now or None, episodes so far)`` from a target's (or its
    transport's) ``statistics()``; ``(None, [])`` when neither measures it.

    Read defensively: another component's failing or odd ``statistics`` gives nothing.
    """
    for obj in (target, getattr(target, "transport", None)):
        read = getattr(obj, "statistics", None)
        if not callable(read):
            continue
        try:
            stats = read()
        except Exception:  # another component's bug must not end the run
            return None, []
        if not isinstance(stats, Mapping) or "starvation" not in stats:
            continue
        now, episodes = stats.get("starving"), stats.get("starvation")
        return (
            now if isinstance(now, dict) else None,
            list(episodes) if isinstance(episodes, list) else [],
        )
    return None, []


def starvation_summary(episodes: list[dict[str, Any]], wall_s: float) -> str | None:
    """One line for the end-of-run summary from ``metrics.json``'s ``starvation`` episodes
    (None when there were none): how long the target's backoff held back most requests
    and which endpoints asked for which delays (the longest each asked for).

    Args:
        episodes: :meth:`~sim_engine.targets.starvation.HoldBackMeter.episodes`.
        wall_s: the run's wall seconds (an episode still open lasted until then).
    """
    if not episodes:
        return None
    starved_s = 0.0
    delays: dict[str, float] = {}
    for episode in episodes:
        end = episode.get("to_wall_s")
        starved_s += (wall_s if end is None else float(end)) - float(episode["from_wall_s"])
        for key, info in (episode.get("endpoints") or {}).items():
            delays[key] = max(delays.get(key, 0.0), float(info.get("delay_s", 0.0)))
    waits = ", ".join(f"{key} {delay:g} s" for key, delay in list(delays.items())[:3])
    return (
        f"starved: the target's Backoff / Retry-After held back most requests for "
        f"{max(0.0, starved_s):.0f} of {wall_s:.0f} wall s ({waits}); see metrics.json starvation"
    )


class StarvationWatch:
    """The add-on that warns once when the target's backoff starts holding back most requests.

    Args:
        stream: where the warning lines go (None: only ``log.jsonl``).
        every_s: wall seconds between looks.
        sleep: awaits wall seconds (``asyncio.sleep``; a fake in tests).
    """

    def __init__(
        self,
        stream: TextIO | None,
        every_s: float = 1.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._stream = stream
        self._every_s = every_s
        self._sleep = sleep
        self._target: object = None
        self._task: asyncio.Task[None] | None = None
        self.starving: str | None = None  # the warning while it lasts

    def sinks(self) -> list[Sink]:
        """No records needed."""
        return []

    async def start(self, sim: Simulation) -> None:
        """Watch ``sim.target`` until :meth:`stop`."""
        self._target = sim.target
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching (a last look first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.check()

    async def _watch(self) -> None:
        while True:
            await self._sleep(self._every_s)
            self.check()

    def check(self) -> str | None:
        """Look once; write a line when starvation begins or ends. Return the warning
        while it lasts (None otherwise)."""
        now, _ = starvation_of(self._target)
        if now is not None and self.starving is None:
            self.starving = describe(now)
            self._write(f"sim-engine: warning: {self.starving}")
            _log.warning("target starves the run", extra={"starving": now})
        elif now is None and self.starving is not None:
            self.starving = None
            self._write("sim-engine: the target no longer holds back most requests")
            _log.info("target no longer starves the run")
        return self.starving

    def _write(self, line: str) -> None:
        if self._stream is not None:
            self._stream.write(line + "\n")
            self._stream.flush()
