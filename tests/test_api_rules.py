"""Memory rules and auth of ``api`` scenarios, against small FastAPI apps in process.

Issue 12, "Why" 4: an expected status never fails for a missing extraction, a 404 or
410 drops the dead item even when listed in ``expect``, pickers filter with ``where``
("not mine", "not already followed", "state = open"), extraction copies fields of the
picked item. "Why" 6: with auth ``none`` there are no log-in records at all, and
create actions record the created id. Must-have 5: the OAuth2 password flow (form
bodies, access and refresh tokens, ``expires_in``) and token prefixes.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest

from api_apps import Conduit, OAuth, conduit_app, oauth_app, open_app
from helpers import ListSink
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.simulation import Simulation
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.pick_spec import matcher
from sim_engine.model.records import ActionRecord, ActionRequest
from sim_engine.model.scenario import ScenarioError, default_scenario, validate_scenario
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.inprocess import AsgiTransport

ISO = "2026-03-02T10:00:00.000+00:00"
CREDENTIALS = {"user": {"username": "{user.username}", "password": "{user.password}"}}
CONDUIT: dict[str, Any] = {
    "auth": {
        "signup": {"method": "POST", "path": "/users", "body": CREDENTIALS, "expect": [201]},
        "login": {"method": "POST", "path": "/users/login", "body": CREDENTIALS},
        "token_path": "user.token",
        "user_id_path": "user.id",
        "scheme": "token",
    },
    "memory": {"seen": 50, "read": 50, "own_comments": 50, "following": 50},
    "actions": {
        "browse": {
            "path": "/articles",
            "extract": [
                {
                    "path": "articles[*]",
                    "to": "memory.seen",
                    "fields": {"id": "id", "slug": "slug", "author": "author", "state": "state"},
                }
            ],
        },
        "read": {
            "path": "/articles/{a.slug}",
            "pick": {"a": "memory.seen"},
            "expect": [200, 404],
            "extract": [{"path": "article", "to": "memory.read", "fields": {"slug": "slug"}}],
            "fallback": "browse",
        },
        "comment": {
            "method": "POST",
            "path": "/articles/{a.slug}/comments",
            "pick": {"a": "memory.seen"},
            "where": {"a": {"state": "open"}},
            "body": {"comment": {"body": "{{sentence}}"}},
            "expect": [200, 404],
            "extract": [
                {"path": "comment", "to": "memory.own_comments", "copy": {"slug": "a.slug"}}
            ],
        },
        "uncomment": {
            "method": "DELETE",
            "path": "/articles/{c.slug}/comments/{c.id}",
            "pick": {"c": "memory.own_comments"},
            "forget": "c",
            "expect": [204],
        },
        "follow": {
            "method": "POST",
            "path": "/profiles/{a.author}/follow",
            "pick": {"a": "memory.seen"},
            "where": {
                "a": {"author": {"ne": "{user.username}", "not_in": "memory.following.username"}}
            },
            "expect": [200],
            "extract": [
                {"path": "profile", "to": "memory.following", "fields": {"username": "username"}}
            ],
            "fallback": "browse",
        },
    },
}


def req(action: str, user_id: int = 1, **kw: Any) -> ActionRequest:
    return ActionRequest(action, user_id, 1_772_445_600.0, ISO, **kw)


async def conduit(state: Conduit, api: dict[str, Any] | None = None) -> DeclarativeTarget:
    """A target on the conduit app with user 1 (``ann``) signed up and logged in."""
    spec = ApiSpec.model_validate(api or CONDUIT)
    target = DeclarativeTarget(AsgiTransport(conduit_app(state)), spec, seed=3)
    payload = {"username": "ann", "password": "pw-ann", "email": "ann@sim-engine.test"}
    assert (await target.send(req("sign_up", payload=payload))).ok
    assert (await target.send(req("log_in", payload=payload))).ok
    return target


# -- "Why" 4: expected statuses, dead items, where, copy ------------------------------------------


async def test_an_expected_404_keeps_nothing_fails_nothing_and_drops_the_dead_item() -> None:
    state = Conduit()
    dead = state.add_article("bob")
    target = await conduit(state)
    assert (await target.send(req("browse"))).ok
    del state.articles[dead["slug"]]  # deleted by its author meanwhile

    outcome = await target.send(req("read"))
    assert (outcome.status, outcome.ok, outcome.error) == (404, True, None)
    assert target.statistics()["bad_answers"] == 0  # the extraction was not run on the 404
    assert not target.has(1, "memory.seen")  # dropped: nobody opens a dead link twice
    assert target.resolve("read", 1) == "browse"
    for _ in range(5):  # what the engine would draw next: read, else its fallback
        await target.send(req(target.resolve("read", 1) or "browse"))
    assert state.hits[f"GET /articles/{dead['slug']}"] == 1

    # a comment on an article deleted meanwhile: the 404 is expected, nothing is kept
    gone = state.add_article("bob")
    await target.send(req("browse"))
    del state.articles[gone["slug"]]
    outcome = await target.send(req("comment"))
    assert (outcome.status, outcome.ok) == (404, True)
    assert not target.has(1, "memory.own_comments")


async def test_where_filters_out_own_items_already_followed_authors_and_closed_items() -> None:
    state = Conduit()
    for author, status in (("ann", "open"), ("bob", "open"), ("cat", "closed"), ("bob", "open")):
        state.add_article(author, status)
    state.add_article("dan", "closed")
    target = await conduit(state)
    await target.send(req("browse"))

    followed = []
    while (name := target.resolve("follow", 1)) == "follow":
        outcome = await target.send(req("follow"))
        assert outcome.ok, outcome
        followed.append(outcome)
        assert len(followed) <= 3
    assert name == "browse"  # nobody left to follow: the fallback
    assert state.follows == {("ann", "bob"), ("ann", "cat"), ("ann", "dan")}
    assert state.refused == []  # never oneself (400), never twice (409)

    for _ in range(30):
        assert (await target.send(req("comment"))).ok
    on = Counter(c["slug"] for c in state.comments.values())
    assert set(on) == {"a-1", "a-2", "a-4"}  # the open articles only, each of them
    assert state.refused == []


async def test_extraction_copies_fields_of_the_picked_item_to_delete_own_comments() -> None:
    state = Conduit()
    state.add_article("bob")
    state.add_article("cat")
    target = await conduit(state)
    await target.send(req("browse"))
    for _ in range(6):
        assert (await target.send(req("comment"))).ok
    memory = target.memory(1)
    assert memory is not None
    # the comment answer does not name its article: the slug was copied from the pick
    assert {(c["id"], c["slug"]) for c in memory["memory.own_comments"]} == {
        (n, c["slug"]) for n, c in state.comments.items()
    }
    while target.resolve("uncomment", 1) == "uncomment":
        outcome = await target.send(req("uncomment"))
        assert (outcome.status, outcome.ok) == (204, True), outcome
    assert state.comments == {}
    assert state.refused == []


def test_where_and_copy_are_checked_when_the_scenario_is_validated() -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"where": {"b": {"author": "x"}}}, "'b' is not picked"),
        ({"where": {"a": {"author": {"ne": "{a.id}"}}}}, "only {user.FIELD}"),
        ({"where": {"a": {"author": {"not_in": "memory.nope.x"}}}}, "unknown memory 'memory.nope'"),
        ({"where": {"a": {"author": {"like": 1}}}}, "a mapping of eq, ne, in, not_in"),
        ({"extract": [{"to": "memory.read", "copy": {"s": "b.slug"}}]}, "copy from PICK.FIELD"),
        ({"extract": [{"to": "memory.read", "copy": {"s": "user.nope"}}]}, "unknown user field"),
    ]
    for change, message in bad:
        api = copy.deepcopy(CONDUIT)
        api["actions"]["read"].update(change)
        data = default_scenario().model_dump(mode="json")
        data.update(api=api, personas={"p": {"share": 1, "actions": {"working": {"read": 1}}}})
        with pytest.raises(ScenarioError, match=r"api\.actions\.read") as err:
            validate_scenario(data)
        assert message in str(err.value), (change, str(err.value))
        assert "\n" not in str(err.value)


async def test_a_2xx_answer_missing_a_field_is_a_bad_answer_unless_the_rule_is_optional() -> None:
    state = Conduit()
    state.add_article("bob")
    api = copy.deepcopy(CONDUIT)
    api["actions"]["read"]["extract"] = [
        {"path": "article", "to": "memory.read", "fields": {"slug": "slug", "x": "missing"}}
    ]
    target = await conduit(state, api)
    await target.send(req("browse"))
    outcome = await target.send(req("read"))
    assert (outcome.status, outcome.ok) == (200, False)
    assert outcome.error is not None and outcome.error.startswith("bad answer (missing field")
    api["actions"]["read"]["extract"][0]["optional"] = True
    target = await conduit(Conduit(articles=state.articles), api)
    await target.send(req("browse"))
    assert (await target.send(req("read"))).ok
    assert not target.has(1, "memory.read")


@pytest.mark.parametrize("prefix", ["Token", "JWT"])
async def test_token_auth_sends_the_scenario_s_prefix(prefix: str) -> None:
    state = Conduit(prefix=prefix)
    api = copy.deepcopy(CONDUIT)
    if prefix != "Token":
        api["auth"]["prefix"] = prefix
    target = await conduit(state, api)
    outcome = await target.send(req("browse"))
    assert outcome.ok
    state.add_article("bob")
    await target.send(req("browse"))
    assert (await target.send(req("comment"))).ok  # 401 without the right prefix
    with pytest.raises(ValueError, match="prefix is for schemes bearer and token"):
        ApiSpec.model_validate({"auth": {"scheme": "basic", "prefix": "X"}, "actions": {}})


# -- "Why" 6: auth none, ids of created resources -------------------------------------------------


OPEN_API: dict[str, Any] = {
    "actions": {
        "list_notes": {"path": "/notes", "expect": [200]},
        "create_note": {"method": "POST", "path": "/notes", "body": {"text": "{{sentence}}"}},
        "create_boxed": {"method": "POST", "path": "/boxed", "body": {"text": "{{word}}"}},
        "private": {"path": "/private", "expect": [200]},
    }
}


async def test_auth_none_records_no_log_ins_and_creates_record_their_ids() -> None:
    weights = {"list_notes": 3, "create_note": 1, "create_boxed": 1, "private": 1}
    data = default_scenario().model_dump(mode="json")
    data.update(
        seed=5,
        api=OPEN_API,
        personas={
            "p": {
                "share": 1,
                "sessions_per_day": 6,
                "actions": {"working": weights, "relaxing": weights},
            }
        },
        lifecycle={"enabled": False},
    )
    data["population"].update(initial=8, signups_per_day=0)
    scenario = validate_scenario(data)
    hits: Counter[str] = Counter()
    transport = AsgiTransport(open_app(hits))
    assert scenario.api is not None
    target = DeclarativeTarget(transport, scenario.api, seed=scenario.seed)
    sink = ListSink()
    start = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    clock = FastForwardClock(start)
    sim = Simulation(scenario, target, clock, [sink], duration_s=86400, secret="x")
    await sim.run()
    await target.aclose()
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    by_action = Counter(r.action for r in actions)
    assert by_action["private"] > 5 and by_action["create_note"] > 5, by_action
    assert by_action["sign_up"] == by_action["log_in"] == 0, by_action  # nothing was sent
    assert all((r.status, r.ok) == (401, False) for r in actions if r.action == "private")
    assert sum(hits.values()) == len(actions)  # every record is a request, and back
    notes = [r.post_id for r in actions if r.action == "create_note"]
    boxed = [r.post_id for r in actions if r.action == "create_boxed"]
    assert None not in notes and None not in boxed  # both answer forms give the id
    ids = sorted([n for n in notes if n is not None] + [b - 1000 for b in boxed if b is not None])
    assert ids == list(range(1, len(notes) + len(boxed) + 1))


# -- OAuth2 password flow and refresh tokens ------------------------------------------------------


async def test_oauth2_password_flow_refreshes_before_expiry_and_on_401() -> None:
    state = OAuth()
    api = ApiSpec.model_validate(
        {
            "auth": {"oauth2": {"token_url": "/oauth/token", "client_id": "sim"}},
            "actions": {"me": {"path": "/me", "expect": [200]}},
        }
    )
    target = DeclarativeTarget(AsgiTransport(oauth_app(state)), api, now=lambda: state.now)
    login = await target.send(req("log_in", payload={"username": "ann", "password": "pw 1&"}))
    assert (login.ok, login.token) == (True, "at1"), login
    assert state.grants == [
        {"grant_type": "password", "username": "ann", "password": "pw 1&", "client_id": "sim"}
    ]
    assert state.content_types == ["application/x-www-form-urlencoded"]
    assert (await target.send(req("me"))).ok

    state.now += 61  # past expires_in: renewed with the refresh token before the action
    outcome = await target.send(req("me"))
    assert (outcome.ok, outcome.retries) == (True, 0)
    assert state.grants[-1] == {
        "grant_type": "refresh_token", "refresh_token": "rt1", "client_id": "sim"
    }  # fmt: skip
    assert target.token_valid(1)

    state.access.clear()  # revoked: the 401 refreshes (with the rotated token) and retries
    outcome = await target.send(req("me"))
    assert (outcome.ok, outcome.retries) == (True, 1)
    assert state.grants[-1]["refresh_token"] == "rt2"

    saved = json.loads(json.dumps(target.export_memory(1)))
    assert (saved["refresh_token"], saved["token_ttl_s"]) == ("rt3", 60.0)
    resumed = DeclarativeTarget(AsgiTransport(oauth_app(state)), api, now=lambda: state.now)
    resumed.restore_memory(1, saved, password="pw 1&")
    state.now += 61
    assert not resumed.token_valid(1)
    assert (await resumed.send(req("me"))).ok  # renewed with the saved refresh token
    assert state.grants[-1] == {
        "grant_type": "refresh_token", "refresh_token": "rt3", "client_id": "sim"
    }  # fmt: skip

    state.access.clear()
    state.refresh.clear()  # the refresh token is refused too: log in with the password
    outcome = await resumed.send(req("me"))
    assert outcome.ok
    assert [g["grant_type"] for g in state.grants[-2:]] == ["refresh_token", "password"]
    assert state.grants[-1]["password"] == "pw 1&"


def test_where_conditions_compare_as_sent_text_and_survive_a_dump() -> None:
    api = ApiSpec.model_validate(
        {
            "memory": {"seen": 9, "mine": 9},
            "actions": {
                "a": {
                    "path": "/x/{p.id}",
                    "pick": {"p": "memory.seen"},
                    "where": {
                        "p": {
                            "owner": {"eq": "{user.id}"},
                            "flag": False,
                            "tag": {"in": ["t-{user.username}", None], "ne": None},
                            "id": {"not_in": "memory.mine.ref.id"},
                        }
                    },
                }
            },
        }
    )
    assert ApiSpec.model_validate(api.model_dump(mode="json")) == api  # eq/ne null kept apart
    conditions = api.actions["a"].where["p"]
    passes = matcher(conditions, {"id": 7, "username": "ann"}, lambda key, path: {"3"})
    ok = {"id": 1, "owner": "7", "flag": "false", "tag": "t-ann"}
    assert passes(ok)
    assert passes({**ok, "owner": 7, "flag": False})  # 7 is "7", false is "false"
    assert not passes({**ok, "owner": 8})
    assert not passes({**ok, "id": 3})  # held in memory.mine (as ref.id)
    assert not passes({**ok, "tag": None})  # ne: null (in lists null, but ne wins)
    assert not passes({k: v for k, v in ok.items() if k != "flag"})  # missing is null


class CreatedLog:
    """Keeps what the target records as created (``state.db``'s table, in memory)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def save_created(self, user_id: int, kind: str, item_id: str, data: dict[str, Any]) -> None:
        self.rows[(kind, item_id)] = data

    def remove_created(self, kind: str, item_id: str) -> None:
        self.rows.pop((kind, item_id), None)


async def test_copied_fields_go_into_delete_handles_and_an_expected_404_creates_nothing() -> None:
    state = Conduit()
    state.add_article("bob")
    target = await conduit(state)
    log = CreatedLog()
    target.created_log = log
    await target.send(req("browse"))
    assert (await target.send(req("comment"))).ok
    [(kind, _)] = log.rows
    [row] = log.rows.values()
    comment_id = next(iter(state.comments))
    assert kind == "own_comments" and row["why"] is None
    assert row["delete"] == {
        "action": "uncomment",
        "picks": {"c": {"id": comment_id, "slug": "a-1"}},  # the slug copied from the pick
    }
    del state.articles["a-1"]  # the only article the user has seen
    outcome = await target.send(req("comment"))  # on the deleted article: 404, expected
    assert (outcome.status, outcome.ok) == (404, True)
    assert len(log.rows) == 1  # nothing created, nothing recorded
    deleted = await target.delete_created(req("uncomment"), row["delete"])
    assert (deleted.status, deleted.ok) == (204, True)
    assert state.comments == {} and log.rows == {}
