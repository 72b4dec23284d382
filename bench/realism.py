"""Realism of the default scenario: published facts about real users, goal vs measured.

Plans the default scenario with ``generate``'s vectorised planner (in memory, no
files): 10,000 initial users (plus the scenario's Poisson sign-ups), 60 simulated
days from Monday 2026-01-05, seed 7, every user in one time zone
(America/New_York) so the diurnal figure is a single zone's. Then measures the
events (``sign_up``/``log_in`` excluded; writes and reads are ``sim-engine realism``'s
default lists: posts, comments, reactions and follows are writes, the feed, posts, the
trending page and the followers page reads) with
:func:`sim_engine.realism.facts`, the estimators of ``sim-engine realism``
(docs/realism.md), and prints each fact of issue 11 item 2 with its goal
(DESIGN.md "Realism: published facts about real users"):

* trough / peak of hourly activity (local time) <= 0.1;
* median per-user burstiness B = (sigma - mu) / (sigma + mu) of inter-event times
  within 0.3-0.6 (Goh & Barabasi 2008);
* Gini of writes per user >= 0.7 and >= 60 % of users who never write (90-9-1);
* sessions split at 30 minutes of inactivity: mean 2-4 actions, 40-70 % single-action;
* cohort D30 retention 5-15 %, decaying like a power law (fit over D1..D30: exponent
  and R^2 shown; goal R^2 >= 0.9);
* reads per write >= 20; weekend / weekday activity per day within 0.5-0.85.

Run: ``python bench/realism.py`` (under a minute on 2 cores); ``--users N --days D
--seed S`` for other sizes. Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from _common import print_table, write_results
from sim_engine.model.plan.events import ChunkPlanner, PlanModel
from sim_engine.model.plan.population import plan_population
from sim_engine.model.scenario import Scenario, default_scenario
from sim_engine.realism import RealismFacts, facts
from sim_engine.realism.logfacts import DEFAULT_READ_ACTIONS, DEFAULT_WRITE_ACTIONS

START = date(2026, 1, 5)
ZONE = "America/New_York"
READS = DEFAULT_READ_ACTIONS  # browse_feed, read_post, browse_trending, check_followers
WRITES = DEFAULT_WRITE_ACTIONS  # posts, comments, reactions, follows (``sim-engine realism``'s)
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class Log:
    """Planned events: user index, epoch seconds, UTC offsets (s), action names."""

    user: I64
    ts: F64
    offset: npt.NDArray[np.int32]
    action: npt.NDArray[np.str_]
    end_s: float


def scenario(seed: int) -> Scenario:
    """The default scenario with every user in one time zone."""
    return default_scenario().with_overrides(**{"population.timezones": {ZONE: 1.0}, "seed": seed})


def plan(users: int, days: int, seed: int) -> Log:
    """Plan the default scenario in memory; return its events (sign-up and log-in dropped)."""
    sc = scenario(seed)
    pop = plan_population(sc, users, days, START, seed)
    model = PlanModel(sc)
    planner = ChunkPlanner(model, pop.slice(0, pop.size))
    plans = [planner.plan_day(d) for d in range(days)]
    names = np.asarray(model.names)[np.concatenate([p.action for p in plans])]
    keep = ~np.isin(names, ("sign_up", "log_in"))
    return Log(
        user=np.concatenate([p.user for p in plans])[keep],
        ts=np.concatenate([p.ts for p in plans])[keep],
        offset=np.concatenate([p.offset for p in plans])[keep],
        action=names[keep],
        end_s=float(pop.calendar.midnights[:, -1].max()),
    )


def measure(log: Log) -> RealismFacts:
    """The log's stylized facts (writes and reads from the demo API's action names)."""
    return facts(
        log.user,
        log.ts,
        offset_s=log.offset.astype(np.float64),
        is_write=np.isin(log.action, WRITES),
        is_read=np.isin(log.action, READS),
        span_end_s=log.end_s,
    )


# fact -> (label, low, high); None bounds are shown without a goal
GOALS: dict[str, tuple[str, float | None, float | None]] = {
    "trough_peak": ("trough/peak of hourly activity", None, 0.1),
    "burstiness_median": ("burstiness B, median", 0.3, 0.6),
    "gini_writes": ("Gini of writes per user", 0.7, None),
    "never_write_share": ("users who never write", 0.6, None),
    "session_mean_events": ("actions per 30-min session", 2.0, 4.0),
    "session_single_share": ("single-action sessions", 0.4, 0.7),
    "d1": ("D1 retention", None, None),
    "d7": ("D7 retention", None, None),
    "d30": ("D30 retention", 0.05, 0.15),
    "retention_exponent": ("retention power-law exponent", None, None),
    "retention_r2": ("retention power-law fit R^2", 0.9, None),
    "reads_per_write": ("reads per write", 20.0, None),
    "weekend_weekday": ("weekend/weekday per day", 0.5, 0.85),
}


def rows(f: RealismFacts) -> list[tuple[str, str, str, str]]:
    """Table rows: fact, goal, measured, met (``NO`` when missed or not measurable)."""
    out = []
    for key, (label, lo, hi) in GOALS.items():
        value = getattr(f, key)
        if lo is None and hi is None:
            goal, met = "", ""
        else:
            goal = (
                f"{lo:g}-{hi:g}"
                if lo is not None and hi is not None
                else (f">= {lo:g}" if lo is not None else f"<= {hi:g}")
            )
            ok = value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)
            met = "yes" if ok else "NO"
        out.append((label, goal, "n/a" if value is None else f"{value:.3f}", met))
    return out


def main(argv: list[str] | None = None) -> int:
    """Plan, measure, print goal vs measured; exit 1 if a goal is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    log = plan(args.users, args.days, args.seed)
    planned = time.perf_counter() - t0
    f = measure(log)
    table = rows(f)
    print_table(
        ("fact", "goal", "measured", "met"),
        table,
        f"default scenario, {args.users:,} users, {args.days} days, one zone, seed "
        f"{args.seed}: {f.events:,} events of {f.users:,} users, planned in {planned:.1f} s, "
        f"measured in {time.perf_counter() - t0 - planned:.1f} s",
    )
    write_results("realism", {"args": vars(args), "facts": f.to_dict()})
    return 1 if any(r[3] == "NO" for r in table) else 0


if __name__ == "__main__":
    sys.exit(main())
