"""What a load test shows while it runs: a per-endpoint table every 2 s, and the CSV history.

:class:`LoadMonitor` reads the test's one :class:`~sim_engine.runs.load_stats.LoadStats`
every ``every_s`` wall seconds: on a terminal it redraws a rich table (per
endpoint: requests, req/s now, failures/s now, p50/p95/p99 so far, errors by
kind); elsewhere it prints one line; with ``--csv`` it also appends the
Locust-compatible history every ``csv_every_s`` and rewrites the stats and
failures files (:mod:`sim_engine.runs.load_csv`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from sim_engine.runs.load_csv import LocustCsv
from sim_engine.runs.load_hist import Counts
from sim_engine.runs.load_stats import LoadStats, Tally

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

__all__ = ["LoadMonitor", "Row", "Sample", "rows_of"]

Sample = dict[str, float]
"""One point of the timeline: ``t`` (wall seconds since the start), ``users``,
``rps`` and ``fps`` (over the interval), ``requests`` (so far), ``p50``, ``p95``,
``p99`` (wall ms, the interval's requests; absent when it had none)."""


class Row:
    """One line of the live table: an endpoint (or ``all``) at one moment.

    Attributes:
        name: ``METHOD /path/{template}`` or ``all``.
        requests, failed: counts so far.
        rps, fps: requests and failures per wall second since the previous moment.
        p50, p95, p99: latency so far (wall ms).
        errors: the most common error kinds so far, ``timeout 3, http_5xx 1``.
    """

    __slots__ = ("errors", "failed", "fps", "name", "p50", "p95", "p99", "requests", "rps")

    def __init__(self, name: str, tally: Tally, before: tuple[int, int], elapsed: float) -> None:
        self.name = name
        self.requests = tally.requests
        self.failed = tally.failed
        self.rps = (tally.requests - before[0]) / elapsed if elapsed > 0 else 0.0
        self.fps = (tally.failed - before[1]) / elapsed if elapsed > 0 else 0.0
        self.p50 = tally.percentile_ms(50)
        self.p95 = tally.percentile_ms(95)
        self.p99 = tally.percentile_ms(99)
        self.errors = ", ".join(f"{k} {n}" for k, n in tally.errors.most_common(3))


def rows_of(stats: LoadStats, before: dict[str, tuple[int, int]], elapsed: float) -> list[Row]:
    """The table at this moment (endpoints by requests, then ``all``); updates ``before``
    (name -> requests, failures at the previous moment)."""
    entries = sorted(stats.by_endpoint.items(), key=lambda kv: -kv[1].requests)
    rows = []
    for name, tally in [*entries, ("all", stats.total)]:
        rows.append(Row(name, tally, before.get(name, (0, 0)), elapsed))
        before[name] = (tally.requests, tally.failed)
    return rows


def _table(rows: list[Row], seconds: float, users: int) -> Table:
    from rich.table import Table

    title = f"{seconds:.0f} s, {users} users; req/s and fail/s now, latency (ms) so far"
    table = Table(title=title, title_justify="left")
    table.add_column("endpoint", no_wrap=True)
    for column in ("requests", "req/s", "fail/s", "p50", "p95", "p99"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("errors", no_wrap=True, overflow="ellipsis", min_width=12)
    for r in rows:
        table.add_row(
            r.name, str(r.requests), f"{r.rps:.1f}", f"{r.fps:.1f}",
            f"{r.p50:.1f}", f"{r.p95:.1f}", f"{r.p99:.1f}", r.errors,
        )  # fmt: skip
    return table


class LoadMonitor:
    """The live view and the CSV history of a load test (see the module docstring).

    Args:
        stats: the test's figures.
        users: returns the virtual users active now.
        console: where to show (None: nowhere).
        every_s: wall seconds between refreshes of the view.
        csv: the ``--csv`` writer (None: no files).
        csv_every_s: wall seconds between history rows.
        now: a monotonic wall clock in seconds (injected in tests).
        epoch: wall-clock epoch seconds, for the history's ``Timestamp``.
        on_tick: called after every refresh (a ``--processes`` worker reports its
            figures to the parent from it).
    """

    def __init__(
        self,
        stats: LoadStats,
        users: Callable[[], int],
        console: TextIO | None,
        *,
        every_s: float = 2.0,
        csv: LocustCsv | None = None,
        csv_every_s: float = 1.0,
        now: Callable[[], float] = time.monotonic,
        epoch: Callable[[], float] = time.time,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.stats = stats
        self._on_tick = on_tick
        self._users = users
        self._console = console
        self.every_s = every_s
        self.csv = csv
        self.csv_every_s = csv_every_s
        self._now = now
        self._epoch = epoch
        self._started = now()
        self._before: dict[str, tuple[int, int]] = {}
        self._last_view = self._started
        self._live: Live | None = None
        self.lines = 0  # views shown
        self.timeline: list[Sample] = []  # one sample per view, and one at the end
        self._mark: tuple[float, int, int, Counts | None] = (self._started, 0, 0, None)

    def start(self) -> None:
        """Open the CSV history and, on a terminal, the live table."""
        self._started = self._last_view = self._now()
        self._mark = (self._started, 0, 0, None)
        if self.csv is not None:
            self.csv.open()
        console = self._console
        if console is not None and console.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=console), auto_refresh=False, transient=False)
            self._live.start()

    def stop(self) -> None:
        """Last history rows, files and sample, then close the view and the files."""
        self.tick_csv()
        self.sample()
        if self.csv is not None:
            self.csv.close()
        if self._live is not None:
            self._live.stop()
            self._live = None

    async def run(self) -> None:
        """Refresh the view every ``every_s`` and the CSV every ``csv_every_s`` until cancelled."""
        step = min(self.every_s, self.csv_every_s if self.csv is not None else math.inf)
        next_view = self.every_s
        next_csv = self.csv_every_s
        while True:
            await asyncio.sleep(step)
            elapsed = self._now() - self._started
            if self.csv is not None and elapsed >= next_csv - 1e-6:
                self.tick_csv()
                next_csv += self.csv_every_s
            if elapsed >= next_view - 1e-6:
                self.show()
                self.sample()
                next_view += self.every_s
            if self._on_tick is not None:
                self._on_tick()

    def tick_csv(self) -> None:
        """Append a history row set, rewrite the stats and failures files."""
        if self.csv is None:
            return
        now = self._now()
        self.csv.append_history(self.stats, self._epoch(), now, self._users())
        self.csv.write_stats(self.stats, now - self._started)
        self.csv.write_failures(self.stats)

    def sample(self) -> None:
        """Add this moment to :attr:`timeline` (the interval since the previous sample)."""
        now, total = self._now(), self.stats.total
        since, requests, failed, counts = self._mark
        if now - since <= 0:
            return
        point: Sample = {
            "t": round(now - self._started, 3),
            "users": self._users(),
            "requests": total.requests,
            "rps": (total.requests - requests) / (now - since),
            "fps": (total.failed - failed) / (now - since),
        }
        interval = total.hist.since(counts)
        if interval.total:
            for p in (50, 95, 99):
                point[f"p{p}"] = interval.value_at_percentile(p) / 1000
        self.timeline.append(point)
        self._mark = (now, total.requests, total.failed, total.hist.snapshot())

    def show(self) -> None:
        """Show the table (terminal) or one line (elsewhere) for this moment."""
        if self._console is None:
            return
        now = self._now()
        rows = rows_of(self.stats, self._before, now - self._last_view)
        self._last_view = now
        seconds, users = now - self._started, self._users()
        self.lines += 1
        if self._live is not None:
            self._live.update(_table(rows, seconds, users), refresh=True)
            return
        total = rows[-1]
        errors = f", errors: {total.errors}" if total.errors else ""
        self._console.write(
            f"  {seconds:6.1f} s: {total.requests} requests, {total.rps:.1f} req/s now, "
            f"{total.fps:.1f} failures/s, p50/p95/p99 {total.p50:.1f}/{total.p95:.1f}/"
            f"{total.p99:.1f} ms, {users} users{errors}\n"
        )
        self._console.flush()
