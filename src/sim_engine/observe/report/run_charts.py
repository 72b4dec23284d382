"""The report's charts drawn from ``metrics.json`` and ``daily_metrics.json``.

Users over time, lifecycle states and activity patterns per day, top posters and
most viewed posts (the last two with a table beside the chart).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sim_engine.observe.report.facts import num
from sim_engine.observe.report.plots import day_label, figure, table
from sim_engine.observe.report.read import ReportError, RunFiles, iso_to_utc

__all__ = [
    "PATTERN_COLORS",
    "STATE_COLORS",
    "chart_distribution",
    "chart_posters",
    "chart_users",
    "chart_viewed",
    "has_distribution",
]

STATE_COLORS = {
    "NEW": "#4C78A8",
    "ACTIVE": "#54A24B",
    "CASUAL": "#EECA3B",
    "DORMANT": "#9D755D",
    "CHURNED": "#E45756",
}
"""Lifecycle state -> bar colour (and stacking order) in the states chart."""

PATTERN_COLORS = {
    "DAILY": "#4C78A8",
    "REGULAR": "#72B7B2",
    "WEEKEND": "#F58518",
    "BINGE": "#E45756",
    "MONTHLY": "#B279A2",
}
"""Activity pattern -> bar colour (and stacking order) in the patterns chart."""


def _day_traces(days: list[dict[str, Any]]) -> list[Any]:
    """Users known at the end of each day (dots) and active during it (bars)."""
    import plotly.graph_objects as go

    return [
        go.Scatter(
            x=[iso_to_utc(str(d.get("end", d["start"]))) for d in days],
            y=[d.get("total_users", 0) for d in days],
            name="known at end of day",
            mode="markers",
            marker={"size": 8},
        ),
        go.Bar(
            x=[iso_to_utc(str(d["start"])) for d in days],
            y=[d.get("active_today", 0) for d in days],
            name="active that day",
            opacity=0.35,
            offset=0,
            width=86_400_000,
            customdata=[day_label(d) for d in days],
            hovertemplate="day from %{customdata}: %{y} active<extra></extra>",
        ),
    ]


def chart_users(files: RunFiles) -> tuple[Any, str]:
    """Users joined over time (and, with daily metrics, known and active per day).

    Raises:
        ReportError: ``users_over_time`` in ``metrics.json`` is malformed.
    """
    import plotly.graph_objects as go

    points = [p for p in files.metrics["users_over_time"] if isinstance(p, dict)]
    try:
        xs = [iso_to_utc(str(p["sim_time"])) for p in points]
        ys = [int(p["users"]) for p in points]
    except (KeyError, TypeError, ValueError):
        raise ReportError("metrics.json: malformed 'users_over_time'") from None
    traces = [go.Scatter(x=xs, y=ys, name="users joined", mode="lines", line={"width": 2})]
    note = "Users that had joined (signed up) by each simulated instant"
    if files.days:
        traces += _day_traces(files.days)
        note += "; bars: users active during each simulated day, dots: users known at its end"
    fig = figure(traces, xaxis={"title": "simulated time (UTC)"}, yaxis={"title": "users"})
    return fig, note + "."


def chart_distribution(days: list[dict[str, Any]], key: str, colors: dict[str, str]) -> Any:
    """Users per day by the names in each day's ``key`` mapping, stacked (known names first)."""
    import plotly.graph_objects as go

    names: Counter[str] = Counter()
    for day in days:
        dist = day.get(key)
        if isinstance(dist, dict):
            names.update({str(k): v for k, v in dist.items() if isinstance(v, (int, float))})
    known = list(colors)
    order = sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))
    xs = [day_label(d) for d in days]
    traces = [
        go.Bar(
            x=xs,
            y=[(d.get(key) or {}).get(name, 0) for d in days],
            name=name,
            marker={"color": colors.get(name)},
        )
        for name in order
    ]
    return figure(
        traces,
        barmode="stack",
        showlegend=True,
        legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
        xaxis={"title": "simulated day (starting, UTC)", "type": "category"},
        yaxis={"title": "users"},
    )


def has_distribution(days: list[dict[str, Any]] | None, key: str) -> bool:
    """True when some day has a non-empty ``key`` mapping."""
    return bool(days) and any(isinstance(d.get(key), dict) and d.get(key) for d in days or [])


def chart_posters(metrics: dict[str, Any]) -> tuple[Any, str]:
    """Top posters: ``(figure, HTML table)``."""
    import plotly.graph_objects as go

    rows = [p for p in metrics["top_posters"] if isinstance(p, dict)]
    labels = [f"{p.get('name', '?')} (#{p.get('user_id', '?')})" for p in rows]
    fig = figure(
        [
            go.Bar(
                x=[p.get("posts", 0) for p in rows][::-1],
                y=labels[::-1],
                orientation="h",
                customdata=[p.get("persona", "?") for p in rows][::-1],
                hovertemplate="%{y}, %{customdata}: %{x} posts<extra></extra>",
                marker={"color": "#F58518"},
                name="posts",
            )
        ],
        height=max(260, 60 + 26 * len(rows)),
        margin={"l": 200, "r": 20, "t": 30, "b": 40},
        xaxis={"title": "posts created"},
        showlegend=False,
    )
    listing = table(
        ("#", "user", "persona", "posts"),
        [
            (str(i), labels[i - 1], str(p.get("persona", "?")), num(p.get("posts", 0)))
            for i, p in enumerate(rows, 1)
        ],
    )
    return fig, listing


def chart_viewed(metrics: dict[str, Any], names: dict[int, str]) -> tuple[Any, str]:
    """Most viewed posts: ``(figure, HTML table)``; authors named from ``names``."""
    import plotly.graph_objects as go

    rows = [p for p in metrics["top_viewed_posts"] if isinstance(p, dict)]

    def author(p: dict[str, Any]) -> str:
        uid = p.get("author_user_id")
        if uid is None:
            return "unknown (created before the run)"
        return f"{names.get(uid, 'user')} (#{uid})" if isinstance(uid, int) else str(uid)

    fig = figure(
        [
            go.Bar(
                x=[p.get("views", 0) for p in rows][::-1],
                y=[f"post {p.get('post_id', '?')}" for p in rows][::-1],
                orientation="h",
                customdata=[author(p) for p in rows][::-1],
                hovertemplate="%{y} by %{customdata}: %{x} views<extra></extra>",
                marker={"color": "#72B7B2"},
                name="views",
            )
        ],
        height=max(260, 60 + 26 * len(rows)),
        margin={"l": 100, "r": 20, "t": 30, "b": 40},
        xaxis={"title": "reads by simulated users"},
        showlegend=False,
    )
    listing = table(
        ("#", "post", "author", "views"),
        [
            (str(i), str(p.get("post_id", "?")), author(p), num(p.get("views", 0)))
            for i, p in enumerate(rows, 1)
        ],
    )
    return fig, listing
