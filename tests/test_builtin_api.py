"""The built-in description of the demo social API (``sim_engine.model.builtin``).

* it ships in the package, validates, and names every action the default
  personas draw, plus ``delete_account`` and ``list_own_posts``;
* through :class:`~sim_engine.targets.declarative.DeclarativeTarget` against the
  in-process demo app, each action does what the hard-wired social binding does;
* parity: one simulated day of the default scenario through the description and
  through :class:`~sim_engine.targets.social.SocialApiTarget`, same seed.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import pytest

from helpers import ListSink, busy_social_overrides, signup_payload
from sim_engine.api.plugins import RESERVED_ACTIONS
from sim_engine.demo import create_app
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.simulation import Simulation
from sim_engine.model.builtin import SOCIAL_API_FILE, social_api, social_api_data
from sim_engine.model.records import ActionRecord, ActionRequest
from sim_engine.model.scenario import ACTIONS, ScenarioError, default_scenario, validate_scenario
from sim_engine.runs.targets import bind_target
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.inprocess import AsgiTransport
from sim_engine.targets.transport import Response, Transport

ISO = "2026-03-02T10:00:00.000+00:00"
PERSONA_ACTIONS = ACTIONS  # the default personas' actions, the social ones included


def test_the_description_ships_in_the_package_and_names_the_personas_actions() -> None:
    assert resources.files("sim_engine.model.builtin").joinpath(SOCIAL_API_FILE).is_file()
    api = social_api()
    assert social_api() is api  # validated once, frozen
    cleanup_only = {"unfollow", "delete_comment", "unreact"}  # deletes `cleanup` sends
    assert set(api.actions) == {*PERSONA_ACTIONS, "delete_account", "list_own_posts", *cleanup_only}
    drawn = {
        name
        for persona in default_scenario().personas.values()
        for weights in persona.actions.values()
        for name in weights
    }
    assert drawn <= set(api.actions)
    assert set(api.actions) <= RESERVED_ACTIONS  # no plugin action may shadow one
    # an api section like any other: the default scenario validates with it
    data = default_scenario().model_dump(mode="json")
    data["api"] = social_api_data()
    scenario = validate_scenario(data)
    assert scenario.api == api
    assert api.auth.effective_scheme == "bearer"


class Recorder:
    """Wraps a transport and keeps every (method, path, headers, response)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.log: list[tuple[str, str, dict[str, str], Response]] = []

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        resp = await self.inner.request(method, path, json_body, headers)
        self.log.append((method, path, dict(headers or {}), resp))
        return resp

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


def req(action: str, user_id: int = 1, **fields: Any) -> ActionRequest:
    return ActionRequest(action, user_id, 1_772_445_600.0, ISO, **fields)


async def test_each_action_against_the_demo_app() -> None:
    app = create_app()
    transport = Recorder(AsgiTransport(app, headers={"X-Synthetic": "true"}))
    target = DeclarativeTarget(transport, social_api(), seed=3)
    try:
        for uid, name in ((1, "ann"), (2, "bob")):
            up = await target.send(req("sign_up", uid, payload=signup_payload(name)))
            login = await target.send(
                req("log_in", uid, payload={"username": name, "password": f"pw-{name}"})
            )
            assert up.ok and login.ok and login.remote_id == up.remote_id
        # nothing of its own yet: updating or deleting browses the feed instead
        assert target.resolve("update_post", 1) == "browse_feed"
        assert target.resolve("delete_post", 1) == "browse_feed"
        assert target.resolve("read_post", 1) == "browse_feed"
        created = [await target.send(req("create_post", 1)) for _ in range(3)]
        assert all(c.ok and c.status == 201 for c in created)
        assert target.resolve("update_post", 1) == "update_post"
        assert target.resolve("update_post", 2) == "browse_feed"  # bob owns nothing
        feed = await target.send(req("browse_feed", 2))
        assert feed.ok and transport.log[-1][1] == "/posts?limit=20&offset=0"  # the first page
        read = await target.send(req("read_post", 2))
        assert read.ok and read.endpoint == "GET /posts/{post.id}"
        updated = await target.send(req("update_post", 1))
        assert updated.ok and updated.status == 200
        deleted = await target.send(req("delete_post", 1))
        assert deleted.ok and deleted.status == 204
        own = target.memory(1)
        assert own is not None and len(own["memory.own_posts"]) == 2
        # bob saw the deleted post on his page: it is forgotten there too (same kind)
        seen = target.memory(2)
        assert seen is not None
        assert deleted.post_id not in {p["id"] for p in seen["memory.seen_posts"]}

        # a post gone behind the user's back: the 404 forgets it
        other = own["memory.own_posts"][0]["id"]
        app.state.store.delete_post(other)
        outcomes = [await target.send(req("read_post", 2)) for _ in range(30)]
        assert any(o.status == 404 for o in outcomes) and all(
            o.ok or o.status == 404 for o in outcomes
        )
        seen = target.memory(2)
        assert seen is not None and other not in {p["id"] for p in seen["memory.seen_posts"]}

        # reconcile: the API's own list of the user's posts
        target.forget_user(1)
        await target.send(req("log_in", 1, payload={"username": "ann", "password": "pw-ann"}))
        listing = await target.send(req("list_own_posts", 1))
        assert listing.ok and re.search(r"author_id=\d+&limit=100", transport.log[-1][1])
        own = target.memory(1)
        assert own is not None
        assert {p["id"] for p in own["memory.own_posts"]} == {
            c.post_id for c in created if c.post_id not in (deleted.post_id, other)
        }

        # delete_account: the user and all it created
        remote = up_id(transport, "ann")
        gone = await target.send(req("delete_account", 1))
        assert gone.ok and gone.status == 204
        assert app.state.store.get_user(remote) is None
        assert app.state.store.stats().posts == 0
    finally:
        await target.aclose()
        app.state.store.close()


def up_id(transport: Recorder, username: str) -> int:
    """The id the demo app gave ``username`` at sign-up (from the recorded answers)."""
    for method, path, _, resp in transport.log:
        if (method, path) == ("POST", "/users") and resp.status == 201:
            doc = json.loads(resp.body)
            if doc["username"] == username:
                return int(doc["id"])
    raise AssertionError(f"{username} never signed up")


async def test_the_feed_pages_within_a_session_and_starts_over() -> None:
    """``browse_feed`` reads the next page at each call in a session; an empty page or
    the end of the session starts again at the newest one."""
    app = create_app()
    transport = Recorder(AsgiTransport(app))
    target = DeclarativeTarget(transport, social_api(), seed=3)
    try:
        await target.send(req("sign_up", 1, payload=signup_payload("ann")))
        await target.send(req("log_in", 1, payload={"username": "ann", "password": "pw-ann"}))
        for _ in range(45):
            assert (await target.send(req("create_post", 1))).ok
        offsets = []
        for _ in range(5):
            assert (await target.send(req("browse_feed", 1))).ok
            offsets.append(int(transport.log[-1][1].rsplit("offset=", 1)[1]))
        # pages of 20 over 45 posts: 0, 20, 40, then an empty page, then the newest again
        assert offsets == [0, 20, 40, 60, 0]
        await target.send(req("browse_feed", 1))
        target.end_session(1)
        assert (await target.send(req("browse_feed", 1))).ok
        assert transport.log[-1][1].endswith("offset=0")
    finally:
        await target.aclose()
        app.state.store.close()


def test_a_page_param_also_in_the_query_is_refused() -> None:
    data = social_api_data()
    actions = data["actions"]
    assert isinstance(actions, dict)
    actions["browse_feed"]["query"]["offset"] = 0
    scenario = default_scenario().model_dump(mode="json")
    scenario["api"] = data
    with pytest.raises(ScenarioError, match=r"page\.param 'offset' is also in query"):
        validate_scenario(scenario)


# -- a whole day through the built-in description -------------------------------------------------


async def simulated_day() -> tuple[list[ActionRecord], Any, Recorder]:
    """One simulated day of the busy default scenario with its social actions
    (helpers.busy_social_overrides: every action common, nobody quits, so no post
    vanishes with a churned author; 150 users at the start, no ``api`` section: the
    built-in description) against a fresh in-process demo app; returns the action
    records, the app's row counts and the wire log."""
    scenario = default_scenario().with_overrides(
        **busy_social_overrides(), **{"population.initial": 150}
    )
    app = create_app()
    transport = Recorder(AsgiTransport(app, headers={"X-Synthetic": "true"}))
    target = bind_target(scenario, transport)
    sink = ListSink()
    start = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    sim = Simulation(
        scenario, target, FastForwardClock(start), [sink], duration_s=86400, secret="x"
    )
    await sim.run()
    await target.aclose()
    counts = app.state.store.stats()
    app.state.store.close()
    return [r for r in sink.records if isinstance(r, ActionRecord)], counts, transport


async def test_a_day_of_the_default_scenario_runs_through_the_description() -> None:
    """The built-in demo API runs through the same declarative machinery as any ``api``
    section (one binding path): nothing fails, every user logs in once, the persona
    actions all happen, and over the wire users change only their own posts and read,
    comment on and react to only posts they saw."""
    described, rows, wire = await simulated_day()
    assert sum(r.ok for r in described) / len(described) >= 0.99
    by_action = Counter(r.action for r in described)
    # every user logged in once: no token was lost or renewed within the day
    assert by_action["log_in"] == by_action["sign_up"] > 100
    assert rows.users == by_action["sign_up"]
    counts = Counter(r.action for r in described if r.action in PERSONA_ACTIONS)
    assert set(counts) == set(PERSONA_ACTIONS)
    assert counts["browse_feed"] + counts["read_post"] > 0.6 * sum(counts.values())
    assert rows.posts > 50

    # What went over the wire: own posts only changed, only posts seen read.
    user_of: dict[str, int] = {}
    author: dict[int, int] = {}
    seen_by: defaultdict[int, set[int]] = defaultdict(set)
    checked = 0
    for method, path, headers, resp in wire.log:
        doc = json.loads(resp.body) if resp.body and resp.status < 300 else None
        me = user_of.get(headers.get("Authorization", "").removeprefix("Bearer "), -1)
        if path == "/auth/login" and doc is not None:
            user_of[doc["token"]] = doc["user_id"]
        elif method == "GET" and path.startswith("/posts?") and doc is not None:
            seen_by[me].update(item["id"] for item in doc["items"])
        elif (method, path) == ("POST", "/posts") and doc is not None:
            author[doc["id"]] = doc["author_id"]
        elif re.fullmatch(r"/posts/\d+", path):
            post = int(path.rsplit("/", 1)[1])
            if method == "GET":
                assert post in seen_by[me], path
            else:
                assert author[post] == me, (method, path)
            checked += 1
        elif match := re.fullmatch(r"/posts/(\d+)/(comments|reactions)", path):
            assert int(match[1]) in seen_by[me], path  # social picks come from seen posts
            checked += 1
    assert checked > 1000
