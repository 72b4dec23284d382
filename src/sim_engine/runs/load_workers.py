"""``load --processes N``: one load test spread over N processes, one figure set at the end.

Each worker process runs its share of the test on its own event loop (and so
its own core): ``users`` split as evenly as possible, the arrival rate and
the stages' targets divided by N, its own seed (``seed + i``), against the
same target URL. Workers write nothing and show nothing; each returns its
tallies with the HDR histograms encoded (HdrHistogram's compressed form), and
the parent merges them into one :class:`~sim_engine.runs.load_stats.LoadStats`:
the summary, ``load.json``, the CSV stats files and the thresholds then read
the merged figures. The pool is a ``spawn`` :class:`ProcessPoolExecutor`, as
``generate --workers`` uses.

While the test runs the parent shows one line every ``progress_every_s`` (the
workers' elapsed time); the live per-endpoint table, the CSV history, live
thresholds (``--abort-on-fail``) and Prometheus metrics need one process.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from sim_engine.runs.load_options import LoadOptions
from sim_engine.runs.load_report import LoadResult
from sim_engine.runs.load_stats import LoadStats, Tally

__all__ = ["MAX_PROCESSES", "merge_into", "run_processes", "shard_options", "tally_state"]

MAX_PROCESSES = 64
"""The most ``--processes`` accepted."""


def shard_options(options: LoadOptions, index: int, count: int) -> LoadOptions:
    """Worker ``index``'s share of ``options`` (of ``count``), writing and showing nothing."""
    users = options.users // count + (1 if index < options.users % count else 0)
    stages = tuple((d, target / count) for d, target in options.stages)
    rate = None if options.arrival_rate is None else options.arrival_rate / count
    scenario = options.scenario.with_overrides(seed=options.scenario.seed + index)
    return dataclasses.replace(
        options,
        scenario=scenario,
        users=max(1, users),
        stages=stages,
        arrival_rate=rate,
        out_dir=None,
        console=None,
        csv_prefix=None,
        metrics_port=None,
        thresholds=(),
        abort_on_fail=False,
        processes=1,
    )


def tally_state(tally: Tally) -> dict[str, Any]:
    """A picklable copy of ``tally`` (its histogram encoded)."""
    return {
        "requests": tally.requests,
        "failed": tally.failed,
        "intended": tally.intended,
        "corrected": tally.corrected,
        "errors": dict(tally.errors),
        "messages": dict(tally.messages),
        "latency": tally.latency.encode() if tally.requests else b"",
    }


def _add_state(tally: Tally, state: dict[str, Any]) -> None:
    tally.requests += state["requests"]
    tally.failed += state["failed"]
    tally.intended += state["intended"]
    tally.corrected += state["corrected"]
    tally.errors.update(state["errors"])
    tally.messages.update(state["messages"])
    if state["latency"]:
        tally.latency.add(HdrHistogram.decode(state["latency"]))


def _stats_state(stats: LoadStats) -> dict[str, Any]:
    return {
        "total": tally_state(stats.total),
        "by_action": {k: tally_state(t) for k, t in stats.by_action.items()},
        "by_endpoint": {k: tally_state(t) for k, t in stats.by_endpoint.items()},
        "setup": {k: tally_state(t) for k, t in stats.setup.items()},
        "by_status": dict(stats.by_status),
    }


def merge_into(stats: LoadStats, state: dict[str, Any]) -> None:
    """Add a worker's figures (from :func:`tally_state` et al.) to ``stats``."""
    _add_state(stats.total, state["total"])
    for name in ("by_action", "by_endpoint", "setup"):
        table: dict[str, Tally] = getattr(stats, name)
        for key, tally in state[name].items():
            _add_state(table.setdefault(key, Tally()), tally)
    stats.by_status.update(state["by_status"])


def _worker(options: LoadOptions, url: str, work_dir: str) -> dict[str, Any]:
    """Run one share in this (spawned) process; return its figures, picklable."""
    from sim_engine.runs.load_engine import run_load_async
    from sim_engine.runs.runner import run_loop

    result: LoadResult = run_loop(run_load_async(options, url, Path(work_dir)))  # type: ignore[assignment]
    return {
        "stats": _stats_state(result.stats),
        "wall_s": result.wall_s,
        "cpu_s": result.cpu_s,
        "completed_users": result.completed_users,
        "cut_short": result.cut_short,
        "impossible": result.impossible,
        "dropped": result.dropped_iterations,
    }


def _pool(
    options: LoadOptions, shards: list[LoadOptions], url: str, dirs: list[Path]
) -> list[dict[str, Any]]:
    """Run the shards on a spawn pool; a line every ``progress_every_s`` meanwhile."""
    count = len(shards)
    started = time.monotonic()
    with ProcessPoolExecutor(count, get_context("spawn")) as pool:
        futures = [pool.submit(_worker, s, url, str(d)) for s, d in zip(shards, dirs, strict=True)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, options.progress_every_s, FIRST_COMPLETED)
            if options.console is not None and pending:
                options.console.write(
                    f"  {time.monotonic() - started:6.1f} s: {count} processes, "
                    f"{count - len(pending)} done\n"
                )
                options.console.flush()
        return [f.result() for f in futures]


def run_processes(options: LoadOptions, url: str, work_dir: Path) -> LoadResult:
    """Run ``options`` over ``options.processes`` worker processes against ``url`` and
    merge their figures (thresholds checked on the merged ones).

    ``options`` are checked (:meth:`LoadOptions.check`) by the caller.
    """
    from sim_engine.runs.load_options import action_distribution
    from sim_engine.runs.load_thresholds import evaluate

    count = options.processes
    shards = [shard_options(options, i, count) for i in range(count)]
    result = LoadResult(options, url, distribution=action_distribution(options.scenario))
    dirs = [work_dir / f"worker-{i}" for i in range(count)]
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:  # Ctrl-C reaches the workers too (one process group): they stop, and report
        outcomes = _pool(options, shards, url, dirs)
    finally:
        signal.signal(signal.SIGINT, previous)
    result.interrupted = bool(interrupted)
    for outcome in outcomes:
        merge_into(result.stats, outcome["stats"])
        result.cpu_s += outcome["cpu_s"]
        result.completed_users += outcome["completed_users"]
        result.impossible += outcome["impossible"]
        result.dropped_iterations += outcome["dropped"]
        result.cut_short = result.cut_short or outcome["cut_short"]
    result.wall_s = max((o["wall_s"] for o in outcomes), default=0.0)
    result.verdicts = evaluate(options.thresholds, result.stats, result.wall_s)
    return result
