"""End-to-end: the real command against the real demo API over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from helpers import BUSY_START, busy_scenario_file, installed_command, read_jsonl, sim_engine
from sim_engine.demo.launcher import DemoServer

ACTIONS = {"browse_feed", "read_post", "create_post", "update_post", "delete_post"}
SOCIAL = {"browse_trending", "comment", "react", "follow_author", "check_followers", "follow_back"}
RECORD_FIELDS = {"sim_time", "user_id", "persona", "state", "action", "status", "latency_ms"}
METRICS_KEYS = {
    "users_over_time",
    "actions_per_hour",
    "top_posters",
    "top_viewed_posts",
    "latest_actions",
}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed command (see :func:`installed_command`) with ``args``, to its end."""
    return sim_engine(*args, timeout=timeout, command=installed_command())


def get_json(base_url: str, path: str) -> Any:
    with urllib.request.urlopen(base_url + path, timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def all_posts(base_url: str) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = get_json(base_url, f"/posts?limit=100&offset={offset}")
        posts.extend(page["items"])
        offset += 100
        if offset >= page["total"]:
            return posts


def port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) != 0


@pytest.fixture(scope="module")
def contract_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("contract") / "out"
    proc = run_cli(
        "run",
        *("--speed", "max", "--duration", "1d", "--users", "200", "--seed", "7"),
        *("--out", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return out, proc.stdout


def test_contract_run_writes_actions(contract_run: tuple[Path, str]) -> None:
    out, _ = contract_run
    actions = read_jsonl(out / "actions.jsonl")
    assert len(actions) > 1000
    for record in actions:
        assert set(record) >= RECORD_FIELDS, record
        sim_time = datetime.fromisoformat(record["sim_time"])
        assert sim_time.tzinfo is not None, record["sim_time"]
        assert sim_time.utcoffset() is not None
        assert sim_time.timestamp() == pytest.approx(record["sim_ts"], abs=0.001)
        assert isinstance(record["user_id"], int)
        if record["action"] != "delete_account":  # a churned user's cleanup
            assert record["state"] in ("working", "relaxing")
        assert isinstance(record["status"], int)
        assert record["latency_ms"] >= 0
    seen = {record["action"] for record in actions}
    # The default's users delete about 3 % of what they post (docs/realism-defaults.md): a
    # day of 200 of them posts ~60 times and deletes none. delete_post over real HTTP is
    # checked by test_run_against_an_external_demo_server (a busy scenario).
    assert seen >= (ACTIONS - {"delete_post"}) | {"browse_trending", "react"}, seen
    assert seen <= ACTIONS | SOCIAL | {"sign_up", "log_in", "delete_account"}
    assert {record["persona"] for record in actions} == {
        "lurker",
        "chatterbox",
        "night_owl",
        "content_curator",
    }
    # reads far exceed writes
    counts = Counter(record["action"] for record in actions)
    assert counts["browse_feed"] + counts["read_post"] > 3 * counts["create_post"]
    # real HTTP to a healthy server: nearly everything succeeds
    ok = sum(record["ok"] for record in actions)
    assert ok / len(actions) > 0.95


def test_contract_run_spans_one_simulated_day(contract_run: tuple[Path, str]) -> None:
    out, stdout = contract_run
    metrics = json.loads((out / "metrics.json").read_text())
    actions = read_jsonl(out / "actions.jsonl")
    start = datetime.fromisoformat(metrics["start"]).timestamp()
    times = [record["sim_ts"] for record in actions]
    assert start <= min(times)
    assert max(times) < start + 86400
    assert max(times) - min(times) > 12 * 3600
    assert metrics["run"]["simulated_seconds"] == pytest.approx(86400, abs=1)
    assert metrics["run"]["interrupted"] is False
    assert metrics["run"]["seed"] == 7
    assert metrics["run"]["speed"] == "max"
    assert "Done: 24.0 simulated hours" in stdout


def test_contract_run_writes_metrics(contract_run: tuple[Path, str]) -> None:
    out, _ = contract_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= METRICS_KEYS
    actions = read_jsonl(out / "actions.jsonl")
    users = read_jsonl(out / "users.jsonl")

    assert metrics["summary"]["actions"] == len(actions)
    assert metrics["summary"]["users"] == len(users)

    over_time = metrics["users_over_time"]
    assert len(over_time) >= 24
    counts = [point["users"] for point in over_time]
    assert counts == sorted(counts)  # the population never shrinks
    assert counts[-1] == len(users)
    for point in over_time:
        assert datetime.fromisoformat(point["sim_time"]).tzinfo is not None

    per_hour = metrics["actions_per_hour"]
    assert 20 <= len(per_hour) <= 25
    assert sum(hour["total"] for hour in per_hour) == len(actions)
    for hour in per_hour:
        assert sum(hour["counts"].values()) == hour["total"]

    top_posters = metrics["top_posters"]
    assert top_posters
    posts = [p["posts"] for p in top_posters]
    assert posts == sorted(posts, reverse=True)
    created = Counter(a["user_id"] for a in actions if a["action"] == "create_post" and a["ok"])
    assert top_posters[0]["posts"] == max(created.values())

    viewed = metrics["top_viewed_posts"]
    assert viewed
    reads = Counter(a["post_id"] for a in actions if a["action"] == "read_post" and a["ok"])
    assert viewed[0]["views"] == max(reads.values())

    latest = metrics["latest_actions"]
    assert 0 < len(latest) <= 50
    for record in latest:
        assert set(record) >= RECORD_FIELDS


def test_contract_run_writes_users_and_stops_the_server(contract_run: tuple[Path, str]) -> None:
    out, _ = contract_run
    users = read_jsonl(out / "users.jsonl")
    assert len(users) >= 100
    remote_ids = [u["remote_id"] for u in users]
    assert len(set(remote_ids)) == len(remote_ids)
    for user in users:
        assert user["email"].endswith("@sim-engine.test")
        assert datetime.fromisoformat(user["sim_time"]).tzinfo is not None
        assert "password" not in user and "token" not in user
    metrics = json.loads((out / "metrics.json").read_text())
    target = metrics["run"]["target"]
    assert target.startswith("http://127.0.0.1:")
    assert port_is_closed(target)  # the built-in demo server was stopped


def test_run_against_an_external_demo_server(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Busy (helpers.busy_overrides: users write, update and delete often) but with the
    # default's churn hazard, so churned users are deleted from the server too.
    hazard = {"first_day": 0.45, "decay": 1.0}
    scenario = busy_scenario_file(tmp_path / "busy.yaml", **{"lifecycle.churn_hazard": hazard})
    with DemoServer() as server:
        base_url = server.base_url
        before = get_json(base_url, "/stats")
        assert before["users"] == before["posts"] == 0
        proc = run_cli(
            "run",
            *("--target", server.base_url, "--speed", "max", "--duration", "12h"),
            *("--users", "100", "--seed", "11", "--start", BUSY_START),
            *("--scenario", str(scenario), "--out", str(out), "--quiet"),
        )
        assert proc.returncode == 0, proc.stderr
        assert server.running  # the CLI did not stop a server it did not start
        stats = get_json(server.base_url, "/stats")
        posts = all_posts(server.base_url)
        actions = read_jsonl(out / "actions.jsonl")
        gone_users = {a["user_id"] for a in actions if a["action"] == "delete_account" and a["ok"]}
        staying = [u for u in read_jsonl(out / "users.jsonl") if u["user_id"] not in gone_users]
        sample_users = [get_json(server.base_url, f"/users/{u['remote_id']}") for u in staying[:5]]

    users = read_jsonl(out / "users.jsonl")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["target"] == base_url

    # the server holds exactly what the run did
    remote_ids = {u["remote_id"] for u in users}
    signed_up = sum(a["action"] == "sign_up" and a["ok"] for a in actions)
    assert len(users) == signed_up
    # churned users may be deleted from the target, with everything they posted
    assert gone_users, "no churned user was deleted"
    assert stats["users"] == signed_up - len(gone_users)
    created = {a["post_id"]: a for a in actions if a["action"] == "create_post" and a["ok"]}
    deleted = {a["post_id"] for a in actions if a["action"] == "delete_post" and a["ok"]}
    assert created, "the run created no posts"
    assert deleted, "the run deleted no post"
    remaining = {
        post_id
        for post_id, record in created.items()
        if post_id not in deleted and record["user_id"] not in gone_users
    }
    assert stats["posts"] == len(posts) == len(remaining)
    assert {p["id"] for p in posts} == remaining

    # authors are the synthetic users the run created
    assert posts
    assert {p["author_id"] for p in posts} <= remote_ids
    for user in sample_users:
        assert user["is_synthetic"] is True
        assert user["id"] in remote_ids

    # X-Sim-Time was honoured: stored times are simulated, not wall-clock
    start = datetime.fromisoformat(BUSY_START.replace("Z", "+00:00")).timestamp()
    updates: dict[int, list[dict[str, Any]]] = {}
    for a in actions:
        if a["action"] == "update_post" and a["ok"]:
            updates.setdefault(a["post_id"], []).append(a)
    reads = Counter(a["post_id"] for a in actions if a["action"] == "read_post" and a["ok"])
    for post in posts:
        stored = datetime.fromisoformat(post["created_at"])
        assert stored.tzinfo is not None
        record = created[post["id"]]
        assert stored == datetime.fromisoformat(record["sim_time"])
        assert start <= stored.timestamp() < start + 12 * 3600
        updated = datetime.fromisoformat(post["updated_at"])
        if post["id"] in updates:
            last = max(updates[post["id"]], key=lambda a: a["sim_ts"])
            assert updated == datetime.fromisoformat(last["sim_time"])
        else:
            assert updated == stored
        assert post["view_count"] == reads[post["id"]]
    # the user records carry the simulated sign-up time the server stored
    for user in sample_users:
        record = next(u for u in users if u["remote_id"] == user["id"])
        assert datetime.fromisoformat(user["created_at"]) == datetime.fromisoformat(
            record["sim_time"]
        )
