"""Locust-compatible CSV files of a load test (``--csv PREFIX``).

Same file names and column names as Locust's ``--csv`` (``locust/stats.py``,
``StatsCSV`` and ``StatsCSVFileWriter``), so scripts and notebooks written for
Locust's output read ours:

* ``PREFIX_stats.csv``: one row per endpoint and an ``Aggregated`` row, rewritten
  every ``--csv-interval`` and at the end;
* ``PREFIX_stats_history.csv``: appended every ``--csv-interval``: a row per
  endpoint and the ``Aggregated`` row (Locust's ``--csv-full-history`` shape).
  Requests/s, failures/s and the percentile columns are those of the interval
  since the previous rows (Locust's "current" figures; ``N/A`` when the
  interval saw no request), the ``Total ...`` columns those of the whole test;
* ``PREFIX_failures.csv``: ``Method, Name, Error, Occurrences``.

Differences from Locust, by design: response times are wall milliseconds with
two decimals (Locust rounds to whole ms, which reads 0 on loopback);
percentiles come from HDR histograms (3 significant digits); ``Average Content
Size`` is 0 (the records keep no body sizes).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sim_engine.runs.load_hist import BatchedHistogram, Counts
from sim_engine.runs.load_stats import LoadStats, Tally

__all__ = ["HISTORY_COLUMNS", "PERCENTILES", "STATS_COLUMNS", "LocustCsv", "split_name"]

PERCENTILES = (50, 66, 75, 80, 90, 95, 98, 99, 99.9, 99.99, 100)
"""Locust's ``PERCENTILES_TO_REPORT`` (as percents)."""

_PERCENT_COLUMNS = [f"{p:g}%" for p in PERCENTILES]

STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *_PERCENT_COLUMNS,
]
"""Columns of ``PREFIX_stats.csv`` (Locust's ``requests_csv_columns``)."""

HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *_PERCENT_COLUMNS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
"""Columns of ``PREFIX_stats_history.csv`` (Locust's ``stats_history_csv_columns``)."""

FAILURE_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
"""Columns of ``PREFIX_failures.csv`` (Locust's ``failures_columns``)."""


def split_name(key: str) -> tuple[str, str]:
    """``GET /posts/{id}`` -> ``("GET", "/posts/{id}")``; an action name -> ``("", name)``."""
    method, sep, path = key.partition(" ")
    if sep and method.isupper() and path.startswith("/"):
        return method, path
    return "", key


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _percentiles(hist: BatchedHistogram) -> list[str]:
    if hist.total == 0:
        return ["N/A"] * len(PERCENTILES)
    return [_ms(hist.value_at_percentile(p)) for p in PERCENTILES]


def _totals(tally: Tally) -> list[Any]:
    """Median, average, min, max response time (ms) and the content size."""
    if tally.requests == 0:
        return [0, 0, 0, 0, 0]
    hist = tally.latency
    return [
        _ms(tally.hist.value_at_percentile(50)),
        _ms(tally.hist.mean()),
        _ms(hist.get_min_value()),
        _ms(hist.get_max_value()),
        0,
    ]


@dataclass
class LocustCsv:
    """Writes the three files for ``prefix`` (``out/run`` -> ``out/run_stats.csv``...).

    Args:
        prefix: path prefix; its directory must exist.

    Raises:
        OSError: a file cannot be written (from :meth:`open` and the writes).
    """

    prefix: str
    _history: IO[str] | None = None
    _last: dict[str, tuple[int, int]] = field(default_factory=dict)
    _last_t: float | None = None
    _counts: dict[str, Counts] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        """The three files."""
        return [Path(f"{self.prefix}_{n}.csv") for n in ("stats", "stats_history", "failures")]

    def open(self) -> None:
        """Create the history file with its header (the other two are rewritten whole)."""
        path = f"{self.prefix}_stats_history.csv"
        # appended to for the whole test, closed by close()
        self._history = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        csv.writer(self._history).writerow(HISTORY_COLUMNS)
        self._history.flush()

    def close(self) -> None:
        """Close the history file."""
        if self._history is not None:
            self._history.close()
            self._history = None

    @staticmethod
    def _entries(stats: LoadStats) -> Iterator[tuple[str, str, Tally]]:
        for key in sorted(stats.by_endpoint):
            method, name = split_name(key)
            yield method, name, stats.by_endpoint[key]
        yield "", "Aggregated", stats.total

    def write_stats(self, stats: LoadStats, wall_s: float) -> None:
        """Rewrite ``PREFIX_stats.csv`` (requests/s over the whole ``wall_s``)."""
        rows = []
        for method, name, t in self._entries(stats):
            rps = t.requests / wall_s if wall_s > 0 else 0.0
            fps = t.failed / wall_s if wall_s > 0 else 0.0
            counts = [method, name, t.requests, t.failed]
            rows.append([*counts, *_totals(t), f"{rps:.6f}", f"{fps:.6f}", *_percentiles(t.hist)])
        _rewrite(Path(f"{self.prefix}_stats.csv"), STATS_COLUMNS, rows)

    def write_failures(self, stats: LoadStats) -> None:
        """Rewrite ``PREFIX_failures.csv``: each endpoint's failures by error."""
        rows = []
        for method, name, t in self._entries(stats):
            if name == "Aggregated":
                continue
            for error, count in sorted(t.messages.items(), key=lambda kv: -kv[1]):
                rows.append([method, name, error, count])
        _rewrite(Path(f"{self.prefix}_failures.csv"), FAILURE_COLUMNS, rows)

    def append_history(self, stats: LoadStats, timestamp: float, now: float, users: int) -> None:
        """Append the rows of this moment: ``timestamp`` (epoch seconds, written whole),
        ``now`` (a monotonic wall clock: current rates are since the previous call)."""
        if self._history is None:
            return
        elapsed = None if self._last_t is None else now - self._last_t
        writer = csv.writer(self._history)
        for method, name, t in self._entries(stats):
            key = f"{method} {name}"
            before = self._last.get(key, (0, 0))
            self._last[key] = (t.requests, t.failed)
            rps = (t.requests - before[0]) / elapsed if elapsed else 0.0
            fps = (t.failed - before[1]) / elapsed if elapsed else 0.0
            interval = t.hist.since(self._counts.get(key))  # this interval's latencies
            self._counts[key] = t.hist.snapshot()
            now_row = [int(timestamp), users, method, name, f"{rps:.6f}", f"{fps:.6f}"]
            writer.writerow([*now_row, *_percentiles(interval), t.requests, t.failed, *_totals(t)])
        self._last_t = now
        self._history.flush()


def _rewrite(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)
