"""Shared pieces of the command line: the ``cli`` group, option parsers, one-line errors.

Exit codes: 0 success; 1 runtime failure (unreachable target, demo server
failed, output not writable); 2 bad input (malformed scenario, bad option);
130 interrupted before the simulation could start.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from sim_engine._version import __version__
from sim_engine.api.plugins import load_scenario_with_plugins
from sim_engine.engine.clock import parse_speed
from sim_engine.model.bounds import check_start
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
)
from sim_engine.model.settings_spec import check_target_url, parse_run_duration

__all__ = ["cli"]


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"sim-engine: error: {message}", err=True)
    sys.exit(code)


def _speed(_ctx: Any, _param: Any, value: str | None) -> float | str | None:
    if value is None:
        return "scenario"
    try:
        return parse_speed(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _duration(_ctx: Any, _param: Any, value: str | None) -> float | None:
    """A simulated duration in seconds; ``math.inf`` for ``forever``; None when not given."""
    if value is None:
        return None
    try:
        seconds = parse_run_duration(value)
        return math.inf if seconds is None else seconds
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _start(_ctx: Any, _param: Any, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO date or date-time: {value!r}") from None
    try:
        return check_start(parsed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _target(_ctx: Any, _param: Any, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_target_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_target_option = click.option(
    "--target",
    "target_url",
    envvar="SIM_ENGINE_TARGET",  # named after the option, not the parameter
    callback=_target,
    help="Base URL of the API, or 'inprocess'. Default: start the built-in demo API.",
)
_seed_option = click.option("--seed", type=int, help="Random seed (overrides the scenario).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sim-engine")
def cli() -> None:
    """Simulate a population of realistic users acting on a real system."""


def _use_dashboard(asked: bool | None, quiet: bool, verbose: bool) -> bool:
    """The dashboard needs a terminal: elsewhere (a pipe, a file) plain lines are printed."""
    if quiet or not sys.stdout.isatty():
        return False
    return not verbose if asked is None else asked


@contextlib.contextmanager
def _user_errors(out: Path | str | None, what: str, created: Path | None = None) -> Iterator[None]:
    """Turn what can go wrong in a run or a load test into one line and an exit code.

    Exit 2: bad input (refused target, bad state, plugin, load options, a scenario
    made invalid by the options); exit 1:
    runtime failure (unreachable target, metrics port taken, demo server, output
    not writable); exit 130: Ctrl-C before it started. ``created``: a run directory
    this start made, removed when the start is refused (all but an output error), so
    that a refused start leaves nothing that could be neither resumed nor reused.
    """
    from sim_engine.api.plugins import PluginError
    from sim_engine.demo.launcher import DemoServerError
    from sim_engine.observe.prometheus import MetricsPortError
    from sim_engine.runs.loadtest import LoadTestError
    from sim_engine.runs.runstate import SafetyError, StateError
    from sim_engine.targets.transport import TargetUnreachableError

    def drop() -> None:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)

    try:
        yield
    except (SafetyError, PluginError, StateError, LoadTestError, ScenarioError) as exc:
        drop()
        _fail(str(exc), 2)
    except (TargetUnreachableError, MetricsPortError) as exc:
        drop()
        _fail(str(exc), 1)
    except DemoServerError as exc:
        drop()
        _fail(f"demo server: {exc}", 1)
    except OSError as exc:
        _fail(f"cannot write output to {out}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        drop()
        _fail(f"interrupted before the {what} started", 130)


def _load(path: str | None) -> Scenario:
    try:
        return load_scenario_with_plugins(path)[0] if path else default_scenario()
    except ScenarioError as exc:
        _fail(str(exc), 2)


def _load_with_env(path: str | None) -> Scenario:
    """The scenario file (or the built-in one) with the environment's
    ``SIM_ENGINE__SECTION__FIELD`` variables applied, as ``run`` uses it; exits 2 with
    a one-line error naming the field (and the variables set) when it is invalid."""
    import os

    from sim_engine.runs.envconfig import load_scenario_env

    try:
        return load_scenario_env(path, os.environ)
    except ScenarioError as exc:
        _fail(str(exc), 2)


def _write_html_report(run_dir: Path) -> None:
    """Write RUN_DIR/report.html and print its path; exit 2 (not a run dir) or 1 on error."""
    from sim_engine.observe.report import NotARunDirError, ReportError, write_report

    try:
        path = write_report(run_dir)
    except NotARunDirError as exc:
        _fail(str(exc), 2)
    except ReportError as exc:
        _fail(str(exc), 1)
    click.echo(f"  report: {path}")
