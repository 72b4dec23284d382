"""Redirects are followed by our code, each hop checked against the safety guard (issue 13.1).

Every test runs a loopback server and a connection guard: aiohttp's connector is
wrapped so that it records the host of every connection it is asked for and refuses
any outside loopback before a socket is opened. Nothing ever leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from helpers import BUSY_START, DEMO_LOGIN, DEMO_SIGNUP, Starter, read_jsonl
from sim_engine.model.scenario import Scenario, load_scenario
from sim_engine.runs.runner import RunOptions, execute
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.redirects import MAX_REDIRECTS

OUTSIDE = "http://203.0.113.1/users"  # TEST-NET-3: never reached, the guard refuses first


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts aiohttp was asked to connect to; non-loopback ones are refused unopened."""
    hosts: list[str] = []
    original = aiohttp.TCPConnector.connect

    async def guarded(self: aiohttp.TCPConnector, req: Any, *args: Any, **kwargs: Any) -> Any:
        host = str(req.url.host)
        hosts.append(host)
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise aiohttp.ClientConnectionError(f"test guard: no connection to {host}")
        return await original(self, req, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "connect", guarded)
    return hosts


def _redirecting_app(
    seen: list[dict[str, Any]], location: str, status: int = 307
) -> web.Application:
    async def users(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "method": request.method,
                     "auth": request.headers.get("Authorization"),
                     "body": await request.text()})  # fmt: skip
        if request.path == "/users":
            return web.Response(status=status, headers={"Location": location})
        return web.json_response({"path": request.path, "method": request.method})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", users)
    return app


async def test_a_redirect_off_loopback_is_refused_before_any_connect(
    serve: Starter, connects: list[str]
) -> None:
    seen: list[dict[str, Any]] = []
    url = await serve(_redirecting_app(seen, OUTSIDE))
    transport = AiohttpTransport(url)
    try:
        body = {"username": "ann", "password": "hunter2-secret"}
        resp = await transport.request("POST", "/users", body, {"Authorization": "Bearer tok"})
    finally:
        await transport.aclose()
    assert resp.status == 0
    assert resp.error is not None and "redirect refused (307)" in resp.error
    assert "203.0.113.1" in resp.error and "allow_hosts" in resp.error
    assert connects == ["127.0.0.1"]  # no connection was even attempted elsewhere
    assert [s["path"] for s in seen] == ["/users"]


@pytest.mark.parametrize("status", [301, 302, 303, 308])
async def test_every_redirect_status_is_guarded(
    serve: Starter, connects: list[str], status: int
) -> None:
    url = await serve(_redirecting_app([], OUTSIDE, status))
    transport = AiohttpTransport(url)
    try:
        resp = await transport.request("GET", "/users")
    finally:
        await transport.aclose()
    assert resp.status == 0 and resp.error is not None and "redirect refused" in resp.error
    assert set(connects) == {"127.0.0.1"}


async def test_a_same_host_redirect_is_followed_with_its_method(
    serve: Starter, connects: list[str]
) -> None:
    seen: list[dict[str, Any]] = []
    url = await serve(_redirecting_app(seen, "/users/new"))
    transport = AiohttpTransport(url)
    try:
        resp = await transport.request("POST", "/users", {"a": 1}, {"Authorization": "Bearer t"})
    finally:
        await transport.aclose()
    assert resp.status == 200
    assert json.loads(resp.body) == {"path": "/users/new", "method": "POST"}
    assert seen[1] == {"path": "/users/new", "method": "POST", "auth": "Bearer t",
                       "body": '{"a": 1}'}  # fmt: skip
    assert resp.headers is None  # the Location header is not passed on


async def test_303_continues_as_a_get_without_body(serve: Starter, connects: list[str]) -> None:
    seen: list[dict[str, Any]] = []
    url = await serve(_redirecting_app(seen, "/done", 303))
    transport = AiohttpTransport(url)
    try:
        resp = await transport.request("POST", "/users", {"a": 1})
    finally:
        await transport.aclose()
    assert resp.status == 200
    assert seen[1]["method"] == "GET" and seen[1]["body"] == ""


async def test_another_origin_gets_no_credentials(serve: Starter, connects: list[str]) -> None:
    other: list[dict[str, Any]] = []
    other_url = await serve(_redirecting_app(other, "unused"))
    url = await serve(_redirecting_app([], other_url + "/landing"))
    transport = AiohttpTransport(url)
    try:
        resp = await transport.request(
            "GET", "/users", headers={"Authorization": "Bearer t", "X-Api-Key": "k", "X-Ok": "1"}
        )
    finally:
        await transport.aclose()
    assert resp.status == 200
    assert other == [{"path": "/landing", "method": "GET", "auth": None, "body": ""}]


async def test_allow_hosts_lets_a_redirect_through(serve: Starter, connects: list[str]) -> None:
    """A host in allow_hosts may be redirected to (here one the guard lets through too)."""
    url = await serve(_redirecting_app([], OUTSIDE))
    transport = AiohttpTransport(url, allow_hosts=("203.0.113.1",))
    try:
        resp = await transport.request("GET", "/users")
    finally:
        await transport.aclose()
    assert resp.status == 0 and resp.error is not None
    assert "test guard" in resp.error  # followed: refused by the test's guard, not ours
    assert connects == ["127.0.0.1", "203.0.113.1"]


async def test_a_redirect_loop_ends(serve: Starter, connects: list[str]) -> None:
    seen: list[dict[str, Any]] = []
    url = await serve(_redirecting_app(seen, "/users"))
    transport = AiohttpTransport(url)
    try:
        resp = await transport.request("GET", "/users")
    finally:
        await transport.aclose()
    assert resp.status == 0 and resp.error == f"too many redirects (more than {MAX_REDIRECTS})"
    assert len(seen) == MAX_REDIRECTS + 1


# -- a whole run ------------------------------------------------------------------------------


def _run_scenario(tmp_path: Path, allow_hosts: list[str]) -> Scenario:
    notes = {"path": "/notes", "expect": [200]}
    path = tmp_path / "redirects.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "redirects",
                "seed": 1,
                "population": {"initial": 3, "signups_per_day": 0},
                "lifecycle": {"enabled": False},
                "safety": {"allow_hosts": allow_hosts},
                "personas": {"member": {"share": 1, "actions": {"working": {"list_notes": 1}}}},
                "api": {
                    "auth": {"signup": DEMO_SIGNUP, "login": DEMO_LOGIN},
                    "actions": {"list_notes": notes},
                },
            }
        ),
        encoding="utf-8",
    )
    return load_scenario(path)


@pytest.mark.parametrize("allowed", [False, True])
async def test_a_run_never_follows_a_sign_up_off_loopback(
    serve: Starter, connects: list[str], tmp_path: Path, allowed: bool
) -> None:
    seen: list[dict[str, Any]] = []
    url = await serve(_redirecting_app(seen, OUTSIDE))
    start = datetime.fromisoformat(BUSY_START.replace("Z", "+00:00")).timestamp()
    scenario = _run_scenario(tmp_path, ["203.0.113.1"] if allowed else [])
    options = RunOptions(scenario, url, None, 3600.0, start, tmp_path / "run", control=False)
    await asyncio.to_thread(execute, options)
    sign_ups = [
        r for r in read_jsonl(tmp_path / "run" / "actions.jsonl") if r["action"] == "sign_up"
    ]
    assert sign_ups and not any(r["ok"] for r in sign_ups)
    assert [s for s in seen if s["path"] == "/users"]  # the loopback server was asked
    if allowed:  # the scenario's allow_hosts reaches the transport: followed (then refused here)
        assert "203.0.113.1" in connects
        assert all("test guard" in r["error"] for r in sign_ups)
    else:
        assert set(connects) == {"127.0.0.1"}
        assert all("redirect refused (307)" in r["error"] for r in sign_ups)
