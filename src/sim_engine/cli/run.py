"""``sim-engine run``: a simulation against a target, its outputs and its summary."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from sim_engine._version import __version__
from sim_engine.cli.analytics import analytics_choice, analytics_options_or_exit
from sim_engine.cli.common import (
    _duration,
    _fail,
    _load_with_env,
    _seed_option,
    _speed,
    _start,
    _target_option,
    _use_dashboard,
    _user_errors,
    _write_html_report,
    cli,
)
from sim_engine.cli.load import report_thresholds, threshold_guard, threshold_options
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    parse_run_duration,
)
from sim_engine.observe.starvation import starvation_summary

__all__ = ["run"]


@cli.command(context_settings={"auto_envvar_prefix": "SIM_ENGINE"})
@click.option(
    "--scenario",
    "scenario_path",
    envvar="SIM_ENGINE_SCENARIO",  # SIM_ENGINE_<OPTION>, not the parameter's name
    type=click.Path(dir_okay=False),
    help="Scenario YAML file (default: the built-in one).",
)
@_target_option
@click.option("--speed", callback=_speed, help="1 (real time), any factor N (60, 3600), or max.")
@click.option(
    "--duration",
    callback=_duration,
    help="Simulated time to run: 90s, 30m, 2h, 3d, 1w, or forever (until stopped).",
)
@click.option(
    "--users", type=click.IntRange(min=0), help="Initial population (overrides the scenario)."
)
@_seed_option
@click.option(
    "--browser-share",
    type=click.FloatRange(0.0, 1.0),
    metavar="SHARE",
    help="Share of users (0-1) acting through web pages in Chromium (docs/browser.md); "
    "the built-in demo's flows unless the scenario has a browser section.",
)
@click.option(
    "--out",
    "out_dir",
    envvar="SIM_ENGINE_OUT",
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
    "--html",
    "html_report",
    is_flag=True,
    envvar="SIM_ENGINE_HTML",
    help="Also write OUT/report.html (charts) at the end.",
)
@click.option(
    "--resume",
    "resume_dir",
    envvar="SIM_ENGINE_RESUME",
    type=click.Path(file_okay=False),
    help="Continue a run that was stopped or killed, from its last checkpoint in DIR.",
)
@click.option(
    "--resume-if-exists",
    is_flag=True,
    help="With --out DIR: resume the run in DIR when it is unfinished, else start one "
    "(a service that restarts goes on where it was; a finished run or a kill file stops it).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on http://HOST:PORT/metrics (and /healthz, /readyz).",
)
@click.option(
    "--backfill",
    callback=_duration,
    metavar="DURATION",
    help="Start DURATION ago (90d) at max speed, then go on at 1x from now with the same "
    "users (the demo API stores the simulated times; docs/always-on.md).",
)
@click.option(
    "--control-port",
    type=click.IntRange(0, 65535),
    default=0,
    metavar="PORT",
    help="Port of the control endpoint and the run's web page, /ui/ (default: a free one; "
    "the URL and token are in OUT/control.json).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Address the metrics/health server and the control endpoint bind "
    "(0.0.0.0: reachable from other containers; the control endpoint needs its token).",
)
@analytics_choice
@click.option(
    "--format",
    "dataset_format",
    metavar="FORMAT",
    help="Also write the dataset tables generate writes: parquet, duckdb, csv or jsonl "
    "(OUT/events/..., OUT/users.parquet...; docs/generate.md).",
)
@threshold_options
def run(
    scenario_path: str | None,
    target_url: str | None,
    speed: float | str | None,
    duration: float | None,
    users: int | None,
    seed: int | None,
    browser_share: float | None,
    out_dir: str | None,
    start: datetime | None,
    quiet: bool,
    verbose: bool,
    dashboard: bool | None,
    html_report: bool,
    resume_dir: str | None,
    resume_if_exists: bool,
    metrics_port: int | None,
    backfill: float | None,
    control_port: int,
    metrics_host: str,
    analytics: str | None,
    analytics_host: str | None,
    dataset_format: str | None,
    thresholds: tuple[str, ...],
    abort_on_fail: bool,
) -> None:
    """Run a simulation and write actions.jsonl, users.jsonl and metrics.json.

    Every option can come from the environment as SIM_ENGINE_<OPTION> (SIM_ENGINE_SPEED=60,
    SIM_ENGINE_DURATION=forever) and any scenario field as SIM_ENGINE__SECTION__FIELD
    (SIM_ENGINE__POPULATION__INITIAL=500); a flag beats its variable, which beats the
    scenario's variables, the file and the defaults (docs/always-on.md).

    Exits 1 (after the summary and the outputs) when every action failed, or when
    a --threshold fails (one line each; over every action, sign-up and log-in included).
    """
    from sim_engine.runs.runner import RunOptions, execute

    guard = threshold_guard(thresholds, abort_on_fail)
    if resume_if_exists:
        resume_dir = _existing_run(out_dir, resume_dir)
        if resume_dir is not None:
            users = seed = None  # they shaped the run when it started
    resume, out_dir, target_url, speed = _resume_context(resume_dir, out_dir, target_url, speed)
    if backfill is not None:
        start, speed = _backfill(backfill, start, resume)
    scenario = resume.scenario if resume is not None else _load_with_env(scenario_path)
    if not scenario.safety.enabled:
        click.echo("sim-engine: kill switch: safety.enabled is false in the scenario; nothing runs")
        return
    scenario = _with_overrides(scenario, users, seed, resumed=resume is not None)
    scenario = _with_browser_share(scenario, browser_share, resumed=resume is not None)
    speed, duration, start_dt = _timing(scenario, speed, duration, start)
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
        metrics_host=metrics_host,
        control_port=control_port,
        go_live=backfill is not None,
        dashboard=_use_dashboard(dashboard, quiet, verbose),
        analytics=analytics_options_or_exit(analytics, analytics_host, scenario),
        dataset_format=_dataset_format(dataset_format, resume_dir),
        thresholds=guard,
    )
    if not quiet:
        _announce(options, out)
    fresh = resume is None and not out.exists()  # removed again if the start is refused
    with _user_errors(out, "run", created=out if fresh else None):
        result = execute(options)
    _print_summary(result.metrics, out, result.wall_s, result.interrupted)
    if html_report:
        _write_html_report(out)
    report_thresholds(guard, result.wall_s)
    _exit_if_all_failed(result.metrics["summary"], out)


def _dataset_format(fmt: str | None, resume_dir: str | None) -> str | None:
    """``--format`` checked (exit 2 when unknown); a resumed run keeps its dataset's."""
    import json

    if fmt is None and resume_dir is None:
        return None
    from sim_engine.datasets.writers import FORMATS

    if fmt is None and resume_dir is not None:
        manifest = Path(resume_dir) / "manifest.json"
        if manifest.is_file():
            fmt = json.loads(manifest.read_text()).get("format")
    if fmt is not None and fmt not in FORMATS:
        _fail(f"unknown --format {fmt!r} (use {', '.join(FORMATS)})", 2)
    return fmt


def _exit_if_all_failed(summary: dict[str, Any], out: Path) -> None:
    """Exit 1 with a one-line summary when the run had actions and every one failed.

    Intended errors (actions meant to fail) count neither way; a run without any
    action, or with one success, returns.
    """
    counted = summary["actions"] - summary.get("intended_errors", 0)
    if counted <= 0 or summary["failed"] < counted:
        return
    statuses = sorted(summary["status_counts"].items(), key=lambda kv: -kv[1])
    common = ", ".join(f"{status} x{n}" for status, n in statuses[:3])
    _fail(f"every action failed ({counted} of {counted}; status {common}); see {out}", 1)


def _say_unanswered(run_dir: Path) -> None:
    """Say which creations the stopped run sent and got no answer for (in doubt)."""
    from sim_engine.engine.journal import JOURNAL_NAME, read_unanswered
    from sim_engine.runs.created import in_doubt_lines

    for line in in_doubt_lines(read_unanswered(run_dir / JOURNAL_NAME)):
        click.echo(f"sim-engine: in doubt, sent with no answer before the stop: {line}; "
                   "`sim-engine cleanup` reports them")  # fmt: skip


def _timing(
    scenario: Scenario, speed: Any, duration: float | None, start: datetime | None
) -> tuple[float | None, float | None, datetime]:
    """Speed (None: max), duration (None: forever) and start: the options', else the
    scenario's clock's, else now."""
    clock = scenario.clock
    if speed == "scenario":
        speed = None if clock.speed == "max" else float(clock.speed)
    if duration is None:
        duration = parse_run_duration(clock.duration)  # None: forever
    elif math.isinf(duration):
        duration = None  # --duration forever
    start_dt = start or clock.start or datetime.now(timezone.utc)
    if start_dt.tzinfo is None:
        start_dt = start_dt.replace(tzinfo=timezone.utc)
    return speed, duration, start_dt


def _backfill(seconds: float, start: datetime | None, resume: Any) -> tuple[datetime, None]:
    """``--backfill``: the start (that long ago) and the speed to begin with (max).

    Exits 2 with ``--start`` (the backfill sets the start), ``forever`` (no start) or a
    resumed run (it goes live again by itself)."""
    if start is not None or resume is not None:
        _fail("--backfill sets the start: it goes with neither --start nor a resumed run", 2)
    if math.isinf(seconds) or seconds <= 0:
        _fail("--backfill needs a duration such as 90d", 2)
    return datetime.now(timezone.utc) - timedelta(seconds=seconds), None


def _existing_run(out_dir: str | None, resume_dir: str | None) -> str | None:
    """``--resume-if-exists``: DIR when it holds an unfinished run, None for a new run.

    Exits 0 with one line when DIR's run finished or its kill file is there (a service
    restarted after a stop must not start again), 2 without ``--out`` or with
    ``--resume``.
    """
    from sim_engine.engine.store import SqliteStore, StateError
    from sim_engine.runs.runstate import load_resume

    if out_dir is None or resume_dir is not None:
        _fail("--resume-if-exists needs --out DIR (and no --resume)", 2)
    state = Path(out_dir) / "state.db"
    if not state.exists():
        return None
    try:
        store = SqliteStore(state, create=False)
        try:
            finished = store.get_meta("finished")
        finally:
            store.close()
        resume = load_resume(Path(out_dir))
        resume.store.close()
    except (StateError, ScenarioError) as exc:
        _fail(str(exc), 2)
    kill_file = Path(out_dir) / resume.scenario.safety.kill_file
    if finished:
        click.echo(f"sim-engine: {out_dir} holds a finished run; nothing to resume")
        sys.exit(0)
    if kill_file.exists():
        click.echo(f"sim-engine: kill switch: {kill_file} exists; nothing runs")
        sys.exit(0)
    click.echo(f"sim-engine: {out_dir} holds an unfinished run: resuming it")
    return out_dir


def _resume_context(
    resume_dir: str | None, out_dir: str | None, target_url: str | None, speed: Any
) -> tuple[Any, str | None, str | None, Any]:
    """With ``--resume DIR``: the saved run, its directory, target and (unless given) speed.

    Removes the kill file that stopped the run. Exits 2 when DIR holds no resumable run.
    """
    from sim_engine.runs.runstate import StateError, load_resume

    if resume_dir is None:
        return None, out_dir, target_url, speed
    try:
        resume = load_resume(Path(resume_dir))
    except (StateError, ScenarioError) as exc:
        _fail(str(exc), 2)
    kill_file = Path(resume_dir) / resume.scenario.safety.kill_file
    if kill_file.exists():
        kill_file.unlink()
        click.echo(f"sim-engine: removed the kill file {kill_file} to resume")
    _say_unanswered(Path(resume_dir))
    saved = resume.run
    target_url = None if saved["target"] == "demo" else saved["target"]
    if speed == "scenario":
        speed = None if saved["speed"] == "max" else float(saved["speed"])
    return resume, resume_dir, target_url, speed


def _with_overrides(
    scenario: Scenario, users: int | None, seed: int | None, resumed: bool
) -> Scenario:
    """Apply ``--users`` and ``--seed`` (exit 2 when invalid, or on a resumed run)."""
    overrides: dict[str, Any] = {}
    if users is not None:
        overrides["population.initial"] = users
        overrides["population.max"] = max(users, scenario.population.max)
    if seed is not None:
        overrides["seed"] = seed
    if resumed and overrides:
        _fail("--users and --seed cannot change a resumed run", 2)
    try:
        return scenario.with_overrides(**overrides) if overrides else scenario
    except ScenarioError as exc:
        _fail(str(exc), 2)


def _with_browser_share(scenario: Scenario, share: float | None, resumed: bool) -> Scenario:
    """Apply ``--browser-share``: the scenario's ``browser`` section with that share, or
    the built-in demo's flows (exit 2 on a resumed run, or for a scenario with its own
    ``api`` section and no ``browser`` section: the demo's pages would not fit it)."""
    from sim_engine.model.browser_spec import demo_browser_data

    if share is None:
        return scenario
    if resumed:
        _fail("--browser-share cannot change a resumed run", 2)
    if scenario.browser is not None:
        change: dict[str, Any] = {"browser.share": share}
    elif scenario.api is None:
        change = {"browser": {**demo_browser_data(), "share": share}}
    else:
        _fail(
            "--browser-share: the scenario has its own api section but no browser section "
            "(docs/browser.md)",
            2,
        )
    try:
        return scenario.with_overrides(**change)
    except ScenarioError as exc:
        _fail(str(exc), 2)


def _announce(options: Any, out: Path) -> None:
    """The first line of a run: users, speed, duration, seed and target."""
    scenario, speed, duration = options.scenario, options.speed, options.duration_s
    where = options.target_url or "the built-in demo API (starting it on 127.0.0.1)"
    if options.resume is not None:
        click.echo(f"sim-engine: resuming {out} from its last checkpoint")
    click.echo(
        f"sim-engine {__version__}: {scenario.population.initial} users, "
        f"speed {'max' if speed is None else f'{speed:g}x'}, "
        f"{'until Ctrl-C' if duration is None else f'{duration / 3600:g} simulated hours'}, "
        f"seed {scenario.seed}, target {where}"
    )


def _users_text(metrics: dict[str, Any]) -> str:
    """``32 joined, 50 known, 3 active`` (the words of :mod:`sim_engine.observe.counts`)."""
    users = metrics.get("users") or {"joined": metrics["summary"]["users"]}
    return ", ".join(f"{users[k]} {k}" for k in ("joined", "known", "active") if k in users)


def _print_summary(metrics: dict[str, Any], out: Path, wall_s: float, interrupted: bool) -> None:
    s = metrics["summary"]
    lat = s["latency_ms"]
    run_info = metrics["run"]
    head = "Interrupted" if interrupted else "Done"
    click.echo(
        f"\n{head}: {run_info['simulated_seconds'] / 3600:.1f} simulated hours in {wall_s:.1f} s"
    )
    click.echo(
        f"  users {_users_text(metrics)}, actions {s['actions']}, "
        f"success {100 * s['success_rate']:.1f}%, "
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
    starved = starvation_summary(metrics.get("starvation") or [], wall_s)
    if starved is not None:
        click.echo(f"  {starved}")
    click.echo(f"  outputs: {out}/actions.jsonl, users.jsonl, metrics.json")
