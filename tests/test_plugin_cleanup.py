"""What plugins create through ``ctx.call`` is cleaned up too (issue 12, must-have 1).

The forum (``forum_app``: FastAPI on 127.0.0.1, ``X-Session-Key`` sessions, answers
wrapped in ``{"thread": {...}}``, replies that are children of threads, members who
cannot leave while they own anything) is driven by the scenario of
``test_cleanup_any_api`` plus a plugin whose actions start threads, reply to them and
delete them with ``ctx.call`` only. The declarative target records what such a request
creates as the ``api`` action it matches would (``start_thread``, ``reply``: same
method, a path their template fills), and forgets what it deletes (``delete_thread``).
Before, nothing a plugin created was recorded: each member who had started a thread
through the plugin could not be deleted (409) and cleanup left the forum changed.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

import helpers
from forum_app import Forum, serve
from helpers import BUSY_START
from sim_engine.engine.store import SqliteStore
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.records import ActionRequest
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.plugin import PluginTarget, load_plugins
from test_cleanup_any_api import scenario
from test_declarative import Call, FakeTransport

sim_engine = functools.partial(helpers.sim_engine, timeout=120)

PLUGIN = """
import json
from sim_engine import plugins


@plugins.action("quick_thread", endpoint="POST /api/threads")
async def quick_thread(ctx):
    resp = await ctx.call("POST", "/api/threads", json={"subject": "quick"})
    if resp.status == 201:
        ctx.state.setdefault("threads", []).append(json.loads(resp.body)["thread"]["tid"])
    return {"status": resp.status, "ok": resp.status == 201}


@plugins.action("quick_reply", endpoint="POST /api/threads/{tid}/replies",
                possible=lambda view: bool(view.state.get("threads")), fallback="browse")
async def quick_reply(ctx):
    tid = ctx.rng.choice(ctx.state["threads"])
    resp = await ctx.call("POST", f"/api/threads/{tid}/replies", json={"text": "hi"})
    return {"status": resp.status, "ok": resp.status == 201}


@plugins.action("drop_quick", endpoint="DELETE /api/threads/{tid}",
                possible=lambda view: bool(view.state.get("threads")), fallback="browse")
async def drop_quick(ctx):
    tid = ctx.state["threads"].pop()
    resp = await ctx.call("DELETE", f"/api/threads/{tid}")
    if resp.status == 409:  # it has replies: keep it
        ctx.state["threads"].insert(0, tid)
    return {"status": resp.status, "ok": resp.status in (204, 409)}
"""

PLUGIN_WEIGHTS = {"quick_thread": 2, "quick_reply": 2, "drop_quick": 1}


def plugin_scenario(tmp_path: Path) -> Path:
    """The forum scenario with the plugin (``forum_plugin.py`` beside it) among its actions."""
    path = scenario(tmp_path)
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["plugins"] = ["forum_plugin"]
    for persona in data["personas"].values():
        for weights in persona["actions"].values():
            weights.update(PLUGIN_WEIGHTS)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "forum_plugin.py").write_text(PLUGIN, encoding="utf-8")
    return path


def test_cleanup_deletes_what_plugin_calls_created(tmp_path: Path) -> None:
    forum = Forum()
    forum.add_member("real.person", "pw-1")
    original = forum.snapshot()
    path = plugin_scenario(tmp_path)
    with serve(forum) as url:
        out = tmp_path / "run"
        proc = sim_engine(
            *("run", "--scenario", str(path), "--target", url, "--speed", "max"),
            *("--duration", "2d", "--start", BUSY_START, "--out", str(out), "-q"),
            cwd=tmp_path,  # python -m puts the working directory on sys.path: the plugin
        )
        assert proc.returncode == 0, proc.stderr
        done = Counter(
            (r["action"], r["status"])
            for r in helpers.read_jsonl(out / "actions.jsonl")
            if r["action"] in PLUGIN_WEIGHTS
        )
        # the plugin created threads and replies and deleted some of its threads itself
        assert done["quick_thread", 201] > 5 and done["quick_reply", 201] > 5, done
        assert done["drop_quick", 204] > 0, done
        rows = SqliteStore(out / "state.db", create=False)
        try:
            actions = Counter(data["action"] for *_, data in rows.created())
        finally:
            rows.close()
        assert actions["start_thread"] >= done["quick_thread", 201] - done["drop_quick", 204]
        assert actions["reply"] >= done["quick_reply", 201]

        cleaned = sim_engine("cleanup", str(out), cwd=tmp_path)
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        # what the plugin deleted itself was forgotten: no delete answered 404
        assert "already gone" not in cleaned.stdout and "stays" not in cleaned.stdout
        assert forum.snapshot() == original


def notes(call: Call) -> tuple[int, Any]:
    """Answers of a small API: ``POST /notes`` and ``POST /tags`` create (201)."""
    if call.method == "POST":
        return 201, {"id": 31}
    return 204, None


async def test_a_plugin_s_creation_no_action_matches_is_recorded_as_staying(
    tmp_path: Path,
) -> None:
    source = (
        "from sim_engine import plugins\n\n"
        '@plugins.action("tag")\n'
        "async def tag(ctx):\n"
        '    await ctx.call("post", "/notes", json={"text": "n"})\n'
        '    resp = await ctx.call("POST", "/tags?x=1", json={"name": "t"})\n'
        '    return {"status": resp.status}\n'
    )
    api = ApiSpec.model_validate(
        {
            "memory": {"own_notes": 5},
            "actions": {
                "write": {
                    "method": "POST",
                    "path": "/notes",
                    "extract": [{"path": "", "to": "memory.own_notes"}],
                },
                "erase": {
                    "method": "DELETE",
                    "path": "/notes/{note.id}",
                    "pick": {"note": "memory.own_notes"},
                    "forget": "note",
                },
            },
        }
    )
    with helpers.importable_module(tmp_path, "tagger", source) as name:
        registry = load_plugins([name])
    store = SqliteStore(tmp_path / "state.db", create=True)
    transport = FakeTransport(notes)
    inner = DeclarativeTarget(transport, api)
    inner.created_log = store
    target = PluginTarget(inner, transport, registry)
    request = ActionRequest("tag", 4, 100.0, "2026-03-02T10:00:00+00:00")
    assert (await target.send(request)).ok
    note, tag = [row[1:] for row in store.created()]
    # a request matching the action ``write`` is recorded as ``write`` would record it
    handle = {"action": "erase", "picks": {"note": {"id": 31}}}
    assert note[:3] == (4, "own_notes", "31") and note[3]["delete"] == handle
    user, kind, item, data = tag  # no action is POST /tags: nothing says how to delete it
    assert (user, kind, item, data["delete"]) == (4, "tags", "31", None)
    assert data["why"] == "no action of the api section is POST /tags"
    store.close()
