"""The ``sim-engine`` command line (Click). The only module that prints or exits.

Exit codes: 0 success; 1 runtime failure (unreachable target, demo server
failed, output not writable); 2 bad input (malformed scenario, bad option);
130 interrupted before the simulation could start.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import click

from sim_engine._version import __version__
from sim_engine.api.plugins import load_scenario_with_plugins
from sim_engine.engine.clock import parse_speed
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
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


_target_option = click.option(
    "--target",
    "target_url",
    help="Base URL of the API, or 'inprocess'. Default: start the built-in demo API.",
)
_seed_option = click.option("--seed", type=int, help="Random seed (overrides the scenario).")


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
@_target_option
@click.option("--speed", callback=_speed, help="1 (real time), any factor N (60, 3600), or max.")
@click.option("--duration", callback=_duration, help="Simulated time to run: 90s, 30m, 2h, 3d, 1w.")
@click.option(
    "--users", type=click.IntRange(min=0), help="Initial population (overrides the scenario)."
)
@_seed_option
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
@click.option(
    "--dashboard/--no-dashboard",
    default=None,
    help="Live terminal dashboard (default: on when stdout is a terminal, unless -q or -v).",
)
@click.option(
    "--html", "html_report", is_flag=True, help="Also write OUT/report.html (charts) at the end."
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    help="Continue a run that was stopped or killed, from its last checkpoint in DIR.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while running.",
)
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
    dashboard: bool | None,
    html_report: bool,
    resume_dir: str | None,
    metrics_port: int | None,
) -> None:
    """Run a simulation and write actions.jsonl, users.jsonl and metrics.json."""
    from sim_engine.runs.runner import RunOptions, execute
    from sim_engine.runs.runstate import StateError, load_resume

    resume = None
    if resume_dir is not None:
        try:
            resume = load_resume(Path(resume_dir))
        except (StateError, ScenarioError) as exc:
            _fail(str(exc), 2)
        out_dir = resume_dir
        kill_file = Path(resume_dir) / resume.scenario.safety.kill_file
        if kill_file.exists():
            kill_file.unlink()
            click.echo(f"sim-engine: removed the kill file {kill_file} to resume")
        saved = resume.run
        target_url = None if saved["target"] == "demo" else saved["target"]
        if speed == "scenario":
            speed = None if saved["speed"] == "max" else float(saved["speed"])
    scenario = resume.scenario if resume is not None else _load(scenario_path)
    if not scenario.safety.enabled:
        click.echo("sim-engine: kill switch: safety.enabled is false in the scenario; nothing runs")
        return
    overrides: dict[str, Any] = {}
    if users is not None:
        overrides["population.initial"] = users
        overrides["population.max"] = max(users, scenario.population.max)
    if seed is not None:
        overrides["seed"] = seed
    if resume is not None and overrides:
        _fail("--users and --seed cannot change a resumed run", 2)
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
        resume=resume,
        scenario_path=Path(scenario_path) if scenario_path else None,
        metrics_port=metrics_port,
        dashboard=_use_dashboard(dashboard, quiet, verbose),
    )
    if not quiet:
        where = options.target_url or "the built-in demo API (starting it on 127.0.0.1)"
        if resume is not None:
            click.echo(f"sim-engine: resuming {out} from its last checkpoint")
        click.echo(
            f"sim-engine {__version__}: {scenario.population.initial} users, "
            f"speed {'max' if speed is None else f'{speed:g}x'}, "
            f"{'until Ctrl-C' if duration is None else f'{duration / 3600:g} simulated hours'}, "
            f"seed {scenario.seed}, target {where}"
        )
    with _user_errors(out, "run"):
        result = execute(options)
    _print_summary(result.metrics, out, result.wall_s, result.interrupted)
    if html_report:
        _write_html_report(out)


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


def _use_dashboard(asked: bool | None, quiet: bool, verbose: bool) -> bool:
    """The dashboard needs a terminal: elsewhere (a pipe, a file) plain lines are printed."""
    if quiet or not sys.stdout.isatty():
        return False
    return not verbose if asked is None else asked


@contextlib.contextmanager
def _user_errors(out: Path | str | None, what: str) -> Iterator[None]:
    """Turn what can go wrong in a run or a load test into one line and an exit code.

    Exit 2: bad input (refused target, bad state, plugin, load options); exit 1:
    runtime failure (unreachable target, metrics port taken, demo server, output
    not writable); exit 130: Ctrl-C before it started.
    """
    from sim_engine.api.plugins import PluginError
    from sim_engine.demo.launcher import DemoServerError
    from sim_engine.observe.prometheus import MetricsPortError
    from sim_engine.runs.loadtest import LoadTestError
    from sim_engine.runs.runstate import SafetyError, StateError
    from sim_engine.targets.transport import TargetUnreachableError

    try:
        yield
    except (SafetyError, PluginError, StateError, LoadTestError) as exc:
        _fail(str(exc), 2)
    except (TargetUnreachableError, MetricsPortError) as exc:
        _fail(str(exc), 1)
    except DemoServerError as exc:
        _fail(f"demo server: {exc}", 1)
    except OSError as exc:
        _fail(f"cannot write output to {out}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        _fail(f"interrupted before the {what} started", 130)


def _load(path: str | None) -> Scenario:
    try:
        return load_scenario_with_plugins(path)[0] if path else default_scenario()
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
    quiet: bool,
) -> None:
    """Load test: N concurrent users, each making a random number of requests (seed 004)."""
    from sim_engine.runs.loadtest import LoadOptions, LoadTestError, format_summary, run_load

    duration = None
    if duration_text is not None:
        try:
            duration = parse_duration(duration_text)
        except ValueError as exc:
            _fail(f"--duration: {exc}", 2)
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
    )
    try:
        options.check()
    except LoadTestError as exc:
        _fail(str(exc), 2)
    if not quiet:
        where = options.target_url or "the built-in demo API (starting it on 127.0.0.1)"
        limit = "" if duration is None else f", at most {duration:g} s"
        click.echo(
            f"sim-engine {__version__} load test: {users} users, {min_requests}-{max_requests} "
            f"requests each, delay {delay_min:g}-{delay_max:g} ms{limit}, "
            f"seed {scenario.seed}, target {where}"
        )
    with _user_errors(out_dir, "load test"):
        result = run_load(options)
    for line in format_summary(result):
        click.echo(line)
    if options.out_dir is not None:
        click.echo(f"  output: {options.out_dir / 'load.json'}")


@cli.command()
@click.option(
    "--from-openapi",
    "source",
    required=True,
    metavar="FILE_OR_URL",
    help="OpenAPI 3.0/3.1 document, YAML or JSON: a file or a loopback http(s) URL.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="scenario.yaml",
    show_default=True,
    help="Scenario file to write.",
)
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
def init(source: str, output: str, force: bool) -> None:
    """Write a starter scenario for the API an OpenAPI document describes."""
    from sim_engine.api.openapi import (
        OpenApiError,
        OpenApiFetchError,
        import_openapi,
        write_scenario,
    )

    if Path(output).exists() and not force:
        _fail(f"{output}: exists (use --force to overwrite)", 2)
    try:
        result = import_openapi(source)
    except OpenApiFetchError as exc:
        _fail(str(exc), 1)
    except OpenApiError as exc:
        _fail(str(exc), 2)
    try:
        write_scenario(result, output, force=True)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}", 1)
    click.echo(f"{output}: {result.summary()}; edit the persona weights, then run it")


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
@click.option(
    "--error-rate", type=click.FloatRange(0, 1), help="Injected fault: probability of a 5xx."
)
@click.option(
    "--error-status", type=click.IntRange(500, 599), help="Status of injected errors [503]."
)
@click.option(
    "--latency-ms",
    metavar="SPEC",
    help="Injected latency: MS, uniform:MIN:MAX, exponential:MEAN or lognormal:MEDIAN:SIGMA.",
)
@click.option(
    "--rate-limit-burst",
    metavar="EVERY_S:LENGTH_S[:RETRY_AFTER_S]",
    help="Injected 429 bursts with Retry-After.",
)
@click.option(
    "--rate-limit-rate", type=click.FloatRange(0, 1), help="Injected fault: probability of a 429."
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    help="Injected fault: probability of closing the connection without an answer.",
)
@click.option("--fault-seed", type=int, help="Seed of the fault random generators.")
def demo_server(
    host: str,
    port: int,
    db: str,
    error_rate: float | None,
    error_status: int | None,
    latency_ms: str | None,
    rate_limit_burst: str | None,
    rate_limit_rate: float | None,
    drop_rate: float | None,
    fault_seed: int | None,
) -> None:
    """Run the built-in demo social API alone.

    Fault flags override the JSON config in $SIM_ENGINE_DEMO_FAULTS field by field; at run
    time GET/PUT/DELETE /admin/faults read and replace it (see docs/demo-server.md).
    """
    from sim_engine.demo import serve
    from sim_engine.demo.faults import FaultConfigError, resolve_faults

    try:
        faults = resolve_faults(
            error_rate=error_rate,
            error_status=error_status,
            latency_ms=latency_ms,
            rate_limit_burst=rate_limit_burst,
            rate_limit_rate=rate_limit_rate,
            drop_rate=drop_rate,
            seed=fault_seed,
        )
    except FaultConfigError as exc:
        _fail(str(exc), 2)
    click.echo(f"demo API on http://{host}:{port} (OpenAPI at /openapi.json); Ctrl-C stops")
    if faults is not None and faults.active:
        click.echo(f"injected faults: {faults.model_dump_json(exclude_defaults=True)}")
    serve(host, port, db, faults)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def kill(run_dir: str) -> None:
    """Stop a running simulation at once (creates the kill file in RUN_DIR)."""
    path = Path(run_dir)
    if not (path / "state.db").exists():
        _fail(f"{run_dir}: not a run directory (no state.db)", 2)
    name = "KILL"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        name = json.loads((path / "scenario.json").read_text("utf-8"))["safety"]["kill_file"]
    (path / name).write_text("stop\n", encoding="utf-8")
    click.echo(f"{path / name} written: the run stops within a second")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--target", "target_url", help="Base URL (default: the one the run used).")
def cleanup(run_dir: str, dry_run: bool, target_url: str | None) -> None:
    """Delete through the API everything the run in RUN_DIR created (users last)."""
    from sim_engine.runs.cleanup import CleanupError, cleanup_run

    try:
        report = cleanup_run(Path(run_dir), target_url=target_url, dry_run=dry_run)
    except CleanupError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo(report.summary(dry_run))
    if report.failed:
        sys.exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path())
def report(run_dir: str) -> None:
    """Write RUN_DIR/report.html: one self-contained page of charts of a finished run."""
    from sim_engine.observe.report import NotARunDirError, ReportError, write_report

    try:
        path = write_report(Path(run_dir))
    except NotARunDirError as exc:
        _fail(str(exc), 2)
    except ReportError as exc:
        _fail(str(exc), 1)
    click.echo(str(path))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("command", type=click.Choice(["pause", "resume", "stop", "status", "speed"]))
@click.argument("value", required=False)
def ctl(run_dir: str, command: str, value: str | None) -> None:
    """Control the run writing to RUN_DIR: pause, resume, stop, status, or speed N (or max)."""
    from sim_engine.observe.control import ControlError, format_status, send_command

    if command == "speed":
        if value is None:
            _fail("speed needs a value: a positive number (60, 3600) or max", 2)
        try:
            parse_speed(value)
        except ValueError as exc:
            _fail(str(exc), 2)
    elif value is not None:
        _fail(f"{command} takes no value (got {value!r})", 2)
    try:
        status = send_command(Path(run_dir), command, value)
    except ControlError as exc:
        _fail(str(exc), 1)
    line = format_status(status)
    click.echo(line if command == "status" else f"{command}: {line}")


def main() -> None:
    """Entry point of the ``sim-engine`` console script."""
    cli(prog_name="sim-engine")
