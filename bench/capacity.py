"""Capacity: memory per simulated user, and CPU while most users sleep.

Three measurements in one process, all on sim-engine's public API
(``Simulation``, ``add_users``, ``run``, ``stop``) with an instant
``MockTarget``, one time zone (UTC) and a simulated start on a Wednesday at
02:00 local, so everyone is asleep:

1. **Memory** -- resident memory (psutil RSS, tracemalloc off) before and after
   ``Simulation.add_users(N)`` (default 100,000 users): bytes per user.
   Goal: at most 2 KB per user. A second, smaller pass under ``tracemalloc``
   shows where the Python-allocated bytes go.
2. **Idle CPU** -- the simulation runs on a ``ScaledClock`` at speed 1 (real
   time) for a few wall seconds during the night, for 1,000 users and for N
   users: process CPU seconds and actions taken. Goal: idle CPU proportional
   to actions, not to users (both tiny, about equal).
3. **Waking up** -- speed 3600 (a simulated hour per wall second) from 02:00
   for a few wall seconds, so the population wakes at 06:00: CPU seconds per
   1,000 actions, and how far behind the wall clock the engine fell.

The default scenario's Night Owl persona lives its routine 6 hours later (it is
awake at 02:00), so its share is set to 0 here: "everyone asleep" then holds.

Run: ``python bench/capacity.py`` (needs psutil: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
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

try:
    import psutil
except ImportError:  # pragma: no cover - checked in main()
    psutil = None

GOAL_BYTES_PER_USER = 2048
# 02:00 UTC on Wednesday 2024-01-10: a weekday night for every user (all in UTC).
NIGHT_START_S = datetime(2024, 1, 10, 2, 0, tzinfo=timezone.utc).timestamp()


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _build(users: int, speed: float) -> tuple[Any, Any, CountingSink]:
    """A simulation of ``users`` sleeping users on a paused ScaledClock (not yet populated)."""
    from sim_engine.engine.clock import ScaledClock
    from sim_engine.engine.simulation import Simulation
    from sim_engine.targets.mock import MockTarget

    scenario = bench_scenario(
        users,
        **{"population.initial": 0, "population.personas": {"night_owl": 0.0}},
    )
    clock = ScaledClock(NIGHT_START_S, speed)
    clock.pause()  # simulated time stands still while the users are created
    sink = CountingSink()
    sim = Simulation(scenario, MockTarget(instant_handler()), clock, [sink])
    return sim, clock, sink


def measure_memory(users: int) -> tuple[dict[str, Any], tuple[Any, Any, CountingSink]]:
    """RSS before/after creating ``users`` users; returns the figures and the simulation."""
    built = _build(users, 1.0)
    sim = built[0]
    rss0 = _rss()
    started = time.perf_counter()
    sim.add_users(users)
    create_s = time.perf_counter() - started
    rss1 = _rss()
    made = sim.statistics().users
    stats = sim.statistics()
    result = {
        "users": made,
        "rss_before_mb": rss0 / 2**20,
        "rss_after_mb": rss1 / 2**20,
        "rss_delta_mb": (rss1 - rss0) / 2**20,
        "bytes_per_user": (rss1 - rss0) / made if made else 0.0,
        "create_s": create_s,
        "users_per_s": made / create_s if create_s else 0.0,
        "heap_entries": stats.scheduled,
        "goal_bytes_per_user": GOAL_BYTES_PER_USER,
    }
    result["goal_met"] = result["bytes_per_user"] <= GOAL_BYTES_PER_USER
    return result, built


def measure_tracemalloc(users: int, top: int = 6) -> dict[str, Any]:
    """Python-allocated bytes per user under tracemalloc, with the top allocation sites."""
    sim, _clock, _sink = _build(users, 1.0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sim.add_users(users)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    diff = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in diff)
    sites = [
        {
            "where": f"{d.traceback[0].filename.split('/src/')[-1]}:{d.traceback[0].lineno}",
            "bytes_per_user": d.size_diff / users,
            "count_per_user": d.count_diff / users,
        }
        for d in sorted(diff, key=lambda d: -d.size_diff)[:top]
    ]
    del sim
    return {"users": users, "bytes_per_user": total / users, "top_sites": sites}


async def _run_for(sim: Any, clock: Any, sink: CountingSink, wall_s: float) -> dict[str, Any]:
    """Resume the clock, run for ``wall_s`` wall seconds, stop; CPU and actions taken."""

    at_stop: dict[str, float] = {}

    async def stopper() -> None:
        await asyncio.sleep(wall_s)
        at_stop["cpu"] = time.process_time()
        at_stop["wall"] = time.perf_counter()
        at_stop["sim"] = clock.now()
        sim.stop()

    clock.resume()
    sim_start = clock.now()
    stop_task = asyncio.create_task(stopper())
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    stats = await sim.run()
    wall_end = time.perf_counter()
    cpu_end = time.process_time()
    await stop_task
    stop_task.result()
    # Until stop(): the run itself. After: draining in-flight actions and end-of-run
    # work (e.g. a final population snapshot), reported apart.
    cpu = at_stop["cpu"] - cpu0
    wall = at_stop["wall"] - wall0
    sim_now = at_stop["sim"]
    lag = sim_now - sink.last_sim_ts if sink.actions else 0.0
    return {
        "users": stats.users,
        "speed": clock.speed,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_pct": 100.0 * cpu / wall if wall else 0.0,
        "stop_cpu_s": cpu_end - at_stop["cpu"],
        "stop_wall_s": wall_end - at_stop["wall"],
        "actions": stats.actions,
        "signed_up": stats.signed_up,
        "failed": stats.failed,
        "sim_hours": (sim_now - sim_start) / 3600.0,
        "cpu_s_per_1000_actions": 1000.0 * cpu / stats.actions if stats.actions else None,
        "lag_sim_s": lag,
        "by_action": dict(sink.by_action),
    }


def run_phase(users: int, speed: float, wall_s: float, use_uvloop: bool) -> dict[str, Any]:
    """Build a fresh simulation of ``users`` users and run it at ``speed`` for ``wall_s``."""
    sim, clock, sink = _build(users, speed)
    sim.add_users(users)
    gc.collect()
    return run_async(_run_for(sim, clock, sink, wall_s), use_uvloop)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="users in the big population")
    parser.add_argument("--small", type=int, default=1_000, help="users in the small population")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="wall s of each idle run")
    parser.add_argument(
        "--wake-users",
        default="1000,100000",
        help="comma-separated population sizes for the speed-3600 wake-up runs",
    )
    parser.add_argument("--wake-seconds", type=float, default=8.0, help="wall s of each wake run")
    parser.add_argument("--wake-speed", type=float, default=3600.0, help="speed of the wake runs")
    parser.add_argument(
        "--tracemalloc-users",
        type=int,
        default=10_000,
        help="users in the tracemalloc breakdown pass (0: skip)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if psutil is None:
        print("psutil is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    uv = not args.no_uvloop
    wake_sizes = [int(x) for x in args.wake_users.split(",") if x.strip()]

    # 1. memory (this simulation is reused for the big idle run)
    print(f"creating {fmt_int(args.users)} users ...", flush=True)
    memory, (big_sim, big_clock, big_sink) = measure_memory(args.users)
    print_table(
        ["users", "RSS before MB", "RSS after MB", "delta MB", "bytes/user", "create s", "users/s"],
        [
            [
                fmt_int(memory["users"]),
                f"{memory['rss_before_mb']:.1f}",
                f"{memory['rss_after_mb']:.1f}",
                f"{memory['rss_delta_mb']:.1f}",
                fmt_int(memory["bytes_per_user"]),
                f"{memory['create_s']:.2f}",
                fmt_int(memory["users_per_s"]),
            ]
        ],
        title="Memory per user (RSS, tracemalloc off)",
    )
    print(
        f"goal <= {GOAL_BYTES_PER_USER} bytes/user: "
        f"{'MET' if memory['goal_met'] else 'NOT MET'} ({memory['bytes_per_user']:,.0f})"
    )

    # 2. idle CPU at speed 1 during the night
    print(f"\nidle runs: speed 1, {args.idle_seconds:g} wall s from 02:00 ...", flush=True)
    idle = [run_phase(args.small, 1.0, args.idle_seconds, uv)]
    idle.append(run_async(_run_for(big_sim, big_clock, big_sink, args.idle_seconds), uv))
    del big_sim, big_clock, big_sink
    gc.collect()
    rows = [
        [
            fmt_int(r["users"]),
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.4f}",
            f"{r['cpu_pct']:.3f}%",
            r["actions"],
            f"{r['sim_hours'] * 60:.1f}",
            f"{r['stop_cpu_s']:.4f}",
        ]
        for r in idle
    ]
    print_table(
        ["users", "wall s", "CPU s", "CPU %", "actions", "sim min", "CPU s at stop"],
        rows,
        title="Idle CPU (speed 1, everyone asleep)",
    )
    extra_cpu = idle[-1]["cpu_s"] - idle[0]["cpu_s"]
    # "About equal": the big population costs under 1% of one core more than the small one.
    idle_met = all(r["actions"] == 0 for r in idle) and extra_cpu < 0.01 * args.idle_seconds
    print(
        f"goal idle CPU independent of users: {'MET' if idle_met else 'NOT MET'} "
        f"({fmt_int(idle[-1]['users'])} users cost {extra_cpu:+.4f} CPU s "
        f"vs {fmt_int(idle[0]['users'])})"
    )

    # 3. waking up at speed 3600
    wake = []
    for size in wake_sizes:
        print(
            f"\nwake run: {fmt_int(size)} users, speed {args.wake_speed:g}, "
            f"{args.wake_seconds:g} wall s from 02:00 ...",
            flush=True,
        )
        wake.append(run_phase(size, args.wake_speed, args.wake_seconds, uv))
        gc.collect()
    rows = [
        [
            fmt_int(r["users"]),
            f"{r['wall_s']:.2f}",
            f"{r['sim_hours']:.1f}",
            f"{r['cpu_s']:.2f}",
            f"{r['cpu_pct']:.0f}%",
            fmt_int(r["actions"]),
            fmt_int(r["actions"] / r["wall_s"]),
            f"{r['cpu_s_per_1000_actions']:.3f}" if r["cpu_s_per_1000_actions"] else "-",
            f"{r['lag_sim_s'] / 60:.1f}",
            f"{r['stop_cpu_s']:.2f}",
        ]
        for r in wake
    ]
    print_table(
        [
            "users",
            "wall s",
            "sim h",
            "CPU s",
            "CPU %",
            "actions",
            "actions/s",
            "CPU s/1k actions",
            "lag sim min",
            "CPU s at stop",
        ],
        rows,
        title=f"Waking up (speed {args.wake_speed:g} from 02:00; people wake at 06:00)",
    )

    # 4. where the bytes go
    traced = None
    if args.tracemalloc_users > 0:
        traced = measure_tracemalloc(args.tracemalloc_users)
        print_table(
            ["allocation site", "bytes/user", "objects/user"],
            [
                [s["where"], f"{s['bytes_per_user']:.0f}", f"{s['count_per_user']:.2f}"]
                for s in traced["top_sites"]
            ],
            title=(
                f"tracemalloc breakdown ({fmt_int(traced['users'])} users): "
                f"{traced['bytes_per_user']:,.0f} Python-allocated bytes/user"
            ),
        )

    write_results(
        "capacity",
        {
            "settings": {
                "users": args.users,
                "small": args.small,
                "idle_seconds": args.idle_seconds,
                "wake_seconds": args.wake_seconds,
                "wake_speed": args.wake_speed,
                "start": "2024-01-10T02:00:00+00:00 (all users in UTC, night owls off)",
                "uvloop": uv,
            },
            "memory": memory,
            "idle": idle,
            "idle_goal_met": idle_met,
            "wake": wake,
            "tracemalloc": traced,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
