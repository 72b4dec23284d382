"""Plugins on real-looking APIs (issue 12, "Why" 5): ``ctx.call`` sends the scenario's auth
(Bearer, a token under another prefix, HTTP Basic, an API key header, none), a plugin action
can say "not possible now" (the engine takes its fallback, as for a YAML guard), and the
plugins' per-user state is saved with the users and given back on resume.
Against small FastAPI apps in process (``tests/api_apps.py``)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from api_apps import Conduit, conduit_app
from helpers import ListSink
from sim_engine import plugins
from sim_engine.engine.capabilities import MemoryKeeper
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.simulation import Simulation
from sim_engine.engine.store import SqliteStore
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.records import ActionRecord, ActionRequest
from sim_engine.model.scenario import Scenario, default_scenario, validate_scenario
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.inprocess import AsgiTransport
from sim_engine.targets.plugin import PluginTarget

ISO = "2026-03-02T10:00:00.000+00:00"
START = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()


def req(action: str, user_id: int = 1, **kw: Any) -> ActionRequest:
    return ActionRequest(action, user_id, START + 36000, ISO, **kw)


@plugins.action("whoami", endpoint="GET /whoami")
async def whoami(ctx: plugins.PluginContext) -> dict[str, Any]:
    resp = await ctx.call("GET", "/whoami", headers={"X-Extra": "1"})
    seen = json.loads(resp.body)
    ctx.state["seen"] = seen
    return {"status": resp.status, "ok": resp.status == 200}


def whoami_app() -> FastAPI:
    """``POST /login`` gives token ``tk-USERNAME``; ``GET /whoami`` echoes the credentials."""
    app = FastAPI()

    @app.post("/login")
    async def login(request: Request) -> Any:
        return {"token": f"tk-{(await request.json())['username']}"}

    @app.get("/whoami")
    async def me(request: Request) -> Any:
        keep = ("authorization", "x-api-key", "x-extra", "x-sim-time")
        return {k: v for k, v in request.headers.items() if k in keep}

    return app


LOGIN = {"method": "POST", "path": "/login", "body": {"username": "{user.username}"}}
BASIC = "Basic " + base64.b64encode(b"ann:pw-ann").decode()
SCHEMES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "bearer": ({"login": LOGIN}, {"authorization": "Bearer tk-ann"}),
    "token": ({"login": LOGIN, "scheme": "token"}, {"authorization": "Token tk-ann"}),
    "prefix": (
        {"login": LOGIN, "scheme": "token", "prefix": "JWT"},
        {"authorization": "JWT tk-ann"},
    ),
    "header": (
        {"login": LOGIN, "scheme": "header", "header": "X-Api-Key"},
        {"x-api-key": "tk-ann"},
    ),
    "basic": ({"scheme": "basic"}, {"authorization": BASIC}),
    "api_key": ({"scheme": "api_key", "header": "X-Api-Key", "api_key": "k9"}, {"x-api-key": "k9"}),
    "none": ({}, {}),
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
async def test_ctx_call_sends_the_scenario_s_auth(scheme: str) -> None:
    auth, expected = SCHEMES[scheme]
    api = ApiSpec.model_validate({"auth": auth, "actions": {"noop": {"path": "/whoami"}}})
    transport = AsgiTransport(whoami_app())
    inner = DeclarativeTarget(transport, api)
    target = PluginTarget(inner, transport, plugins.PluginRegistry.from_objects(whoami))
    payload = {"username": "ann", "password": "pw-ann", "email": "ann@sim-engine.test"}
    assert (await target.send(req("sign_up", payload=payload))).ok
    login = await target.send(req("log_in", payload=payload))
    assert login.ok
    outcome = await target.send(req("whoami", token=login.token))
    assert (outcome.ok, outcome.endpoint) == (True, "GET /whoami")
    memory = target.export_memory(1)
    assert memory is not None
    seen = memory["plugins"]["seen"]
    credentials = {k: v for k, v in seen.items() if k in ("authorization", "x-api-key")}
    assert credentials == expected
    assert (seen["x-extra"], seen["x-sim-time"]) == ("1", ISO)


# -- "not possible now" and saved plugin state, through the engine -------------------------------


@plugins.action("clap", endpoint="POST /articles", possible=lambda v: v.state.get("claps", 0) < 3,
                fallback="browse")  # fmt: skip
async def clap(ctx: plugins.PluginContext) -> dict[str, Any]:
    resp = await ctx.call("POST", "/articles", json={"article": {"title": "x"}})
    if resp.status == 201:
        ctx.state["claps"] = ctx.state.get("claps", 0) + 1
    return {"status": resp.status, "ok": resp.status == 201}


@plugins.action("shrug")
async def shrug(ctx: plugins.PluginContext) -> Any:
    return plugins.NOT_POSSIBLE  # it looked, and there was nothing to do


CREDENTIALS = {"user": {"username": "{user.username}", "password": "{user.password}"}}


def clap_scenario() -> Scenario:
    weights = {"browse": 1, "clap": 3, "shrug": 1}
    data = default_scenario().model_dump(mode="json")
    data.update(
        seed=9,
        api={
            "auth": {
                "signup": {"method": "POST", "path": "/users", "body": CREDENTIALS},
                "login": {"method": "POST", "path": "/users/login", "body": CREDENTIALS},
                "token_path": "user.token",
                "user_id_path": "user.id",
                "scheme": "token",
                "prefix": "JWT",
            },
            "actions": {"browse": {"path": "/articles", "expect": [200]}},
        },
        personas={
            "p": {
                "share": 1,
                "sessions_per_day": 3,
                "actions": {"working": weights, "relaxing": weights},
            }
        },
        lifecycle={"enabled": False},
    )
    data["population"].update(initial=12, signups_per_day=0)
    registry = plugins.PluginRegistry.from_objects(clap, shrug)
    return validate_scenario(data, registry=registry)


def simulation(
    scenario: Scenario, state: Conduit, store: SqliteStore, start: float
) -> tuple[Simulation, ListSink, PluginTarget]:
    transport = AsgiTransport(conduit_app(state))
    assert scenario.api is not None
    inner = DeclarativeTarget(transport, scenario.api, seed=scenario.seed)
    registry = scenario.registry
    assert isinstance(registry, plugins.PluginRegistry)
    target = PluginTarget(inner, transport, registry, seed=scenario.seed)
    sink = ListSink()
    clock = FastForwardClock(start)
    sim = Simulation(scenario, target, clock, [sink], 86400, "s", store, [target])
    return sim, sink, target


async def test_guarded_plugin_actions_fall_back_and_their_state_survives_a_resume(
    tmp_path: Path,
) -> None:
    scenario = clap_scenario()
    state = Conduit(prefix="JWT")
    store = SqliteStore(tmp_path / "state.db", create=True)
    sim, sink, target = simulation(scenario, state, store, START)
    assert isinstance(target, MemoryKeeper)
    await sim.run()
    sim.checkpoint()
    store.close()
    first = [r for r in sink.records if isinstance(r, ActionRecord)]
    by_action = Counter(r.action for r in first)
    assert by_action["browse"] > 0 and "shrug" not in by_action, by_action  # NOT_POSSIBLE: none
    claps = Counter(r.user_id for r in first if r.action == "clap")
    assert max(claps.values()) == 3 and len(claps) >= 8, claps  # never past the guard
    assert all(r.ok for r in first if r.action == "clap")  # ctx.call sent "JWT TOKEN"
    assert Counter(a["author"] for a in state.articles.values()).most_common(1)[0][1] == 3

    store = SqliteStore(tmp_path / "state.db", create=False)
    saved, users = store.load()
    sim, sink, target = simulation(scenario, state, store, START + 86400)
    sim.restore(saved, users)
    for user in users:  # the plugin state came back with each user
        assert target.export_memory(user.user_id)["plugins"]["claps"] == claps[user.user_id]  # type: ignore[index]
    await sim.run()
    store.close()
    records = [r for r in sink.records if isinstance(r, ActionRecord)]
    assert len(records) > 50  # the resumed day ran
    second = Counter(r.user_id for r in records if r.action == "clap")
    for user_id, n in second.items():
        assert claps[user_id] + n <= 3, (user_id, claps[user_id], n)
    assert Counter(a["author"] for a in state.articles.values()).most_common(1)[0][1] == 3


async def test_a_fallback_naming_no_action_is_refused_when_the_run_is_set_up() -> None:
    @plugins.action("lost", possible=lambda v: False, fallback="nowhere")
    async def lost(ctx: plugins.PluginContext) -> None:
        return None

    registry = plugins.PluginRegistry.from_objects(lost)
    transport = AsgiTransport(whoami_app())
    inner = DeclarativeTarget(transport, ApiSpec.model_validate({"actions": {"a": {"path": "/"}}}))
    with pytest.raises(plugins.PluginError, match="fallback 'nowhere' is no action"):
        plugins.plugin_runtime(default_scenario(), inner, transport, registry)

    async def guard(view: Any) -> bool:
        return True

    with pytest.raises(plugins.PluginError, match="possible must be a synchronous function"):
        plugins.action("bad", possible=guard)
