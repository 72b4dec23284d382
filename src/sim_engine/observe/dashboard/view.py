"""Drawing the live dashboard: :func:`render` one :class:`DashboardSnapshot`,
:func:`fit` it to the console's height.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import datetime, timezone

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from sim_engine.observe.dashboard.snapshot import KEYS, DashboardSnapshot

__all__ = ["fit", "render", "speed_text"]

_COUNT_ROWS = 6  # names per column in the users panel
_COMPACT_COUNT_ROWS = 3
_WIDE = 106  # console columns (inside the outer panel) for the panels side by side


def _num(value: float) -> str:
    return f"{value:,.0f}"


def speed_text(speed: float | None, effective: float | None) -> str:
    """``3600x``, ``0.5x``, or ``max`` (with the measured factor when known: ``max (≈90,000x)``)."""
    if speed is None:
        return "max" + (f" (≈{_num(effective)}x)" if effective else "")
    return f"{int(speed)}x" if float(speed).is_integer() else f"{speed:g}x"


def _span(seconds: float) -> str:
    """``2d 03h``, ``3h 05m``, ``4m 10s``, ``12s``."""
    seconds = max(0.0, seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _state_badge(state: str) -> Text:
    styles = {
        "running": ("● RUNNING", "bold green"),
        "paused": ("❚❚ PAUSED", "bold yellow"),
        "stopping": ("■ STOPPING", "bold red"),
    }
    label, style = styles.get(state, (state.upper(), "bold"))
    return Text(label, style=style)


def _header(s: DashboardSnapshot) -> Table:
    when = datetime.fromtimestamp(s.sim_now, timezone.utc)
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1, no_wrap=True)
    grid.add_column(justify="center", no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_row(
        Text.assemble(
            ("sim ", "dim"),
            (when.strftime("%a %Y-%m-%d %H:%M:%S"), "bold cyan"),
            (" UTC", "dim"),
        ),
        Text.assemble(("speed ", "dim"), (speed_text(s.speed, s.effective_speed), "bold")),
        Text.assemble(_state_badge(s.state), ("  wall ", "dim"), _clock(s.wall_elapsed_s)),
    )
    return grid


def _progress(s: DashboardSnapshot) -> Table:
    grid = Table.grid(expand=True, padding=(0, 2))
    done = max(0.0, s.sim_now - s.start_s)
    if math.isfinite(s.end_s) and s.end_s > s.start_s:
        total = s.end_s - s.start_s
        grid.add_column(ratio=1)
        grid.add_column(justify="right")
        eta = "" if s.eta_wall_s is None else f"  ETA {_clock(s.eta_wall_s)} wall"
        grid.add_row(
            ProgressBar(total=total, completed=min(done, total)),
            Text.assemble(
                (f"{100 * min(done, total) / total:5.1f}%", "bold"),
                f"  {_span(done)} of {_span(total)} simulated",
                (eta, "dim"),
            ),
        )
    else:
        grid.add_column()
        grid.add_row(Text(f"{_span(done)} simulated so far (open-ended run)", style="dim"))
    return grid


def _counts(title: str, counts: Mapping[str, int], rows: int) -> Table:
    table = Table(
        box=None, show_header=True, header_style="bold", padding=(0, 1), pad_edge=False, expand=True
    )
    table.add_column(title, no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("", justify="right", no_wrap=True)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    for name, n in items[:rows]:
        table.add_row(name, _num(n))
    if not items:
        table.add_row(Text("—", style="dim"), "")
    return table


def _population(s: DashboardSnapshot, height: int | None = None, rows: int = _COUNT_ROWS) -> Panel:
    summary = Text.assemble(
        ("users known ", "dim"),
        (_num(s.users), "bold"),
        ("   joined ", "dim"),
        _num(s.signed_up),
        ("   active ", "dim"),
        _num(s.in_session),
    )
    grid = Table.grid(expand=True, padding=(0, 2))
    for ratio in (4, 5, 4):  # persona names are the longest
        grid.add_column(ratio=ratio)
    grid.add_row(
        _counts("lifecycle", s.lifecycle, rows),
        _counts("persona", s.persona, rows),
        _counts("routine", s.routine, rows),
    )
    return Panel(
        Group(summary, grid), title="users", title_align="left", border_style="blue", height=height
    )


def _pairs(rows: list[tuple[str, Text | str]]) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    for label, value in rows:
        table.add_row(label, value)
    return table


def _throughput(s: DashboardSnapshot, height: int | None = None) -> Panel:
    per_hour = "—" if s.actions_per_sim_hour is None else _num(s.actions_per_sim_hour)
    rows: list[tuple[str, Text | str]] = [
        ("actions", Text(_num(s.actions), style="bold")),
        ("per second (wall)", f"{s.actions_per_s:,.1f}"),
        ("per simulated hour", per_hour),
        ("in flight", _num(s.in_flight)),
        ("failed", Text(_num(s.failed), style="red" if s.failed else "")),
    ]
    return Panel(
        _pairs(rows), title="actions", title_align="left", border_style="blue", height=height
    )


def _health(s: DashboardSnapshot, height: int | None = None, compact: bool = False) -> Panel:
    if s.success_rate is None:
        success = Text("—", style="dim")
    else:
        pct = 100 * s.success_rate
        style = "green" if pct >= 99 else "yellow" if pct >= 95 else "bold red"
        success = Text(f"{pct:.1f}%", style=style)
    lat = s.latency_ms
    open_ = sorted(e for e, st in s.breakers.items() if st == "open")
    half = sorted(e for e, st in s.breakers.items() if st == "half_open")
    if open_:
        breakers = Text(f"{len(open_)} open", style="bold red")
    elif half:
        breakers = Text(f"{len(half)} half-open", style="yellow")
    else:
        breakers = Text("all closed", style="green")
    if compact:
        latency = [
            (
                "p50/p95/p99",
                " / ".join(f"{lat[p]:,.1f}" for p in ("p50", "p95", "p99")) + " ms" if lat else "—",
            )
        ]
    else:
        latency = [
            (f"latency {p}", f"{lat[p]:,.1f} ms" if p in lat else "—")
            for p in ("p50", "p95", "p99")
        ]
    rows: list[tuple[str, Text | str]] = [
        ("success", success),
        *latency,
        ("rate-limited", Text(_num(s.rate_limited), style="yellow" if s.rate_limited else "")),
        ("retries", _num(s.retries)),
        ("breakers", breakers),
    ]
    if s.page_steps:  # a browser tier runs (docs/browser.md)
        load = "—" if s.page_load_ms is None else f"{s.page_load_ms:,.0f} ms"
        rows += [("page steps", _num(s.page_steps)), ("page load p50", load)]
    body: list[RenderableType] = [_pairs(rows)]
    for endpoint in open_ + half:
        body.append(Text(f"  {endpoint}", style="red" if endpoint in open_ else "yellow"))
    return Panel(
        Group(*body), title="health", title_align="left", border_style="blue", height=height
    )


def _activity(s: DashboardSnapshot) -> Panel:
    table = Table(box=None, expand=True, padding=(0, 1), header_style="bold")
    table.add_column("local time", no_wrap=True, style="cyan")
    table.add_column("user", justify="right", no_wrap=True)
    table.add_column("persona", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("action", no_wrap=True, overflow="ellipsis")
    table.add_column("status", justify="right", no_wrap=True)
    table.add_column("latency", justify="right", no_wrap=True)
    table.add_column("", ratio=1, no_wrap=True, overflow="ellipsis", style="dim")
    for a in reversed(s.recent):  # newest first
        status = Text("" if a.status is None else str(a.status))
        if a.status is not None:
            status.stylize("green" if a.ok else "bold red")
        latency = "" if a.latency_ms is None else f"{a.latency_ms:.1f} ms"
        table.add_row(a.sim_time, f"#{a.user_id}", a.persona, a.what, status, latency, a.note)
    body: RenderableType = table
    if not s.recent:
        body = Text("waiting for the first action…", style="dim")
    return Panel(body, title="recent activity", title_align="left", border_style="blue")


def _footer(s: DashboardSnapshot) -> Text:
    text = Text()
    if s.state == "stopping":
        text.append("ending: in-flight actions finish, then the outputs are written", style="dim")
        return text
    if s.keys:
        for key, what in KEYS.items():
            text.append(f" {key} ", style="reverse bold")
            text.append(f" {what}   ")
    else:
        text.append("Ctrl-C stops · sim-engine ctl DIR pause|resume|stop|speed N", style="dim")
    if s.message:
        text.append(f"  {s.message}", style="bold yellow")
    return text


class _Panels:
    """The three panels: side by side on a wide console, users above the others otherwise."""

    def __init__(self, snapshot: DashboardSnapshot, compact: bool) -> None:
        self.s = snapshot
        self.compact = compact

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        s, compact = self.s, self.compact
        count_rows = _COMPACT_COUNT_ROWS if compact else _COUNT_ROWS
        grid = Table.grid(expand=True, padding=(0, 0))
        if options.max_width >= _WIDE:
            for ratio in (2, 1, 1):
                grid.add_column(ratio=ratio)
            rows = max(
                2 + min(count_rows, max(1, len(s.lifecycle), len(s.persona), len(s.routine))),
                5,
                (5 if compact else 7)
                + sum(1 for st in s.breakers.values() if st in ("open", "half_open"))
                + (2 if s.page_steps else 0),
            )
            h = rows + 2  # the borders
            grid.add_row(_population(s, h, count_rows), _throughput(s, h), _health(s, h, compact))
            yield grid
            return
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(_throughput(s), _health(s, compact=compact))
        yield _population(s, rows=count_rows)
        yield grid


def render(snapshot: DashboardSnapshot, compact: bool = False) -> RenderableType:
    """Return the dashboard for one snapshot (print it on any :class:`rich.console.Console`).

    On a console narrower than 110 columns the users panel goes above the
    actions and health panels instead of beside them. ``compact`` (for short
    terminals) lists at most 3 names per users column, puts the latency
    percentiles on one line, and leaves out an empty activity feed.
    """
    s = snapshot
    parts: list[RenderableType] = [_header(s), _progress(s)]
    if s.starving:
        parts.append(Text(f"warning: {s.starving}", style="bold yellow"))
    parts.append(_Panels(s, compact))
    if s.recent or not compact:
        parts.append(_activity(s))
    parts.append(_footer(s))
    return Panel(
        Group(*parts), title=f"[bold]{s.title}[/]", title_align="left", border_style="bright_black"
    )


def fit(snapshot: DashboardSnapshot, console: Console) -> RenderableType:
    """Return :func:`render` of ``snapshot`` made to fit the console's height: fewer
    activity lines first (down to 3), then the compact layout, then fewer lines again,
    then no feed at all."""
    height = console.height

    def excess(renderable: RenderableType) -> int:
        return len(console.render_lines(renderable, pad=False)) - height

    def last(n: int) -> DashboardSnapshot:
        return dataclasses.replace(snapshot, recent=snapshot.recent[len(snapshot.recent) - n :])

    recent = len(snapshot.recent)
    for compact, least in ((False, 3), (True, 1)):
        renderable = render(snapshot, compact)
        over = excess(renderable)
        if over <= 0:
            return renderable
        if recent - over >= least:
            return render(last(recent - over), compact)
    return render(last(0), compact=True)
