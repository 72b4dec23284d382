"""``sim-engine generate``: a dataset planned in bulk, in chunks of users, on one or more processes.

The run: plan the population and its lifecycle once (:func:`plan_population`,
seconds for a million users), cut the users into chunks, plan and write each
chunk (:func:`run_chunk`, the shard function a process pool or Ray calls:
:mod:`sim_engine.runs.shards`)
day by day into ``TABLE/date=YYYY-MM-DD/part-CCCCC.EXT``, then write the users,
lifecycle changes and daily metrics. ``manifest.json`` is rewritten after every
chunk: the chunks (and so the files) that are complete, and whether the dataset
is. An interrupted run keeps its complete chunks; ``resume`` plans the same
population again (it is deterministic) and does only the chunks that are missing.

Every random draw is hashed from the seed, the user and the day, so the rows do
not depend on the chunk size or the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim_engine.datasets.build import (
    Vocab,
    daily_metrics_table,
    events_table,
    lifecycle_table,
    sessions_table,
    users_table,
)
from sim_engine.datasets.writers import EXTENSIONS, load_duckdb, part_format, write_table
from sim_engine.model.plan.events import ChunkPlanner, PlanModel
from sim_engine.model.plan.population import Population, plan_population
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.runs.generate_analytics import (
    AnalyticsJob,
    ChunkAnalytics,
    analytics_dirs,
    analytics_files,
    check_mapping,
)
from sim_engine.runs.generate_options import (
    BACKENDS,
    MAX_GENERATE_DAYS,
    GenerateError,
    GenerateOptions,
)
from sim_engine.runs.shards import ShardError, drive, run_pool, run_ray

__all__ = [
    "BACKENDS",
    "MAX_GENERATE_DAYS",
    "ChunkJob",
    "ChunkResult",
    "GenerateError",
    "GenerateOptions",
    "GenerateSummary",
    "ShardError",
    "generate",
    "plan_chunk",
    "run_chunk",
]

MANIFEST = "manifest.json"
_PARTS = ".parts"  # DuckDB's staged Parquet parts


@dataclass
class ChunkJob:
    """One chunk to plan and write (picklable: a process pool or Ray ships it).

    Attributes:
        index: chunk number (part file name).
        scenario: the scenario.
        population: the chunk's users (:meth:`Population.slice`).
        out: the directory parts go to.
        fmt: the part format.
        analytics: the dataset's analytics output (None: none).
    """

    index: int
    scenario: Scenario
    population: Population
    out: Path
    fmt: str
    analytics: AnalyticsJob | None = None


@dataclass
class ChunkResult:
    """What a chunk wrote: its files (relative to the dataset) and its activity.

    ``activity`` is int64 ``(days, 3)``: users with events, sessions, events.
    """

    index: int
    files: list[str]
    activity: np.ndarray[Any, np.dtype[np.int64]]

    @property
    def events(self) -> int:
        """Events the chunk wrote."""
        return int(self.activity[:, 2].sum())


def run_chunk(job: ChunkJob, report: Callable[[int], None] | None = None) -> ChunkResult:
    """Plan and write one chunk, day by day, in this process.

    Args:
        job: the chunk.
        report: called with each day's event count.

    Raises:
        OSError: a part cannot be written.
    """
    return drive(plan_chunk(job), report)


def plan_chunk(job: ChunkJob) -> Generator[int, None, ChunkResult]:
    """Plan and write one chunk, day by day (the shard function of both backends).

    Yields:
        Each planned day's event count, once its parts are written.

    Returns:
        The chunk's files and activity.

    Raises:
        OSError: a part cannot be written.
    """
    model = PlanModel(job.scenario)
    pop = job.population
    vocab = Vocab(job.scenario, model.names, pop.calendar.zones)
    planner = ChunkPlanner(model, pop)
    ext = EXTENSIONS[job.fmt]
    days = pop.codes.shape[1]
    activity = np.zeros((days, 3), np.int64)
    files: list[str] = []
    extra = (
        None
        if job.analytics is None
        else ChunkAnalytics(job.analytics, job.scenario, pop, vocab, job.index)
    )
    for day in range(days):
        plan = planner.plan_day(day)
        if extra is not None:
            extra.day(plan)
        stamp = pop.calendar.date(day).isoformat()
        for table, rows in (
            ("events", events_table(plan, pop, vocab)),
            ("sessions", sessions_table(plan, pop, vocab)),
        ):
            rel = f"{table}/date={stamp}/part-{job.index:05d}{ext}"
            (job.out / rel).parent.mkdir(parents=True, exist_ok=True)
            write_table(rows, job.out / rel, job.fmt)
            files.append(rel)
        activity[day] = (len(np.unique(plan.s_user)), len(plan.session_id), plan.events)
        yield plan.events
    if extra is not None:
        files += extra.close()
    return ChunkResult(job.index, files, activity)


@dataclass
class GenerateSummary:
    """The outcome of :func:`generate`.

    Attributes:
        complete: every chunk and table is written.
        users, events, sessions: totals over the dataset (events/sessions: chunks done;
            ``events`` is the ``events`` table's rows, not the analytics lines).
        wall_s: wall seconds of this invocation; ``planned_s`` of which the population pass.
        bytes_by_table: bytes on disk per dataset table (``events``, ``sessions``,
            ``users``, ``lifecycle_changes``, ``daily_metrics``).
        dataset_bytes: bytes on disk of the dataset's tables, each file once (a
            DuckDB dataset is one file holding every table).
        bytes_by_analytics: bytes on disk per folder of ``--analytics VENDOR-file``
            batch files (``analytics-posthog``, ...); not part of the dataset's bytes.
        chunks_done, chunks: complete chunks, and all.
    """

    complete: bool
    users: int
    events: int
    sessions: int
    wall_s: float
    planned_s: float
    chunks_done: int
    chunks: int
    bytes_by_table: dict[str, int] = field(default_factory=dict)
    dataset_bytes: int = 0
    bytes_by_analytics: dict[str, int] = field(default_factory=dict)


def _fingerprint(scenario: Scenario, options: GenerateOptions) -> dict[str, Any]:
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, default=str)
    return {
        "scenario_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "users": options.users,
        "days": options.days,
        "start": options.start.isoformat(),
        "seed": options.seed,
        "format": options.fmt,
        "chunk_users": options.chunk_size(),
        "analytics": None if options.analytics is None else options.analytics.kind,
    }


def _write_manifest(out: Path, data: dict[str, Any]) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, out / MANIFEST)


def _open_manifest(scenario: Scenario, options: GenerateOptions) -> dict[str, Any]:
    """The manifest to continue (resume) or a new one; refuse a used directory or a mismatch."""
    out = options.out
    wanted = _fingerprint(scenario, options)
    path = out / MANIFEST
    if options.resume:
        if not path.is_file():
            raise GenerateError(f"nothing to resume in {out}: no {MANIFEST}")
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise GenerateError(f"{path} is not a generate manifest: {exc}") from None
        if manifest.get("run") != wanted:
            diff = sorted(k for k in wanted if manifest.get("run", {}).get(k) != wanted[k])
            raise GenerateError(f"cannot resume {out}: {', '.join(diff) or 'run'} differ(s)")
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GenerateError(
            f"{out} exists and is not an empty directory (use --resume to continue)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return {"version": 1, "run": wanted, "complete": False, "chunks": {}, "tables": {}}


Progress = Callable[[int, int], None]
"""Called with (events written, chunk-days done) as a run advances."""


class _Run:
    """One invocation of :func:`generate`: its manifest, population and chunks."""

    def __init__(
        self, scenario: Scenario, options: GenerateOptions, progress: Progress | None
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.progress = progress or (lambda _events, _steps: None)
        self.out = options.out
        self.manifest = _open_manifest(scenario, options)
        self.parts = self.out / _PARTS if options.fmt == "duckdb" else self.out
        t0 = time.perf_counter()
        self.pop = plan_population(
            scenario, options.users, options.days, options.start, options.seed
        )
        self.planned_s = time.perf_counter() - t0
        size = options.chunk_size()
        self.bounds = [(lo, min(lo + size, self.pop.size)) for lo in range(0, self.pop.size, size)]
        self.manifest["chunks_total"] = len(self.bounds)
        _write_manifest(self.out, self.manifest)

    def jobs(self) -> list[ChunkJob]:
        """The chunks not complete yet."""
        done = self.manifest["chunks"]
        options = self.options
        extra = None if options.analytics is None else AnalyticsJob(options.analytics, self.out)
        return [
            ChunkJob(i, self.scenario, self.pop.slice(lo, hi), self.parts, options.fmt, extra)
            for i, (lo, hi) in enumerate(self.bounds)
            if str(i) not in done
        ]

    def record(self, result: ChunkResult) -> None:
        """Note a complete chunk in the manifest (written at once)."""
        self.manifest["chunks"][str(result.index)] = {
            "files": result.files,
            "activity": result.activity.tolist(),
        }
        _write_manifest(self.out, self.manifest)

    def run_here(self, jobs: list[ChunkJob]) -> None:
        """Plan the chunks in this process."""
        for job in jobs:
            self.record(run_chunk(job, lambda events: self.progress(events, 1)))

    def run(self, jobs: list[ChunkJob], runner: str) -> None:
        """Plan the chunks ``here``, on ``processes`` or on ``ray``."""
        if runner == "here" or (len(jobs) < 2 and not self.options.ray_address):
            self.run_here(jobs)
            return

        def step(events: int) -> None:
            self.progress(events, 1)

        if runner == "processes":
            run_pool(plan_chunk, jobs, self.options.workers, self.record, step)
        else:
            address = self.options.ray_address
            run_ray(plan_chunk, jobs, self.options.workers, self.record, step, address)

    def finish(self) -> None:
        """Write the users, lifecycle changes and daily metrics; mark the dataset complete."""
        pop, out, fmt = self.pop, self.out, self.options.fmt
        vocab = Vocab(self.scenario, PlanModel(self.scenario).names, pop.calendar.zones)
        activity = np.zeros((self.options.days, 3), np.int64)
        for chunk in self.manifest["chunks"].values():
            activity += np.asarray(chunk["activity"], np.int64)
        ext = EXTENSIONS[fmt]
        tables = {
            "users": users_table(pop, self.scenario, vocab),
            "lifecycle_changes": lifecycle_table(pop.changes, pop, vocab),
            "daily_metrics": daily_metrics_table(pop, self.options.start, activity),
        }
        for name, table in tables.items():
            write_table(table, self.parts / f"{name}{ext}", fmt)
        files = {
            name: sorted(
                f
                for c in self.manifest["chunks"].values()
                for f in c["files"]
                if f.startswith(name + "/")
            )
            for name in ("events", "sessions")
        }
        files.update({name: [f"{name}{ext}"] for name in tables})
        if fmt == "duckdb":
            load_duckdb(out, {k: [self.parts / f for f in v] for k, v in files.items()})
            shutil.rmtree(self.parts)
            files = {k: ["dataset.duckdb"] for k in files}
        files.update(analytics_files(self.options.analytics, self.manifest["chunks"].values()))
        self.manifest["tables"] = files
        self.manifest["partitions"] = [
            pop.calendar.date(d).isoformat() for d in range(self.options.days)
        ]
        self.manifest["complete"] = True
        _write_manifest(out, self.manifest)

    def summary(self, wall_s: float) -> GenerateSummary:
        """Totals of what is written so far."""
        chunks = self.manifest["chunks"].values()
        act = [np.asarray(c["activity"], np.int64) for c in chunks]
        tables: dict[str, list[str]] = self.manifest.get("tables", {})
        vendor = self.options.analytics
        batch = set(analytics_dirs(vendor.vendor)) if vendor and not vendor.live else set()
        sizes = {name: self._bytes(files) for name, files in tables.items()}
        return GenerateSummary(
            complete=bool(self.manifest["complete"]),
            users=self.pop.size,
            events=int(sum(a[:, 2].sum() for a in act)),
            sessions=int(sum(a[:, 1].sum() for a in act)),
            wall_s=wall_s,
            planned_s=self.planned_s,
            chunks_done=len(self.manifest["chunks"]),
            chunks=len(self.bounds),
            bytes_by_table={k: v for k, v in sizes.items() if k not in batch},
            dataset_bytes=self._bytes(
                {f for name, files in tables.items() if name not in batch for f in files}
            ),
            bytes_by_analytics={k: v for k, v in sizes.items() if k in batch},
        )

    def _bytes(self, files: Iterable[str]) -> int:
        """Bytes on disk of dataset files (relative names; missing ones count 0)."""
        paths = (self.out / f for f in files)
        return sum(p.stat().st_size for p in paths if p.exists())


def generate(
    scenario: Scenario,
    options: GenerateOptions,
    progress: Progress | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> GenerateSummary:
    """Generate (or resume) a dataset.

    Args:
        scenario: the validated scenario.
        options: what to generate.
        progress: told (events, chunk-days) as chunks advance.
        on_plan: told (users planned, chunk-days to do) once the population is planned.

    Returns:
        The summary (``complete`` is False only if a chunk failed to be recorded).

    Raises:
        GenerateError: bad options, a used output directory, a manifest that does
            not match, Ray needed but not installed (exit 2).
        OSError: the output cannot be written (exit 1).
        ShardError: a worker process died, or a Ray cluster cannot be started or
            joined (exit 1).
        KeyboardInterrupt: interrupted; complete chunks and the manifest are kept.
    """
    options.check()
    runner = options.runner()
    if options.analytics is not None:
        try:
            check_mapping(scenario)
        except ScenarioError as exc:
            raise GenerateError(str(exc)) from None
    t0 = time.perf_counter()
    run = _Run(scenario, options, progress)
    jobs = run.jobs()
    if on_plan is not None:
        on_plan(run.pop.size, len(jobs) * options.days)
    run.run(jobs, runner)
    run.finish()
    return run.summary(time.perf_counter() - t0)


__all__ += ["Progress", "part_format"]
