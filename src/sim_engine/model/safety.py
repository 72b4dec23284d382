"""The safety guard's pure part: which target URLs a run (or a fetch) may reach.

No I/O: a URL and a list of allowed hosts in, :class:`SafetyError` out. Used by
the runner, the load test and ``cleanup`` (through :mod:`sim_engine.runs.runstate`,
which re-exports both names) and by the OpenAPI import, which fetches documents
only from loopback hosts.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

__all__ = ["DEMO", "RUN_FILES", "SafetyError", "check_kill_file", "check_target_allowed"]

DEMO = "demo"
"""``run.json``'s target for the built-in demo server started by the run."""

RUN_FILES = frozenset(
    {
        "state.db", "state.db-wal", "state.db-shm", "run.json", "scenario.json",
        "control.json", "actions.jsonl", "users.jsonl", "lifecycle.jsonl", "log.jsonl",
        "metrics.json", "daily_metrics.json", "load.json", "report.html", "demo.db",
        "analytics-posthog.jsonl", "analytics-segment.jsonl", "analytics-mixpanel.jsonl",
        "analytics-mixpanel-profiles.jsonl",
    }
)  # fmt: skip
"""The files a run writes in its directory: none of them may be the kill file."""


class SafetyError(ValueError):
    """A run was refused for safety (a target outside loopback not in ``allow_hosts``)."""


def check_target_allowed(url: str, allow_hosts: tuple[str, ...]) -> None:
    """Refuse a target outside 127.0.0.0/8 and ::1 unless its host is in ``allow_hosts``.

    Args:
        url: an ``http(s)`` URL, or the words ``inprocess`` / ``demo`` (always allowed).
        allow_hosts: host names or addresses allowed besides loopback and ``localhost``.

    Raises:
        SafetyError: one line naming the host and the way to allow it (or saying
            the URL is not an http(s) URL).
    """
    if url in ("inprocess", DEMO):
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SafetyError(f"target {url!r} is not an http(s) URL")
    host = parts.hostname
    if host == "localhost" or host in allow_hosts:
        return
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return
    raise SafetyError(
        f"refusing to target {host}: not a loopback address and not listed in "
        "safety.allow_hosts of the scenario"
    )


def check_kill_file(name: str) -> str:
    """Return ``name`` when it is a safe ``safety.kill_file``: a relative path inside the
    run directory (``KILL``, ``stop/KILL``) that names none of the run's own files.

    ``sim-engine kill`` writes the file and ``run --resume`` deletes it, so a path
    outside the run directory (absolute, with a drive, or climbing out with ``..``)
    or one of :data:`RUN_FILES` would write over or delete something else.

    Raises:
        ValueError: one line saying what is wrong with ``name``.
    """
    if "\x00" in name:
        raise ValueError(f"{name!r} contains a NUL character")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("~"):
        raise ValueError(f"{name!r} must be a path relative to the run directory")
    parts = windows.parts  # splits on both / and \
    if ".." in parts:
        raise ValueError(f"{name!r} must stay inside the run directory (no '..')")
    if not [p for p in parts if p != "."]:
        raise ValueError(f"{name!r} names the run directory itself, not a file in it")
    if parts[0] in RUN_FILES:
        raise ValueError(f"{name!r} is a file the run writes itself: choose another name")
    return name
