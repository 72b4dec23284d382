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

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from sim_engine.runs.load_engine import run_load_async
from sim_engine.runs.load_options import LoadOptions, LoadTestError, action_distribution
from sim_engine.runs.load_report import LoadResult, format_summary, write_load_json
from sim_engine.runs.load_workers import run_processes
from sim_engine.runs.runstate import DEMO, check_target_allowed

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
    if options.csv_prefix is not None:
        Path(options.csv_prefix).parent.mkdir(parents=True, exist_ok=True)
    with _work_dir(options.out_dir) as work, target_url(target, work) as url:
        if options.processes > 1:
            result = run_processes(options, url, work)
        else:
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
