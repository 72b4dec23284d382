"""Random SIGKILLs with resumes, compared with an uninterrupted run of the same seed.

Runs ``sim-engine run --target inprocess --speed max`` (the demo app in process, its
database ``demo.db`` in the run directory) twice with the same seed: once straight
through, once killed with SIGKILL ``--kills`` times at random wall times (uniform in
``[--min-s, --max-s]`` after each start, start-up included) and resumed with
``run --resume`` after each kill, then to the end. Then compares what the *target*
holds (issue 13's measure):

- users on the target, and users lost (a user ``state.db`` says signed up that the
  target does not have) or duplicated (one simulated user twice on the target);
- posts created (rows in ``posts``) and post reads (the sum of ``view_count``): extra
  actions show up there as extra rows and views;
- posts forgotten: rows on the target that no user's memory in ``state.db`` holds;
- posts re-sent: on the target, a user's post dated (simulated time) before one of its
  earlier posts: a resume planned it again from an older checkpoint;
- re-sent actions: in ``actions.jsonl``, a user's action at a simulated time earlier
  than one of its actions already written (a user acts one step at a time, so its
  times only go back when a resume planned it again from an older checkpoint).

Run: ``python bench/crash_resume.py`` (about two minutes). The test
``tests/test_crash_resume.py`` runs the same series, smaller.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["Figures", "crash_series", "figures", "straight_run"]

START = "2024-05-15T00:00:00Z"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sim_engine", *args]


def _run_args(
    out: Path, users: int, duration: str, seed: int, scenario: Path | None = None
) -> list[str]:
    chosen = ["--scenario", str(scenario)] if scenario is not None else []
    return [
        "run", "--target", "inprocess", "--speed", "max", "--duration", duration,
        "--users", str(users), "--seed", str(seed), "--start", START, "-q", "--out", str(out),
        *chosen,
    ]  # fmt: skip


def straight_run(out: Path, users: int, duration: str, seed: int) -> None:
    """Run once to the end.

    Raises:
        RuntimeError: the run failed.
    """
    done = subprocess.run(_cli(*_run_args(out, users, duration, seed)), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])


def crash_series(
    out: Path, users: int, duration: str, seed: int, kills: int, span_s: tuple[float, float],
    rng: random.Random, scenario: Path | None = None,
) -> int:  # fmt: skip
    """Start the run, SIGKILL it ``kills`` times at random (resuming after each), then let
    it finish; return how many kills hit a running process (a run that ended before its
    kill counts as finished).

    Each kill comes a random ``span_s`` wall seconds after the run has made progress
    (a checkpoint later than the one it started from), so that a slow start-up on a
    busy machine does not make every kill land before the first action. ``scenario``:
    a scenario file for the run (None: the default scenario).

    Raises:
        RuntimeError: a resume or the last run failed.
    """
    args = _run_args(out, users, duration, seed, scenario)
    hits = 0
    for _ in range(kills):
        before = _checkpoint(out)
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _checkpoint(out) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(*span_s))
        if proc.poll() is not None:
            proc.communicate()
            if proc.returncode != 0 or _finished(out):
                break
        else:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            hits += 1
        if (out / "state.db").exists():
            args = ["run", "--resume", str(out), "-q"]
    last = subprocess.run(_cli(*args), capture_output=True)
    if last.returncode != 0:
        raise RuntimeError(last.stderr.decode()[-2000:])
    return hits


def _checkpoint(out: Path) -> float | None:
    """The simulated time of the run's last checkpoint (None: none yet)."""
    if not (out / "state.db").exists():
        return None
    try:
        with sqlite3.connect(out / "state.db", timeout=5) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()
    except sqlite3.Error:
        return None
    return float(json.loads(row[0])["sim_now"]) if row else None


def _finished(out: Path) -> bool:
    with sqlite3.connect(out / "state.db") as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'finished'").fetchone()
    return bool(row and json.loads(row[0]))


@dataclass(frozen=True)
class Figures:
    """What the target holds after a run, and what the run's files say about it.

    Attributes:
        target_users: accounts on the target; ``lost``: users ``state.db`` says joined
            that the target lacks; ``duplicated``: simulated users twice on the target.
        posts, views: rows in ``posts`` and the sum of their ``view_count``.
        forgotten: posts no user's memory holds; ``posts_resent``: posts dated before
            an earlier post of the same author.
        actions, resent: lines of ``actions.jsonl``, and those dated before an earlier
            action of the same user (all counts).
    """

    target_users: int
    lost: int
    duplicated: int
    posts: int
    views: int
    forgotten: int
    posts_resent: int
    actions: int
    resent: int


def figures(out: Path) -> Figures:
    """Measure a finished run directory (see the module docstring)."""
    with sqlite3.connect(out / "demo.db") as demo:
        remote = dict(demo.execute("SELECT id, username FROM users").fetchall())
        posts = demo.execute("SELECT id FROM posts").fetchall()
        written = demo.execute("SELECT author_id, created_at FROM posts ORDER BY id").fetchall()
        views = int(demo.execute("SELECT COALESCE(SUM(view_count), 0) FROM posts").fetchone()[0])
    with sqlite3.connect(out / "state.db") as state:
        saved = [json.loads(row[0]) for row in state.execute("SELECT data FROM users")]
    joined = [u for u in saved if u.get("joined")]
    remembered: set[int] = set()
    for user in saved:
        own = ((user.get("memory") or {}).get("memory") or {}).get("memory.own_posts") or {}
        remembered.update(int(item["id"]) for item in own.get("items", []))
    remote_ids = [((u.get("memory") or {}).get("remote_id")) for u in joined]
    lost = sum(1 for rid in remote_ids if rid not in remote)
    names = [name.rsplit(".", 1)[0] for name in remote.values()]
    actions, resent = _actions(out / "actions.jsonl")
    return Figures(
        target_users=len(remote),
        lost=lost,
        duplicated=len(names) - len(set(names)),
        posts=len(posts),
        views=views,
        forgotten=sum(1 for (pid,) in posts if pid not in remembered),
        posts_resent=_back_in_time(written),
        actions=actions,
        resent=resent,
    )


def _back_in_time(rows: list[tuple[int, str]]) -> int:
    """Posts (in the target's id order) dated before an earlier post of the same author:
    a user's posts come one after another, so only a re-sent stretch goes back."""
    latest: dict[int, float] = {}
    count = 0
    for author, created in rows:
        when = datetime.fromisoformat(created).timestamp()
        if when < latest.get(author, -1e300):
            count += 1
        latest[author] = max(when, latest.get(author, -1e300))
    return count


def _actions(path: Path) -> tuple[int, int]:
    latest: dict[int, float] = {}
    count = resent = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record: dict[str, Any] = json.loads(line)
            count += 1
            user, sim_ts = int(record["user_id"]), float(record["sim_ts"])
            if sim_ts < latest.get(user, -1e300):
                resent += 1
            latest[user] = max(sim_ts, latest.get(user, -1e300))
    return count, resent


def _pct(value: int, base: int) -> str:
    return f"{100.0 * (value - base) / base:+.2f}%" if base else "n/a"


def main() -> None:
    """Run both, print the comparison, write ``bench/results/crash_resume.json``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine_info, print_table, write_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--duration", default="4d")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--min-s", type=float, default=0.0)
    parser.add_argument("--max-s", type=float, default=1.5)
    parser.add_argument("--dir", default="bench/results/crash_resume")
    opts = parser.parse_args()
    root = Path(opts.dir)
    if root.exists():
        subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    straight_run(root / "straight", opts.users, opts.duration, opts.seed)
    hits = crash_series(
        root / "crashed", opts.users, opts.duration, opts.seed, opts.kills,
        (opts.min_s, opts.max_s), random.Random(opts.seed),
    )  # fmt: skip
    a, b = figures(root / "straight"), figures(root / "crashed")
    rows = [
        (name, getattr(a, name), getattr(b, name), _pct(getattr(b, name), getattr(a, name)))
        for name in Figures.__dataclass_fields__
    ]
    print_table(
        ["figure", "uninterrupted", f"{hits} SIGKILLs + resumes", "difference"], rows,
        title=f"{opts.users} users, {opts.duration} at --speed max, seed {opts.seed}",
    )  # fmt: skip
    write_results(
        "crash_resume",
        {"machine": machine_info(), "kills": hits, "straight": a.__dict__, "crashed": b.__dict__},
    )


if __name__ == "__main__":
    main()
