"""A transport wrapper that complies with rate limits and survives a failing target.

:class:`ResilientTransport` wraps any :class:`~sim_engine.targets.transport.Transport`
and applies the policies of :mod:`sim_engine.targets.resilience` to every request:

1. a global token bucket (``limits.requests_per_second``, ``limits.burst``);
2. a per-endpoint *gate*: after a 429 or 503 (or any ``Backoff`` header) no
   request to that endpoint is sent before the server's ``Retry-After`` /
   ``Backoff`` (or the computed backoff) has passed; callers wait for it, and
   are released over a short jittered window, not all at once;
3. a per-endpoint circuit breaker: while open, requests are not sent and come
   back as ``Response(0, b"", 0.0, error="circuit open: <endpoint>", skipped=True)``;
4. retries with exponential backoff and jitter, for idempotent methods (and
   POST only with ``limits.retry_non_idempotent``); a body over
   ``limits.max_response_bytes`` is not retried (it would be as large again).

Every request done is noted in :attr:`ResilientTransport.meter` (a
:class:`~sim_engine.targets.starvation.HoldBackMeter`): whether the target's
backoff held it back, so that a run starved by ``Backoff`` / ``Retry-After``
says so (``statistics()["starving"]``).

Server hints are read from the ``headers`` mapping of a
:class:`~sim_engine.targets.transport.Response` ``headers`` that the transports
keep when ``Retry-After`` or ``Backoff`` is present). See ``docs/resilience.md``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sim_engine.model.scenario import LimitsSpec
from sim_engine.targets.resilience import (
    BackoffPolicy,
    BreakerState,
    CircuitBreaker,
    TokenBucket,
    endpoint_key,
    parse_backoff,
    parse_retry_after,
)
from sim_engine.targets.starvation import HoldBackMeter
from sim_engine.targets.transport import TOO_LARGE, Response, Transport

__all__ = ["IDEMPOTENT_METHODS", "RETRY_STATUSES", "ResilientTransport"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""Methods retried by default (RFC 9110 idempotent methods; TRACE is never sent)."""

RETRY_STATUSES = frozenset({0, 429, 502, 503, 504})
"""Statuses worth a retry: no response (refused, reset, timeout), throttled, gateway trouble."""

_THROTTLE_STATUSES = frozenset({429, 503})
"""Statuses after which the endpoint's gate closes for the backoff delay."""

MAX_ENDPOINTS = 256
"""Distinct endpoint keys tracked; further ones share the key ``OTHER`` (bounded memory)."""

_OTHER = "OTHER"


class ResilientTransport:
    """Rate limits, backoff, retries and circuit breakers around another transport.

    Never raises for network trouble (like every transport) and never waits
    forever: a request facing an endpoint gate further away than
    ``backoff.max_s * (max_retries + 1)`` wall seconds comes back skipped
    (``error="backed off: <endpoint> for N s"``) instead of waiting.

    Args:
        inner: the transport that really sends.
        limits: the scenario's ``limits`` section.
        now: time source in wall seconds (monotonic), for the bucket, gates and breakers.
        sleep: awaits a number of wall seconds (``asyncio.sleep``; a fake in tests).
        rng: randomness for backoff jitter and gate releases (default: a fresh unseeded
            generator).
        epoch: wall time in Unix epoch seconds, to read ``Retry-After`` HTTP-dates.

    Attributes:
        meter: which recent requests the target's backoff held back (on ``now``).
    """

    def __init__(
        self,
        inner: Transport,
        limits: LimitsSpec,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self._limits = limits
        self._now = now
        self._sleep = sleep
        self._epoch = epoch
        self._policy = BackoffPolicy(limits.backoff, rng if rng is not None else random.Random())
        rate = limits.requests_per_second
        self._bucket = TokenBucket(rate, limits.burst, now) if rate is not None else None
        self._max_wait_s = limits.backoff.max_s * (limits.max_retries + 1)
        self._keys: set[str] = set()
        self._gates: dict[str, float] = {}  # endpoint -> monotonic wall second it reopens
        self._gate_s: dict[str, float] = {}  # endpoint -> how long its gate was last closed for
        self._breakers: dict[str, CircuitBreaker] = {}
        self._sent = self._retries = self._rate_limited = self._skipped = 0
        self.meter = HoldBackMeter(now)

    @property
    def base_url(self) -> str:
        """The inner transport's base URL (empty when it has none)."""
        return str(getattr(self.inner, "base_url", ""))

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send with rate limiting, gating, retries and the breaker; never raises for the network.

        Returns:
            The last response received, its ``retries`` set to the retries made
            before it; or a ``skipped=True`` status-0 response when nothing was
            sent (circuit open, or a gate too far away).
        """
        key = self._key(method, path)
        held = _Held(self.meter, key)
        resp = await self._request(key, held, method, path, json_body, headers)
        held.done()
        return resp

    async def _request(
        self,
        key: str,
        held: _Held,
        method: str,
        path: str,
        json_body: Any,
        headers: dict[str, str] | None,
    ) -> Response:
        breaker = self._breaker(key)
        retry = method.upper() in IDEMPOTENT_METHODS or self._limits.retry_non_idempotent
        attempt = 0
        last: Response | None = None
        while True:
            refusal = await self._clear_to_send(key, breaker, held)
            if refusal is not None:
                if last is None:
                    self._skipped += 1
                    return Response(0, b"", 0.0, error=refusal, skipped=True)
                return _with_retries(last, attempt - 1)
            last = await self._send(breaker, method, path, json_body, headers)
            delay_s = self._note(key, last, attempt)
            if (
                not retry
                or last.skipped
                or last.status not in RETRY_STATUSES
                or (last.error is not None and last.error.startswith(TOO_LARGE))
                or attempt >= self._limits.max_retries
                or delay_s > self._max_wait_s
            ):
                return _with_retries(last, attempt)
            attempt += 1
            self._retries += 1
            if last.status in _THROTTLE_STATUSES:
                held.hold(delay_s)  # the target asked to wait (or the backoff for it)
            await self._sleep(delay_s)

    async def _clear_to_send(
        self, key: str, breaker: CircuitBreaker | None, held: _Held
    ) -> str | None:
        """Wait for the endpoint's gate and a bucket token; return why not to send, or None.
        A gate holds the request back: ``held`` notes it, with the delay it closed for."""
        while True:
            if breaker is not None and breaker.state is BreakerState.OPEN:
                return f"circuit open: {key}"
            wait_s = self._gates.get(key, 0.0) - self._now()
            if wait_s > 0:
                held.hold(self._gate_s.get(key, wait_s))
                if wait_s > self._max_wait_s:
                    return f"backed off: {key} for {wait_s:.1f} s"
                await self._sleep(
                    wait_s + self._policy.release_jitter_s(self._gate_s.get(key, 0.0))
                )
                continue
            if self._gates.pop(key, None) is not None:
                self._gate_s.pop(key, None)
            if self._bucket is not None:
                wait_s = self._bucket.take()
                if wait_s > 0:
                    await self._sleep(wait_s)
                    if self._gates.get(key, 0.0) > self._now():
                        continue  # the endpoint backed off while we queued for a token
            if breaker is not None and not breaker.allow():
                return f"circuit open: {key}"
            return None

    async def _send(
        self,
        breaker: CircuitBreaker | None,
        method: str,
        path: str,
        json_body: Any,
        headers: dict[str, str] | None,
    ) -> Response:
        self._sent += 1
        try:
            resp = await self.inner.request(method, path, json_body, headers)
        except BaseException:  # cancelled mid-request: no verdict, give the probe slot back
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            if resp.status == 429 or resp.skipped:
                breaker.release()  # throttled: the server is alive, the gate handles it
            else:
                breaker.record(0 < resp.status < 500)
        return resp

    def _note(self, key: str, resp: Response, attempt: int) -> float:
        """Count the response, move the endpoint's gate; return the wait before a retry."""
        if resp.status == 429:
            self._rate_limited += 1
        hint_s = self._hint_s(resp)
        delay_s = self._policy.delay_s(attempt, hint_s) if resp.status in RETRY_STATUSES else 0.0
        gate_s = delay_s if resp.status in _THROTTLE_STATUSES else (hint_s or 0.0)
        if gate_s > 0:
            until_s = self._now() + gate_s
            if until_s > self._gates.get(key, 0.0):
                self._gates[key] = until_s
                self._gate_s[key] = gate_s
        return delay_s

    def _hint_s(self, resp: Response) -> float | None:
        """Return the longest wait the server asked for (``Retry-After``, ``Backoff``), or None."""
        headers = getattr(resp, "headers", None)
        if not headers or not isinstance(headers, Mapping):
            return None
        hints = [parse_backoff(_header(headers, "backoff"))]
        if resp.status in _THROTTLE_STATUSES:
            hints.append(parse_retry_after(_header(headers, "retry-after"), self._epoch()))
        found = [h for h in hints if h is not None]
        return max(found) if found else None

    def _key(self, method: str, path: str) -> str:
        key = endpoint_key(method, path)
        if key not in self._keys:
            if len(self._keys) >= MAX_ENDPOINTS:
                return _OTHER
            self._keys.add(key)
        return key

    def _breaker(self, key: str) -> CircuitBreaker | None:
        spec = self._limits.circuit_breaker
        if not spec.enabled:
            return None
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(spec, self._now)
        return breaker

    async def check(self) -> None:
        """Check the inner transport (no gate, bucket or breaker applies).

        Raises:
            TargetUnreachableError: nothing answers.
        """
        await self.inner.check()

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()

    def statistics(self) -> dict[str, Any]:
        """Return a snapshot of the counters.

        Returns:
            ``requests_sent`` (sends to the inner transport, retries included),
            ``retries``, ``rate_limited`` (429 responses), ``skipped`` (requests
            not sent), ``breakers`` (``{endpoint: "closed"|"open"|"half_open"}``)
            ``backed_off`` (``{endpoint: wall seconds until its gate opens}``),
            ``starving`` (the target's backoff holds back most requests now:
            :meth:`~sim_engine.targets.starvation.HoldBackMeter.current`, else None)
            and ``starvation`` (every such episode so far:
            :meth:`~sim_engine.targets.starvation.HoldBackMeter.episodes`).
            At most :data:`MAX_ENDPOINTS` + 1 endpoints appear.
        """
        now_s = self._now()
        return {
            "requests_sent": self._sent,
            "retries": self._retries,
            "rate_limited": self._rate_limited,
            "skipped": self._skipped,
            "breakers": {key: b.state.value for key, b in self._breakers.items()},
            "backed_off": {
                key: round(until_s - now_s, 3)
                for key, until_s in self._gates.items()
                if until_s > now_s
            },
            "starving": self.meter.current(),
            "starvation": self.meter.episodes(),
        }


@dataclasses.dataclass
class _Held:
    """One request in the meter: held back from when it first waits for the target's
    backoff (a starved run completes few requests, many wait), done when it is."""

    meter: HoldBackMeter
    key: str
    held: bool = False

    def hold(self, delay_s: float) -> None:
        if not self.held:
            self.held = True
            self.meter.wait(self.key, delay_s)

    def done(self) -> None:
        self.meter.done(self.key, self.held)


def _header(headers: Mapping[str, str], lower_name: str) -> str | None:
    value = headers.get(lower_name)
    if value is not None:
        return value
    for name, value in headers.items():
        if name.lower() == lower_name:
            return value
    return None


def _with_retries(resp: Response, retries: int) -> Response:
    return dataclasses.replace(resp, retries=retries) if retries != resp.retries else resp
