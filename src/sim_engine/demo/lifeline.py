"""Tie the demo server's life to the process that launched it.

:class:`~sim_engine.demo.launcher.DemoServer` passes its own pid to the child in
``SIM_ENGINE_DEMO_PARENT_PID`` (see :func:`parent_env`); ``python -m sim_engine.demo``
calls :func:`bind_to_parent` first thing, so the server exits when its parent dies,
whatever kills the parent (SIGKILL, a SIGTERM during start-up, a crash):

* on Linux, a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``): the kernel
  sends SIGTERM the moment the parent is gone. Set only when the parent launched the
  server from its main thread (``SIM_ENGINE_DEMO_DEATHSIG=1``): the kernel sends it when
  the launching *thread* ends, which for a worker thread may be long before the process;
* everywhere, a watchdog thread that polls ``os.getppid()`` every 0.2 s and, once the
  parent pid has changed, sends SIGTERM to the server itself (uvicorn stops gracefully),
  then exits hard after a grace period if that did not work.

The race between the launch and the moment the child arms these is closed by checking,
right after arming, that the parent is still the one named in the environment: if not,
the server exits at once without serving anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

__all__ = ["DEATHSIG_ENV", "PARENT_ENV", "bind_to_parent", "parent_env"]

#: Environment variable naming the pid of the process the demo server must not outlive.
PARENT_ENV = "SIM_ENGINE_DEMO_PARENT_PID"
#: Environment variable: "1" to arm Linux's parent-death signal as well.
DEATHSIG_ENV = "SIM_ENGINE_DEMO_DEATHSIG"

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_POLL_S = 0.2
_GRACE_S = 5.0


def parent_env() -> dict[str, str]:
    """The environment entries a launcher gives the demo server so it dies with the caller.

    Returns:
        dict[str, str]: ``SIM_ENGINE_DEMO_PARENT_PID`` (this process's pid) and
        ``SIM_ENGINE_DEMO_DEATHSIG`` ("1" when called from the main thread, else "0").
    """
    main = threading.current_thread() is threading.main_thread()
    return {PARENT_ENV: str(os.getpid()), DEATHSIG_ENV: "1" if main else "0"}


def bind_to_parent(environ: Mapping[str, str] | None = None, poll_s: float = _POLL_S) -> None:
    """Make this process exit when the parent named in ``environ`` dies; no-op without one.

    Arms the parent-death signal (Linux, when ``SIM_ENGINE_DEMO_DEATHSIG`` is "1"), then
    checks the parent is still alive, then starts the watchdog thread (a daemon).

    Args:
        environ (Mapping[str, str] | None): Where to read ``SIM_ENGINE_DEMO_PARENT_PID``;
            None means ``os.environ``. Absent or not an integer: nothing is done.
        poll_s (float): Seconds between two looks at the parent pid.

    Raises:
        SystemExit: With code 1 when the parent is already gone.
    """
    env = os.environ if environ is None else environ
    try:
        parent = int(env.get(PARENT_ENV, ""))
    except ValueError:
        return
    if env.get(DEATHSIG_ENV) == "1":
        _arm_deathsig()
    if os.getppid() != parent:
        _say(f"parent process {parent} is gone before start-up ended; exiting")
        raise SystemExit(1)
    watchdog = threading.Thread(
        target=_watch, args=(parent, poll_s), name="demo-parent-watchdog", daemon=True
    )
    watchdog.start()


def _arm_deathsig() -> None:
    """Ask Linux to send SIGTERM to this process when its parent thread dies (best effort)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # no prctl: the watchdog suffices
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _watch(parent: int, poll_s: float) -> None:
    """Poll until the parent pid changes, then stop this process (SIGTERM, then hard)."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    _say(f"parent process {parent} is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_GRACE_S)
    os._exit(1)


def _say(message: str) -> None:
    """One line on stderr (the launcher keeps it for its error messages)."""
    with contextlib.suppress(OSError, ValueError):  # stderr closed: say nothing
        print(f"sim-engine demo server: {message}", file=sys.stderr, flush=True)
