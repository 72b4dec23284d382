"""The add-ons a run's options ask for, in the order they start (each imported only when
used): the JSON log, Prometheus, the control endpoint with the web page, the dashboard,
the starvation watch. The runner adds the state keeper and the kill switch."""

from __future__ import annotations

from typing import Any

from sim_engine.engine.addons import Addon
from sim_engine.observe.starvation import StarvationWatch

# ``options`` is a :class:`sim_engine.runs.runner.RunOptions` (typed Any: the runner
# imports this module, and import-linter forbids the cycle even for type checking).
RunOptions = Any

__all__ = ["run_addons"]


def run_addons(options: RunOptions) -> list[Addon]:
    """Build the add-ons the options ask for (each imported only when used)."""
    addons: list[Addon] = []
    # One line per add-on, in the order they start:
    addons.append(_json_log(options))  # always: DIR/log.jsonl
    if options.metrics_port is not None:
        addons.append(_prometheus(options.metrics_port, options.metrics_host))
    if options.control:
        addons.append(_control(options))
    if options.dashboard:
        addons.append(_dashboard(options))
    if options.thresholds is not None:
        addons.append(options.thresholds)
    # always: a warning when the target's backoff holds back most requests
    addons.append(StarvationWatch(None if options.dashboard else options.console))
    return addons


def _json_log(options: RunOptions) -> Addon:
    from sim_engine.observe.logs import LogAddon

    output = options.scenario.output
    return LogAddon(options.out_dir, output.log_actions, output.rotate)


def _control(options: RunOptions) -> Addon:
    from sim_engine.observe.control import ControlServer
    from sim_engine.observe.webpage import WebPage

    return ControlServer(options.out_dir, options.metrics_host, options.control_port, WebPage())


def _dashboard(options: RunOptions) -> Addon:
    from rich.console import Console

    from sim_engine.observe.dashboard import Dashboard

    return Dashboard(Console(file=options.console) if options.console is not None else None)


def _prometheus(port: int, host: str) -> Addon:
    from sim_engine.observe.prometheus import PrometheusExporter

    return PrometheusExporter(port, host)
