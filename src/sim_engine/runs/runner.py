"""Wiring for a run: target, clock, sinks and simulation, then the output files.

This is the composition root (an edge module): it may import the demo app,
the targets and the sinks; the core modules never import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sim_engine._version import __version__
from sim_engine.engine.addons import Addon
from sim_engine.engine.clock import SimClock
from sim_engine.engine.journal import JOURNAL_NAME, DispatchJournal, Progress, read_journal
from sim_engine.engine.simulation import Simulation, SimulationStats
from sim_engine.engine.stall import StallMeter
from sim_engine.engine.store import SqliteStore
from sim_engine.model.behaviour import compile_personas
from sim_engine.model.records import Sink, Target
from sim_engine.model.scenario import Scenario
from sim_engine.observe.counts import simulated_span, user_counts
from sim_engine.observe.starvation import starvation_of
from sim_engine.runs.analytics import AnalyticsOptions, analytics_sink
from sim_engine.runs.backfill import run_clock
from sim_engine.runs.created import keep_created
from sim_engine.runs.run_addons import run_addons
from sim_engine.runs.runstate import (
    DEMO,
    KillSwitch,
    ResumeInfo,
    StateKeeper,
    check_target_allowed,
    complete_users,
    repair_jsonl,
    replay_outputs,
    start_state,
    write_scenario_copy,
)
from sim_engine.runs.signals import install_stop_signals, remove_stop_signals
from sim_engine.runs.targets import bind_target, with_browser
from sim_engine.sinks import ConsoleSink, JsonlSink
from sim_engine.sinks.metrics import DailyMetrics, MetricsCollector
from sim_engine.targets.plugin import plugin_runtime
from sim_engine.targets.transport import Transport

__all__ = ["INPROCESS", "RunOptions", "RunResult", "execute"]

INPROCESS = "inprocess"
"""Target value that calls the demo app in-process, without sockets."""


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs, resolved from the scenario and the command line.

    Attributes:
        scenario: the validated scenario (overrides already applied).
        target_url: base URL, None for the built-in demo server, or ``inprocess``.
        speed: simulated seconds per wall second; None for ``max``.
        duration_s: simulated seconds to run; None runs until interrupted.
        start_s: simulated start (simulated epoch seconds).
        out_dir: where ``actions.jsonl``, ``users.jsonl`` and ``metrics.json`` go.
        console: stream for progress lines (None: silent).
        per_action: one console line per action instead of one per simulated hour.
        metrics_port: serve Prometheus metrics (and ``/healthz``, ``/readyz``) on
            ``metrics_host:PORT`` (None: off).
        metrics_host: the address the metrics server and the control endpoint bind.
        control_port: the control endpoint's port (0: a free one), where the web page is.
        go_live: switch from max to 1x when simulated time reaches the wall clock
            (``--backfill``; :class:`~sim_engine.runs.backfill.CatchUpClock`); kept
            for a resumed run.
        dashboard: show the live terminal dashboard instead of console lines.
        control: open the control endpoint (``sim-engine ctl DIR ...``).
        resume: what a crashed run left (``run --resume DIR``); None for a new run.
        scenario_path: the scenario file, watched for ``safety.enabled: false``.
        analytics: where analytics events go (``run --analytics``; None: nowhere),
            checked by :func:`sim_engine.runs.analytics.analytics_options`.
        dataset_format: also write the dataset tables ``generate`` writes
            (``run --format``: parquet, duckdb, csv, jsonl; None: no tables), see
            :mod:`sim_engine.runs.dataset_sink`.
        resilient: wrap the transport in the ``limits`` policies (False: raw, ``load``).
        thresholds: an add-on judging ``--threshold`` (None: no thresholds).
        http_client: ``aiohttp``, or ``reqwest`` (pyreqwest, for ``http://`` URLs only:
            ``load``'s default, :mod:`sim_engine.targets.reqwest`).
    """

    scenario: Scenario
    target_url: str | None
    speed: float | None
    duration_s: float | None
    start_s: float
    out_dir: Path
    console: TextIO | None = None
    per_action: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    control_port: int = 0
    go_live: bool = False
    dashboard: bool = False
    control: bool = True
    resume: ResumeInfo | None = None
    scenario_path: Path | None = None
    analytics: AnalyticsOptions | None = None
    dataset_format: str | None = None
    resilient: bool = True
    thresholds: Addon | None = None
    http_client: str = "aiohttp"


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        stats: the engine's final counters.
        metrics: the content of ``metrics.json``.
        wall_s: wall seconds the simulation ran.
        interrupted: stopped before its duration (signal, kill switch, ``ctl stop``).
    """

    stats: SimulationStats
    metrics: dict[str, Any]
    wall_s: float
    interrupted: bool = False
    files: list[Path] = field(default_factory=list)


def execute(options: RunOptions) -> RunResult:
    """Run a simulation to its end (or until SIGINT/SIGTERM) and write its outputs.

    Starts the built-in demo server first when ``target_url`` is None.

    Raises:
        SafetyError: the target is outside loopback and not in ``safety.allow_hosts``
            (checked before anything is sent).
        StateError: the output directory already holds a run.
        TargetUnreachableError: nothing answers at the target URL.
        DemoServerError: the demo server did not start.
        OSError: the output directory cannot be written.
    """
    target = options.target_url or DEMO
    check_target_allowed(target, options.scenario.safety.allow_hosts)
    if options.resume is None:
        run_info = {
            "target": target,
            "speed": "max" if options.speed is None else options.speed,
            "start_s": options.start_s,
            "end_s": None if options.duration_s is None else options.start_s + options.duration_s,
            "go_live": options.go_live,
            "version": __version__,
        }
        store = start_state(options.out_dir, options.scenario, run_info)
    else:
        store = options.resume.store
    try:
        with target_url(target, options.out_dir) as url:
            return run_loop(_run(options, url, store))
    finally:
        store.close()


@contextlib.contextmanager
def target_url(target: str, out_dir: Path) -> Iterator[str]:
    """Yield the base URL to use: ``target`` itself, or for ``demo`` the built-in demo
    server started on 127.0.0.1 with its database in ``out_dir`` (stopped on exit).

    Raises:
        DemoServerError: the demo server did not start.
    """
    if target != DEMO:
        yield target
        return
    from sim_engine.demo.launcher import DemoServer

    # The demo API keeps its data in the run directory, so that a resumed run
    # and `sim-engine cleanup` find what the users created.
    with DemoServer(db_path=str(out_dir / "demo.db")) as server:
        yield server.base_url


def run_loop(coro: Any) -> RunResult:
    """Run ``coro`` to completion on a fresh event loop (uvloop where available)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return asyncio.run(coro)  # type: ignore[no-any-return,unused-ignore]
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)  # type: ignore[no-any-return,unused-ignore]
    uvloop.install()  # pragma: no cover - Python 3.10
    return asyncio.run(coro)  # type: ignore[no-any-return,unused-ignore]  # pragma: no cover


def build_transport(url: str, options: RunOptions) -> Transport:
    """Build the run's transport, wrapped in rate limits, backoff, retries and breakers
    (unless ``options.resilient`` is False)."""
    import random

    from sim_engine.targets.resilient import ResilientTransport

    limits = options.scenario.limits
    rng = random.Random(options.scenario.seed)  # backoff jitter (wall time only)
    if url == INPROCESS:
        from sim_engine.demo import create_app
        from sim_engine.targets.inprocess import AsgiTransport

        app = create_app(str(options.out_dir / "demo.db"))
        inproc = AsgiTransport(
            app, headers=_headers(options), max_response_bytes=limits.max_response_bytes
        )
        return ResilientTransport(inproc, limits, rng=rng) if options.resilient else inproc
    from sim_engine.targets.http import AiohttpTransport

    spec = options.scenario.target
    settings: dict[str, Any] = {
        "headers": _headers(options),
        "connect_timeout_s": limits.connect_timeout_s,
        "read_timeout_s": limits.read_timeout_s,
        "allow_hosts": options.scenario.safety.allow_hosts,
        "max_response_bytes": limits.max_response_bytes,
    }
    inner: Transport
    if options.http_client == "reqwest" and url.startswith("http://"):
        from sim_engine.targets.reqwest import ReqwestTransport

        inner = ReqwestTransport(url, spec.concurrency, spec.timeout_s, **settings)
    else:
        inner = AiohttpTransport(url, spec.concurrency, spec.timeout_s, **settings)
    return ResilientTransport(inner, limits, rng=rng) if options.resilient else inner


def build_target(scenario: Scenario, transport: Transport) -> Target:
    """The scenario's ``api`` section (or the demo API's built-in description), or a
    plugin's target (``target.binding``)."""
    if scenario.target.binding is not None:
        from sim_engine.targets.plugin import make_target

        return make_target(scenario.target.binding, transport, scenario)
    return bind_target(scenario, transport)


def _headers(options: RunOptions) -> dict[str, str]:
    """The synthetic marker and user agent every request carries (``safety`` section)."""
    safety = options.scenario.safety
    return {
        safety.synthetic_header: safety.synthetic_value,
        "User-Agent": safety.user_agent or f"sim-engine/{__version__}",
    }


@dataclass
class _Span:
    """Where a run starts and ends in simulated time, and where it stands now."""

    start_s: float
    now_s: float
    duration_s: float | None  # from now (None: open-ended)
    saved: dict[str, Any] | None  # the engine's state at the last checkpoint (resume)


def _span(options: RunOptions, store: SqliteStore) -> _Span:
    resume = options.resume
    if resume is None:
        return _Span(options.start_s, options.start_s, options.duration_s, None)
    start_s = float(resume.run["start_s"])
    saved_end = resume.run.get("end_s")
    saved = resume.engine_state
    if saved is None:
        store.clear_users()  # stopped before its first checkpoint: nothing was sent
    now_s = start_s if saved is None else float(saved["sim_now"])
    duration_s = None if saved_end is None else max(0.0, float(saved_end) - now_s)
    return _Span(start_s, now_s, duration_s, saved)


async def open_target(options: RunOptions, url: str) -> tuple[Target, list[Any], Transport]:
    """Build the run's transport and target, as ``run`` and ``load`` both do.

    Returns the target (the scenario's binding, wrapped for plugin actions), the
    plugins' session hooks, and the transport under it (for its statistics).
    The transport is closed again when anything fails.

    Raises:
        TargetUnreachableError: nothing answers at ``url``.
        PluginError: a plugin's target or hooks cannot be built.
    """
    transport = build_transport(url, options)
    try:
        await transport.check()
        scenario = options.scenario
        inner = build_target(scenario, transport)
        bound = with_browser(scenario, inner, url, _headers(options), options.out_dir)
        target, hooks = plugin_runtime(scenario, bound, transport)
    except BaseException:
        await transport.aclose()
        raise
    return target, hooks, transport


@dataclass
class _Outputs:
    """The run's sinks: files, figures, console, and the add-ons' own."""

    jsonl: JsonlSink
    collector: MetricsCollector
    daily: DailyMetrics
    sinks: list[Sink]


def _outputs(options: RunOptions, span: _Span) -> _Outputs:
    out, resumed = options.scenario.output, span.saved is not None
    collector = MetricsCollector(span.start_s, out.latest_actions, out.top_n, out.users_sample_s)
    daily = DailyMetrics(options.scenario.lifecycle.history_days)
    if resumed and span.saved is not None and options.resume is not None:
        for name in ("actions.jsonl", "users.jsonl", "lifecycle.jsonl"):
            repair_jsonl(options.out_dir / name)
        personas = [p.name for p in compile_personas(options.scenario)]
        complete_users(options.out_dir, options.resume.users, personas)
        day_start_s = float(span.saved["day_start_s"])
        replay_outputs(options.out_dir, collector, daily, day_start_s)
    # flush_every=1: a kill loses no line
    jsonl = JsonlSink(options.out_dir, flush_every=1, append=resumed, rotation=out.rotate)
    sinks: list[Sink] = [jsonl, collector, daily]
    if options.analytics is not None:
        sinks.append(analytics_sink(options.analytics, options.scenario, options.out_dir, resumed))
    if options.dataset_format is not None:
        from sim_engine.runs.dataset_sink import DatasetSink

        sinks.append(
            DatasetSink(options.out_dir, options.dataset_format, options.scenario, resumed)
        )
    if options.console is not None and not options.dashboard:
        sinks.append(ConsoleSink(options.console, options.per_action))
    return _Outputs(jsonl, collector, daily, sinks)


def _all_addons(options: RunOptions, outputs: _Outputs) -> tuple[list[Addon], KillSwitch]:
    """The add-ons the options ask for, then the state keeper and the kill switch."""
    scenario = options.scenario
    state = scenario.state
    keeper = StateKeeper(
        state.checkpoint_every_s,
        [outputs.jsonl],
        lambda: _write_daily(options.out_dir, outputs.daily.history()),
        state.checkpoint_every_sim_s,
        state.checkpoint_every_actions,
    )
    kill = KillSwitch(options.out_dir / scenario.safety.kill_file, options.scenario_path)
    addons = [*run_addons(options), keeper, kill]
    for addon in addons:
        outputs.sinks.extend(addon.sinks())
    return addons, kill


async def _drive(
    sim: Simulation, clock: SimClock, addons: list[Addon], outputs: _Outputs, target: Target
) -> tuple[SimulationStats, float, bool]:
    """Start the add-ons, run, stop everything; return stats, wall seconds, signalled."""
    started: list[Addon] = []
    interrupted = install_stop_signals(sim)
    wall_started = time.perf_counter()
    try:
        for addon in addons:
            await addon.start(sim)
            started.append(addon)
        clock.resume()
        stats = await sim.run()
    finally:
        wall_s = time.perf_counter() - wall_started
        remove_stop_signals()
        for addon in reversed(started):
            await addon.stop()
        for sink in outputs.sinks:
            sink.close()
        await target.aclose()
    return stats, wall_s, bool(interrupted)


async def _begin(
    sim: Simulation,
    span: _Span,
    resume: ResumeInfo | None,
    journal: DispatchJournal,
    progress: dict[int, Progress],
) -> None:
    """Populate a new run; or restore a resumed one (with what its journal says each
    user already sent) and reconcile it with the target."""
    if span.saved is None or resume is None:
        journal.reset()  # a restart from the beginning: nothing was sent
        sim.populate()
    else:
        sim.restore(span.saved, resume.users, progress)
        await sim.reconcile()


async def _run(options: RunOptions, url: str, store: SqliteStore) -> RunResult:
    scenario, resume = options.scenario, options.resume
    span = _span(options, store)
    target, hooks, _ = await open_target(options, url)
    backfill = options.go_live or bool(resume is not None and resume.run.get("go_live"))
    clock = run_clock(options.speed, span.now_s, backfill)  # paused: set-up takes no sim time
    outputs = _outputs(options, span)
    addons, kill = _all_addons(options, outputs)
    progress = read_journal(options.out_dir / JOURNAL_NAME) if span.saved is not None else {}
    journal = DispatchJournal(options.out_dir / JOURNAL_NAME)
    fixed = _inprocess_secret(scenario) if url == INPROCESS else None
    restart = resume is not None and span.saved is None
    secret = keep_created(
        target, store, fixed, fresh=span.saved is None, restart=restart, journal=journal
    )
    sim = Simulation(
        scenario, target, clock, outputs.sinks, span.duration_s, secret, store, hooks,
        journal=journal, stall=None if url == INPROCESS else StallMeter.adaptive(),
    )  # fmt: skip
    sim.run_start_s = span.start_s  # a resumed run's spans count from where it began
    await _begin(sim, span, resume, journal, progress)
    try:
        stats, wall_s, signalled = await _drive(sim, clock, addons, outputs, target)
    finally:
        journal.close()
    end_s = min(sim.end_s, clock.now())
    # Stopped before the end: a signal, the kill switch, `ctl stop` or the dashboard's q.
    interrupted = signalled or kill.reason is not None or end_s < sim.end_s
    store.set_meta("finished", not interrupted)
    metrics = outputs.collector.snapshot(end_s)
    metrics["users"] = user_counts(sim.statistics(), sim.breakdown()).as_dict()
    metrics["run"] = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "target": url,
        "speed": "max" if sim.speed is None else sim.speed,  # at the end (ctl may change it)
        "start_speed": "max" if options.speed is None else options.speed,
        "wall_seconds": round(wall_s, 3),
        "simulated_seconds": simulated_span(end_s, span.start_s),
        "interrupted": interrupted,
        "stopped_by": kill.reason,
        "resumed": resume is not None,
        "version": __version__,
    }
    metrics["starvation"] = starvation_of(target)[1]  # the target's backoff held most back
    files = _write_outputs(options.out_dir, metrics, scenario, outputs.daily.history())
    return RunResult(stats, metrics, wall_s, interrupted, files)


def _inprocess_secret(scenario: Scenario) -> str:
    """The run secret of an in-process run, derived from the seed: the demo app's
    database is the run's own, so nothing can collide, and the same seed gives
    byte-identical users and actions (emails carry a tag derived from the secret)."""
    import hashlib

    text = f"sim-engine:inprocess:{scenario.name}:{scenario.seed}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _write_daily(out_dir: Path, days: list[dict[str, Any]]) -> Path:
    path = out_dir / "daily_metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(days, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a file
    return path


def _write_outputs(
    out_dir: Path, metrics: dict[str, Any], scenario: Scenario, days: list[dict[str, Any]]
) -> list[Path]:
    daily_path = _write_daily(out_dir, days)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    scenario_path = write_scenario_copy(out_dir, scenario)
    names = ("actions.jsonl", "users.jsonl", "lifecycle.jsonl")
    return [*(out_dir / n for n in names), metrics_path, daily_path, scenario_path]
