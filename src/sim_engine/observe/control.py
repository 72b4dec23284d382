"""Run control from another shell: ``sim-engine ctl DIR pause|resume|stop|status|speed N``.

:class:`ControlServer` is an add-on: while a run lasts it serves a tiny JSON API
on ``127.0.0.1`` (a free port) and writes ``DIR/control.json`` -- ``{"url",
"token", "pid"}``, readable by its owner only (mode 0600). Every request must
carry ``Authorization: Bearer <token>``; anything else gets 401.

=============  ==================================================================
request        effect (every answer is the run's status, as ``GET /status``)
=============  ==================================================================
GET /status    ``{"sim_time", "sim_ts", "speed", "state", "users", ...}``
POST /pause    no more actions; the simulated clock stands still
POST /resume   time runs and actions flow again
POST /stop     end the run gracefully (in-flight actions finish, outputs are written)
POST /speed    body ``{"speed": N}`` or ``{"speed": "max"}``; 400 on a bad value
GET /ui/       the run's web page (:mod:`sim_engine.observe.webpage`); ``?token=T``
               stands for the header on GETs under ``/ui/`` (a browser's address bar);
               ``/ui/plotly.min.js`` (the public library) needs no token
=============  ==================================================================

:func:`send_command` is the client the CLI uses.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import secrets
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from sim_engine.engine.clock import parse_speed
from sim_engine.model.records import Sink
from sim_engine.observe.counts import simulated_span, user_counts
from sim_engine.observe.protocols import RunControl, RunStatus
from sim_engine.observe.webpage import PUBLIC_ASSET, WebPage

__all__ = [
    "COMMANDS",
    "CONTROL_FILE",
    "ControlError",
    "ControlServer",
    "format_speed",
    "format_status",
    "page_url",
    "run_status",
    "send_command",
]

CONTROL_FILE = "control.json"
"""The control file's name in the run directory."""

COMMANDS = ("status", "pause", "resume", "stop", "speed")
"""What :func:`send_command` (and ``sim-engine ctl``) accepts."""

_MAX_BODY = 64 * 1024
_SHUTDOWN_S = 2.0  # wall seconds the server waits for a request still being answered

_log = logging.getLogger(__name__)


class ControlError(Exception):
    """The run cannot be reached or refused the request; ``str(exc)`` is one line."""


def _iso(sim_ts: float) -> str | None:
    if not math.isfinite(sim_ts):
        return None
    return datetime.fromtimestamp(sim_ts, timezone.utc).isoformat(timespec="seconds")


def run_status(sim: RunStatus) -> dict[str, Any]:
    """Return a run's status: simulated time (ISO UTC and epoch seconds), speed
    (a number or ``"max"``), state (``running``, ``paused``, ``stopping``), counters,
    and the simulated start and end (``end`` is None for an open-ended run)."""
    stats = sim.statistics()
    speed = sim.speed
    state = sim.state
    counts = user_counts(stats, sim.breakdown())
    return {
        "sim_time": _iso(stats.sim_now),
        "sim_ts": stats.sim_now,
        "speed": "max" if speed is None else speed,
        "state": state,
        "users": counts.known,  # the name before the three counts; kept for scripts
        "signed_up": counts.joined,
        **counts.as_dict(),
        "simulated_seconds": simulated_span(stats.sim_now, sim.run_start_s),
        "actions": stats.actions,
        "failed": stats.failed,
        "in_flight": stats.in_flight,
        "start": _iso(sim.run_start_s),
        "end": _iso(sim.end_s),
    }


def format_speed(speed: object) -> str:
    """Return ``3600x``, ``0.5x`` or ``max``."""
    if isinstance(speed, (int, float)) and not isinstance(speed, bool):
        return f"{int(speed)}x" if float(speed).is_integer() else f"{speed:g}x"
    return str(speed)


def format_status(status: dict[str, Any]) -> str:
    """Return a status as one line.

    For example ``2026-03-02T14:05:00+00:00  speed 3600x  running  users 120 known,
    100 joined, 7 active  actions 5230`` (the words of :mod:`sim_engine.observe.counts`).
    """
    return (
        f"{status.get('sim_time')}  speed {format_speed(status.get('speed'))}  "
        f"{status.get('state')}  users {status.get('known', status.get('users'))} known, "
        f"{status.get('joined', status.get('signed_up'))} joined, {status.get('active', 0)} "
        f"active  actions {status.get('actions')}"
    )


class ControlServer:
    """The control endpoint add-on (see the module docstring).

    Args:
        run_dir: the run directory, where ``control.json`` is written.
        host: the address to bind (loopback: the endpoint is for this machine only).
        port: the port to bind (0: a free one, written to ``control.json``).
        page: the run's web page, served under ``/ui/`` (None: no page).

    Attributes:
        url: ``http://127.0.0.1:PORT`` once started (None before).
        path: the control file.
    """

    def __init__(
        self,
        run_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        page: WebPage | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self._port = port
        self._page = page
        self.path = self.run_dir / CONTROL_FILE
        self.url: str | None = None
        self._host = host
        self._token = secrets.token_urlsafe(32)
        self._sim: RunControl | None = None
        self._runner: web.AppRunner | None = None

    def sinks(self) -> list[Sink]:
        """The web page's counters (the endpoint itself reads the simulation)."""
        return [] if self._page is None else [self._page]

    async def start(self, sim: RunControl) -> None:
        """Listen on a free loopback port and write ``control.json`` (mode 0600).

        Raises:
            OSError: the socket cannot be opened or the file written.
        """
        self._sim = sim
        app = web.Application(middlewares=[self._authorize], client_max_size=_MAX_BODY)
        app.router.add_get("/status", self._status)
        app.router.add_post("/pause", self._pause)
        app.router.add_post("/resume", self._resume)
        app.router.add_post("/stop", self._stop)
        app.router.add_post("/speed", self._speed)
        if self._page is not None:
            await self._page.start(sim)
            self._page.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            self._write_file()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Close the server and remove ``control.json`` (if it is still this run's)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            if json.loads(self.path.read_text("utf-8")).get("token") == self._token:
                self.path.unlink()

    def _write_file(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        content = json.dumps({"url": self.url, "token": self._token, "pid": os.getpid()})
        tmp = self.run_dir / f".{CONTROL_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content + "\n")
        os.chmod(tmp, 0o600)  # the file may have existed with a wider mode
        os.replace(tmp, self.path)

    # -- handlers -------------------------------------------------------------------------

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Read the (small) body first: one left unread makes the server linger on
        # the connection at shutdown, holding up the end of the run.
        await request.read()
        if request.path == PUBLIC_ASSET:  # plotly.js itself: public, and a <script> sends no header
            response: web.StreamResponse = await handler(request)
            return response
        given = request.headers.get("Authorization", "")
        if not given and request.method == "GET" and request.path.startswith("/ui"):
            given = "Bearer " + request.query.get("token", "")  # a browser's address bar
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token.encode()
        ):
            _log.warning(
                "control: refused a request without the run's token",
                extra={"path": request.path},
            )
            return web.json_response({"error": "unauthorized"}, status=401)
        answer: web.StreamResponse = await handler(request)
        return answer

    def _answer(self) -> web.Response:
        assert self._sim is not None
        return web.json_response(run_status(self._sim))

    def _refuse_if_stopping(self, command: str) -> web.Response | None:
        assert self._sim is not None
        if self._sim.stopping:
            return web.json_response(
                {"error": f"cannot {command}: the run is stopping"}, status=409
            )
        _log.info(f"control: {command}", extra={"command": command})
        return None

    async def _status(self, _request: web.Request) -> web.Response:
        return self._answer()

    async def _pause(self, _request: web.Request) -> web.Response:
        assert self._sim is not None
        refused = self._refuse_if_stopping("pause")
        if refused is not None:
            return refused
        self._sim.pause()
        return self._answer()

    async def _resume(self, _request: web.Request) -> web.Response:
        assert self._sim is not None
        refused = self._refuse_if_stopping("resume")
        if refused is not None:
            return refused
        self._sim.resume()
        return self._answer()

    async def _stop(self, _request: web.Request) -> web.Response:
        assert self._sim is not None
        if not self._sim.stopping:
            _log.info("control: stop", extra={"command": "stop"})
            self._sim.stop()
        return self._answer()

    async def _speed(self, request: web.Request) -> web.Response:
        assert self._sim is not None
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": 'the body must be JSON: {"speed": N}'}, status=400)
        value = body.get("speed") if isinstance(body, dict) else None
        try:
            if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError(f"speed must be 'max' or a positive number, got {value!r}")
            speed = parse_speed(value)
            if speed is not None and not math.isfinite(speed):
                raise ValueError(f"speed must be 'max' or a positive number, got {value!r}")
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if self._sim.stopping:
            return web.json_response(
                {"error": "cannot change the speed: the run is stopping"}, status=409
            )
        _log.info(
            "control: speed",
            extra={"command": "speed", "speed": "max" if speed is None else speed},
        )
        self._sim.set_speed(speed)
        return self._answer()


# -- client -------------------------------------------------------------------------------


def _read_control_file(run_dir: Path) -> tuple[str, str, int | None]:
    path = run_dir / CONTROL_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ControlError(f"no running simulation in {run_dir}") from None
    except (OSError, ValueError) as exc:
        raise ControlError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
        raise ControlError(f"{path} is not a control file")
    pid = data.get("pid")
    return str(data["url"]), str(data["token"]), pid if isinstance(pid, int) else None


def page_url(run_dir: str | Path) -> str:
    """The URL of the run's web page, with its token (``http://HOST:PORT/ui/?token=T``).

    Raises:
        ControlError: no control file in ``run_dir``, or not one.
    """
    url, token, _ = _read_control_file(Path(run_dir))
    return f"{url}/ui/?token={token}"


def _process_gone(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _command_body(command: str, value: object) -> bytes | None:
    """The JSON body of a command (None for ``status``, a GET).

    Raises:
        ValueError: unknown command, or ``speed`` without a valid value.
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    if command == "speed":
        speed = parse_speed(value if isinstance(value, (str, int, float)) else "")
        return json.dumps({"speed": "max" if speed is None else speed}).encode()
    return None if command == "status" else b"{}"


def _refused(exc: urllib.error.HTTPError, run_dir: Path) -> ControlError:
    """The error for an HTTP error answer: the run's own reason when it gave one."""
    if exc.code == 401:
        return ControlError(
            f"the simulation in {run_dir} refused the token in {run_dir / CONTROL_FILE}"
        )
    try:
        reason = json.loads(exc.read().decode("utf-8")).get("error")
    except (ValueError, AttributeError, OSError):
        reason = None
    return ControlError(reason or f"the simulation in {run_dir} answered {exc.code}")


def _unreachable(exc: OSError, run_dir: Path, url: str, pid: int | None) -> ControlError:
    """The error for a run that did not answer (gone, or not listening)."""
    if _process_gone(pid):
        return ControlError(
            f"no running simulation in {run_dir} (control.json is left from process {pid})"
        )
    reason = getattr(exc, "reason", exc)
    return ControlError(f"cannot reach the simulation in {run_dir} at {url}: {reason}")


def send_command(
    run_dir: str | Path, command: str, value: object = None, timeout_s: float = 5
) -> dict[str, Any]:
    """Send a command to the run in ``run_dir`` and return its status afterwards.

    Args:
        run_dir: the run directory (holds ``control.json``).
        command: one of :data:`COMMANDS`.
        value: the speed for ``speed`` (a positive number, ``"60x"`` or ``"max"``).
        timeout_s: wall seconds to wait for the answer.

    Raises:
        ValueError: unknown command, or ``speed`` without a valid value.
        ControlError: no ``control.json`` ("no running simulation in DIR"), the
            run does not answer, refuses the token, or rejects the request.
    """
    body = _command_body(command, value)
    run_dir = Path(run_dir)
    url, token, pid = _read_control_file(run_dir)
    request = urllib.request.Request(
        f"{url}/{command}",
        data=body,
        method="GET" if command == "status" else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    late = f"the simulation in {run_dir} did not answer within {timeout_s:g} s"
    try:
        with opener.open(request, timeout=timeout_s) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise _refused(exc, run_dir) from None
    except TimeoutError:
        raise ControlError(late) from None
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(getattr(exc, "reason", None), TimeoutError):
            raise ControlError(late) from None
        raise _unreachable(exc, run_dir, url, pid) from None
    except ValueError:
        raise ControlError(f"the simulation in {run_dir} sent an unreadable answer") from None
    if not isinstance(answer, dict):
        raise ControlError(f"the simulation in {run_dir} sent an unreadable answer")
    return answer
