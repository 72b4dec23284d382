"""Timeouts at ``--speed max``: simulated actions per wall second with and without them.

A ``MockTarget`` answers in 2 ms (a fast API); in the faulty run every tenth request
instead waits ``--timeout`` wall seconds and fails (a request timeout). Both runs use
the same scenario (``--users`` users in UTC, ``--hours`` simulated hours, concurrency
64) on a ``FastForwardClock``. The figure is the faulty run's action rate as a share
of the fault-free one (issue 13's goal: at least 50 %).

Before the engine stopped waiting for stalled requests (``engine/stall.py``), the causality
lookahead waited for the oldest in-flight request, so every timeout stopped every user
for its whole duration.

Run: ``python bench/stall.py`` (about five minutes: the fixed-threshold run is the
slow one). Measured 2026-11-26 on the 2-core machine (300 users, 24 simulated hours,
2 s timeouts): with the adaptive threshold 62 % of the no-fault rate, with the fixed
0.5 s one 5 %, and 1 % when the lookahead waited for every request. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from datetime import datetime, timezone
from typing import Any

from _common import (
    CountingSink,
    bench_scenario,
    instant_handler,
    print_table,
    run_async,
    write_results,
)
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.simulation import Simulation
from sim_engine.engine.stall import StallMeter
from sim_engine.model.records import Outcome
from sim_engine.targets.mock import MockTarget

START = datetime(2024, 1, 8, 8, 0, tzinfo=timezone.utc).timestamp()


def _handler(every: int, timeout_s: float) -> Any:
    answer = instant_handler()
    count = itertools.count(1)

    async def handle(request: Any) -> Outcome:
        if every and request.action not in ("sign_up", "log_in") and next(count) % every == 0:
            await asyncio.sleep(timeout_s)
            return Outcome(0, False, timeout_s * 1000, error="timeout")
        await asyncio.sleep(0.002)
        result: Outcome = answer(request)
        return result

    return handle


async def _run(
    users: int, hours: float, every: int, timeout_s: float, adaptive: bool = True
) -> dict[str, Any]:
    scenario = bench_scenario(users, **{"target.concurrency": 64, "lifecycle.enabled": False})
    sink = CountingSink()
    sim = Simulation(
        scenario,
        MockTarget(_handler(every, timeout_s)),
        FastForwardClock(START),
        [sink],
        duration_s=hours * 3600,
        stall=StallMeter.adaptive() if adaptive else StallMeter(),
    )
    started = time.perf_counter()
    stats = await sim.run()
    wall_s = time.perf_counter() - started
    return {"actions": stats.actions, "wall_s": wall_s, "rate": stats.actions / wall_s}


def _row(name: str, run: dict[str, Any], share: float) -> list[str]:
    return [
        name,
        f"{run['actions']:,}",
        f"{run['wall_s']:.2f}",
        f"{run['rate']:,.0f}",
        f"{share:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--timeout", type=float, default=2.0, help="wall seconds a timeout takes")
    args = parser.parse_args()
    clean = run_async(_run(args.users, args.hours, 0, args.timeout))
    fixed = run_async(_run(args.users, args.hours, 10, args.timeout, adaptive=False))
    faulty = run_async(_run(args.users, args.hours, 10, args.timeout))
    share = faulty["rate"] / clean["rate"]
    rows = [
        _row("no faults", clean, 1.0),
        _row("10% timeouts, fixed 0.5 s threshold", fixed, fixed["rate"] / clean["rate"]),
        _row("10% timeouts, adaptive threshold", faulty, share),
    ]
    print_table(["run", "actions", "wall s", "actions/s", "vs no faults"], rows,
                f"--speed max, {args.users} users, {args.hours:g} simulated hours, "
                f"timeouts of {args.timeout:g} s")  # fmt: skip
    print(f"goal >= 50% of the no-fault rate: {'met' if share >= 0.5 else 'NOT MET'} ({share:.0%})")
    write_results("stall", {"clean": clean, "faulty": faulty, "share": share, "args": vars(args)})


if __name__ == "__main__":
    main()
