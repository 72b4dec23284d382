"""Created resources: recorded in ``state.db`` when the answer arrives, with a delete handle.

The declarative target decides what an answer created and how to delete it
(``_created``); the store keeps it at once (read here through a second
connection, as after a crash); ``api.cleanup`` is checked at validation.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sim_engine.engine.capabilities import CreationCleaner
from sim_engine.engine.store import SqliteStore
from sim_engine.model.api_spec import ApiSpec
from sim_engine.targets.browser import BrowserTarget
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.plugin import PluginTarget
from test_declarative import Call, FakeTransport, req

ACTIONS: dict[str, Any] = {
    "browse": {
        "path": "/posts",
        "extract": [{"path": "[*]", "to": "memory.seen_posts"}],
    },
    "create_post": {
        "method": "POST",
        "path": "/posts",
        "extract": [
            {"path": "", "to": "pool.new_posts"},
            {"path": "", "to": "memory.own_posts"},
            {"path": "author", "to": "memory.authors"},
        ],
    },
    "comment": {
        "method": "POST",
        "path": "/posts/{post.id}/comments",
        "pick": {"post": "memory.seen_posts"},
        "extract": [{"path": "", "to": "memory.own_comments"}],
    },
    "search": {  # a POST answering many items creates none of them
        "method": "POST",
        "path": "/search",
        "extract": [{"path": "[*]", "to": "memory.seen_posts"}],
    },
    "like": {  # creates (201) but keeps nothing of its answer
        "method": "POST",
        "path": "/posts/{post.id}/likes",
        "pick": {"post": "memory.seen_posts"},
    },
    "delete_post": {
        "method": "DELETE",
        "path": "/posts/{post.id}",
        "pick": {"post": "memory.own_posts"},
        "forget": "post",
    },
    "delete_comment": {  # needs the comment's post: the one the comment was written on
        "method": "DELETE",
        "path": "/posts/{post.id}/comments/{comment.id}",
        "pick": {"post": "memory.seen_posts", "comment": "memory.own_comments"},
        "forget": "comment",
    },
}


def api(**cleanup: Any) -> ApiSpec:
    return ApiSpec.model_validate(
        {
            "memory": {"seen_posts": 5, "own_posts": 1, "own_comments": 1, "authors": 5},
            "pools": {"new_posts": 5},
            "actions": ACTIONS,
            "cleanup": cleanup,
        }
    )


def forum(call: Call) -> tuple[int, Any]:
    if call.method == "GET":
        return 200, [{"id": 7}]
    if call.method == "DELETE":
        return 204, None
    if call.path == "/search":
        return 200, [{"id": 8}, {"id": 9}]
    if call.path == "/posts":
        return 201, {"id": 106, "author": {"id": 1}}
    if call.path.endswith("/likes"):
        return 201, {"id": 42, "liked": True}
    return 201, {"id": 500}


def rows(path: Path) -> list[tuple[int, str, str, str]]:
    """The created table read through another connection (what survives a kill now)."""
    db = sqlite3.connect(path)
    try:
        return list(db.execute("SELECT user_id, kind, item_id, data FROM created ORDER BY seq"))
    finally:
        db.close()


async def test_each_create_is_in_the_state_when_its_answer_arrives(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", create=True)
    transport = FakeTransport(forum)
    target = DeclarativeTarget(transport, api())
    target.created_log = store
    assert (await target.send(req("browse", 3))).ok
    assert (await target.send(req("search", 3))).ok
    assert rows(tmp_path / "state.db") == []  # reads and a POST answering a list create nothing

    assert (await target.send(req("create_post", 3))).ok
    [(user, kind, item, data)] = rows(tmp_path / "state.db")
    # one resource, of the deletable kind, although the answer went to three lists
    assert (user, kind, item) == (3, "own_posts", "106")
    assert '"delete":{"action":"delete_post","picks":{"post":{"id":106}}}' in data

    assert (await target.send(req("comment", 3))).ok
    comment = rows(tmp_path / "state.db")[1]
    assert comment[:3] == (3, "own_comments", "500")
    # the delete handle carries the post the comment was written on (picked at creation)
    on = int(transport.calls[-1].path.split("/")[2])
    assert f'"picks":{{"post":{{"id":{on}}},"comment":{{"id":500}}}}' in comment[3]

    assert (await target.send(req("delete_post", 3))).ok  # the run deleted it: not to clean
    assert [r[1] for r in rows(tmp_path / "state.db")] == ["own_comments"]

    assert (await target.send(req("like", 3))).ok  # created, but nothing says how to delete it
    like = rows(tmp_path / "state.db")[-1]
    assert like[:3] == (3, "like", "42")
    assert '"delete":null,"why":"like keeps nothing of its answer"' in like[3]
    store.close()


async def test_a_kind_without_a_deleting_action_is_recorded_with_the_reason() -> None:
    saved: list[tuple[int, str, str, dict[str, Any]]] = []

    class Log:
        def save_created(self, user_id: int, kind: str, item_id: str, data: Any) -> None:
            saved.append((user_id, kind, item_id, data))

        def remove_created(self, kind: str, item_id: str) -> None:
            raise AssertionError("nothing is deleted here")

    actions = {k: v for k, v in ACTIONS.items() if k not in ("delete_post", "delete_comment")}
    memory = {"seen_posts": 5, "own_posts": 1, "own_comments": 1, "authors": 5}
    spec = ApiSpec.model_validate({"memory": memory, "pools": {"new_posts": 5}, "actions": actions})
    target = DeclarativeTarget(FakeTransport(forum), spec)
    target.created_log = Log()
    assert (await target.send(req("create_post", 1))).ok
    [(_, kind, _, data)] = saved
    assert kind == "own_posts" and data["delete"] is None
    assert data["why"] == "no DELETE action forgets an item of memory.own_posts"


async def test_a_delete_handle_is_sent_with_exactly_its_picks() -> None:
    transport = FakeTransport(forum)
    target = DeclarativeTarget(transport, api())
    handle = {"action": "delete_comment", "picks": {"post": {"id": 7}, "comment": {"id": 500}}}
    outcome = await target.delete_created(req("delete_comment", 2), handle)
    assert outcome.ok, outcome
    assert [(c.method, c.path) for c in transport.calls] == [("DELETE", "/posts/7/comments/500")]
    wrong = {"action": "delete_comment", "picks": {"comment": {"id": 500}}}
    bad = await target.delete_created(req("delete_comment", 2), wrong)
    assert not bad.ok and "does not fit" in (bad.error or "")
    assert len(transport.calls) == 1


@pytest.mark.parametrize(
    ("cleanup", "message"),
    [
        ({"delete": {"memory.nope": "delete_post"}}, "cleanup.delete.memory.nope: unknown memory"),
        ({"delete": {"memory.own_posts": "nope"}}, "unknown action 'nope'"),
        ({"delete": {"memory.own_posts": "browse"}}, "must be a DELETE action with forget"),
        ({"with_account": ["memory.nope"]}, "cleanup.with_account.0: unknown memory"),
        ({"keep": []}, "Extra inputs are not permitted"),
    ],
)
def test_the_cleanup_section_is_checked_at_validation(
    cleanup: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        api(**cleanup)


def test_an_explicit_deleter_names_the_kind_it_deletes() -> None:
    plan = DeclarativeTarget(FakeTransport(forum), api()).creation_plan
    assert plan.kind("memory.authors") == "authors"
    assert plan.group("memory.authors") not in plan.deleters
    plan = DeclarativeTarget(
        FakeTransport(forum), api(delete={"memory.authors": "delete_post"})
    ).creation_plan
    assert plan.deleters[plan.group("memory.authors")] == ("delete_post", "memory.authors")


def test_a_run_restarted_before_its_first_checkpoint_orphans_what_it_recorded(
    tmp_path: Path,
) -> None:
    """Its users are gone from the state (they start again): what they created cannot be
    deleted as them any more, and cleanup says it stays instead of touching it."""
    from sim_engine.model.scenario import default_scenario
    from sim_engine.runs.cleanup import cleanup_run
    from sim_engine.runs.created import keep_created
    from sim_engine.runs.runstate import start_state

    out = tmp_path / "run"
    info = {"target": "http://127.0.0.1:9", "start_s": 0.0, "end_s": 60.0, "speed": "max"}
    store = start_state(out, default_scenario(), info)
    data = {"action": "create_post", "item": {"id": 5}, "delete": None, "why": None}
    store.save_created(1, "own_posts", "5", data)
    secret = keep_created(object(), store, None, fresh=True, restart=True)  # type: ignore[arg-type]
    assert store.get_meta("secret") == secret and len(secret) == 32
    assert [row[1] for row in store.created()] == [-1]
    store.close()
    report = cleanup_run(out, dry_run=True)
    assert not report.complete
    assert report.lines(dry_run=True)[-1] == (
        "stays on the target: 1 own_posts (its creator's state is gone)"
    )


async def test_a_users_creations_newest_first_deleted_without_touching_its_lists(
    tmp_path: Path,
) -> None:
    """What a churned user's clean-up deletes before its account (``CreationCleaner``):
    the user's resources with a delete handle, newest first, but those in doubt and the
    kinds that go with the account; each sent with exactly its handle's picks, the
    user's lists left as they were (a live run goes on), and unrecorded once deleted."""
    assert issubclass(PluginTarget, CreationCleaner) and issubclass(BrowserTarget, CreationCleaner)
    store = SqliteStore(tmp_path / "state.db", create=True)
    refuse = False

    def answer(call: Call) -> tuple[int, Any]:
        if call.method == "GET":
            return 200, [{"id": 7}, {"id": 8}]
        return (409, {"detail": "busy"}) if refuse and call.method == "DELETE" else forum(call)

    transport = FakeTransport(answer)
    target = DeclarativeTarget(transport, api())
    target.created_log = store
    assert isinstance(target, CreationCleaner)
    for action in ("browse", "create_post", "comment", "like"):
        assert (await target.send(req(action, 3))).ok
    on = int(transport.calls[-2].path.split("/")[2])  # the post the comment is on
    doubt = {"in_doubt": {"method": "PUT", "path": "/x"}, "delete": {"action": "delete_post"}}
    store.save_created(3, "in doubt: put", "k", doubt)
    store.save_created(4, "own_posts", "9", {"delete": {"action": "delete_post", "picks": {}}})

    found = target.creations(3)
    assert [(c.kind, c.item_id, c.action) for c in found] == [
        ("own_comments", "500", "delete_comment"),
        ("own_posts", "106", "delete_post"),
    ]  # the like has no handle: it stays, for cleanup to report
    assert found[0].handle["picks"] == {"post": {"id": on}, "comment": {"id": 500}}
    with_account = DeclarativeTarget(transport, api(with_account=["memory.own_posts"]))
    with_account.created_log = store
    assert [c.kind for c in with_account.creations(3)] == ["own_comments"]

    refuse = True
    refused = await target.delete_creation(req("delete_comment", 3), found[0])
    assert (refused.ok, refused.status) == (False, 409)
    assert [c.item_id for c in target.creations(3)] == ["500", "106"]  # still recorded
    refuse = False
    assert (await target.delete_creation(req("delete_comment", 3), found[0])).ok
    assert transport.calls[-1].method == "DELETE"
    assert transport.calls[-1].path == f"/posts/{on}/comments/500"
    assert [c.item_id for c in target.creations(3)] == ["106"]
    memory = target.memory(3)
    assert memory is not None and len(memory["memory.seen_posts"]) == 2  # not cleared
    assert memory["memory.own_comments"] == []  # forgotten: deleted
    store.close()
