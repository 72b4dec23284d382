"""Fast-forward: simulated actions per wall second at ``--speed max``.

Three figures, measured in the same run on the same core:

* ``inprocess`` -- the engine with the real demo app in-process:
  ``DeclarativeTarget(AsgiTransport(create_app()), social_api())`` (FastAPI + SQLite, no
  sockets), 1,000 users over 1 simulated day by default. Sign-ups and log-ins
  count as actions.
* ``planning`` -- the same engine with a ``MockTarget`` whose synchronous
  handler answers at once (feed pages with a few post ids so reads happen, new
  ids for created posts): the cost of planning, binding, dispatching and
  recording alone; 10,000 users over 1 simulated day by default.
* ``heap-loop`` -- for context, a bare Python heap loop (pop the next due user,
  pick an action at random, push the user's next time): the ceiling of a
  one-event-at-a-time Python scheduler (DESIGN.md: about 220,000 events/s here).

Both engine runs use the default scenario (its time zones, personas and
lifecycle), a ``FastForwardClock`` starting on Monday 2024-01-08 00:00 UTC, a
counting sink (no files written), and uvloop as the CLI does.

Run: ``python bench/fastforward.py``.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import random
import sys
import time
from datetime import datetime, timezone
from typing import Any

from _common import (
    CountingSink,
    bench_scenario,
    fmt_int,
    instant_handler,
    print_table,
    run_async,
    write_results,
)

START_S = datetime(2024, 1, 8, 0, 0, tzinfo=timezone.utc).timestamp()  # a Monday
DAY_S = 86400.0
ACTIONS = ("browse_feed", "read_post", "create_post", "update_post", "delete_post")


async def _run_engine(target: Any, users: int, days: float) -> dict[str, Any]:
    from sim_engine.engine.clock import FastForwardClock
    from sim_engine.engine.simulation import Simulation

    scenario = bench_scenario(users, timezone=None)
    clock = FastForwardClock(START_S)
    sink = CountingSink()
    sim = Simulation(scenario, target, clock, [sink], duration_s=days * DAY_S)
    gc.collect()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    stats = await sim.run()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    await target.aclose()
    return {
        "users": users,
        "sim_days": days,
        "actions": stats.actions,
        "failed": stats.failed,
        "signed_up": stats.signed_up,
        "wall_s": wall,
        "cpu_s": cpu,
        "actions_per_s": stats.actions / wall if wall else 0.0,
        "sim_days_per_wall_hour": days * 3600.0 / wall if wall else 0.0,
        "by_action": dict(sorted(sink.by_action.items())),
        "other_records": dict(sink.other),
        "failures": dict(sink.failures),
    }


def bench_inprocess(users: int, days: float, use_uvloop: bool) -> dict[str, Any]:
    """The engine against the demo app called in-process (no sockets)."""
    from sim_engine.demo import create_app
    from sim_engine.model.builtin import social_api
    from sim_engine.targets.declarative import DeclarativeTarget
    from sim_engine.targets.inprocess import AsgiTransport

    target = DeclarativeTarget(AsgiTransport(create_app()), social_api())
    return run_async(_run_engine(target, users, days), use_uvloop)


def bench_planning(users: int, days: float, use_uvloop: bool) -> dict[str, Any]:
    """The engine against a target that answers instantly: planning and bookkeeping only."""
    from sim_engine.targets.mock import MockTarget

    return run_async(_run_engine(MockTarget(instant_handler()), users, days), use_uvloop)


def bench_heap_loop(users: int, events: int, seed: int = 1) -> dict[str, Any]:
    """A bare heap loop: pop the next due user, pick an action, push its next time."""
    rng = random.Random(seed)
    heap = [(rng.random() * DAY_S, i, i) for i in range(users)]
    heapq.heapify(heap)
    counts = dict.fromkeys(ACTIONS, 0)
    choice, expovariate = rng.choice, rng.expovariate
    pop, push = heapq.heappop, heapq.heappush
    seq = users
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for _ in range(events):
        t, _s, user = pop(heap)
        counts[choice(ACTIONS)] += 1
        seq += 1
        push(heap, (t + expovariate(1 / 600.0), seq, user))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return {
        "users": users,
        "actions": events,
        "wall_s": wall,
        "cpu_s": cpu,
        "actions_per_s": events / wall if wall else 0.0,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inprocess-users", type=int, default=1_000)
    parser.add_argument("--inprocess-days", type=float, default=1.0)
    parser.add_argument("--planning-users", type=int, default=10_000)
    parser.add_argument("--planning-days", type=float, default=1.0)
    parser.add_argument("--heap-users", type=int, default=10_000, help="entries in the bare heap")
    parser.add_argument("--heap-events", type=int, default=1_000_000, help="events to pop")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: inprocess, planning, heap-loop"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    uv = not args.no_uvloop
    results: dict[str, dict[str, Any]] = {}
    if "heap-loop" not in skip:
        print(f"heap-loop: {fmt_int(args.heap_events)} events ...", flush=True)
        results["heap-loop"] = bench_heap_loop(args.heap_users, args.heap_events)
    if "planning" not in skip:
        print(
            f"planning: {fmt_int(args.planning_users)} users, "
            f"{args.planning_days:g} simulated day(s), MockTarget ...",
            flush=True,
        )
        results["planning"] = bench_planning(args.planning_users, args.planning_days, uv)
    if "inprocess" not in skip:
        print(
            f"inprocess: {fmt_int(args.inprocess_users)} users, "
            f"{args.inprocess_days:g} simulated day(s), demo app in-process ...",
            flush=True,
        )
        results["inprocess"] = bench_inprocess(args.inprocess_users, args.inprocess_days, uv)

    heap_rate = results.get("heap-loop", {}).get("actions_per_s")
    planning_rate = results.get("planning", {}).get("actions_per_s")
    rows = []
    for name in ("inprocess", "planning", "heap-loop"):
        if name not in results:
            continue
        r = results[name]
        rate = r["actions_per_s"]
        rows.append(
            [
                name,
                fmt_int(r["users"]),
                f"{r['sim_days']:g}" if "sim_days" in r else "-",
                fmt_int(r["actions"]),
                r.get("failed", "-"),
                f"{r['wall_s']:.2f}",
                f"{100.0 * r['cpu_s'] / r['wall_s']:.0f}%" if r["wall_s"] else "-",
                fmt_int(rate),
                f"{rate / planning_rate:.3f}" if planning_rate else "-",
                f"{rate / heap_rate:.3f}" if heap_rate else "-",
            ]
        )
        r["ratio_vs_planning"] = rate / planning_rate if planning_rate else None
        r["ratio_vs_heap_loop"] = rate / heap_rate if heap_rate else None
    print_table(
        [
            "run",
            "users",
            "sim days",
            "actions",
            "failed",
            "wall s",
            "CPU",
            "actions/s",
            "vs planning",
            "vs heap-loop",
        ],
        rows,
        title="Fast-forward (--speed max): simulated actions per wall second",
    )
    for name in ("inprocess", "planning"):
        if name in results:
            r = results[name]
            mix = ", ".join(f"{k} {v:,}" for k, v in r["by_action"].items())
            print(f"{name}: {r['sim_days_per_wall_hour']:,.0f} simulated days per wall hour; {mix}")
            for what, count in sorted(r["failures"].items(), key=lambda kv: -kv[1])[:5]:
                print(f"  failed x{count}: {what}")
    write_results(
        "fastforward",
        {
            "settings": {
                "start": "2024-01-08T00:00:00+00:00",
                "uvloop": uv,
                "scenario": "default (time zones, personas, lifecycle), no arrivals",
            },
            "runs": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
