"""The report's header: the run's facts as an HTML table (from ``metrics.json``)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sim_engine.observe.report.read import iso_to_utc

__all__ = ["facts_table", "num", "safe_target"]


def safe_target(target: Any) -> str:
    """The target URL without credentials, query or fragment (``?`` when unparsable)."""
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


def num(value: Any, fmt: str = ",") -> str:
    """``value`` formatted with ``fmt``; anything that does not format is HTML-escaped text."""
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return html.escape(str(value))


def _run_rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows from ``metrics.json``'s ``run`` object (scenario, seed, target, speed, times)."""
    speed = run.get("speed")
    rows = [
        ("Scenario", html.escape(str(run.get("scenario", "?")))),
        ("Seed", html.escape(str(run.get("seed", "?")))),
        ("Target", html.escape(safe_target(run.get("target", "?")))),
        ("Speed", html.escape("max" if speed == "max" else f"{num(speed, 'g')}×")),
        ("Simulated", html.escape(_duration(float(run.get("simulated_seconds") or 0)))),
        ("Wall time", f"{num(float(run.get('wall_seconds') or 0), '.1f')} s"),
    ]
    if run.get("interrupted"):
        why = run.get("stopped_by") or "stopped before its duration"
        rows.append(("Interrupted", html.escape(f"yes ({why})")))
    if run.get("resumed"):
        rows.append(("Resumed", "yes (continued from a checkpoint)"))
    return rows


def _span_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The simulated time span, when ``metrics.json`` has ``start`` and ``end``."""
    if not (metrics.get("start") and metrics.get("end")):
        return []
    try:
        span = f"{iso_to_utc(metrics['start'])} → {iso_to_utc(metrics['end'])} UTC"
    except (TypeError, ValueError):
        span = f"{metrics['start']} → {metrics['end']}"
    return [("Simulated time", html.escape(span))]


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows from ``metrics.json``'s ``summary`` (counts, success, latency, types, statuses)."""
    latency = summary.get("latency_ms") or {}
    rate = summary.get("success_rate")
    rows = [
        ("Users", num(summary.get("users", 0))),
        ("Actions", num(summary.get("actions", 0))),
        ("Failed", num(summary.get("failed", 0))),
        ("Success", f"{100 * rate:.2f} %" if isinstance(rate, (int, float)) else "?"),
        (
            "Latency",
            " / ".join(
                f"{name} {num(latency.get(name, 0), '.1f')}"
                for name in ("p50", "p95", "p99", "max")
            )
            + " ms",
        ),
    ]
    by_type = summary.get("actions_by_type") or {}
    if by_type:
        rows.append(
            ("By type", ", ".join(f"{html.escape(str(k))} {num(v)}" for k, v in by_type.items()))
        )
    statuses = summary.get("status_counts") or {}
    if statuses:
        rows.append(
            (
                "HTTP status",
                ", ".join(f"{html.escape(str(k))}: {num(v)}" for k, v in statuses.items()),
            )
        )
    return rows


def facts_table(metrics: dict[str, Any]) -> str:
    """The header's facts table (HTML) from a checked ``metrics.json`` object."""
    run = metrics.get("run") if isinstance(metrics.get("run"), dict) else {}
    assert isinstance(run, dict)
    rows = _run_rows(run) if run else []
    rows += _span_rows(metrics)
    rows += _summary_rows(metrics["summary"])
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'
