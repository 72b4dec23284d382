"""Helpers shared by the test modules: the command line in a subprocess, records on disk,
small stand-ins for a target and a sink, and scenario snippets.

Fixtures live in ``conftest.py``; this module holds plain functions and constants,
imported by name (``from helpers import sim_engine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from sim_engine import ActionRequest, Outcome
from sim_engine.model.scenario import Scenario, default_scenario
from sim_engine.targets import MockTarget

#: Wednesday 2024-05-15 18:00 UTC: an evening in Europe, an afternoon in America.
BUSY_START = "2024-05-15T18:00:00Z"

#: ``python -m sim_engine`` with the interpreter running the tests.
SIM_ENGINE: tuple[str, ...] = (sys.executable, "-m", "sim_engine")

#: What ``serve`` (see ``conftest.py``) hands a test: start an app, get its base URL.
Starter = Callable[[web.Application], Awaitable[str]]


# -- the command line in a subprocess ---------------------------------------------------------


def installed_command() -> list[str]:
    """The installed ``sim-engine`` script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "sim-engine"
    return [str(script)] if script.exists() else list(SIM_ENGINE)


def sim_engine(
    *args: str,
    timeout: float = 60,
    command: Sequence[str] = SIM_ENGINE,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (``python -m sim_engine`` unless told) with ``args`` to its end.

    Stdin is closed; stdout and stderr are captured as text; ``env``: the whole
    environment (default: this process's).
    """
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )


def sim_engine_popen(*args: str, **popen_options: Any) -> subprocess.Popen[str]:
    """Start ``python -m sim_engine`` with ``args`` and return at once.

    Stdin is closed, stdout and stderr are text pipes; ``popen_options`` (``env=`` ...)
    go to :class:`subprocess.Popen` as well. Pair it with :func:`reap` in a ``finally``.
    """
    return subprocess.Popen(
        [*SIM_ENGINE, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen_options,
    )


def reap(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` if it is still running and wait for it (a test's ``finally`` clean-up)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def terminate(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Ask ``proc`` to stop (SIGTERM); kill it if it has not within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert the command failed with exit ``code`` and one ``sim-engine: error:`` line
    on stderr, with no traceback anywhere; return that line."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sim-engine: error: "), lines[0]
    return lines[0]


# -- records on disk --------------------------------------------------------------------------


def interrupt_when(
    args: Sequence[str], ready: Callable[[], bool], wait_s: float, settle_s: float = 0.0
) -> tuple[int, str]:
    """Start ``sim-engine run ARGS``, wait at most ``wait_s`` wall seconds for ``ready()``
    (polled every 0.05 s), let it run ``settle_s`` wall seconds more, then SIGTERM it.
    Returns its exit code and stderr; fails if it ended before the signal."""
    proc = sim_engine_popen("run", *args)
    try:
        deadline = time.monotonic() + wait_s
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(settle_s)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        reap(proc)
    return proc.returncode, stderr


def interrupt_after_checkpoint(args: Sequence[str], out: Path, settle_s: float) -> tuple[int, str]:
    """:func:`interrupt_when` the run (writing to ``out``) has its first checkpoint in
    ``out/state.db`` (waiting at most 30 wall seconds), then ``settle_s`` more."""
    return interrupt_when(args, lambda: checkpoint_s(out / "state.db") is not None, 30, settle_s)


def checkpoint_s(state_db: Path) -> float | None:
    """The simulated time of a run's last checkpoint (None: none yet), read-only."""
    try:
        db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return None if row is None else float(json.loads(row[0])["sim_now"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file (``actions.jsonl``, ``log.jsonl`` ...) as a dict."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- stand-ins: a target, a sink, a plugin module ---------------------------------------------


def always_ok_api() -> MockTarget:
    """A target that succeeds at everything at once (0.1 ms), like a tiny social API."""
    ids = itertools.count(1)

    def handle(req: ActionRequest) -> Outcome:
        if req.action == "sign_up":
            return Outcome(201, True, 0.1, remote_id=req.user_id)
        if req.action == "log_in":
            return Outcome(200, True, 0.1, token=f"t{req.user_id}")
        if req.action == "browse_feed":
            return Outcome(200, True, 0.1, feed_ids=((1, 1), (2, 2), (3, 1)))
        if req.action == "create_post":
            return Outcome(201, True, 0.1, post_id=next(ids))
        if req.action == "delete_post":
            return Outcome(204, True, 0.1, post_id=req.post_id)
        return Outcome(200, True, 0.1, post_id=req.post_id)

    return MockTarget(handle)


class ListSink:
    """A sink that keeps every record it is given, in order, and notes when it is closed."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.closed = False

    def emit(self, record: Any) -> None:
        self.records.append(record)

    def close(self) -> None:
        self.closed = True


@contextlib.contextmanager
def importable_module(directory: Path, prefix: str, source: str) -> Iterator[str]:
    """Write ``source`` as a module named after ``prefix`` and ``directory`` (unique per
    test), put ``directory`` on ``sys.path`` and yield the name; undo both on exit."""
    name = f"{prefix}_{directory.name.replace('-', '_')}"
    (directory / f"{name}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(directory))
    try:
        yield name
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop(name, None)


# -- scenario snippets ------------------------------------------------------------------------


def utc_scenario(users: int, seed: int) -> Scenario:
    """The default scenario with ``users`` initial users, all in UTC, and ``seed``."""
    return default_scenario().with_overrides(
        **{"population.initial": users, "population.timezones": {"UTC": 1.0}, "seed": seed}
    )


def signup_payload(name: str = "ann") -> dict[str, Any]:
    """A ``sign_up`` request's payload for user ``name`` (the demo API's fields)."""
    return {
        "username": name,
        "email": f"{name}@sim-engine.test",
        "password": f"pw-{name}",
        "name": name.title(),
        "avatar_url": None,
        "tag": "tech",
    }


#: An ``api.auth.signup`` section for the demo API.
DEMO_SIGNUP: dict[str, Any] = {
    "method": "POST",
    "path": "/users",
    "body": {
        "username": "{user.username}",
        "email": "{user.email}",
        "password": "{user.password}",
        "name": "{user.name}",
    },
    "expect": [201],
}
#: An ``api.auth.login`` section for the demo API.
DEMO_LOGIN: dict[str, Any] = {
    "method": "POST",
    "path": "/auth/login",
    "body": {"username": "{user.username}", "password": "{user.password}"},
    "expect": [200],
}


# -- a wall clock for resilience tests ----------------------------------------------------


class FakeClock:
    """Manual wall clock with autojump: when every task sleeps, time jumps to the next wake-up."""

    def __init__(self, epoch_s: float = 0.0) -> None:
        self.t = 0.0
        self._epoch_s = epoch_s
        self.slept: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._driver: asyncio.Task[None] | None = None

    def __call__(self) -> float:
        return self.t

    def epoch(self) -> float:
        """The current time as epoch seconds (from ``epoch_s``)."""
        return self._epoch_s + self.t

    async def sleep(self, delay_s: float) -> None:
        self.slept.append(delay_s)
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._seq += 1
        heapq.heappush(self._timers, (self.t + max(0.0, delay_s), self._seq, wake))
        if self._driver is None:
            self._driver = loop.create_task(self._drive())
        await wake

    async def _drive(self) -> None:
        while self._timers:
            for _ in range(20):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            due_s, _, wake = heapq.heappop(self._timers)
            self.t = max(self.t, due_s)
            wake.set_result(None)
        self._driver = None


def uniform_action_draw(self: Any, persona: Any, state: Any, u: Any, posting: Any = None) -> Any:
    """A wrong ``ActionTable.draw`` for mutation tests: every user-step picks one of five
    actions uniformly (``u`` in [0, 1), numpy arrays of one shape), whatever the persona,
    the routine state and the posting propensity."""
    return (u * 5).astype("int16")


# -- a busy population for tests of engine mechanics ------------------------------------------

#: Per persona: (mean actions per session, working weights, relaxing weights) of the
#: default scenario before its realism recalibration (docs/realism-defaults.md): every
#: persona writes often and sessions are long.
_BUSY_PERSONAS: dict[str, tuple[float, tuple[float, ...], tuple[float, ...]]] = {
    "lurker": (5, (6, 4, 0.02, 0.0, 0.0), (5, 6, 0.05, 0.01, 0.0)),
    "chatterbox": (6, (3, 3, 2, 1, 0.05), (3, 4, 3, 1.5, 0.1)),
    "night_owl": (5, (5, 5, 0.3, 0.1, 0.02), (5, 6, 0.6, 0.2, 0.02)),
    "content_curator": (5, (3, 3, 0.8, 2, 0.2), (3, 4, 1, 3, 0.3)),
}
_BUSY_ACTIONS = ("browse_feed", "read_post", "create_post", "update_post", "delete_post")
#: The lighter-than-weekday weekend of the same old default (about 0.8x a weekday).
_BUSY_WEEKEND: list[dict[str, Any]] = [
    {"start": "00:00", "end": "01:00", "state": "relaxing", "intensity": 0.6},
    {"start": "01:00", "end": "08:00", "state": "sleeping"},
    {"start": "08:00", "end": "11:00", "state": "relaxing", "intensity": 0.5},
    {"start": "11:00", "end": "17:00", "state": "working"},
    {"start": "17:00", "end": "24:00", "state": "relaxing", "intensity": 0.7},
]


def busy_overrides() -> dict[str, Any]:
    """Dotted overrides (for :meth:`Scenario.with_overrides`) that turn the default
    scenario into a busy one for tests of engine MECHANICS (checkpoints, clocks, safety,
    lifecycle transitions, identity): no churn hazard (nobody quits, so nobody is deleted
    from ``sim.users`` at churn), every user of a persona alike (activity and posting
    multipliers 1), no follow-up sessions, the old long sessions and write-heavy weights.

    The default scenario's realistic users (most never write, most quit within a month)
    are tested as such in tests/test_realism_model.py and tests/test_plan_model.py.
    """
    out: dict[str, Any] = {
        "routine.weekend": _BUSY_WEEKEND,
        "lifecycle.churn_hazard": {"first_day": 0.0, "decay": 1.0},
        "lifecycle.session_depth": {
            "NEW": [3, 8],
            "ACTIVE": [2, 5],
            "CASUAL": [1, 3],
            "DORMANT": [1, 3],
            "BINGE": [5, 15],
        },
    }
    for name, (mean, working, relaxing) in _BUSY_PERSONAS.items():
        p = f"personas.{name}"
        out[f"{p}.activity_sigma"] = 0.0
        out[f"{p}.posting_sigma"] = 0.0
        out[f"{p}.session.mean_actions"] = mean
        out[f"{p}.session.follow_up.probability"] = 0.0
        out[f"{p}.actions.working"] = dict(zip(_BUSY_ACTIONS, working, strict=True))
        out[f"{p}.actions.relaxing"] = dict(zip(_BUSY_ACTIONS, relaxing, strict=True))
    return out


#: The demo API's social actions in the default personas' matrices.
SOCIAL_ACTIONS = (
    "browse_trending",
    "react",
    "comment",
    "follow_author",
    "check_followers",
    "follow_back",
)


def busy_social_overrides(scale: float = 12.0) -> dict[str, Any]:
    """:func:`busy_overrides` with the default personas' social actions added back: their
    default weights, those of every social action but ``browse_trending`` times ``scale``
    (the default users are sparse, so a short run of them leaves almost no social graph;
    tests/test_social_demo.py)."""
    out = busy_overrides()
    for name, persona in default_scenario().personas.items():
        for state in ("working", "relaxing"):
            key = f"personas.{name}.actions.{state}"
            weights = dict(out[key])
            for action in SOCIAL_ACTIONS:
                factor = 1.0 if action == "browse_trending" else scale
                weights[action] = persona.actions[state][action] * factor
            out[key] = weights
    return out


def busy_scenario(**overrides: Any) -> Scenario:
    """The default scenario made busy (see :func:`busy_overrides`), then ``overrides``
    (dotted paths, applied after)."""
    return default_scenario().with_overrides(**busy_overrides()).with_overrides(**overrides)


def busy_scenario_file(path: Path, **overrides: Any) -> Path:
    """Write :func:`busy_scenario` (with ``overrides``) to ``path`` as a whole YAML
    scenario for ``sim-engine run --scenario``; returns ``path``."""
    import yaml

    data = busy_scenario(**overrides).model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
