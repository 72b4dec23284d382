"""The HTML report of a load test (``sim-engine load --html FILE``).

One self-contained page (plotly.js inlined once, as ``sim-engine report`` does,
so it works offline): the test's facts, the thresholds' verdicts, the
per-endpoint table (requests, req/s, failures, p50/p95/p99/max, errors by
kind), charts of the latency percentiles and of requests/s, failures/s and
users over the test (from :attr:`LoadResult.timeline`: each point is the
interval since the previous one), errors by kind and the setup requests.
Everything comes from the same figures as the summary and ``load.json``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from sim_engine.observe.report.page import _CSS
from sim_engine.observe.report.plots import div, figure, table
from sim_engine.runs.load_report import LoadResult
from sim_engine.runs.load_stats import Tally

__all__ = ["build_load_html", "write_load_html"]


def _facts(result: LoadResult) -> str:
    o, lat = result.options, result.latency_ms()
    rows = [
        ("scenario", f"{o.scenario.name} (seed {o.scenario.seed})"),
        ("target", result.target),
        ("shape", f"{o.model}, {o.virtual_users()} users, {o.processes} process(es)"),
        ("requests", f"{result.requests} in {result.wall_s:.1f} s, "
                     f"{result.requests_per_second:.1f} req/s"),
        ("success", f"{100 * result.success_rate:.2f}% ({result.failed} failed)"),
        ("latency", f"p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f} / p99 {lat['p99']:.1f} ms "
                    f"(max {lat['max']:.1f})"),
        ("mode", "resilient (scenario limits)" if o.resilient else "raw"),
    ]  # fmt: skip
    if o.arrival_rate is not None:
        dropped = f"{result.dropped_iterations} iterations dropped; latency corrected for "
        rows.append(("open model", f"{dropped}coordinated omission ({result.total.corrected})"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _section(anchor: str, title: str, note: str, body: str) -> str:
    return (
        f'<section class="chart" id="{anchor}"><h2>{html.escape(title)}</h2>'
        f'<p class="note">{html.escape(note)}</p>{body}</section>'
    )


def _verdicts(result: LoadResult) -> str:
    rows: list[tuple[str, ...]] = [
        (v.threshold.text, "passed" if v.passed else "FAILED", v.line().split(" (", 1)[-1][:-1])
        for v in result.verdicts
    ]
    note = "Checked at the end over every request (docs/load-testing.md, Thresholds)."
    if result.aborted is not None:
        note = f"The test was aborted: {result.aborted.line()}. " + note
    return _section("thresholds", "Thresholds", note, table(("rule", "verdict", "seen"), rows))


def _tally_row(name: str, t: Tally, wall_s: float) -> tuple[str, ...]:
    p = t.percentiles()
    errors = ", ".join(f"{k} {n}" for k, n in t.errors.most_common())
    rps = t.requests / wall_s if wall_s > 0 else 0.0
    return (
        name, str(t.requests), f"{rps:.1f}", str(t.failed), f"{100 * t.error_rate:.2f}%",
        f"{p['p50']:.1f}", f"{p['p95']:.1f}", f"{p['p99']:.1f}", f"{p['max']:.1f}", errors,
    )  # fmt: skip


def _endpoints(result: LoadResult) -> str:
    rows = [
        _tally_row(name, t, result.wall_s)
        for name, t in sorted(result.by_endpoint.items(), key=lambda kv: -kv[1].requests)
    ]
    rows.append(_tally_row("all", result.total, result.wall_s))
    head = ("endpoint", "requests", "req/s", "failed", "error rate", "p50 ms", "p95 ms",
            "p99 ms", "max ms", "errors by kind")  # fmt: skip
    note = "Over the whole test; latency in wall milliseconds from HDR histograms."
    setup = [_tally_row(name, t, result.wall_s) for name, t in result.setup.items()]
    extra = f"<h3>Setup (not counted above)</h3>{table(head, setup)}" if setup else ""
    return _section("endpoints", "By endpoint", note, table(head, rows) + extra)


def _charts(result: LoadResult) -> list[str]:
    import plotly.graph_objects as go

    points = result.timeline
    t = [p["t"] for p in points]
    lines = [
        go.Scatter(x=t, y=[p.get(f"p{q}") for p in points], name=f"p{q}", mode="lines+markers")
        for q in (50, 95, 99)
    ]
    latency = figure(lines, xaxis_title="wall seconds", yaxis_title="ms")
    rates = figure(
        [
            go.Scatter(x=t, y=[p["rps"] for p in points], name="requests/s", mode="lines"),
            go.Scatter(x=t, y=[p["fps"] for p in points], name="failures/s", mode="lines"),
            go.Scatter(
                x=t,
                y=[p["users"] for p in points],
                name="users",
                mode="lines",
                yaxis="y2",
                line={"dash": "dot"},
            ),
        ],
        xaxis_title="wall seconds",
        yaxis_title="per second",
        yaxis2={"title": "users", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    note = f"{len(points)} samples; each is the interval since the previous one."
    return [
        _section("latency", "Latency percentiles over time", note, div(latency, "latency")),
        _section("rates", "Requests/s, failures/s and users over time", note, div(rates, "rates")),
    ]


def _errors(result: LoadResult) -> str:
    kinds: list[tuple[str, ...]] = [(k, str(n)) for k, n in result.total.errors.most_common()]
    messages: dict[str, int] = {}
    for t in result.by_endpoint.values():
        for message, n in t.messages.items():
            messages[message] = messages.get(message, 0) + n
    top = sorted(messages.items(), key=lambda kv: -kv[1])[:20]
    errors: list[tuple[str, ...]] = [(m, str(n)) for m, n in top]
    body = table(("kind", "failed requests"), kinds) + table(("error", "occurrences"), errors)
    return _section("errors", "Errors", "Failed requests by kind, then by error.", body)


def build_load_html(result: LoadResult) -> str:
    """Return the load test's report as one self-contained HTML page."""
    import plotly.offline

    from sim_engine._version import __version__

    name = html.escape(result.options.scenario.name)
    sections: list[Any] = [_verdicts(result), _endpoints(result), *_charts(result)]
    sections.append(_errors(result))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>sim-engine load test: {name}</title>",
            f"<style>{_CSS}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            "</head><body>",
            f"<header><h1>sim-engine load test: {name}</h1>{_facts(result)}</header>",
            "<main>",
            *sections,
            "</main>",
            f"<footer>Made by <code>sim-engine load --html</code> (sim-engine "
            f"{html.escape(__version__)}). Self-contained: works offline.</footer>",
            "</body></html>",
            "",
        ]
    )


def write_load_html(result: LoadResult, path: Path) -> Path:
    """Write the report to ``path`` (atomically; its directory made) and return it.

    Raises:
        OSError: the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(build_load_html(result), encoding="utf-8")
    tmp.replace(path)
    return path
