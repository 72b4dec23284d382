"""Where ``generate``'s chunks run: a pool of local processes, or Ray.

Both backends take the same shard function (a picklable job in, a generator out
that yields each planned day's event count and returns a small result) and the
same callbacks, so the parts, the manifest and resume are the same whatever runs
the chunks:

* :func:`run_pool`: a stdlib ``ProcessPoolExecutor`` of spawned processes (no
  dependency); progress comes back on a multiprocessing queue.
* :func:`run_ray`: Ray tasks, on a local cluster this function starts (``num_cpus``
  = workers, no dashboard, loopback only, quiet) and shuts down, or on an existing
  cluster (``address``) it joins and leaves. Each task is a Ray generator task
  that streams its day counts, then its result, back to the driver (no actor: an
  actor is one more Ray worker process, about 140 MB resident). At most as many
  tasks as the cluster has CPUs are in flight, so the ones in flight are the ones
  running and each holds one chunk.

Interruption (``KeyboardInterrupt``, from Ctrl-C or a progress callback) is the
same on both: no new chunk starts, the running ones finish and are recorded, then
the interrupt propagates. A failing chunk cancels the rest and its error
propagates (an ``OSError`` as itself; a crashed worker as :class:`ShardError`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import queue
import signal
import socket
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Protocol, TypeVar

__all__ = [
    "RAY_MISSING",
    "ShardError",
    "drive",
    "import_ray",
    "is_loopback_address",
    "run_pool",
    "run_ray",
]

RAY_MISSING = "pip install 'sim-engine[ray]'"
"""How to install the optional Ray backend."""

_POLL_S = 0.2  # wall seconds between progress polls
_AUTH_HINT = " (a cluster with token authentication needs RAY_AUTH_MODE=token)"
_CONNECT_S = 5.0  # wall seconds to reach a cluster's address (Ray itself retries for minutes)


class ShardError(RuntimeError):
    """A worker or the cluster failed (not the chunk's own error); the CLI exits 1."""


class _Indexed(Protocol):
    index: int


J = TypeVar("J", bound=_Indexed)
R = TypeVar("R")
Report = Callable[[int], None]
ShardFn = Callable[[J], Generator[int, None, R]]
"""A shard function: ``fn(job)`` yields each planned day's event count and returns
the chunk's result."""


def drive(steps: Generator[int, None, R], report: Report | None = None) -> R:
    """Run a shard function's generator to its end, telling ``report`` each yielded count.

    Returns:
        The generator's return value (the chunk's result).
    """
    while True:
        try:
            events = next(steps)
        except StopIteration as stop:
            result: R = stop.value
            return result
        if report is not None:
            report(events)


# -- a local process pool -----------------------------------------------------------------------

_queue: Any = None  # a pool worker's queue of day event counts


def _init_worker(messages: Any) -> None:
    """Pool initialiser: Ctrl-C is the parent's to handle; progress goes on ``messages``."""
    global _queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _queue = messages


def _pool_task(fn: ShardFn[J, R], job: J) -> R:
    return drive(fn(job), _queue.put)


def _drain(messages: Any, progress: Report) -> None:
    while True:
        try:
            events = messages.get_nowait()
        except queue.Empty:
            return
        progress(events)


def run_pool(
    fn: ShardFn[J, R],
    jobs: list[J],
    workers: int,
    record: Callable[[R], None],
    progress: Report,
) -> None:
    """Run ``fn`` on each job on ``workers`` spawned processes; ``record`` each result.

    Args:
        fn: the shard function (module level, so that it pickles).
        jobs: the chunks.
        workers: processes (at most one per job).
        record: called in this process with each result, as it arrives.
        progress: called in this process with each planned day's event count.

    Raises:
        KeyboardInterrupt: after the running chunks finished and were recorded.
        ShardError: a worker process died.
    """
    ctx = get_context("spawn")
    messages = ctx.Queue()
    with ProcessPoolExecutor(min(workers, len(jobs)), ctx, _init_worker, (messages,)) as pool:
        pending: set[Future[R]] = {pool.submit(_pool_task, fn, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    record(future.result())
                _drain(messages, progress)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    record(future.result())
            raise
        except BrokenProcessPool as exc:
            raise ShardError(f"a worker process died: {exc}") from None


# -- Ray ----------------------------------------------------------------------------------------


def is_loopback_address(address: str) -> bool:
    """Whether a Ray address ``HOST:PORT`` names this machine's loopback interface."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_ray(loopback: bool) -> Any:
    """Import Ray, configured before its first import.

    Ray's usage statistics are off (no traffic leaves the machine), and with
    ``loopback`` Ray advertises 127.0.0.1 instead of the machine's address (its
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` switch), so a local cluster talks over
    loopback only. Variables already set in the environment win.

    Raises:
        ImportError: Ray is not installed.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    return ray


@dataclass
class _Done:
    """The last item a Ray task streams back: the chunk's result."""

    result: Any


def _ray_task(fn: ShardFn[J, R], job: J) -> Iterator[int | _Done]:
    """A Ray generator task: the chunk's day counts as it plans them, then its result."""
    result = yield from fn(job)
    yield _Done(result)


def _reachable(address: str) -> None:
    """Raise :class:`ShardError` unless ``HOST:PORT`` accepts a TCP connection (Ray's own
    connection attempts retry for minutes before failing)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_S).close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ShardError(f"cannot join the Ray cluster at {address}: {reason}") from None


@contextlib.contextmanager
def _cluster(ray: Any, workers: int, address: str | None) -> Iterator[int]:
    """Join ``address``, or start a local cluster of ``workers`` CPUs; yield its CPUs."""
    owned = not ray.is_initialized()
    if owned and address:
        _reachable(address)
    if owned:
        options: dict[str, Any] = {"address": address} if address else {"num_cpus": workers}
        try:
            ray.init(
                **options,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            ray.shutdown()
            where = f"join the Ray cluster at {address}" if address else "start Ray"
            hint = "" if address is None or os.environ.get("RAY_AUTH_MODE") else _AUTH_HINT
            raise ShardError(f"cannot {where}: {exc}".splitlines()[0] + hint) from None
    try:
        yield max(1, int(ray.cluster_resources().get("CPU", workers)))
    finally:
        if owned:
            ray.shutdown()


def _unwrap(ray: Any, exc: BaseException) -> BaseException:
    """A task's own error as itself; any other Ray failure as a :class:`ShardError`."""
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, Exception):
        return exc.cause
    return ShardError(f"a Ray worker failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")


def run_ray(
    fn: ShardFn[J, R],
    jobs: list[J],
    workers: int,
    record: Callable[[R], None],
    progress: Report,
    address: str | None = None,
) -> None:
    """Run ``fn`` on each job as Ray tasks; ``record`` each result.

    Args:
        fn: the shard function (module level, so that it pickles).
        jobs: the chunks; their files go where the job says, so with a cluster of
            several machines that path must be on storage every node shares.
        workers: CPUs of the local cluster (unused with ``address``).
        record: called in this process with each result, as it arrives.
        progress: called in this process with each planned day's event count.
        address: ``HOST:PORT`` of a running cluster's head to join (None: start one).
            If Ray is already initialised in this process, that cluster is used and
            left running.

    Raises:
        ImportError: Ray is not installed.
        KeyboardInterrupt: after the running chunks finished and were recorded
            (a second interrupt cancels them).
        ShardError: the cluster cannot be started or joined, or a worker died.
    """
    ray = import_ray(address is None or is_loopback_address(address))
    with _cluster(ray, workers, address) as cpus:
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        todo = list(reversed(jobs))
        running: list[Any] = []  # ObjectRefGenerators of the tasks in flight
        try:
            while todo or running:
                while todo and len(running) < cpus:
                    running.append(task.remote(fn, todo.pop()))
                ready, _ = ray.wait(running, num_returns=1, timeout=_POLL_S)
                for stream in ready:
                    if _take(ray, stream, record, progress):
                        running.remove(stream)
        except KeyboardInterrupt:
            _finish_running(ray, running, record)
            raise
        except BaseException:
            for stream in running:
                ray.cancel(stream, force=True)
            raise


def _take(ray: Any, stream: Any, record: Callable[[Any], None], progress: Report) -> bool:
    """Take the next item a task streamed: a day's count (to ``progress``) or its result
    (to ``record``). Return whether the task is finished."""
    try:
        item = _get(ray, next(stream))
    except StopIteration:  # pragma: no cover - the result is always the last item
        return True
    if isinstance(item, _Done):
        record(item.result)
        return True
    progress(item)
    return False


def _get(ray: Any, ref: Any) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise _unwrap(ray, exc) from None


def _finish_running(ray: Any, running: list[Any], record: Callable[[Any], None]) -> None:
    """After an interrupt: record the chunks in flight as they finish; cancel on a second."""
    try:
        for stream in running:  # their remaining day counts are not reported
            while not _take(ray, stream, record, lambda _events: None):
                pass
    except KeyboardInterrupt:
        for stream in running:
            ray.cancel(stream, force=True)
        raise
