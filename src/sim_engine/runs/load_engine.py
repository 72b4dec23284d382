"""The load test on the engine's one scheduler: the policy of its shape, the figures, the view.

:func:`run_load_async` builds the transport and target as ``run`` does, the
:class:`~sim_engine.engine.simulation.Simulation` with the shape's session
policy (:mod:`sim_engine.runs.load_shapes`, or seed 004's
:class:`~sim_engine.engine.policies.ClosedLoopPolicy`), runs it with the
thresholds, the Prometheus exporter and the live monitor, and returns the
:class:`~sim_engine.runs.load_report.LoadResult`. :mod:`sim_engine.runs.loadtest`
is the entry point (the demo server, the output files, ``--processes``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim_engine.engine.addons import Addon
from sim_engine.engine.capabilities import SessionPolicy
from sim_engine.engine.clock import SimClock
from sim_engine.engine.policies import ClosedLoopPolicy
from sim_engine.engine.simulation import Simulation, SimulationStats
from sim_engine.model.population import SimUser
from sim_engine.model.records import Sink, Target
from sim_engine.model.scenario import Scenario
from sim_engine.runs.load_csv import LocustCsv
from sim_engine.runs.load_live import LoadMonitor
from sim_engine.runs.load_options import LoadOptions, action_distribution
from sim_engine.runs.load_report import LoadResult
from sim_engine.runs.load_shapes import ArrivalRatePolicy, StagedUsersPolicy
from sim_engine.runs.load_stats import LoadStats
from sim_engine.runs.load_thresholds import ThresholdGuard
from sim_engine.runs.runner import RunOptions, open_target
from sim_engine.runs.signals import install_stop_signals, remove_stop_signals

_MAX_CONCURRENCY = 10_000  # target.concurrency's bound in the scenario schema
_NO_FLOOR_S = 1e-6  # think_time.min_s must be positive; a microsecond holds nothing back

__all__ = ["Tap", "load_scenario", "run_load_async"]

Tap = Callable[[LoadStats, int, Simulation], None]
"""Called every ``progress_every_s`` with the figures so far, the virtual users active
now and the simulation (a ``--processes`` worker reports to its parent from it)."""


async def run_load_async(
    options: LoadOptions,
    url: str,
    work_dir: Path,
    tap: Tap | None = None,
    addons: Sequence[Addon] = (),
) -> LoadResult:
    """Run the load test against ``url`` (a base URL or ``inprocess``) in this event loop.

    ``work_dir`` holds the in-process app's database. Writes nothing else.
    ``tap``: see :data:`Tap`. ``addons``: more add-ons to run with the test (their
    sinks get its records; a ``--processes`` worker's exporter that serves nothing).

    Raises:
        LoadTestError: bad options.
        TargetUnreachableError: nothing answers at ``url``.
    """
    options.check()
    run_options = RunOptions(
        scenario=options.scenario,
        target_url=url,
        speed=None,
        duration_s=None,
        start_s=time.time(),
        out_dir=work_dir,
        resilient=options.resilient,
        http_client=options.http_client,
    )
    target, hooks, transport = await open_target(run_options, url)
    try:
        result = await _drive(options, target, hooks, url, tap, addons)
    finally:
        await target.aclose()
    statistics = getattr(transport, "statistics", None)
    if statistics is not None:
        result.transport = statistics()
    return result


class _Finish:
    """A session hook: counts virtual users that are done, and stops the run after the last."""

    def __init__(self, users: int) -> None:
        self.users = users
        self.ended = 0
        self.completed = 0
        self.sim: Simulation | None = None

    def on_session_start(self, user: SimUser, sim_t: float) -> None:
        """Nothing to do when a virtual user starts."""

    def on_session_end(self, user: SimUser, sim_t: float) -> None:
        """A virtual user is done: all its requests made, or its sign-up failed."""
        self.ended += 1
        if user.session_left == 0 and user.token is not None:
            self.completed += 1
        if self.ended >= self.users and self.sim is not None:
            self.sim.stop()


def load_scenario(options: LoadOptions) -> Scenario:
    """The scenario as a closed population: the virtual users at once, no growth, no
    lifecycle; the delays are the think times (no ``min_action_interval_s`` floor, and
    no think-time floor holding back the next iteration)."""
    founders = len(options.scenario.population.founders)
    users = options.virtual_users()
    overrides: dict[str, Any] = {
        "population.initial": users,
        "population.max": users + founders,
        "population.signups_per_day": 0,
        "lifecycle.enabled": False,
        "limits.min_action_interval_s": 0.0,
        "target.concurrency": min(
            _MAX_CONCURRENCY, max(users + founders, options.scenario.target.concurrency)
        ),
    }
    for name in options.scenario.personas:
        overrides[f"personas.{name}.session.think_time.min_s"] = _NO_FLOOR_S
    return options.scenario.with_overrides(**overrides)


def _policy(options: LoadOptions, start_s: float) -> tuple[SessionPolicy, float | None]:
    """The session policy of the options' shape, and the test's length (None: open-ended)."""
    delays = (options.delay_min_ms / 1000.0, options.delay_max_ms / 1000.0)
    profile = options.profile()
    if profile is None:  # the closed model of seed 004: counts, and --duration
        counts = (options.min_requests, options.max_requests)
        return ClosedLoopPolicy(*counts, *delays), options.duration_s
    if options.arrival_rate is None:
        return StagedUsersPolicy(profile, start_s, *delays), profile.end
    return ArrivalRatePolicy(profile, start_s, options.virtual_users()), profile.end


def _simulation(
    options: LoadOptions,
    target: Target,
    hooks: list[Any],
    result: LoadResult,
    sinks: list[Sink],
) -> tuple[Simulation, _Finish | None, SessionPolicy]:
    """The load test on the one scheduler: a wall clock and the shape's policy."""
    scenario = load_scenario(options)
    clock = SimClock(time.time(), 1.0)  # simulated time is wall time
    clock.pause()  # building the population takes no part of the test
    policy, length_s = _policy(options, clock.now())
    finish = None
    if isinstance(policy, ClosedLoopPolicy):  # done when every user made its count
        finish = _Finish(options.users + len(scenario.population.founders))
        hooks = [*hooks, finish]
    if isinstance(policy, ArrivalRatePolicy):
        result.stats.interval_us = policy.interval_us
    sim = Simulation(
        scenario,
        target,
        clock,
        [result.stats, *sinks],
        duration_s=length_s,
        hooks=hooks,
        policy=policy,
    )
    if finish is not None:
        finish.sim = sim
    sim.populate()
    clock.resume()
    return sim, finish, policy


async def _drive(
    options: LoadOptions,
    target: Target,
    hooks: list[Any],
    url: str,
    tap: Tap | None,
    more: Sequence[Addon],
) -> LoadResult:
    result = LoadResult(options, url, distribution=action_distribution(options.scenario))
    loop = asyncio.get_running_loop()
    guard = ThresholdGuard(
        options.thresholds,
        result.stats,
        abort=options.abort_on_fail,
        every_s=options.progress_every_s,
        now=loop.time,
    )
    addons: list[Addon] = [guard, *more]
    if options.metrics_port is not None:
        from sim_engine.observe.prometheus import PrometheusExporter

        addons.append(PrometheusExporter(options.metrics_port))
    sinks = [sink for addon in addons for sink in addon.sinks()]
    sim, finish, policy = _simulation(options, target, hooks, result, sinks)

    def active() -> int:
        return _active_users(options, sim, finish, policy)

    monitor = LoadMonitor(
        result.stats,
        active,
        options.console,
        every_s=options.progress_every_s,
        csv=LocustCsv(options.csv_prefix) if options.csv_prefix else None,
        csv_every_s=options.csv_every_s,
        now=loop.time,
        on_tick=None if tap is None else lambda: tap(result.stats, active(), sim),
    )
    received = install_stop_signals(sim)
    started, cpu = loop.time(), time.process_time()
    try:
        stats = await _run_with(sim, addons, monitor)
    finally:
        remove_stop_signals()
    result.wall_s = loop.time() - started
    result.cpu_s = time.process_time() - cpu
    result.interrupted = bool(received)
    result.impossible = stats.idle
    result.timeline = monitor.timeline
    result.verdicts = guard.verdicts(result.wall_s)
    result.aborted = guard.aborted
    _how_it_ended(result, finish, policy)
    return result


async def _run_with(sim: Simulation, addons: list[Addon], monitor: LoadMonitor) -> SimulationStats:
    """Run the simulation with the add-ons and the monitor started, and stop them after."""
    started: list[Addon] = []
    task = None
    try:
        for addon in addons:
            await addon.start(sim)
            started.append(addon)
        monitor.start()
        task = asyncio.ensure_future(monitor.run())
        return await sim.run()
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            monitor.stop()
        for addon in reversed(started):
            await addon.stop()


def _active_users(
    options: LoadOptions, sim: Simulation, finish: _Finish | None, policy: SessionPolicy
) -> int:
    """Virtual users taking part now (the history's ``User Count``)."""
    if finish is not None:
        return finish.users - finish.ended
    if isinstance(policy, StagedUsersPolicy):
        return policy.users_at(sim.clock.now())
    return options.virtual_users()


def _how_it_ended(result: LoadResult, finish: _Finish | None, policy: SessionPolicy) -> None:
    """Completed users and ``cut_short`` (count model), dropped iterations (open model)."""
    if finish is not None:
        result.completed_users = finish.completed
        result.cut_short = finish.ended < finish.users
    else:  # a shaped test lasts its stages or its duration: cut short only when stopped
        result.cut_short = result.interrupted or result.aborted is not None
    if isinstance(policy, ArrivalRatePolicy):
        result.dropped_iterations = policy.dropped
