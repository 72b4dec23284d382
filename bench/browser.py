"""Browser sessions per minute and resident memory per concurrent context (issue 16).

Starts the demo server (``DemoServer``, a child process on 127.0.0.1) with
``--posts`` posts written through its API, then for each count of concurrent contexts
(``--contexts``, default 1, 4 and 8) runs that many browser users in a closed loop for
``--seconds`` wall seconds: each session opens the user's context from its saved storage
state, runs ``--flows`` flows drawn like ``browse_feed``'s (seed 003's entry points on the
demo's pages), and closes the context (saving its storage). One Chromium process serves
all contexts (``BrowserPool(max_contexts=N)``), as in a run.

Figures per count: sessions completed per wall minute, flows and steps per minute,
median step latency, and memory summed over Chromium's process tree (every ``chromium``
process under this one) sampled every 0.5 s while contexts are open: peak RSS, and the
same minus the browser's own RSS measured with no context open in the same run
(the baseline), divided by the number of contexts: RSS per context. RSS sums count
shared pages once per process, so PSS (proportional set size, shared pages split) is
printed too. The ratio column compares sessions per minute with the one-context row.

Run: ``python bench/browser.py`` (needs Debian's chromium and psutil:
``pip install -e '.[dev,bench]'``; about four minutes with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import httpx
import psutil

from _common import print_table, run_async, write_results
from sim_engine import default_scenario
from sim_engine.demo import DemoServer
from sim_engine.model.browser_spec import demo_browser_data
from sim_engine.model.records import ActionRequest
from sim_engine.runs.targets import bind_target, with_browser
from sim_engine.targets.browser import BrowserTarget
from sim_engine.targets.http import AiohttpTransport

__all__ = ["chromium_memory", "measure"]


def chromium_memory() -> tuple[int, int]:
    """RSS and PSS (bytes) summed over the Chromium processes under this process."""
    rss = pss = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" not in proc.name():
                continue
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def _request(action: str, user_id: int, **kw: Any) -> ActionRequest:
    now = datetime.now(timezone.utc)
    return ActionRequest(action, user_id, now.timestamp(), now.isoformat(), **kw)


async def _seed_posts(base_url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        body = {"username": "bench-author", "email": "a@sim-engine.test", "password": "pw"}
        await client.post("/users", json=body)
        token = (await client.post("/auth/login", json=body)).json()["token"]
        for i in range(count):
            await client.post(
                "/posts",
                json={
                    "title": f"Bench post {i} about topic{i % 7}",
                    "body": "text " * 40,
                    "tags": [f"topic{i % 7}"],
                },
                headers={"Authorization": f"Bearer {token}"},
            )


def _target(base_url: str, contexts: int) -> BrowserTarget:
    data = {**demo_browser_data(), "share": 1.0, "max_contexts": contexts}
    scenario = default_scenario().with_overrides(browser=data)
    inner = bind_target(scenario, AiohttpTransport(base_url))
    target = with_browser(scenario, inner, base_url, {"X-Synthetic": "true"})
    assert isinstance(target, BrowserTarget)
    return target


async def _user_loop(
    target: BrowserTarget, user_id: int, flows: int, until: float, counts: dict[str, Any]
) -> None:
    name = f"bench{user_id}-{int(until)}"
    identity = {
        "username": name,
        "email": f"{name}@sim-engine.test",
        "password": "pw-" + name,
        "name": name,
    }
    await target.send(_request("sign_up", user_id, payload=identity))
    await target.send(_request("log_in", user_id, payload=identity))
    while time.monotonic() < until:
        for _ in range(flows):
            outcome = await target.send(_request("browse_feed", user_id))
            counts["flows"] += 1
            counts["failed"] += 0 if outcome.ok else 1
            counts["latencies"] += [p.latency_ms for p in outcome.pages]
        target.end_session(user_id)
        await target.settle()
        counts["sessions"] += 1


async def _sample(stop: asyncio.Event, peaks: list[int]) -> None:
    while not stop.is_set():
        rss, pss = chromium_memory()
        peaks[0], peaks[1] = max(peaks[0], rss), max(peaks[1], pss)
        await asyncio.sleep(0.5)


async def measure(base_url: str, contexts: int, seconds: float, flows: int) -> dict[str, Any]:
    """Run ``contexts`` browser users for ``seconds`` wall seconds; return the figures."""
    target = _target(base_url, contexts)
    try:
        warm = await target.pool.open(None)  # start Chromium, then measure it idle
        await target.pool.close(warm)
        await asyncio.sleep(1.0)
        idle_rss, idle_pss = chromium_memory()
        counts: dict[str, Any] = {"flows": 0, "failed": 0, "sessions": 0, "latencies": []}
        stop, peaks = asyncio.Event(), [0, 0]
        sampler = asyncio.ensure_future(_sample(stop, peaks))
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(_user_loop(target, u, flows, until, counts) for u in range(1, contexts + 1))
        )
        wall = time.monotonic() - started
        stop.set()
        await sampler
    finally:
        await target.aclose()
    per_min = 60.0 / wall
    return {
        "contexts": contexts,
        "wall_s": round(wall, 1),
        "sessions": counts["sessions"],
        "sessions_per_min": round(counts["sessions"] * per_min, 2),
        "flows_per_min": round(counts["flows"] * per_min, 1),
        "steps_per_min": round(len(counts["latencies"]) * per_min, 1),
        "failed_flows": counts["failed"],
        "step_p50_ms": round(statistics.median(counts["latencies"] or [0.0]), 1),
        "idle_rss_mb": round(idle_rss / 2**20, 1),
        "idle_pss_mb": round(idle_pss / 2**20, 1),
        "peak_rss_mb": round(peaks[0] / 2**20, 1),
        "peak_pss_mb": round(peaks[1] / 2**20, 1),
        "rss_per_context_mb": round((peaks[0] - idle_rss) / 2**20 / contexts, 1),
        "pss_per_context_mb": round((peaks[1] - idle_pss) / 2**20 / contexts, 1),
    }


def main() -> None:
    """Parse the options, run every count, print the table and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--flows", type=int, default=3, help="flows per session")
    parser.add_argument("--posts", type=int, default=60)
    args = parser.parse_args()
    rows = []
    with DemoServer() as server:
        run_async(_seed_posts(server.base_url, args.posts), use_uvloop=False)
        for n in args.contexts:
            rows.append(
                run_async(measure(server.base_url, n, args.seconds, args.flows), use_uvloop=False)
            )
    base = rows[0]["sessions_per_min"] or 1.0
    print_table(
        [
            "contexts",
            "sessions/min",
            "ratio",
            "flows/min",
            "steps/min",
            "step p50 ms",
            "failed",
            "peak RSS MB",
            "RSS/context MB",
            "PSS/context MB",
        ],
        [
            [
                r["contexts"],
                r["sessions_per_min"],
                f"{r['sessions_per_min'] / base:.2f}x",
                r["flows_per_min"],
                r["steps_per_min"],
                r["step_p50_ms"],
                r["failed_flows"],
                r["peak_rss_mb"],
                r["rss_per_context_mb"],
                r["pss_per_context_mb"],
            ]
            for r in rows
        ],
        title=f"Browser tier: {args.seconds:g} s per row, {args.flows} flows per session "
        f"(idle Chromium RSS {rows[0]['idle_rss_mb']} MB, the baseline)",
    )
    write_results("browser", {"options": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
