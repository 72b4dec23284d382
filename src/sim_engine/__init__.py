"""sim-engine: simulate a population of realistic users over simulated time.

The public library API::

    from sim_engine import Simulation, load_scenario, default_scenario
    from sim_engine.engine.clock import FastForwardClock, ManualClock, ScaledClock
    from sim_engine.targets import SocialApiTarget, MockTarget
"""

__version__ = "0.1.0"

from sim_engine.api import plugins
from sim_engine.engine.simulation import Simulation, SimulationStats
from sim_engine.model.records import ActionRecord, ActionRequest, Outcome, UserRecord
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
)

__all__ = [
    "ActionRecord",
    "ActionRequest",
    "Outcome",
    "Scenario",
    "ScenarioError",
    "Simulation",
    "SimulationStats",
    "UserRecord",
    "__version__",
    "default_scenario",
    "load_scenario",
    "plugins",
]
