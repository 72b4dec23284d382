"""Tests of the targets: the social API binding over in-process and real HTTP transports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from helpers import Starter, signup_payload
from sim_engine.demo import create_app
from sim_engine.demo.launcher import find_free_port
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.targets import MockTarget, Response, SocialApiTarget, TargetUnreachableError
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.inprocess import AsgiTransport

SIM_TS = 1_715_792_400.0  # 2024-05-15T17:00:00Z
SIM_ISO = "2024-05-15T19:00:00.000+02:00"  # the same instant in a user's local zone


def req(action: str, user_id: int = 1, **kw: Any) -> ActionRequest:
    return ActionRequest(action, user_id, SIM_TS, kw.pop("iso", SIM_ISO), **kw)


@pytest.fixture
async def transport() -> AsyncIterator[AsgiTransport]:
    app = create_app()
    t = AsgiTransport(app, headers={"X-Synthetic": "true"})
    yield t
    await t.aclose()
    app.state.store.close()


@pytest.fixture
async def target(transport: AsgiTransport) -> SocialApiTarget:
    return SocialApiTarget(transport)


async def join(target: SocialApiTarget, name: str) -> tuple[int, str]:
    up = await target.send(req("sign_up", payload=signup_payload(name)))
    assert up.ok, up
    login = await target.send(req("log_in", payload={"username": name, "password": f"pw-{name}"}))
    assert login.ok, login
    assert up.remote_id is not None and login.token is not None
    return up.remote_id, login.token


async def get_json(transport: AsgiTransport, path: str) -> Any:
    resp = await transport.request("GET", path)
    assert resp.status == 200, resp
    return json.loads(resp.body)


# -- SocialApiTarget over the in-process demo app ----------------------------------------


async def test_sign_up_gives_remote_id_and_marks_synthetic(
    target: SocialApiTarget, transport: AsgiTransport
) -> None:
    outcome = await target.send(req("sign_up", payload=signup_payload("ada")))
    assert outcome.status == 201
    assert outcome.ok is True
    assert outcome.error is None
    assert isinstance(outcome.remote_id, int)
    assert outcome.latency_ms >= 0
    user = await get_json(transport, f"/users/{outcome.remote_id}")
    assert user["username"] == "ada"
    assert user["is_synthetic"] is True
    # X-Sim-Time was honoured: created_at is the simulated instant, not wall time
    assert datetime.fromisoformat(user["created_at"]).timestamp() == SIM_TS


async def test_duplicate_sign_up_is_a_failed_outcome(target: SocialApiTarget) -> None:
    await target.send(req("sign_up", payload=signup_payload("bob")))
    outcome = await target.send(req("sign_up", payload=signup_payload("bob")))
    assert outcome.status == 409
    assert outcome.ok is False
    assert outcome.error is not None and "409" in outcome.error


async def test_log_in_gives_a_token(target: SocialApiTarget) -> None:
    await target.send(req("sign_up", payload=signup_payload("cy")))
    outcome = await target.send(req("log_in", payload={"username": "cy", "password": "pw-cy"}))
    assert outcome.status == 200
    assert outcome.ok is True
    assert isinstance(outcome.token, str) and outcome.token
    bad = await target.send(req("log_in", payload={"username": "cy", "password": "wrong"}))
    assert bad.status == 401
    assert bad.ok is False
    assert bad.token is None


async def test_post_lifecycle(target: SocialApiTarget, transport: AsgiTransport) -> None:
    author, token = await join(target, "dee")

    created = await target.send(
        req("create_post", token=token, payload={"title": "hi", "body": "first", "tags": ["x"]})
    )
    assert created.status == 201 and created.ok
    assert isinstance(created.post_id, int)
    post_id = created.post_id
    stored = await get_json(transport, f"/posts/{post_id}")
    assert stored["author_id"] == author
    assert datetime.fromisoformat(stored["created_at"]).timestamp() == SIM_TS
    assert datetime.fromisoformat(stored["created_at"]).utcoffset() is not None

    feed = await target.send(req("browse_feed", token=token, offset=0, limit=20))
    assert feed.status == 200 and feed.ok
    assert feed.feed_ids == ((post_id, author),)

    empty = await target.send(req("browse_feed", token=token, offset=20, limit=20))
    assert empty.ok and empty.feed_ids == ()

    read = await target.send(req("read_post", token=token, post_id=post_id))
    assert read.status == 200 and read.ok
    assert read.post_id == post_id
    assert read.view_count == 2  # the get_json above counted as a view too

    updated = await target.send(
        req("update_post", token=token, post_id=post_id, payload={"body": "edited"})
    )
    assert updated.status == 200 and updated.ok
    assert updated.post_id == post_id
    assert (await get_json(transport, f"/posts/{post_id}"))["body"] == "edited"

    deleted = await target.send(req("delete_post", token=token, post_id=post_id))
    assert deleted.status == 204 and deleted.ok
    assert deleted.post_id == post_id  # no body: the request's post id is kept

    gone = await target.send(req("read_post", token=token, post_id=post_id))
    assert gone.status == 404
    assert gone.ok is False
    assert gone.error is not None and "404" in gone.error


async def test_someone_elses_post_is_a_403_outcome(target: SocialApiTarget) -> None:
    _, owner_token = await join(target, "eve")
    _, other_token = await join(target, "fay")
    created = await target.send(
        req("create_post", token=owner_token, payload={"title": "mine", "body": "b"})
    )
    assert created.post_id is not None

    for action, payload in (("update_post", {"body": "hijack"}), ("delete_post", None)):
        outcome = await target.send(
            req(action, token=other_token, post_id=created.post_id, payload=payload)
        )
        assert outcome.status == 403, action
        assert outcome.ok is False
        assert outcome.error is not None
        assert "403" in outcome.error
        assert "author" in outcome.error  # body excerpt of the API's detail


async def test_writes_without_token_are_401(target: SocialApiTarget) -> None:
    outcome = await target.send(req("create_post", payload={"title": "t", "body": "b"}))
    assert outcome.status == 401
    assert outcome.ok is False


async def test_unknown_action_raises(target: SocialApiTarget) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        await target.send(req("dance"))


async def test_asgi_transport_check_passes(transport: AsgiTransport) -> None:
    await transport.check()  # GET / answers (404 is an answer)


# -- bad answers are outcomes, not exceptions --------------------------------------------


class CannedTransport:
    """Answers every request with the same response and remembers what it was sent."""

    base_url = "canned://"

    def __init__(self, response: Response) -> None:
        self.response = response
        self.sent: list[tuple[str, str, Any, dict[str, str] | None]] = []

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        self.sent.append((method, path, json_body, headers))
        return self.response

    async def check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def send_canned(response: Response, request: ActionRequest) -> tuple[Outcome, Any]:
    transport = CannedTransport(response)
    outcome = await SocialApiTarget(transport).send(request)
    return outcome, transport.sent


@pytest.mark.parametrize(
    ("action", "kw", "method", "path"),
    [
        ("browse_feed", {"offset": 40, "limit": 20}, "GET", "/posts?limit=20&offset=40"),
        ("read_post", {"post_id": 7}, "GET", "/posts/7"),
        ("create_post", {"payload": {"title": "t", "body": "b"}}, "POST", "/posts"),
        ("update_post", {"post_id": 7, "payload": {"body": "b"}}, "PUT", "/posts/7"),
        ("delete_post", {"post_id": 7}, "DELETE", "/posts/7"),
        ("sign_up", {"payload": {"username": "u"}}, "POST", "/users"),
        ("log_in", {"payload": {"username": "u"}}, "POST", "/auth/login"),
    ],
)
async def test_each_action_maps_to_its_request(
    action: str, kw: dict[str, Any], method: str, path: str
) -> None:
    _, sent = await send_canned(Response(500, b"", 1.0), req(action, token="tok", **kw))
    assert len(sent) == 1
    got_method, got_path, body, headers = sent[0]
    assert (got_method, got_path) == (method, path)
    assert body == kw.get("payload")
    assert headers["X-Sim-Time"] == SIM_ISO
    assert headers["Authorization"] == "Bearer tok"


async def test_no_authorization_header_without_token() -> None:
    _, sent = await send_canned(Response(500, b"", 1.0), req("browse_feed"))
    assert "Authorization" not in sent[0][3]


async def test_html_answer_to_browse_feed_is_a_bad_answer() -> None:
    body = b"<html><body>502 Bad Gateway</body></html>"
    outcome, _ = await send_canned(Response(200, body, 3.0), req("browse_feed"))
    assert outcome.ok is False
    assert outcome.status == 200
    assert outcome.error is not None
    assert "bad answer (not JSON)" in outcome.error
    assert "<html>" in outcome.error  # a body excerpt
    assert outcome.latency_ms == 3.0


async def test_long_bad_body_is_truncated_to_one_line() -> None:
    body = b"<html>\n" + b"x" * 5000
    outcome, _ = await send_canned(Response(200, body, 1.0), req("browse_feed"))
    assert outcome.error is not None
    assert "\n" not in outcome.error
    assert len(outcome.error) < 200


async def test_missing_field_is_a_bad_answer() -> None:
    outcome, _ = await send_canned(Response(200, b'{"total": 0}', 1.0), req("browse_feed"))
    assert outcome.ok is False
    assert outcome.error is not None
    assert "bad answer" in outcome.error
    assert "missing field" in outcome.error
    assert "items" in outcome.error


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("sign_up", b'{"username": "u"}'),
        ("log_in", b'{"user_id": 3}'),
        ("read_post", b'{"title": "no id"}'),
        ("create_post", b"{}"),
    ],
)
async def test_missing_field_for_each_action(action: str, body: bytes) -> None:
    status = 201 if action in ("sign_up", "create_post") else 200
    outcome, _ = await send_canned(Response(status, body, 1.0), req(action, post_id=1))
    assert outcome.ok is False
    assert outcome.error is not None and "missing field" in outcome.error


@pytest.mark.parametrize(
    "body", [b"null", b"[1, 2]", b'{"items": [{"id": "seven", "author_id": 1}]}']
)
async def test_wrong_shape_is_a_bad_answer_not_an_exception(body: bytes) -> None:
    outcome, _ = await send_canned(Response(200, body, 1.0), req("browse_feed"))
    assert outcome.ok is False
    assert outcome.error is not None
    assert outcome.error.startswith("bad answer (")
    assert "not JSON" not in outcome.error  # it is JSON, just not the expected one


async def test_unexpected_status_keeps_body_excerpt() -> None:
    outcome, _ = await send_canned(
        Response(500, b'{"detail": "database is locked"}', 1.0), req("read_post", post_id=1)
    )
    assert outcome.status == 500
    assert outcome.ok is False
    assert outcome.error == 'HTTP 500: {"detail": "database is locked"}'


async def test_status_0_is_passed_through() -> None:
    outcome, _ = await send_canned(
        Response(0, b"", 10.0, "Cannot connect to host"), req("browse_feed")
    )
    assert outcome.status == 0
    assert outcome.ok is False
    assert outcome.error == "Cannot connect to host"


# -- MockTarget ---------------------------------------------------------------------------


async def test_mock_target_sync_and_async_handlers() -> None:
    sync = MockTarget(lambda r: Outcome(200, True, 0.0, post_id=r.post_id))
    assert (await sync.send(req("read_post", post_id=4))).post_id == 4

    async def handler(r: ActionRequest) -> Outcome:
        await asyncio.sleep(0)
        return Outcome(201, True, 0.0, remote_id=9)

    asynchronous = MockTarget(handler)
    assert (await asynchronous.send(req("sign_up"))).remote_id == 9
    assert sync.requests == 1 and asynchronous.requests == 1
    await sync.aclose()


# -- AiohttpTransport ---------------------------------------------------------------------


async def test_aiohttp_closed_port_is_a_status_0_outcome() -> None:
    port = find_free_port()  # nothing listens there
    transport = AiohttpTransport(f"http://127.0.0.1:{port}", timeout_s=5)
    try:
        resp = await transport.request("GET", "/posts")
        assert resp.status == 0
        assert resp.error
        outcome = await SocialApiTarget(transport).send(req("browse_feed"))
        assert outcome.status == 0
        assert outcome.ok is False
        assert outcome.error
    finally:
        await transport.aclose()


async def test_aiohttp_check_raises_for_closed_port() -> None:
    port = find_free_port()
    url = f"http://127.0.0.1:{port}"
    transport = AiohttpTransport(url + "/", timeout_s=5)
    try:
        with pytest.raises(TargetUnreachableError) as info:
            await transport.check()
        assert url in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        await transport.aclose()


@pytest.fixture
async def echo_server(serve: Starter) -> str:
    """A tiny aiohttp server that echoes requests; /slow never answers in time."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": json.loads(body) if body else None,
            }
        )

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/{tail:.*}", echo)
    return await serve(app)


async def test_aiohttp_sends_json_and_headers(echo_server: str) -> None:
    transport = AiohttpTransport(
        echo_server, headers={"X-Synthetic": "true", "User-Agent": "sim-engine/test"}
    )
    try:
        await transport.check()
        resp = await transport.request(
            "POST", "/posts?x=1", {"title": "t"}, {"X-Sim-Time": SIM_ISO}
        )
        assert resp.status == 200
        assert resp.latency_ms > 0
        echoed = json.loads(resp.body)
        assert echoed["method"] == "POST"
        assert echoed["path"] == "/posts?x=1"
        assert echoed["body"] == {"title": "t"}
        headers = echoed["headers"]
        assert headers["X-Synthetic"] == "true"
        assert headers["User-Agent"] == "sim-engine/test"
        assert headers["X-Sim-Time"] == SIM_ISO
        assert headers["Content-Type"] == "application/json"
    finally:
        await transport.aclose()
    await transport.aclose()  # idempotent


async def test_aiohttp_timeout_is_a_status_0_response(echo_server: str) -> None:
    transport = AiohttpTransport(echo_server, timeout_s=0.1)
    try:
        resp = await transport.request("GET", "/slow")
        assert resp.status == 0
        assert resp.error == "timeout"
        assert resp.latency_ms < 550
    finally:
        await transport.aclose()
