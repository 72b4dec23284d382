"""The safety guard's pure part: which target URLs a run (or a fetch) may reach.

No I/O: a URL and a list of allowed hosts in, :class:`SafetyError` out. Used by
the runner, the load test and ``cleanup`` (through :mod:`sim_engine.runs.runstate`,
which re-exports both names) and by the OpenAPI import, which fetches documents
only from loopback hosts.
"""

from __future__ import annotations

import contextlib
import ipaddress
from urllib.parse import urlsplit

__all__ = ["DEMO", "SafetyError", "check_target_allowed"]

DEMO = "demo"
"""``run.json``'s target for the built-in demo server started by the run."""


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
