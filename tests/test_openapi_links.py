"""How the OpenAPI import links operations (issue #12, "Why" 3): path parameters filled from
the memory field of the same name and kind, parents taken from the picked child, clean
names, and the deleting action of each created resource.

Documents: ``tests/openapi_docs.py`` (Conduit-style) and small ones built here.
"""

from __future__ import annotations

from typing import Any

import pytest

from openapi_docs import conduit, kinto
from sim_engine.api.openapi import build_scenario, scenario_from_openapi
from sim_engine.api.openapi.swagger import find_converter
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.scenario import validate_scenario
from sim_engine.targets.declarative._created import CreationPlan

_INT = {"type": "integer"}


@pytest.fixture(scope="module")
def converter() -> str:
    """swagger2openapi, as ``scripts/test-deps.sh`` installs it (the test installs nothing)."""
    found = find_converter()
    if found is None:
        pytest.fail("swagger2openapi is not installed: run `bash scripts/test-deps.sh`")
    return found


_STR = {"type": "string"}


def _doc(paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}


def _ok(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def _param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STR}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _actions(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    actions: dict[str, dict[str, Any]] = scenario["api"]["actions"]
    return actions


def _deleters(api: ApiSpec) -> dict[str, str]:
    """memory key -> the action cleanup deletes its items with (the target's CreationPlan)."""
    keys = sorted(f"memory.{name}" for name in api.memory)
    plan = CreationPlan(api, keys.index)
    return {key: name for name, key in plan.deleters.values()}


def _weights(scenario: dict[str, Any]) -> dict[str, float]:
    weights: dict[str, float] = scenario["personas"]["writer"]["actions"]["working"]
    return weights


# -- parameters filled by name and kind ---------------------------------------------------------


def test_slug_and_username_parameters_take_the_fields_of_that_name() -> None:
    """Issue #12, Why 3: slug and username path parameters were filled with numeric ids
    (``/articles/{article.id}``), and articles, whose answers have no id, were never
    remembered at all."""
    scenario = scenario_from_openapi(conduit())
    validate_scenario(scenario)
    actions = _actions(scenario)
    assert actions["get_article"]["path"] == "/api/articles/{article.slug}"
    assert actions["get_articles"]["extract"] == [
        {"path": "articles[*]", "to": "memory.seen_articles", "fields": {"slug": "slug"}},
        {
            "path": "articles[*]",
            "to": "memory.seen_profiles",
            "fields": {"username": "author.username"},
        },
    ]
    assert actions["create_article"]["extract"] == [
        {"path": "article", "to": "memory.own_articles", "fields": {"slug": "slug"}}
    ]
    assert actions["get_profile_by_username"]["path"] == "/api/profiles/{profile.username}"
    assert actions["follow_user_by_username"]["pick"] == {"profile": "memory.seen_profiles"}
    weights = _weights(scenario)
    for name in ("get_article", "update_article", "delete_article", "get_profile_by_username"):
        assert weights[name] > 0, name
    paths = " ".join(a["path"] for a in actions.values())
    assert ".id}" not in paths.replace("{comment.id}", "")


def test_a_slug_no_answer_returns_is_never_filled_with_an_id() -> None:
    doc = _doc(
        {
            "/pages": {"get": {"responses": _ok(_list(_obj(id=_INT, title=_STR)))}},
            "/pages/{slug}": {"get": {"parameters": [_param("slug")], "responses": _ok(_obj())}},
        }
    )
    result = build_scenario(doc)
    action = _actions(result.scenario)["get_pages_slug"]
    assert action["path"] == "/pages/{page.slug}"
    assert _weights(result.scenario)["get_pages_slug"] == 0
    assert any(
        "nothing this API returns gives the slug of pages" in n
        for n in result.notes["get_pages_slug"]
    )
    validate_scenario(result.scenario)


def test_an_id_parameter_named_after_its_resource_takes_the_id() -> None:
    doc = _doc(
        {
            "/teams": {"get": {"responses": _ok(_obj(data=_list(_obj(uuid=_STR, name=_STR))))}},
            "/teams/{teamId}": {
                "get": {"parameters": [_param("teamId")], "responses": _ok(_obj())}
            },
        }
    )
    actions = _actions(scenario_from_openapi(doc))
    assert actions["get_teams_team_id"]["path"] == "/teams/{team.id}"
    assert actions["get_teams"]["extract"][0]["fields"] == {"id": "uuid"}


# -- parent and child from the same item --------------------------------------------------------


def _threads() -> dict[str, Any]:
    reply = _obj(id=_INT, thread_id=_INT, body=_STR)
    thread = [_param("thread_id", _INT)]
    return _doc(
        {
            "/threads": {"get": {"responses": _ok(_list(_obj(id=_INT, title=_STR)))}},
            "/threads/{thread_id}/replies": {
                "get": {"parameters": thread, "responses": _ok(_list(reply))},
                "post": {
                    "parameters": thread,
                    "requestBody": _body(_obj(body=_STR)),
                    "responses": _ok(reply, "201"),
                },
            },
            "/threads/{thread_id}/replies/{reply_id}": {
                "get": {"parameters": [*thread, _param("reply_id", _INT)], "responses": _ok(reply)},
                "delete": {
                    "parameters": [*thread, _param("reply_id", _INT)],
                    "responses": {"204": {"description": "gone"}},
                },
            },
        }
    )


def test_parent_and_child_ids_come_from_the_same_picked_item() -> None:
    """Issue #12, Why 3: parent and child ids were picked from separate memories (a reply
    of one thread addressed under another)."""
    scenario = scenario_from_openapi(_threads())
    validate_scenario(scenario)
    actions = _actions(scenario)
    read = actions["get_threads_thread_id_replies_reply_id"]
    assert read["path"] == "/threads/{reply.thread_id}/replies/{reply.id}"
    assert read["pick"] == {"reply": "memory.seen_replies"}
    delete = actions["delete_threads_thread_id_replies_reply_id"]
    assert delete["path"] == "/threads/{reply.thread_id}/replies/{reply.id}"
    assert (delete["pick"], delete["forget"]) == ({"reply": "memory.own_replies"}, "reply")
    for producer in ("get_threads_thread_id_replies", "post_threads_thread_id_replies"):
        fields = actions[producer]["extract"][0]["fields"]
        assert fields == {"id": "id", "thread_id": "thread_id"}, producer


def test_children_copy_the_parent_key_their_path_used() -> None:
    """Conduit's comments do not hold their article's slug: the producers copy it from the
    article they picked (``copy``), and deleting a comment picks the comment alone."""
    scenario = scenario_from_openapi(conduit())
    validate_scenario(scenario)
    actions = _actions(scenario)
    for producer in ("get_article_comments", "create_article_comment"):
        assert actions[producer]["extract"][0]["copy"] == {"article_slug": "article.slug"}
    delete = actions["delete_article_comment"]
    assert delete["path"] == "/api/articles/{comment.article_slug}/comments/{comment.id}"
    assert (delete["pick"], delete["forget"]) == ({"comment": "memory.own_comments"}, "comment")


def test_grandchildren_carry_every_ancestor(converter: str) -> None:
    scenario = scenario_from_openapi(kinto())
    validate_scenario(scenario)
    actions = _actions(scenario)
    assert actions["get_records"]["path"] == (
        "/v1/buckets/{collection.bucket_id}/collections/{collection.id}/records"
    )
    assert actions["get_records"]["pick"] == {"collection": "memory.seen_collections"}
    assert actions["get_records"]["extract"][0]["copy"] == {
        "bucket_id": "collection.bucket_id",
        "collection_id": "collection.id",
    }
    assert actions["delete_record"]["path"] == (
        "/v1/buckets/{record.bucket_id}/collections/{record.collection_id}/records/{record.id}"
    )
    assert actions["delete_record"]["pick"] == {"record": "memory.own_records"}


def test_children_some_answer_lists_without_their_parent_are_picked_apart() -> None:
    doc = conduit()
    comments = doc["paths"]["/articles/{slug}/comments"]["get"]["responses"]
    doc["paths"]["/comments"] = {"get": {"operationId": "ListAllComments", "responses": comments}}
    doc["paths"]["/articles/{slug}/comments/{id}"]["get"] = {
        "operationId": "GetArticleComment",
        "parameters": doc["paths"]["/articles/{slug}/comments/{id}"]["delete"]["parameters"],
        "responses": comments,
    }
    result = build_scenario(doc)
    read = _actions(result.scenario)["get_article_comment"]
    assert read["pick"] == {"comment": "memory.seen_comments", "article": "memory.seen_articles"}
    assert any("picked apart from the comment" in n for n in result.notes["get_article_comment"])


# -- names ---------------------------------------------------------------------------------------


def test_names_say_a_repeated_word_once() -> None:
    """Issue #12, Why 3: doubled plurals in action names."""
    ok = _ok(_list(_obj(id=_INT)))
    doc = _doc(
        {
            "/records": {"get": {"operationId": "list_records_records", "responses": ok}},
            "/posts": {"get": {"operationId": "getPostPosts", "responses": ok}},
            "/stories/stories": {"get": {"responses": ok}},
            "/widgets/{widget_id}": {"get": {"parameters": [_param("widget_id")], "responses": ok}},
        }
    )
    assert list(_actions(scenario_from_openapi(doc))) == [
        "list_records", "get_posts", "get_stories", "get_widgets_widget_id",
    ]  # fmt: skip


# -- deleting what was created --------------------------------------------------------------------


def test_each_created_resource_has_its_deleting_action() -> None:
    """The DELETE of each created resource picks from what the user created and forgets it:
    the handle cleanup (runs/cleanup.py) deletes what a run created with."""
    api = validate_scenario(scenario_from_openapi(conduit())).api
    assert api is not None
    assert _deleters(api) == {
        "memory.own_articles": "delete_article",
        "memory.own_comments": "delete_article_comment",
    }
    threads = validate_scenario(scenario_from_openapi(_threads())).api
    assert threads is not None
    assert _deleters(threads) == {"memory.own_replies": "delete_threads_thread_id_replies_reply_id"}


def test_a_delete_never_takes_what_others_created() -> None:
    """A DELETE of an item nothing creates keeps to own_R (weight 0) instead of falling back
    to what the user has seen: cleanup would delete other people's items through it."""
    doc = _doc(
        {
            "/notes": {"get": {"responses": _ok(_list(_obj(id=_INT)))}},
            "/notes/{note_id}": {
                "delete": {
                    "parameters": [_param("note_id", _INT)],
                    "responses": {"204": {"description": "gone"}},
                },
                "put": {
                    "parameters": [_param("note_id", _INT)],
                    "requestBody": _body(_obj(text=_STR)),
                    "responses": _ok(_obj(id=_INT)),
                },
            },
        }
    )
    result = build_scenario(doc)
    actions = _actions(result.scenario)
    assert actions["delete_notes_note_id"]["pick"] == {"note": "memory.own_notes"}
    assert _weights(result.scenario)["delete_notes_note_id"] == 0
    assert actions["put_notes_note_id"]["pick"] == {"note": "memory.seen_notes"}  # edits may
    api = validate_scenario(result.scenario).api
    assert api is not None and _deleters(api) == {"memory.own_notes": "delete_notes_note_id"}


def test_a_parameter_named_after_its_resource_takes_the_id() -> None:
    """``/api/sessions/{session}`` (Jupyter Server) addresses a session by its id."""
    doc = _doc(
        {
            "/sessions": {"get": {"responses": _ok(_list(_obj(id=_STR, path=_STR)))}},
            "/sessions/{session}": {
                "get": {"parameters": [_param("session")], "responses": _ok(_obj(id=_STR))}
            },
        }
    )
    scenario = scenario_from_openapi(doc)
    assert _actions(scenario)["get_sessions_session"]["path"] == "/sessions/{session.id}"
    assert _weights(scenario)["get_sessions_session"] > 0


def test_an_id_is_assumed_only_for_objects_that_say_they_are_open() -> None:
    """Kinto's objects say ``additionalProperties: {}`` and declare no id: ``id`` is
    assumed. Jupyter's terminals declare ``name`` only and say nothing: no id is made up
    (an extraction of a missing field would fail every listing)."""
    open_item = {"type": "object", "additionalProperties": {}, "properties": {"title": _STR}}
    closed_item = _obj(name=_STR, last_activity=_STR)
    for item, assumed in ((open_item, True), (closed_item, False)):
        doc = _doc(
            {
                "/terms": {"get": {"responses": _ok(_list(item))}},
                "/terms/{term_id}": {
                    "get": {"parameters": [_param("term_id")], "responses": _ok(item)}
                },
            }
        )
        actions = _actions(scenario_from_openapi(doc))
        assert ("extract" in actions["get_terms"]) is assumed


def test_actions_on_another_user_never_pick_oneself() -> None:
    """Following oneself is refused (the demo answers 400): writes on a picked user, or
    on a profile picked by username, filter oneself out with ``where``; reads do not."""
    from sim_engine.demo import create_app

    demo = _actions(scenario_from_openapi(create_app().openapi()))
    assert demo["follow_user"]["where"] == {"other_user": {"id": {"ne": "{user.id}"}}}
    assert "where" not in demo["get_user"]
    actions = _actions(scenario_from_openapi(conduit()))
    assert actions["follow_user_by_username"]["where"] == {
        "profile": {"username": {"ne": "{user.username}"}}
    }
    assert "where" not in actions["get_article"] and "where" not in actions["delete_article"]
