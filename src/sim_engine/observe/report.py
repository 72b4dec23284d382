"""One self-contained HTML report of a finished run (``sim-engine report DIR``).

Reads a run directory (``metrics.json``, ``actions.jsonl``, and when present
``daily_metrics.json`` and ``users.jsonl``) and writes ``DIR/report.html``: a
header with the run's facts and Plotly charts. The plotly.js bundle is inlined
once in the page, so the file works offline and can be mailed or archived.

``actions.jsonl`` is read in one streaming pass with memory bounded by the
number of users and simulated hours, never by the number of actions: counts are
aggregated per simulated hour, latency percentiles per simulated hour come from
HDR histograms (only a window of recent hours is kept open; older ones are kept
compressed), and session lengths from one open session per user.

An edge module: the core never imports it; the CLI imports it lazily.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hdrh.histogram import HdrHistogram

__all__ = [
    "CHART_TITLES",
    "REPORT_NAME",
    "NotARunDirError",
    "ReportError",
    "build_report",
    "write_report",
]

REPORT_NAME = "report.html"
"""File name of the report inside the run directory."""

CHART_TITLES: dict[str, str] = {
    "users": "Users over time",
    "actions": "Actions per simulated hour, by type",
    "rhythm": "Daily rhythm: actions by local hour of day",
    "latency": "Latency per simulated hour: p50, p95, p99",
    "errors": "Success and error rates per simulated hour",
    "states": "Lifecycle states per day",
    "patterns": "Activity patterns per day",
    "posters": "Top posters",
    "viewed": "Most viewed posts",
    "sessions": "Session length distribution",
}
"""Chart id -> title, in page order (each chart's div id is ``chart-<id>``)."""

ERROR_CATEGORIES = ("timeout", "connection", "4xx", "5xx", "bad answer", "skipped")
"""How failed actions are grouped in the error-rate chart."""

_HOUR_S = 3600
_MAX_LATENCY_US = 600_000_000  # 10 wall minutes, as in metrics.py
_OPEN_HOURS = 48  # simulated hours of latency histograms kept uncompressed
_SESSION_EXCLUDED = frozenset({"sign_up", "log_in", "delete_account"})
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_TEMPLATE = "plotly_white"
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
_STATE_COLORS = {
    "NEW": "#4C78A8",
    "ACTIVE": "#54A24B",
    "CASUAL": "#EECA3B",
    "DORMANT": "#9D755D",
    "CHURNED": "#E45756",
}
_PATTERN_COLORS = {
    "DAILY": "#4C78A8",
    "REGULAR": "#72B7B2",
    "WEEKEND": "#F58518",
    "BINGE": "#E45756",
    "MONTHLY": "#B279A2",
}
_ERROR_COLORS = {
    "timeout": "#F58518",
    "connection": "#E45756",
    "4xx": "#EECA3B",
    "5xx": "#B279A2",
    "bad answer": "#9D755D",
    "skipped": "#BAB0AC",
}


class ReportError(ValueError):
    """A run file is missing or unreadable; the message is one line naming the file."""


class NotARunDirError(ReportError):
    """The directory does not exist or holds no run outputs."""


# -- reading ------------------------------------------------------------------------------


def _read_json(path: Path, *, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise ReportError(f"{path}: missing (the run directory has no {path.name})")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON Lines file."""
    try:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise ReportError(f"{path}: line {number} is not valid JSON") from None
                if not isinstance(obj, dict):
                    raise ReportError(f"{path}: line {number} is not a JSON object")
                yield number, obj
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _utc(sim_ts: float) -> str:
    """Simulated epoch seconds -> ``YYYY-MM-DD HH:MM:SS`` (UTC), as Plotly date axes want."""
    return datetime.fromtimestamp(sim_ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _iso_to_utc(value: str) -> str:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _local_hour(sim_time: str) -> int:
    """The local hour of day of an ISO 8601 time with offset (``...THH:MM:SS...``)."""
    if len(sim_time) >= 13 and sim_time[10] == "T" and sim_time[11:13].isdigit():
        return int(sim_time[11:13])
    return datetime.fromisoformat(sim_time).hour


def error_category(status: int, error: str | None, skipped: bool) -> str:
    """Group a failed action: one of :data:`ERROR_CATEGORIES`."""
    if skipped:
        return "skipped"
    if status == 0:
        text = (error or "").lower()
        return "timeout" if "timeout" in text or "timed out" in text else "connection"
    if 400 <= status < 500:
        return "4xx"
    if status >= 500:
        return "5xx"
    return "bad answer"  # an answer arrived but was not what the action needed


class _HourlyLatency:
    """Latency p50/p95/p99 per simulated hour from HDR histograms, memory bounded.

    Histograms of the last ``_OPEN_HOURS`` simulated hours stay open; older ones
    are compressed (a few hundred bytes each) and reopened if a late record arrives.
    """

    def __init__(self) -> None:
        self._open: dict[int, HdrHistogram] = {}
        self._closed: dict[int, bytes] = {}
        self._pool: list[HdrHistogram] = []
        self._newest: int | None = None

    def record(self, hour: int, latency_ms: float) -> None:
        hist = self._open.get(hour)
        if hist is None:
            hist = self._open[hour] = self._take()
            encoded = self._closed.pop(hour, None)
            if encoded is not None:
                hist.decode_and_add(encoded)
        hist.record_value(max(1, min(int(latency_ms * 1000), _MAX_LATENCY_US)))
        if self._newest is None or hour > self._newest:
            self._newest = hour
            for old in [h for h in self._open if h < hour - _OPEN_HOURS]:
                self._close(old)

    def _take(self) -> HdrHistogram:
        if self._pool:
            return self._pool.pop()
        return HdrHistogram(1, _MAX_LATENCY_US, 2)

    def _close(self, hour: int) -> None:
        hist = self._open.pop(hour)
        self._closed[hour] = hist.encode()
        hist.reset()
        self._pool.append(hist)

    def percentiles(self) -> dict[int, tuple[float, float, float]]:
        """Return hour -> (p50, p95, p99) in wall milliseconds."""
        out: dict[int, tuple[float, float, float]] = {}
        for hour in sorted({*self._open, *self._closed}):
            hist = self._open.get(hour)
            if hist is None:
                hist = self._take()
                hist.decode_and_add(self._closed[hour])
                self._pool.append(hist)
            if hist.get_total_count():
                out[hour] = (
                    hist.get_value_at_percentile(50) / 1000.0,
                    hist.get_value_at_percentile(95) / 1000.0,
                    hist.get_value_at_percentile(99) / 1000.0,
                )
            if hour not in self._open:
                hist.reset()
        return out


@dataclass
class ActionStats:
    """What one pass over ``actions.jsonl`` yields (all bounded by hours and users)."""

    actions: int = 0
    per_hour: dict[int, Counter[str]] = field(default_factory=dict)
    ok_per_hour: Counter[int] = field(default_factory=Counter)
    errors_per_hour: dict[int, Counter[str]] = field(default_factory=dict)
    rhythm: dict[str, Counter[int]] = field(default_factory=dict)
    latency: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    session_lengths: Counter[int] = field(default_factory=Counter)


def read_actions(path: Path) -> ActionStats:
    """Aggregate ``actions.jsonl`` in one streaming pass.

    Raises:
        ReportError: the file is missing, unreadable, or a line is not an action.
    """
    if not path.is_file():
        raise ReportError(f"{path}: missing (the run directory has no {path.name})")
    stats = ActionStats()
    latency = _HourlyLatency()
    open_sessions: dict[int, tuple[int, int]] = {}  # user -> (session_id, actions so far)
    for number, rec in _iter_jsonl(path):
        try:
            sim_ts = float(rec["sim_ts"])
            action = str(rec["action"])
            ok = bool(rec["ok"])
            status = int(rec["status"])
            latency_ms = float(rec["latency_ms"])
            user_id = int(rec["user_id"])
            local_hour = _local_hour(str(rec["sim_time"]))
            persona = str(rec.get("persona") or "?")
            skipped = bool(rec.get("skipped", False))
            session_id = int(rec.get("session_id") or 0)
            cleanup = rec.get("state") == "cleanup"
        except KeyError as exc:
            raise ReportError(f"{path}: line {number} has no {exc.args[0]!r} field") from None
        except (TypeError, ValueError):
            raise ReportError(f"{path}: line {number} is not a valid action record") from None
        if not math.isfinite(sim_ts):
            raise ReportError(f"{path}: line {number} has a non-finite sim_ts")
        stats.actions += 1
        hour = int(sim_ts // _HOUR_S)
        counts = stats.per_hour.get(hour)
        if counts is None:
            counts = stats.per_hour[hour] = Counter()
        counts[action] += 1
        if ok:
            stats.ok_per_hour[hour] += 1
        else:
            errors = stats.errors_per_hour.get(hour)
            if errors is None:
                errors = stats.errors_per_hour[hour] = Counter()
            errors[error_category(status, rec.get("error"), skipped)] += 1
        by_hour = stats.rhythm.get(persona)
        if by_hour is None:
            by_hour = stats.rhythm[persona] = Counter()
        by_hour[local_hour] += 1
        if not skipped:
            latency.record(hour, latency_ms)
        if cleanup or action in _SESSION_EXCLUDED:
            continue
        current = open_sessions.get(user_id)
        if current is not None and current[0] == session_id:
            open_sessions[user_id] = (session_id, current[1] + 1)
        else:
            if current is not None:
                stats.session_lengths[current[1]] += 1
            open_sessions[user_id] = (session_id, 1)
    for _session_id, length in open_sessions.values():
        stats.session_lengths[length] += 1
    stats.latency = latency.percentiles()
    return stats


def _user_names(path: Path, wanted: set[int]) -> dict[int, str]:
    """Names of the wanted users from ``users.jsonl`` (optional: empty if absent)."""
    names: dict[int, str] = {}
    if not wanted or not path.is_file():
        return names
    for _number, rec in _iter_jsonl(path):
        user_id = rec.get("user_id")
        if isinstance(user_id, int) and user_id in wanted:
            names[user_id] = str(rec.get("name") or f"user {user_id}")
    return names


# -- run facts ------------------------------------------------------------------------------


@dataclass
class _RunFiles:
    metrics: dict[str, Any]
    days: list[dict[str, Any]] | None  # None: no daily_metrics.json
    actions: ActionStats
    names: dict[int, str]


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.exists():
        raise NotARunDirError(f"{run_dir}: no such directory")
    if not run_dir.is_dir():
        raise NotARunDirError(f"{run_dir}: not a directory")
    if not (run_dir / "metrics.json").exists() and not (run_dir / "actions.jsonl").exists():
        raise NotARunDirError(f"{run_dir}: not a run directory (no metrics.json or actions.jsonl)")


def _load(run_dir: Path) -> _RunFiles:
    _check_run_dir(run_dir)
    metrics_path = run_dir / "metrics.json"
    metrics = _read_json(metrics_path)
    if not isinstance(metrics, dict):
        raise ReportError(f"{metrics_path}: not a metrics object")
    for key, kind in (
        ("summary", dict),
        ("users_over_time", list),
        ("top_posters", list),
        ("top_viewed_posts", list),
    ):
        if not isinstance(metrics.get(key), kind):
            raise ReportError(f"{metrics_path}: missing or malformed {key!r}")
    daily_path = run_dir / "daily_metrics.json"
    days = _read_json(daily_path, required=False)
    if days is not None and not (isinstance(days, list) and all(isinstance(d, dict) for d in days)):
        raise ReportError(f"{daily_path}: not a list of days")
    for number, day in enumerate(days or [], 1):
        try:
            _iso_to_utc(str(day["start"]))
            _iso_to_utc(str(day.get("end", day["start"])))
        except (KeyError, ValueError):
            raise ReportError(f"{daily_path}: day {number} has no valid 'start' time") from None
    actions = read_actions(run_dir / "actions.jsonl")
    wanted = {
        p["author_user_id"]
        for p in metrics["top_viewed_posts"]
        if isinstance(p, dict) and isinstance(p.get("author_user_id"), int)
    }
    names = _user_names(run_dir / "users.jsonl", wanted)
    return _RunFiles(metrics, days, actions, names)


def _safe_target(target: Any) -> str:
    """The target URL without credentials, query or fragment."""
    text = str(target)
    try:
        parts = urlsplit(text)
    except ValueError:
        return "?"
    if not parts.scheme or not parts.netloc:
        return text
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _num(value: Any, fmt: str = ",") -> str:
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return html.escape(str(value))


def _facts(metrics: dict[str, Any]) -> str:
    run = metrics.get("run") if isinstance(metrics.get("run"), dict) else {}
    assert isinstance(run, dict)
    summary = metrics["summary"]
    latency = summary.get("latency_ms") or {}
    rows: list[tuple[str, str]] = []
    if run:
        speed = run.get("speed")
        rows += [
            ("Scenario", html.escape(str(run.get("scenario", "?")))),
            ("Seed", html.escape(str(run.get("seed", "?")))),
            ("Target", html.escape(_safe_target(run.get("target", "?")))),
            ("Speed", html.escape("max" if speed == "max" else f"{_num(speed, 'g')}×")),
            ("Simulated", html.escape(_duration(float(run.get("simulated_seconds") or 0)))),
            ("Wall time", f"{_num(float(run.get('wall_seconds') or 0), '.1f')} s"),
        ]
        if run.get("interrupted"):
            why = run.get("stopped_by") or "stopped before its duration"
            rows.append(("Interrupted", html.escape(f"yes ({why})")))
        if run.get("resumed"):
            rows.append(("Resumed", "yes (continued from a checkpoint)"))
    if metrics.get("start") and metrics.get("end"):
        try:
            span = f"{_iso_to_utc(metrics['start'])} → {_iso_to_utc(metrics['end'])} UTC"
        except (TypeError, ValueError):
            span = f"{metrics['start']} → {metrics['end']}"
        rows.append(("Simulated time", html.escape(span)))
    rate = summary.get("success_rate")
    rows += [
        ("Users", _num(summary.get("users", 0))),
        ("Actions", _num(summary.get("actions", 0))),
        ("Failed", _num(summary.get("failed", 0))),
        ("Success", f"{100 * rate:.2f} %" if isinstance(rate, (int, float)) else "?"),
        (
            "Latency",
            " / ".join(
                f"{name} {_num(latency.get(name, 0), '.1f')}"
                for name in ("p50", "p95", "p99", "max")
            )
            + " ms",
        ),
    ]
    by_type = summary.get("actions_by_type") or {}
    if by_type:
        rows.append(
            (
                "By type",
                ", ".join(f"{html.escape(str(k))} {_num(v)}" for k, v in by_type.items()),
            )
        )
    statuses = summary.get("status_counts") or {}
    if statuses:
        rows.append(
            (
                "HTTP status",
                ", ".join(f"{html.escape(str(k))}: {_num(v)}" for k, v in statuses.items()),
            )
        )
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


# -- charts ------------------------------------------------------------------------------------


def _figure(traces: list[Any], **layout: Any) -> Any:
    import plotly.graph_objects as go

    base: dict[str, Any] = {
        "template": _TEMPLATE,
        "height": 380,
        "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
    }
    base.update(layout)
    return go.Figure(data=traces, layout=base)


def _div(fig: Any, chart_id: str) -> str:
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


def _hours(stats: ActionStats) -> list[int]:
    keys = set(stats.per_hour)
    if not keys:
        return []
    return list(range(min(keys), max(keys) + 1))


def _chart_users(files: _RunFiles) -> tuple[Any, str]:
    import plotly.graph_objects as go

    points = [p for p in files.metrics["users_over_time"] if isinstance(p, dict)]
    try:
        xs = [_iso_to_utc(str(p["sim_time"])) for p in points]
        ys = [int(p["users"]) for p in points]
    except (KeyError, TypeError, ValueError):
        raise ReportError("metrics.json: malformed 'users_over_time'") from None
    traces = [go.Scatter(x=xs, y=ys, name="users joined", mode="lines", line={"width": 2})]
    if files.days:
        dx = [_day_label(d) for d in files.days]
        traces.append(
            go.Scatter(
                x=[_iso_to_utc(str(d.get("end", d["start"]))) for d in files.days],
                y=[d.get("total_users", 0) for d in files.days],
                name="known at end of day",
                mode="markers",
                marker={"size": 8},
            )
        )
        traces.append(
            go.Bar(
                x=[_iso_to_utc(str(d["start"])) for d in files.days],
                y=[d.get("active_today", 0) for d in files.days],
                name="active that day",
                opacity=0.35,
                offset=0,
                width=86_400_000,
                customdata=dx,
                hovertemplate="day from %{customdata}: %{y} active<extra></extra>",
            )
        )
    note = "Users that had joined (signed up) by each simulated instant"
    if files.days:
        note += "; bars: users active during each simulated day, dots: users known at its end"
    fig = _figure(traces, xaxis={"title": "simulated time (UTC)"}, yaxis={"title": "users"})
    return fig, note + "."


def _day_label(day: dict[str, Any]) -> str:
    try:
        return _iso_to_utc(str(day["start"]))[:16]
    except (KeyError, ValueError):
        return str(day.get("date", "?"))


def _chart_actions(stats: ActionStats) -> tuple[Any, str]:
    import plotly.graph_objects as go

    hours = _hours(stats)
    xs = [_utc(h * _HOUR_S) for h in hours]
    totals: Counter[str] = Counter()
    for counts in stats.per_hour.values():
        totals.update(counts)
    traces = [
        go.Bar(
            x=xs,
            y=[stats.per_hour.get(h, Counter())[action] for h in hours],
            name=action,
            marker={"color": _ACTION_COLORS.get(action)},
        )
        for action, _n in totals.most_common()
    ]
    fig = _figure(
        traces,
        barmode="stack",
        bargap=0.05,
        xaxis={"title": "simulated hour (UTC)"},
        yaxis={"title": "actions"},
    )
    return fig, "Actions started in each simulated hour, stacked by action type."


def _chart_rhythm(stats: ActionStats) -> tuple[Any, str]:
    import plotly.graph_objects as go

    hours = list(range(24))
    order = sorted(stats.rhythm, key=lambda p: -sum(stats.rhythm[p].values()))
    traces = [go.Bar(x=hours, y=[stats.rhythm[p][h] for h in hours], name=p) for p in order]
    fig = _figure(
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


def _chart_latency(stats: ActionStats) -> tuple[Any, str]:
    import plotly.graph_objects as go

    hours = sorted(stats.latency)
    xs = [_utc(h * _HOUR_S) for h in hours]
    traces = [
        go.Scatter(
            x=xs,
            y=[stats.latency[h][i] for h in hours],
            name=name,
            mode="lines",
            line={"width": width},
        )
        for i, (name, width) in enumerate((("p50", 2), ("p95", 1.5), ("p99", 1.2)))
    ]
    values = [v for h in hours for v in stats.latency[h] if v > 0]
    log = bool(values) and max(values) / min(values) > 50
    fig = _figure(
        traces,
        xaxis={"title": "simulated hour (UTC)"},
        yaxis={"title": "wall milliseconds", "type": "log" if log else "linear"},
    )
    note = (
        "Latency percentiles of the actions sent in each simulated hour "
        "(HDR histograms, wall milliseconds; skipped actions excluded)."
    )
    return fig, note


def _chart_errors(stats: ActionStats) -> tuple[Any, str]:
    import plotly.graph_objects as go

    hours = _hours(stats)
    xs = [_utc(h * _HOUR_S) for h in hours]
    totals = {h: sum(stats.per_hour.get(h, Counter()).values()) for h in hours}

    def rate(n: int, h: int) -> float | None:
        return round(100.0 * n / totals[h], 3) if totals[h] else None

    traces: list[Any] = [
        go.Scatter(
            x=xs,
            y=[rate(stats.ok_per_hour[h], h) for h in hours],
            name="success rate",
            mode="lines",
            line={"color": "#54A24B", "width": 2},
            yaxis="y2",
        )
    ]
    seen: Counter[str] = Counter()
    for errors in stats.errors_per_hour.values():
        seen.update(errors)
    for category in ERROR_CATEGORIES:
        if not seen[category]:
            continue
        traces.append(
            go.Bar(
                x=xs,
                y=[rate(stats.errors_per_hour.get(h, Counter())[category], h) for h in hours],
                name=f"{category} errors",
                marker={"color": _ERROR_COLORS[category]},
            )
        )
    failed = sum(seen.values())
    if not failed:  # one axis: the success line alone
        traces[0].update(yaxis="y")
        fig = _figure(
            traces,
            showlegend=True,
            xaxis={"title": "simulated hour (UTC)"},
            yaxis={"title": "success rate (%)", "range": [0, 102]},
        )
    else:
        fig = _figure(
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
    if failed:
        parts = ", ".join(f"{c} {seen[c]:,}" for c in ERROR_CATEGORIES if seen[c])
        note = f"Line: share of actions that succeeded. Bars: failed actions by cause ({parts})."
    else:
        note = "Line: share of actions that succeeded. No action failed in this run."
    return fig, note


def _chart_distribution(days: list[dict[str, Any]], key: str, colors: dict[str, str]) -> Any:
    import plotly.graph_objects as go

    names: Counter[str] = Counter()
    for day in days:
        dist = day.get(key)
        if isinstance(dist, dict):
            names.update({str(k): v for k, v in dist.items() if isinstance(v, (int, float))})
    known = list(colors)
    order = sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))
    xs = [_day_label(d) for d in days]
    traces = [
        go.Bar(
            x=xs,
            y=[(d.get(key) or {}).get(name, 0) for d in days],
            name=name,
            marker={"color": colors.get(name)},
        )
        for name in order
    ]
    return _figure(
        traces,
        barmode="stack",
        showlegend=True,
        legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
        xaxis={"title": "simulated day (starting, UTC)", "type": "category"},
        yaxis={"title": "users"},
    )


def _has_distribution(days: list[dict[str, Any]] | None, key: str) -> bool:
    return bool(days) and any(isinstance(d.get(key), dict) and d.get(key) for d in days or [])


def _chart_posters(metrics: dict[str, Any]) -> tuple[Any, str]:
    import plotly.graph_objects as go

    rows = [p for p in metrics["top_posters"] if isinstance(p, dict)]
    labels = [f"{p.get('name', '?')} (#{p.get('user_id', '?')})" for p in rows]
    fig = _figure(
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
    table = _table(
        ("#", "user", "persona", "posts"),
        [
            (
                str(i),
                f"{p.get('name', '?')} (#{p.get('user_id', '?')})",
                str(p.get("persona", "?")),
                _num(p.get("posts", 0)),
            )
            for i, p in enumerate(rows, 1)
        ],
    )
    return fig, table


def _chart_viewed(metrics: dict[str, Any], names: dict[int, str]) -> tuple[Any, str]:
    import plotly.graph_objects as go

    rows = [p for p in metrics["top_viewed_posts"] if isinstance(p, dict)]

    def author(p: dict[str, Any]) -> str:
        uid = p.get("author_user_id")
        if uid is None:
            return "unknown (created before the run)"
        return f"{names.get(uid, 'user')} (#{uid})" if isinstance(uid, int) else str(uid)

    fig = _figure(
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
    table = _table(
        ("#", "post", "author", "views"),
        [
            (str(i), str(p.get("post_id", "?")), author(p), _num(p.get("views", 0)))
            for i, p in enumerate(rows, 1)
        ],
    )
    return fig, table


def _chart_sessions(stats: ActionStats) -> tuple[Any, str]:
    import plotly.graph_objects as go

    lengths = stats.session_lengths
    xs = list(range(1, max(lengths) + 1)) if lengths else []
    fig = _figure(
        [go.Bar(x=xs, y=[lengths[n] for n in xs], name="sessions", marker={"color": "#4C78A8"})],
        bargap=0.1,
        xaxis={"title": "actions in the session"},
        yaxis={"title": "sessions"},
        showlegend=False,
    )
    total = sum(lengths.values())
    if total:
        mean = sum(n * c for n, c in lengths.items()) / total
        cumulative, median = 0, 0
        for n in sorted(lengths):
            cumulative += lengths[n]
            if cumulative * 2 >= total:
                median = n
                break
        sessions = f"{total:,} session{'' if total == 1 else 's'}"
        note = (
            f"Actions per session (per user and session id; sign-up, log-in and cleanup "
            f"excluded): {sessions}, mean {mean:.1f}, median {median}, longest {max(lengths)}."
        )
    else:
        note = "No session had an action other than sign-up, log-in or cleanup."
    return fig, note


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    if not rows:
        return '<p class="note">None in this run.</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="list"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- page --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #f6f7f9; }
header { background: #1f2937; color: #f9fafb; padding: 18px 28px; }
header h1 { margin: 0 0 10px; font-size: 22px; font-weight: 600; }
main { padding: 12px 28px 28px; }
table.facts { border-collapse: collapse; font-size: 13px; }
table.facts th { text-align: left; font-weight: 500; color: #9ca3af; padding: 2px 16px 2px 0;
                 vertical-align: top; white-space: nowrap; }
table.facts td { padding: 2px 0; }
section.chart { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px;
                margin: 14px 0; padding: 12px 16px; }
section.chart h2 { font-size: 17px; margin: 0 0 4px; font-weight: 600; }
p.note { color: #555; font-size: 13px; margin: 0 0 6px; }
.pair { display: grid; grid-template-columns: minmax(0, 3fr) minmax(280px, 2fr); gap: 24px;
        align-items: start; }
table.list { border-collapse: collapse; font-size: 13px; }
table.list th, table.list td { border-bottom: 1px solid #eee; padding: 3px 10px 3px 0;
                               text-align: left; }
footer { color: #777; font-size: 12px; padding: 0 28px 24px; }
"""


def _section(chart_id: str, note: str, body: str) -> str:
    title = html.escape(CHART_TITLES[chart_id])
    return (
        f'<section class="chart" id="{chart_id}"><h2>{title}</h2>'
        f'<p class="note">{html.escape(note)}</p>{body}</section>'
    )


def build_report(run_dir: Path) -> str:
    """Return the report of the run in ``run_dir`` as one self-contained HTML page.

    Raises:
        NotARunDirError: ``run_dir`` is missing or holds no run outputs.
        ReportError: a run file is missing, unreadable or malformed (one line, naming it).
    """
    import plotly.offline

    run_dir = Path(run_dir)
    files = _load(run_dir)
    metrics, stats, days = files.metrics, files.actions, files.days
    sections: list[str] = []

    fig, note = _chart_users(files)
    sections.append(_section("users", note, _div(fig, "users")))
    for chart_id, make in (
        ("actions", _chart_actions),
        ("rhythm", _chart_rhythm),
        ("latency", _chart_latency),
        ("errors", _chart_errors),
    ):
        fig, note = make(stats)
        if not stats.actions:
            note = "No actions were recorded in this run. " + note
        sections.append(_section(chart_id, note, _div(fig, chart_id)))

    for chart_id, key, what, colors in (
        ("states", "state_distribution", "lifecycle state", _STATE_COLORS),
        ("patterns", "pattern_distribution", "activity pattern (not churned)", _PATTERN_COLORS),
    ):
        if days is not None and _has_distribution(days, key):
            note = f"Users by {what} at the end of each simulated day (daily_metrics.json)."
            body = _div(_chart_distribution(days, key, colors), chart_id)
        else:
            if days is None:
                why = "this run directory has no daily_metrics.json"
            elif not days:
                why = "daily_metrics.json is empty (no simulated day was recorded)"
            else:
                why = f"daily_metrics.json has no {key} (lifecycle disabled)"
            note = f"Not available: {why}."
            body = ""
        sections.append(_section(chart_id, note, body))

    fig, table = _chart_posters(metrics)
    sections.append(
        _section(
            "posters",
            "Users who created the most posts during the run (metrics.json top_posters).",
            f'<div class="pair"><div class="plot">{_div(fig, "posters")}</div>{table}</div>',
        )
    )
    fig, table = _chart_viewed(metrics, files.names)
    sections.append(
        _section(
            "viewed",
            "Posts read most often by simulated users (metrics.json top_viewed_posts).",
            f'<div class="pair"><div class="plot">{_div(fig, "viewed")}</div>{table}</div>',
        )
    )
    fig, note = _chart_sessions(stats)
    sections.append(_section("sessions", note, _div(fig, "sessions")))

    run = metrics.get("run") if isinstance(metrics.get("run"), dict) else {}
    assert isinstance(run, dict)
    scenario = html.escape(str(run.get("scenario", run_dir.name)))
    version = html.escape(str(run.get("version", "?")))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>sim-engine report: {scenario}</title>",
            f"<style>{_CSS}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            "</head><body>",
            f"<header><h1>sim-engine report: {scenario}</h1>{_facts(metrics)}</header>",
            "<main>",
            *sections,
            "</main>",
            f"<footer>Made by <code>sim-engine report</code> from the files of run "
            f"<code>{html.escape(run_dir.resolve().name)}</code> (sim-engine {version}). "
            "Self-contained: works offline.</footer>",
            "</body></html>",
            "",
        ]
    )


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    Raises:
        NotARunDirError: ``run_dir`` is missing or holds no run outputs.
        ReportError: a run file is missing, unreadable or malformed, or the report
            cannot be written (one line, naming the file).
    """
    run_dir = Path(run_dir)
    page = build_report(run_dir)
    out = run_dir / REPORT_NAME
    tmp = out.with_name(f".{REPORT_NAME}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ReportError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return out
