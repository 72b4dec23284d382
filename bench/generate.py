"""``sim-engine generate``: events per second end to end, peak memory, bytes per event.

Each configuration runs ``python -m sim_engine generate`` in a subprocess (the
default scenario, Parquet, start Monday 2026-01-05, seed 7) and is timed from
start to exit: planning the population and every event, and writing every table.
Two workers run on each backend in the same run: the stdlib process pool
(``--backend processes``) and Ray (``--backend ray``: a local cluster started and
shut down by the run, so its start-up is in the time). Peak RSS is the largest
sum, sampled every 0.1 s, of the resident memory of the process and all its
descendants (psutil): pool workers, or Ray's daemons (GCS, raylet, agents) and
workers. Shared pages (Ray's object store) count once per process mapping them.

Before the runs, each backend's idle footprint (``bench/backend_idle.py``): the
memory a backend holds, started as ``generate`` starts it with two workers that
have imported ``generate`` and plan nothing: RSS and PSS summed over the process
tree (for Ray: driver, workers, GCS, raylet, API server, agents, monitors).

In the same run, the baseline: the event engine at ``--speed max`` against an
instant ``MockTarget`` (planning, binding and bookkeeping only; the
``planning`` row of ``bench/fastforward.py``) on a small population. Bytes per
event: the same small dataset written as Parquet and as JSONL.

Goals (issue 10): >= 1,000,000 events/s with 2 workers, 100,000 users x 90 days in
<= 3 minutes, peak RSS <= 1.5 GB for 1,000,000 users.

Run: ``python bench/generate.py`` (about 15 minutes on 2 cores; needs
``sim-engine[ray]`` for the Ray rows, ``--backends processes`` without it);
``--quick`` for 10,000 users only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from _common import fmt_int, print_table, write_results

START = "2026-01-05"


def _tree_rss(proc: psutil.Process, cpu: dict[int, float]) -> int:
    """Resident bytes of ``proc`` and its descendants; note each one's CPU seconds in ``cpu``."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            times = p.cpu_times()
            cpu[p.pid] = times.user + times.system
    return total


def run_generate(
    users: int, days: int, workers: int, fmt: str, out: Path, backend: str = "processes"
) -> dict[str, Any]:
    """Run ``generate`` once in a subprocess; return wall time, events, peak RSS, bytes."""
    cmd = [
        sys.executable, "-m", "sim_engine", "generate", "--users", str(users), "--days", str(days),
        "--start", START, "--seed", "7", "--out", str(out), "--format", fmt,
        "--workers", str(workers), "--backend", backend, "--quiet",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    seen: dict[int, float] = {}
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(watched, seen))
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the run and the workers it reaped
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(cpu, sum(seen.values()))  # Ray's workers are reaped by its raylet, not the run
    if proc.returncode != 0:
        raise SystemExit(
            f"generate failed ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
        )
    manifest = json.loads((out / "manifest.json").read_text())
    events = sum(sum(day[2] for day in c["activity"]) for c in manifest["chunks"].values())
    size = sum(f.stat().st_size for f in (out / "events").rglob("*") if f.is_file())
    return {
        "users": users,
        "days": days,
        "workers": workers,
        "backend": backend if workers > 1 else "-",
        "format": fmt,
        "events": events,
        "wall_s": wall,
        "events_per_s": events / wall,
        "cpu_s": cpu,
        "events_per_cpu_s": events / cpu if cpu else 0.0,
        "peak_rss_mb": peak / 1e6,
        "events_bytes": size,
        "bytes_per_event": size / events if events else 0.0,
    }


def idle_footprint(backend: str, workers: int = 2) -> dict[str, Any]:
    """A backend's memory before it plans anything (``bench/backend_idle.py``)."""
    script = Path(__file__).resolve().parent / "backend_idle.py"
    proc = subprocess.run(
        [sys.executable, str(script), backend, str(workers)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"idle footprint of {backend} failed: {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def engine_baseline(users: int, days: float) -> dict[str, Any]:
    """The event engine with an instant mock target (fastforward.py's ``planning`` row)."""
    from fastforward import bench_planning

    r = bench_planning(users, days, use_uvloop=True)
    return {"users": users, "days": days, "events": r["actions"], "wall_s": r["wall_s"],
            "events_per_s": r["actions_per_s"], "cpu_s": r["cpu_s"],
            "events_per_cpu_s": r["actions"] / r["cpu_s"] if r["cpu_s"] else 0.0}  # fmt: skip


def _row(name: str, r: dict[str, Any], base: dict[str, Any]) -> list[str]:
    return [
        name, fmt_int(r["users"]), f"{r['days']:g}", str(r.get("workers", 1)),
        r.get("backend", "-"),
        fmt_int(r["events"]), f"{r['wall_s']:.1f}", fmt_int(r["events_per_s"]),
        f"{r['cpu_s']:.1f}", fmt_int(r["events_per_cpu_s"]),
        f"{r['events_per_s'] / base['events_per_s']:.0f}",
        f"{r['peak_rss_mb']:,.0f}" if "peak_rss_mb" in r else "-",
    ]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 users only")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--million-days", type=int, default=7,
                        help="days for the 1,000,000-user memory run (0: skip)")  # fmt: skip
    parser.add_argument("--backends", default="processes,ray",
                        help="backends of the 2-worker rows (comma-separated)")  # fmt: skip
    parser.add_argument("--million-backend", default="processes",
                        help="backend of the 1,000,000-user run")  # fmt: skip
    parser.add_argument("--baseline-users", type=int, default=2_000)
    parser.add_argument("--baseline-days", type=float, default=1.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"runs": []}
    backends = [b for b in args.backends.split(",") if b]
    idle = []
    for backend in dict.fromkeys(["processes", *backends]):
        print(f"idle footprint: {backend}, 2 workers ...", flush=True)
        idle.append(idle_footprint(backend))
    results["idle"] = idle
    print(f"baseline: event engine, MockTarget, {args.baseline_users} users ...", flush=True)
    base = engine_baseline(args.baseline_users, args.baseline_days)
    results["baseline"] = base
    sizes = [10_000] if args.quick else [10_000, 100_000]
    plan = [(u, args.days, 1, "processes") for u in sizes]
    plan += [(u, args.days, 2, b) for u in sizes for b in backends]
    plan.sort(key=lambda run: run[0])
    if args.million_days and not args.quick:
        plan.append((1_000_000, args.million_days, 2, args.million_backend))
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        for i, (users, days, workers, backend) in enumerate(plan):
            on = f" on {backend}" if workers > 1 else ""
            print(
                f"generate: {fmt_int(users)} users x {days} days, {workers} worker(s){on} ...",
                flush=True,
            )
            results["runs"].append(
                run_generate(users, days, workers, "parquet", Path(tmp) / f"p{i}", backend)
            )
        for fmt in ("parquet", "jsonl"):
            print(f"bytes/event: {fmt}, 2,000 users x 7 days ...", flush=True)
            results[f"bytes_{fmt}"] = run_generate(2_000, 7, 1, fmt, Path(tmp) / fmt)
    rows = [_row("event engine (MockTarget)", base, base)]
    rows += [_row("generate (parquet)", r, base) for r in results["runs"]]
    print_table(
        ["run", "users", "days", "workers", "backend", "events", "wall s", "events/s", "CPU s",
         "events/CPU-s", "x engine", "peak RSS MB"],
        rows,
        "events per second, end to end (x engine: events per wall second over the engine's)",
    )  # fmt: skip
    print_table(
        ["backend", "workers", "processes", "RSS MB", "PSS MB"],
        [[r["backend"], str(r["workers"]), str(r["processes"]), f"{r['rss_mb']:,.0f}",
          f"{r['pss_mb']:,.0f}"] for r in idle],
        "idle footprint: each backend started as generate starts it, nothing planned yet",
    )  # fmt: skip
    bp, bj = results["bytes_parquet"], results["bytes_jsonl"]
    print_table(
        ["format", "events", "events table bytes", "bytes/event"],
        [[f, fmt_int(r["events"]), fmt_int(r["events_bytes"]), f"{r['bytes_per_event']:.1f}"]
         for f, r in (("parquet", bp), ("jsonl", bj))],
        "bytes per event on disk (events table)",
    )  # fmt: skip
    path = write_results("generate", results)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
