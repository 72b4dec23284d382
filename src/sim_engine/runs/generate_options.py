"""What ``sim-engine generate`` is asked for: :class:`GenerateOptions`, their checks, and
which backend runs the chunks (re-exported by :mod:`sim_engine.runs.generate`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sim_engine.datasets.writers import FORMATS
from sim_engine.model.bounds import MAX_USERS
from sim_engine.runs.analytics import AnalyticsOptions
from sim_engine.runs.shards import RAY_MISSING, import_ray

__all__ = ["BACKENDS", "MAX_GENERATE_DAYS", "GenerateError", "GenerateOptions"]

MAX_GENERATE_DAYS = 3650
"""Longest dataset: ten years of local dates."""
BACKENDS = ("auto", "ray", "processes")
"""``--backend``: ``auto`` is the process pool on this machine, Ray when joining a
cluster (``ray_address``). A local Ray cluster costs about 700 MB more resident
memory than the pool for the same dataset (docs/generate.md#sharding-processes-or-ray),
so on one machine Ray is used only when asked for by name."""


class GenerateError(ValueError):
    """Bad input to ``generate`` (one line naming what is wrong); the CLI exits 2."""


@dataclass(frozen=True)
class GenerateOptions:
    """What to generate.

    Attributes:
        users: initial users (after the scenario's founders), 1 to ``MAX_USERS``.
        days: local dates to plan, 1 to :data:`MAX_GENERATE_DAYS`.
        start: the first local date.
        seed: run seed (same seed, same dataset).
        out: the dataset directory (created; must be empty unless ``resume``).
        fmt: ``parquet``, ``duckdb``, ``csv`` or ``jsonl``.
        workers: processes planning chunks (1: in this process); with Ray, the
            CPUs of the local cluster it starts.
        chunk_users: users per chunk (None: about four chunks per worker, 1,000 to 50,000).
        resume: continue the interrupted dataset in ``out``.
        backend: one of :data:`BACKENDS`: what runs the chunks (``auto``: the
            process pool for more than one worker, Ray with a ``ray_address``).
        ray_address: ``HOST:PORT`` of a running Ray cluster to join (implies Ray).
        analytics: also write the vendor's batch files or send live (``--analytics``;
            :mod:`sim_engine.runs.generate_analytics`), None: no analytics events.
    """

    users: int
    days: int
    start: date
    seed: int
    out: Path
    fmt: str = "parquet"
    workers: int = 1
    chunk_users: int | None = None
    resume: bool = False
    backend: str = "auto"
    ray_address: str | None = None
    analytics: AnalyticsOptions | None = None

    def check(self) -> None:
        """Raise :class:`GenerateError` naming the first bad option."""
        if not 1 <= self.users <= MAX_USERS:
            raise GenerateError(f"--users must be from 1 to {MAX_USERS:,}, got {self.users}")
        if not 1 <= self.days <= MAX_GENERATE_DAYS:
            raise GenerateError(f"--days must be from 1 to {MAX_GENERATE_DAYS}, got {self.days}")
        if self.fmt not in FORMATS:
            raise GenerateError(f"unknown --format {self.fmt!r} (use {', '.join(FORMATS)})")
        if not 1 <= self.workers <= 256:
            raise GenerateError(f"--workers must be from 1 to 256, got {self.workers}")
        if self.chunk_users is not None and not 1 <= self.chunk_users <= MAX_USERS:
            raise GenerateError(f"--chunk-users must be from 1 to {MAX_USERS:,}")
        if self.start.year < 1970 or self.start.year >= 2200:
            raise GenerateError(f"--start must be from 1970 to 2199, got {self.start}")
        if self.backend not in BACKENDS:
            raise GenerateError(f"unknown --backend {self.backend!r} (use {', '.join(BACKENDS)})")
        if self.ray_address is not None:
            host, _, port = self.ray_address.rpartition(":")
            if not host or not port.isdigit():
                raise GenerateError(f"--ray-address must be HOST:PORT, got {self.ray_address!r}")
            if self.backend == "processes":
                raise GenerateError("--ray-address needs --backend ray (or auto)")

    def runner(self) -> str:
        """What runs the chunks: ``here`` (this process), ``processes`` or ``ray``.

        Ray runs them with ``backend`` ``ray`` or a ``ray_address``; otherwise more
        than one worker is the process pool (``auto`` included).

        Raises:
            GenerateError: Ray is needed but not installed.
        """
        wants_ray = self.backend == "ray" or self.ray_address is not None
        if not wants_ray:
            return "here" if self.workers == 1 else "processes"
        try:
            import_ray(self.ray_address is None)
        except ImportError:
            what = "--ray-address" if self.ray_address else "--backend ray"
            raise GenerateError(
                f"{what} needs Ray: {RAY_MISSING} (or use --backend processes)"
            ) from None
        return "ray"

    def chunk_size(self) -> int:
        """Users per chunk."""
        if self.chunk_users is not None:
            return self.chunk_users
        return min(50_000, max(1_000, -(-self.users // (4 * self.workers))))
