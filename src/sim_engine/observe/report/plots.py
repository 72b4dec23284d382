"""Shared pieces of the report's charts: the Plotly figure and its HTML, tables, labels.

Plotly is imported lazily (inside the functions): importing the report costs
nothing until a page is built.
"""

from __future__ import annotations

import html
from typing import Any

from sim_engine.observe.report.read import ActionStats, iso_to_utc

__all__ = ["day_label", "div", "figure", "hours", "table"]

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_TEMPLATE = "plotly_white"


def figure(traces: list[Any], **layout: Any) -> Any:
    """A ``plotly.graph_objects.Figure`` of ``traces`` in the report's style.

    ``layout`` entries override the defaults (height 380 px, white template,
    horizontal legend below the plot).
    """
    import plotly.graph_objects as go

    base: dict[str, Any] = {
        "template": _TEMPLATE,
        "height": 380,
        "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
    }
    base.update(layout)
    return go.Figure(data=traces, layout=base)


def div(fig: Any, chart_id: str) -> str:
    """The figure as an HTML ``<div id="chart-<chart_id>">`` (plotly.js not included)."""
    import plotly.io as pio

    return str(
        pio.to_html(
            fig,
            config=_PLOTLY_CONFIG,
            include_plotlyjs=False,
            full_html=False,
            default_height=f"{fig.layout.height}px",
            div_id=f"chart-{chart_id}",
            validate=False,
        )
    )


def hours(stats: ActionStats) -> list[int]:
    """Every simulated hour from the first to the last one with an action (gaps included)."""
    keys = set(stats.per_hour)
    if not keys:
        return []
    return list(range(min(keys), max(keys) + 1))


def day_label(day: dict[str, Any]) -> str:
    """A day of ``daily_metrics.json`` as ``YYYY-MM-DD HH:MM`` (its UTC start)."""
    try:
        return iso_to_utc(str(day["start"]))[:16]
    except (KeyError, ValueError):
        return str(day.get("date", "?"))


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """An HTML table of text cells (escaped); a "None in this run." note when empty."""
    if not rows:
        return '<p class="note">None in this run.</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="list"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
