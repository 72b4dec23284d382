"""End-to-end survival: a real Simulation against a real, misbehaving demo server.

The issue: "with 30 % 5xx, 10 % timeouts, a 429 storm, and the server killed and
restarted mid-run, the engine does not crash, sends no request to a backed-off
endpoint before its Retry-After has passed, and is back to full rate within seconds
of the server's recovery."

Every test here runs the demo API as a subprocess (:class:`DemoServer`) on 127.0.0.1
and drives a :class:`Simulation` of 60 users on a fast :class:`ScaledClock` through

    SocialApiTarget(ResilientTransport(Recorder(AiohttpTransport(url)), limits))

The :class:`Recorder` sits between the policies and the socket, so it sees exactly
what the resilient transport decided to send, and when (``time.monotonic``). The
assertions are made on that log, relative to the same run's own baseline, so a busy
2-core machine slows everything down without failing the tests.

How we checked that the tests bite: each mutation below, monkeypatched in by a
throwaway pytest plugin (``pytest -p``), makes the named test fail:

* gates ignored (``ResilientTransport._clear_to_send`` without its gate wait):
  ``test_429_storm_no_request_before_retry_after``: ~125 of the 429s are followed by
  sends to their endpoint inside the Retry-After window, the first 0.04 s after;
* server hints ignored (``ResilientTransport._hint_s`` returning None, so gates and
  retries use the computed backoff only): the same test, ~270 such 429s;
* no breaker recovery (``CircuitBreaker._advance`` never going half-open):
  ``test_kill_and_restart_back_to_full_rate``, "never back to full rate";
* no retries (``max_retries`` forced to 0): ``test_survives_30pct_5xx_and_10pct_timeouts``
  and the storm test, on their retry counts.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
import httpx
import pytest

from sim_engine.demo import DemoServer, create_app
from sim_engine.demo.faults import FaultConfig, FaultController
from sim_engine.engine.clock import ScaledClock
from sim_engine.engine.simulation import Simulation, SimulationStats
from sim_engine.model.records import ActionRecord, Record
from sim_engine.model.scenario import LimitsSpec, Scenario, default_scenario
from sim_engine.runs.targets import bind_target
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.resilience import endpoint_key, parse_retry_after
from sim_engine.targets.resilient import ResilientTransport
from sim_engine.targets.transport import Response

FAULT_SEED = 11
#: A Wednesday, 18:00 UTC; the routine is flat anyway (see :func:`scenario_for`).
START_S = datetime(2024, 6, 5, 18, 0, tzinfo=timezone.utc).timestamp()
#: Simulated seconds per wall second: about 170 requests per wall second from 60 users.
SPEED = 16000.0
USERS = 60
HEADERS = {"X-Synthetic": "true", "User-Agent": "sim-engine-survival-test"}
#: Timer slack allowed when checking Retry-After (the gates themselves have none).
SLACK_S = 0.005


# ---------------------------------------------------------------------------------------
# the recorder and the harness
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request that really went to the inner (aiohttp) transport."""

    sent_s: float  # time.monotonic() when handed to aiohttp
    done_s: float  # time.monotonic() when its answer (or failure) came back
    method: str
    path: str
    endpoint: str
    status: int
    error: str | None
    retry_after: str | None


class Recorder:
    """A transport wrapper that logs every real send (wall time, endpoint, status, hints)."""

    def __init__(self, inner: AiohttpTransport) -> None:
        self.inner = inner
        self.sends: list[Sent] = []

    @property
    def base_url(self) -> str:
        return self.inner.base_url

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        sent_s = time.monotonic()
        resp = await self.inner.request(method, path, json_body, headers)
        hints = resp.headers or {}
        self.sends.append(
            Sent(
                sent_s,
                time.monotonic(),
                method,
                path,
                endpoint_key(method, path),
                resp.status,
                resp.error,
                hints.get("retry-after"),
            )
        )
        return resp

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Run:
    """What a run left behind: the send log, the engine's records, marks in wall time."""

    recorder: Recorder
    transport: ResilientTransport
    started_s: float = 0.0
    actions: list[tuple[float, ActionRecord]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: SimulationStats | None = None

    @property
    def sends(self) -> list[Sent]:
        return self.recorder.sends

    def mark(self, name: str) -> float:
        self.marks[name] = now = time.monotonic()
        return now

    def emit(self, record: Record) -> None:  # the Sink protocol
        if isinstance(record, ActionRecord):
            self.actions.append((time.monotonic(), record))

    def close(self) -> None:
        pass


def limits_for(**changes: Any) -> LimitsSpec:
    """Limits tuned for a short test: small backoff, 1 s breakers, 0.5 s read timeout."""
    data: dict[str, Any] = {
        "connect_timeout_s": 0.5,
        "read_timeout_s": 0.5,
        "backoff": {"base_s": 0.05, "max_s": 0.5},
        "circuit_breaker": {"open_s": 1.0},
    }
    data.update(changes)
    return LimitsSpec.model_validate(data)


def scenario_for(limits: LimitsSpec) -> Scenario:
    """The default scenario, 60 users, no growth or lifecycle, and a flat routine.

    A flat routine (relaxing all day) keeps the request rate steady over the run, so
    a rate can be compared with the same run's baseline.
    """
    flat = [{"start": "00:00", "end": "24:00", "state": "relaxing"}]
    return default_scenario().with_overrides(
        **{
            "population.initial": USERS,
            "population.signups_per_day": 0,
            "lifecycle.enabled": False,
            "routine.weekday": flat,
            "routine.weekend": flat,
            "limits": limits.model_dump(mode="json"),
        }
    )


async def simulate(
    base_url: str, limits: LimitsSpec, script: Callable[[Run], Awaitable[None]]
) -> Run:
    """Run the simulation while ``script`` plays out, then stop it; return the run.

    Raises whatever the engine raised (a crash fails the test).
    """
    scenario = scenario_for(limits)
    recorder = Recorder(
        AiohttpTransport(
            base_url,
            scenario.target.concurrency,
            timeout_s=5.0,
            headers=HEADERS,
            connect_timeout_s=limits.connect_timeout_s,
            read_timeout_s=limits.read_timeout_s,
        )
    )
    transport = ResilientTransport(recorder, limits, rng=random.Random(scenario.seed))
    target = bind_target(scenario, transport)
    await transport.check()
    clock = ScaledClock(START_S, SPEED)
    clock.pause()  # building the population takes no simulated time
    run = Run(recorder, transport)
    sim = Simulation(scenario, target, clock, [run], secret="survival")
    sim.populate()
    run.started_s = time.monotonic()
    clock.resume()
    task = asyncio.ensure_future(sim.run())
    try:
        await script(run)
        assert not task.done(), "the simulation ended by itself (crashed?)"
    finally:
        run.mark("stop")
        sim.stop()
        try:
            run.stats = await asyncio.wait_for(task, 20.0)
        finally:
            await target.aclose()
    return run


async def admin(base_url: str, method: str, body: dict[str, Any] | None = None) -> None:
    """Set (PUT) or clear (DELETE) the server's faults at run time."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.request(method, f"{base_url}/admin/faults", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


# ---------------------------------------------------------------------------------------
# analysis helpers
# ---------------------------------------------------------------------------------------


def count_between(times: Sequence[float], lo: float, hi: float) -> int:
    """How many of the sorted ``times`` fall in [lo, hi)."""
    return bisect.bisect_left(times, hi) - bisect.bisect_left(times, lo)


def retry_after_violations(sends: Sequence[Sent], slack_s: float = SLACK_S) -> list[str]:
    """Sends made to an endpoint while a Retry-After it was answered had not yet passed.

    A 429 (or 503) answered at ``done_s`` with ``Retry-After: r`` forbids any send to
    the same endpoint in [done_s, done_s + r - slack_s). Requests already sent before
    the answer came back were in flight, not a violation.
    """
    starts: dict[str, list[float]] = {}
    for s in sends:
        starts.setdefault(s.endpoint, []).append(s.sent_s)
    for times in starts.values():
        times.sort()
    problems = []
    for s in sends:
        if s.status not in (429, 503):
            continue
        wait_s = parse_retry_after(s.retry_after, time.time())
        if not wait_s:
            continue
        times = starts[s.endpoint]
        early = count_between(times, s.done_s, s.done_s + wait_s - slack_s)
        if early:
            first = times[bisect.bisect_left(times, s.done_s)]
            problems.append(
                f"{s.endpoint}: {early} sent within Retry-After {s.retry_after} of a {s.status}"
                f" (first {first - s.done_s:.3f} s after it)"
            )
    return problems


def answered_ok(s: Sent) -> bool:
    """An HTTP answer that proves the server works (any status but 5xx, 429 and none)."""
    return 0 < s.status < 500 and s.status != 429


def scheduled_wall_s(run: Run, record: ActionRecord) -> float:
    """The wall time at which the engine scheduled an action (from its simulated time)."""
    return run.started_s + (record.sim_ts - START_S) / SPEED


def windows(lo: float, hi: float, width_s: float = 0.5) -> list[tuple[float, float]]:
    """Consecutive windows of ``width_s`` from ``lo`` up to ``hi`` (the last one whole)."""
    n = int((hi - lo) // width_s)
    return [(lo + i * width_s, lo + (i + 1) * width_s) for i in range(n)]


class Rates:
    """Sends and the engine's demand (actions it scheduled) per wall-time window.

    At 16000x a user's session of a handful of requests takes a few milliseconds, so
    the raw number of sends in a 0.5 s window swings by +-40 % with the sessions that
    happen to start in it. Dividing by the actions the engine scheduled in the same
    window removes that noise: with a healthy server it is 1.0 (retries push it
    above 1, skipped actions below).
    """

    def __init__(self, run: Run) -> None:
        self.sent = sorted(s.sent_s for s in run.sends)
        self.ok = sorted(s.sent_s for s in run.sends if answered_ok(s))
        self.demand = sorted(scheduled_wall_s(run, r) for _, r in run.actions)

    def sends(self, lo: float, hi: float) -> int:
        return count_between(self.sent, lo, hi)

    def oks(self, lo: float, hi: float) -> int:
        return count_between(self.ok, lo, hi)

    def scheduled(self, lo: float, hi: float) -> int:
        return count_between(self.demand, lo, hi)

    def per_action(self, lo: float, hi: float) -> float:
        """Sends per action scheduled in [lo, hi) (0 when nothing was scheduled)."""
        demand = self.scheduled(lo, hi)
        return self.sends(lo, hi) / demand if demand else 0.0


def test_retry_after_check_flags_early_sends_only() -> None:
    """The checker used below is not vacuous: it flags an early send, and only that."""

    def sent(at: float, done: float, status: int = 200, hint: str | None = None) -> Sent:
        return Sent(at, done, "GET", "/posts?limit=20", "GET /posts", status, None, hint)

    other = Sent(0.3, 0.31, "GET", "/posts/7", "GET /posts/{id}", 200, None, None)
    limited = sent(0.0, 0.1, 429, "1")
    in_flight = sent(0.05, 0.2)  # sent before the 429 came back: fine
    assert retry_after_violations([limited, in_flight, other, sent(1.1, 1.2)]) == []
    assert retry_after_violations([limited, sent(1.1 - SLACK_S / 2, 1.2)]) == []
    early = retry_after_violations([limited, in_flight, sent(0.6, 0.7), sent(1.1, 1.2)])
    assert early == ["GET /posts: 1 sent within Retry-After 1 of a 429 (first 0.500 s after it)"]


# ---------------------------------------------------------------------------------------
# the new fault kind: stalls (requests that hang past the client's read timeout)
# ---------------------------------------------------------------------------------------


def test_stall_config_validation_and_activity() -> None:
    assert not FaultConfig().active
    assert FaultConfig(stall_rate=0.1).active
    assert FaultConfig(stall_rate=0.1).stall_ms == 30_000
    assert not FaultConfig(stall_rate=0.5, stall_ms=0).active
    with pytest.raises(ValueError, match="stall_rate"):
        FaultConfig(stall_rate=1.5)
    with pytest.raises(ValueError, match="stall_ms"):
        FaultConfig(stall_ms=-1)
    again = FaultConfig.model_validate_json(
        FaultConfig(stall_rate=0.1, stall_ms=5).model_dump_json()
    )
    assert (again.stall_rate, again.stall_ms) == (0.1, 5)


def test_stall_draws_from_its_own_generator() -> None:
    plain = FaultController(FaultConfig(error_rate=0.3, seed=5))
    stalled = FaultController(FaultConfig(error_rate=0.3, stall_rate=0.1, seed=5))
    a = [plain.decide("/posts") for _ in range(2000)]
    b = [stalled.decide("/posts") for _ in range(2000)]
    assert [d.action for d in a] == [d.action for d in b]  # same errors with stalls on
    assert all(d.stall_s == 0 for d in a)
    stalls = [d.stall_s for d in b if d.stall_s]
    assert stalled.counts["stall"] == len(stalls)
    assert 150 <= len(stalls) <= 250 and set(stalls) == {30.0}
    assert stalled.counts["requests"] == sum(
        stalled.counts[k] for k in ("pass", "drop", "rate_limit", "error")
    )


async def test_stall_in_process_then_the_request_goes_on() -> None:
    """After a stall the request reaches the API with its body intact."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    ctl = FaultController(FaultConfig(stall_rate=1.0, stall_ms=2500, seed=1), sleep=fake_sleep)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(faults=ctl)), base_url="http://demo"
    ) as client:
        body = {"username": "stall", "email": "stall@example.org", "password": "pw"}
        assert (await client.post("/users", json=body)).status_code == 201
        assert (await client.get("/users/1")).status_code == 200
        assert (await client.get("/health")).status_code == 200  # exempt: no stall
    assert slept == [2.5, 2.5]
    assert ctl.counts["stall"] == 2


async def test_stall_over_real_sockets_is_a_read_timeout() -> None:
    """A stall longer than the read timeout is a client timeout; it ends when the client goes."""
    with DemoServer(faults=FaultConfig(stall_rate=1.0, seed=FAULT_SEED)) as srv:
        client = AiohttpTransport(srv.base_url, read_timeout_s=0.5, timeout_s=5.0)
        try:
            started = time.monotonic()
            resp = await client.request("GET", "/users/1")
            assert (resp.status, resp.error) == (0, "timeout")
            assert 0.45 <= time.monotonic() - started < 3.0
            # a stall shorter than the read timeout only delays the answer
            await admin(srv.base_url, "PUT", {"stall_rate": 1.0, "stall_ms": 200})
            started = time.monotonic()
            resp = await client.request("GET", "/users/1")
            assert resp.status == 404 and time.monotonic() - started >= 0.2
        finally:
            await client.aclose()
        stopped = time.monotonic()
    # the 30 s stall ended with its client: the server stopped at once on SIGTERM
    assert time.monotonic() - stopped < 3.0


# ---------------------------------------------------------------------------------------
# the engine against a faulty, dying, restarting server
# ---------------------------------------------------------------------------------------


async def test_survives_30pct_5xx_and_10pct_timeouts() -> None:
    """30 % 503 and 10 % stalls past the 0.5 s read timeout, for 5 s of wall time.

    The breakers are made tolerant here, as docs/resilience.md advises for a flaky
    server: with the default (open above 50 % failures over 20 calls) 40 % failures
    keep tripping the busy endpoints, and about half of all actions are skipped. That
    is the breaker doing its job, tested with the kill and restart below; here the
    subject is the retries and the timeouts.
    """
    faults = FaultConfig(error_rate=0.3, stall_rate=0.1, seed=FAULT_SEED)
    tolerant = {"open_s": 1.0, "failure_threshold": 10, "error_rate": 0.75, "window": 40}
    with DemoServer(faults=faults) as srv:

        async def script(run: Run) -> None:
            await asyncio.sleep(5.0)

        run = await simulate(srv.base_url, limits_for(circuit_breaker=tolerant), script)

    assert run.stats is not None and run.stats.actions > 300  # it ran, and did not crash
    sends, actions = run.sends, [r for _, r in run.actions]
    stats = run.transport.statistics()
    assert stats["requests_sent"] == len(sends)
    # the faults were seen as such: ~10 % timeouts (status 0), ~27 % 503 (0.9 x 30 %)
    timeouts = sum(s.status == 0 and s.error == "timeout" for s in sends)
    errors = sum(s.status == 503 for s in sends)
    assert 0.04 * len(sends) <= timeouts <= 0.25 * len(sends), (timeouts, len(sends))
    assert 0.15 * len(sends) <= errors <= 0.40 * len(sends), (errors, len(sends))
    assert all(s.status in (0, 503) or answered_ok(s) for s in sends)
    # failed GETs were retried (after a timeout too), and retries rescued actions
    assert stats["retries"] > 0
    assert any(r.retries > 0 and r.ok and r.action in ("browse_feed", "read_post") for r in actions)
    rescued = sum(r.ok and r.retries > 0 for r in actions)
    assert rescued >= 0.1 * len(actions), (rescued, len(actions))
    # successes go on: most actions succeed, every second of the run
    assert sum(r.ok for r in actions) >= 0.6 * len(actions)
    assert sum(r.skipped for r in actions) <= 0.1 * len(actions)
    rates = Rates(run)
    seconds = windows(run.started_s, run.marks["stop"], 1.0)
    ok_share = [rates.oks(lo, hi) / max(1, rates.scheduled(lo, hi)) for lo, hi in seconds]
    assert len(ok_share) >= 4 and min(ok_share) >= 0.3, ok_share


async def test_429_storm_no_request_before_retry_after() -> None:
    """Two 2 s bursts where every request gets 429 with Retry-After: 1, set at run time."""
    storm = {
        "rate_limit": {
            "burst_every_s": 3.0,
            "burst_length_s": 2.0,
            "burst_start_s": 0.0,
            "retry_after_s": 1,
        },
        "seed": FAULT_SEED,
    }
    with DemoServer() as srv:

        async def script(run: Run) -> None:
            await asyncio.sleep(1.0)
            await admin(srv.base_url, "PUT", storm)  # 429 bursts at [0, 2) and [3, 5) s
            run.mark("storm")
            await asyncio.sleep(5.0)
            await admin(srv.base_url, "DELETE")
            run.mark("calm")
            await asyncio.sleep(2.5)

        run = await simulate(srv.base_url, limits_for(), script)

    assert run.stats is not None and run.stats.actions > 300
    sends = run.sends
    limited = [s for s in sends if s.status == 429]
    # a real storm: many 429s, on several endpoints, all carrying Retry-After: 1 (held
    # callers are released over a jittered window, so the first one back meets the storm
    # and closes the gate again for the rest: fewer 429s than callers)
    assert len(limited) >= 10 and len({s.endpoint for s in limited}) >= 2, limited
    assert {s.retry_after for s in limited} == {"1"}
    # THE rule: no request to an endpoint before its Retry-After has passed
    assert retry_after_violations(sends) == []
    # ...and held requests went out as soon as it had passed (held, not lost)
    starts: dict[str, list[float]] = {}
    for s in sorted(sends, key=lambda s: s.sent_s):
        starts.setdefault(s.endpoint, []).append(s.sent_s)
    released = [count_between(starts[s.endpoint], s.done_s + 1.0, s.done_s + 1.25) for s in limited]
    assert sum(n > 0 for n in released) >= 5, released
    stats = run.transport.statistics()
    assert stats["rate_limited"] == len(limited)
    assert stats["retries"] > 0  # GETs retried after Retry-After
    # a 429 is no failure for the breaker, and a 1 s gate is waited for, not skipped
    assert stats["skipped"] == 0 and not any(r.skipped for _, r in run.actions)
    # once the storm is over, everything the users do is sent and answered
    rates = Rates(run)
    calm, stop = run.marks["calm"] + 0.5, run.marks["stop"]
    assert rates.per_action(calm, stop) >= 0.95
    assert rates.oks(calm, stop) >= 0.95 * rates.sends(calm, stop) > 0


async def test_kill_and_restart_back_to_full_rate() -> None:
    """SIGKILL the server mid-run, leave it dead 1.5 s, restart it on the same port.

    "Full rate" is measured as sends per action the engine scheduled, per 0.5 s
    window (see :class:`Rates`), against the same ratio before the kill; the raw rate
    is checked too, with a wide margin for the noise of the sessions.
    """
    with DemoServer() as srv:

        async def script(run: Run) -> None:
            await asyncio.sleep(2.5)  # a 1.5 s baseline after the first second
            run.mark("kill")
            await asyncio.to_thread(srv.kill)
            run.mark("dead")
            await asyncio.sleep(1.5)
            run.snapshots["outage"] = run.transport.statistics()
            run.mark("restart")
            await asyncio.to_thread(srv.restart)  # returns once GET /health answers 200
            run.mark("up")
            await asyncio.sleep(6.0)

        run = await simulate(srv.base_url, limits_for(), script)

    assert run.stats is not None  # the engine did not crash
    m, rates = run.marks, Rates(run)
    warm = run.started_s + 1.0
    baseline = rates.per_action(warm, m["kill"])
    assert baseline >= 0.95  # healthy: every scheduled action is sent (about once)

    # while the server was dead: only connection failures...
    down = [s for s in run.sends if m["dead"] <= s.sent_s < m["restart"]]
    assert down and all(s.status == 0 for s in down), down[:5]
    # ...and the breakers opened and took the load: most actions were skipped, not sent
    assert "open" in run.snapshots["outage"]["breakers"].values()
    assert run.transport.statistics()["skipped"] > 0
    outage = [r for _, r in run.actions if m["dead"] <= scheduled_wall_s(run, r) < m["restart"]]
    assert sum(r.skipped for r in outage) >= 0.5 * len(outage) > 0
    assert len(down) <= 0.3 * len(outage)

    # back to full rate within recovery_s of the restart: the first t after it from which
    # two 0.5 s windows in a row send >= 80 % of the baseline and get >= 95 % answers
    recovery_s = 4.0  # the breakers' open_s (1 s) plus slack for a busy machine

    def recovered(t: float) -> bool:
        for lo, hi in ((t, t + 0.5), (t + 0.5, t + 1.0)):
            if rates.scheduled(lo, hi) < 10:
                return False  # too few actions to tell
            if rates.per_action(lo, hi) < 0.8 * baseline:
                return False
            if rates.oks(lo, hi) < 0.95 * rates.sends(lo, hi):
                return False
        return True

    steps = [m["up"] + 0.1 * i for i in range(int((m["stop"] - 1.0 - m["up"]) / 0.1))]
    back = next((t for t in steps if recovered(t)), None)
    assert back is not None, "never back to full rate after the restart"
    assert back - m["up"] <= recovery_s, f"back to full rate {back - m['up']:.1f} s after restart"
    # and it stays there: by the ratio, and by the raw rate (with a wide margin, as
    # sessions make raw counts bursty)
    assert rates.per_action(back, m["stop"]) >= 0.9 * baseline
    assert rates.oks(back, m["stop"]) >= 0.98 * rates.sends(back, m["stop"])
    raw_before = rates.sends(warm, m["kill"]) / (m["kill"] - warm)
    raw_after = rates.sends(back, m["stop"]) / (m["stop"] - back)
    assert raw_after >= 0.5 * raw_before, (raw_after, raw_before)
