"""The browser tier on the demo app's pages, in Debian's Chromium (installed by
scripts/test-deps.sh): cookies and localStorage persist across a user's sessions and
across a save and restore (what --resume does), the loopback guard aborts external
requests, synthetic markers reach the app, records carry Navigation Timing."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import signup_payload
from sim_engine import default_scenario
from sim_engine.demo import DemoServer
from sim_engine.model.browser_spec import demo_browser_data
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.runs.targets import bind_target, with_browser
from sim_engine.targets.browser import BrowserPool, BrowserTarget
from sim_engine.targets.http import AiohttpTransport

T0 = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with DemoServer() as srv:
        yield srv.base_url


def browser_target(
    base_url: str,
    flows: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **changes: Any,
) -> BrowserTarget:
    """The demo's browser section for every user (share 1), ``flows`` and ``changes`` on top."""
    data = {**demo_browser_data(), "share": 1.0, **changes}
    data["flows"] = {**data["flows"], **(flows or {})}
    scenario = default_scenario().with_overrides(browser=data)
    inner = bind_target(scenario, AiohttpTransport(base_url))
    target = with_browser(scenario, inner, base_url, headers)
    assert isinstance(target, BrowserTarget)
    return target


def req(action: str, user_id: int, at: float = T0, **kw: Any) -> ActionRequest:
    iso = datetime.fromtimestamp(at, timezone.utc).isoformat()
    return ActionRequest(action, user_id, at, iso, **kw)


async def join(target: BrowserTarget, user_id: int, name: str) -> None:
    for action in ("sign_up", "log_in"):
        outcome = await target.send(req(action, user_id, payload=signup_payload(name)))
        assert outcome.ok, outcome


def steps(outcome: Outcome) -> list[str]:
    return [p.step for p in outcome.pages]


@pytest.fixture
async def target(server: str) -> AsyncIterator[BrowserTarget]:
    made = browser_target(
        server,
        actions={
            "create_post": {"compose": 1},
            "read_post": {"read": 1},
            "browse_feed": {"list": 1},
        },
    )
    yield made
    await made.aclose()


async def test_cookies_and_local_storage_persist_across_sessions_and_a_restore(
    server: str, target: BrowserTarget
) -> None:
    await join(target, 1, "persist1")
    first = await target.send(req("create_post", 1))
    assert first.ok, first.error
    assert steps(first)[:2] == ["goto /login", "fill test_id=username"]  # signed out at first
    read = await target.send(req("read_post", 1))
    assert read.ok and "goto /login" not in steps(read)
    title = target.export_memory(1)["browser"]["memory"]["last_title"]  # type: ignore[index]
    target.end_session(1)
    await target.settle()
    assert target.sessions == 1
    # a new session: a new context from the saved storage state
    again = await target.send(req("browse_feed", 1))
    assert again.ok, again.error
    assert target.sessions == 2
    assert steps(again) == [
        "goto /list",
        "click test_id=recent-link",
        "wait_for test_id=post-title",
    ]
    saved = json.loads(json.dumps(target.export_memory(1)))
    cookies = {c["name"] for c in saved["browser"]["storage"]["cookies"]}
    assert {"sim_session", "sim_synthetic"} <= cookies
    assert "password" not in saved["browser"]["identity"]
    # what --resume does: a new target takes the saved memory back from state.db
    resumed = browser_target(server, actions={"browse_feed": {"list": 1}})
    try:
        resumed.restore_memory(1, saved, password="pw-persist1")
        after = await resumed.send(req("browse_feed", 1))
        assert after.ok and steps(after)[0] == "goto /list"
        assert after.pages[-1].url.startswith(server + "/p/")
        assert title in (await resumed_title(server, after.pages[-1].url))
        # a user restored without its browser state logs in again and has no reading list
        fresh = browser_target(server, actions={"browse_feed": {"list": 1}})
        try:
            fresh.restore_memory(
                1,
                {**saved, "browser": {**saved["browser"], "storage": None}},
                password="pw-persist1",
            )
            cold = await fresh.send(req("browse_feed", 1))
            assert steps(cold)[0] == "goto /login"
            assert "click test_id=recent-link" not in steps(cold)
        finally:
            await fresh.aclose()
    finally:
        await resumed.aclose()


async def resumed_title(server: str, url: str) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).text


async def test_steps_carry_navigation_timings_and_the_simulated_time(
    server: str, target: BrowserTarget
) -> None:
    await join(target, 2, "timer2")
    at = T0 + 3600
    made = await target.send(req("create_post", 2, at=at))
    assert made.ok, made.error
    gotos = [p for p in made.pages if p.step.startswith("goto")]
    assert gotos and all(p.status == 200 for p in gotos)
    for page in gotos:
        assert page.ttfb_ms is not None and page.dcl_ms is not None and page.load_ms is not None
        assert 0 < page.ttfb_ms <= page.dcl_ms <= page.load_ms
    fills = [p for p in made.pages if p.step.startswith("fill")]
    assert fills and all(p.ttfb_ms is None for p in fills)  # no new document
    post_url = made.pages[-1].url
    assert "/p/" in post_url
    async with httpx.AsyncClient() as client:
        post = (await client.get(f"{server}/posts/{post_url.rsplit('/', 1)[1]}")).json()
    assert post["created_at"] == datetime.fromtimestamp(at, timezone.utc).isoformat()


async def test_synthetic_header_and_cookie_each_mark_a_page_sign_up(server: str) -> None:
    signup_flow = [
        {"goto": "/signup"},
        {"fill": {"test_id": "username", "value": "{user.username}"}},
        {"fill": {"test_id": "email", "value": "{user.email}"}},
        {"fill": {"test_id": "password", "value": "{user.password}"}},
        {"click": {"test_id": "signup-submit"}},
        {"wait_for": {"test_id": "nav-profile"}},
    ]
    found: dict[str, bool] = {}
    cases: list[tuple[str, dict[str, str], str | None]] = [
        ("hdr3", {"X-Synthetic": "true"}, None),
        ("ck3", {}, server),
        ("none3", {}, None),
    ]
    for name, headers, marker_url in cases:
        made = browser_target(
            server,
            {"signup": signup_flow},
            headers,
            login=None,
            actions={"browse_feed": {"signup": 1}},
        )
        spec, inner = made.spec, made.inner
        await made.pool.aclose()
        pool = BrowserPool(headers=headers, marker_url=marker_url)
        target = BrowserTarget(inner, spec, server, pool)
        try:
            target.restore_memory(
                9,
                {"browser": {"identity": {"username": name, "email": f"{name}@sim-engine.test"}}},
                password="pw",
            )
            outcome = await target.send(req("browse_feed", 9))
            assert outcome.ok, outcome.error
        finally:
            await target.aclose()
        found[name] = await synthetic(server, name)
    assert found == {"hdr3": True, "ck3": True, "none3": False}


async def synthetic(server: str, username: str) -> bool:
    """Whether the demo flags ``username`` synthetic (found by scanning user ids)."""
    async with httpx.AsyncClient() as client:
        for user_id in range(1, 200):
            resp = await client.get(f"{server}/users/{user_id}")
            if resp.status_code == 200 and resp.json()["username"] == username:
                return bool(resp.json()["is_synthetic"])
    raise AssertionError(f"no user {username}")


@pytest.fixture
def external_page(tmp_path: Path) -> Iterator[str]:
    """A loopback page that pulls a script and an image from outside the machine."""
    (tmp_path / "index.html").write_text(
        "<html><body><h1 data-testid='t'>hi</h1>"
        "<img src='http://example.com/pixel.png'>"
        "<script src='http://93.184.215.14/x.js'></script></body></html>"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_the_loopback_guard_aborts_external_sub_requests_and_navigations(
    external_page: str,
) -> None:
    flows = {"outside": [{"goto": "/index.html"}, {"goto": "http://example.com/"}]}
    target = browser_target(
        external_page,
        flows,
        login=None,
        session_cookie=None,
        actions={"browse_feed": {"outside": 1}},
    )
    try:
        target.restore_memory(4, {"browser": {"identity": {"username": "g"}}})
        outcome = await target.send(req("browse_feed", 4))
    finally:
        await target.aclose()
    page, away = outcome.pages
    assert page.ok and page.status == 200
    blocked = sorted(page.failed_requests)
    assert len(blocked) == 2, blocked
    assert "example.com/pixel.png" in blocked[0] + blocked[1]
    assert all("ERR_BLOCKED_BY_CLIENT" in b for b in blocked)
    assert not away.ok and "ERR_BLOCKED_BY_CLIENT" in (away.error or "")
    assert not outcome.ok and target.pool.blocked == 3


async def test_a_user_waiting_for_a_context_takes_the_slot_of_an_idle_one(server: str) -> None:
    """One slot, two users in open sessions: the second user's flow closes the idle
    first user's context (saved) instead of waiting for a session end that only the
    engine can bring (at the end of a run it never comes: the run hung)."""
    target = browser_target(server, max_contexts=1, actions={"read_post": {"read": 1}})
    try:
        await join(target, 5, "evict5")
        await join(target, 6, "evict6")
        first = await target.send(req("read_post", 5))
        assert first.ok and steps(first)[0] == "goto /login"
        # user 5's session is still open; user 6 needs the only slot
        second = await asyncio.wait_for(target.send(req("read_post", 6)), timeout=120)
        assert second.ok, second.error
        assert target.evicted == 1 and target.sessions == 2
        # user 5 comes back: its saved cookies open its context again, still signed in
        again = await asyncio.wait_for(target.send(req("read_post", 5)), timeout=120)
        assert again.ok and "goto /login" not in steps(again)
        assert target.evicted == 2 and target.sessions == 3
        # both at once: each waits for the other's flow to end, neither for ever
        both = await asyncio.wait_for(
            asyncio.gather(target.send(req("read_post", 6)), target.send(req("read_post", 5))),
            timeout=240,
        )
        assert all(o.ok for o in both), [o.error for o in both]
    finally:
        await target.aclose()


async def test_a_failed_step_leaves_a_screenshot_named_by_user_flow_and_step(
    server: str, tmp_path: Path
) -> None:
    """``browser.screenshots: on_failure`` (the default): a PNG per failed step under
    OUT/screenshots, at most ``max_screenshots``; the step (and its record) names it."""
    from sim_engine.engine.executor import page_records
    from sim_engine.model.population import IdentityFactory

    broken = {"broken": [{"goto": "/"}, {"click": {"test_id": "no-such-button"}}]}
    changes: dict[str, Any] = {"login": None, "session_cookie": None, "step_timeout_s": 1.0}
    out = tmp_path / "run"
    made = browser_target(server, broken, max_screenshots=2, actions={"read_post": {"broken": 1}},
                          **changes)  # fmt: skip
    scenario = default_scenario().with_overrides(browser=made.spec.model_dump(mode="json"))
    await made.aclose()
    target = with_browser(scenario, made.inner, server, None, out)
    assert isinstance(target, BrowserTarget)
    try:
        target.restore_memory(7, {"browser": {"identity": {"username": "shot7"}}})
        outcomes = [await target.send(req("read_post", 7)) for _ in range(3)]
    finally:
        await target.aclose()
    assert all(not o.ok and len(o.pages) == 2 for o in outcomes)
    assert all(o.pages[0].ok and o.pages[0].screenshot is None for o in outcomes)  # ok: none
    names = [o.pages[1].screenshot for o in outcomes]
    assert names[0] == "screenshots/u7-broken-1-click-0001.png"
    assert names[1] == "screenshots/u7-broken-1-click-0002.png"
    assert names[2] is None  # the third failure is past max_screenshots
    files = sorted(p.name for p in (out / "screenshots").iterdir())
    assert files == [n.rsplit("/", 1)[1] for n in names[:2] if n is not None]
    for name in files:
        assert (out / "screenshots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.screenshots is not None and target.screenshots.skipped == 1
    # the step's record carries the file name
    user = IdentityFactory(1, [1.0], [("UTC", 1.0)], "x.test").create(T0, persona=0)
    records = page_records(user, "lurker", "working", req("read_post", 7), outcomes[0])
    assert [r.page["screenshot"] for r in records if r.page] == [None, names[0]]
    # off: no screenshots at all; a resumed run (same directory) counts what is there
    off = scenario.with_overrides(**{"browser.screenshots": "off"})
    quiet = with_browser(off, bind_target(off, AiohttpTransport(server)), server, None, out)
    assert isinstance(quiet, BrowserTarget) and quiet.screenshots is None
    await quiet.aclose()
    again = with_browser(
        scenario, bind_target(scenario, AiohttpTransport(server)), server, None, out
    )
    assert isinstance(again, BrowserTarget) and again.screenshots is not None
    assert again.screenshots.taken == 2
    await again.aclose()
