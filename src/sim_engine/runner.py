"""Wiring for a run: target, clock, sinks and simulation, then the output files.

This is the composition root (an edge module): it may import the demo app,
the targets and the sinks; the core modules never import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sim_engine import __version__
from sim_engine.addons import Addon
from sim_engine.clock import ScaledClock, make_clock
from sim_engine.engine import Simulation, SimulationStats
from sim_engine.metrics import DailyMetrics, MetricsCollector
from sim_engine.records import Sink
from sim_engine.scenario import Scenario
from sim_engine.sinks import ConsoleSink, JsonlSink
from sim_engine.targets.social import SocialApiTarget
from sim_engine.targets.transport import Transport

__all__ = ["INPROCESS", "RunOptions", "RunResult", "execute"]

INPROCESS = "inprocess"
"""Target value that calls the demo app in-process, without sockets."""

COMMON_HEADERS = {"X-Synthetic": "true", "User-Agent": f"sim-engine/{__version__}"}


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
        metrics_port: serve Prometheus metrics on 127.0.0.1:PORT (None: off).
        dashboard: show the live terminal dashboard instead of console lines.
        control: open the control endpoint (``sim-engine ctl DIR ...``).
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
    dashboard: bool = False
    control: bool = True


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        stats: the engine's final counters.
        metrics: the content of ``metrics.json``.
        wall_s: wall seconds the simulation ran.
        interrupted: stopped by a signal before its duration.
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
        TargetUnreachableError: nothing answers at the target URL.
        DemoServerError: the demo server did not start.
        OSError: the output directory cannot be written.
    """
    with _target_url(options.target_url) as url:
        return _run_loop(_run(options, url))


@contextlib.contextmanager
def _target_url(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from sim_engine.demo.launcher import DemoServer

    with DemoServer() as server:
        yield server.base_url


def _run_loop(coro: Any) -> RunResult:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return asyncio.run(coro)  # type: ignore[no-any-return,unused-ignore]
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)  # type: ignore[no-any-return,unused-ignore]
    uvloop.install()  # pragma: no cover - Python 3.10
    return asyncio.run(coro)  # type: ignore[no-any-return,unused-ignore]  # pragma: no cover


def _transport(url: str, options: RunOptions) -> Transport:
    if url == INPROCESS:
        from sim_engine.demo import create_app
        from sim_engine.targets.inprocess import AsgiTransport

        return AsgiTransport(create_app(), headers=COMMON_HEADERS)
    from sim_engine.targets.http import AiohttpTransport

    spec = options.scenario.target
    return AiohttpTransport(url, spec.concurrency, spec.timeout_s, headers=COMMON_HEADERS)


async def _run(options: RunOptions, url: str) -> RunResult:
    scenario = options.scenario
    transport = _transport(url, options)
    try:
        await transport.check()
    except BaseException:
        await transport.aclose()
        raise
    target = SocialApiTarget(transport)
    clock = make_clock(options.speed, options.start_s)
    out = scenario.output
    collector = MetricsCollector(options.start_s, out.latest_actions, out.top_n, out.users_sample_s)
    jsonl = JsonlSink(options.out_dir)
    daily = DailyMetrics(scenario.lifecycle.history_days)
    sinks: list[Sink] = [jsonl, collector, daily]
    if options.console is not None and not options.dashboard:
        sinks.append(ConsoleSink(options.console, options.per_action))
    addons = _addons(options)
    for addon in addons:
        sinks.extend(addon.sinks())
    if isinstance(clock, ScaledClock):
        clock.pause()  # building the population takes wall time, not simulated time
    sim = Simulation(scenario, target, clock, sinks, duration_s=options.duration_s)
    sim.populate()
    started: list[Addon] = []
    interrupted = _install_stop_signals(sim)
    wall_started = time.perf_counter()
    try:
        for addon in addons:
            await addon.start(sim)
            started.append(addon)
        if isinstance(clock, ScaledClock):
            clock.resume()
        stats = await sim.run()
    finally:
        wall_s = time.perf_counter() - wall_started
        _remove_stop_signals()
        for addon in reversed(started):
            await addon.stop()
        for sink in sinks:
            sink.close()
        await target.aclose()
    end_s = min(sim.end_s, clock.now())
    metrics = collector.snapshot(end_s)
    metrics["run"] = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "target": url,
        "speed": "max" if options.speed is None else options.speed,
        "wall_seconds": round(wall_s, 3),
        "simulated_seconds": round(end_s - options.start_s, 3),
        "interrupted": bool(interrupted),
        "version": __version__,
    }
    files = _write_outputs(options.out_dir, metrics, scenario, daily.history())
    return RunResult(stats, metrics, wall_s, bool(interrupted), files)


def _addons(options: RunOptions) -> list[Addon]:
    """Build the add-ons the options ask for (each imported only when used)."""
    addons: list[Addon] = []
    # One line per add-on, in the order they start:
    return addons


def _install_stop_signals(sim: Simulation) -> list[int]:
    """Make SIGINT/SIGTERM stop the run gracefully; the returned list fills when one arrives."""
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        received.append(signum)
        sim.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
    return received


def _remove_stop_signals() -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signum)


def _write_outputs(
    out_dir: Path, metrics: dict[str, Any], scenario: Scenario, days: list[dict[str, Any]]
) -> list[Path]:
    daily_path = out_dir / "daily_metrics.json"
    daily_path.write_text(json.dumps(days, indent=1) + "\n", encoding="utf-8")
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    scenario_path = out_dir / "scenario.json"
    scenario_path.write_text(scenario.model_dump_json(indent=2) + "\n", encoding="utf-8")
    names = ("actions.jsonl", "users.jsonl", "lifecycle.jsonl")
    return [*(out_dir / n for n in names), metrics_path, daily_path, scenario_path]
