"""``--analytics`` and ``--analytics-host``: the options ``run`` and ``generate`` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sim_engine.cli.common import _fail
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.runs.analytics import KEY_ENV, KINDS

__all__ = ["analytics_choice", "analytics_options_or_exit"]

F = TypeVar("F", bound=Callable[..., Any])


def analytics_choice(func: F) -> F:
    """Add ``--analytics KIND`` and ``--analytics-host URL`` to a command."""
    func = click.option(
        "--analytics-host",
        metavar="URL",
        help="The live analytics sink's host (loopback, or a host in safety.allow_hosts).",
    )(func)
    return click.option(
        "--analytics",
        type=click.Choice(KINDS),
        help="Also send each action as an analytics event: live through the vendor's SDK "
        f"(key in ${KEY_ENV}) or to OUT/analytics-VENDOR (*-file) for batch import.",
    )(func)


def analytics_options_or_exit(kind: str | None, host: str | None, scenario: Scenario) -> Any:
    """``--analytics`` and ``--analytics-host`` checked (exit 2 with one line when they
    cannot work: no host or key for a live sink, a refused host, a scenario whose
    actions the mapping cannot name); None without ``--analytics``."""
    import os

    from sim_engine.model.safety import SafetyError
    from sim_engine.runs.analytics import AnalyticsSetupError, analytics_options

    if kind is None:
        if host is not None:
            _fail("--analytics-host needs --analytics posthog|segment|mixpanel", 2)
        return None
    try:
        return analytics_options(kind, host, os.environ, scenario)
    except (AnalyticsSetupError, SafetyError, ScenarioError) as exc:
        _fail(str(exc), 2)
