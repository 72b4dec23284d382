"""The realism report of one or two logs: a rich table, a JSON document, an HTML page.

One row per fact (:data:`ROWS`), one column per log, and with two logs a column of
distances (:class:`~sim_engine.realism.estimators.FactDistances`). The HTML page
(:func:`html_report`, in :mod:`sim_engine.realism.charts`) adds Plotly charts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from sim_engine.realism.estimators import FactDistances, RealismFacts

__all__ = ["ROWS", "NamedFacts", "json_report", "row_values", "terminal_table"]

NamedFacts = tuple[str, RealismFacts]
"""A log's name (its path) and its facts."""

_BLOCKS = "▁▂▃▄▅▆▇█"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _num(digits: int) -> Callable[[float | None], str]:
    def fmt(x: float | None) -> str:
        return "—" if x is None else f"{x:,.{digits}f}"

    return fmt


def _duration(x: float | None) -> str:
    if x is None:
        return "—"
    if x < 120:
        return f"{x:.0f} s"
    return f"{x / 60:.1f} min" if x < 7_200 else f"{x / 3_600:.1f} h"


def sparkline(shares: tuple[float, ...]) -> str:
    """Shares as one line of block characters, scaled to the largest."""
    top = max(shares) if shares else 0.0
    if top <= 0:
        return ""
    return "".join(_BLOCKS[min(int(s / top * (len(_BLOCKS) - 1) + 0.5), 7)] for s in shares)


def _hours(f: RealismFacts) -> str:
    shares = f.hourly_shares
    peak, trough = shares.index(max(shares)), shares.index(min(shares))
    zone = "" if f.local_time else " (UTC: no time zone in the log)"
    return f"{sparkline(shares)} peak {peak:02d}h, trough {trough:02d}h{zone}"


def _weekdays(f: RealismFacts) -> str:
    return sparkline(f.weekday_shares) + " Mon..Sun"


_Row = tuple[str, Callable[[RealismFacts], str], str | None, Callable[[float | None], str]]

ROWS: tuple[_Row, ...] = (
    ("events", lambda f: f"{f.events:,}", None, _num(0)),
    ("users", lambda f: f"{f.users:,}", None, _num(0)),
    ("span (days)", lambda f: f"{f.span_days:,.1f}", None, _num(1)),
    ("hourly shares (local)", _hours, "hourly_l1", _num(3)),
    ("trough / peak", lambda f: f"{f.trough_peak:.3f}", None, _num(3)),
    ("weekday shares", _weekdays, "weekday_l1", _num(3)),
    ("weekend / weekday", lambda f: _num(2)(f.weekend_weekday), None, _num(2)),
    ("burstiness B (median)", lambda f: _num(3)(f.burstiness_median), "burstiness_median", _num(3)),
    ("memory M (median)", lambda f: _num(3)(f.memory_median), None, _num(3)),
    ("users with ≥ 10 events", lambda f: f"{f.burst_users:,}", None, _num(0)),
    ("gap density slope 1 min–1 wk", lambda f: _num(2)(f.iet_slope), None, _num(2)),
    ("Gini of events per user", lambda f: f"{f.gini_events:.3f}", "gini_events", _num(3)),
    (
        "top 1% / 10% of events",
        lambda f: f"{_pct(f.top1_events)} / {_pct(f.top10_events)}",
        None,
        _num(3),
    ),
    ("Gini of writes per user", lambda f: _num(3)(f.gini_writes), "gini_writes", _num(3)),
    (
        "top 1% / 10% of writes",
        lambda f: f"{_pct(f.top1_writes)} / {_pct(f.top10_writes)}",
        None,
        _num(3),
    ),
    ("users who never write", lambda f: _pct(f.never_write_share), None, _num(3)),
    ("reads per write", lambda f: _num(1)(f.reads_per_write), None, _num(1)),
    ("sessions (30 min)", lambda f: f"{f.sessions:,}", None, _num(0)),
    (
        "events per session",
        lambda f: f"{f.session_mean_events:.2f}",
        "session_mean_events",
        _num(2),
    ),
    ("single-event sessions", lambda f: _pct(f.session_single_share), None, _num(3)),
    (
        "session duration mean / median",
        lambda f: (
            f"{_duration(f.session_mean_duration_s)} / {_duration(f.session_median_duration_s)}"
        ),
        None,
        _num(0),
    ),
    ("retention D1", lambda f: _pct(f.d1), "d1", _pct),
    ("retention D7", lambda f: _pct(f.d7), "d7", _pct),
    ("retention D30", lambda f: _pct(f.d30), "d30", _pct),
    (
        "retention power law: exponent (R²)",
        lambda f: (
            "—"
            if f.retention_exponent is None
            else f"{f.retention_exponent:.2f} ({f.retention_r2 or 0:.2f})"
        ),
        None,
        _num(2),
    ),
)
"""Table rows: label, the value of a log, the distance attribute (or None), its format."""


def row_values(logs: list[NamedFacts], dist: FactDistances | None) -> list[list[str]]:
    """The table as text: one list per row (label, one value per log, the distance)."""
    rows = []
    for label, value, attr, fmt in ROWS:
        cells = [label, *(value(f) for _, f in logs)]
        if dist is not None:
            d = getattr(dist, attr) if attr else None
            cells.append("" if attr is None else fmt(d))
        rows.append(cells)
    return rows


def terminal_table(logs: list[NamedFacts], dist: FactDistances | None) -> Table:
    """A rich table of the facts of one or two logs (and the distances between two)."""
    table = Table(title="Realism: stylized facts", title_justify="left")
    table.add_column("fact", style="bold")
    for name, _ in logs:
        table.add_column(Path(name).name or name, overflow="fold")
    if dist is not None:
        table.add_column("distance (2nd − 1st)", justify="right")
    for cells in row_values(logs, dist):
        table.add_row(*cells)
    return table


def json_report(logs: list[NamedFacts], dist: FactDistances | None) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``logs`` (source and facts) and ``distances``."""
    return {
        "logs": [{"source": name, "facts": f.to_dict()} for name, f in logs],
        "distances": None if dist is None else dist.to_dict(),
    }
