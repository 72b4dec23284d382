"""The report's charts drawn from ``actions.jsonl`` (see :class:`~.read.ActionStats`).

Each ``chart_*`` function returns ``(figure, note)``: a Plotly figure and the
one-line note shown above it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sim_engine.observe.report.plots import figure, hours
from sim_engine.observe.report.read import ERROR_CATEGORIES, HOUR_S, ActionStats, utc_text

__all__ = [
    "chart_actions",
    "chart_errors",
    "chart_latency",
    "chart_pages",
    "chart_rhythm",
    "chart_sessions",
]

_ACTION_COLORS = {
    "browse_feed": "#4C78A8",
    "read_post": "#72B7B2",
    "create_post": "#F58518",
    "update_post": "#EECA3B",
    "delete_post": "#E45756",
    "sign_up": "#54A24B",
    "log_in": "#B279A2",
    "delete_account": "#9D755D",
}
_ERROR_COLORS = {
    "timeout": "#F58518",
    "connection": "#E45756",
    "4xx": "#EECA3B",
    "5xx": "#B279A2",
    "bad answer": "#9D755D",
    "skipped": "#BAB0AC",
}


def chart_actions(stats: ActionStats) -> tuple[Any, str]:
    """Actions per simulated hour, stacked by action type."""
    import plotly.graph_objects as go

    hour_list = hours(stats)
    xs = [utc_text(h * HOUR_S) for h in hour_list]
    totals: Counter[str] = Counter()
    for counts in stats.per_hour.values():
        totals.update(counts)
    traces = [
        go.Bar(
            x=xs,
            y=[stats.per_hour.get(h, Counter())[action] for h in hour_list],
            name=action,
            marker={"color": _ACTION_COLORS.get(action)},
        )
        for action, _n in totals.most_common()
    ]
    fig = figure(
        traces,
        barmode="stack",
        bargap=0.05,
        xaxis={"title": "simulated hour (UTC)"},
        yaxis={"title": "actions"},
    )
    return fig, "Actions started in each simulated hour, stacked by action type."


def chart_rhythm(stats: ActionStats) -> tuple[Any, str]:
    """Actions by the users' local hour of day, stacked by persona."""
    import plotly.graph_objects as go

    day_hours = list(range(24))
    order = sorted(stats.rhythm, key=lambda p: -sum(stats.rhythm[p].values()))
    traces = [go.Bar(x=day_hours, y=[stats.rhythm[p][h] for h in day_hours], name=p) for p in order]
    fig = figure(
        traces,
        barmode="stack",
        bargap=0.1,
        xaxis={"title": "local hour of day (the user's own time zone)", "dtick": 2},
        yaxis={"title": "actions"},
    )
    note = (
        "All actions of the run by the hour of day in each user's own time zone, "
        "stacked by persona: the routine's daily rhythm."
    )
    return fig, note


def chart_latency(stats: ActionStats) -> tuple[Any, str]:
    """Latency p50/p95/p99 per simulated hour (a log axis when they span over 50x)."""
    import plotly.graph_objects as go

    hour_list = sorted(stats.latency)
    xs = [utc_text(h * HOUR_S) for h in hour_list]
    traces = [
        go.Scatter(
            x=xs,
            y=[stats.latency[h][i] for h in hour_list],
            name=name,
            mode="lines",
            line={"width": width},
        )
        for i, (name, width) in enumerate((("p50", 2), ("p95", 1.5), ("p99", 1.2)))
    ]
    values = [v for h in hour_list for v in stats.latency[h] if v > 0]
    log = bool(values) and max(values) / min(values) > 50
    fig = figure(
        traces,
        xaxis={"title": "simulated hour (UTC)"},
        yaxis={"title": "wall milliseconds", "type": "log" if log else "linear"},
    )
    note = (
        "Latency percentiles of the actions sent in each simulated hour "
        "(HDR histograms, wall milliseconds; skipped actions excluded)."
    )
    return fig, note


def chart_pages(stats: ActionStats) -> tuple[Any, str]:
    """Navigation Timing of browser steps per simulated hour: p50 of TTFB, DOMContentLoaded
    and load, and p95 of load."""
    import plotly.graph_objects as go

    lines = (
        ("ttfb", 0, "TTFB p50"),
        ("dcl", 0, "DOMContentLoaded p50"),
        ("load", 0, "load p50"),
        ("load", 1, "load p95"),
    )
    traces = []
    for phase, i, name in lines:
        per_hour = stats.page_timing.get(phase, {})
        hour_list = sorted(per_hour)
        traces.append(
            go.Scatter(
                x=[utc_text(h * HOUR_S) for h in hour_list],
                y=[per_hour[h][i] for h in hour_list],
                name=name,
                mode="lines",
                line={"dash": "dot"} if i else {},
            )
        )
    fig = figure(
        traces, xaxis={"title": "simulated hour (UTC)"}, yaxis={"title": "wall milliseconds"}
    )
    if not stats.pages:
        return fig, "No browser steps in this run (see docs/browser.md: --browser-share)."
    problems = stats.page_problems
    note = (
        f"{stats.pages:,} browser steps; {problems['console errors']:,} console errors, "
        f"{problems['failed requests']:,} failed requests. Navigation Timing of the "
        "documents they opened, per simulated hour (wall milliseconds from the navigation's start)."
    )
    return fig, note


def _error_traces(stats: ActionStats, seen: Counter[str]) -> list[Any]:
    """The success-rate line (on ``y2``) and one bar per error category seen."""
    import plotly.graph_objects as go

    hour_list = hours(stats)
    xs = [utc_text(h * HOUR_S) for h in hour_list]
    totals = {h: sum(stats.per_hour.get(h, Counter()).values()) for h in hour_list}

    def rate(n: int, h: int) -> float | None:
        return round(100.0 * n / totals[h], 3) if totals[h] else None

    traces: list[Any] = [
        go.Scatter(
            x=xs,
            y=[rate(stats.ok_per_hour[h], h) for h in hour_list],
            name="success rate",
            mode="lines",
            line={"color": "#54A24B", "width": 2},
            yaxis="y2",
        )
    ]
    for category in ERROR_CATEGORIES:
        if not seen[category]:
            continue
        traces.append(
            go.Bar(
                x=xs,
                y=[rate(stats.errors_per_hour.get(h, Counter())[category], h) for h in hour_list],
                name=f"{category} errors",
                marker={"color": _ERROR_COLORS[category]},
            )
        )
    return traces


def chart_errors(stats: ActionStats) -> tuple[Any, str]:
    """Success rate (line) and error rates by category (stacked bars) per simulated hour."""
    seen: Counter[str] = Counter()
    for errors in stats.errors_per_hour.values():
        seen.update(errors)
    traces = _error_traces(stats, seen)
    if not sum(seen.values()):  # one axis: the success line alone
        traces[0].update(yaxis="y")
        fig = figure(
            traces,
            showlegend=True,
            xaxis={"title": "simulated hour (UTC)"},
            yaxis={"title": "success rate (%)", "range": [0, 102]},
        )
        return fig, "Line: share of actions that succeeded. No action failed in this run."
    fig = figure(
        traces,
        barmode="stack",
        bargap=0.05,
        xaxis={"title": "simulated hour (UTC)"},
        yaxis={"title": "error rate (% of actions)", "rangemode": "tozero"},
        yaxis2={
            "title": "success rate (%)",
            "overlaying": "y",
            "side": "right",
            "range": [0, 102],
            "tickvals": [0, 20, 40, 60, 80, 100],
            "showgrid": False,
        },
        margin={"l": 60, "r": 60, "t": 20, "b": 50},
    )
    parts = ", ".join(f"{c} {seen[c]:,}" for c in ERROR_CATEGORIES if seen[c])
    note = f"Line: share of actions that succeeded. Bars: failed actions by cause ({parts})."
    return fig, note


def _median(lengths: Counter[int], total: int) -> int:
    cumulative = 0
    for n in sorted(lengths):
        cumulative += lengths[n]
        if cumulative * 2 >= total:
            return n
    return 0


def chart_sessions(stats: ActionStats) -> tuple[Any, str]:
    """The distribution of actions per session (sign-up, log-in and cleanup excluded)."""
    import plotly.graph_objects as go

    lengths = stats.session_lengths
    xs = list(range(1, max(lengths) + 1)) if lengths else []
    fig = figure(
        [go.Bar(x=xs, y=[lengths[n] for n in xs], name="sessions", marker={"color": "#4C78A8"})],
        bargap=0.1,
        xaxis={"title": "actions in the session"},
        yaxis={"title": "sessions"},
        showlegend=False,
    )
    total = sum(lengths.values())
    if not total:
        return fig, "No session had an action other than sign-up, log-in or cleanup."
    mean = sum(n * c for n, c in lengths.items()) / total
    median = _median(lengths, total)
    sessions = f"{total:,} session{'' if total == 1 else 's'}"
    note = (
        f"Actions per session (per user and session id; sign-up, log-in and cleanup "
        f"excluded): {sessions}, mean {mean:.1f}, median {median}, longest {max(lengths)}."
    )
    return fig, note
