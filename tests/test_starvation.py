"""The starvation warning (issue 12, "Why" 7): a target's ``Backoff`` holds back most actions.

A target answering ``Backoff: 10`` made a 3-hour run at ``--speed max`` send 80
actions in 300 s without a word. The resilient transport now measures, over a
sliding window of wall seconds on its injected clock, which requests a gate or
a throttled retry held back; above half of them the console, the dashboard and
``metrics.json`` name the endpoints and their delays. Everything here runs on
the fake clock of ``test_resilience`` (time jumps when every task sleeps).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from rich.console import Console

from helpers import FakeClock
from sim_engine.observe.dashboard.snapshot import target_statistics
from sim_engine.observe.dashboard.view import render
from sim_engine.observe.starvation import StarvationWatch, starvation_of, starvation_summary
from sim_engine.targets.resilient import ResilientTransport
from sim_engine.targets.starvation import HoldBackMeter, describe
from sim_engine.targets.transport import Response
from test_dashboard import snapshot
from test_resilience import EPOCH, ScriptedTransport, limits, resilient, throttled


def backoff(seconds: str) -> Response:
    return Response(200, b"{}", 1.0, headers={"Backoff": seconds})


async def crawl(transport: ResilientTransport, inner: ScriptedTransport, n: int) -> None:
    """``n`` users each check /health once, then read /posts 4 times: /posts always answers
    ``Backoff: 10``, so after the first round every read waits behind its gate."""
    inner.script("/posts", *[backoff("10") for _ in range(4 * n)])

    async def user() -> None:
        await transport.request("GET", "/health")
        for _ in range(4):
            await transport.request("GET", "/posts")

    await asyncio.gather(*(user() for _ in range(n)))


async def test_a_backoff_holding_back_most_requests_is_reported_with_endpoint_and_delay() -> None:
    transport, inner, clock = resilient()
    assert transport.statistics()["starving"] is None
    users = asyncio.create_task(crawl(transport, inner, 8))
    await clock.sleep(35)  # while the users crawl
    starving = transport.statistics()["starving"]
    await users
    # the first round went through at once; then one read per 10 s (each answer closes the
    # gate again): 24 reads held back, the run crawls
    assert len(inner.times("/posts")) == 32 and clock.t >= 240
    assert starving is not None
    assert list(starving["endpoints"]) == ["GET /posts"]  # /health was never held
    assert starving["endpoints"]["GET /posts"]["delay_s"] == 10.0
    assert starving["endpoints"]["GET /posts"]["held"] >= 8  # every user waits
    assert starving["share"] > 0.5 and starving["window_s"] == 30.0
    assert describe(starving).startswith("the target holds back")
    assert "GET /posts waits 10 s" in describe(starving)

    # the target stops asking: a window later most requests go straight through again
    for _ in range(6):
        await transport.request("GET", "/health")
    stats = transport.statistics()
    assert stats["starving"] is None
    [episode] = stats["starvation"]
    assert episode["to_wall_s"] is not None and episode["to_wall_s"] > episode["from_wall_s"]
    assert episode["peak_share"] > 0.5
    assert episode["endpoints"]["GET /posts"]["delay_s"] == 10.0


async def test_retry_after_on_429_counts_and_a_minority_held_back_is_no_starvation() -> None:
    transport, inner, _ = resilient(limits(max_retries=1))
    inner.script("/search", throttled(429, retry_after="5"))
    await transport.request("GET", "/search")  # held back 5 s, then answered
    for _ in range(4):
        await transport.request("GET", "/health")
    assert transport.statistics()["starving"] is None  # 1 of 5: a bad moment, not starvation
    inner.script("/search", *[throttled(429, retry_after="5") for _ in range(8)])
    for _ in range(4):
        await transport.request("GET", "/search")
    starving = transport.statistics()["starving"]
    assert starving is not None
    assert starving["endpoints"]["GET /search"]["delay_s"] == 5.0


def test_the_window_slides_on_the_injected_clock() -> None:
    clock = FakeClock(EPOCH)
    meter = HoldBackMeter(clock, window_s=10.0, min_requests=4)
    for _ in range(4):
        meter.wait("GET /a", delay_s=2.0)
        meter.done("GET /a", held=True)
    assert meter.current() is not None
    clock.t = 10.5  # every request done is older than the window now: none left
    assert meter.current() is None
    for _ in range(3):
        meter.wait("GET /a", delay_s=2.0)
    assert meter.current() is None  # 3 requests are too few for a verdict
    meter.done("GET /b", held=False)
    assert meter.current() == {
        "share": 0.75,
        "requests": 4,
        "window_s": 10.0,
        "endpoints": {"GET /a": {"held": 3, "delay_s": 2.0}},  # waiting now
    }
    for _ in range(3):
        meter.done("GET /a", held=True)
    for _ in range(2):
        meter.done("GET /b", held=False)
    assert meter.current() is not None  # 3 of 6: starved still (it clears at 40%)
    clock.t = 11.0
    meter.done("GET /b", held=False)
    meter.done("GET /b", held=False)
    assert meter.current() is None  # 3 of 8
    assert [e["to_wall_s"] for e in meter.episodes()] == [10.5, 11.0]


class FakeSim:
    def __init__(self, target: Any) -> None:
        self.target = target


class Wrapped:
    """A target without statistics of its own, over the transport (as a plugin target)."""

    def __init__(self, transport: ResilientTransport) -> None:
        self.transport = transport


async def test_console_warns_once_when_it_begins_and_once_when_it_ends() -> None:
    transport, inner, clock = resilient()
    out = io.StringIO()
    watch = StarvationWatch(out, sleep=clock.sleep)
    await watch.start(FakeSim(Wrapped(transport)))  # type: ignore[arg-type]
    users = asyncio.create_task(crawl(transport, inner, 8))
    await clock.sleep(35)  # the watch looks once a second meanwhile
    assert watch.check() is not None and watch.check() is not None  # still on: no new line
    await users
    for _ in range(6):
        await transport.request("GET", "/health")
    await watch.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("sim-engine: warning: the target holds back")
    assert "GET /posts waits 10 s" in lines[0]
    assert lines[1] == "sim-engine: the target no longer holds back most requests"


async def test_dashboard_and_metrics_say_so() -> None:
    transport, inner, clock = resilient()
    users = asyncio.create_task(crawl(transport, inner, 8))
    await clock.sleep(35)
    stats = target_statistics(Wrapped(transport))
    assert "GET /posts waits 10 s" in stats["starving"]
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(render(snapshot(starving=stats["starving"])))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "warning: the target holds back" in shown
    now, episodes = starvation_of(Wrapped(transport))
    assert now is not None and len(episodes) == 1 and episodes[0]["to_wall_s"] is None
    await users
    assert starvation_of(object()) == (None, [])
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(render(snapshot()))
    assert "holds back" not in console.file.getvalue()  # type: ignore[attr-defined]


def test_the_end_of_run_summary_says_how_long_the_run_was_starved() -> None:
    episodes: list[dict[str, Any]] = [
        {"from_wall_s": 2.0, "to_wall_s": 12.0, "peak_share": 0.8,
         "endpoints": {"GET /posts": {"held": 7, "delay_s": 10.0}}},
        {"from_wall_s": 40.0, "to_wall_s": None, "peak_share": 1.0,
         "endpoints": {"GET /posts": {"held": 3, "delay_s": 3.0},
                       "POST /posts": {"held": 2, "delay_s": 5.0}}},
    ]  # fmt: skip
    assert starvation_summary(episodes, 60.0) == (
        "starved: the target's Backoff / Retry-After held back most requests for 30 of 60 "
        "wall s (GET /posts 10 s, POST /posts 5 s); see metrics.json starvation"
    )
    assert starvation_summary([], 60.0) is None
