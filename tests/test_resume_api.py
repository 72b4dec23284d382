"""A resumed ``api`` run keeps its users' memories: no log-in for a user with a valid token.

The issue: a resumed ``api`` run forgot every memory and logged everyone in
again. Now the target's memory of each user (token, ids, picks) is saved with
the user in ``state.db`` and given back on resume. The API here is the demo
app described as an ``api`` section (the built-in description), in process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from helpers import checkpoint_s, interrupt_when, sim_engine
from sim_engine.model.builtin import social_api_data
from sim_engine.model.scenario import default_scenario


def _actions(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "actions.jsonl").read_text().splitlines()]


def _ready(out: Path) -> bool:
    """A checkpoint is in ``state.db`` and at least 10 users logged in (a line may be
    half-written while the run goes on: only whole lines count)."""
    if checkpoint_s(out / "state.db") is None or not (out / "actions.jsonl").exists():
        return False
    users = set()
    for line in (out / "actions.jsonl").read_text().splitlines():
        if '"log_in"' in line and line.endswith("}"):
            record = json.loads(line)
            if record["action"] == "log_in" and record["ok"]:
                users.add(record["user_id"])
    return len(users) >= 10


def test_resumed_api_run_sends_no_log_in_for_users_with_a_valid_token(tmp_path: Path) -> None:
    data = default_scenario().model_dump(mode="json")
    data["name"] = "api-resume"
    data["api"] = social_api_data()
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    args = ["--scenario", str(scenario), "--target", "inprocess", "--speed", "max"]
    args += ["--duration", "6d", "--users", "30", "--seed", "4", "-q", "--out", str(out)]
    # stopped once a checkpoint is taken and 10 users have logged in (a fixed 0.5 s after
    # the first checkpoint saw only 6 on a loaded machine)
    code, stderr = interrupt_when(args, lambda: _ready(out), 60, settle_s=0.2)
    assert code == 0, stderr
    stopped_at = checkpoint_s(out / "state.db")
    assert stopped_at is not None
    before = _actions(out)
    logged_in = {a["user_id"] for a in before if a["action"] == "log_in" and a["ok"]}
    assert len(logged_in) >= 10

    resumed = sim_engine("run", "--resume", str(out), "-q", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    after = _actions(out)[len(before) :]
    acted = {a["user_id"] for a in after if a["action"] not in ("sign_up", "log_in")}
    assert len(acted & logged_in) >= 5  # the same users went on acting after the resume
    relogged = {
        a["user_id"] for a in after if a["action"] == "log_in" and a["user_id"] in logged_in
    }
    # A user logs in again only when the API refused its token (401) after the resume.
    refused = {a["user_id"] for a in after if a["status"] == 401}
    assert relogged <= refused, sorted(relogged - refused)[:10]
