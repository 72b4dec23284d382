"""The Prometheus exporter add-on: ``sim-engine run --metrics-port PORT``.

Serves the Prometheus text format on ``http://127.0.0.1:PORT/metrics`` while a
run lasts. Two kinds of metrics (every one is listed in ``docs/prometheus.md``):

* counters and the latency histogram, updated as a :class:`~sim_engine.model.records.Sink`
  from the records the engine emits (inline, in the event loop);
* gauges read from the :class:`~sim_engine.engine.simulation.Simulation` (statistics,
  breakdown, run control, the target's circuit breakers) by an asyncio task
  every ``refresh_s`` wall seconds. The engine's state is only ever read from
  the event loop; the HTTP server thread only renders values already set.

Each exporter has its own :class:`~prometheus_client.CollectorRegistry` (never
the process-wide one), so several can live in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from sim_engine._version import __version__
from sim_engine.model.lifecycle import LifecycleState
from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, Sink, UserRecord
from sim_engine.observe.counts import user_counts
from sim_engine.observe.health import HealthState, health_app, serve_wsgi
from sim_engine.observe.page_metrics import PageMetrics

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from sim_engine.engine.simulation import Simulation

__all__ = [
    "BREAKER_STATES",
    "ERROR_CATEGORIES",
    "LATENCY_BUCKETS_S",
    "MetricsPortError",
    "PrometheusExporter",
    "breaker_states",
    "error_category",
    "serve_metrics",
]

_log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Upper bounds (wall seconds) of ``sim_engine_request_duration_seconds`` (plus ``+Inf``)."""

ERROR_CATEGORIES = ("timeout", "connection", "http_4xx", "http_5xx", "bad_answer", "skipped")
"""The values of ``sim_engine_errors_total{category}`` (all exposed from the start, at 0)."""

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""``sim_engine_circuit_breaker_state`` values by breaker state."""


class MetricsPortError(OSError):
    """The metrics server cannot listen on the requested address (port in use, no permission).

    ``str(exc)`` and ``exc.strerror`` are one line naming the address.
    """

    def __str__(self) -> str:
        return str(self.strerror)


def error_category(record: ActionRecord) -> str | None:
    """Return the error category of an action (None when it succeeded).

    ``skipped`` (not sent: circuit open, kill switch), ``timeout`` and
    ``connection`` (no response: status 0), ``http_4xx``, ``http_5xx``, and
    ``bad_answer`` (an unexpected 1xx-3xx status or a 2xx body the target could not
    read).
    """
    if record.ok:
        return None
    if record.skipped:
        return "skipped"
    status = record.status
    if status == 0:
        reason = (record.error or "").lower()
        return "timeout" if "timeout" in reason or "timed out" in reason else "connection"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return "bad_answer"


def serve_metrics(
    registry: CollectorRegistry, health: HealthState, host: str, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``http://host:port/metrics`` (and ``/healthz``, ``/readyz`` from
    ``health``) from a daemon thread; return the server (its ``server_port``) and thread.

    Raises:
        MetricsPortError: the address cannot be bound (port in use, no permission).
    """
    try:
        return serve_wsgi(health_app(health, make_wsgi_app(registry)), host, port)
    except OSError as exc:
        reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        raise MetricsPortError(
            exc.errno, f"cannot serve metrics on {host}:{port}: {reason}"
        ) from exc


def breaker_states(target: object) -> dict[str, str]:
    """Return ``{endpoint: "closed"|"half_open"|"open"}`` from a target's or its transport's
    ``statistics()["breakers"]`` (empty when neither has breakers).

    Read defensively: a missing or odd-shaped ``statistics`` is no breakers; a
    breaker given as a mapping is read from its ``state`` key.
    """
    for obj in (target, getattr(target, "transport", None)):
        read = getattr(obj, "statistics", None)
        if not callable(read):
            continue
        stats = read()
        breakers = stats.get("breakers") if isinstance(stats, Mapping) else None
        if not isinstance(breakers, Mapping):
            continue
        out: dict[str, str] = {}
        for endpoint, value in breakers.items():
            state = value.get("state") if isinstance(value, Mapping) else value
            if state is None:
                continue
            name = str(getattr(state, "value", state)).lower().replace("-", "_")
            if name in BREAKER_STATES:
                out[str(endpoint)] = name
        return out
    return {}


class PrometheusExporter:
    """Serves a run's metrics in the Prometheus text format (an add-on and a sink).

    Args:
        port: TCP port to listen on (0 picks a free one; read :attr:`port` after
            :meth:`start`).
        host: address to bind (loopback by default; the metrics are not meant to
            be public).
        refresh_s: wall seconds between two refreshes of the gauges.
        serve: open the HTTP server; False keeps the metrics in :attr:`registry` only
            (a ``load --processes`` worker: its parent serves them, merged).

    Raises:
        ValueError: ``port`` is outside 0..65535 or ``refresh_s`` is not positive.

    Attributes:
        registry: this exporter's own registry (``generate_latest(registry)``
            renders it).
        host: the bound address.
        port: the port asked for, then the port actually bound once started.
    """

    def __init__(
        self, port: int, host: str = "127.0.0.1", refresh_s: float = 1.0, serve: bool = True
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0..65535, not {port}")
        if not refresh_s > 0:
            raise ValueError("refresh_s must be positive")
        self.host = host
        self.port = port
        self.serve = serve
        self._refresh_s = refresh_s
        self._sim: Simulation | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._refresh_failed = False
        self.health = HealthState(max(10.0, 5 * refresh_s), time.monotonic)
        self._seen_states: dict[str, None] = {}  # ordered sets: series appear in a stable order
        self._seen_personas: dict[str, None] = {}
        self._seen_breakers: set[str] = set()
        self.registry = CollectorRegistry(auto_describe=True)
        self._define_record_metrics()
        self._define_event_metrics()
        self._define_run_gauges()
        self._define_control_gauges()
        self._pages = PageMetrics(self.registry)  # browser steps (docs/browser.md)
        # label children cached by label values: the sink path runs once per action
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._action_children: dict[str, tuple[Any, Any]] = {}

    def _define_record_metrics(self) -> None:
        """Metrics counted from action records: requests, durations, actions, errors."""
        registry = self.registry
        self._requests = Counter(
            "sim_engine_requests",
            "Requests sent to the target (skipped actions excluded), by action, "
            "endpoint (METHOD /path/{template}) and HTTP status (0: no response).",
            ["action", "endpoint", "status"],
            registry=registry,
        )
        self._duration = Histogram(
            "sim_engine_request_duration_seconds",
            "Wall seconds from sending a request to its full response, by action.",
            ["action"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self._actions = Counter(
            "sim_engine_actions",
            "Actions taken by simulated users (sent or skipped, ok or not), by action.",
            ["action"],
            registry=registry,
        )
        self._errors = Counter(
            "sim_engine_errors",
            "Actions that failed, by category: timeout, connection, http_4xx, http_5xx, "
            "bad_answer, skipped.",
            ["category"],
            registry=registry,
        )
        for category in ERROR_CATEGORIES:
            self._errors.labels(category)

    def _define_event_metrics(self) -> None:
        """Counters of 429 answers, retries, sign-ups, lifecycle changes and cleanups."""
        registry = self.registry
        self._rate_limited = Counter(
            "sim_engine_rate_limited",
            "Answers with HTTP 429 Too Many Requests.",
            registry=registry,
        )
        self._retries = Counter(
            "sim_engine_retries",
            "Retries the transport made before an action's final outcome.",
            registry=registry,
        )
        self._signups = Counter(
            "sim_engine_signups",
            "Users that signed up on the target.",
            registry=registry,
        )
        self._transitions = Counter(
            "sim_engine_lifecycle_transitions",
            "Changes of a user's lifecycle state (NEW, ACTIVE, CASUAL, DORMANT, CHURNED).",
            ["from", "to"],
            registry=registry,
        )
        self._cleanups = Counter(
            "sim_engine_churn_cleanups",
            "Churned users cleaned up: deleted from the target, or kept on it.",
            ["result"],
            registry=registry,
        )
        for result in ("deleted", "kept"):
            self._cleanups.labels(result)

    def _define_run_gauges(self) -> None:
        """Gauges read from the simulation: users, sessions, in-flight actions, times."""
        registry = self.registry
        self._users = Gauge(
            "sim_engine_users",
            "Users by lifecycle state (empty when the lifecycle is off).",
            ["lifecycle_state"],
            registry=registry,
        )
        self._users_by_persona = Gauge(
            "sim_engine_users_by_persona",
            "Users by persona.",
            ["persona"],
            registry=registry,
        )
        self._known_users = Gauge(  # not ``_total``: that suffix is for counters
            "sim_engine_known_users",
            "Users the engine knows (created and not forgotten, churned-but-kept included).",
            registry=registry,
        )
        self._joined_users = Gauge(
            "sim_engine_joined_users",
            "Users who signed up on the target so far (churned ones included).",
            registry=registry,
        )
        self._sessions = Gauge(
            "sim_engine_active_sessions",
            "Users in a session now (the 'active' users of ctl status and the summary).",
            registry=registry,
        )
        self._in_flight = Gauge(
            "sim_engine_in_flight_requests",
            "Actions awaiting an answer from the target.",
            registry=registry,
        )
        self._sim_time = Gauge(
            "sim_engine_simulated_time_seconds",
            "The simulated clock (simulated Unix epoch seconds).",
            registry=registry,
        )
        self._sim_start = Gauge(
            "sim_engine_simulated_start_time_seconds",
            "The run's simulated start (simulated Unix epoch seconds; kept across resumes).",
            registry=registry,
        )
        self._sim_end = Gauge(
            "sim_engine_simulated_end_time_seconds",
            "The run's simulated end (simulated Unix epoch seconds; +Inf when open-ended).",
            registry=registry,
        )

    def _define_control_gauges(self) -> None:
        """Gauges of run control and the target: speed, paused, circuit breakers, run info."""
        registry = self.registry
        self._speed = Gauge(
            "sim_engine_speed_ratio",
            "Simulated seconds per wall second as set (+Inf for --speed max).",
            registry=registry,
        )
        self._paused = Gauge(
            "sim_engine_paused",
            "1 while the run is paused, else 0.",
            registry=registry,
        )
        self._breakers = Gauge(
            "sim_engine_circuit_breaker_state",
            "Circuit breaker state by endpoint: 0 closed, 1 half-open, 2 open.",
            ["endpoint"],
            registry=registry,
        )
        self._info = Gauge(
            "sim_engine_run_info",
            "Always 1; labels describe the run.",
            ["version", "scenario"],
            registry=registry,
        )

    # -- Addon ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` (the actual port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def sinks(self) -> list[Sink]:
        """The exporter itself: it counts records."""
        return [self]

    async def start(self, sim: Simulation) -> None:
        """Take the first reading, open the HTTP server (with ``serve``) and start refreshing.

        Raises:
            MetricsPortError: the address cannot be bound (port in use, no permission).
        """
        self._sim = sim
        self._info.labels(__version__, sim.scenario.name).set(1)
        self._sim_start.set(sim.run_start_s)  # kept across resumes (observe/counts.py)
        self._sim_end.set(sim.end_s)
        if sim.scenario.lifecycle.enabled:
            self._seen_states.update(dict.fromkeys(state.value for state in LifecycleState))
        self._seen_personas.update(dict.fromkeys(p.name for p in sim.personas))
        self._safe_refresh()
        if self.serve:
            server, thread = serve_metrics(self.registry, self.health, self.host, self.port)
            self._server, self._thread = server, thread
            self.port = server.server_port
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        """Stop refreshing and close the HTTP server (the port is free on return)."""
        self.health.state = "stopping"
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)  # waits for serve_forever's poll
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # -- Sink -----------------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Count one record."""
        if isinstance(record, ActionRecord):
            self._on_action(record)
        elif isinstance(record, UserRecord):
            self._signups.inc()
        elif isinstance(record, LifecycleRecord):
            if record.change == "state":
                self._transitions.labels(record.old, record.new).inc()
            elif record.change == "cleanup" and record.new in ("DELETED", "KEPT"):
                self._cleanups.labels(record.new.lower()).inc()

    def close(self) -> None:
        """Nothing to flush (the server closes in :meth:`stop`)."""

    def _on_action(self, rec: ActionRecord) -> None:
        if rec.page is not None:
            self._pages.observe(rec.page, rec.ok)
        children = self._action_children.get(rec.action)
        if children is None:
            children = self._action_children[rec.action] = (
                self._actions.labels(rec.action),
                self._duration.labels(rec.action),
            )
        actions, duration = children
        actions.inc()
        if not rec.skipped:
            key = (rec.action, rec.endpoint or "", rec.status)
            requests = self._request_children.get(key)
            if requests is None:
                requests = self._request_children[key] = self._requests.labels(
                    key[0], key[1], str(key[2])
                )
            requests.inc()
            duration.observe(rec.latency_ms / 1000.0)
        if rec.status == 429:
            self._rate_limited.inc()
        if rec.retries:
            self._retries.inc(rec.retries)
        category = error_category(rec)
        if category is not None:
            self._errors.labels(category).inc()

    # -- gauges ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the simulation into the gauges now (call from the event loop only)."""
        sim = self._sim
        if sim is None:
            return
        self.health.beat("stopping" if sim.stopping else sim.state)
        stats = sim.statistics()
        breakdown = sim.breakdown()
        counts = user_counts(stats, breakdown)
        self._sim_time.set(stats.sim_now)
        self._known_users.set(counts.known)
        self._joined_users.set(counts.joined)
        self._sessions.set(counts.active)
        self._in_flight.set(stats.in_flight)
        speed = sim.speed
        self._speed.set(math.inf if speed is None else speed)
        self._paused.set(1 if sim.paused else 0)
        _set_all(self._users, self._seen_states, breakdown.get("lifecycle", {}))
        _set_all(self._users_by_persona, self._seen_personas, breakdown.get("persona", {}))
        states = breaker_states(sim.target)
        for endpoint in self._seen_breakers - states.keys():
            self._breakers.remove(endpoint)
        self._seen_breakers = set(states)
        for endpoint, state in states.items():
            self._breakers.labels(endpoint).set(BREAKER_STATES[state])

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception:  # a broken target statistics() must not end the run
            if not self._refresh_failed:
                _log.exception("prometheus exporter: refreshing the gauges failed")
            self._refresh_failed = True

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            self._safe_refresh()


def _set_all(gauge: Gauge, seen: dict[str, None], counts: Mapping[str, int]) -> None:
    """Set ``gauge{label}`` for every label in ``counts`` and 0 for the ones seen before."""
    seen.update(dict.fromkeys(counts))
    for label in seen:
        gauge.labels(label).set(counts.get(label, 0))
