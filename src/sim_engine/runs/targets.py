"""Targets built the way a run builds them, for library users and the runner.

:func:`demo_target` gives the built-in demo API called in this process (no
sockets, deterministic), bound by the scenario: the built-in social API, or the
scenario's ``api`` section.
"""

from __future__ import annotations

from sim_engine.model.records import Target
from sim_engine.model.scenario import Scenario
from sim_engine.targets.transport import Transport

__all__ = ["bind_target", "demo_target"]


def bind_target(scenario: Scenario, transport: Transport) -> Target:
    """Bind a transport the way ``scenario`` says: its ``api`` section, or (without one)
    the built-in description of the demo social API. One binding path for every API.

    Args:
        scenario: the validated scenario.
        transport: where requests go (HTTP, in-process, or a wrapper of either).
    """
    from sim_engine.engine.simulation import effective_api
    from sim_engine.targets.declarative import DeclarativeTarget

    return DeclarativeTarget(
        transport, effective_api(scenario), seed=scenario.seed, registry=scenario.registry
    )


def demo_target(scenario: Scenario, db_path: str = ":memory:") -> Target:
    """Return the built-in demo API, called in this process, bound for ``scenario``.

    Args:
        scenario: the validated scenario (its ``api`` section, if any, is used).
        db_path: the demo app's SQLite file (default: in memory, gone at the end).

    Close it with ``await target.aclose()``.
    """
    from sim_engine.demo import create_app
    from sim_engine.targets.inprocess import AsgiTransport

    return bind_target(scenario, AsgiTransport(create_app(db_path)))
