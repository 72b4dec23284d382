"""The live terminal dashboard (rich) shown by ``sim-engine run`` on a terminal.

:class:`Dashboard` is an add-on and a sink. As a sink it keeps counters from
the records (actions, failures, 429 answers, an HDR latency histogram, the
latest activity). Every ``refresh_s`` wall seconds a task takes a
:class:`DashboardSnapshot` -- plain values read from
:meth:`Simulation.statistics`, :meth:`Simulation.breakdown` (at most about once
a wall second: it walks the population), the target's ``statistics()`` when it
has one (rate limiting, circuit breakers) and the counters -- and redraws
:func:`render` of it in a :class:`rich.live.Live` display.

Keys (when stdin is a terminal; read in cbreak mode, restored at the end):
``p`` pause/resume, ``+`` double the speed, ``-`` halve it, ``m`` max speed,
``q`` stop the run.

On a console that is not a terminal the dashboard draws nothing (the CLI does
not use it then: plain progress lines are printed instead).

The modules: :mod:`.snapshot` (:class:`DashboardSnapshot`, reading the target),
:mod:`.view` (:func:`render`, :func:`fit`), :mod:`.addon` (:class:`Dashboard`).
"""

from __future__ import annotations

from sim_engine.observe.dashboard.addon import Dashboard
from sim_engine.observe.dashboard.snapshot import (
    KEYS,
    Activity,
    DashboardSnapshot,
    target_statistics,
)
from sim_engine.observe.dashboard.view import fit, render

__all__ = [
    "KEYS",
    "Activity",
    "Dashboard",
    "DashboardSnapshot",
    "fit",
    "render",
    "target_statistics",
]
