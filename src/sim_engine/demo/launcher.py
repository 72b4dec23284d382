"""Run the demo social API as a subprocess on a local port.

Example:
    >>> from sim_engine.demo.launcher import DemoServer
    >>> with DemoServer() as srv:  # doctest: +SKIP
    ...     print(srv.base_url)
    http://127.0.0.1:54321

Resilience tests can inject faults (``DemoServer(faults=FaultConfig(...))``, passed to the
child as ``SIM_ENGINE_DEMO_FAULTS``), :meth:`DemoServer.kill` the server and
:meth:`DemoServer.restart` it on the same port with the same database.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from sim_engine.demo.faults import FAULTS_ENV, FaultConfig
from sim_engine.demo.lifeline import parent_env

__all__ = ["DemoServer", "DemoServerError", "find_free_port"]

#: Directory that contains the ``sim_engine`` package (``src/`` in a checkout).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class DemoServerError(RuntimeError):
    """The demo server subprocess exited early or never became healthy."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is currently free on ``host``.

    The port is found by binding a socket to port 0; another process could take it
    before it is used, which is unlikely on a test machine.

    Args:
        host (str): Interface to probe.

    Returns:
        int: A free port number.

    Raises:
        OSError: If no socket can be bound on ``host``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """The demo API running in a child process (``python -m sim_engine.demo``).

    Use :meth:`start`/:meth:`stop`, or the object as a context manager. When ``db_path`` is
    None a temporary SQLite file is used and deleted by :meth:`stop`.

    Args:
        db_path (str | None): SQLite database file for the server; None for a temporary one.
        port (int | None): Port to bind; None picks a free one.
        host (str): Interface to bind.
        startup_timeout (float): Seconds to wait for ``GET /health`` to answer 200.
        stop_timeout (float): Seconds to wait after SIGTERM before killing the process.
        faults (FaultConfig | None): Faults the server injects from the start, passed as JSON
            in ``SIM_ENGINE_DEMO_FAULTS``; None leaves that variable as inherited. Read again
            by :meth:`restart`, so it can be changed in between.

    Example:
        >>> with DemoServer() as srv:  # doctest: +SKIP
        ...     httpx.get(f"{srv.base_url}/health").json()
        {'status': 'ok'}
    """

    def __init__(
        self,
        db_path: str | None = None,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        faults: FaultConfig | None = None,
    ) -> None:
        self.host = host
        self.port: int = port if port is not None else 0
        self._requested_port = port
        self._requested_db = db_path
        self.db_path: str | None = db_path
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.faults = faults
        self.process: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._stderr: IO[bytes] | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``"http://HOST:PORT"`` of the running server.

        Raises:
            DemoServerError: If the server has not been started.
        """
        if self.process is None:
            raise DemoServerError("demo server is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the child, or None when not started."""
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        """True while the child process is alive (False after :meth:`kill`)."""
        return self.process is not None and self.process.poll() is None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DemoServer:
        """Start the subprocess and wait until ``GET /health`` answers 200.

        After :meth:`kill` (or a crash) this is :meth:`restart`: same port, same database.

        Returns:
            DemoServer: ``self``.

        Raises:
            DemoServerError: If already running, if the process exits early or if it is not
                healthy within ``startup_timeout`` seconds (the process is then stopped).
        """
        if self.process is not None:
            if self.running:
                raise DemoServerError("demo server already started")
            return self.restart()
        self.port = (
            self._requested_port if self._requested_port is not None else find_free_port(self.host)
        )
        if self._requested_db is None:
            self._tmpdir = tempfile.mkdtemp(prefix="sim-engine-demo-")
            self.db_path = os.path.join(self._tmpdir, "demo.sqlite3")
        else:
            self.db_path = self._requested_db
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> DemoServer:
        """Stop the server (SIGTERM, if still alive) and start it again.

        The new process binds the SAME port and opens the SAME database file, so data written
        before survives (a temporary database is kept until :meth:`stop`). It injects
        :attr:`faults` as they are now.

        Returns:
            DemoServer: ``self``.

        Raises:
            DemoServerError: If the server was never started (or was stopped), or if the new
                process does not become healthy; the database is then kept, and
                :meth:`restart` or :meth:`stop` can be called again.
        """
        if self.process is None or self.db_path is None:
            raise DemoServerError("demo server is not started; call start() first")
        self._terminate()
        try:
            self._launch()
        except BaseException:
            self._terminate()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the server process and wait for it to die, as a crash would.

        Port and database are kept: connections are then refused until :meth:`restart`.
        :attr:`base_url` stays valid. Does nothing if the process is already dead.

        Raises:
            DemoServerError: If the server was never started (or was stopped).
        """
        if self.process is None:
            raise DemoServerError("demo server is not started; call start() first")
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _launch(self) -> None:
        """Spawn ``python -m sim_engine.demo`` on ``self.port``/``self.db_path``; wait healthy."""
        assert self.db_path is not None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        if self.faults is not None:
            env[FAULTS_ENV] = self.faults.model_dump_json()
        # The child exits when this process dies, however it dies (see lifeline.py).
        env.update(parent_env())
        # stderr goes to a file, not a pipe nobody reads (a full pipe would block the child).
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile(prefix="sim-engine-demo-stderr-")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "sim_engine.demo",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--db",
            self.db_path,
        ]
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr, env=env
        )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer"
        while True:
            code = self.process.poll()
            if code is not None:
                raise DemoServerError(
                    f"demo server exited with code {code} before becoming healthy"
                    f" on {self.host}:{self.port}: {self._stderr_tail()}"
                )
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=0.5)
                try:
                    conn.request("GET", "/health")
                    status = conn.getresponse().status
                finally:
                    conn.close()
                if status == 200:
                    return
                last_error = f"GET /health returned {status}"
            except (OSError, http.client.HTTPException) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise DemoServerError(
                    f"demo server on {self.host}:{self.port} not healthy after"
                    f" {self.startup_timeout:g}s ({last_error}): {self._stderr_tail()}"
                )
            time.sleep(0.05)

    def _stderr_tail(self, lines: int = 5) -> str:
        if self._stderr is None or self._stderr.closed:
            return "(no stderr)"
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
        except OSError:
            return "(stderr unavailable)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) if tail else "(no stderr)"

    def _terminate(self) -> None:
        """SIGTERM the process if alive (SIGKILL after ``stop_timeout``) and wait for it."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        """Terminate the subprocess (kill it after ``stop_timeout``) and clean up.

        Idempotent. Deletes the temporary database if one was created.
        """
        self._terminate()
        self.process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self.db_path = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self.process is None:
            state = "stopped"
        else:
            dead = "" if self.running else " (dead)"
            state = f"pid={self.pid}{dead} {self.host}:{self.port}"
        return f"<DemoServer {state}>"
