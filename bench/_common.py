"""Helpers shared by the benchmark scripts: tables, JSON results, event loops, machine facts.

Not a benchmark itself. The scripts import it as a sibling module (``python
bench/NAME.py`` puts ``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "RESULTS_DIR",
    "CountingSink",
    "bench_scenario",
    "fmt_int",
    "instant_handler",
    "machine_info",
    "print_table",
    "run_async",
    "write_results",
]

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where every benchmark writes ``NAME.json`` (git-ignored)."""


def fmt_int(value: float) -> str:
    """Format a count with thousands separators."""
    return f"{value:,.0f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """Print a plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    if title:
        print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def machine_info() -> dict[str, Any]:
    """Return the facts a reader needs to compare figures across machines."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for text in fh:
                if text.startswith("model name"):
                    info["cpu_model"] = text.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` (with machine facts) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), **data}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {path}")
    return path


class CountingSink:
    """Counts records and remembers the latest simulated time seen (a near-free sink)."""

    def __init__(self) -> None:
        self.actions = 0
        self.users = 0
        self.by_action: dict[str, int] = {}
        self.other: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.last_sim_ts = float("-inf")

    def emit(self, record: Any) -> None:
        """Count one record (actions by name, joining users, other kinds by kind)."""
        kind = getattr(record, "kind", type(record).__name__)
        if kind == "action":
            self.actions += 1
            self.by_action[record.action] = self.by_action.get(record.action, 0) + 1
            self.last_sim_ts = max(self.last_sim_ts, record.sim_ts)
            if not record.ok:
                key = f"{record.action} {record.status}: {(record.error or '')[:60]}"
                self.failures[key] = self.failures.get(key, 0) + 1
        elif kind == "user":
            self.users += 1
        else:
            self.other[kind] = self.other.get(kind, 0) + 1

    def close(self) -> None:
        """Nothing to flush."""


def instant_handler(feed_size: int = 5) -> Callable[[Any], Any]:
    """Return a synchronous MockTarget handler that answers every social action at once.

    Sign-up returns a remote id, log-in a token, ``browse_feed`` a page of
    ``feed_size`` posts (so ``read_post`` happens), ``create_post`` a new post id.
    """
    from sim_engine.model.records import Outcome

    counter = itertools.count(1_000_000)
    feed = tuple((i, (i % 50) + 1) for i in range(1, feed_size + 1))

    def handler(request: Any) -> Outcome:
        action = request.action
        if action == "browse_feed":
            return Outcome(200, True, 0.0, feed_ids=feed)
        if action == "read_post":
            return Outcome(200, True, 0.0, post_id=request.post_id, view_count=1)
        if action == "create_post":
            return Outcome(201, True, 0.0, post_id=next(counter))
        if action == "update_post":
            return Outcome(200, True, 0.0, post_id=request.post_id)
        if action == "delete_post":
            return Outcome(204, True, 0.0, post_id=request.post_id)
        if action == "sign_up":
            return Outcome(201, True, 0.0, remote_id=request.user_id)
        if action == "log_in":
            return Outcome(200, True, 0.0, token=f"token-{request.user_id}")
        return Outcome(400, False, 0.0, error=f"unknown action {action}")

    return handler


def bench_scenario(users: int, timezone: str | None = "UTC", **overrides: Any) -> Any:
    """The default scenario with ``users`` users created at the start and no later arrivals.

    Args:
        users: initial (and maximum) population.
        timezone: put everyone in this zone (None: keep the default scenario's mix).
        overrides: further dotted-path overrides (``Scenario.with_overrides``).
    """
    from sim_engine.model.scenario import default_scenario

    changes: dict[str, Any] = {
        "population.max": max(1, users),
        "population.initial": users,
        "population.signups_per_day": 0,
    }
    if timezone is not None:
        changes["population.timezones"] = {timezone: 1.0}
    changes.update(overrides)
    return default_scenario().with_overrides(**changes)


def run_async(coro: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """Run ``coro`` to completion, on uvloop when asked and available (as sim-engine does)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            use_uvloop = False
        else:
            if sys.version_info >= (3, 11):
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    return runner.run(coro)
            uvloop.install()
    return asyncio.run(coro)
