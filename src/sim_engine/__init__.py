"""sim-engine: simulate a population of realistic users over simulated time.

The public library API is what ``__all__`` lists (pinned by ``tests/test_public_api.py``)::

    from sim_engine import FastForwardClock, Simulation, default_scenario, demo_target

* running: :class:`Simulation`, :class:`SimulationStats`;
* scenarios: :class:`Scenario`, :func:`load_scenario`, :func:`default_scenario`,
  :class:`ScenarioError`;
* clocks: :class:`SimClock` (the run's one controllable clock),
  :class:`ScaledClock` and :class:`FastForwardClock` (a ``SimClock`` started
  at a factor or at ``max``), :class:`ManualClock` (tests);
* seams (protocols): :class:`Clock`, :class:`SpeedControl`, :class:`Target`,
  :class:`Sink`, :class:`Store`, :class:`Transport`, :class:`SessionHook`,
  :class:`ActionResolver`, :class:`UserForgetter`, :class:`MemoryKeeper`;
* records: :class:`ActionRequest`, :class:`Outcome`, :class:`ActionRecord`,
  :class:`UserRecord`, :class:`LifecycleRecord`, :class:`DaySnapshot`;
* targets: :func:`demo_target` (the built-in demo API in process),
  :func:`bind_target` (any transport, bound by the scenario's API description),
  :class:`DeclarativeTarget`, :class:`MockTarget`;
* sinks: :class:`JsonlSink`, :class:`ConsoleSink`, :class:`MetricsCollector`;
* plugins: the :mod:`plugins` module and its decorators (``@plugins.action`` ...).
"""

from sim_engine._version import __version__
from sim_engine.engine.capabilities import (
    ActionResolver,
    MemoryKeeper,
    SessionHook,
    UserForgetter,
)
from sim_engine.engine.clock import (
    Clock,
    FastForwardClock,
    ManualClock,
    ScaledClock,
    SimClock,
    SpeedControl,
)
from sim_engine.engine.simulation import Simulation, SimulationStats
from sim_engine.model.records import (
    ActionRecord,
    ActionRequest,
    DaySnapshot,
    LifecycleRecord,
    Outcome,
    Sink,
    Store,
    Target,
    UserRecord,
)
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
)
from sim_engine.runs.targets import bind_target, demo_target
from sim_engine.sinks import ConsoleSink, JsonlSink
from sim_engine.sinks.metrics import MetricsCollector
from sim_engine.targets import MockTarget, Transport
from sim_engine.targets import plugin as plugins
from sim_engine.targets.declarative import DeclarativeTarget

__all__ = [
    "ActionRecord",
    "ActionRequest",
    "ActionResolver",
    "Clock",
    "ConsoleSink",
    "DaySnapshot",
    "DeclarativeTarget",
    "FastForwardClock",
    "JsonlSink",
    "LifecycleRecord",
    "ManualClock",
    "MemoryKeeper",
    "MetricsCollector",
    "MockTarget",
    "Outcome",
    "ScaledClock",
    "Scenario",
    "ScenarioError",
    "SessionHook",
    "SimClock",
    "Simulation",
    "SimulationStats",
    "Sink",
    "SpeedControl",
    "Store",
    "Target",
    "Transport",
    "UserForgetter",
    "UserRecord",
    "__version__",
    "bind_target",
    "default_scenario",
    "demo_target",
    "load_scenario",
    "plugins",
]
