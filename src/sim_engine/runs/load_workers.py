"""``load --processes N``: one load test spread over N processes, one figure set at the end.

Each worker process runs its share of the test on its own event loop (and so
its own core): ``users`` split as evenly as possible, the arrival rate and
the stages' targets divided by N, its own seed (``seed + i``), against the
same target URL. Workers write nothing and show nothing; each returns its
tallies with the HDR histograms encoded (HdrHistogram's compressed form), and
the parent merges them into one :class:`~sim_engine.runs.load_stats.LoadStats`:
the summary, ``load.json``, the CSV files and the thresholds then read the
merged figures. The pool is a ``spawn`` :class:`ProcessPoolExecutor`, as
``generate --workers`` uses.

While the test runs, every worker also sends its figures so far to the parent
(a queue handed to the pool's initializer) every ``progress_every_s`` (every
``--csv-interval`` when that is shorter); the parent merges the latest of each
worker and shows the same live per-endpoint table, appends the same CSV
history and, with ``--abort-on-fail``, checks the thresholds on the merged
figures and stops every worker at the first failure (an event the workers poll).

With ``--metrics-port``, the parent serves the Prometheus metrics on
``127.0.0.1:PORT`` (opened before any worker starts: a taken port stops the test
with one line). Every worker counts its records in an exporter of its own that
serves nothing, and sends a snapshot of it with each report and at its end; the
parent serves the latest of each worker merged
(:class:`~sim_engine.observe.merged_metrics.MergedMetrics`: counters and histogram
buckets summed), with the one-process exporter's names, labels and ``/healthz``.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from sim_engine.runs.load_options import LoadOptions
from sim_engine.runs.load_report import LoadResult
from sim_engine.runs.load_stats import LoadStats, Tally

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

    from sim_engine.engine.simulation import Simulation
    from sim_engine.observe.merged_metrics import Family, MergedMetrics
    from sim_engine.observe.prometheus import PrometheusExporter
    from sim_engine.runs.load_live import LoadMonitor
    from sim_engine.runs.load_thresholds import Verdict

__all__ = ["MAX_PROCESSES", "merge_into", "run_processes", "shard_options", "tally_state"]

_LINK: tuple[Queue[Any], Event] | None = None  # a worker's line to its parent

MAX_PROCESSES = 64
"""The most ``--processes`` accepted."""


def shard_options(options: LoadOptions, index: int, count: int) -> LoadOptions:
    """Worker ``index``'s share of ``options`` (of ``count``), writing and showing nothing."""
    users = options.users // count + (1 if index < options.users % count else 0)
    stages = tuple((d, target / count) for d, target in options.stages)
    rate = None if options.arrival_rate is None else options.arrival_rate / count
    scenario = options.scenario.with_overrides(seed=options.scenario.seed + index)
    every = options.progress_every_s
    if options.csv_prefix is not None:
        every = min(every, options.csv_every_s)
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
        progress_every_s=every,
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


def _link(reports: Queue[Any], stop: Event) -> None:
    """The pool's initializer: keep the line to the parent in this worker process."""
    global _LINK  # one per worker process, set once at its start
    _LINK = (reports, stop)


def _report(
    index: int, stats: LoadStats, users: int, sim: Simulation, metrics: list[Family] | None
) -> None:
    """A worker's figures so far to the parent; stop when the parent says so."""
    if _LINK is None:
        return
    reports, stop = _LINK
    reports.put((index, _stats_state(stats), users, metrics))
    if stop.is_set():
        sim.stop()


def _snapshot(exporter: PrometheusExporter | None) -> list[Family] | None:
    """The worker's Prometheus metrics now (None: the parent serves none)."""
    from sim_engine.observe.merged_metrics import snapshot

    return None if exporter is None else snapshot(exporter.registry)


def _worker(
    options: LoadOptions, url: str, work_dir: str, index: int, metrics: bool
) -> dict[str, Any]:
    """Run one share in this (spawned) process; return its figures, picklable.

    ``metrics``: count the records in an exporter that serves nothing, for the parent.
    """
    from sim_engine.observe.prometheus import PrometheusExporter
    from sim_engine.runs.load_engine import run_load_async
    from sim_engine.runs.runner import run_loop

    exporter = PrometheusExporter(0, serve=False) if metrics else None

    def tap(stats: LoadStats, users: int, sim: Simulation) -> None:
        _report(index, stats, users, sim, _snapshot(exporter))

    addons = [] if exporter is None else [exporter]
    test = run_load_async(options, url, Path(work_dir), tap, addons)
    result: LoadResult = run_loop(test)  # type: ignore[assignment]
    return {
        "metrics": _snapshot(exporter),
        "stats": _stats_state(result.stats),
        "wall_s": result.wall_s,
        "cpu_s": result.cpu_s,
        "completed_users": result.completed_users,
        "cut_short": result.cut_short,
        "impossible": result.impossible,
        "dropped": result.dropped_iterations,
    }


def merged(states: list[dict[str, Any]]) -> LoadStats:
    """One :class:`LoadStats` from the workers' states (from ``_stats_state``)."""
    stats = LoadStats()
    for state in states:
        merge_into(stats, state)
    return stats


class _Parent:
    """The parent's live view of the workers: the latest figures of each, merged, shown,
    written to the CSV history and judged (``--abort-on-fail``)."""

    def __init__(self, options: LoadOptions, stop: Event) -> None:
        from sim_engine.observe.merged_metrics import MergedMetrics
        from sim_engine.runs.load_csv import LocustCsv
        from sim_engine.runs.load_live import LoadMonitor

        self.options = options
        self.latest: dict[int, tuple[dict[str, Any], int]] = {}
        self.stop = stop
        self.aborted: Verdict | None = None
        csv = LocustCsv(options.csv_prefix) if options.csv_prefix else None
        self.monitor: LoadMonitor = LoadMonitor(
            LoadStats(), self.users, options.console,
            every_s=options.progress_every_s, csv=csv, csv_every_s=options.csv_every_s,
        )  # fmt: skip
        self.started = time.monotonic()
        port = options.metrics_port
        self.metrics: MergedMetrics | None = None if port is None else MergedMetrics(port)

    def users(self) -> int:
        """Virtual users active now, over the workers (as last reported)."""
        return sum(users for _, users in self.latest.values())

    def take(self, reports: Queue[Any]) -> bool:
        """Take every report waiting; True when there was one."""
        got = False
        while True:
            try:
                index, state, users, metrics = reports.get_nowait()
            except queue.Empty:
                return got
            self.latest[index] = (state, users)
            if self.metrics is not None and metrics is not None:
                self.metrics.update(index, metrics)
            got = True

    def tick(self, due: dict[str, float]) -> None:
        """Merge the latest figures; the CSV rows, the view and the live check when due."""
        elapsed = time.monotonic() - self.started
        if self.metrics is not None:
            self.metrics.beat()
        self.monitor.stats = merged([state for state, _ in self.latest.values()])
        if self.monitor.csv is not None and elapsed >= due["csv"]:
            self.monitor.tick_csv()
            due["csv"] += self.options.csv_every_s
        if elapsed >= due["view"]:
            self.monitor.show()
            self.monitor.sample()
            due["view"] += self.options.progress_every_s
            self._check(elapsed)

    def _check(self, elapsed: float) -> None:
        from sim_engine.runs.load_thresholds import evaluate

        if not self.options.abort_on_fail or self.aborted is not None:
            return
        live = evaluate(self.options.thresholds, self.monitor.stats, elapsed, live=True)
        self.aborted = next((v for v in live if not v.passed), None)
        if self.aborted is not None:
            self.stop.set()  # every worker stops at its next report


def _pool(
    parent: _Parent, context: SpawnContext, shards: list[LoadOptions], url: str, dirs: list[Path]
) -> list[dict[str, Any]]:
    """Run the shards on a spawn pool, the parent's live view meanwhile."""
    options = parent.options
    reports: Queue[Any] = context.Queue()
    parent.monitor.start()
    step = min(options.progress_every_s, options.csv_every_s if options.csv_prefix else math.inf)
    due = {"csv": options.csv_every_s, "view": options.progress_every_s}
    pool = ProcessPoolExecutor(
        len(shards), context, initializer=_link, initargs=(reports, parent.stop)
    )
    metrics = parent.metrics is not None
    with pool:
        futures = [
            pool.submit(_worker, s, url, str(d), i, metrics)
            for i, (s, d) in enumerate(zip(shards, dirs, strict=True))
        ]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, step / 4, FIRST_COMPLETED)
            parent.take(reports)
            parent.tick(due)
        return [f.result() for f in futures]


def _add_outcomes(result: LoadResult, outcomes: list[dict[str, Any]], parent: _Parent) -> None:
    """The workers' final figures into ``result`` and the served metrics."""
    for index, outcome in enumerate(outcomes):
        merge_into(result.stats, outcome["stats"])
        result.cpu_s += outcome["cpu_s"]
        result.completed_users += outcome["completed_users"]
        result.impossible += outcome["impossible"]
        result.dropped_iterations += outcome["dropped"]
        result.cut_short = result.cut_short or outcome["cut_short"]
        if parent.metrics is not None and outcome["metrics"] is not None:
            parent.metrics.update(index, outcome["metrics"])
    result.wall_s = max((o["wall_s"] for o in outcomes), default=0.0)


def run_processes(options: LoadOptions, url: str, work_dir: Path) -> LoadResult:
    """Run ``options`` over ``options.processes`` worker processes against ``url`` and
    merge their figures (thresholds checked on the merged ones).

    ``options`` are checked (:meth:`LoadOptions.check`) by the caller.

    Raises:
        MetricsPortError: ``--metrics-port`` cannot be bound (before any worker starts).
    """
    from sim_engine.runs.load_options import action_distribution
    from sim_engine.runs.load_thresholds import evaluate

    count = options.processes
    shards = [shard_options(options, i, count) for i in range(count)]
    result = LoadResult(options, url, distribution=action_distribution(options.scenario))
    dirs = [work_dir / f"worker-{i}" for i in range(count)]
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    context = get_context("spawn")
    parent = _Parent(options, context.Event())
    if parent.metrics is not None:
        parent.metrics.start()
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:  # Ctrl-C reaches the workers too (one process group): they stop, and report
        _add_outcomes(result, _pool(parent, context, shards, url, dirs), parent)
    finally:
        signal.signal(signal.SIGINT, previous)
        if parent.metrics is not None:  # served until the final figures are in
            parent.metrics.stop()
    result.interrupted = bool(interrupted)
    result.aborted = parent.aborted
    parent.monitor.stats = result.stats  # the last history rows and files: the final figures
    parent.monitor.stop()
    result.timeline = parent.monitor.timeline
    result.verdicts = evaluate(options.thresholds, result.stats, result.wall_s)
    return result
