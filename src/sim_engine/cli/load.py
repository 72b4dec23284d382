"""``sim-engine load``: a load test (seed 004), and the ``--threshold`` options ``run`` shares."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from sim_engine._version import __version__
from sim_engine.cli.common import _fail, _load, _seed_option, _target_option, _user_errors, cli
from sim_engine.model.bounds import MAX_USERS, MAX_WAIT_S
from sim_engine.model.scenario import ScenarioError, parse_duration

__all__ = ["exit_if_thresholds_failed", "load", "parse_threshold_texts", "threshold_options"]

F = TypeVar("F", bound=Callable[..., Any])


def threshold_options(func: F) -> F:
    """Add ``--threshold`` (repeatable) and ``--abort-on-fail`` to a command."""
    func = click.option(
        "--abort-on-fail",
        is_flag=True,
        help="Check the thresholds every 2 s while running; stop at the first failure.",
    )(func)
    return click.option(
        "--threshold",
        "thresholds",
        multiple=True,
        metavar="RULE",
        help="Pass/fail rule, e.g. 'p95<200ms', 'error_rate<1%', 'rps>500', "
        "'GET /posts/{id}:p99<500ms' (repeatable); exit 1 when one fails.",
    )(func)


def parse_threshold_texts(texts: Sequence[str], abort_on_fail: bool) -> Any:
    """The parsed thresholds (a tuple); exit 2 with one line when one cannot be read,
    or with ``--abort-on-fail`` but no threshold."""
    from sim_engine.runs.load_thresholds import ThresholdError, parse_thresholds

    if abort_on_fail and not texts:
        _fail("--abort-on-fail needs at least one --threshold", 2)
    try:
        return parse_thresholds(list(texts))
    except ThresholdError as exc:
        _fail(str(exc), 2)


def exit_if_thresholds_failed(failed: Sequence[Any]) -> None:
    """Exit 1 with one line per failed threshold verdict (none failed: return)."""
    if not failed:
        return
    for verdict in failed:
        click.echo(f"sim-engine: {verdict.line()}", err=True)
    sys.exit(1)


def _check_load_numbers(
    users: int, requests: tuple[int, int], delays_ms: tuple[float, float]
) -> None:
    """Exit 2 with one line when a load-test number is past its bound (too large, not
    finite); the rest (negative, min above max) is checked by ``LoadOptions.check``."""
    if users > MAX_USERS:
        _fail(f"--users must be at most {MAX_USERS} (got {users})", 2)
    for name, count in zip(("--min-request-count", "--max-request-count"), requests, strict=True):
        if count > MAX_USERS:
            _fail(f"{name} must be at most {MAX_USERS} (got {count})", 2)
    for name, ms in zip(("--delay-min", "--delay-max"), delays_ms, strict=True):
        if not (math.isfinite(ms) and ms <= MAX_WAIT_S * 1000):
            _fail(f"{name} must be a number of ms at most {MAX_WAIT_S * 1000:.0f} (got {ms})", 2)


def _parse_duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        _fail(f"--duration: {exc}", 2)


@cli.command()
@click.option("--users", type=int, default=100, show_default=True, help="Concurrent virtual users.")
@click.option(
    "--min-request-count",
    "min_requests",
    type=int,
    default=10,
    show_default=True,
    help="Fewest requests per user.",
)
@click.option(
    "--max-request-count",
    "max_requests",
    type=int,
    default=1000,
    show_default=True,
    help="Most requests per user.",
)
@click.option("--duration", "duration_text", help="Wall-time limit: 90s, 5m, 1h (default: none).")
@click.option(
    "--delay-min", type=float, default=100.0, show_default=True, help="Shortest wait, ms."
)
@click.option(
    "--delay-max", type=float, default=2000.0, show_default=True, help="Longest wait, ms."
)
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False),
    help="Scenario YAML file: its personas' actions, limits and safety (default: built-in).",
)
@_target_option
@_seed_option
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Write OUT/load.json here."
)
@click.option(
    "--resilient",
    is_flag=True,
    help="Apply the scenario's limits (rate limit, backoff, retries, breakers) as run does; "
    "default: raw, each request sent once.",
)
@threshold_options
@click.option("-q", "--quiet", is_flag=True, help="Print only the final summary.")
def load(
    users: int,
    min_requests: int,
    max_requests: int,
    duration_text: str | None,
    delay_min: float,
    delay_max: float,
    scenario_path: str | None,
    target_url: str | None,
    seed: int | None,
    out_dir: str | None,
    resilient: bool,
    thresholds: tuple[str, ...],
    abort_on_fail: bool,
    quiet: bool,
) -> None:
    """Load test: N concurrent users, each making a random number of requests (seed 004).

    Exits 1 when a --threshold fails (one line each), after the summary.
    """
    from sim_engine.runs.loadtest import LoadOptions, LoadTestError, format_summary, run_load

    duration = _parse_duration(duration_text)
    rules = parse_threshold_texts(thresholds, abort_on_fail)
    _check_load_numbers(users, (min_requests, max_requests), (delay_min, delay_max))
    scenario = _load(scenario_path)
    if not scenario.safety.enabled:
        click.echo("sim-engine: kill switch: safety.enabled is false in the scenario; nothing runs")
        return
    if seed is not None:
        try:
            scenario = scenario.with_overrides(seed=seed)
        except ScenarioError as exc:
            _fail(str(exc), 2)
    options = LoadOptions(
        scenario=scenario,
        users=users,
        min_requests=min_requests,
        max_requests=max_requests,
        duration_s=duration,
        delay_min_ms=delay_min,
        delay_max_ms=delay_max,
        target_url=target_url or scenario.target.url,
        out_dir=Path(out_dir) if out_dir else None,
        console=None if quiet else sys.stdout,
        resilient=resilient,
        thresholds=rules,
        abort_on_fail=abort_on_fail,
    )
    try:
        options.check()
    except LoadTestError as exc:
        _fail(str(exc), 2)
    if not quiet:
        _announce(options)
    with _user_errors(out_dir, "load test"):
        result = run_load(options)
    for line in format_summary(result):
        click.echo(line)
    if options.out_dir is not None:
        click.echo(f"  output: {options.out_dir / 'load.json'}")
    exit_if_thresholds_failed(result.failed_verdicts)


def _announce(options: Any) -> None:
    where = options.target_url or "the built-in demo API (starting it on 127.0.0.1)"
    duration = options.duration_s
    limit = "" if duration is None else f", at most {duration:g} s"
    mode = "resilient (scenario limits)" if options.resilient else "raw"
    click.echo(
        f"sim-engine {__version__} load test: {options.users} users, "
        f"{options.min_requests}-{options.max_requests} requests each, "
        f"delay {options.delay_min_ms:g}-{options.delay_max_ms:g} ms{limit}, {mode}, "
        f"seed {options.scenario.seed}, target {where}"
    )
