"""Several processes' Prometheus metrics as one: ``load --processes N --metrics-port PORT``.

Each ``load`` worker process keeps a :class:`~sim_engine.observe.prometheus.PrometheusExporter`
that serves nothing (``serve=False``): its counters and histograms count the worker's
records, as the one-process exporter does, and its gauges are refreshed from the
worker's simulation. With each report to its parent (every ``progress_every_s``,
and once at its end) a worker sends :func:`snapshot` of that registry; the parent's
:class:`MergedMetrics` keeps the latest snapshot of each worker and serves on
``127.0.0.1:PORT`` the same metric names and labels, ``/healthz`` and ``/readyz`` as
the one-process exporter, each series merged over the workers (:func:`merge`):

* counters and histograms (``_total``, ``_bucket``, ``_count``, ``_sum``) are summed:
  they equal the sum over the workers and never go down (a worker's snapshots only
  grow, and reach the parent in order); ``_created`` is the earliest;
* gauges are summed (users, sessions, in-flight requests), except those named in
  :data:`GAUGE_MERGE` (the simulated clock, speed, paused, breakers, run info).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Metric

from sim_engine.observe.health import HealthState
from sim_engine.observe.prometheus import serve_metrics

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["GAUGE_MERGE", "Family", "MergedMetrics", "merge", "snapshot"]

Labels = tuple[tuple[str, str], ...]
Family = tuple[str, str, str, tuple[tuple[str, Labels, float], ...]]
"""One metric family, picklable: name, help, type, samples ``(sample name, labels, value)``."""

GAUGE_MERGE: dict[str, Callable[[float, float], float]] = {
    "sim_engine_simulated_time_seconds": max,
    "sim_engine_simulated_start_time_seconds": min,
    "sim_engine_simulated_end_time_seconds": max,
    "sim_engine_speed_ratio": max,
    "sim_engine_paused": max,
    "sim_engine_circuit_breaker_state": max,  # the worst state any worker's breaker is in
    "sim_engine_run_info": max,
}
"""Gauges merged by ``max`` or ``min`` of the workers' values (the others are summed)."""


def _sum(a: float, b: float) -> float:
    return a + b


def _combine(family: str, kind: str, sample: str) -> Callable[[float, float], float]:
    """How two processes' values of a sample of ``family`` (of type ``kind``) merge."""
    if sample.endswith("_created"):  # a series' creation time: the first process's
        return min
    if kind == "gauge":
        return GAUGE_MERGE.get(family, _sum)
    return _sum  # counters, histograms' buckets, counts and sums


def snapshot(registry: CollectorRegistry) -> list[Family]:
    """Every family of ``registry`` with its samples now (picklable, for :func:`merge`)."""
    return [
        (m.name, m.documentation, m.type,
         tuple((s.name, tuple(s.labels.items()), float(s.value)) for s in m.samples))
        for m in registry.collect()
    ]  # fmt: skip


def merge(snapshots: Iterable[list[Family]]) -> list[Metric]:
    """The families of several processes' snapshots, each series merged (module docstring)."""
    families: dict[str, tuple[str, str, dict[tuple[str, Labels], float]]] = {}
    for families_of_one in snapshots:
        for name, documentation, kind, samples in families_of_one:
            values = families.setdefault(name, (documentation, kind, {}))[2]
            for sample, labels, value in samples:
                key = (sample, labels)
                old = values.get(key)
                values[key] = value if old is None else _combine(name, kind, sample)(old, value)
    merged = []
    for name, (documentation, kind, values) in families.items():
        metric = Metric(name, documentation, kind)
        for (sample, labels), value in values.items():
            metric.add_sample(sample, dict(labels), value)
        merged.append(metric)
    return merged


class MergedMetrics:
    """Serves the merged metrics of several processes (a ``prometheus_client`` collector).

    Args:
        port: TCP port to listen on (0 picks a free one; read :attr:`port` after
            :meth:`start`).
        host: address to bind (loopback by default).
        stale_s: wall seconds without a :meth:`beat` after which ``/healthz`` answers 503.

    Attributes:
        registry: the registry serving this collector (``generate_latest(registry)``
            renders it).
        health: what ``/healthz`` and ``/readyz`` answer from.
        host, port: the bound address (the actual port once started).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", stale_s: float = 10.0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0..65535, not {port}")
        self.host = host
        self.port = port
        self.health = HealthState(stale_s, time.monotonic)
        self._latest: dict[int, list[Family]] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.registry = CollectorRegistry()
        self.registry.register(self)

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` (the actual port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Open the HTTP server.

        Raises:
            MetricsPortError: the address cannot be bound (port in use, no permission).
        """
        self._server, self._thread = serve_metrics(self.registry, self.health, self.host, self.port)
        self.port = self._server.server_port

    def update(self, source: int, families: list[Family]) -> None:
        """Keep ``families`` (a :func:`snapshot`) as process ``source``'s latest figures."""
        with self._lock:
            self._latest[source] = families
        self.health.beat("running")

    def beat(self) -> None:
        """The parent is alive (``/healthz``); ``/readyz`` is ready once a process reported."""
        self.health.beat("running" if self._latest else "starting")

    def collect(self) -> list[Metric]:
        """The merged families (called by the registry for each scrape)."""
        with self._lock:
            latest = list(self._latest.values())
        return merge(latest)

    def stop(self) -> None:
        """Close the HTTP server (the port is free on return)."""
        self.health.state = "stopping"
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
