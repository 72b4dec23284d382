"""The ``sim-engine`` command line (Click). The only module that prints or exits.

Exit codes: 0 success; 1 runtime failure (unreachable target, demo server
failed, output not writable); 2 bad input (malformed scenario, bad option);
130 interrupted before the simulation could start.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import click

from sim_engine import __version__
from sim_engine.clock import parse_speed
from sim_engine.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
    parse_duration,
)

__all__ = ["cli", "main"]


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
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _start(_ctx: Any, _param: Any, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO date or date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sim-engine")
def cli() -> None:
    """Simulate a population of realistic users acting on a real system."""


@cli.command()
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False),
    help="Scenario YAML file (default: the built-in one).",
)
@click.option(
    "--target",
    "target_url",
    help="Base URL of the API, or 'inprocess'. Default: start the built-in demo API.",
)
@click.option("--speed", callback=_speed, help="1 (real time), any factor N (60, 3600), or max.")
@click.option("--duration", callback=_duration, help="Simulated time to run: 90s, 30m, 2h, 3d, 1w.")
@click.option(
    "--users", type=click.IntRange(min=0), help="Initial population (overrides the scenario)."
)
@click.option("--seed", type=int, help="Random seed (overrides the scenario).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Output directory (default: sim-runs/<timestamp>).",
)
@click.option(
    "--start", callback=_start, help="Simulated start, ISO date or date-time (default: now)."
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the final summary.")
@click.option("-v", "--verbose", is_flag=True, help="Print one line per action at any speed.")
def run(
    scenario_path: str | None,
    target_url: str | None,
    speed: float | str | None,
    duration: float | None,
    users: int | None,
    seed: int | None,
    out_dir: str | None,
    start: datetime | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run a simulation and write actions.jsonl, users.jsonl and metrics.json."""
    from sim_engine.demo.launcher import DemoServerError
    from sim_engine.runner import RunOptions, execute
    from sim_engine.targets.transport import TargetUnreachableError

    scenario = _load(scenario_path)
    overrides: dict[str, Any] = {}
    if users is not None:
        overrides["population.initial"] = users
        overrides["population.max"] = max(users, scenario.population.max)
    if seed is not None:
        overrides["seed"] = seed
    try:
        scenario = scenario.with_overrides(**overrides) if overrides else scenario
    except ScenarioError as exc:
        _fail(str(exc), 2)
    clock = scenario.clock
    if speed == "scenario":
        speed = None if clock.speed == "max" else float(clock.speed)
    if duration is None and clock.duration is not None:
        duration = parse_duration(clock.duration)
    start_dt = start or clock.start or datetime.now(timezone.utc)
    if start_dt.tzinfo is None:
        start_dt = start_dt.replace(tzinfo=timezone.utc)
    out = Path(out_dir or f"sim-runs/{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    assert not isinstance(speed, str)
    per_action = verbose or (speed is not None and speed <= 60)
    options = RunOptions(
        scenario=scenario,
        target_url=target_url or scenario.target.url,
        speed=speed,
        duration_s=duration,
        start_s=start_dt.timestamp(),
        out_dir=out,
        console=None if quiet else sys.stdout,
        per_action=per_action and not quiet,
    )
    if not quiet:
        where = options.target_url or "the built-in demo API (starting it on 127.0.0.1)"
        click.echo(
            f"sim-engine {__version__}: {scenario.population.initial} users, "
            f"speed {'max' if speed is None else f'{speed:g}x'}, "
            f"{'until Ctrl-C' if duration is None else f'{duration / 3600:g} simulated hours'}, "
            f"seed {scenario.seed}, target {where}"
        )
    try:
        result = execute(options)
    except TargetUnreachableError as exc:
        _fail(str(exc), 1)
    except DemoServerError as exc:
        _fail(f"demo server: {exc}", 1)
    except OSError as exc:
        _fail(f"cannot write output to {out}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        _fail("interrupted before the run started", 130)
    _print_summary(result.metrics, out, result.wall_s, result.interrupted)


def _load(path: str | None) -> Scenario:
    try:
        return load_scenario(path) if path else default_scenario()
    except ScenarioError as exc:
        _fail(str(exc), 2)


def _print_summary(metrics: dict[str, Any], out: Path, wall_s: float, interrupted: bool) -> None:
    s = metrics["summary"]
    lat = s["latency_ms"]
    run_info = metrics["run"]
    head = "Interrupted" if interrupted else "Done"
    click.echo(
        f"\n{head}: {run_info['simulated_seconds'] / 3600:.1f} simulated hours in {wall_s:.1f} s"
    )
    click.echo(
        f"  users {s['users']}, actions {s['actions']}, success {100 * s['success_rate']:.1f}%, "
        f"latency p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f} / p99 {lat['p99']:.1f} ms"
    )
    click.echo("  by type: " + ", ".join(f"{k} {v}" for k, v in s["actions_by_type"].items()))
    if metrics["top_posters"]:
        top = metrics["top_posters"][:3]
        click.echo("  top posters: " + ", ".join(f"{p['name']} ({p['posts']})" for p in top))
    if metrics["top_viewed_posts"]:
        top = metrics["top_viewed_posts"][:3]
        click.echo(
            "  most viewed: " + ", ".join(f"post {p['post_id']} ({p['views']})" for p in top)
        )
    click.echo(f"  outputs: {out}/actions.jsonl, users.jsonl, metrics.json")


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
def validate(path: str) -> None:
    """Check a scenario file; exit 2 with the field path if it is invalid."""
    scenario = _load(path)
    shares = scenario.persona_shares()
    total = sum(shares.values())
    mix = ", ".join(f"{name} {100 * share / total:.0f}%" for name, share in shares.items())
    click.echo(f"{path}: ok ({scenario.name}: {len(shares)} personas: {mix})")


@cli.command("demo-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", default=":memory:", show_default=True, help="SQLite file (or :memory:).")
def demo_server(host: str, port: int, db: str) -> None:
    """Run the built-in demo social API alone."""
    from sim_engine.demo import serve

    click.echo(f"demo API on http://{host}:{port} (OpenAPI at /openapi.json); Ctrl-C stops")
    serve(host, port, db)


def main() -> None:
    """Entry point of the ``sim-engine`` console script."""
    cli(prog_name="sim-engine")
