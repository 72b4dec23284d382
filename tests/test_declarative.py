"""Tests of the declarative ``api`` target and its templates.

* :mod:`sim_engine.model.templates`: placeholders, generators, kept types, URL quoting,
  determinism, JSON paths;
* :class:`~sim_engine.targets.declarative.DeclarativeTarget` against a scripted
  fake transport (every auth scheme, token renewal, memory and pools, picks,
  resolution, forgetting, bad answers, error simulation), one real aiohttp
  server on 127.0.0.1, and a simulated day of a whole :class:`Simulation`
  against the in-process demo API.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pytest
from aiohttp import web

from helpers import DEMO_LOGIN, DEMO_SIGNUP, ListSink, Starter, signup_payload
from sim_engine.demo import create_app
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.simulation import Simulation
from sim_engine.model.api_spec import GENERATORS, ApiSpec
from sim_engine.model.records import ActionRecord, ActionRequest, Outcome
from sim_engine.model.scenario import default_scenario, validate_scenario
from sim_engine.model.templates import (
    ContentPool,
    TemplateError,
    extract,
    find,
    path_problem,
    render,
    render_path,
    render_query,
    template_problem,
)
from sim_engine.model.templates import (
    field as get_field,
)
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.inprocess import AsgiTransport
from sim_engine.targets.transport import Response, Transport

ISO = "2026-03-02T10:00:00.000+00:00"
POOL = ContentPool(3)


# -- templates ------------------------------------------------------------------------------------


def test_placeholders_fill_and_keep_types() -> None:
    ctx: dict[str, dict[str, object]] = {
        "user": {"id": 7, "username": "ann", "name": "Ann"},
        "post": {"id": 12, "ok": True},
    }
    out = render(
        {
            "id": "{post.id}",
            "flag": "{post.ok}",
            "text": "post {post.id} by {user.name}",
            "{user.username}": ["{user.id}", 3, None],
            "n": 1.5,
        },
        ctx,
        random.Random(1),
        POOL,
    )
    assert out == {
        "id": 12,
        "flag": True,
        "text": "post 12 by Ann",
        "ann": [7, 3, None],
        "n": 1.5,
    }
    assert (
        render(
            "flag={post.ok} none={x.y}",
            {"post": {"ok": False}, "x": {"y": None}},
            random.Random(1),
            POOL,
        )
        == "flag=false none="
    )
    assert render("{{{{not a template", {}, random.Random(1), POOL) == "{{{{not a template"


def test_missing_placeholder_values_raise_template_errors() -> None:
    with pytest.raises(TemplateError, match="nothing named 'post'"):
        render("{post.id}", {"user": {}}, random.Random(), POOL)
    with pytest.raises(TemplateError, match="user has no field 'id'"):
        render({"a": ["x{user.id}"]}, {"user": {"username": "ann"}}, random.Random(), POOL)


def test_every_generator_renders_with_its_type() -> None:
    rng = random.Random(5)
    checks: dict[str, Callable[[Any], bool]] = {
        "sentence": lambda v: isinstance(v, str) and v.endswith((".", "!", "?")),
        "paragraph": lambda v: isinstance(v, str) and len(v) > 20,
        "words": lambda v: isinstance(v, str) and len(v.split()) == 3,
        "title": lambda v: isinstance(v, str) and v[0].isupper() and 3 <= len(v.split()) <= 7,
        "name": lambda v: isinstance(v, str) and " " in v,
        "first_name": lambda v: isinstance(v, str) and v.isprintable() and v != "",
        "last_name": lambda v: isinstance(v, str) and v != "",
        "email": lambda v: re.fullmatch(r"[^@\s]+@example\.com", v) is not None,
        "username": lambda v: re.fullmatch(r"[a-z]+_\d+", v) is not None,
        "int": lambda v: type(v) is int and 0 <= v <= 100,
        "float": lambda v: type(v) is float and 0 <= v <= 1,
        "choice": lambda v: v in ("a", "b"),
        "bool": lambda v: type(v) is bool,
        "date": lambda v: date.fromisoformat(v).year in range(2020, 2027),
        "datetime": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo is not None,
        "uuid": lambda v: (
            re.fullmatch(
                r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                r"[0-9a-f]{12}",
                v,
            )
            is not None
        ),
        "url": lambda v: v.startswith("https://") and ".example.com/" in v,
        "phone": lambda v: isinstance(v, str) and sum(c.isdigit() for c in v) >= 7,
        "city": lambda v: isinstance(v, str) and v != "",
        "color": lambda v: isinstance(v, str) and v != "",
        "word": lambda v: isinstance(v, str) and v.isalpha(),
        "tag": lambda v: v in POOL.tags,
    }
    assert set(checks) == set(GENERATORS)
    for name, check in checks.items():
        template = "{{choice:a|b}}" if name == "choice" else f"{{{{{name}}}}}"
        for _ in range(20):
            value = render(template, {}, rng, POOL)
            assert check(value), (name, value)
    assert len(render("{{words:5}}", {}, rng, POOL).split()) == 5
    assert all(-3 <= render("{{int:-3:-1}}", {}, rng, POOL) <= -1 for _ in range(50))
    assert all(2.5 <= render("{{ float:2.5:3 }}", {}, rng, POOL) <= 3 for _ in range(50))
    assert isinstance(render("n={{int:1:2}}", {}, rng, POOL), str)


def test_bad_generators_are_template_errors() -> None:
    for bad in (
        "{{int:a:b}}",
        "{{int:5:1}}",
        "{{words:0}}",
        "{{choice:a||b}}",
        "{{bool:1}}",
        "{{nope}}",
    ):
        with pytest.raises(TemplateError):
            render(bad, {}, random.Random(), POOL)
        assert template_problem({"x": [bad]}) is not None
    assert template_problem({"x": ["{{int:1:2}}", "{user.id}"]}) is None


def test_rendering_is_deterministic_for_a_seed() -> None:
    template = {"t": "{{title}}", "b": "{{paragraph}}", "u": "{{uuid}}", "n": "{{int:1:1000}}"}
    one = [render(template, {}, random.Random(42), ContentPool(9)) for _ in range(3)]
    two = [render(template, {}, random.Random(42), ContentPool(9)) for _ in range(3)]
    assert one == two
    assert render(template, {}, random.Random(43), ContentPool(9)) != one[0]
    assert ContentPool(9).sentences != ContentPool(10).sentences


def test_rendering_is_fast() -> None:
    template = {"title": "{{sentence}}", "body": "{{paragraph}}", "userId": "{user.id}"}
    ctx = {"user": {"id": 3}}
    rng = random.Random(1)
    render(template, ctx, rng, POOL)
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        render(template, ctx, rng, POOL)
    per_call_us = (time.perf_counter() - started) / n * 1e6
    assert per_call_us < 100  # measured about 4 µs


def test_paths_are_url_quoted_and_queries_encoded() -> None:
    ctx: dict[str, dict[str, object]] = {"user": {"username": "ann lee/x?"}, "post": {"id": 5}}
    path = render_path("/u/{user.username}/posts/{post.id}", ctx, random.Random(), POOL)
    assert path == "/u/ann%20lee%2Fx%3F/posts/5"
    query = render_query(
        {"limit": 20, "q": "{user.username}", "on": True, "skip": None, "ids": [1, "{post.id}"]},
        ctx,
        random.Random(),
        POOL,
    )
    assert query == "limit=20&q=ann+lee%2Fx%3F&on=true&ids=1&ids=5"


def test_json_paths() -> None:
    doc = {"items": [{"id": 1, "a": {"b": 2}}, {"id": 2}], "data": {"user": {"id": 9}}, "e": []}
    assert extract(doc, "items[*]") == doc["items"]
    assert extract(doc, "items[*].id") == [1, 2]
    assert extract(doc, "items[*].a.b") == [2]  # elements without the key are left out
    assert extract(doc, "data.user") == [{"id": 9}]
    assert extract(doc, "") == [doc]
    assert extract(doc, "items[0].id") == [1]
    assert extract(doc, "items[-1].id") == [2]
    assert extract([{"id": 3}, {"id": 4}], "[*]") == [{"id": 3}, {"id": 4}]
    assert extract({"m": {"x": 1, "y": 2}}, "m[*]") == [1, 2]
    for missing in ("nope", "items[5]", "data.user.name", "items[*].zz", "e.x"):
        assert extract(doc, missing) == []
        assert find(doc, missing) is None
    assert find(doc, "e[*]") == []  # present but empty: not missing
    assert get_field(doc, "data.user.id") == 9
    assert get_field(doc, "items[*].id") == [1, 2]
    assert get_field({"id": 3}, "") == {"id": 3}
    assert get_field(doc, "nope", None) is None
    with pytest.raises(KeyError):
        get_field(doc, "nope")
    for bad in ("a..b", ".a", "a.", "a]", "a[x]"):
        assert path_problem(bad) is not None
        with pytest.raises(TemplateError):
            extract(doc, bad)
    assert path_problem("items[*].a.b") is None


# -- the api_spec checks that use the templates ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actions": {"a": {"path": "/x", "body": {"n": "{{int:x:y}}"}}}}, "int:A:B"),
        (
            {"actions": {"a": {"path": "/x", "extract": [{"path": "a..b", "to": "memory.m"}]}}},
            "a '.' must join",
        ),
        (
            {
                "actions": {"a": {"path": "/x", "fallback": "wf"}},
                "workflows": {"wf": {"steps": [{"action": "a"}]}},
            },
            "is a workflow",
        ),
        ({"actions": {"a": {"path": "/x"}}, "memory": {"m": 0}}, "memory.m: keeps at least 1"),
        ({"actions": {"a": {"path": "/x"}}, "auth": {"token_path": "a]"}}, "token_path"),
    ],
)
def test_api_section_checks_generators_paths_and_fallbacks(
    change: dict[str, Any], message: str
) -> None:
    data: dict[str, Any] = {"memory": {"m": 5}, **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        ApiSpec.model_validate(data)


# -- a scripted fake transport --------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


Handler = Callable[[Call], Any]


class FakeTransport:
    """Answers each request with ``handler(call)``: a Response, or ``(status, json_or_bytes)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[Call] = []
        self.closed = False

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        call = Call(method, path, json_body, dict(headers or {}))
        self.calls.append(call)
        result = self.handler(call)
        if isinstance(result, Response):
            return result
        status, body = result
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        return Response(status, raw, 2.5)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True

    def statistics(self) -> dict[str, Any]:
        return {"requests_sent": len(self.calls), "retries": 0, "breakers": {}}


def req(action: str, user_id: int = 1, **kw: Any) -> ActionRequest:
    return ActionRequest(action, user_id, 1_772_445_600.0, ISO, **kw)


def make_api(**sections: Any) -> ApiSpec:
    sections.setdefault("actions", {"me": {"path": "/me"}})
    return ApiSpec.model_validate(sections)


async def join(target: DeclarativeTarget, user_id: int = 1, name: str = "ann") -> None:
    up = await target.send(req("sign_up", user_id, payload=signup_payload(name)))
    assert up.ok, up
    login = await target.send(
        req("log_in", user_id, payload={"username": name, "password": f"pw-{name}"})
    )
    assert login.ok, login


# -- sign-up, log-in, schemes ---------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SCHEMES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "bearer": ({"login": DEMO_LOGIN, "scheme": "bearer"}, {"Authorization": "Bearer tok-1"}),
    "token": ({"login": DEMO_LOGIN, "scheme": "token"}, {"Authorization": "Token tok-1"}),
    "prefix": (
        {"login": DEMO_LOGIN, "scheme": "token", "prefix": "JWT"},
        {"Authorization": "JWT tok-1"},
    ),
    "header": ({"login": DEMO_LOGIN, "scheme": "header", "header": "X-Auth"}, {"X-Auth": "tok-1"}),
    "basic": ({"scheme": "basic"}, {"Authorization": "Basic " + b64("ann:pw-ann")}),
    "api_key": (
        {"scheme": "api_key", "header": "X-Api-Key", "api_key": "k-9"},
        {"X-Api-Key": "k-9"},
    ),
    "none": ({}, {}),
}


def auth_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in ("Authorization", "X-Auth", "X-Api-Key")}


@pytest.mark.parametrize("scheme", list(SCHEMES))
async def test_sign_up_log_in_and_auth_for_every_scheme(scheme: str) -> None:
    auth, expected = SCHEMES[scheme]
    tokens = iter(f"tok-{i}" for i in range(1, 10))

    def handler(call: Call) -> Any:
        if call.path == "/users":
            return 201, {"id": 41, "username": call.body["username"]}
        if call.path == "/auth/login":
            return 200, {"token": next(tokens)}
        return 200, {"me": True}

    transport = FakeTransport(handler)
    target = DeclarativeTarget(transport, make_api(auth={"signup": DEMO_SIGNUP, **auth}))
    up = await target.send(req("sign_up", payload=signup_payload()))
    assert up == Outcome(201, True, 2.5, remote_id=41, endpoint="POST /users")
    assert transport.calls[0].body == {
        "username": "ann",
        "email": "ann@sim-engine.test",
        "password": "pw-ann",
        "name": "Ann",
    }
    assert transport.calls[0].headers["X-Sim-Time"] == ISO
    login = await target.send(req("log_in", payload={"username": "ann", "password": "pw-ann"}))
    assert login.ok
    if "login" in auth:
        assert login.token == "tok-1"
        assert transport.calls[1].body == {"username": "ann", "password": "pw-ann"}
    else:
        assert login.token == ""  # "logged in" for the engine, without a request
        assert len(transport.calls) == 1
    me = await target.send(req("me", token=login.token))
    assert me.ok and me.endpoint == "GET /me"
    assert auth_headers(transport.calls[-1].headers) == expected
    if scheme == "api_key":  # the key goes with the sign-up too
        assert transport.calls[0].headers["X-Api-Key"] == "k-9"


async def test_sign_up_without_a_request_and_conflicts() -> None:
    transport = FakeTransport(lambda call: (409, {"detail": "taken"}))
    target = DeclarativeTarget(transport, make_api())
    nothing_sent = Outcome(200, True, 0.0, skipped=True)
    assert await target.send(req("sign_up", payload=signup_payload())) == nothing_sent
    assert transport.calls == []
    target = DeclarativeTarget(
        transport, make_api(auth={"signup": DEMO_SIGNUP, "login": DEMO_LOGIN})
    )
    outcome = await target.send(req("sign_up", payload=signup_payload()))
    assert (outcome.status, outcome.ok) == (409, False)
    assert outcome.error == 'HTTP 409: {"detail": "taken"}'


async def test_an_existing_user_learns_its_id_from_the_log_in_answer() -> None:
    def handler(call: Call) -> Any:
        if call.path == "/users":
            return 409, {"detail": "exists"}
        if call.path == "/auth/login":
            return 200, {"token": "t", "user_id": 77}
        return 200, {}

    auth = {"signup": DEMO_SIGNUP, "login": DEMO_LOGIN, "login_user_id_path": "user_id"}
    api = make_api(auth=auth, actions={"me": {"path": "/users/{user.id}"}})
    transport = FakeTransport(handler)
    target = DeclarativeTarget(transport, api)
    assert not (await target.send(req("sign_up", payload=signup_payload()))).ok
    login = await target.send(req("log_in", payload={"username": "ann", "password": "pw-ann"}))
    assert (login.token, login.remote_id) == ("t", 77)
    assert (await target.send(req("me"))).ok
    assert transport.calls[-1].path == "/users/77"


async def test_sign_up_and_log_in_answers_missing_their_fields_are_bad_answers() -> None:
    answers = {"/users": (201, {"user": {}}), "/auth/login": (200, b"<html>login</html>")}
    transport = FakeTransport(lambda call: answers[call.path])
    target = DeclarativeTarget(
        transport, make_api(auth={"signup": DEMO_SIGNUP, "login": DEMO_LOGIN})
    )
    up = await target.send(req("sign_up", payload=signup_payload()))
    assert (up.status, up.ok) == (201, False)
    assert up.error == "bad answer (missing field 'id'): {\"user\": {}}"
    login = await target.send(req("log_in", payload={"username": "ann", "password": "pw-ann"}))
    assert (login.ok, login.error) == (False, "bad answer (not JSON): <html>login</html>")
    assert target.statistics()["bad_answers"] == 2


# -- token renewal --------------------------------------------------------------------------------


class TokenApi:
    """Issues tok-1, tok-2, ...; only the newest token is accepted."""

    def __init__(self) -> None:
        self.issued = 0
        self.login_fails = False

    def __call__(self, call: Call) -> Any:
        if call.path in ("/auth/login", "/auth/refresh"):
            if self.login_fails:
                return 401, {"detail": "no"}
            self.issued += 1
            return 200, {"token": f"tok-{self.issued}"}
        if call.headers.get("Authorization") != f"Bearer tok-{self.issued}":
            return 401, {"detail": "expired"}
        return 200, {"ok": True}

    def expire(self) -> None:
        self.issued += 1  # the server moved on: the user's token is stale


async def test_a_401_renews_the_token_once_and_retries() -> None:
    server = TokenApi()
    transport = FakeTransport(server)
    target = DeclarativeTarget(transport, make_api(auth={"login": DEMO_LOGIN}))
    await join(target)
    server.expire()
    outcome = await target.send(req("me", token="tok-1"))
    assert (outcome.ok, outcome.status, outcome.retries) == (True, 200, 1)
    paths = [(c.path, c.headers.get("Authorization")) for c in transport.calls]
    assert paths[1:] == [
        ("/me", "Bearer tok-1"),
        ("/auth/login", None),
        ("/me", "Bearer tok-3"),
    ]
    assert target.statistics()["token_renewals"] == 1
    # the renewed token is used from now on, whatever the engine still holds
    assert (await target.send(req("me", token="tok-1"))).ok
    assert transport.calls[-1].headers["Authorization"] == "Bearer tok-3"


async def test_a_failed_renewal_leaves_the_401() -> None:
    server = TokenApi()
    transport = FakeTransport(server)
    target = DeclarativeTarget(transport, make_api(auth={"login": DEMO_LOGIN}))
    await join(target)
    server.expire()
    server.login_fails = True
    outcome = await target.send(req("me"))
    assert (outcome.status, outcome.ok) == (401, False)
    assert outcome.error == 'HTTP 401: {"detail": "expired"}'
    assert len(transport.calls) == 3  # log-in, action, failed renewal: no retry


async def test_refresh_request_renews_with_the_current_token() -> None:
    server = TokenApi()
    transport = FakeTransport(server)
    refresh = {"method": "POST", "path": "/auth/refresh"}
    target = DeclarativeTarget(transport, make_api(auth={"login": DEMO_LOGIN, "refresh": refresh}))
    await join(target)
    server.expire()
    assert (await target.send(req("me"))).ok
    refresh_call = transport.calls[2]
    assert refresh_call.path == "/auth/refresh"
    assert refresh_call.headers["Authorization"] == "Bearer tok-1"
    assert transport.calls[3].headers["Authorization"] == "Bearer tok-3"


async def test_token_ttl_renews_before_the_action() -> None:
    now = [1000.0]
    server = TokenApi()
    transport = FakeTransport(server)
    auth = {"login": DEMO_LOGIN, "token_ttl_s": 60}
    target = DeclarativeTarget(transport, make_api(auth=auth), now=lambda: now[0])
    await join(target)
    now[0] += 30
    assert (await target.send(req("me"))).ok
    assert len(transport.calls) == 2
    now[0] += 31
    outcome = await target.send(req("me"))
    assert outcome.ok and outcome.retries == 0
    assert [c.path for c in transport.calls[2:]] == ["/auth/login", "/me"]
    assert transport.calls[-1].headers["Authorization"] == "Bearer tok-2"


# -- memory, pools, picks, resolution -------------------------------------------------------------


def feed_api(**extra: Any) -> ApiSpec:
    actions: dict[str, Any] = {
        "browse": {
            "path": "/posts",
            "extract": [
                {
                    "path": "items[*]",
                    "to": "memory.seen",
                    "fields": {"id": "id", "by": "author.id"},
                },
                {"path": "items[*]", "to": "pool.recent"},
            ],
        },
        "read": {"path": "/posts/{post.id}", "pick": {"post": "memory.seen"}},
        "read_latest": {
            "path": "/posts/{post.id}",
            "pick": {"post": "memory.seen"},
            "pick_strategy": "latest",
        },
        "read_popular": {
            "path": "/posts/{post.id}",
            "pick": {"post": "memory.seen"},
            "pick_strategy": "popular",
        },
        "comment": {
            "method": "POST",
            "path": "/posts/{post.id}/comments",
            "pick": {"post": "pool.recent"},
            "body": {"text": "{{sentence}}"},
            "extract": [{"path": "", "to": "memory.comments"}],
        },
        "delete_comment": {
            "method": "DELETE",
            "path": "/comments/{c.id}",
            "pick": {"c": "memory.comments"},
            "forget": "c",
        },
        "create": {
            "method": "POST",
            "path": "/posts",
            "body": {"title": "{{title}}"},
            "extract": [{"path": "", "to": "memory.own"}],
        },
        "delete": {
            "method": "DELETE",
            "path": "/posts/{post.id}",
            "pick": {"post": "memory.own"},
            "forget": "post",
        },
    }
    actions.update(extra.pop("actions", {}))
    sections: dict[str, Any] = {
        "memory": {"seen": 3, "own": 10, "comments": 10},
        "pools": {"recent": 5},
        "actions": actions,
    }
    return make_api(**{**sections, **extra})


def page(*ids: int) -> dict[str, Any]:
    return {"items": [{"id": i, "author": {"id": 100 + i}, "title": f"t{i}"} for i in ids]}


async def test_extraction_fills_memory_and_shared_pools_newest_kept() -> None:
    pages = iter([page(1, 2), page(3, 4, 2), page(9)])
    transport = FakeTransport(lambda call: (200, next(pages)))
    target = DeclarativeTarget(transport, feed_api())
    assert not target.has(1, "memory.seen") and not target.has(1, "pool.recent")
    assert (await target.send(req("browse", 1))).ok
    assert target.has(1, "memory.seen") and target.has(2, "pool.recent")
    assert not target.has(2, "memory.seen")  # memory is per user
    await target.send(req("browse", 1))
    seen = target._memory.users[1].memory["memory.seen"].items  # type: ignore[index]
    assert list(seen.values()) == [{"id": 3, "by": 103}, {"id": 4, "by": 104}, {"id": 2, "by": 102}]
    await target.send(req("browse", 2))
    assert [i["id"] for i in target._memory.pools["pool.recent"].items.values()] == [1, 3, 4, 2, 9]
    assert target.statistics()["users_tracked"] == 2
    target.forget_user(1)
    assert not target.has(1, "memory.seen") and target.has(1, "pool.recent")


async def test_picks_latest_random_and_popular() -> None:
    def handler(call: Call) -> Any:
        return (200, page(*range(1, 4))) if call.path == "/posts" else (200, {"ok": 1})

    api = feed_api(memory={"seen": 10, "own": 10, "comments": 10})
    transport = FakeTransport(handler)
    target = DeclarativeTarget(transport, api, seed=4)
    await target.send(req("browse"))
    latest = {(await target.send(req("read_latest"))).post_id for _ in range(5)}
    assert latest == {3}
    randoms = [(await target.send(req("read"))).post_id for _ in range(60)]
    assert set(randoms) == {1, 2, 3}
    # popular: weighted by 1 + times picked so far; item 3 was picked over 300 times, the
    # others about 20 each: it is drawn with p ~ 0.9
    for _ in range(300):
        await target.send(req("read_latest"))
    popular = Counter([(await target.send(req("read_popular"))).post_id for _ in range(100)])
    assert popular[3] > 70
    # the same seed and the same events give the same picks
    again = DeclarativeTarget(FakeTransport(handler), api, seed=4)
    await again.send(req("browse"))
    for _ in range(5):
        await again.send(req("read_latest"))
    assert [(await again.send(req("read"))).post_id for _ in range(60)] == randoms


async def test_resolve_requires_max_open_and_fallbacks() -> None:
    actions: dict[str, dict[str, Any]] = {
        "a": {"path": "/a/{x.id}", "pick": {"x": "memory.xs"}, "fallback": "b"},
        "b": {"path": "/b", "requires": ["pool.ys"], "fallback": "c"},
        "c": {
            "method": "POST",
            "path": "/c",
            "max_open": {"key": "memory.open", "limit": 2},
            "extract": [{"path": "", "to": "memory.open"}],
        },
        "d": {"path": "/d"},
        "e": {"path": "/e/{x.id}", "pick": {"x": "memory.xs"}, "fallback": "f"},
        "f": {"path": "/f", "requires": ["memory.xs"], "fallback": "e"},
        "fill": {
            "path": "/fill",
            "extract": [{"path": "[*]", "to": "memory.xs"}, {"path": "[*]", "to": "pool.ys"}],
        },
    }
    api = make_api(
        memory={"xs": 5, "open": 5},
        pools={"ys": 5},
        actions=actions,
        fallback="d",
        workflows={"wf": {"steps": [{"action": "a"}]}},
    )
    ids = iter(range(1, 100))
    transport = FakeTransport(
        lambda call: (200, [{"id": 1}] if call.path == "/fill" else {"id": next(ids)})
    )
    target = DeclarativeTarget(transport, api)
    assert target.resolve("a", 1) == "c"  # a: memory.xs empty, b: pool.ys empty
    assert target.resolve("e", 1) == "d"  # e -> f -> (e again: a loop) -> api.fallback
    assert target.resolve("wf", 1) == "wf"  # workflows are the engine's
    for _ in range(2):
        assert (await target.send(req("c"))).ok
    assert target.resolve("c", 1) == "d"  # max_open: memory.open holds 2
    assert target.resolve("a", 2) == "c"  # another user's memory is its own
    await target.send(req("fill", 1))
    assert (target.resolve("a", 1), target.resolve("e", 1)) == ("a", "e")
    assert target.resolve("a", 2) == "b"  # the pool is shared
    api_no_fallback = make_api(memory={"xs": 5}, actions={"a": actions["a"] | {"fallback": None}})
    assert DeclarativeTarget(transport, api_no_fallback).resolve("a", 1) is None
    not_possible = await DeclarativeTarget(transport, api_no_fallback).send(req("a"))
    assert (not_possible.ok, not_possible.skipped) == (False, True)
    assert not_possible.error == "not possible: memory.xs is empty"


async def test_forget_removes_the_item_everywhere_it_is_the_same_kind() -> None:
    def handler(call: Call) -> Any:
        if call.path == "/posts" and call.method == "GET":
            return 200, page(5, 6)
        if call.path == "/posts":
            return 201, {"id": 5}
        if call.path.endswith("/comments"):
            return 201, {"id": 5}  # a comment whose id is also a post's
        return 204, None

    transport = FakeTransport(handler)
    target = DeclarativeTarget(transport, feed_api(), seed=1)
    await target.send(req("create", 1))  # user 1 owns post 5
    await target.send(req("browse", 2))  # user 2 saw posts 5 and 6; the pool has them
    await target.send(req("comment", 2))  # user 2's comment 5
    outcome = await target.send(req("delete", 1))
    assert (outcome.ok, outcome.post_id, outcome.endpoint) == (True, 5, "DELETE /posts/{post.id}")
    assert transport.calls[-1].path == "/posts/5"
    assert not target.has(1, "memory.own")
    seen = target._memory.users[2].memory["memory.seen"]  # type: ignore[index]
    assert [i["id"] for i in target._memory.fresh(seen).items.values()] == [6]
    assert [
        i["id"] for i in target._memory.fresh(target._memory.pools["pool.recent"]).items.values()
    ] == [6]
    assert target.has(2, "memory.comments")  # comments are another kind: comment 5 stays
    # a feed read just before the delete does not bring post 5 back...
    await target.send(req("browse", 2))
    assert [i["id"] for i in target._memory.fresh(seen).items.values()] == [6]
    # ...a create answer (an API reusing ids) does
    await target.send(req("create", 1))
    assert target.has(1, "memory.own")
    # deleting the comment forgets it (and only from comment lists)
    assert (await target.send(req("delete_comment", 2))).ok
    assert not target.has(2, "memory.comments") and target.has(1, "memory.own")


async def test_a_404_drops_the_picked_item() -> None:
    def handler(call: Call) -> Any:
        return (200, page(1)) if call.path == "/posts" else (404, {"detail": "gone"})

    target = DeclarativeTarget(FakeTransport(handler), feed_api())
    await target.send(req("browse"))
    outcome = await target.send(req("read"))
    assert (outcome.status, outcome.ok, outcome.post_id) == (404, False, 1)
    assert outcome.error == 'HTTP 404: {"detail": "gone"}'
    assert not target.has(1, "memory.seen")


# -- bad answers ----------------------------------------------------------------------------------


async def test_bad_answers_are_outcomes_with_body_excerpts() -> None:
    answers = iter(
        [
            (200, b"<html>" + b"x" * 300 + b"</html>"),
            (200, {"data": []}),
            (200, {"items": [{"id": 1}, {"title": "no id"}]}),
            (200, {"items": []}),
            (503, b"down"),
            Response(0, b"", 10.0, error="timeout"),
        ]
    )
    api = make_api(
        memory={"seen": 5},
        actions={
            "browse": {"path": "/posts", "extract": [{"path": "items[*]", "to": "memory.seen"}]},
            "ping": {"path": "/ping"},
        },
    )
    target = DeclarativeTarget(FakeTransport(lambda call: next(answers)), api)
    not_json = await target.send(req("browse"))
    assert (not_json.status, not_json.ok) == (200, False)
    assert not_json.error is not None and not_json.error.startswith("bad answer (not JSON): <html>")
    assert not_json.error.endswith("…") and len(not_json.error) < 160
    missing = await target.send(req("browse"))
    assert missing.error == "bad answer (missing field 'items[*]'): {\"data\": []}"
    no_id = await target.send(req("browse"))
    assert no_id.error is not None and no_id.error.startswith("bad answer (missing field 'id')")
    assert not target.has(1, "memory.seen")  # all or nothing
    empty = await target.send(req("browse"))
    assert empty.ok and not target.has(1, "memory.seen")  # an empty list is not missing
    down = await target.send(req("browse"))
    assert (down.status, down.ok, down.error) == (503, False, "HTTP 503: down")
    lost = await target.send(req("browse"))
    assert (lost.status, lost.ok, lost.error) == (0, False, "timeout")
    assert target.statistics()["bad_answers"] == 3


async def test_actions_without_extraction_take_any_body_and_odd_requests_are_outcomes() -> None:
    api = make_api(
        actions={
            "ping": {"path": "/ping"},
            "bad": {"path": "/u/{user.id}"},
        }
    )
    target = DeclarativeTarget(FakeTransport(lambda call: (204, b"not json")), api)
    assert (await target.send(req("ping"))).ok
    unknown = await target.send(req("nope"))
    assert (unknown.ok, unknown.skipped) == (False, True)
    unbuildable = await target.send(req("bad"))
    assert (unbuildable.ok, unbuildable.skipped, unbuildable.endpoint) == (
        False,
        True,
        "GET /u/{user.id}",
    )
    assert unbuildable.error is not None and "user has no field 'id'" in unbuildable.error


async def test_delete_account_fills_the_user_id_from_the_request() -> None:
    api = make_api(
        auth={"signup": DEMO_SIGNUP, "login": DEMO_LOGIN},
        actions={
            "delete_account": {"method": "DELETE", "path": "/users/{user.id}", "expect": [204]}
        },
    )
    transport = FakeTransport(
        lambda call: (200, {"token": "t"}) if call.path == "/auth/login" else (204, None)
    )
    target = DeclarativeTarget(transport, api)
    await target.send(req("log_in", 3, payload={"username": "bo", "password": "p"}))
    outcome = await target.send(req("delete_account", 3, remote_user_id=42))
    assert outcome.ok and transport.calls[-1].path == "/users/42"
    assert transport.calls[-1].headers["Authorization"] == "Bearer t"


async def test_statistics_include_the_transport_and_close_closes_it() -> None:
    transport = FakeTransport(lambda call: (200, {}))
    target = DeclarativeTarget(transport, make_api())
    await target.send(req("me"))
    stats = target.statistics()
    assert stats["requests_sent"] == 1 and stats["breakers"] == {}
    assert stats["intended_errors"] == 0
    await target.aclose()
    assert transport.closed


# -- error simulation -----------------------------------------------------------------------------


def strict_handler(accept_wrong: bool = False) -> Handler:
    """A small strict API: wrong types 422, unknown ids 404, wrong passwords 401."""

    def handler(call: Call) -> Any:
        if call.path == "/auth/login":
            ok = call.body["password"] == "pw-ann" or accept_wrong
            return (200, {"token": "t"}) if ok else (401, {"detail": "bad password"})
        if call.path == "/posts" and call.method == "GET":
            return 200, page(1, 2)
        if call.method == "PUT":
            if not accept_wrong and not isinstance(call.body.get("title"), str):
                return 422, {"detail": "title must be a string"}
            if not accept_wrong and int(call.path.rsplit("/", 1)[1]) > 1000:
                return 404, {"detail": "no such post"}
            return 200, {"id": 1}
        return 200, {}

    return handler


@pytest.mark.parametrize("kind", ["wrong_password", "invalid_payload", "unknown_id"])
async def test_intended_errors_are_counted_apart_from_failures(kind: str) -> None:
    api = make_api(
        auth={"login": DEMO_LOGIN},
        memory={"seen": 5},
        actions={
            "browse": {"path": "/posts", "extract": [{"path": "items[*]", "to": "memory.seen"}]},
            "edit": {
                "method": "PUT",
                "path": "/posts/{post.id}",
                "pick": {"post": "memory.seen"},
                "body": {"title": "{{title}}", "n": 3, "tags": ["a"]},
            },
        },
        errors={"share": 1.0, "kinds": [kind]},
    )
    transport = FakeTransport(strict_handler())
    target = DeclarativeTarget(transport, api)
    await join(target)
    outcome = await target.send(req("browse"))  # only a wrong password applies to it
    if kind != "wrong_password":
        assert outcome.ok and not outcome.intended
        outcome = await target.send(req("edit"))
    assert (outcome.ok, outcome.intended, outcome.error) == (False, True, f"intended: {kind}")
    call = transport.calls[-1]
    if kind == "wrong_password":
        assert (outcome.status, outcome.endpoint) == (401, "POST /auth/login")
        assert call.body["username"] == "ann" and call.body["password"] != "pw-ann"
    elif kind == "invalid_payload":
        assert (outcome.status, outcome.endpoint) == (422, "PUT /posts/{post.id}")
        assert call.body == {"title": 12345, "n": "not-a-number", "tags": "not-a-list"}
    else:
        assert outcome.status == 404 and int(call.path.rsplit("/", 1)[1]) >= 2_000_000_000
        assert target.has(1, "memory.seen")  # nothing forgotten or dropped for it
    stats = target.statistics()
    assert (stats["intended_errors"], stats["intended_by_kind"]) == (1, {kind: 1})
    assert stats["intended_accepted"] == 0


async def test_an_accepted_intended_error_is_a_real_finding() -> None:
    api = make_api(
        auth={"login": DEMO_LOGIN},
        memory={"seen": 5},
        actions={
            "browse": {"path": "/posts", "extract": [{"path": "items[*]", "to": "memory.seen"}]},
            "edit": {
                "method": "PUT",
                "path": "/posts/{post.id}",
                "pick": {"post": "memory.seen"},
                "body": {"title": "{{title}}"},
            },
        },
        errors={"share": 1.0, "kinds": ["invalid_payload"]},
    )
    target = DeclarativeTarget(FakeTransport(strict_handler(accept_wrong=True)), api)
    await join(target)
    await target.send(req("browse"))
    outcome = await target.send(req("edit"))
    assert (outcome.status, outcome.ok, outcome.intended) == (200, False, False)
    assert outcome.error == "intended error was accepted: invalid_payload"
    assert target.statistics()["intended_accepted"] == 1


async def test_error_share_and_applicable_kinds() -> None:
    api = make_api(
        memory={"seen": 5},
        actions={
            "browse": {"path": "/posts", "extract": [{"path": "items[*]", "to": "memory.seen"}]},
            "read": {"path": "/posts/{post.id}", "pick": {"post": "memory.seen"}},
        },
        errors={"share": 0.3},  # no log-in: no wrong_password; no body: no invalid_payload
    )

    def handler(call: Call) -> Any:
        if call.path == "/posts":
            return 200, page(1, 2)
        return (404, {}) if int(call.path.rsplit("/", 1)[1]) > 1000 else (200, {})

    target = DeclarativeTarget(FakeTransport(handler), api, seed=2)
    outcomes = [await target.send(req("browse" if i % 2 else "read")) for i in range(1, 401)]
    intended = [o for o in outcomes if o.intended]
    assert all(o.error == "intended: unknown_id" for o in intended)
    assert 30 <= len(intended) <= 90  # 0.3 of the 200 reads (browse has no error kind)
    assert all(o.ok for o in outcomes if not o.intended)


# -- a real server on 127.0.0.1 -------------------------------------------------------------------


async def test_against_a_real_server(serve: Starter) -> None:
    seen: list[tuple[str, str, str | None]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append((request.method, request.raw_path, request.headers.get("X-Session")))
        return await handler(request)  # type: ignore[no-any-return]

    async def signup(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"user": {"id": 7, "name": body["name"]}}, status=201)

    async def login(request: web.Request) -> web.Response:
        return web.json_response({"data": {"token": "s3cret"}})

    async def notes(request: web.Request) -> web.Response:
        if request.headers.get("X-Session") != "s3cret":
            return web.json_response({"detail": "who?"}, status=401)
        if request.method == "POST":
            body = await request.json()
            return web.json_response({"id": 30, "text": body["text"]}, status=201)
        return web.json_response([{"id": 10, "text": "a"}, {"id": 20, "text": "b"}])

    async def note(request: web.Request) -> web.Response:
        if request.match_info["id"] == "20":
            return web.Response(text="<h1>500 oops</h1>", status=200)
        return web.json_response({"id": int(request.match_info["id"])})

    app = web.Application(middlewares=[record])
    app.router.add_post("/signup", signup)
    app.router.add_post("/login", login)
    app.router.add_route("*", "/u/{name}/notes", notes)
    app.router.add_get("/notes/{id}", note)
    api = make_api(
        auth={
            "signup": {**DEMO_SIGNUP, "path": "/signup"},
            "login": {**DEMO_LOGIN, "path": "/login"},
            "user_id_path": "user.id",
            "token_path": "data.token",
            "scheme": "header",
            "header": "X-Session",
        },
        memory={"notes": 10},
        actions={
            "list": {
                "path": "/u/{user.username}/notes",
                "extract": [{"path": "[*]", "to": "memory.notes", "fields": {"id": "id"}}],
            },
            "write": {
                "method": "POST",
                "path": "/u/{user.username}/notes",
                "body": {"text": "{{sentence}}"},
                "expect": [201],
                "extract": [{"path": "", "to": "memory.notes"}],
            },
            "open": {
                "path": "/notes/{n.id}",
                "pick": {"n": "memory.notes"},
                "pick_strategy": "latest",
                "extract": [{"path": "id", "to": "memory.notes", "fields": {"id": ""}}],
            },
        },
    )
    base_url = await serve(app)
    target = DeclarativeTarget(AiohttpTransport(base_url, concurrency=4, timeout_s=5), api)
    try:
        up = await target.send(req("sign_up", payload=signup_payload("ann lee")))
        assert (up.status, up.remote_id) == (201, 7)
        logged_in = await target.send(
            req("log_in", payload={"username": "ann lee", "password": "p"})
        )
        assert logged_in.token == "s3cret"
        assert (await target.send(req("list"))).ok
        assert seen[-1] == ("GET", "/u/ann%20lee/notes", "s3cret")
        opened = await target.send(req("open"))
        assert (opened.ok, opened.post_id) == (False, 20)
        assert opened.error == "bad answer (not JSON): <h1>500 oops</h1>"
        written = await target.send(req("write"))
        assert written.ok and written.latency_ms > 0
        opened = await target.send(req("open"))
        assert (opened.ok, opened.post_id, opened.endpoint) == (True, 30, "GET /notes/{n.id}")
    finally:
        await target.aclose()


# -- saving and restoring a user's memory (a resumed run) ----------------------------------------


def memory_api(**auth: Any) -> ApiSpec:
    return feed_api(auth={"signup": DEMO_SIGNUP, "login": DEMO_LOGIN, **auth})


def memory_server(call: Call) -> Any:
    if call.path == "/users":
        return 201, {"id": 41}
    if call.path == "/auth/login":
        return 200, {"token": "tok-1"}
    if call.path == "/posts" and call.method == "GET":
        return 200, page(1, 2, 3, 4)
    if call.path == "/posts" and call.method == "POST":
        return 201, {"id": 50 + len(call.body["title"]) % 7}
    if call.path.endswith("/comments"):
        return 201, {"id": 70}
    return 204, None


async def test_exported_memory_is_json_and_restores_exactly() -> None:
    now = [1000.0]
    target = DeclarativeTarget(FakeTransport(memory_server), memory_api(), now=lambda: now[0])
    assert target.export_memory(1) is None  # a user the target does not know
    await join(target)
    for action in ("browse", "read", "read_popular", "create", "create", "comment"):
        assert (await target.send(req(action))).ok, action
    now[0] += 12.25
    saved = target.export_memory(1)
    assert saved is not None
    assert json.loads(json.dumps(saved)) == saved  # JSON-ready, nothing lost on the way
    assert saved["identity"] == {"username": "ann", "email": "ann@sim-engine.test", "name": "Ann"}
    assert "password" not in json.dumps(saved)  # derived from the run secret: never saved
    assert (saved["remote_id"], saved["token"], saved["token_age_s"]) == (41, "tok-1", 12.25)
    assert saved["token_sim_time"] == 1_772_445_600.0
    seen = saved["memory"]["memory.seen"]
    assert [i["id"] for i in seen["items"]] == [2, 3, 4]  # bound 3, newest kept
    assert sum(seen["picks"]) == 2  # read and read_popular picked from it
    assert set(saved["memory"]) == {"memory.seen", "memory.own", "memory.comments"}

    now[0] = 5.0  # another process: another clock
    restored = DeclarativeTarget(FakeTransport(memory_server), memory_api(), now=lambda: now[0])
    restored.restore_memory(1, json.loads(json.dumps(saved)))
    assert restored.export_memory(1) == saved
    assert restored.memory(1) == target.memory(1)
    assert restored.has(1, "memory.own") and not restored.has(1, "pool.recent")  # pools are shared
    restored.forget_user(1)
    assert restored.export_memory(1) is None


async def test_a_restored_user_with_a_valid_token_sends_no_log_in() -> None:
    now = [1000.0]
    before = DeclarativeTarget(FakeTransport(memory_server), memory_api(), now=lambda: now[0])
    await join(before)
    assert (await before.send(req("create"))).ok
    saved = before.export_memory(1)
    assert saved is not None

    transport = FakeTransport(memory_server)
    after = DeclarativeTarget(transport, memory_api(), now=lambda: now[0])
    after.restore_memory(1, saved)
    assert after.token_valid(1) and not after.token_valid(2)
    outcome = await after.send(req("delete"))  # the engine holds no token after a restart
    assert outcome.ok and outcome.retries == 0
    assert [(c.method, c.path) for c in transport.calls] == [
        ("DELETE", f"/posts/{outcome.post_id}")
    ]
    assert transport.calls[0].headers["Authorization"] == "Bearer tok-1"
    assert not after.has(1, "memory.own")


async def test_a_restored_token_ages_on_and_expires_by_its_ttl() -> None:
    now = [1000.0]
    server = TokenApi()
    api = make_api(auth={"login": DEMO_LOGIN, "token_ttl_s": 60})
    before = DeclarativeTarget(FakeTransport(server), api, now=lambda: now[0])
    await join(before)
    now[0] += 40
    saved = before.export_memory(1)
    assert saved is not None and saved["token_age_s"] == 40

    now[0] = 0.0
    transport = FakeTransport(server)
    after = DeclarativeTarget(transport, api, now=lambda: now[0])
    after.restore_memory(1, saved, password="pw-ann")
    assert (await after.send(req("me"))).ok  # 40 s old: still valid, no log-in
    assert [c.path for c in transport.calls] == ["/me"]
    now[0] += 20  # 60 s old: renewed before the action
    assert not after.token_valid(1)
    assert (await after.send(req("me"))).ok
    assert [c.path for c in transport.calls[1:]] == ["/auth/login", "/me"]
    assert transport.calls[1].body == {"username": "ann", "password": "pw-ann"}
    assert after.export_memory(1) == {**saved, "token": "tok-2", "token_age_s": 0.0}


async def test_basic_auth_saves_no_token_and_bad_saved_memory_is_refused() -> None:
    api = make_api(auth={"scheme": "basic"})
    target = DeclarativeTarget(FakeTransport(lambda call: (200, {})), api)
    await target.send(req("log_in", payload={"username": "ann", "password": "pw-ann"}))
    saved = target.export_memory(1)
    assert saved is not None and saved["token"] is None  # requests need the unsaved password
    assert target.token_valid(1)  # no token scheme: nothing to expire
    # deliberately malformed saves, of any shape (a list among them): typed Any on purpose
    bad_saves: list[Any] = [
        [],
        {"memory": []},
        {"memory": {"memory.x": [1]}},
        {"identity": "ann"},
        {"memory": {"memory.x": {"items": [{"id": 1}], "picks": []}}},
    ]
    for bad in bad_saves:
        with pytest.raises(ValueError):
            target.restore_memory(2, bad)
    assert target.export_memory(2) is None


# -- a whole simulated day against the in-process demo API ----------------------------------------

POST = "/posts/{post.id}"
DEMO_API: dict[str, Any] = {
    "auth": {
        "signup": DEMO_SIGNUP,
        "login": DEMO_LOGIN,
        "user_id_path": "id",
        "login_user_id_path": "user_id",
        "scheme": "bearer",
    },
    "memory": {"seen_posts": 40, "own_posts": 100, "opened": 1},
    "pools": {"recent_posts": 200},
    "actions": {
        "browse_feed": {
            "path": "/posts",
            "query": {"limit": 20, "offset": 0},
            "expect": [200],
            "extract": [
                {
                    "path": "items[*]",
                    "to": "memory.seen_posts",
                    "fields": {"id": "id", "author": "author_id"},
                },
                {"path": "items[*]", "to": "pool.recent_posts"},
            ],
        },
        "read_post": {
            "path": POST,
            "pick": {"post": "memory.seen_posts"},
            "expect": [200],
            "fallback": "browse_feed",
        },
        "create_post": {
            "method": "POST",
            "path": "/posts",
            "expect": [201],
            "body": {"title": "{{title}}", "body": "{{paragraph}}", "tags": ["{{tag}}"]},
            "extract": [{"path": "", "to": "memory.own_posts"}],
        },
        "update_post": {
            "method": "PUT",
            "path": POST,
            "pick": {"post": "memory.own_posts"},
            "body": {"body": "{{paragraph}}"},
            "expect": [200],
            "fallback": "create_post",
        },
        "delete_post": {
            "method": "DELETE",
            "path": POST,
            "pick": {"post": "memory.own_posts"},
            "expect": [204],
            "forget": "post",
            "fallback": "create_post",
        },
        "comment": {
            "method": "POST",
            "path": POST + "/comments",
            "pick": {"post": "pool.recent_posts"},
            "body": {"body": "{{sentence}}"},
            "expect": [201],
            "fallback": "browse_feed",
        },
        "follow_author": {
            "method": "POST",
            "path": "/users/{post.author}/follow",
            "pick": {"post": "memory.seen_posts"},
            "where": {"post": {"author": {"ne": "{user.id}"}}},  # not my own post
            "expect": [200, 201],
            "fallback": "browse_feed",
        },
        # the workflow's own actions, so that its steps can be told apart in the records
        "scan_feed": {
            "path": "/posts",
            "query": {"limit": 10},
            "expect": [200],
            "extract": [
                {
                    "path": "items[*]",
                    "to": "memory.seen_posts",
                    "fields": {"id": "id", "author": "author_id"},
                }
            ],
        },
        "open_post": {
            "path": POST,
            "pick": {"post": "memory.seen_posts"},
            "expect": [200],
            "extract": [{"path": "", "to": "memory.opened"}],
        },
        "reply": {
            "method": "POST",
            "path": POST + "/comments",
            "pick": {"post": "memory.opened"},
            "pick_strategy": "latest",
            "body": {"body": "{{sentence}}"},
            "expect": [201],
        },
    },
    "workflows": {
        "discuss": {
            "steps": [
                {"action": "scan_feed", "think_s": [5, 10]},
                {"action": "open_post", "think_s": [10, 20], "requires": ["memory.seen_posts"]},
                {"action": "reply", "think_s": [5, 10], "requires": ["memory.opened"]},
            ]
        },
    },
    "errors": {"share": 0.03},
}
WEIGHTS = {
    "browse_feed": 4,
    "read_post": 4,
    "create_post": 1.5,
    "update_post": 1,
    "delete_post": 0.5,
    "comment": 1,
    "follow_author": 0.5,
    "discuss": 1,
}


class RecordingTransport:
    """Wraps a transport and keeps every (request, response) exchanged."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.log: list[tuple[str, str, Any, dict[str, str], Response]] = []

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        resp = await self.inner.request(method, path, json_body, headers)
        self.log.append((method, path, json_body, dict(headers or {}), resp))
        return resp

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_simulated_day_against_the_demo_api() -> None:
    data = default_scenario().model_dump(mode="json")
    data.update(
        seed=11,
        api=DEMO_API,
        personas={
            "member": {
                "share": 1,
                "sessions_per_day": 4,
                "actions": {"working": WEIGHTS, "relaxing": WEIGHTS},
            }
        },
        lifecycle={"enabled": False},
    )
    data["population"].update(initial=30, signups_per_day=5, max_signups_per_day=None)
    scenario = validate_scenario(data)
    app = create_app()
    transport = RecordingTransport(AsgiTransport(app, headers={"X-Synthetic": "true"}))
    target = DeclarativeTarget(transport, scenario.api, seed=scenario.seed)  # type: ignore[arg-type]
    sink = ListSink()
    start = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    sim = Simulation(
        scenario, target, FastForwardClock(start), [sink], duration_s=86400, secret="x"
    )
    stats = await sim.run()
    await target.aclose()
    app.state.store.close()
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    by_action = Counter(r.action for r in actions)
    for name in (*WEIGHTS, "scan_feed", "open_post", "reply", "sign_up", "log_in"):
        if name != "discuss":
            assert by_action[name] > 0, (name, by_action)

    # Only the statuses the actions expect; intended errors apart, all rejected with a 4xx.
    expect = {n: set(a["expect"]) for n, a in DEMO_API["actions"].items()}
    expect.update(sign_up={201}, log_in={200})
    intended = [r for r in actions if r.intended]
    assert intended and all(400 <= r.status < 500 and not r.ok for r in intended)
    real_failures = [r for r in actions if not r.ok and not r.intended]
    assert stats.failed == len(real_failures)
    assert real_failures == []  # "not my own post" (``where``): nobody follows itself
    for r in actions:
        if r.ok:
            assert r.status in expect[r.action], r
    assert target.statistics()["intended_accepted"] == 0

    # What went over the wire: who owns which post, who saw which.
    user_of_token: dict[str, int] = {}
    author: dict[int, int] = {}
    seen_by: defaultdict[int | None, set[int]] = defaultdict(set)  # None: no known user
    seen_any: set[int] = set()
    changes = reads = 0
    for method, path, _body, headers, resp in transport.log:
        doc = json.loads(resp.body) if resp.body and resp.status < 300 else None
        if path == "/auth/login" and resp.status == 200:
            assert doc is not None, path
            user_of_token[doc["token"]] = doc["user_id"]
            continue
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        me = user_of_token.get(token)
        if method == "GET" and path.startswith("/posts?") and doc is not None:
            ids = {item["id"] for item in doc["items"]}
            seen_by[me].update(ids)
            seen_any.update(ids)
        elif method == "POST" and path == "/posts" and resp.status == 201:
            assert doc is not None, path
            author[doc["id"]] = doc["author_id"]
        elif method in ("PUT", "DELETE") and path.startswith("/posts/"):
            post = int(path.rsplit("/", 1)[1])
            if post < 2_000_000_000:  # not an intended unknown id
                changes += 1
                assert author[post] == me, (method, path)  # own posts only (memory.own_posts)
        elif method == "GET" and re.fullmatch(r"/posts/\d+", path):
            post = int(path.rsplit("/", 1)[1])
            if post < 2_000_000_000:
                reads += 1
                assert post in seen_by[me], path  # read only what this user's feed showed
        elif method == "POST" and path.endswith("/comments"):
            post = int(path.split("/")[2])
            assert post in seen_any or post >= 2_000_000_000 or author.get(post) == me, path
    assert changes > 10 and reads > 50

    # The workflow's steps come in order, back to back, within a session.
    per_user: defaultdict[int, list[ActionRecord]] = defaultdict(list)
    for r in actions:
        if r.action not in ("sign_up", "log_in"):
            per_user[r.user_id].append(r)
    steps = 0
    for records in per_user.values():
        for prev, cur in itertools.pairwise(records):
            if cur.action == "open_post":
                assert prev.action == "scan_feed" and prev.session_id == cur.session_id
            if cur.action == "reply":
                steps += 1
                assert prev.action == "open_post" and prev.session_id == cur.session_id
                if not (cur.intended or prev.intended):
                    assert cur.post_id == prev.post_id  # the reply is to the post just opened
    assert steps > 5
