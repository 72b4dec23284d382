"""A resumed run sends each action at most once (issue: crash safety, item 2).

Before the write-ahead journal, a resume planned every user again from the last
checkpoint: what users had sent between the checkpoint and the kill was sent again
(up to 9.7 simulated hours of traffic in the audit), and users who had joined in
that stretch were joined by new arrivals drawn again for the same hours.

The engine-level test stands in for a kill: a first run checkpoints at 2 simulated
hours and goes on to 6 (all it sent after the checkpoint is in the journal, as after
a SIGKILL at 6 h); a second one restores the checkpoint with the journal and runs to
the end. The subprocess test kills real runs (``bench/crash_resume.py``, smaller).
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from helpers import ListSink, always_ok_api, busy_overrides, busy_scenario_file, utc_scenario
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.journal import JOURNAL_NAME, DispatchJournal, Progress, read_journal
from sim_engine.engine.simulation import Simulation
from sim_engine.engine.store import SqliteStore
from sim_engine.model.records import ActionRecord

START = datetime(2024, 5, 15, 6, 0, tzinfo=timezone.utc).timestamp()
HOUR = 3600.0


class _CheckpointAt(ListSink):
    """Keeps records, and checkpoints the simulation once the first record at or after
    ``at_s`` arrives (as the state keeper does)."""

    def __init__(self, at_s: float) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self._at_s = at_s
        self.done = False

    def emit(self, record: Any) -> None:
        super().emit(record)
        if not self.done and self.sim is not None and getattr(record, "sim_ts", 0) >= self._at_s:
            self.sim.checkpoint()
            self.done = True


def _scenario() -> Any:
    # Busy (:func:`busy_overrides`): a mechanism test, it needs many sends after the checkpoint.
    return utc_scenario(60, seed=4).with_overrides(
        **busy_overrides(),
        **{"population.signups_per_day": 300, "population.max_signups_per_day": None},
    )


async def _first_run(out: Path) -> tuple[_CheckpointAt, float]:
    store = SqliteStore(out / "state.db", create=True)
    journal = DispatchJournal(out / JOURNAL_NAME)
    sink = _CheckpointAt(START + 2 * HOUR)
    sim = Simulation(
        _scenario(), always_ok_api(), FastForwardClock(START), [sink], duration_s=6 * HOUR,
        store=store, journal=journal,
    )  # fmt: skip
    sink.sim = sim
    await sim.run()  # "killed" at 6 h: no checkpoint after the one at 2 h
    journal.close()
    store.close()
    state, _ = SqliteStore(out / "state.db", create=False).load()
    return sink, float(state["sim_now"])


async def _resumed_run(out: Path, with_journal: bool) -> tuple[ListSink, list[float], list[float]]:
    """Resume; return the records, the saved users' creation times, and the creation
    times of users the resumed run made."""
    store = SqliteStore(out / "state.db", create=False)
    state, users = store.load()
    progress = read_journal(out / JOURNAL_NAME) if with_journal else None
    now = float(state["sim_now"])
    sink = ListSink()
    sim = Simulation(
        _scenario(), always_ok_api(), FastForwardClock(now), [sink],
        duration_s=START + 12 * HOUR - now, store=store,
    )  # fmt: skip
    sim.restore(state, users, progress)
    saved = {u.user_id for u in users}
    await sim.run()
    store.close()
    made = [u.created_ts for u in sim.users.values() if u.user_id not in saved]
    return sink, [u.created_ts for u in users], made


def _last_action_by_user(records: list[Any], after_s: float) -> dict[int, float]:
    last: dict[int, float] = {}
    for r in records:
        if isinstance(r, ActionRecord) and r.sim_ts >= after_s:
            last[r.user_id] = max(r.sim_ts, last.get(r.user_id, r.sim_ts))
    return last


def _resent(first: list[Any], checkpoint: float, again: list[Any]) -> int:
    """Actions of the resumed run at or before the same user's last action already sent."""
    sent = _last_action_by_user(first, checkpoint)
    return sum(
        1 for r in again if isinstance(r, ActionRecord) and r.sim_ts <= sent.get(r.user_id, -1.0)
    )


def test_a_resumed_run_does_not_send_again_what_it_sent_after_its_checkpoint(
    tmp_path: Path,
) -> None:
    first, checkpoint = asyncio.run(_first_run(tmp_path))
    assert START + 2 * HOUR <= checkpoint < START + 3 * HOUR
    sent_after = _last_action_by_user(first.records, checkpoint)
    assert len(sent_after) >= 30  # most users acted between the checkpoint and the "kill"
    again, saved, made = asyncio.run(_resumed_run(tmp_path, with_journal=True))
    actions = [r for r in again.records if isinstance(r, ActionRecord)]
    assert len(actions) > 500  # the resumed run goes on for 6 more hours
    assert _resent(first.records, checkpoint, again.records) == 0
    # Users who joined after the checkpoint were saved as they joined: arrivals go on
    # after the last of them instead of being drawn again for the same hours.
    joined_late = [t for t in saved if t > checkpoint]
    assert joined_late, "no arrival between the checkpoint and the kill: make sign-ups likelier"
    assert made, "the resumed run made no user: make sign-ups likelier"
    assert min(made) > max(joined_late)


def test_the_same_resume_without_the_journal_sends_again(tmp_path: Path) -> None:
    """The control: restoring the checkpoint alone re-sends the stretch after it."""
    first, checkpoint = asyncio.run(_first_run(tmp_path))
    again, _, _ = asyncio.run(_resumed_run(tmp_path, with_journal=False))
    assert _resent(first.records, checkpoint, again.records) > 100


def test_the_journal_keeps_each_users_last_action_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    journal = DispatchJournal(path)
    journal.dispatched(7, 100.0, 130.5, 3)
    journal.dispatched(8, 101.0, 140.0, 0)
    journal.dispatched(7, 130.5, 170.0, 2)
    journal.close()
    with path.open("ab") as handle:
        handle.write(b"8 99999")  # a kill in the middle of a write
    assert read_journal(path) == {7: Progress(130.5, 170.0, 2), 8: Progress(101.0, 140.0, 0)}
    assert path.stat().st_mode & 0o777 == 0o600
    journal = DispatchJournal(path)
    journal.reset()
    journal.close()
    assert read_journal(path) == {}
    assert read_journal(tmp_path / "missing.log") == {}


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "crash_resume.py"
    spec = importlib.util.spec_from_file_location("crash_resume_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_random_sigkills_lose_nobody_and_send_nothing_twice(tmp_path: Path) -> None:
    """Real runs killed with SIGKILL six times at random and resumed, against the target's
    own database: no user lost or doubled, no post forgotten, nothing sent twice."""
    bench = _bench()
    # Busy (no churn hazard): every user signed up stays on the target, so a lost one shows.
    busy = busy_scenario_file(tmp_path / "busy.yaml")
    hits = bench.crash_series(
        tmp_path / "run", 120, "2d", 9, 6, (0.0, 0.6), random.Random(9), scenario=busy
    )
    assert hits >= 3, "the kills did not land while the run was going"
    got = bench.figures(tmp_path / "run")
    assert got.target_users >= 120
    assert (got.lost, got.duplicated, got.forgotten) == (0, 0, 0)
    assert (got.posts_resent, got.resent) == (0, 0)
