"""Soak: does an always-on run stay flat in memory, descriptors and disk? (issue 15)

Starts a real ``sim-engine run`` process -- the in-process demo API, ``--users``
users (default 1,000) at ``--speed`` (default 60) for ``--days`` simulated days
(default 7: 2.8 wall hours at 60x), with log rotation on (``output.rotate``,
``--rotate-bytes`` per file, 3 kept), the control endpoint, its web page and the
Prometheus server -- and samples it from outside every ``--every`` wall seconds:
resident memory (RSS), open file descriptors, the run directory's size on disk, and
the simulated time (``ctl status``). ``--hours H`` runs H wall hours instead (CI).

Goals: RSS growth < 10 % from the end of the first simulated day (or, in a run
shorter than two days, the first seventh of it) to the end; descriptors constant
after warm-up; disk bounded by rotation (the largest log file never above its
rotation size, rotated files at most ``keep``).

    python bench/soak.py                         # 1,000 users, 7 days at 60x (2.8 h)
    python bench/soak.py --hours 0.25            # a quarter of a wall hour
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from sim_engine.observe.control import CONTROL_FILE, ControlError, send_command

DAY_S = 86400.0
START = "2026-03-02T00:00:00+00:00"


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _largest_log(out: Path) -> int:
    return max((p.stat().st_size for p in out.glob("*.jsonl") if p.name in
                ("actions.jsonl", "log.jsonl")), default=0)  # fmt: skip


def _sample(proc: psutil.Process, out: Path, started: float) -> dict[str, Any] | None:
    try:
        status = send_command(out, "status", timeout_s=10)
        memory, fds = proc.memory_info().rss / 1e6, proc.num_fds()
    except (ControlError, psutil.Error):
        return None
    return {
        "wall_s": round(time.monotonic() - started, 1),
        "sim_days": round(status["simulated_seconds"] / DAY_S, 3),
        "rss_mb": round(memory, 1),
        "fds": fds,
        "disk_mb": round(_disk_bytes(out) / 1e6, 2),
        "largest_log_mb": round(_largest_log(out) / 1e6, 3),
        "rotated": len(list(out.glob("*.jsonl.*.gz"))),
        "actions": status["actions"],
        "known": status["known"],
    }


def soak(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Run the soak and return the samples."""
    scenario = work / "soak.yaml"
    rotate = {"max_bytes": args.rotate_bytes, "keep": 3}
    scenario.write_text(yaml.safe_dump({"output": {"rotate": rotate}}), encoding="utf-8")
    out = work / "run"
    sim_s = args.hours * 3600 * args.speed if args.hours else args.days * DAY_S
    command = [sys.executable, "-m", "sim_engine", "run", "--scenario", str(scenario),
               "--target", "inprocess", "--users", str(args.users), "--speed", str(args.speed),
               "--duration", f"{sim_s:.0f}s", "--start", START, "--out", str(out),
               "--metrics-port", "0", "--no-dashboard", "-q"]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        while not (out / CONTROL_FILE).exists() and child.poll() is None:
            time.sleep(0.2)
        proc = psutil.Process(child.pid)
        while child.poll() is None:
            row = _sample(proc, out, started)
            if row is not None:
                samples.append(row)
                print(json.dumps(row), flush=True)
            time.sleep(args.every)
    finally:
        if child.poll() is None:
            child.terminate()
        _, stderr = child.communicate(timeout=120)
    if child.returncode != 0:
        raise SystemExit(f"the run failed ({child.returncode}): {stderr.decode()[-500:]}")
    return samples


def verdict(samples: list[dict[str, Any]], rotate_bytes: int) -> dict[str, Any]:
    """The three goals measured on the samples."""
    total = samples[-1]["sim_days"]
    warm_at = 1.0 if total >= 2 else total / 7
    warm = next(s for s in samples if s["sim_days"] >= warm_at)
    end = samples[-1]
    after = [s for s in samples if s["sim_days"] >= warm_at]
    growth = 100.0 * (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"]
    return {
        "warm_up_sim_days": round(warm_at, 3),
        "rss_warm_mb": warm["rss_mb"],
        "rss_end_mb": end["rss_mb"],
        "rss_growth_percent": round(growth, 1),
        "rss_ok": growth < 10.0,
        "fds_after_warm_up": sorted({s["fds"] for s in after}),
        "fds_ok": max(s["fds"] for s in after) - min(s["fds"] for s in after) <= 2,
        "disk_mb_max": max(s["disk_mb"] for s in samples),
        "largest_log_mb_max": max(s["largest_log_mb"] for s in samples),
        "rotated_max": max(s["rotated"] for s in samples),
        "disk_ok": max(s["largest_log_mb"] for s in samples) * 1e6 <= rotate_bytes
        and max(s["rotated"] for s in samples) <= 6,  # 3 kept for each of the two logs
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--hours", type=float, help="wall hours to run instead of --days")
    parser.add_argument("--every", type=float, default=10.0, help="wall seconds between samples")
    parser.add_argument("--rotate-bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sim-soak-") as tmp:
        samples = soak(args, Path(tmp))
    if len(samples) < 3:
        raise SystemExit("too few samples: run longer")
    result = verdict(samples, args.rotate_bytes)
    print(f"soak: {args.users:,} users at {args.speed:g}x, {samples[-1]['sim_days']:.2f} simulated"
          f" days in {samples[-1]['wall_s'] / 3600:.2f} wall hours, {samples[-1]['actions']:,}"
          " actions")  # fmt: skip
    print(json.dumps(result, indent=1))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "soak.json").write_text(
        json.dumps({"args": vars(args), "result": result, "samples": samples}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
