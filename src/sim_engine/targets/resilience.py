"""Rate-limit compliance policies: token bucket, backoff, server hints, circuit breaker.

Pure policy objects: no I/O, no sleeping, no wall-clock reads. Each takes its
time source as a ``Callable[[], float]`` of wall seconds (``time.monotonic``
in a run, a manual clock in tests) and its randomness as a
:class:`random.Random`, and tells its caller *how long to wait* instead of
waiting. :class:`~sim_engine.targets.resilient.ResilientTransport` is the edge
that applies them to real requests (see ``docs/resilience.md``).
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections import deque
from collections.abc import Callable
from datetime import timezone
from email.utils import parsedate_to_datetime

from sim_engine.model.scenario import BackoffSpec, CircuitBreakerSpec

__all__ = [
    "RELEASE_SPREAD_MAX_S",
    "RELEASE_SPREAD_SHARE",
    "BackoffPolicy",
    "BreakerState",
    "CircuitBreaker",
    "TokenBucket",
    "endpoint_key",
    "parse_backoff",
    "parse_retry_after",
]

Now = Callable[[], float]
"""A time source: returns wall seconds (any fixed origin; only differences matter)."""

RELEASE_SPREAD_SHARE = 0.25
"""Callers held by a gate are released over this share of the gate's length..."""

RELEASE_SPREAD_MAX_S = 5.0
"""...but over at most this many wall seconds."""


class TokenBucket:
    """A token bucket: at most ``burst`` requests at once, ``rate_per_s`` on average.

    Reservation style: :meth:`take` always takes a token, borrowing from the
    future when the bucket is empty, and returns how long the caller must wait
    before sending. Concurrent callers thus queue in arrival order and no
    caller polls.

    Args:
        rate_per_s: tokens added per wall second (> 0).
        burst: bucket size in tokens (>= 1); the bucket starts full.
        now: time source in wall seconds.

    Raises:
        ValueError: ``rate_per_s`` is not positive or ``burst`` is below 1.
    """

    __slots__ = ("_burst", "_last_s", "_now", "_rate", "_tokens")

    def __init__(self, rate_per_s: float, burst: int, now: Now) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._rate = float(rate_per_s)
        self._burst = float(burst)
        self._now = now
        self._tokens = float(burst)
        self._last_s = now()

    def _refill(self) -> None:
        now_s = self._now()
        elapsed_s = now_s - self._last_s
        if elapsed_s > 0:
            self._tokens = min(self._burst, self._tokens + elapsed_s * self._rate)
            self._last_s = now_s

    def delay_s(self) -> float:
        """Return wall seconds until a token is free (0.0: one is free now); takes nothing."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self._rate)

    def take(self) -> float:
        """Take one token and return the wall seconds to wait before using it (0.0: send now)."""
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Parse a ``Retry-After`` header into wall seconds to wait.

    Args:
        value: the header value: delta-seconds (``"120"``; a decimal fraction is
            accepted) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now_epoch: the current wall time in Unix epoch seconds (to turn a date
            into a delay).

    Returns:
        Seconds to wait (0.0 for a date already past), or None when the value is
        missing, negative or unparseable. Never raises.
    """
    if value is None:
        return None
    text = value.strip()
    seconds = _seconds(text)
    if seconds is not None or not text:
        return seconds
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # HTTP-dates are always GMT
    return max(0.0, when.timestamp() - now_epoch)


def parse_backoff(value: str | None) -> float | None:
    """Parse a ``Backoff`` header (seconds the client should pause) into wall seconds.

    Returns:
        Seconds, or None when missing, negative or unparseable. Never raises.
    """
    return None if value is None else _seconds(value.strip())


_SECONDS_RE = re.compile(r"\d{1,12}(\.\d+)?")


def _seconds(text: str) -> float | None:
    return float(text) if _SECONDS_RE.fullmatch(text) else None


class BackoffPolicy:
    """Retry waits: exponential growth, capped, jittered, never shorter than the server asks.

    Retry ``attempt`` (0 for the first retry) waits ``min(max_s, base_s *
    multiplier**attempt)``, jittered by ``spec.jitter`` (``full``: uniform in
    [0, d]; ``equal``: d/2 plus uniform in [0, d/2]; ``none``: d).

    Args:
        spec: the scenario's ``limits.backoff``.
        rng: the only source of jitter (seed it for reproducible waits).
    """

    __slots__ = ("_rng", "_spec")

    def __init__(self, spec: BackoffSpec, rng: random.Random) -> None:
        self._spec = spec
        self._rng = rng

    def ceiling_s(self, attempt: int) -> float:
        """Return the un-jittered wait of retry ``attempt`` in wall seconds (at most ``max_s``)."""
        spec = self._spec
        try:
            raw_s = spec.base_s * math.pow(spec.multiplier, max(0, attempt))
        except OverflowError:
            return spec.max_s
        return min(spec.max_s, raw_s)

    def delay_s(self, attempt: int, server_hint_s: float | None = None) -> float:
        """Return the wall seconds to wait before retry ``attempt`` (0-based).

        Args:
            attempt: how many retries were made before this one (0 for the first).
            server_hint_s: what ``Retry-After`` or ``Backoff`` asked (wall seconds),
                or None. The result is never below it, even when it exceeds
                ``max_s``: the server's word beats our cap.
        """
        ceiling_s = self.ceiling_s(attempt)
        jitter = self._spec.jitter
        if jitter == "full":
            wait_s = self._rng.uniform(0.0, ceiling_s)
        elif jitter == "equal":
            wait_s = ceiling_s / 2 + self._rng.uniform(0.0, ceiling_s / 2)
        else:
            wait_s = ceiling_s
        if server_hint_s is not None and server_hint_s > wait_s:
            return server_hint_s
        return wait_s

    def release_jitter_s(self, gate_s: float) -> float:
        """Return the extra wall seconds a caller held by a closed gate waits after it opens.

        Callers held by one 429 are thus released over a window instead of at one
        instant (which would double the rate the server just limited): uniform in
        [0, min(:data:`RELEASE_SPREAD_SHARE` × ``gate_s``, :data:`RELEASE_SPREAD_MAX_S`)],
        never before the gate opens. 0.0 with ``jitter: none``.

        Args:
            gate_s: how long the gate was closed for, in wall seconds.
        """
        if self._spec.jitter == "none" or gate_s <= 0:
            return 0.0
        return self._rng.uniform(0.0, min(RELEASE_SPREAD_SHARE * gate_s, RELEASE_SPREAD_MAX_S))


class BreakerState(str, enum.Enum):
    """A circuit breaker's state (``str`` values, so they serialise as-is).

    Legal transitions: CLOSED → OPEN (too many failures); OPEN → HALF_OPEN
    (``open_s`` elapsed); HALF_OPEN → CLOSED (a probe succeeded) or → OPEN
    (a probe failed).
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """One endpoint's circuit breaker.

    Closed: every call is allowed; it opens after ``failure_threshold``
    consecutive failures, or when, over the last ``window`` calls (at least
    ``min(min_calls, window)`` of them), the failure share exceeds
    ``error_rate``. Open: no call is allowed for ``open_s`` wall seconds; then
    half-open: ``half_open_probes`` calls are let through; a success closes the
    breaker (history cleared), a failure re-opens it for another ``open_s``.

    Callers ask :meth:`allow` right before sending, then report the verdict with
    :meth:`record`, or :meth:`release` when the call ended without one (a 429,
    a cancelled request), which gives a half-open probe slot back.

    Args:
        spec: the scenario's ``limits.circuit_breaker`` (``enabled`` is the
            caller's business: a breaker always breaks).
        now: time source in wall seconds.
    """

    __slots__ = (
        "_consecutive",
        "_failures",
        "_now",
        "_opened_s",
        "_probes_left",
        "_recent",
        "_spec",
        "_state",
    )

    def __init__(self, spec: CircuitBreakerSpec, now: Now) -> None:
        self._spec = spec
        self._now = now
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=spec.window)
        self._failures = 0  # failures in _recent
        self._opened_s = 0.0
        self._probes_left = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose ``open_s`` has passed reads half-open)."""
        self._advance()
        return self._state

    def _advance(self) -> None:
        if self._state is BreakerState.OPEN and self._now() - self._opened_s >= self._spec.open_s:
            self._state = BreakerState.HALF_OPEN
            self._probes_left = self._spec.half_open_probes

    def allow(self) -> bool:
        """Return True if a call may be sent now (in half-open, this uses up a probe slot)."""
        self._advance()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probes_left > 0:
            self._probes_left -= 1
            return True
        return False

    def record(self, success: bool) -> None:
        """Report the verdict of an allowed call: ``success`` False is a failure."""
        self._advance()
        if self._state is BreakerState.HALF_OPEN:
            if success:
                self._close()
            else:
                self._open()
            return
        if self._state is BreakerState.OPEN:
            return  # a call sent before the breaker opened: already counted enough
        if len(self._recent) == self._spec.window and not self._recent[0]:
            self._failures -= 1  # the oldest call leaves the window
        self._recent.append(success)
        if not success:
            self._failures += 1
        self._consecutive = 0 if success else self._consecutive + 1
        if self._consecutive >= self._spec.failure_threshold or self._rate_exceeded():
            self._open()

    def release(self) -> None:
        """Report that an allowed call ended without a verdict; a half-open probe slot returns."""
        if self._state is BreakerState.HALF_OPEN:
            self._probes_left = min(self._probes_left + 1, self._spec.half_open_probes)

    def _rate_exceeded(self) -> bool:
        calls = len(self._recent)
        if calls < min(self._spec.min_calls, self._spec.window):
            return False
        return self._failures / calls > self._spec.error_rate

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_s = self._now()
        self._probes_left = 0
        self._consecutive = 0
        self._failures = 0
        self._recent.clear()

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._probes_left = 0
        self._consecutive = 0
        self._failures = 0
        self._recent.clear()


_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def endpoint_key(method: str, path: str) -> str:
    """Return ``METHOD /path/{template}`` for a request, as records and breakers name it.

    The query string and fragment are dropped, and every numeric or UUID-like
    path segment becomes ``{id}``: ``("get", "/posts/123?x=1")`` gives
    ``"GET /posts/{id}"``. Other segments are kept as they are.
    """
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment.isdigit() or (len(segment) in (32, 36) and _UUID_RE.fullmatch(segment)):
            segments[i] = "{id}"
    return f"{method.upper()} {'/'.join(segments)}"
