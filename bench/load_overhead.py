"""Where a ``sim-engine load`` request's CPU goes: the engine and target alone, and the threads.

Two runs of ``sim-engine load`` (the reader scenario of ``bench/throughput.py``: one
persona browsing ``GET /posts``, 32 virtual users, no delay, raw), each in a subprocess
pinned to one CPU:

* ``instant`` -- the transport is replaced by one that answers at once with nginx's feed
  page (no network): the CPU per request of the engine and the declarative target alone
  (planning, binding, the page's items kept in memory, the record, the figures);
* ``nginx`` -- the real path against the throughput bench's nginx on 127.0.0.1: the
  process's CPU per request over the test's window (``load.json``'s ``cpu_seconds``).

Beside them, a bare pyreqwest loop (``reqwest-raw``) in the same run, its CPU split into
the main thread (``time.thread_time``) and the other threads (pyreqwest's Rust runtime).
The difference tells how much of a request is ours.

``--work 10,20,30`` adds the bare loop with that many microseconds of plain Python work
per request (``reqwest-raw+10``...; a calibrated busy loop): what any client spending
that much Python per request around pyreqwest would cost on one core, its threads
included. Set against Locust's CPU per request (``bench/throughput.py``), it tells how
much Python per request a goal leaves.

``--scaling`` adds ``--processes`` scaling where the target does not share the cores:
``sim-engine load --target inprocess`` (each process its own in-process demo app) with
one process on one CPU, then ``--processes 2`` on both CPUs. On a 2-core machine a
target on loopback always takes part of the second core (``sim-load-2`` in
bench/throughput.py); this is the scaling of the load test's own processes. Beside it,
the machine's own ceiling in the same run: a plain CPU-bound Python loop alone on one
CPU against two at once, one per CPU (virtual CPUs may share a physical core).

Run: ``python bench/load_overhead.py [--seconds 5] [--work 10,20,30] [--scaling]`` (needs
nginx, as bench/throughput.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import print_table
from throughput import Nginx, _find_nginx, _reader_scenario, _taskset

_CHILD = r"""
import asyncio, json, sys, time
mode, url, scenario, seconds, out = sys.argv[1:6]
sys.path.insert(0, {bench!r})
from throughput import FEED_PAGE
if mode.startswith("reqwest-raw"):
    import uvloop
    from pyreqwest.client import ClientBuilder
    work_us = float(mode.partition("+")[2] or 0)
    def busy(rounds):
        table = {{}}
        for i in range(rounds):
            table[i % 7] = i
    rounds = 0
    if work_us:  # calibrate: rounds of plain Python taking work_us of CPU
        t0 = time.thread_time(); busy(200_000); per_round = (time.thread_time() - t0) / 200_000
        rounds = max(1, round(work_us / 1e6 / per_round))
    async def raw():
        async with ClientBuilder().max_connections(32).build() as client:
            n, stop = 0, time.monotonic() + float(seconds)
            async def worker():
                nonlocal n
                while time.monotonic() < stop:
                    async with client.request("GET", url + "/posts").build_streamed() as resp:
                        bytes(await resp.bytes())
                    if rounds:
                        busy(rounds)
                    n += 1
            c0, t0 = time.process_time(), time.thread_time()
            await asyncio.gather(*(worker() for _ in range(32)))
            return n, time.process_time() - c0, time.thread_time() - t0
    n, cpu, main = uvloop.run(raw())
    print(json.dumps({{"requests": n, "cpu_s": cpu, "main_s": main}}))
    sys.exit(0)
import sim_engine.runs.runner as runner
from sim_engine.targets.transport import Response
if mode == "instant":
    body = json.dumps(FEED_PAGE).encode()
    class Instant:
        base_url = url
        async def request(self, method, path, json_body=None, headers=None):
            if path == "/auth/login":
                return Response(200, b'{{"token": "t", "user_id": 1}}', 0.1)
            if method == "POST":
                return Response(201, b'{{"id": 1}}', 0.1)
            return Response(200, body, 0.1)
        async def check(self): pass
        async def aclose(self): pass
    runner.build_transport = lambda u, options: Instant()
from sim_engine.cli.main import main
sys.argv = ["sim-engine", "load", "--target", url, "--scenario", scenario, "--users", "32",
            "--duration", seconds + "s", "--delay-min", "0", "--delay-max", "0",
            "--out", out, "-q"]
try:
    main()
except SystemExit:
    pass
data = json.load(open(out + "/load.json"))
print(json.dumps({{"requests": data["requests"], "cpu_s": data["cpu_seconds"]}}))
"""


def _run(mode: str, url: str, scenario: Path, seconds: float, work: Path) -> dict[str, Any]:
    code = _CHILD.format(bench=str(Path(__file__).parent))
    out = work / f"{mode}-out"
    cmd = [*_taskset(0), sys.executable, "-c", code, mode, url, str(scenario), f"{seconds:g}",
           str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


_BUSY = "d = {}\nfor i in range(40_000_000): d[i % 7] = i"  # plain CPU-bound Python, ~2.5 s


def _machine_ceiling() -> float:
    """How much two busy processes (one per CPU) get done against one alone: 2 x the time
    of one alone / the time of the slower of two at once (2.0: two independent cores)."""

    def timed(cpus: list[int]) -> list[float]:
        procs = [subprocess.Popen([*_taskset(cpu), sys.executable, "-c",
                                   "import time; t = time.perf_counter()\n" + _BUSY +
                                   "\nprint(time.perf_counter() - t)"],
                                  stdout=subprocess.PIPE, text=True) for cpu in cpus]  # fmt: skip
        return [float(p.communicate()[0]) for p in procs]

    alone = min(timed([0])[0], timed([1])[0])
    both = max(timed([0, 1]))
    return 2 * alone / both


def _scaling(scenario: Path, seconds: float, work: Path) -> None:
    """Requests/s of ``load --target inprocess`` with 1 process (CPU 0) and 2 (CPUs 0-1)."""
    rates = {}
    for processes, pin in ((1, _taskset(0)), (2, ["taskset", "-c", "0,1"] if _taskset(0) else [])):
        out = work / f"inprocess-{processes}"
        cmd = [*pin, sys.executable, "-m", "sim_engine", "load", "--target", "inprocess",
               "--scenario", str(scenario), "--users", "32", "--duration", f"{seconds:g}s",
               "--delay-min", "0", "--delay-max", "0", "--processes", str(processes),
               "--out", str(out), "-q"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 180)
        if proc.returncode != 0:
            raise SystemExit(f"inprocess x{processes} failed:\n{proc.stderr[-2000:]}")
        data = json.loads((out / "load.json").read_text(encoding="utf-8"))
        rates[processes] = data["requests"] / data["wall_seconds"]
        print(f"inprocess, --processes {processes}: {rates[processes]:,.0f} req/s "
              f"({data['cpu_seconds'] / data['wall_seconds']:.2f} CPUs)")  # fmt: skip
    print(f"--processes 2 / 1 with the target in each process: {rates[2] / rates[1]:.2f}x")
    ceiling = _machine_ceiling()
    print(f"the machine's own ceiling, two plain busy processes against one: {ceiling:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wall seconds per run")
    parser.add_argument("--work", default="", help="µs of Python work per request, e.g. 10,20")
    parser.add_argument("--scaling", action="store_true", help="--processes 2 against 1, inprocess")
    args = parser.parse_args()
    modes = ["instant", "nginx", "reqwest-raw"]
    modes += [f"reqwest-raw+{float(w):g}" for w in args.work.split(",") if w.strip()]
    binary = _find_nginx()
    if binary is None:
        raise SystemExit("needs nginx (apt-get install -y nginx)")
    nginx = Nginx(binary, 1)
    try:
        with tempfile.TemporaryDirectory(prefix="sim-overhead-") as tmp:
            work = Path(tmp)
            scenario = _reader_scenario(work / "reader.yaml")
            runs = {m: _run(m, nginx.url, scenario, args.seconds, work) for m in modes}
            if args.scaling:
                _scaling(scenario, args.seconds, work)
    finally:
        nginx.stop()
    us = {mode: r["cpu_s"] * 1e6 / max(1, r["requests"]) for mode, r in runs.items()}
    raw = runs["reqwest-raw"]
    other = (raw["cpu_s"] - raw["main_s"]) * 1e6 / max(1, raw["requests"])
    rows = [[mode, f"{r['requests']:,}", f"{us[mode]:.1f}", f"{r['requests'] / r['cpu_s']:,.0f}"]
            for mode, r in runs.items()]  # fmt: skip
    print_table(["run", "requests", "CPU µs/request", "req/CPU-s"], rows)
    print(f"the bare loop's other threads (pyreqwest's runtime): {other:.1f} µs/request")
    print(f"a load request costs {us['nginx']:.1f} µs against {us['reqwest-raw']:.1f} µs in a "
          f"bare loop; the engine and target alone (instant): {us['instant']:.1f} µs")  # fmt: skip


if __name__ == "__main__":
    main()
