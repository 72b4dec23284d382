"""Posts written through the browser enter the user's memory like API-created ones: a
real ``sim-engine run`` against the demo app on 127.0.0.1 whose users write posts only
through ``/compose`` (the compose flow's ``extract: {url: ..., into: answer.id}``), then
edit and delete them through the API, and ``sim-engine cleanup`` deletes what is left.
Without the answer the users' API memory holds no post: they could neither edit nor
delete one, and state.db would list nothing for cleanup."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from helpers import read_jsonl, sim_engine
from sim_engine import default_scenario
from sim_engine.demo import DemoServer
from sim_engine.model.browser_spec import demo_browser_data
from sim_engine.model.records import ActionRequest
from sim_engine.runs.targets import bind_target, with_browser
from sim_engine.targets.browser import BrowserTarget
from sim_engine.targets.http import AiohttpTransport

START = "2030-04-02T09:00:00Z"
MIX = {"browse_feed": 1, "read_post": 0, "create_post": 4, "update_post": 2, "delete_post": 1}
WRITER = {
    "share": 1.0,
    "sessions_per_day": 24,
    "session": {"mean_actions": 6, "max_actions": 12, "think_time": {"median_s": 30}},
    "actions": {"working": MIX, "relaxing": MIX},
}


@pytest.fixture
def server() -> Iterator[str]:
    with DemoServer() as srv:
        yield srv.base_url


def scenario_file(tmp_path: Path) -> Path:
    """Writers in the browser tier whose only flow is compose (edits go to the API)."""
    browser = {**demo_browser_data(), "share": 1.0, "actions": {"create_post": {"compose": 1}}}
    scenario = default_scenario().with_overrides(
        **{
            "population.initial": 2,
            "population.timezones": {"UTC": 1.0},
            "seed": 3,
            "personas": {"writer": WRITER},
            "lifecycle.enabled": False,
            "browser": browser,
        }
    )
    path = tmp_path / "writers.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json", by_alias=True)))
    return path


def created_rows(state_db: Path) -> list[tuple[str, dict[str, Any]]]:
    db = sqlite3.connect(state_db)
    try:
        rows = db.execute("SELECT kind, data FROM created").fetchall()
    finally:
        db.close()
    return [(kind, json.loads(data)) for kind, data in rows]


def test_posts_written_in_the_browser_are_edited_deleted_and_cleaned_up(
    server: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["--scenario", str(scenario_file(tmp_path)), "--target", server, "--out", str(out)]
    done = sim_engine(
        "run", *args, "--speed", "max", "--duration", "3h", "--start", START, "-q", timeout=300
    )
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out / "actions.jsonl")
    answers = [r for r in records if r.get("page", {}).get("step", "").startswith("extract url")]
    assert answers and all(r["ok"] for r in answers), answers
    written = {int(re.search(r"/p/(\d+)", r["page"]["url"]).group(1)) for r in answers}  # type: ignore[union-attr]
    assert len(written) >= 3
    # later API actions of the same users pick the posts their browsers wrote
    api = [r for r in records if "page" not in r and r["action"] in ("update_post", "delete_post")]
    assert api and all(r["ok"] for r in api), api
    assert {r["post_id"] for r in api} <= written
    deleted = {r["post_id"] for r in api if r["action"] == "delete_post"}
    assert deleted, "no post written in the browser was deleted through the API"
    # what is left is listed for cleanup, with how to delete it
    listed = {row["item"]["id"] for kind, row in created_rows(out / "state.db")}
    assert listed == written - deleted
    with httpx.Client(base_url=server) as client:
        assert all(client.get(f"/posts/{p}").status_code == 404 for p in deleted)
        assert all(client.get(f"/posts/{p}").status_code == 200 for p in listed)
        cleaned = sim_engine("cleanup", str(out))
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert all(client.get(f"/posts/{p}").status_code == 404 for p in written)
    assert created_rows(out / "state.db") == []


async def test_an_answer_the_api_description_cannot_keep_fails_the_flow(server: str) -> None:
    """An ``answer.*`` the action's extract rules cannot use fails the flow's last step
    with the reason, instead of keeping nothing silently."""
    flows = {"odd": [{"goto": "/"}, {"extract": {"url": "^(http)", "into": "answer.title"}}]}
    data = {**demo_browser_data(), "share": 1.0, "login": None, "session_cookie": None}
    data["flows"] = {**data["flows"], **flows}
    data["actions"] = {"create_post": {"odd": 1}}
    scenario = default_scenario().with_overrides(browser=data)
    target = with_browser(scenario, bind_target(scenario, AiohttpTransport(server)), server, None)
    assert isinstance(target, BrowserTarget)
    at = datetime(2030, 4, 2, tzinfo=timezone.utc)
    try:
        target.restore_memory(3, {"browser": {"identity": {"username": "odd"}}})
        outcome = await target.send(ActionRequest("create_post", 3, at.timestamp(), at.isoformat()))
    finally:
        await target.aclose()
    assert not outcome.ok
    last = outcome.pages[-1]
    assert last.step == "extract url=^(http)" and not last.ok
    assert "answer {'title': 'http'}" in (last.error or "") and "'id'" in (last.error or "")
