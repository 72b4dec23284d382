"""Analytics events: how many action records per CPU second the mapper and the batch
writers turn into events, against writing the same records to ``actions.jsonl``.

Figures, measured in the same run on the same records (a recorded run's actions, 20
users in 8 time zones, repeated to ``--events``):

* ``actions.jsonl`` -- the baseline: ``JsonlSink.emit`` (what every run already does).
* ``mapper`` -- ``AnalyticsMapper.event`` alone (the default mapping).
* ``posthog-file`` / ``segment-file`` / ``mixpanel-file`` -- ``AnalyticsSink`` with the
  vendor's ``FileWriter``: mapping, shaping and writing a line.

And for ``generate --analytics``, on the events ``generate`` plans (``--users`` users
of the default scenario, three local days):

* ``per event`` -- the baseline: each planned event made an ``ActionRecord``
  (``planned_actions``), mapped by ``AnalyticsMapper.event``, written by the PostHog
  ``FileWriter`` (the run's path);
* ``columnar`` -- ``ChunkAnalytics``: the same lines built column-wise per action with
  Arrow string joins (only the UUID 5 per event is computed in Python).

Rates are per CPU second (``time.process_time``), so a busy shared machine skews
them less; the ratio column is against the baseline of the same run.

Run: ``python bench/analytics.py [--events N] [--users N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from _common import fmt_int, print_table, write_results
from sim_engine.datasets.build import Vocab
from sim_engine.model.analytics import AnalyticsMapper, AnalyticsUser
from sim_engine.model.analytics_spec import AnalyticsSpec
from sim_engine.model.plan.events import ChunkPlanner, PlanModel
from sim_engine.model.plan.population import plan_population
from sim_engine.model.records import ActionRecord
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.analytics import AnalyticsOptions
from sim_engine.runs.generate_analytics import AnalyticsJob, ChunkAnalytics, planned_actions
from sim_engine.sinks.analytics import AnalyticsSink, file_writer
from sim_engine.sinks.jsonl import JsonlSink

PERSONAS = ("lurker", "chatterbox", "night_owl", "curator")
ACTIONS = ("browse_feed", "read_post", "read_post", "create_post", "update_post", "log_in")
ZONES = ("+01:00", "-05:00", "+09:00", "+00:00", "+05:30", "-08:00", "+02:00", "+10:00")


def records(count: int) -> list[ActionRecord]:
    """``count`` successful actions of 20 users, one simulated minute apart."""
    out = []
    for i in range(count):
        uid = i % 20 + 1
        ts = 1_715_000_000.0 + 60.0 * i
        out.append(
            ActionRecord(
                f"2024-05-06T{(i // 60) % 24:02d}:{i % 60:02d}:00.000{ZONES[uid % 8]}",
                ts, uid, PERSONAS[uid % 4], "relaxing", ACTIONS[i % 6], 200, True, 2.5,
                post_id=i % 500, session_id=i // 7,
            )
        )  # fmt: skip
    return out


def timed(fn: Any, items: list[ActionRecord]) -> float:
    """Records per CPU second of ``fn`` over ``items``."""
    cpu0 = time.process_time()
    for item in items:
        fn(item)
    return len(items) / max(time.process_time() - cpu0, 1e-9)


def generated(tmp: Path, users: int) -> tuple[int, dict[str, float]]:
    """Planned events, and per CPU second: the per-event path and the columnar one."""
    scenario = default_scenario()
    pop = plan_population(scenario, users, 3, date(2026, 3, 2), 1)
    model = PlanModel(scenario)
    vocab = Vocab(scenario, model.names, pop.calendar.zones)
    planner = ChunkPlanner(model, pop)
    plans = [planner.plan_day(day) for day in range(3)]
    events = sum(plan.events for plan in plans)
    cpu0 = time.process_time()
    chunk = ChunkAnalytics(AnalyticsJob(AnalyticsOptions("posthog-file"), tmp), scenario, pop,
                           vocab, 0)  # fmt: skip
    for plan in plans:
        chunk.day(plan)
    chunk.close()
    columnar = events / max(time.process_time() - cpu0, 1e-9)
    mapper = AnalyticsMapper(scenario.analytics_mapping())
    writer = file_writer("posthog", tmp / "per-event")
    cpu0 = time.process_time()
    for plan in plans:
        for record, user in planned_actions(plan, pop, model.names, chunk.users):
            event = mapper.event(record, user)
            if event is not None:
                writer.track(event)
    writer.close()
    per_event = events / max(time.process_time() - cpu0, 1e-9)
    return events, {"per event": per_event, "columnar": columnar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="records to map")
    parser.add_argument("--users", type=int, default=5_000, help="users generate plans")
    args = parser.parse_args()
    items = records(args.events)
    users = {u: AnalyticsUser(u, PERSONAS[u % 4], "Premium", "Europe/Paris") for u in range(1, 21)}
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = JsonlSink(Path(tmp) / "base")
        rates["actions.jsonl"] = timed(jsonl.emit, items)
        jsonl.close()
        mapper = AnalyticsMapper(AnalyticsSpec())
        rates["mapper"] = timed(lambda r: mapper.event(r, users[r.user_id]), items)
        for vendor in ("posthog", "segment", "mixpanel"):
            sink = AnalyticsSink(AnalyticsMapper(AnalyticsSpec()), file_writer(vendor, Path(tmp)))
            rates[f"{vendor}-file"] = timed(sink.emit, items)
            sink.close()
        planned, gen = generated(Path(tmp), args.users)
    base = rates["actions.jsonl"]
    rows = [(name, fmt_int(rate), f"{rate / base:.2f}x") for name, rate in rates.items()]
    print_table(("writer", "records per CPU s", "vs actions.jsonl"), rows, "analytics events")
    rows = [(name, fmt_int(rate), f"{rate / gen['per event']:.2f}x") for name, rate in gen.items()]
    title = f"generate --analytics posthog-file: {planned:,} planned events"
    print_table(("path", "events per CPU s", "vs per event"), rows, title)
    write_results(
        "analytics",
        {"events": args.events, "per_cpu_s": rates, "generated": {"events": planned, **gen}},
    )


if __name__ == "__main__":
    main()
