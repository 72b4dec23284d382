"""Tests of the crash-safe state: ``DIR/state.db`` (SQLite, WAL), refusals, SIGKILL and resume.

The store is checked directly (round trips, WAL, corrupt and foreign files are
refused and left byte for byte as they were); the whole story is checked on the
real thing: ``python -m sim_engine run`` against the built-in demo server is
SIGKILLed (with its server: the whole process group) at random points several
times, resumed each time, and the engine's state is then compared with the
target's own database (``DIR/demo.db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    SIM_ENGINE,
    assert_one_line_error,
    busy_scenario_file,
    checkpoint_s,
    reap,
    sim_engine,
    sim_engine_popen,
)
from sim_engine import Simulation
from sim_engine.demo import create_app
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.store import FORMAT, SqliteStore
from sim_engine.model.lifecycle import (
    ActivityPattern,
    LifecycleState,
    LifecycleStatus,
    LifeEvent,
)
from sim_engine.model.population import IdentityFactory, user_to_dict
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.runstate import StateError, load_resume
from sim_engine.runs.targets import bind_target
from sim_engine.targets.inprocess import AsgiTransport

DAY_S = 86400.0
WEDNESDAY = datetime(2024, 5, 15, 6, tzinfo=timezone.utc).timestamp()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dir_digest(path: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(path.iterdir()) if p.is_file()}


def read_meta(db_path: Path, key: str) -> Any:
    db = sqlite3.connect(db_path)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return None if row is None else json.loads(row[0])


# -- the store ------------------------------------------------------------------------------


def _memory(*post_ids: int) -> dict[str, Any]:
    """A target memory as the declarative target exports it: these own posts."""
    items = [{"id": post_id} for post_id in post_ids]
    own = {"items": items, "picks": [0] * len(items)}
    return {"token": None, "memory": {"memory.own_posts": own}}


def _own(user: dict[str, Any]) -> set[int]:
    """The ids of the posts a saved user holds in its memory (``memory.own_posts``)."""
    memory = (user.get("memory") or {}).get("memory") or {}
    return {item["id"] for item in (memory.get("memory.own_posts") or {}).get("items", [])}


def _users(count: int) -> list[Any]:
    factory = IdentityFactory(5, [0.5, 0.5], [("UTC", 0.5), ("Asia/Tokyo", 0.5)], "x.test")
    return [factory.create(WEDNESDAY + i) for i in range(count)]


def test_store_round_trips_users_with_their_memory_and_lifecycle(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path, create=True)
    users = _users(4)
    a, b, c, d = users
    a.remote_id, a.session_id, a.memory = 17, 4, _memory(3, 9, 12)
    a.token = "secret-token-never-stored"
    a.life = LifecycleStatus(
        segment="Power",
        signup_day=739000,
        engagement=55.5,
        state=LifecycleState.DORMANT,
        pattern=ActivityPattern.BINGE,
        pattern_assigned=True,
        streak=0,
        inactive_days=9,
        event=LifeEvent.VACATION,
        event_until=739010,
        binge_left=2,
        cooldown_left=3,
        active_today=False,
    )
    a.day_end = WEDNESDAY + 3600
    b.remote_id, b.founder = 18, True
    b.life = LifecycleStatus(segment="Standard", signup_day=739001, engagement=1.0)
    c.life = LifecycleStatus(
        segment="Casual", signup_day=739002, engagement=3.0, state=LifecycleState.CHURNED
    )
    # d: never signed up, no lifecycle
    for user in users:
        store.save_user(user)
    state = {"sim_now": WEDNESDAY + 100.5, "secret": "s3cret", "nested": {"rng": [3, [1, 2], None]}}
    b.memory = _memory(44)
    store.checkpoint(state, [b])  # b changed since it was written through
    store.remove_user(d.user_id)
    store.close()

    reopened = SqliteStore(path, create=False)
    try:
        loaded_state, loaded = reopened.load()
        assert reopened.user_count() == 3
    finally:
        reopened.close()
    assert loaded_state == state
    assert [u.user_id for u in loaded] == [a.user_id, b.user_id, c.user_id]
    for before, after in zip((a, b, c), loaded, strict=True):
        assert user_to_dict(after) == user_to_dict(before)
        assert after.life == before.life
        assert after.tz == before.tz
        assert after.token is None  # tokens are re-obtained by logging in, never stored
    assert loaded[0].life is not None and loaded[0].life.state is LifecycleState.DORMANT
    assert loaded[0].life.event is LifeEvent.VACATION
    assert loaded[2].life is not None and loaded[2].life.state is LifecycleState.CHURNED
    assert _own(user_to_dict(loaded[0])) == {3, 9, 12}
    assert _own(user_to_dict(loaded[1])) == {44} and loaded[1].founder
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("state.db"))
    assert b"secret-token-never-stored" not in raw


def test_store_uses_wal_and_tags_its_format(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path, create=True).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        db.close()
    assert read_meta(path, "format") == FORMAT


def test_store_without_checkpoint_cannot_be_loaded(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path, create=True).close()
    store = SqliteStore(path, create=False)
    try:
        with pytest.raises(StateError, match="no checkpoint"):
            store.load()
    finally:
        store.close()


def test_simulation_state_survives_a_checkpoint_and_restore(tmp_path: Path) -> None:
    """A real (in-process) run's engine state and users come back exactly from state.db."""
    scenario = default_scenario().with_overrides(**{"population.initial": 25, "seed": 3})

    async def run() -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        store = SqliteStore(tmp_path / "state.db", create=True)
        app = create_app(str(tmp_path / "demo.db"))
        target = bind_target(scenario, AsgiTransport(app))
        sim = Simulation(
            scenario, target, FastForwardClock(WEDNESDAY), duration_s=2 * DAY_S, store=store
        )
        await sim.run()
        assert sim.checkpoint() == len(sim.users)  # lifecycle on: every user is saved
        await target.aclose()
        store.close()
        return sim.export_state(), {u.user_id: user_to_dict(u) for u in sim.users.values()}

    exported, users = asyncio.run(run())
    assert any(u["remote_id"] is not None for u in users.values())
    assert any(_own(u) for u in users.values())
    assert all(u["life"] is not None for u in users.values())

    store = SqliteStore(tmp_path / "state.db", create=False)
    try:
        state, loaded = store.load()
        assert state == json.loads(json.dumps(exported))
        assert {u.user_id: user_to_dict(u) for u in loaded} == users

        async def restore() -> dict[str, Any]:
            transport = AsgiTransport(create_app(str(tmp_path / "demo.db")))
            target = bind_target(scenario, transport)
            sim = Simulation(scenario, target, FastForwardClock(state["sim_now"]), store=store)
            sim.restore(state, loaded)
            again: dict[str, Any] = sim.export_state()
            await target.aclose()
            return again

        again = asyncio.run(restore())
    finally:
        store.close()
    for key in ("sim_now", "secret", "day_start_s", "arrivals_today", "factory", "growth_rng"):
        assert again[key] == state[key], key
    assert again["counters"] == state["counters"]


# -- refusals: corrupt, foreign, already used ----------------------------------------------


def _foreign_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    db.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    db.commit()
    db.close()


def _other_format(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('format', '\"someone-else/7\"')")
    db.commit()
    db.close()


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(8192))


def _truncated_header(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + random.Random(2).randbytes(3000))


BAD_FILES = {
    "garbage": _garbage,
    "truncated": _truncated_header,
    "foreign-sqlite": _foreign_sqlite,
    "other-format": _other_format,
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_corrupt_or_foreign_state_is_refused_and_left_untouched(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "state.db"
    BAD_FILES[kind](path)
    before = digest(path)
    with pytest.raises(StateError) as info:
        SqliteStore(path, create=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # no -wal/-shm left
    with pytest.raises(StateError):
        load_resume(tmp_path)
    assert digest(path) == before
    # ...and never overwritten by a new run either
    with pytest.raises(StateError, match="already holds a run"):
        SqliteStore(path, create=True)
    assert digest(path) == before


@pytest.mark.parametrize("kind", ["garbage", "foreign-sqlite"])
def test_resume_of_a_corrupt_state_exits_2(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    BAD_FILES[kind](out / "state.db")
    before = dir_digest(out)
    proc = sim_engine("run", "--resume", str(out), "-q")
    line = assert_one_line_error(proc, 2)
    assert "state.db" in line
    assert dir_digest(out) == before
    proc = sim_engine("run", "--target", "inprocess", "--duration", "1h", "--out", str(out), "-q")
    assert "already holds a run" in assert_one_line_error(proc, 2)
    assert dir_digest(out) == before


def test_resume_of_a_directory_without_state_exits_2(tmp_path: Path) -> None:
    proc = sim_engine("run", "--resume", str(tmp_path), "-q")
    assert "nothing to resume" in assert_one_line_error(proc, 2)
    assert list(tmp_path.iterdir()) == []


def test_run_into_a_directory_holding_a_run_exits_2_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--target", "inprocess", "--speed", "max", "--duration", "3h", "--users", "5")
    first = sim_engine("run", *args, "--out", str(out), "-q")
    assert first.returncode == 0, first.stderr
    before = dir_digest(out)
    assert "state.db" in before and "actions.jsonl" in before
    proc = sim_engine("run", *args, "--out", str(out), "-q")
    line = assert_one_line_error(proc, 2)
    assert "already holds a run" in line and "--resume" in line
    assert dir_digest(out) == before


# -- SIGKILL at random points, resume, compare with the target's own data ---------------------

KILL_SEED = int(os.environ.get("SIM_KILL_SEED", "20240515"))
DURATION = "3d"
DURATION_S = 3 * DAY_S
KILL_USERS = 90  # with DURATION: about 4 s of work at --speed max on the 2-core machine
CHECKPOINT_WAIT_S = 60.0  # wall seconds: a new checkpoint comes every 0.5 s, even when busy


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            start_new_session=True,  # its own process group: the CLI and its demo server
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _complete_lines_end(path: Path) -> int:
    data = path.read_bytes() if path.exists() else b""
    return data.rfind(b"\n") + 1


def _wait_for_checkpoint_after(
    state_db: Path, after: float | None, proc: subprocess.Popen[bytes], log: Path
) -> float:
    """Wait (at most CHECKPOINT_WAIT_S wall seconds) for a checkpoint later than ``after``.

    ``after`` None: any checkpoint. A resumed run checkpoints first at the very time it
    resumed from (its clock starts there); only a later one shows it has moved on.
    Returns that checkpoint's simulated time; fails if the run ends or none comes.
    """
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while True:
        checkpoint = checkpoint_s(state_db)
        if checkpoint is not None and (after is None or checkpoint > after):
            return checkpoint
        assert proc.poll() is None, f"the run ended before a new checkpoint: {log.read_text()}"
        assert time.monotonic() < deadline, f"no checkpoint after {after} in {CHECKPOINT_WAIT_S} s"
        time.sleep(0.05)


def _kill_three_times(out: Path, log: Path, rng: random.Random) -> list[tuple[int, float]]:
    """Start the run, then SIGKILL it (its whole process group) and resume it, three times.

    Returns ``(actions.jsonl offset, checkpoint)`` as each resume found them.
    """
    # Busy (helpers.busy_overrides): nobody quits, so every user signed up is still in
    # state.db and on the target at the end, and the run lasts long enough to kill.
    scenario = busy_scenario_file(out.parent / "scenario.yaml", **{"state.checkpoint_every_s": 0.5})
    first = [
        *(*SIM_ENGINE, "run", "--scenario", str(scenario), "--speed", "max"),
        *("--duration", DURATION, "--users", str(KILL_USERS), "--seed", "5"),
        *("--out", str(out), "-q"),
    ]
    resume = [*SIM_ENGINE, "run", "--resume", str(out), "-q"]
    resumes: list[tuple[int, float]] = []
    db = out / "state.db"
    for attempt in range(3):
        if attempt:
            checkpoint = checkpoint_s(db)
            assert checkpoint is not None
            resumes.append((_complete_lines_end(out / "actions.jsonl"), checkpoint))
        proc = _start(first if attempt == 0 else resume, log)
        try:
            # A run checkpoints as it starts (a resumed one at the very time it resumed
            # from), then every 0.5 s. A kill before the first checkpoint leaves nothing to
            # resume from (see test_kill_before_first_checkpoint), and one before the next
            # would only repeat the last attempt: wait for a checkpoint newer than the one
            # it started from, so that every attempt moves the story on; then kill at a
            # random point of the checkpoint cycle.
            started_at = (
                resumes[-1][1] if attempt else _wait_for_checkpoint_after(db, None, proc, log)
            )
            _wait_for_checkpoint_after(db, started_at, proc, log)
            time.sleep(rng.uniform(0.0, 0.75))
            assert proc.poll() is None, log.read_text()  # still running: the kill lands mid-run
        finally:
            _kill_group(proc)
        assert proc.returncode == -signal.SIGKILL
        assert read_meta(db, "finished") is None  # killed: never finished
    return resumes


def _resume_to_the_end(out: Path, log: Path) -> None:
    """Resume the run once more and let it finish (at most 90 wall seconds)."""
    final = _start([*SIM_ENGINE, "run", "--resume", str(out), "-q"], log)
    try:  # in its own process group: a timeout kills its demo server too
        final.wait(timeout=90)
    finally:
        if final.poll() is None:
            _kill_group(final)
    assert final.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def _check_state_against_the_target(out: Path) -> None:
    """The engine's saved users against the demo API's own database: nothing lost or doubled."""
    assert read_meta(out / "state.db", "finished") is True
    state_db = sqlite3.connect(out / "state.db")
    try:
        engine_users = [json.loads(d) for (d,) in state_db.execute("SELECT data FROM users")]
    finally:
        state_db.close()
    demo = sqlite3.connect(out / "demo.db")
    try:
        demo_users = {row[0]: row[1] for row in demo.execute("SELECT id, email FROM users")}
        posts_by_author: dict[int, set[int]] = {}
        for post_id, author in demo.execute("SELECT id, author_id FROM posts"):
            posts_by_author.setdefault(author, set()).add(post_id)
    finally:
        demo.close()

    assert len(engine_users) >= KILL_USERS
    emails = [u["email"] for u in engine_users]
    assert len(emails) == len(set(emails)), "a user was duplicated"
    remote_ids = [u["remote_id"] for u in engine_users if u["remote_id"] is not None]
    assert len(remote_ids) == len(set(remote_ids)), "two engine users share one account"
    assert len(remote_ids) >= 0.8 * KILL_USERS  # most users signed up over three days
    # every account on the target is one the engine knows, and vice versa
    assert set(remote_ids) == set(demo_users)
    by_remote = {u["remote_id"]: u for u in engine_users if u["remote_id"] is not None}
    for remote_id, email in demo_users.items():
        assert by_remote[remote_id]["email"] == email
    # no created resource forgotten, none invented
    for remote_id, user in by_remote.items():
        assert _own(user) == posts_by_author.get(remote_id, set()), remote_id
    assert set(posts_by_author) <= set(remote_ids)
    assert sum(len(p) for p in posts_by_author.values()) > 50


def _check_outputs(out: Path, resumes: list[tuple[int, float]], end_s: float) -> None:
    """metrics.json and the JSONL files after the last resume: whole, and in order."""
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["resumed"] is True
    assert metrics["run"]["interrupted"] is False
    assert metrics["run"]["simulated_seconds"] == pytest.approx(DURATION_S, abs=1.0)
    raw = (out / "actions.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    records = [json.loads(line) for line in lines]  # every line whole: partial ones repaired
    assert records
    offsets = [o for o, _ in resumes] + [len(raw)]
    for (offset, checkpoint), stop in zip(resumes, offsets[1:], strict=True):
        segment = [json.loads(line) for line in raw[offset:stop].split(b"\n") if line]
        # each resumed run acts from its checkpoint on, never before it
        assert all(r["sim_ts"] >= checkpoint - 1e-3 for r in segment), checkpoint
    assert records[-1]["sim_ts"] > end_s - DAY_S / 4
    assert max(r["sim_ts"] for r in records) <= end_s + 1e-3
    for name in ("users.jsonl", "lifecycle.jsonl"):
        for line in (out / name).read_text().splitlines():
            json.loads(line)


def test_sigkill_at_random_points_then_resume_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    log = tmp_path / "log.txt"
    started = time.monotonic()
    resumes = _kill_three_times(out, log, random.Random(KILL_SEED))
    checkpoint = checkpoint_s(out / "state.db")
    assert checkpoint is not None
    resumes.append((_complete_lines_end(out / "actions.jsonl"), checkpoint))
    _resume_to_the_end(out, log)
    assert time.monotonic() - started < 4 * CHECKPOINT_WAIT_S  # a hang, not a slow machine

    run_info = json.loads((out / "run.json").read_text())
    start_s, end_s = float(run_info["start_s"]), float(run_info["end_s"])
    assert end_s - start_s == pytest.approx(DURATION_S)
    # the clock went on from checkpoint to checkpoint (each attempt moved it on), never
    # back to the start
    checkpoints = [c for _, c in resumes]
    assert all(a < b for a, b in itertools.pairwise(checkpoints)), checkpoints
    assert checkpoints[-1] > start_s
    _check_state_against_the_target(out)
    _check_outputs(out, resumes, end_s)


def test_kill_before_first_checkpoint(tmp_path: Path) -> None:
    """A run stopped while it starts (state.db made, no checkpoint yet) starts over on resume."""
    from sim_engine.model.scenario import default_scenario
    from sim_engine.runs.runstate import start_state

    out = tmp_path / "run"
    scenario = default_scenario().with_overrides(**{"population.initial": 20})
    start_s = 1_772_409_600.0
    run_info = {
        "target": "inprocess",
        "speed": "max",
        "start_s": start_s,
        "end_s": start_s + 86400.0,
        "version": "test",
    }
    start_state(out, scenario, run_info).close()  # what a kill at that moment leaves
    assert checkpoint_s(out / "state.db") is None
    resumed = sim_engine("run", "--resume", str(out), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert read_meta(out / "state.db", "finished") is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["simulated_seconds"] == pytest.approx(86400.0, abs=1.0)
    assert metrics["summary"]["users"] > 0


def test_sigterm_stops_gracefully_and_the_run_can_be_resumed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 20 days (about 6 s): the stop comes mid-run, not while a short run is already ending
    args = ["--speed", "max", "--duration", "20d", "--users", "60", "--seed", "9", "-q"]
    proc = sim_engine_popen("run", *args, "--out", str(out))
    try:
        t0 = time.monotonic()
        while checkpoint_s(out / "state.db") is None and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the CLI only; it stops its demo server itself
        stdout, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        reap(proc)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert took < 5, took
    assert "Interrupted" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["interrupted"] is True
    assert 0 < metrics["run"]["simulated_seconds"] < 20 * DAY_S
    assert read_meta(out / "state.db", "finished") is False
    checkpoint = checkpoint_s(out / "state.db")
    assert checkpoint is not None
    # the last checkpoint was taken at the stop: it is where the outputs end
    start_s = float(json.loads((out / "run.json").read_text())["start_s"])
    assert checkpoint == pytest.approx(start_s + metrics["run"]["simulated_seconds"], abs=1.0)
    lines = (out / "actions.jsonl").read_text().splitlines()
    assert metrics["summary"]["actions"] == len(lines)
    assert all(json.loads(line)["sim_ts"] <= checkpoint + 1e-3 for line in lines)

    resumed = sim_engine("run", "--resume", str(out), "-q", timeout=90)
    assert resumed.returncode == 0, resumed.stderr
    assert read_meta(out / "state.db", "finished") is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["interrupted"] is False and metrics["run"]["resumed"] is True
    assert metrics["run"]["simulated_seconds"] == pytest.approx(20 * DAY_S, abs=1.0)
    lines = (out / "actions.jsonl").read_text().splitlines()
    assert metrics["summary"]["actions"] == len(lines)  # replayed, not counted twice
