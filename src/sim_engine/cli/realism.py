"""``sim-engine realism LOG [LOG2]``: the stylized facts of one or two event logs.

Exit codes: 0 success; 1 the HTML file cannot be written; 2 bad input (missing or
empty file, no time column, unparseable times, one user only, bad option).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sim_engine.cli.common import _fail, cli

if TYPE_CHECKING:
    from sim_engine.realism.estimators import FactDistances
    from sim_engine.realism.report import NamedFacts

__all__ = ["log_options", "realism_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("expected a comma-separated list of action names")
    return names


_LOG_OPTIONS = (
    click.option("--user-col", help="User column: a name, or a 1-based position without a header."),
    click.option("--time-col", help="Timestamp column: a name or a 1-based position."),
    click.option("--action-col", help="Action column (optional): a name or a 1-based position."),
    click.option(
        "--tz-col", help="Time-zone column (optional): offset seconds, ±HH:MM or IANA name."
    ),
    click.option(
        "--time-unit",
        type=click.Choice(["s", "ms", "iso"]),
        default=None,
        help="Unit of the timestamp column (default: guessed; numbers above 1e11 are ms).",
    ),
    click.option("--write-actions", help="Comma-separated actions that are writes."),
    click.option("--read-actions", help="Comma-separated actions that are reads."),
)


def log_options(command: F) -> F:
    """The options that say how to read a log (``realism`` and ``calibrate`` share them)."""
    for option in reversed(_LOG_OPTIONS):
        command = option(command)
    return command


@cli.command("realism")
@click.argument("logs", nargs=-1, required=True, metavar="LOG [LOG2]")
@log_options
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON instead.")
@click.option("--html", "html_path", help="Also write an HTML page with charts to this file.")
def realism_command(
    logs: tuple[str, ...],
    user_col: str | None,
    time_col: str | None,
    action_col: str | None,
    tz_col: str | None,
    time_unit: str | None,
    write_actions: str | None,
    read_actions: str | None,
    as_json: bool,
    html_path: str | None,
) -> None:
    """Measure the stylized facts of LOG (and compare with LOG2).

    LOG: a run directory or its actions.jsonl, a `generate` dataset directory, or a
    CSV/TSV/Parquet/JSONL file with a user and a timestamp column. Facts, estimators
    and sources: docs/realism.md.
    """
    from sim_engine.realism.estimators import RealismInputError, distances
    from sim_engine.realism.logfacts import log_facts
    from sim_engine.realism.readers import LogError, LogOptions, read_log

    if len(logs) > 2:
        raise click.UsageError("give one log, or two to compare")
    writes, reads = _names(write_actions), _names(read_actions)
    options = LogOptions(user_col, time_col, action_col, tz_col, time_unit)
    measured: list[NamedFacts] = []
    for path in logs:
        try:
            measured.append((path, log_facts(read_log(path, options), writes, reads)))
        except (LogError, RealismInputError) as exc:
            _fail(f"{path}: {exc}" if not str(exc).startswith(path) else str(exc), 2)
    dist = distances(measured[0][1], measured[1][1]) if len(measured) == 2 else None
    _show(measured, dist, as_json, html_path)


def _show(
    measured: list[NamedFacts], dist: FactDistances | None, as_json: bool, html_path: str | None
) -> None:
    from rich.console import Console

    from sim_engine.realism.report import json_report, terminal_table

    if as_json:
        click.echo(json.dumps(json_report(measured, dist), indent=2))
    else:
        Console().print(terminal_table(measured, dist))
    if html_path is not None:
        from sim_engine.observe.report.realism_page import html_report

        try:
            Path(html_path).write_text(html_report(measured, dist), encoding="utf-8")
        except OSError as exc:
            _fail(f"{html_path}: cannot write the HTML report: {exc.strerror}", 1)
        if not as_json:
            click.echo(f"HTML report: {html_path}")
