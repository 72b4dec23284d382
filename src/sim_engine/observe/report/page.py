"""The report page: header, one section per chart, footer; and writing it to the run.

The plotly.js bundle is inlined once in the page, so the file works offline and
can be mailed or archived.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim_engine.observe.report.action_charts import (
    chart_actions,
    chart_errors,
    chart_latency,
    chart_pages,
    chart_rhythm,
    chart_sessions,
)
from sim_engine.observe.report.facts import facts_table
from sim_engine.observe.report.plots import div
from sim_engine.observe.report.read import ActionStats, ReportError, RunFiles, load_run
from sim_engine.observe.report.run_charts import (
    PATTERN_COLORS,
    STATE_COLORS,
    chart_distribution,
    chart_posters,
    chart_users,
    chart_viewed,
    has_distribution,
)

__all__ = ["CHART_TITLES", "REPORT_NAME", "build_report", "write_report"]

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
PAGES_TITLE = "Browser page timings per simulated hour"
"""Title of the ``pages`` chart, drawn after the action charts when a run had browser
steps (docs/browser.md), left out otherwise."""

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

_ACTION_CHARTS: tuple[tuple[str, Callable[[ActionStats], tuple[Any, str]]], ...] = (
    ("actions", chart_actions),
    ("rhythm", chart_rhythm),
    ("latency", chart_latency),
    ("errors", chart_errors),
)
_DISTRIBUTIONS = (
    ("states", "state_distribution", "lifecycle state", STATE_COLORS),
    ("patterns", "pattern_distribution", "activity pattern (not churned)", PATTERN_COLORS),
)


def _section(chart_id: str, note: str, body: str, title: str | None = None) -> str:
    title = html.escape(title or CHART_TITLES[chart_id])
    return (
        f'<section class="chart" id="{chart_id}"><h2>{title}</h2>'
        f'<p class="note">{html.escape(note)}</p>{body}</section>'
    )


def _action_sections(stats: ActionStats) -> list[str]:
    sections = []
    for chart_id, make in _ACTION_CHARTS:
        fig, note = make(stats)
        if not stats.actions:
            note = "No actions were recorded in this run. " + note
        sections.append(_section(chart_id, note, div(fig, chart_id)))
    return sections


def _distribution_section(
    days: list[dict[str, Any]] | None, chart_id: str, key: str, what: str, colors: dict[str, str]
) -> str:
    if days is not None and has_distribution(days, key):
        note = f"Users by {what} at the end of each simulated day (daily_metrics.json)."
        return _section(chart_id, note, div(chart_distribution(days, key, colors), chart_id))
    if days is None:
        why = "this run directory has no daily_metrics.json"
    elif not days:
        why = "daily_metrics.json is empty (no simulated day was recorded)"
    else:
        why = f"daily_metrics.json has no {key} (lifecycle disabled)"
    return _section(chart_id, f"Not available: {why}.", "")


def _ranked_sections(files: RunFiles) -> list[str]:
    fig, listing = chart_posters(files.metrics)
    posters = _section(
        "posters",
        "Users who created the most posts during the run (metrics.json top_posters).",
        f'<div class="pair"><div class="plot">{div(fig, "posters")}</div>{listing}</div>',
    )
    fig, listing = chart_viewed(files.metrics, files.names)
    viewed = _section(
        "viewed",
        "Posts read most often by simulated users (metrics.json top_viewed_posts).",
        f'<div class="pair"><div class="plot">{div(fig, "viewed")}</div>{listing}</div>',
    )
    return [posters, viewed]


def _sections(files: RunFiles) -> list[str]:
    """Every chart's section, in :data:`CHART_TITLES` order (``pages`` after the action
    charts when the run had browser steps)."""
    fig, note = chart_users(files)
    sections = [_section("users", note, div(fig, "users"))]
    sections += _action_sections(files.actions)
    if files.actions.pages:  # a browser tier ran
        fig, note = chart_pages(files.actions)
        sections.append(_section("pages", note, div(fig, "pages"), PAGES_TITLE))
    sections += [_distribution_section(files.days, *spec) for spec in _DISTRIBUTIONS]
    sections += _ranked_sections(files)
    fig, note = chart_sessions(files.actions)
    sections.append(_section("sessions", note, div(fig, "sessions")))
    return sections


def build_report(run_dir: Path) -> str:
    """Return the report of the run in ``run_dir`` as one self-contained HTML page.

    Raises:
        NotARunDirError: ``run_dir`` is missing or holds no run outputs.
        ReportError: a run file is missing, unreadable or malformed (one line, naming it).
    """
    import plotly.offline

    run_dir = Path(run_dir)
    files = load_run(run_dir)
    metrics = files.metrics
    sections = _sections(files)
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
            f"<header><h1>sim-engine report: {scenario}</h1>{facts_table(metrics)}</header>",
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
