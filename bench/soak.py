"""Soak: does a long run's memory stay flat?

Runs ``--users`` users (default 10,000) for ``--days`` simulated days (default 7)
at ``--speed max`` against the in-process demo API (file-backed, as ``sim-engine
run --target inprocess`` does), with the run's real sinks (JSONL files, metrics,
daily metrics) and crash-safe state, and samples the process's resident memory
(RSS) at the end of every simulated day. Memory after warm-up (end of day 1) is
compared with memory at the end: the goal is less than 10 % growth.

    python bench/soak.py                 # 10,000 users, 7 days (several minutes)
    python bench/soak.py --users 2000 --days 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from sim_engine.demo import create_app
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.simulation import Simulation
from sim_engine.engine.store import SqliteStore
from sim_engine.model.records import DaySnapshot, Record
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.targets import bind_target
from sim_engine.sinks import JsonlSink
from sim_engine.sinks.metrics import DailyMetrics, MetricsCollector
from sim_engine.targets.inprocess import AsgiTransport

START_S = 1_772_409_600.0  # 2026-03-02T00:00:00Z, a Monday


class RssSampler:
    """A sink that notes RSS (MB), users and actions at every day's end."""

    def __init__(self, sim_actions: Any) -> None:
        self.samples: list[dict[str, float]] = []
        self._proc = psutil.Process()
        self._actions = sim_actions
        self._started = time.perf_counter()

    def emit(self, record: Record) -> None:
        if isinstance(record, DaySnapshot):
            self.samples.append(
                {
                    "day": len(self.samples) + 1,
                    "rss_mb": self._proc.memory_info().rss / 1e6,
                    "users": record.total_users,
                    "actions": self._actions(),
                    "wall_s": time.perf_counter() - self._started,
                }
            )

    def close(self) -> None:
        pass


async def soak(users: int, days: int, out: Path) -> list[dict[str, float]]:
    scenario = default_scenario().with_overrides(
        **{"population.initial": users, "population.max": users * 2, "seed": 7}
    )
    target = bind_target(scenario, AsgiTransport(create_app(str(out / "demo.db"))))
    clock = FastForwardClock(START_S)
    store = SqliteStore(out / "state.db", create=True)
    holder: dict[str, Simulation] = {}
    sampler = RssSampler(lambda: holder["sim"].statistics().actions)
    sinks = [
        JsonlSink(out),
        MetricsCollector(START_S),
        DailyMetrics(scenario.lifecycle.history_days),
        sampler,
    ]
    sim = Simulation(scenario, target, clock, sinks, duration_s=days * 86400.0, store=store)
    holder["sim"] = sim

    async def checkpoints() -> None:
        while True:
            await asyncio.sleep(scenario.state.checkpoint_every_s)
            sim.checkpoint()

    task = asyncio.ensure_future(checkpoints())
    try:
        await sim.run()
    finally:
        task.cancel()
        for sink in sinks:
            sink.close()
        await target.aclose()
        store.close()
    return sampler.samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sim-soak-") as tmp:
        samples = asyncio.run(soak(args.users, args.days, Path(tmp)))
    print(f"soak: {args.users:,} users, {args.days} simulated days, in-process demo API, max speed")
    print(f"{'day':>3}  {'RSS MB':>8}  {'users':>7}  {'actions':>10}  {'wall s':>7}")
    for row in samples:
        print(
            f"{row['day']:>3.0f}  {row['rss_mb']:>8.1f}  {row['users']:>7.0f}  "
            f"{row['actions']:>10,.0f}  {row['wall_s']:>7.1f}"
        )
    warm, end = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    growth = 100.0 * (end - warm) / warm
    verdict = "MET" if growth < 10.0 else "NOT MET"
    print(
        f"RSS after warm-up (day 1) {warm:.1f} MB, at the end {end:.1f} MB: "
        f"growth {growth:+.1f}% (goal < 10%: {verdict})"
    )
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "soak.json").write_text(
        json.dumps(
            {"users": args.users, "days": args.days, "samples": samples, "growth_percent": growth},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
