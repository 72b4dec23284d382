"""``sim-engine generate``: a dataset of months of product data, planned in bulk.

Exit codes: 0 complete; 1 runtime failure (output not writable, disk full, a
worker failed, a Ray cluster that cannot be started or joined); 2 bad input
(option, scenario, a used or mismatched output directory, ``--backend ray`` or
``--ray-address`` without Ray installed); 130 interrupted (complete chunks and a
manifest saying the dataset is incomplete are kept: run again with ``--resume``).
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sim_engine.cli.analytics import analytics_choice, analytics_options_or_exit
from sim_engine.cli.common import _fail, _load_with_env, cli

if TYPE_CHECKING:  # numpy and pyarrow load when the command runs, not with every command
    from sim_engine.runs.generate import GenerateSummary

__all__ = ["generate_command"]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"--start must be a date like 2026-01-01, got {value!r}", 2)


class _Bar:
    """A rich progress bar of chunk-days with events/s and the ETA (quiet off a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.events = 0
        self.t0 = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def plan(self, users: int, steps: int) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]generating[/] {task.fields[users]:,} users"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[events]:,} events"),
            TextColumn("{task.fields[rate]:,.0f} events/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self._task = self._progress.add_task(
            "gen", total=max(steps, 1), users=users, events=0, rate=0.0
        )
        self._progress.start()

    def advance(self, events: int, steps: int) -> None:
        self.events += events
        if self._progress is not None:
            rate = self.events / max(time.perf_counter() - self.t0, 1e-9)
            self._progress.update(self._task, advance=steps, events=self.events, rate=rate)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _summary(summary: GenerateSummary, out: Path, fmt: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dataset {out} ({fmt})", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rate = summary.events / summary.wall_s if summary.wall_s > 0 else 0.0
    rows = [
        ("users", f"{summary.users:,}"),
        ("events", f"{summary.events:,}"),
        ("sessions", f"{summary.sessions:,}"),
        ("wall time", f"{summary.wall_s:,.1f} s (population {summary.planned_s:.1f} s)"),
        ("events/s", f"{rate:,.0f}"),
    ]
    for name, size in summary.bytes_by_table.items():
        rows.append((f"{name} on disk", f"{size / 1e6:,.1f} MB"))
    if summary.events:
        per_event = summary.dataset_bytes / summary.events
        rows.append(("bytes/event (dataset tables)", f"{per_event:.1f}"))
    for name, size in summary.bytes_by_analytics.items():  # batch files, not the dataset
        rows.append((f"{name} batch files", f"{size / 1e6:,.1f} MB"))
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


@cli.command("generate")
@click.option("--scenario", "scenario_path", help="Scenario YAML (default: the built-in one).")
@click.option("--users", type=int, required=True, help="Initial users (after founders).")
@click.option("--days", type=int, required=True, help="Local dates to plan.")
@click.option("--start", "start_text", required=True, help="First local date (YYYY-MM-DD).")
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's).")
@click.option("--out", "out", required=True, help="Dataset directory (new or empty).")
@click.option(
    "--format", "fmt", default="parquet", show_default=True, help="parquet|duckdb|csv|jsonl"
)
@click.option(
    "--workers", type=int, default=1, show_default=True, help="Processes (Ray CPUs) planning."
)
@click.option("--chunk-users", type=int, default=None, help="Users per chunk.")
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    help="What runs chunks: ray|processes|auto (processes; Ray with --ray-address).",
)
@click.option("--ray-address", default=None, help="Join a running Ray cluster (HOST:PORT).")
@click.option("--resume", is_flag=True, help="Continue an interrupted dataset in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@analytics_choice
def generate_command(
    scenario_path: str | None,
    users: int,
    days: int,
    start_text: str,
    seed: int | None,
    out: str,
    fmt: str,
    workers: int,
    chunk_users: int | None,
    backend: str,
    ray_address: str | None,
    resume: bool,
    quiet: bool,
    analytics: str | None,
    analytics_host: str | None,
) -> None:
    """Generate a dataset: events, sessions, users, lifecycle changes, daily metrics."""
    from sim_engine.runs.analytics import AnalyticsSetupError
    from sim_engine.runs.generate import GenerateError, GenerateOptions, ShardError, generate

    scenario = _load_with_env(scenario_path)
    options = GenerateOptions(
        users=users,
        days=days,
        start=_date(start_text),
        seed=scenario.seed if seed is None else seed,
        out=Path(out),
        fmt=fmt,
        workers=workers,
        chunk_users=chunk_users,
        resume=resume,
        backend=backend,
        ray_address=ray_address,
        analytics=analytics_options_or_exit(analytics, analytics_host, scenario),
    )
    bar = _Bar(not quiet and sys.stderr.isatty())
    try:
        summary = generate(scenario, options, bar.advance, bar.plan)
    except (GenerateError, AnalyticsSetupError) as exc:
        bar.stop()
        _fail(str(exc), 2)
    except OSError as exc:
        bar.stop()
        _fail(f"cannot write the dataset to {out}: {exc.strerror or exc}", 1)
    except ShardError as exc:
        bar.stop()
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        bar.stop()
        _fail(f"interrupted: complete chunks are kept in {out}; continue with --resume", 130)
    bar.stop()
    if not quiet:
        _summary(summary, Path(out), fmt)
