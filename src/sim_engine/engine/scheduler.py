"""The one scheduler: a single heap of due events for the whole population.

An event is ``(sim_time, seq, kind, user)``: ``kind`` is one of the constants in
:mod:`sim_engine.engine.events`, ``user`` the user it concerns (None for run-level
events: arrivals, run days, replacements). No user owns a task, a timer or a
coroutine while it waits, so a million sleeping users cost memory, not CPU.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from sim_engine.engine.events import DAY
from sim_engine.model.population import SimUser

__all__ = ["Event", "Scheduler"]

Event = tuple[float, int, int, "SimUser | None"]


class Scheduler:
    """Owns the heap of due events; ordered by simulated time, then by push order.

    Args:
        wake: called after every push (the run loop waits on it when idle).
    """

    __slots__ = ("_heap", "_seq", "_wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self._heap: list[Event] = []
        self._seq = 0
        self._wake = wake

    def push(self, sim_t: float, kind: int, user: SimUser | None) -> None:
        """Schedule an event at ``sim_t`` (simulated epoch seconds).

        A user's session events (not its local midnights) mark it ``pending``:
        at most one event or one action is outstanding per user.
        """
        self._seq += 1
        heapq.heappush(self._heap, (sim_t, self._seq, kind, user))
        if user is not None and kind != DAY:
            user.pending = True
        self._wake()

    def next_time(self) -> float | None:
        """Return the simulated time of the earliest event, or None when empty."""
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Event:
        """Remove and return the earliest event.

        Raises:
            IndexError: the heap is empty.
        """
        return heapq.heappop(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
