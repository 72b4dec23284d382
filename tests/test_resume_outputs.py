"""Every output file is complete after a resume, with no duplicates (issue: crash safety).

Before: a sign-up was saved in ``state.db`` at once but its ``users.jsonl`` line sat
in a buffer, ``daily_metrics.json``'s ``new_signups`` came out short after a resume
(the day in progress restarted from zero), and resuming a finished run appended its
last day again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from helpers import interrupt_after_checkpoint, sim_engine
from sim_engine.engine.simulation import Simulation
from sim_engine.model.population import IdentityFactory
from sim_engine.model.records import ActionRecord
from sim_engine.runs.runstate import StateKeeper, complete_users

START = "2024-05-15T00:00:00Z"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _consistent(out: Path) -> None:
    """Each sign-up once in users.jsonl and in the days' new_signups; each day once."""
    users = _lines(out / "users.jsonl")
    ids = [u["user_id"] for u in users]
    assert len(ids) == len(set(ids)), "a user twice in users.jsonl"
    signups = [a for a in _lines(out / "actions.jsonl") if a["action"] == "sign_up" and a["ok"]]
    assert len(signups) == len(users)
    days = json.loads((out / "daily_metrics.json").read_text())
    starts = [d["start"] for d in days]
    assert len(starts) == len(set(starts)), "a day twice in daily_metrics.json"
    assert sum(d["new_signups"] for d in days) == len(signups)
    assert sum(d["actions"] for d in days) == len(
        [a for a in _lines(out / "actions.jsonl") if a["action"] != "delete_account"]
    )


def test_an_interrupted_and_resumed_run_counts_every_sign_up_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--target", "inprocess", "--speed", "max", "--duration", "4d", "--users", "40"]
    args += ["--seed", "5", "--start", START, "-q", "--out", str(out)]
    code, stderr = interrupt_after_checkpoint(args, out, settle_s=0.4)
    assert code == 0, stderr
    resumed = sim_engine("run", "--resume", str(out), "-q", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    _consistent(out)
    days = json.loads((out / "daily_metrics.json").read_text())
    assert len(days) == 4


def test_resuming_a_finished_run_adds_no_day(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--target", "inprocess", "--speed", "max", "--duration", "30h", "--users", "20"]
    done = sim_engine("run", *args, "--seed", "2", "--start", START, "-q", "--out", str(out))
    assert done.returncode == 0, done.stderr
    before = (out / "daily_metrics.json").read_text()
    assert len(json.loads(before)) == 2  # a whole day and six hours
    again = sim_engine("run", "--resume", str(out), "-q", timeout=60)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "daily_metrics.json").read_text()) == json.loads(before)
    _consistent(out)


def test_a_joined_user_missing_from_users_jsonl_is_written_on_resume(tmp_path: Path) -> None:
    factory = IdentityFactory(5, [1.0], [("UTC", 1.0)], "x.test")
    users = [factory.create(1_715_731_200.0 + i) for i in range(3)]
    users[0].joined, users[0].remote_id = True, 10
    users[1].joined, users[1].remote_id = True, 11
    listed = {"user_id": users[0].user_id, "name": users[0].name}
    (tmp_path / "users.jsonl").write_text(json.dumps(listed) + "\n")
    assert complete_users(tmp_path, users, ["lurker"]) == 1
    lines = _lines(tmp_path / "users.jsonl")
    assert [u["user_id"] for u in lines] == [users[0].user_id, users[1].user_id]
    assert lines[1]["remote_id"] == 11 and lines[1]["persona"] == "lurker"
    assert complete_users(tmp_path, users, ["lurker"]) == 0  # never twice


class _FakeSim:
    """What the state keeper asks of a simulation: checkpoint() and statistics().sim_now."""

    def __init__(self) -> None:
        self.sim_now = 0.0
        self.checkpoints = 0

    def checkpoint(self) -> int:
        self.checkpoints += 1
        return 0

    def statistics(self) -> Any:
        return type("Stats", (), {"sim_now": self.sim_now})()


def _action(sim_ts: float) -> ActionRecord:
    return ActionRecord("t", sim_ts, 1, "lurker", "relaxing", "browse_feed", 200, True, 1.0)


async def test_checkpoints_follow_simulated_progress_and_actions_not_only_wall_time() -> None:
    """At --speed max a day may pass between two wall-clock checkpoints; a resume would
    send it again. The keeper also checkpoints every N simulated seconds or actions."""
    sim = _FakeSim()
    keeper = StateKeeper(1e9, [], lambda: None, every_sim_s=3600.0, every_actions=1000)
    await keeper.start(cast(Simulation, sim))  # only checkpoint() and statistics() are used
    assert sim.checkpoints == 1
    for minute in range(1, 24 * 60 + 1):  # a simulated day, an action a minute
        sim.sim_now = minute * 60.0
        keeper.emit(_action(sim.sim_now))
    assert 24 <= sim.checkpoints - 1 <= 25  # one per simulated hour
    before = sim.checkpoints
    for _ in range(2500):  # many actions within one simulated second
        keeper.emit(_action(sim.sim_now))
    assert sim.checkpoints - before == 2  # one per 1000 actions
    await keeper.stop()
