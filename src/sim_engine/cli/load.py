"""``sim-engine load``: a load test (seed 004), and the ``--threshold`` options ``run`` shares."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from sim_engine._version import __version__
from sim_engine.cli.common import (
    _fail,
    _load_with_env,
    _seed_option,
    _target_option,
    _user_errors,
    cli,
)
from sim_engine.model.bounds import MAX_USERS, MAX_WAIT_S
from sim_engine.model.scenario import ScenarioError, parse_duration

__all__ = [
    "exit_if_thresholds_failed",
    "load",
    "parse_threshold_texts",
    "report_thresholds",
    "threshold_guard",
    "threshold_options",
]

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


def threshold_guard(texts: Sequence[str], abort_on_fail: bool) -> Any:
    """A ``ThresholdGuard`` add-on for ``run`` (None without thresholds); exit 2 with one
    line when a threshold cannot be read."""
    from sim_engine.runs.load_thresholds import ThresholdGuard

    rules = parse_threshold_texts(texts, abort_on_fail)
    return ThresholdGuard(rules, abort=abort_on_fail) if rules else None


def exit_if_thresholds_failed(failed: Sequence[Any]) -> None:
    """Exit 1 with one line per failed threshold verdict (none failed: return)."""
    if not failed:
        return
    for verdict in failed:
        click.echo(f"sim-engine: {verdict.line()}", err=True)
    sys.exit(1)


def report_thresholds(guard: Any, wall_s: float) -> None:
    """Print a run's threshold verdicts; exit 1 with one line per failed one (the live
    failure that aborted it first). ``guard``: a ``ThresholdGuard`` or None (no thresholds)."""
    from sim_engine.runs.load_thresholds import failed_of

    if guard is None:
        return
    verdicts = guard.verdicts(wall_s)
    for verdict in verdicts:
        click.echo(f"  {verdict.line()}")
    exit_if_thresholds_failed(failed_of(verdicts, guard.aborted))


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
@click.option(
    "--users",
    type=int,
    help="Virtual users (default 100); with --arrival-rate, those sharing the arrivals.",
)
@click.option(
    "--min-request-count",
    "min_requests",
    type=int,
    help="Fewest requests per user (closed model; default 10, or no limit with --duration).",
)
@click.option(
    "--max-request-count",
    "max_requests",
    type=int,
    help="Most requests per user (closed model; default 1000, or no limit with --duration).",
)
@click.option(
    "--duration",
    "duration_text",
    help="How long the test lasts (wall time at speed 1): 90s, 5m, 1h (default: none).",
)
@click.option(
    "--stages",
    "stages_text",
    metavar="D:N,...",
    help="Ramps, e.g. 30s:10,2m:100,30s:0: users (closed model) or iterations/s "
    "(with --arrival-rate); the test lasts their total.",
)
@click.option(
    "--arrival-rate",
    type=float,
    metavar="R",
    help="Open model: R iterations/s whatever the answers (with --duration), or the "
    "start rate of --stages.",
)
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
@click.option(
    "--csv",
    "csv_prefix",
    metavar="PREFIX",
    help="Write Locust-compatible PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv.",
)
@click.option(
    "--csv-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Wall seconds between rows of PREFIX_stats_history.csv.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the test runs.",
)
@click.option(
    "--processes",
    type=int,
    default=1,
    show_default=True,
    help="Worker processes sharing the users and the rate (one core each); "
    "figures merged at the end.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Write an HTML report here (per-endpoint table, percentiles over time, verdicts).",
)
@click.option(
    "--http-client",
    type=click.Choice(["reqwest", "aiohttp"]),
    default="reqwest",
    show_default=True,
    help="HTTP client for http:// targets (https:// always uses aiohttp).",
)
@threshold_options
@click.option("-q", "--quiet", is_flag=True, help="Print only the final summary.")
def load(
    users: int | None,
    min_requests: int | None,
    max_requests: int | None,
    duration_text: str | None,
    stages_text: str | None,
    arrival_rate: float | None,
    delay_min: float,
    delay_max: float,
    scenario_path: str | None,
    target_url: str | None,
    seed: int | None,
    out_dir: str | None,
    resilient: bool,
    csv_prefix: str | None,
    csv_interval: float,
    metrics_port: int | None,
    processes: int,
    http_client: str,
    html_path: str | None,
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
    stages = _parse_stages(stages_text)
    users, counts = _users_and_counts(
        users, (min_requests, max_requests), stages, arrival_rate, duration
    )
    _check_load_numbers(users, counts, (delay_min, delay_max))
    scenario = _scenario(scenario_path, seed)
    if scenario is None:
        return
    options = LoadOptions(
        scenario=scenario,
        users=users,
        min_requests=counts[0],
        max_requests=counts[1],
        duration_s=duration,
        delay_min_ms=delay_min,
        delay_max_ms=delay_max,
        target_url=target_url or scenario.target.url,
        out_dir=Path(out_dir) if out_dir else None,
        console=None if quiet else sys.stdout,
        resilient=resilient,
        thresholds=rules,
        abort_on_fail=abort_on_fail,
        stages=tuple(stages),
        arrival_rate=arrival_rate,
        csv_prefix=csv_prefix,
        csv_every_s=csv_interval,
        metrics_port=metrics_port,
        processes=processes,
        http_client=http_client,
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
    _outputs(options, result, html_path)
    exit_if_thresholds_failed(result.failed_verdicts)


def _outputs(options: Any, result: Any, html_path: str | None) -> None:
    """Name the files written; write the HTML report."""
    if options.out_dir is not None:
        click.echo(f"  output: {options.out_dir / 'load.json'}")
    if options.csv_prefix is not None:
        prefix = options.csv_prefix
        click.echo(f"  csv: {prefix}_stats.csv, _stats_history.csv, _failures.csv")
    if html_path is not None:
        _write_html(result, Path(html_path))


def _write_html(result: Any, path: Path) -> None:
    """Write the HTML report (exit 1 with one line when it cannot be written)."""
    from sim_engine.runs.load_html import write_load_html

    try:
        write_load_html(result, path)
    except OSError as exc:
        _fail(f"{path}: cannot write the HTML report: {exc.strerror or exc}", 1)
    click.echo(f"  html: {path}")


def _scenario(path: str | None, seed: int | None) -> Any:
    """The scenario with ``--seed`` (exit 2 when invalid); None when its kill switch is off."""
    scenario = _load_with_env(path)
    if not scenario.safety.enabled:
        click.echo("sim-engine: kill switch: safety.enabled is false in the scenario; nothing runs")
        return None
    if seed is None:
        return scenario
    try:
        return scenario.with_overrides(seed=seed)
    except ScenarioError as exc:
        _fail(str(exc), 2)


def _parse_stages(text: str | None) -> list[tuple[float, float]]:
    from sim_engine.runs.load_shapes import StagesError, parse_stages

    if text is None:
        return []
    try:
        return parse_stages(text)
    except StagesError as exc:
        _fail(str(exc), 2)


def _users_and_counts(
    users: int | None,
    counts: tuple[int | None, int | None],
    stages: list[tuple[float, float]],
    arrival_rate: float | None,
    duration: float | None,
) -> tuple[int, tuple[int, int]]:
    """``--users`` and the request counts with their defaults: 100 users (the stages'
    peak in the closed model with stages); 10-1000 requests, or no limit
    (:data:`MAX_USERS`) when ``--duration`` or the stages end the test. Counts belong
    to the closed model without stages, and closed stages set the users (exit 2)."""
    low, high = counts
    shaped = bool(stages) or arrival_rate is not None
    if shaped and (low is not None or high is not None):
        _fail("--min/--max-request-count belong to the closed model without --stages", 2)
    if stages and arrival_rate is None:
        if users is not None:
            _fail("--stages set the number of users in the closed model: drop --users", 2)
        peak = max(target for _, target in stages)
        users = max(1, math.ceil(peak - 1e-9)) if peak <= MAX_USERS else MAX_USERS + 1
    default = (MAX_USERS, MAX_USERS) if duration is not None or shaped else (10, 1000)
    if low is None:
        low = default[0] if high is None else min(default[0], high)
    high = max(low, default[1]) if high is None else high
    return (100 if users is None else users), (low, high)


def _announce(options: Any) -> None:
    where = options.target_url or "the built-in demo API (starting it on 127.0.0.1)"
    duration = options.duration_s
    limit = "" if duration is None else f", for {duration:g} s"
    mode = "resilient (scenario limits)" if options.resilient else "raw"
    if options.arrival_rate is not None:
        shape = f"open model from {options.arrival_rate:g}/s"
    elif options.stages:
        shape = "closed model, ramping users"
    elif options.min_requests == MAX_USERS:
        shape = "closed model"
    else:
        shape = f"{options.min_requests}-{options.max_requests} requests each"
    click.echo(
        f"sim-engine {__version__} load test: {options.virtual_users()} users, {shape}, "
        f"delay {options.delay_min_ms:g}-{options.delay_max_ms:g} ms{limit}, {mode}, "
        f"seed {options.scenario.seed}, target {where}"
        + (f", {options.processes} processes" if options.processes > 1 else "")
    )
