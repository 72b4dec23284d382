"""When an in-flight action counts as waiting on the wall clock (``--speed max``).

On a jumping clock the run's causality lookahead waits for actions in flight: a
user's answer may plan its next step, which must not land in the simulated past.
An action stuck on the wall clock (a timeout, a ``Retry-After``, an open
breaker's probe) would hold every other user for as long as it waits, so after a
while it counts as *stalled*: the lookahead stops waiting for it, and its user's
next step is planned from the simulated time its answer came at (see
:class:`~sim_engine.engine.executor.Executor`).

How long "a while" is (wall seconds): fixed at ``ceiling_s`` (0.5 s) by default;
adaptive (:meth:`StallMeter.adaptive`, what ``sim-engine run`` uses against an HTTP
target) it follows the target: ``factor`` times the median latency of the last
``window`` answers, between ``floor_s`` and ``ceiling_s``. A loopback API
answering in 2 ms gets 40 ms; a slow one 0.5 s. The median ignores the slow tail
it is meant to detect (up to half the answers may be timeouts).

Runs against an in-process app keep the fixed threshold: their answers take wall
time only when the engine's own process is descheduled (a loaded machine), and
counting those as stalled would make a run of a given seed depend on the machine.
"""

from __future__ import annotations

import statistics
from collections import deque

__all__ = ["STALL_CEILING_S", "STALL_FACTOR", "STALL_FLOOR_S", "StallMeter"]

STALL_CEILING_S = 0.5
"""Wall seconds after which an action counts as stalled, whatever the latencies."""
STALL_FLOOR_S = 0.005
"""Wall seconds an action may always take before it counts as stalled (adaptive)."""
STALL_FACTOR = 5.0
"""Multiple of the median answer time after which an action counts as stalled (adaptive)."""


class StallMeter:
    """Keeps the stall threshold (wall seconds), fixed or from the answers' latencies.

    Args:
        floor_s, ceiling_s: bounds of the threshold (wall seconds); equal bounds fix it.
        factor: multiple of the median latency.
        window: how many recent latencies the median is taken over.
        every: recompute the median after this many answers.
    """

    def __init__(
        self,
        floor_s: float = STALL_CEILING_S,
        ceiling_s: float = STALL_CEILING_S,
        factor: float = STALL_FACTOR,
        window: int = 256,
        every: int = 32,
    ) -> None:
        self._floor_s = floor_s
        self._ceiling_s = ceiling_s
        self._factor = factor
        self._latencies: deque[float] = deque(maxlen=window)
        self._every = every
        self._count = 0
        self.threshold_s = ceiling_s
        """Current threshold: an action older than this (wall seconds) is stalled."""

    @classmethod
    def adaptive(cls) -> StallMeter:
        """A meter whose threshold follows the target's median latency (see the module)."""
        return cls(floor_s=STALL_FLOOR_S)

    def observe(self, latency_s: float) -> None:
        """Take one answer's wall latency (seconds) into account."""
        if self._floor_s >= self._ceiling_s:
            return
        self._latencies.append(latency_s)
        self._count += 1
        if self._count % self._every == 0:
            median = statistics.median(self._latencies)
            self.threshold_s = min(self._ceiling_s, max(self._floor_s, self._factor * median))
