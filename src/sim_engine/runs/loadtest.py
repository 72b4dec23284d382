"""Load-test mode (seed 004): N virtual users, each making a random number of requests.

A closed-loop load test on the engine's one scheduler: the same
:class:`~sim_engine.engine.simulation.Simulation`, identities, sign-up,
binding and tagging as ``run``, with a clock at speed 1 (simulated time is wall
time) and a :class:`~sim_engine.engine.policies.ClosedLoopPolicy` instead of the
persona model's routines: ``users`` virtual users start at once, each signs up
and logs in, then makes ``randint(min, max)`` requests drawn from its persona's
``relaxing`` matrix (together: the personas' matrices weighted by share),
waiting a uniform ``[delay_min, delay_max]`` wall milliseconds before each. A
user is done at its count; the test ends when every user is done, or when the
wall-time ``duration`` ends (requests in flight then finish). Requests go
through the same stack as ``run``: the resilient transport (rate limits,
retries, breakers) over aiohttp or the in-process app, with the synthetic
headers; plugins (``docs/plugins.md``) take part as in a run.

Figures: requests (the drawn ones; sign-up and log-in are reported apart as
``setup``), success rate, latency percentiles from an HDR histogram (wall
milliseconds), requests per second over the whole wall time, and per-action
counts, failures and percentiles. See ``docs/load-testing.md``.

This is an edge module (like the runner): the CLI's ``load`` command calls
:func:`run_load` and prints :func:`format_summary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from sim_engine.engine.clock import SimClock
from sim_engine.engine.policies import ClosedLoopPolicy
from sim_engine.engine.simulation import Simulation
from sim_engine.model.population import SimUser
from sim_engine.model.records import Target
from sim_engine.model.scenario import Scenario
from sim_engine.runs.load_options import LoadOptions, LoadTestError, action_distribution
from sim_engine.runs.load_report import LoadResult, format_summary, write_load_json
from sim_engine.runs.load_thresholds import ThresholdGuard
from sim_engine.runs.runner import RunOptions, open_target
from sim_engine.runs.runstate import DEMO, check_target_allowed
from sim_engine.runs.signals import install_stop_signals, remove_stop_signals

_MAX_CONCURRENCY = 10_000  # target.concurrency's bound in the scenario schema

__all__ = [
    "LoadOptions",
    "LoadResult",
    "LoadTestError",
    "action_distribution",
    "format_summary",
    "run_load",
    "run_load_async",
    "write_load_json",
]


def run_load(options: LoadOptions) -> LoadResult:
    """Run a load test to its end (or until SIGINT/SIGTERM) and write ``load.json``.

    Starts the built-in demo server first when ``target_url`` is None.

    Raises:
        LoadTestError: bad options (one line).
        SafetyError: the target is outside loopback and not in ``safety.allow_hosts``.
        TargetUnreachableError: nothing answers at the target URL.
        DemoServerError: the demo server did not start.
        OSError: the output directory cannot be written.
    """
    from sim_engine.runs.runner import run_loop, target_url

    options.check()
    target = options.target_url or DEMO
    check_target_allowed(target, options.scenario.safety.allow_hosts)
    if options.out_dir is not None:
        options.out_dir.mkdir(parents=True, exist_ok=True)
    with _work_dir(options.out_dir) as work, target_url(target, work) as url:
        result = cast(LoadResult, run_loop(run_load_async(options, url, work)))
    if options.out_dir is not None:
        write_load_json(result, options.out_dir)
    return result


@contextlib.contextmanager
def _work_dir(out_dir: Path | None) -> Iterator[Path]:
    if out_dir is not None:
        yield out_dir
        return
    with tempfile.TemporaryDirectory(prefix="sim-engine-load-") as tmp:
        yield Path(tmp)


async def run_load_async(options: LoadOptions, url: str, work_dir: Path) -> LoadResult:
    """Run the load test against ``url`` (a base URL or ``inprocess``) in this event loop.

    ``work_dir`` holds the in-process app's database. Writes nothing else.

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
    )
    target, hooks, transport = await open_target(run_options, url)
    try:
        result = await _drive(options, target, hooks, url)
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


def _load_scenario(options: LoadOptions) -> Scenario:
    """The scenario as a closed population: ``users`` at once, no growth, no lifecycle;
    the delays are the think times (no ``min_action_interval_s`` floor)."""
    founders = len(options.scenario.population.founders)
    return options.scenario.with_overrides(
        **{
            "population.initial": options.users,
            "population.max": options.users + founders,
            "population.signups_per_day": 0,
            "lifecycle.enabled": False,
            "limits.min_action_interval_s": 0.0,
            "target.concurrency": min(
                _MAX_CONCURRENCY, max(options.users + founders, options.scenario.target.concurrency)
            ),
        }
    )


def _simulation(
    options: LoadOptions, target: Target, hooks: list[Any], result: LoadResult
) -> tuple[Simulation, _Finish]:
    """The load test on the one scheduler: a wall clock and a closed-loop policy."""
    scenario = _load_scenario(options)
    finish = _Finish(options.users + len(scenario.population.founders))
    policy = ClosedLoopPolicy(
        options.min_requests,
        options.max_requests,
        options.delay_min_ms / 1000.0,
        options.delay_max_ms / 1000.0,
    )
    clock = SimClock(time.time(), 1.0)  # simulated time is wall time
    clock.pause()  # building the population takes no part of the test
    sim = Simulation(
        scenario,
        target,
        clock,
        [result.stats],
        duration_s=options.duration_s,
        hooks=[*hooks, finish],
        policy=policy,
    )
    finish.sim = sim
    sim.populate()
    clock.resume()
    return sim, finish


async def _drive(options: LoadOptions, target: Target, hooks: list[Any], url: str) -> LoadResult:
    result = LoadResult(options, url, distribution=action_distribution(options.scenario))
    sim, finish = _simulation(options, target, hooks, result)
    loop = asyncio.get_running_loop()
    received = install_stop_signals(sim)
    progress = None
    started = loop.time()
    guard = ThresholdGuard(
        options.thresholds,
        result.stats,
        abort=options.abort_on_fail,
        every_s=options.progress_every_s,
        now=loop.time,
    )
    await guard.start(sim)
    if options.console is not None:
        progress = asyncio.ensure_future(_progress(options, result, finish, started))
    try:
        stats = await sim.run()
    finally:
        await guard.stop()
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        remove_stop_signals()
    result.wall_s = loop.time() - started
    result.interrupted = bool(received)
    result.completed_users = finish.completed
    result.cut_short = finish.ended < finish.users
    result.impossible = stats.idle
    result.verdicts = guard.verdicts(result.wall_s)
    result.aborted = guard.aborted
    return result


async def _progress(
    options: LoadOptions, result: LoadResult, finish: _Finish, started: float
) -> None:
    console = options.console
    assert console is not None
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(options.progress_every_s)
        console.write(
            f"  {loop.time() - started:6.1f} s: {result.requests} requests, "
            f"{100 * result.success_rate:.1f}% ok, "
            f"{finish.ended}/{options.users} users done\n"
        )
        console.flush()
