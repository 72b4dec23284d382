"""Starvation: the target's ``Backoff`` / ``Retry-After`` holds back most of the actions.

A target may ask clients to wait (``Backoff: 10`` on any answer, ``Retry-After``
on a 429 or 503); :class:`~sim_engine.targets.resilient.ResilientTransport`
honours it per endpoint. When most requests wait, a run at ``--speed max``
crawls (issue 12: 80 actions in 300 s of a 3-hour run) and the user must be
told. :class:`HoldBackMeter` counts the requests held back by such a delay
among those done in a sliding window of wall seconds and those waiting now;
above :data:`STARVED_SHARE` of at least
:data:`MIN_REQUESTS` it reports the endpoints holding them back and the delay
each asked for, and keeps the episodes for ``metrics.json``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CLEAR_SHARE",
    "MAX_EPISODES",
    "MIN_REQUESTS",
    "STARVED_SHARE",
    "WINDOW_S",
    "HoldBackMeter",
    "describe",
]

WINDOW_S = 30.0
"""Wall seconds of requests the share is measured over."""

STARVED_SHARE = 0.5
"""Share of requests held back above which the run is starved."""

CLEAR_SHARE = 0.4
"""Share of requests held back at or below which a starved run is no longer (a band under
:data:`STARVED_SHARE`, so that a share hovering around it does not flicker)."""

MIN_REQUESTS = 5
"""Requests the window must hold before it can say anything (one throttled request is not
starvation)."""

MAX_EPISODES = 100
"""Episodes kept for ``metrics.json`` (the latest)."""


@dataclass
class _Episode:
    """One stretch of starvation: when, how bad, which endpoints and their delays."""

    from_s: float
    to_s: float | None = None
    peak_share: float = 0.0
    held: Counter[str] = field(default_factory=Counter)
    delay_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_wall_s": round(self.from_s, 3),
            "to_wall_s": None if self.to_s is None else round(self.to_s, 3),
            "peak_share": round(self.peak_share, 3),
            "endpoints": {
                key: {"held": n, "delay_s": round(self.delay_s[key], 3)}
                for key, n in self.held.most_common()
            },
        }


class HoldBackMeter:
    """How many recent requests a target's backoff held back, and which endpoints did.

    A request is *held* from the moment it starts waiting for the target's delay
    until it is done. The share is over the requests done in the last
    ``window_s`` wall seconds plus those waiting now: a starved run completes
    few requests, while many wait.

    Args:
        now: wall clock in seconds (monotonic; a fake in tests).
        window_s: wall seconds the share is measured over.
        share: share of requests held back above which the run counts as starved.
        clear: share at or below which it no longer does.
        min_requests: requests needed for a verdict.
    """

    def __init__(
        self,
        now: Callable[[], float],
        window_s: float = WINDOW_S,
        share: float = STARVED_SHARE,
        min_requests: int = MIN_REQUESTS,
        clear: float = CLEAR_SHARE,
    ) -> None:
        self._now = now
        self._clear = clear
        self._start_s = now()
        self._window_s = window_s
        self._share = share
        self._min = min_requests
        self._recent: deque[tuple[float, str | None]] = deque()  # (done at, endpoint if held)
        self._held: Counter[str] = Counter()  # endpoint -> held requests done in the window
        self._waiting: Counter[str] = Counter()  # endpoint -> held requests not done yet
        self._delay_s: dict[str, float] = {}  # endpoint -> the latest delay it asked for
        self._episodes: deque[_Episode] = deque(maxlen=MAX_EPISODES)
        self._open: _Episode | None = None

    def wait(self, endpoint: str, delay_s: float) -> None:
        """A request starts waiting for the delay the target asked for (wall seconds)."""
        self._waiting[endpoint] += 1
        self._delay_s[endpoint] = delay_s
        self._track(self._now())

    def done(self, endpoint: str, held: bool) -> None:
        """A request is done (answered, or refused without being sent); ``held``: it was
        :meth:`wait` ing before."""
        now = self._now()
        self._recent.append((now, endpoint if held else None))
        if held:
            self._held[endpoint] += 1
            self._waiting[endpoint] -= 1
            if self._waiting[endpoint] <= 0:
                del self._waiting[endpoint]
        self._track(now)

    def _prune(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self._window_s:
            _, key = self._recent.popleft()
            if key is not None:
                self._held[key] -= 1
                if self._held[key] <= 0:
                    del self._held[key]

    def _measure(self, now: float) -> tuple[float, int, Counter[str]]:
        """(share held, requests, held per endpoint) over the window and those waiting."""
        self._prune(now)
        held = self._held + self._waiting
        total = len(self._recent) + sum(self._waiting.values())
        return (sum(held.values()) / total if total else 0.0), total, held

    def _track(self, now: float) -> None:
        """Open an episode when most of enough requests are held back; close it only when
        few enough of enough requests are (or none are left): no flicker around
        :data:`MIN_REQUESTS` or :data:`STARVED_SHARE`."""
        share, total, held = self._measure(now)
        enough = total >= self._min
        if self._open is None and enough and share > self._share:
            self._open = _Episode(now - self._start_s)
            self._episodes.append(self._open)
        elif self._open is not None and ((enough and share <= self._clear) or total == 0):
            self._open.to_s = now - self._start_s
            self._open = None
        if self._open is not None:
            self._open.peak_share = max(self._open.peak_share, share)
            for key, n in held.items():
                self._open.held[key] = max(self._open.held[key], n)
                self._open.delay_s[key] = self._delay_s[key]

    def current(self) -> dict[str, Any] | None:
        """Return the starvation now, or None when the target holds back no majority.

        Returns:
            ``{"share": held / requests, "requests": n, "window_s": s, "endpoints":
            {endpoint: {"held": n, "delay_s": s}}}`` over the requests done in the
            window and those waiting now, endpoints holding the most first; delays
            are what the target last asked for (wall seconds).
        """
        now = self._now()
        self._track(now)
        if self._open is None:
            return None
        share, total, held = self._measure(now)
        return {
            "share": round(share, 3),
            "requests": total,
            "window_s": self._window_s,
            "endpoints": {
                key: {"held": n, "delay_s": round(self._delay_s[key], 3)}
                for key, n in held.most_common()
            },
        }

    def episodes(self) -> list[dict[str, Any]]:
        """Return every starvation episode so far (the latest :data:`MAX_EPISODES`), oldest
        first: ``from_wall_s`` / ``to_wall_s`` (wall seconds since the meter started; None
        while it lasts), ``peak_share``, ``endpoints`` (``{endpoint: {"held", "delay_s"}}``)."""
        return [episode.as_dict() for episode in self._episodes]


def describe(starving: dict[str, Any]) -> str:
    """One line for the console and the dashboard from :meth:`HoldBackMeter.current`.

    ``the target holds back 83% of requests (last 30 s): GET /posts waits 10 s, ...``
    (the three endpoints holding the most).
    """
    endpoints = starving.get("endpoints") or {}
    waits = ", ".join(
        f"{key} waits {float(info.get('delay_s', 0.0)):g} s"
        for key, info in list(endpoints.items())[:3]
    )
    share = float(starving.get("share", 0.0))
    window = float(starving.get("window_s", WINDOW_S))
    return f"the target holds back {share:.0%} of requests (last {window:g} s): {waits}"
