"""The memory a ``generate`` backend holds before it plans anything (not a benchmark alone).

``python bench/backend_idle.py BACKEND WORKERS`` starts ``BACKEND`` (``ray``: a
local cluster, or ``processes``: the pool) exactly as ``generate`` does, through
:func:`sim_engine.runs.shards.run_ray` / :func:`~sim_engine.runs.shards.run_pool`,
with ``WORKERS`` chunks that only import ``generate``'s modules and wait; once
every chunk has reported, it sums the resident memory (RSS, and PSS: shared pages
split between the processes mapping them) of this process and all its descendants
(driver, workers, and Ray's daemons) and prints one JSON line. ``bench/generate.py``
runs it for both backends.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Generator
from typing import Any

import psutil

HOLD_S = 4.0  # wall seconds each idle chunk waits once it has reported


class IdleJob:
    """A chunk that plans nothing (picklable)."""

    def __init__(self, index: int) -> None:
        self.index = index


def idle_shard(job: IdleJob) -> Generator[int, None, int]:
    """Import what a real chunk imports, report once, then wait."""
    import sim_engine.runs.generate  # noqa: F401

    yield 0
    time.sleep(HOLD_S)
    return job.index


def footprint() -> dict[str, Any]:
    """RSS and PSS (MB) summed over this process and its descendants, and their count."""
    rss = pss = 0
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            mem = proc.memory_full_info()
            rss, pss = rss + mem.rss, pss + mem.pss
    return {"rss_mb": rss / 1e6, "pss_mb": pss / 1e6, "processes": len(procs)}


def main(backend: str, workers: int) -> dict[str, Any]:
    """Start ``backend`` with ``workers`` idle chunks; measure once all have reported."""
    from sim_engine.runs import shards

    seen: list[dict[str, Any]] = []
    reported = [0]

    def progress(_events: int) -> None:
        reported[0] += 1
        if reported[0] == workers:
            time.sleep(1.0)  # let the last worker settle
            seen.append(footprint())

    jobs = [IdleJob(i) for i in range(workers)]
    t0 = time.perf_counter()
    if backend == "ray":
        ray = shards.import_ray(loopback=True)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        shards.run_ray(idle_shard, jobs, workers, lambda _r: None, progress)
    else:
        shards.run_pool(idle_shard, jobs, workers, lambda _r: None, progress)
    result = {"backend": backend, "workers": workers, **(seen[0] if seen else {})}
    result["wall_s"] = time.perf_counter() - t0
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))), flush=True)
