"""A run directory's life: the safety guard, crash-safe state, resume, kill switch.

Edge module used by the runner and the CLI. A run directory holds:

* ``state.db`` -- the crash-safe state (:mod:`sim_engine.engine.store`);
* ``run.json`` -- how the run was started (target, speed, start, end), written first;
* ``scenario.json`` -- the effective scenario, written first;
* ``demo.db`` -- the built-in demo API's database when the run started it (so a
  resumed run and ``sim-engine cleanup`` find the same data);
* the outputs (``actions.jsonl``, ``users.jsonl``, ``lifecycle.jsonl``,
  ``metrics.json``, ``daily_metrics.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim_engine.api.plugins import load_scenario_with_plugins, validate_with_plugins
from sim_engine.engine.store import SqliteStore, StateError
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, Sink, UserRecord
from sim_engine.model.safety import DEMO, SafetyError, check_target_allowed
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.sinks.metrics import DailyMetrics, MetricsCollector
from sim_engine.sinks.rotation import read_lines, rotated_files

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = [
    "DEMO",
    "KillSwitch",
    "ResumeInfo",
    "SafetyError",
    "StateError",
    "StateKeeper",
    "check_target_allowed",
    "complete_users",
    "load_resume",
    "replay_outputs",
    "start_state",
]

# -- state -----------------------------------------------------------------------------------


def start_state(out_dir: Path, scenario: Scenario, run_info: dict[str, Any]) -> SqliteStore:
    """Prepare a new run directory: refuse one that holds a run, write ``scenario.json``,
    ``run.json`` and a fresh ``state.db``.

    Raises:
        StateError: the directory already holds a run.
        OSError: it cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(out_dir / "state.db", create=True)
    store.set_meta("run", run_info)
    store.set_meta("scenario", scenario.model_dump(mode="json"))
    write_scenario_copy(out_dir, scenario)
    (out_dir / "run.json").write_text(json.dumps(run_info, indent=2) + "\n", "utf-8")
    return store


def write_scenario_copy(out_dir: Path, scenario: Scenario) -> Path:
    """Write ``scenario.json``: the effective scenario with founders' passwords masked
    (the full scenario, needed to resume, lives in ``state.db``)."""
    data = scenario.model_dump(mode="json")
    for founder in data["population"]["founders"]:
        if founder.get("password"):
            founder["password"] = "***"
    path = out_dir / "scenario.json"
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    return path


@dataclass
class ResumeInfo:
    """What a crashed run left to resume from.

    Attributes:
        scenario: the run's effective scenario.
        run: ``run.json``: ``target`` (URL, ``inprocess`` or ``demo``), ``speed``,
            ``start_s``, ``end_s`` (simulated epoch seconds; None: open-ended).
        store: the open state store.
        engine_state: the engine's state at the last checkpoint; None when the run
            was stopped before its first checkpoint (it had sent nothing: it
            starts again from the beginning).
        users: the saved users (empty when ``engine_state`` is None).
    """

    scenario: Scenario
    run: dict[str, Any]
    store: SqliteStore
    engine_state: dict[str, Any] | None
    users: list[SimUser]


def load_resume(out_dir: Path) -> ResumeInfo:
    """Open a run directory to resume it.

    Raises:
        StateError: no state, or a corrupt or foreign state file (never overwritten).
        ScenarioError: the saved scenario no longer validates.
    """
    if not (out_dir / "state.db").exists():
        raise StateError(f"{out_dir}: no state.db here: nothing to resume")
    store = SqliteStore(out_dir / "state.db", create=False)
    try:
        run = store.get_meta("run")
        if not isinstance(run, dict):
            raise StateError(f"{out_dir / 'state.db'}: no run settings saved")
        data = store.get_meta("scenario")
        if not isinstance(data, dict):
            raise StateError(f"{out_dir / 'state.db'}: no scenario saved")
        scenario, _ = validate_with_plugins(data, source=f"{out_dir / 'state.db'} (scenario)")
        if store.has_checkpoint():
            engine_state, users = store.load()
        else:
            engine_state, users = None, []
    except (StateError, ScenarioError):
        store.close()
        raise
    return ResumeInfo(scenario, run, store, engine_state, users)


def repair_jsonl(path: Path) -> None:
    """Cut a partial last line left by a killed writer (so appended lines stay valid)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(cut)


def _records(path: Path) -> Any:
    """The records of a JSON-lines file, after those of its rotated files still on disk."""
    for rotated in rotated_files(path):
        for line in read_lines(rotated):
            if line.strip():
                yield json.loads(line)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def replay_outputs(
    out_dir: Path,
    collector: MetricsCollector,
    daily: DailyMetrics,
    day_start_s: float | None = None,
) -> int:
    """Feed a resumed run's earlier records back into its collectors; return how many.

    The daily history keeps the days closed before ``day_start_s`` (the start of the
    run day the resumed run goes on with, simulated epoch seconds); that day's records
    so far are replayed into ``daily``, so it closes once, with all of them.

    Raises:
        StateError: an output file holds a line that is not a record.
    """
    count = 0
    try:
        for data in _records(out_dir / "users.jsonl"):
            data.pop("kind", None)
            collector.emit(UserRecord(**data))
            count += 1
        history = out_dir / "daily_metrics.json"
        if history.exists():
            daily.restore(json.loads(history.read_text("utf-8")), before_s=day_start_s)
        for data in _records(out_dir / "actions.jsonl"):
            data.pop("kind", None)
            record = ActionRecord(**data)
            collector.emit(record)
            if day_start_s is not None and record.sim_ts >= day_start_s:
                daily.emit(record)
            count += 1
        if day_start_s is not None:
            _replay_lifecycle(out_dir, daily, day_start_s)
    except (ValueError, TypeError, KeyError) as exc:
        raise StateError(f"{out_dir}: an output file is corrupt ({exc})") from None
    return count


def _replay_lifecycle(out_dir: Path, daily: DailyMetrics, day_start_s: float) -> None:
    for data in _records(out_dir / "lifecycle.jsonl"):
        if float(data["sim_ts"]) >= day_start_s:
            old, new = str(data["from"]), str(data["to"])
            when, sim_ts, uid = str(data["sim_time"]), float(data["sim_ts"]), int(data["user_id"])
            change, reason = str(data["change"]), str(data["reason"])
            daily.emit(LifecycleRecord(when, sim_ts, uid, change, old, new, reason))


def complete_users(out_dir: Path, users: list[SimUser], personas: list[str]) -> int:
    """Append to ``users.jsonl`` the users ``state.db`` says joined but the file lacks
    (a kill between the two writes); return how many. Their ``sim_time`` is the
    user's creation (the sign-up time was not kept)."""
    path = out_dir / "users.jsonl"
    listed = {int(data["user_id"]) for data in _records(path)}
    missing = [u for u in users if u.joined and u.user_id not in listed]
    if missing:
        with path.open("a", encoding="utf-8") as handle:
            for user in missing:
                handle.write(json.dumps(_user_record(user, personas).to_dict()) + "\n")
    return len(missing)


def _user_record(user: SimUser, personas: list[str]) -> UserRecord:
    local = datetime.fromtimestamp(user.created_ts, user.tz)
    return UserRecord(
        sim_time=local.isoformat(timespec="milliseconds"),
        sim_ts=user.created_ts,
        user_id=user.user_id,
        persona=personas[user.persona],
        name=user.name,
        email=user.email,
        timezone=str(user.tz),
        avatar=user.avatar or user.initials,
        tag=user.tag,
        remote_id=user.remote_id,
        segment=user.life.segment if user.life is not None else None,
    )


# -- add-ons ---------------------------------------------------------------------------------


class StateKeeper:
    """Checkpoints the run as it progresses and at the end (an add-on).

    A checkpoint is taken every ``every_s`` wall seconds, and also after
    ``every_sim_s`` simulated seconds or ``every_actions`` actions since the last
    one (seen in the records), whichever comes first. At each checkpoint the
    engine's state and changed users go to ``state.db``, the JSONL sinks are
    flushed and ``daily_metrics.json`` is rewritten.

    Args:
        every_s: wall seconds between checkpoints.
        flushers: sinks with a ``flush()`` to call at each checkpoint.
        write_daily: callable writing ``daily_metrics.json``.
        every_sim_s: simulated seconds of progress between checkpoints.
        every_actions: actions between checkpoints.
    """

    def __init__(
        self,
        every_s: float,
        flushers: list[Any],
        write_daily: Any,
        every_sim_s: float = math.inf,
        every_actions: int = 2**62,
    ) -> None:
        self._every_s = every_s
        self._flushers = flushers
        self._write_daily = write_daily
        self._every_sim_s = every_sim_s
        self._every_actions = every_actions
        self._sim: Simulation | None = None
        self._task: asyncio.Task[None] | None = None
        self._since_actions = 0
        self._last_sim_s = -math.inf
        self.checkpoints = 0

    def sinks(self) -> list[Sink]:
        """Itself: it watches the actions for the progress-based checkpoints."""
        return [self]

    def emit(self, record: Record) -> None:
        """Count an action; checkpoint when enough simulated time or actions have passed."""
        if not isinstance(record, ActionRecord) or self._sim is None:
            return
        self._since_actions += 1
        if (
            self._since_actions >= self._every_actions
            or record.sim_ts - self._last_sim_s >= self._every_sim_s
        ):
            self.save()

    def close(self) -> None:
        """Nothing to release (:meth:`stop` takes the last checkpoint)."""

    async def start(self, sim: Simulation) -> None:
        """Take a first checkpoint and start the periodic task."""
        self._sim = sim
        self.save()
        self._task = asyncio.ensure_future(self._loop())

    def save(self) -> None:
        """Checkpoint now."""
        if self._sim is None:
            return
        for sink in self._flushers:
            sink.flush()
        self._sim.checkpoint()
        self._write_daily()
        self.checkpoints += 1
        self._since_actions = 0
        self._last_sim_s = self._sim.statistics().sim_now

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            self.save()

    async def stop(self) -> None:
        """Stop the task and take the last checkpoint."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.save()


class KillSwitch:
    """Stops all activity at once when ``DIR/<kill_file>`` appears or the scenario file
    is changed to ``safety.enabled: false`` (seed 000's kill switch). An add-on.

    Args:
        kill_path: the kill file to watch.
        scenario_path: the scenario file to re-read when it changes (None: none).
        poll_s: wall seconds between checks.
    """

    def __init__(self, kill_path: Path, scenario_path: Path | None, poll_s: float = 0.5) -> None:
        self._kill_path = kill_path
        self._scenario_path = scenario_path
        self._poll_s = poll_s
        self._mtime = self._stat()
        self._task: asyncio.Task[None] | None = None
        self.reason: str | None = None

    def _stat(self) -> float | None:
        if self._scenario_path is None:
            return None
        try:
            return self._scenario_path.stat().st_mtime
        except OSError:
            return None

    def sinks(self) -> list[Sink]:
        """None."""
        return []

    def check(self) -> str | None:
        """Return why the run must stop now, or None."""
        if self._kill_path.exists():
            return f"kill file {self._kill_path} found"
        mtime = self._stat()
        if mtime is not None and mtime != self._mtime and self._scenario_path is not None:
            self._mtime = mtime
            with contextlib.suppress(ScenarioError):
                if not load_scenario_with_plugins(self._scenario_path)[0].safety.enabled:
                    return f"{self._scenario_path}: safety.enabled is now false"
        return None

    async def start(self, sim: Simulation) -> None:
        """Start watching."""

        async def watch() -> None:
            while not sim.stopping:
                reason = self.check()
                if reason is not None:
                    self.reason = reason
                    sim.stop()
                    return
                await asyncio.sleep(self._poll_s)

        self._task = asyncio.ensure_future(watch())

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
