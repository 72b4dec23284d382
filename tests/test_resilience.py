"""Rate-limit compliance: token bucket, backoff, Retry-After, circuit breaker, ResilientTransport.

Everything runs on a manual clock (no real sleeping) except two end-to-end tests
against a small aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from helpers import FakeClock, Starter
from sim_engine.model.scenario import BackoffSpec, CircuitBreakerSpec, LimitsSpec
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.resilience import (
    BackoffPolicy,
    BreakerState,
    CircuitBreaker,
    TokenBucket,
    endpoint_key,
    parse_backoff,
    parse_retry_after,
)
from sim_engine.targets.resilient import ResilientTransport
from sim_engine.targets.transport import Response

EPOCH = 1_700_000_000.0


class ScriptedTransport:
    """Answers from a queue per path prefix (default 200) and records (time, method, path)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.scripts: dict[str, deque[Response]] = {}
        self.calls: list[tuple[float, str, str]] = []
        self.closed = False

    def script(self, path: str, *responses: Response) -> None:
        self.scripts.setdefault(path, deque()).extend(responses)

    def times(self, path: str) -> list[float]:
        return [t for t, _, p in self.calls if p == path]

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        self.calls.append((self.clock.t, method, path))
        await asyncio.sleep(0)  # let concurrent callers send before this one's answer arrives
        queue = self.scripts.get(path)
        if queue:
            return queue.popleft()
        return Response(200, b"{}", 1.0)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True


def throttled(status: int = 429, **headers: str) -> Response:
    names = {"retry_after": "Retry-After", "backoff": "Backoff"}
    return Response(status, b"", 1.0, headers={names[k]: v for k, v in headers.items()})


def limits(**changes: Any) -> LimitsSpec:
    data: dict[str, Any] = {
        "max_retries": 3,
        "backoff": {"base_s": 0.5, "max_s": 30.0, "jitter": "none"},
    }
    data.update(changes)
    return LimitsSpec.model_validate(data)


def resilient(
    spec: LimitsSpec | None = None,
) -> tuple[ResilientTransport, ScriptedTransport, FakeClock]:
    clock = FakeClock(EPOCH)
    inner = ScriptedTransport(clock)
    transport = ResilientTransport(
        inner,
        spec or limits(),
        now=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        epoch=clock.epoch,
    )
    return transport, inner, clock


# -- token bucket ----------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock(EPOCH)
    bucket = TokenBucket(rate_per_s=5.0, burst=3, now=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.delay_s() == pytest.approx(0.2)
    assert bucket.take() == pytest.approx(0.2)  # reserved: wait 0.2 s
    assert bucket.take() == pytest.approx(0.4)  # queued behind the previous one
    clock.t = 10.0
    assert bucket.delay_s() == 0.0  # refilled, but never above the burst
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() > 0


def test_token_bucket_rate_over_time() -> None:
    clock = FakeClock(EPOCH)
    bucket = TokenBucket(rate_per_s=10.0, burst=1, now=clock)
    sends: list[float] = []
    for _ in range(100):
        clock.t += bucket.take()
        sends.append(clock.t)
    # 100 requests at 10/s with a burst of 1: about 9.9 s, never faster.
    assert sends[-1] == pytest.approx(9.9)
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert min(gaps) == pytest.approx(0.1)


def test_token_bucket_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1, FakeClock(EPOCH))
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0, FakeClock(EPOCH))


# -- Retry-After and Backoff headers ------------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert parse_retry_after("2", EPOCH) == 2.0
    assert parse_retry_after(" 120 ", EPOCH) == 120.0
    assert parse_retry_after("0.5", EPOCH) == 0.5


def test_retry_after_http_date() -> None:
    date = formatdate(EPOCH + 30, usegmt=True)  # e.g. "Tue, 14 Nov 2023 22:13:50 GMT"
    assert parse_retry_after(date, EPOCH) == pytest.approx(30.0)
    past = formatdate(EPOCH - 30, usegmt=True)
    assert parse_retry_after(past, EPOCH) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1e3", "Mon, 99 Foo 2023"])
def test_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, EPOCH) is None


def test_backoff_header() -> None:
    assert parse_backoff("30") == 30.0
    assert parse_backoff("1.5") == 1.5
    assert parse_backoff(None) is None
    assert parse_backoff("later") is None
    assert parse_backoff("-1") is None


# -- backoff policy ---------------------------------------------------------------------------


def test_backoff_grows_and_is_capped() -> None:
    spec = BackoffSpec(base_s=0.5, max_s=5.0, multiplier=2.0, jitter="none")
    policy = BackoffPolicy(spec, random.Random(1))
    assert [policy.delay_s(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay_s(10_000) == 5.0  # no overflow


def test_full_jitter_bounds_and_mean() -> None:
    spec = BackoffSpec(base_s=1.0, max_s=30.0, multiplier=2.0, jitter="full")
    policy = BackoffPolicy(spec, random.Random(42))
    draws = [policy.delay_s(2) for _ in range(4000)]  # ceiling 4 s
    assert all(0.0 <= d <= 4.0 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(2.0, abs=0.1)
    assert min(draws) < 0.1 and max(draws) > 3.9


def test_equal_jitter_bounds_and_mean() -> None:
    spec = BackoffSpec(base_s=1.0, max_s=30.0, multiplier=2.0, jitter="equal")
    policy = BackoffPolicy(spec, random.Random(42))
    draws = [policy.delay_s(2) for _ in range(4000)]
    assert all(2.0 <= d <= 4.0 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(3.0, abs=0.05)


def test_backoff_is_reproducible_with_a_seed() -> None:
    spec = BackoffSpec(jitter="full")
    a = BackoffPolicy(spec, random.Random(3))
    b = BackoffPolicy(spec, random.Random(3))
    assert [a.delay_s(n) for n in range(5)] == [b.delay_s(n) for n in range(5)]


def test_backoff_honours_the_server_hint_even_above_the_cap() -> None:
    spec = BackoffSpec(base_s=0.5, max_s=5.0, jitter="full")
    policy = BackoffPolicy(spec, random.Random(1))
    assert all(policy.delay_s(0, server_hint_s=2.0) >= 2.0 for _ in range(200))
    assert policy.delay_s(0, server_hint_s=60.0) == 60.0
    assert policy.delay_s(0, server_hint_s=None) <= 0.5


# -- circuit breaker --------------------------------------------------------------------------


def state_of(b: CircuitBreaker) -> BreakerState:
    """``b.state``, read through a call: mypy would carry an earlier check over."""
    return b.state


def breaker(clock: FakeClock, **changes: Any) -> CircuitBreaker:
    base: dict[str, Any] = {"failure_threshold": 3, "window": 10, "min_calls": 5, "open_s": 5.0}
    base.update(changes)
    return CircuitBreaker(CircuitBreakerSpec(**base), clock)


def test_breaker_opens_after_consecutive_failures() -> None:
    clock = FakeClock(EPOCH)
    b = breaker(clock, error_rate=1.0)  # only the consecutive rule can open it
    for _ in range(2):
        assert b.allow()
        b.record(False)
    b.record(True)  # a success resets the run
    b.record(False)
    b.record(False)
    assert b.state is BreakerState.CLOSED
    b.record(False)
    assert state_of(b) is BreakerState.OPEN
    assert not b.allow()


def test_breaker_opens_on_error_rate() -> None:
    clock = FakeClock(EPOCH)
    b = breaker(clock, failure_threshold=100, error_rate=0.5, window=10, min_calls=6)
    for ok in (True, False, True, False, False):  # 60 % failures, but only 5 calls
        b.record(ok)
    assert b.state is BreakerState.CLOSED
    b.record(False)  # 6 calls, 4 failures: 67 % > 50 %
    assert state_of(b) is BreakerState.OPEN


def test_breaker_error_rate_at_threshold_stays_closed() -> None:
    clock = FakeClock(EPOCH)
    b = breaker(clock, failure_threshold=100, error_rate=0.5, window=4, min_calls=4)
    for ok in (True, False, True, False, True, False):  # window of 4: exactly 50 %
        b.record(ok)
    assert b.state is BreakerState.CLOSED


def test_breaker_half_open_probe_closes_on_success() -> None:
    clock = FakeClock(EPOCH)
    b = breaker(clock, half_open_probes=1)
    for _ in range(3):
        b.record(False)
    clock.t = 4.9
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.t = 5.0
    assert state_of(b) is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    b.record(True)
    assert state_of(b) is BreakerState.CLOSED
    assert b.allow() and b.allow()


def test_breaker_failed_probe_reopens() -> None:
    clock = FakeClock(EPOCH)
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    clock.t = 5.0
    assert b.allow()
    b.record(False)
    assert b.state is BreakerState.OPEN
    clock.t = 9.9
    assert not b.allow()
    clock.t = 10.0
    assert state_of(b) is BreakerState.HALF_OPEN


def test_breaker_release_returns_the_probe_slot() -> None:
    clock = FakeClock(EPOCH)
    b = breaker(clock)
    for _ in range(3):
        b.record(False)
    clock.t = 5.0
    assert b.allow()
    b.release()  # e.g. the probe got a 429: no verdict
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()


# -- endpoint keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/posts/123?x=1", "GET /posts/{id}"),
        ("get", "/posts?limit=20&offset=0", "GET /posts"),
        ("DELETE", "/users/7", "DELETE /users/{id}"),
        ("PUT", "/posts/550e8400-e29b-41d4-a716-446655440000", "PUT /posts/{id}"),
        ("GET", "/a/550e8400e29b41d4a716446655440000/b/2", "GET /a/{id}/b/{id}"),
        ("POST", "/auth/login", "POST /auth/login"),
        ("GET", "/users/alice", "GET /users/alice"),
        ("GET", "", "GET /"),
    ],
)
def test_endpoint_key(method: str, path: str, key: str) -> None:
    assert endpoint_key(method, path) == key


# -- ResilientTransport against a scripted transport -----------------------------------------


async def test_429_retry_after_holds_back_that_endpoint() -> None:
    transport, inner, _clock = resilient(limits(max_retries=0))
    inner.script("/posts/1", throttled(retry_after="2"))
    first = await transport.request("GET", "/posts/1")
    assert first.status == 429 and first.retries == 0
    other = await transport.request("GET", "/users/5")  # another endpoint: not held back
    assert other.status == 200
    assert inner.times("/users/5") == [0.0]
    again = await transport.request("GET", "/posts/2")  # same endpoint GET /posts/{id}
    assert again.status == 200
    assert inner.times("/posts/2")[0] >= 2.0
    assert transport.statistics()["rate_limited"] == 1


async def test_429_is_retried_after_retry_after() -> None:
    transport, inner, _clock = resilient()
    inner.script("/posts", throttled(retry_after="2"), throttled(backoff="3"))
    resp = await transport.request("GET", "/posts")
    assert resp.status == 200 and resp.retries == 2
    t0, t1, t2 = inner.times("/posts")
    assert t1 - t0 >= 2.0
    assert t2 - t1 >= 3.0


async def test_retry_after_http_date_is_honoured() -> None:
    transport, inner, _clock = resilient()
    date = formatdate(EPOCH + 10, usegmt=True)
    inner.script("/posts", throttled(503, retry_after=date))
    resp = await transport.request("GET", "/posts")
    assert resp.status == 200
    assert inner.times("/posts")[1] >= 10.0


async def test_concurrent_requests_wait_for_the_gate() -> None:
    transport, inner, clock = resilient(limits(max_retries=0))
    inner.script("/posts/1", throttled(retry_after="2"))
    await transport.request("GET", "/posts/1")
    results = await asyncio.gather(*(transport.request("GET", f"/posts/{i}") for i in range(5)))
    assert all(r.status == 200 for r in results)
    assert [t for t, _, _ in inner.calls[1:]] == [2.0] * 5  # all wait, none waits longer
    assert clock.t == 2.0


async def test_a_gate_too_far_away_skips_instead_of_waiting() -> None:
    spec = limits(max_retries=1, backoff={"max_s": 10.0, "jitter": "none"})  # wait bound 20 s
    transport, inner, clock = resilient(spec)
    inner.script("/posts", throttled(retry_after="3600"))
    first = await transport.request("GET", "/posts")
    assert first.status == 429 and first.retries == 0  # not retried: the wait is too long
    second = await transport.request("GET", "/posts")
    assert second.skipped and second.status == 0
    assert second.error is not None and second.error.startswith("backed off: GET /posts")
    assert len(inner.calls) == 1 and clock.t == 0.0
    assert transport.statistics()["backed_off"] == {"GET /posts": 3600.0}


async def test_retries_stop_at_max_retries() -> None:
    transport, inner, _clock = resilient(limits(max_retries=2))
    inner.script("/posts", *(Response(503, b"", 1.0) for _ in range(5)))
    resp = await transport.request("GET", "/posts")
    assert resp.status == 503 and resp.retries == 2
    assert len(inner.calls) == 3
    # exponential backoff without jitter: 0.5 s, then 1 s
    assert inner.times("/posts") == [0.0, 0.5, 1.5]
    stats = transport.statistics()
    assert stats["requests_sent"] == 3 and stats["retries"] == 2


@pytest.mark.parametrize("status", [0, 429, 502, 503, 504])
async def test_retryable_statuses(status: int) -> None:
    transport, inner, _ = resilient()
    inner.script("/posts/1", Response(status, b"", 1.0, error="timeout" if not status else None))
    resp = await transport.request("PUT", "/posts/1", {"title": "x"})
    assert resp.status == 200 and resp.retries == 1


@pytest.mark.parametrize("status", [400, 401, 404, 409, 500])
async def test_other_statuses_are_not_retried(status: int) -> None:
    transport, inner, _ = resilient()
    inner.script("/posts/1", Response(status, b"", 1.0))
    resp = await transport.request("GET", "/posts/1")
    assert resp.status == status and resp.retries == 0
    assert len(inner.calls) == 1


async def test_post_is_not_retried_unless_configured() -> None:
    transport, inner, _ = resilient()
    inner.script("/posts", Response(503, b"", 1.0), Response(503, b"", 1.0))
    resp = await transport.request("POST", "/posts", {"title": "x"})
    assert resp.status == 503 and resp.retries == 0
    assert len(inner.calls) == 1

    transport, inner, _ = resilient(limits(retry_non_idempotent=True))
    inner.script("/posts", Response(503, b"", 1.0))
    resp = await transport.request("POST", "/posts", {"title": "x"})
    assert resp.status == 200
    assert resp.retries == 1 and len(inner.calls) == 2


async def test_post_429_still_closes_the_gate() -> None:
    transport, inner, _clock = resilient()
    inner.script("/posts", throttled(retry_after="4"))
    resp = await transport.request("POST", "/posts", {"title": "x"})
    assert resp.status == 429 and resp.retries == 0
    await transport.request("POST", "/posts", {"title": "y"})
    assert inner.times("/posts")[1] >= 4.0


async def test_breaker_skips_then_recovers_after_a_probe() -> None:
    spec = limits(
        max_retries=0,
        circuit_breaker={"failure_threshold": 3, "open_s": 5.0, "half_open_probes": 1},
    )
    transport, inner, clock = resilient(spec)
    inner.script("/posts/1", *(Response(0, b"", 1.0, error="refused") for _ in range(3)))
    for _ in range(3):
        assert (await transport.request("GET", "/posts/1")).status == 0
    skipped = await transport.request("GET", "/posts/9")
    assert skipped == Response(0, b"", 0.0, error="circuit open: GET /posts/{id}", skipped=True)
    assert len(inner.calls) == 3
    ok_elsewhere = await transport.request("GET", "/posts")  # another endpoint still works
    assert ok_elsewhere.status == 200
    stats = transport.statistics()
    assert stats["skipped"] == 1
    assert stats["breakers"] == {"GET /posts/{id}": "open", "GET /posts": "closed"}
    clock.t = 5.0
    assert transport.statistics()["breakers"]["GET /posts/{id}"] == "half_open"
    probe = await transport.request("GET", "/posts/1")
    assert probe.status == 200 and not probe.skipped
    assert transport.statistics()["breakers"]["GET /posts/{id}"] == "closed"


async def test_breaker_opening_mid_retry_returns_the_last_answer() -> None:
    spec = limits(max_retries=5, circuit_breaker={"failure_threshold": 2})
    transport, inner, _ = resilient(spec)
    inner.script("/posts", *(Response(502, b"", 1.0) for _ in range(6)))
    resp = await transport.request("GET", "/posts")
    assert resp.status == 502 and not resp.skipped and resp.retries == 1
    assert len(inner.calls) == 2


async def test_429_is_neither_success_nor_failure_for_the_breaker() -> None:
    spec = limits(max_retries=0, circuit_breaker={"failure_threshold": 2})
    transport, inner, _clock = resilient(spec)
    inner.script("/posts", *(throttled(retry_after="1") for _ in range(5)))
    for _ in range(5):
        await transport.request("GET", "/posts")
    assert transport.statistics()["breakers"] == {"GET /posts": "closed"}
    assert transport.statistics()["rate_limited"] == 5


async def test_disabled_breaker_never_skips() -> None:
    spec = limits(max_retries=0, circuit_breaker={"enabled": False, "failure_threshold": 1})
    transport, inner, _ = resilient(spec)
    inner.script("/posts", *(Response(500, b"", 1.0) for _ in range(5)))
    for _ in range(5):
        assert not (await transport.request("GET", "/posts")).skipped
    assert transport.statistics()["breakers"] == {}


async def test_requests_per_second_cap_holds() -> None:
    transport, inner, _clock = resilient(limits(requests_per_second=10.0, burst=5))
    for i in range(60):
        await transport.request("GET", f"/posts/{i}")
    times = [t for t, _, _ in inner.calls]
    assert times[:5] == [0.0] * 5  # the burst
    for start in times:  # no 1 s window holds more than rate + burst
        assert sum(1 for t in times if start <= t < start + 1.0) <= 15
    assert times[-1] == pytest.approx((60 - 5) / 10.0)


async def test_rate_cap_with_concurrent_callers() -> None:
    transport, inner, _clock = resilient(limits(requests_per_second=2.0, burst=1))
    await asyncio.gather(*(transport.request("GET", f"/posts/{i}") for i in range(6)))
    assert [t for t, _, _ in inner.calls] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


async def test_concurrent_429s_hold_the_gate_for_the_longest_hint() -> None:
    transport, inner, clock = resilient(limits(max_retries=1))
    inner.script("/posts/1", throttled(retry_after="1"))
    inner.script("/posts/2", throttled(retry_after="3"))
    results = await asyncio.gather(
        transport.request("GET", "/posts/1"), transport.request("GET", "/posts/2")
    )
    assert [r.status for r in results] == [200, 200]
    assert [t for t, _, _ in inner.calls] == [0.0, 0.0, 3.0, 3.0]
    assert clock.t == 3.0


async def test_endpoints_are_bounded() -> None:
    transport, _inner, _ = resilient(limits(max_retries=0))
    for i in range(300):
        await transport.request("GET", f"/things/x{i}")
    assert len(transport.statistics()["breakers"]) <= 257


async def test_check_and_aclose_reach_the_inner_transport() -> None:
    transport, inner, _ = resilient()
    await transport.check()
    await transport.aclose()
    assert inner.closed and inner.calls == []


class ChaosTransport:
    """A target that misbehaves by phase of the fake clock (wall seconds).

    [0, 10): 30 % HTTP 500, 10 % timeouts (1 s each); [10, 20): a 429 storm with
    ``Retry-After: 2``; [20, 30): the server is down (refused); from 30: healthy.
    """

    def __init__(self, clock: FakeClock, rng: random.Random) -> None:
        self.clock = clock
        self.rng = rng
        self.sends: list[tuple[float, str]] = []
        self.holds: list[tuple[float, str]] = []  # (not before, endpoint) from each 429

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        t, key = self.clock.t, endpoint_key(method, path)
        self.sends.append((t, key))
        await asyncio.sleep(0)
        if 10 <= t < 20:
            self.holds.append((t + 2.0, key))
            return throttled(retry_after="2")
        if 20 <= t < 30:
            return Response(0, b"", 0.1, error="Cannot connect to host")
        if t < 10:
            roll = self.rng.random()
            if roll < 0.1:
                await self.clock.sleep(1.0)
                return Response(0, b"", 1000.0, error="timeout")
            if roll < 0.4:
                return Response(500, b"oops", 1.0)
        return Response(200, b"{}", 1.0)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_surviving_faults_storm_outage_and_recovery() -> None:
    clock = FakeClock(EPOCH)
    inner = ChaosTransport(clock, random.Random(5))
    spec = limits(backoff={"base_s": 0.5, "max_s": 4.0, "jitter": "full"})
    transport = ResilientTransport(
        inner, spec, now=clock, sleep=clock.sleep, rng=random.Random(1), epoch=clock.epoch
    )
    requests = [("GET", "/posts"), ("GET", "/posts/3"), ("PUT", "/posts/4"), ("POST", "/posts")]
    outcomes: list[tuple[float, Response]] = []

    async def user(n: int) -> None:
        rng = random.Random(n)
        while clock.t < 60:
            method, path = rng.choice(requests)
            resp = await transport.request(method, path, {"n": n} if method != "GET" else None)
            outcomes.append((clock.t, resp))
            await clock.sleep(1.0)

    await asyncio.gather(*(user(n) for n in range(20)))  # never raises

    for sent_s, key in inner.sends:  # nothing sent to a backed-off endpoint before its time
        for not_before_s, held in inner.holds:
            if held == key and not_before_s - 2.0 < sent_s - 1e-9:  # a later send (float-safe)
                assert sent_s >= not_before_s
    skipped = [r for _, r in outcomes if r.skipped]
    assert skipped and all(r.error and r.error.startswith("circuit open") for r in skipped)

    def rate(start_s: float, end_s: float) -> float:
        return sum(1 for t, _ in inner.sends if start_s <= t < end_s) / (end_s - start_s)

    assert rate(40, 60) == pytest.approx(20.0, rel=0.1)  # 20 users, one request a second
    assert rate(35, 40) >= 0.95 * rate(40, 60)  # full rate within 5 s of recovery (t=30)
    stats = transport.statistics()
    assert set(stats["breakers"].values()) == {"closed"}
    assert stats["rate_limited"] > 0 and stats["retries"] > 0


# -- end to end: a real server on loopback ------------------------------------------------------


async def test_real_server_retry_after_is_honoured_in_wall_time(serve: Starter) -> None:
    seen: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(time.monotonic())
        if len(seen) <= 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/posts", handler)
    url = await serve(app)
    spec = limits(backoff={"base_s": 0.01, "max_s": 5.0, "jitter": "full"})
    transport = ResilientTransport(AiohttpTransport(url, timeout_s=5), spec)
    try:
        resp = await transport.request("GET", "/posts")
    finally:
        await transport.aclose()
    assert resp.status == 200 and resp.retries == 1
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 1.0


async def test_real_server_read_timeout_is_status_0_and_retried(serve: Starter) -> None:
    calls: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.method)
        await asyncio.sleep(0.5)
        return web.json_response({"late": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_post("/slow", slow)
    url = await serve(app)
    inner = AiohttpTransport(url, timeout_s=5, connect_timeout_s=1.0, read_timeout_s=0.1)
    spec = limits(max_retries=1, backoff={"base_s": 0.01, "max_s": 0.05})
    transport = ResilientTransport(inner, spec)
    try:
        resp = await transport.request("GET", "/slow")
        assert resp.status == 0 and resp.error == "timeout" and resp.retries == 1
        assert calls == ["GET", "GET"]
        posted = await transport.request("POST", "/slow", {"x": 1})
        assert posted.status == 0 and posted.retries == 0
        assert calls == ["GET", "GET", "POST"]
    finally:
        await transport.aclose()
