"""Think times between the steps of a browser flow: a whole simulation on an injected
jumping clock (no wall-clock tolerance) against the demo's pages in Chromium. The
simulated gaps between a flow's steps follow the persona's think time (lognormal, median
and sigma checked with a fixed seed), the user's next action counts from the flow's last
step, and the pages saw each step's simulated time (a post published through /compose
carries the publish click's time)."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from helpers import ListSink
from sim_engine import default_scenario
from sim_engine.demo import DemoServer
from sim_engine.engine.clock import ManualClock
from sim_engine.engine.simulation import Simulation
from sim_engine.model.browser_spec import demo_browser_data
from sim_engine.model.records import ActionRecord
from sim_engine.runs.targets import bind_target, with_browser
from sim_engine.targets.browser import BrowserTarget
from sim_engine.targets.browser.pacing import StepPacer
from sim_engine.targets.http import AiohttpTransport

START = datetime(2030, 4, 2, 12, 0, tzinfo=timezone.utc).timestamp()
MEDIAN_S, SIGMA = 40.0, 0.5
MIX = {"browse_feed": 4, "read_post": 3, "create_post": 1, "update_post": 0, "delete_post": 0}
PERSONA = {
    "share": 1.0,
    "sessions_per_day": 24,
    "session": {
        "mean_actions": 6,
        "max_actions": 12,
        "think_time": {"median_s": MEDIAN_S, "sigma": SIGMA, "min_s": 1.0},
    },
    "actions": {"working": MIX, "relaxing": MIX},
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with DemoServer() as srv:
        yield srv.base_url


async def simulate(base_url: str) -> list[ActionRecord]:
    """Three browser users for two simulated hours on a ManualClock; their records."""
    scenario = default_scenario().with_overrides(
        **{
            "population.initial": 3,
            "population.timezones": {"UTC": 1.0},
            "seed": 5,
            "personas": {"reader": PERSONA},
            "lifecycle.enabled": False,
            "browser": {**demo_browser_data(), "share": 1.0},
        }
    )
    inner = bind_target(scenario, AiohttpTransport(base_url))
    target = with_browser(scenario, inner, base_url, None)
    assert isinstance(target, BrowserTarget)
    sink = ListSink()
    sim = Simulation(scenario, target, ManualClock(START), [sink], duration_s=7200, secret="t")
    try:
        await sim.run()
    finally:
        await target.aclose()
    return [r for r in sink.records if isinstance(r, ActionRecord)]


def step_gaps(records: list[ActionRecord]) -> list[float]:
    """Simulated seconds between consecutive steps of one flow (index k, then k + 1)."""
    gaps = []
    last: dict[int, ActionRecord] = {}
    for r in records:
        prev = last.get(r.user_id)
        before = prev.page if prev is not None else None
        index = r.page["index"] if r.page is not None else None
        if prev is not None and before is not None and index == before["index"] + 1:
            gaps.append(r.sim_ts - prev.sim_ts)
        last[r.user_id] = r
    return gaps


async def test_steps_of_a_flow_are_a_persona_think_time_apart(server: str) -> None:
    records = await simulate(server)
    pages = [r for r in records if r.page is not None]
    gaps = step_gaps(records)
    assert len(gaps) >= 40, (len(pages), len(gaps))
    assert min(gaps) >= 1.0  # the persona's floor: no two steps at the same instant
    logs = [math.log(g) for g in gaps]
    # lognormal(median 40 s, sigma 0.5): with >= 40 gaps the sample median is within
    # about +-20 % and the log-spread within +-0.15 (a zero or constant think fails)
    assert statistics.median(gaps) == pytest.approx(MEDIAN_S, rel=0.25)
    assert statistics.stdev(logs) == pytest.approx(SIGMA, abs=0.18)

    # the user's next action counts from its flow's last step, never from the dispatch
    by_user: dict[int, list[ActionRecord]] = defaultdict(list)
    for r in records:
        by_user[r.user_id].append(r)
    followed = 0
    for mine in by_user.values():
        for prev, nxt in itertools.pairwise(mine):
            same_flow = nxt.page is not None and nxt.page["index"] > 0
            if prev.page is not None and not same_flow:
                assert nxt.sim_ts >= prev.sim_ts + 1.0, (prev, nxt)
                followed += 1
    assert followed >= 5

    # every record's local time is its sim_ts (ISO with the user's offset)
    for r in pages:
        assert datetime.fromisoformat(r.sim_time).timestamp() == pytest.approx(r.sim_ts, abs=1e-3)
    # the pages saw the step's simulated time: a published post carries the click's
    publish = [r for r in pages if r.ok and r.endpoint == "PAGE click test_id=publish"]
    assert publish, "no post published through the pages"
    async with httpx.AsyncClient(base_url=server) as client:
        posts = (await client.get("/posts", params={"limit": 100})).json()
    created = {datetime.fromisoformat(p["created_at"]).timestamp() for p in _items(posts)}
    for r in publish:
        assert any(abs(t - r.sim_ts) < 1e-3 for t in created), r.sim_time
        assert r.sim_ts > START  # later than its flow's dispatch


def _items(doc: Any) -> list[dict[str, Any]]:
    return list(doc["items"] if isinstance(doc, dict) else doc)


class _LiveClock:
    """A clock that follows the wall clock (``jumps`` False) and notes what it waited for."""

    jumps = False

    def __init__(self) -> None:
        self.waited: list[float] = []

    def now(self) -> float:
        return START

    def wall_seconds_until(self, sim_t: float) -> float | None:
        return sim_t - START

    async def sleep_until(self, sim_t: float) -> None:
        self.waited.append(sim_t)


async def test_a_live_clock_waits_for_each_think_time_and_a_jumping_one_never() -> None:
    stamped: list[str] = []

    async def stamp(iso: str) -> None:
        stamped.append(iso)

    draws = iter([30.0, 12.5])
    live = _LiveClock()
    pacer = StepPacer(7, START, "2030-04-02T14:00:00+02:00", lambda u, r: next(draws),
                      random.Random(1), live, stamp)  # fmt: skip
    assert [await pacer.next_step() for _ in range(3)] == [0.0, 30.0, 42.5]
    assert live.waited == [START + 30.0, START + 42.5]
    assert stamped == ["2030-04-02T14:00:30.000+02:00", "2030-04-02T14:00:42.500+02:00"]
    assert pacer.offset_s == 42.5
    jumping = ManualClock(START)
    pacer = StepPacer(7, START, "2030-04-02T12:00:00+00:00", lambda u, r: 5.0,
                      random.Random(1), jumping, stamp)  # fmt: skip
    assert [await pacer.next_step() for _ in range(3)] == [0.0, 5.0, 10.0]
    assert jumping.now() == START  # the engine moves a jumping clock, never a flow
    unpaced = StepPacer(7, START, "2030-04-02T12:00:00+00:00", None, random.Random(1), live, stamp)
    assert [await unpaced.next_step() for _ in range(3)] == [0.0, 0.0, 0.0]
