"""Cost of recording created resources in ``state.db`` (for ``sim-engine cleanup``).

Every answer to a creating action is written to the ``created`` table at once
(crash-safe: not only at checkpoints). This sends ``--creates`` ``create_post``
actions of the demo API's description through the declarative target on an
instant transport, first without the log (the baseline, same run), then with a
real ``SqliteStore`` (WAL, ``synchronous=NORMAL``), and prints microseconds per
create and the ratio.

Run: ``python bench/created.py`` (a few seconds). Measured 2026-11-26 on the
2-core machine shared with other agents: 82 us per create without the log and
216 us with it (2.6x), and 136 against 455 us (3.4x) while a test suite ran
beside it: 130 to 320 us per created resource (one committed SQLite write),
paid only by creating actions (a few percent of a run's actions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import print_table, write_results
from sim_engine.engine.simulation import effective_api
from sim_engine.engine.store import SqliteStore
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import default_scenario
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.transport import Response


class Instant:
    """Answers every request at once with ``201 {"id": N}`` (a new id each time)."""

    def __init__(self) -> None:
        self.n = 0

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        self.n += 1
        return Response(201, json.dumps({"id": self.n}).encode(), 0.1)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def creates(n: int, store: SqliteStore | None) -> float:
    """Wall seconds for ``n`` create_post actions (100 users), recorded in ``store``."""
    target = DeclarativeTarget(Instant(), effective_api(default_scenario()))
    target.created_log = store
    started = time.perf_counter()
    for i in range(n):
        request = ActionRequest("create_post", i % 100, 0.0, "2026-01-01T00:00:00Z", token="t")
        outcome = await target.send(request)
        assert outcome.ok, outcome
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=20_000, help="create actions per run")
    args = parser.parse_args()
    base_s = asyncio.run(creates(args.creates, None))
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "state.db", create=True)
        logged_s = asyncio.run(creates(args.creates, store))
        rows = len(store.created())
        store.close()
    assert rows == args.creates, rows
    per = [1e6 * base_s / args.creates, 1e6 * logged_s / args.creates]
    print_table(
        ["run", "us per create", "ratio"],
        [
            ["no created log", f"{per[0]:.1f}", "1.00"],
            ["state.db", f"{per[1]:.1f}", f"{per[1] / per[0]:.2f}"],
        ],
        title=f"{args.creates} create_post actions through the declarative target",
    )
    write_results(
        "created",
        {"creates": args.creates, "us_per_create": per[0], "us_per_create_logged": per[1]},
    )


if __name__ == "__main__":
    main()
