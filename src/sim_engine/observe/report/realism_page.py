"""The realism report (``sim-engine realism --html``) as one self-contained HTML page.

The table and the facts come from :mod:`sim_engine.realism`; the charts use the run
report's Plotly style (:mod:`sim_engine.observe.report.plots`).

Charts: hourly shares in local time, weekday shares, and the retention curve on
log-log axes with its power-law fit, one trace per log; above them the facts table.
plotly.js is inlined once, so the page works offline.
"""

from __future__ import annotations

import html
from typing import Any

from sim_engine.observe.report.plots import div, figure
from sim_engine.realism.estimators import FactDistances
from sim_engine.realism.report import NamedFacts, row_values

__all__ = ["html_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 18px; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f3f4f6; }
h2 { font-size: 16px; margin: 22px 0 4px; }
"""
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _rhythm_charts(logs: list[NamedFacts]) -> list[str]:
    import plotly.graph_objects as go

    hourly = figure(
        [
            go.Scatter(x=list(range(24)), y=list(f.hourly_shares), mode="lines+markers", name=n)
            for n, f in logs
        ],
        xaxis={"title": "local hour of day", "dtick": 2},
        yaxis={"title": "share of events", "tickformat": ".0%"},
    )
    weekly = figure(
        [go.Bar(x=_WEEKDAYS, y=list(f.weekday_shares), name=n) for n, f in logs],
        yaxis={"title": "share of events", "tickformat": ".0%"},
        barmode="group",
    )
    return [
        "<h2>Hourly shares in local time</h2>" + div(hourly, "hourly"),
        "<h2>Weekday shares</h2>" + div(weekly, "weekday"),
    ]


def _retention_chart(logs: list[NamedFacts]) -> str:
    import plotly.graph_objects as go

    traces: list[Any] = []
    for name, f in logs:
        days = [d for d, _, _ in f.retention]
        shares = [s for _, s, _ in f.retention]
        traces.append(go.Scatter(x=days, y=shares, mode="markers", name=name))
        if f.retention_exponent is not None and days:
            # The fit's line through the geometric mean point of days 1..30 with a share.
            fit = [(d, s) for d, s in zip(days, shares, strict=True) if d <= 30 and s > 0]
            mean_log_day = sum(_log(d) for d, _ in fit) / len(fit)
            mean_log_share = sum(_log(s) for _, s in fit) / len(fit)
            xs = [d for d, _ in fit]
            ys = [
                10 ** (mean_log_share - f.retention_exponent * (_log(x) - mean_log_day)) for x in xs
            ]
            traces.append(
                go.Scatter(x=xs, y=ys, mode="lines", name=f"{name}: N^-{f.retention_exponent:.2f}")
            )
    fig = figure(
        traces,
        xaxis={"title": "day N after the first event", "type": "log"},
        yaxis={"title": "share active on day N", "type": "log"},
    )
    return "<h2>Retention curve (log-log) and power-law fit</h2>" + div(fig, "retention")


def _log(x: float) -> float:
    import math

    return math.log10(x)


def _table(logs: list[NamedFacts], dist: FactDistances | None) -> str:
    head = ["fact", *(n for n, _ in logs)] + (["distance (2nd − 1st)"] if dist else [])
    rows = row_values(logs, dist)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in rows
    )
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{body}</table>"


def html_report(logs: list[NamedFacts], dist: FactDistances | None) -> str:
    """The report page (a complete HTML document, plotly.js inlined)."""
    import plotly.offline

    names = " vs ".join(html.escape(n) for n, _ in logs)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>sim-engine realism: {names}</title>",
            f"<style>{_CSS}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            "</head><body>",
            f"<h1>Realism: {names}</h1>",
            _table(logs, dist),
            *_rhythm_charts(logs),
            _retention_chart(logs),
            "<p>Facts, estimators and sources: docs/realism.md in sim-engine.</p>",
            "</body></html>",
            "",
        ]
    )
