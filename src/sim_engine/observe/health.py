"""Health endpoints beside the Prometheus metrics: ``/healthz`` and ``/readyz`` (issue 15).

The exporter's HTTP server (a thread, so that scrapes are answered even while the
event loop is busy) serves three paths:

- ``/metrics`` (and any other path, as ``prometheus_client`` does): the metrics;
- ``/healthz``: 200 ``ok`` while the run's event loop is alive -- it refreshed the
  gauges within the last ``stale_s`` wall seconds -- else 503 naming how long ago
  (a hung loop: a container orchestrator restarts the process);
- ``/readyz``: 200 with the run's state (``running`` or ``paused``) once the
  simulation has started and until it stops, else 503 (setting up, stopping).

The server is ``wsgiref``'s, threaded, as ``prometheus_client.start_http_server``
builds it, with the WSGI app of :func:`health_app` in front of the metrics app.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["HealthState", "health_app", "serve_wsgi"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HealthState:
    """What ``/healthz`` and ``/readyz`` answer from, written by the event loop.

    Args:
        stale_s: wall seconds without a :meth:`beat` after which the run is unhealthy.
        clock: wall clock (``time.monotonic``; injectable for tests).
    """

    def __init__(self, stale_s: float, clock: Callable[[], float]) -> None:
        self.stale_s = stale_s
        self._clock = clock
        self._beat = clock()
        self.state = "starting"  # the run's state, or "starting" / "stopping"

    def beat(self, state: str) -> None:
        """The loop is alive and the run is in ``state`` (called from the event loop)."""
        self._beat = self._clock()
        self.state = state

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(200, {...})`` while beats are recent, else ``(503, {...})``."""
        age = self._clock() - self._beat
        if age > self.stale_s:
            return 503, {"status": "stale", "seconds_since_refresh": round(age, 1)}
        return 200, {"status": "ok", "seconds_since_refresh": round(age, 1)}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """``(200, {...})`` while the run is running or paused, else ``(503, {...})``."""
        code = 200 if self.state in ("running", "paused") else 503
        return code, {"ready": code == 200, "state": self.state}


def health_app(state: HealthState, metrics: WsgiApp) -> WsgiApp:
    """A WSGI app answering ``/healthz`` and ``/readyz`` from ``state``, else ``metrics``."""
    routes = {"/healthz": state.health, "/readyz": state.readiness}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = routes.get(environ.get("PATH_INFO", ""))
        if answer is None:
            return metrics(environ, start_response)
        code, body = answer()
        text = json.dumps(body).encode()
        status = "200 OK" if code == 200 else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(text)))])  # fmt: skip
        return [text]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def serve_wsgi(app: WsgiApp, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``app`` on ``host:port`` from a daemon thread; return the server and thread.

    Raises:
        OSError: the address cannot be bound.
    """
    server_class: type[_Server] = _Server
    if ":" in host:  # an IPv6 address

        class _Server6(_Server):
            address_family = socket.AF_INET6

        server_class = _Server6
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="sim-engine-metrics", daemon=True)
    thread.start()
    return server, thread
