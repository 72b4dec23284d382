"""The live terminal dashboard (rich) shown by ``sim-engine run`` on a terminal.

:class:`Dashboard` is an add-on and a sink. As a sink it keeps counters from
the records (actions, failures, 429 answers, an HDR latency histogram, the
latest activity). Every ``refresh_s`` wall seconds a task takes a
:class:`DashboardSnapshot` -- plain values read from
:meth:`Simulation.statistics`, :meth:`Simulation.breakdown` (at most about once
a wall second: it walks the population), the target's ``statistics()`` when it
has one (rate limiting, circuit breakers) and the counters -- and redraws
:func:`render` of it in a :class:`rich.live.Live` display.

Keys (when stdin is a terminal; read in cbreak mode, restored at the end):
``p`` pause/resume, ``+`` double the speed, ``-`` halve it, ``m`` max speed,
``q`` stop the run.

On a console that is not a terminal the dashboard draws nothing (the CLI does
not use it then: plain progress lines are printed instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, Sink, UserRecord
from sim_engine.observe.redact import redact_text
from sim_engine.sinks.console import SHORT_NAMES

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = [
    "KEYS",
    "Activity",
    "Dashboard",
    "DashboardSnapshot",
    "fit",
    "render",
    "target_statistics",
]

_log = logging.getLogger(__name__)

KEYS = {
    "p": "pause/resume",
    "+": "faster",
    "-": "slower",
    "m": "max speed",
    "q": "stop",
}
"""The dashboard's keys and what they do."""

_MAX_LATENCY_US = 600_000_000  # 10 wall minutes
_RATE_WINDOW_S = 5.0  # wall seconds over which rates are measured
_BREAKDOWN_EVERY_S = 1.0  # breakdown() walks the population: at most once a wall second
_MIN_SPEED, _MAX_SPEED = 0.01, 1e9
_COUNT_ROWS = 6  # names per column in the users panel
_COMPACT_COUNT_ROWS = 3
_WIDE = 106  # console columns (inside the outer panel) for the panels side by side
_SHORT = SHORT_NAMES


@dataclass(frozen=True)
class Activity:
    """One line of the recent-activity feed.

    Attributes:
        sim_time: the user's local simulated time (``HH:MM:SS +HH``).
        user_id: the engine's id of the user.
        persona: persona name ("" when unknown).
        what: ``browse``, ``post 17``, ``joined``, ``ACTIVE → DORMANT``...
        status: HTTP status (None for non-actions; 0: no response).
        latency_ms: wall milliseconds (None for non-actions).
        ok: success (non-actions are ok).
        note: the error, ``skipped``, or a retry count.
    """

    sim_time: str
    user_id: int
    persona: str
    what: str
    status: int | None = None
    latency_ms: float | None = None
    ok: bool = True
    note: str = ""


@dataclass(frozen=True)
class DashboardSnapshot:
    """Everything one frame of the dashboard shows, as plain values.

    Times are simulated epoch seconds (``sim_now``, ``start_s``, ``end_s``:
    ``inf`` when open-ended) or wall seconds (``wall_elapsed_s``, ``eta_wall_s``).
    """

    sim_now: float
    start_s: float
    end_s: float = math.inf
    speed: float | None = 1.0
    state: str = "running"
    title: str = "sim-engine"
    wall_elapsed_s: float = 0.0
    users: int = 0
    signed_up: int = 0
    actions: int = 0
    failed: int = 0
    in_flight: int = 0
    lifecycle: Mapping[str, int] = field(default_factory=dict)
    persona: Mapping[str, int] = field(default_factory=dict)
    routine: Mapping[str, int] = field(default_factory=dict)
    in_session: int = 0
    actions_per_s: float = 0.0
    actions_per_sim_hour: float | None = None
    effective_speed: float | None = None
    eta_wall_s: float | None = None
    success_rate: float | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    rate_limited: int = 0
    retries: int = 0
    breakers: Mapping[str, str] = field(default_factory=dict)
    recent: tuple[Activity, ...] = ()
    keys: bool = False
    message: str = ""


# -- rendering ----------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _speed_text(speed: float | None, effective: float | None) -> str:
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
        Text.assemble(("speed ", "dim"), (_speed_text(s.speed, s.effective_speed), "bold")),
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
        ("users ", "dim"),
        (_num(s.users), "bold"),
        ("   signed up ", "dim"),
        _num(s.signed_up),
        ("   in a session ", "dim"),
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
                + sum(1 for st in s.breakers.values() if st in ("open", "half_open")),
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
    parts: list[RenderableType] = [_header(s), _progress(s), _Panels(s, compact)]
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


# -- data ---------------------------------------------------------------------------------


def target_statistics(target: object) -> dict[str, Any]:
    """Return ``{"rate_limited": n, "retries": n, "breakers": {endpoint: state}}`` from a
    target's (or its transport's) ``statistics()``; ``{}`` when neither has one.

    Read defensively: a missing, failing or odd-shaped ``statistics`` gives ``{}``
    or leaves keys out; breaker states are ``closed``, ``half_open`` or ``open``.
    """
    for obj in (target, getattr(target, "transport", None)):
        read = getattr(obj, "statistics", None)
        if not callable(read):
            continue
        try:
            stats = read()
        except Exception:  # another component's bug must not take the dashboard down
            return {}
        if not isinstance(stats, Mapping):
            return {}
        out: dict[str, Any] = {}
        for key in ("rate_limited", "retries"):
            value = stats.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = int(value)
        breakers = stats.get("breakers")
        if isinstance(breakers, Mapping):
            states: dict[str, str] = {}
            for endpoint, value in breakers.items():
                state = value.get("state") if isinstance(value, Mapping) else value
                if state is not None:
                    name = str(getattr(state, "value", state)).lower().replace("-", "_")
                    states[str(endpoint)] = name
            out["breakers"] = states
        return out
    return {}


def _local(iso: str) -> str:
    """``2026-03-02T09:05:00.000-05:00`` -> ``09:05:00 -05`` (the user's local time)."""
    clock = iso[11:19]
    if iso.endswith("Z"):
        return f"{clock} +00"
    offset = iso[-6:] if len(iso) >= 25 and iso[-6] in "+-" else ""
    return f"{clock} {offset.removesuffix(':00')}".rstrip()


def _activity_of(record: Record) -> Activity | None:
    if isinstance(record, ActionRecord):
        what = _SHORT.get(record.action, record.action)
        if record.post_id is not None:
            what += f" {record.post_id}"
        if record.skipped:
            note = "skipped" + (f": {record.error}" if record.error else "")
        else:
            note = record.error or ""
        note = redact_text(note)
        if record.retries:
            note = f"{record.retries} retries" + (f"; {note}" if note else "")
        return Activity(
            _local(record.sim_time),
            record.user_id,
            record.persona,
            what,
            record.status,
            record.latency_ms,
            record.ok,
            note,
        )
    if isinstance(record, UserRecord):
        return Activity(_local(record.sim_time), record.user_id, record.persona, "joined")
    if isinstance(record, LifecycleRecord) and record.change == "state":
        return Activity(_local(record.sim_time), record.user_id, "", f"{record.old} → {record.new}")
    return None


class Dashboard:
    """The live dashboard add-on (see the module docstring).

    Args:
        console: where to draw (default: a new :class:`rich.console.Console` on stdout).
        refresh_s: wall seconds between two frames.
        recent: lines in the recent-activity feed (fewer when the terminal is short).
        keys: read keys from stdin when it is a terminal.
        wall: the wall-clock source (``time.monotonic``); injectable for tests.
    """

    def __init__(
        self,
        console: Console | None = None,
        refresh_s: float = 0.5,
        recent: int = 12,
        keys: bool = True,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not refresh_s > 0:
            raise ValueError("refresh_s must be positive")
        self.console = console or Console()
        self._refresh_s = refresh_s
        self._recent_n = recent
        self._want_keys = keys
        self._wall = wall
        # counters (the sink side)
        self.actions = 0
        self.failed = 0
        self.rate_limited = 0
        self.retries = 0
        self._latency = HdrHistogram(1, _MAX_LATENCY_US, 3)
        self._recent: deque[Record] = deque(maxlen=recent)
        # rates: (wall_s, sim_s, actions) samples over the last _RATE_WINDOW_S
        self._samples: deque[tuple[float, float, int]] = deque()
        self._breakdown: dict[str, dict[str, int]] = {}
        self._breakdown_at: float | None = None
        # the add-on side
        self._sim: Simulation | None = None
        self._started_wall = wall()
        self._live: Live | None = None
        self._task: asyncio.Task[None] | None = None
        self._stdin_fd: int | None = None
        self._saved_tty: Any = None
        self._last_speed: float | None = None
        self._message = ""
        self._message_until = 0.0
        self._render_failed = False

    # -- Sink -----------------------------------------------------------------------------

    def sinks(self) -> list[Sink]:
        """The dashboard is its own sink."""
        return [self]

    def emit(self, record: Record) -> None:
        """Count one record (cheap: the feed keeps records, formatted only when drawn)."""
        if isinstance(record, ActionRecord):
            self.actions += 1
            if not record.ok:
                self.failed += 1
            if record.status == 429:
                self.rate_limited += 1
            self.retries += record.retries
            if not record.skipped:
                latency_us = max(1, min(int(record.latency_ms * 1000), _MAX_LATENCY_US))
                self._latency.record_value(latency_us)
            self._recent.append(record)
        elif isinstance(record, UserRecord) or (
            isinstance(record, LifecycleRecord) and record.change == "state"
        ):
            self._recent.append(record)

    def close(self) -> None:
        """Nothing to release (the display ends in :meth:`stop`)."""

    def latency_ms(self) -> dict[str, float]:
        """Return latency percentiles p50/p95/p99 of the actions sent so far (wall ms)."""
        if self._latency.get_total_count() == 0:
            return {}
        return {
            name: self._latency.get_value_at_percentile(p) / 1000.0
            for name, p in (("p50", 50), ("p95", 95), ("p99", 99))
        }

    def rates(self, wall_s: float, sim_s: float) -> tuple[float, float | None, float | None]:
        """Record a sample and return ``(actions per wall second, actions per simulated
        hour, simulated seconds per wall second)`` over the last few wall seconds.

        The last two are None while simulated time stands still (paused, or too
        early to tell).
        """
        samples = self._samples
        samples.append((wall_s, sim_s, self.actions))
        while len(samples) > 2 and samples[1][0] <= wall_s - _RATE_WINDOW_S:
            samples.popleft()
        w0, s0, n0 = samples[0]
        d_wall, d_sim, d_n = wall_s - w0, sim_s - s0, self.actions - n0
        if d_wall <= 0:
            return 0.0, None, None
        per_s = d_n / d_wall
        if d_sim <= 0:
            return per_s, None, None
        return per_s, d_n / d_sim * 3600.0, d_sim / d_wall

    # -- Addon ----------------------------------------------------------------------------

    async def start(self, sim: Simulation) -> None:
        """Start drawing (on a terminal) and reading keys (when stdin is a terminal)."""
        self._sim = sim
        self._started_wall = self._wall()
        if not self.console.is_terminal:
            return
        self._live = Live(
            console=self.console,
            auto_refresh=False,
            transient=False,
            vertical_overflow="crop",
        )
        self._live.start()
        if self._want_keys:
            self._start_keys()
        self._task = asyncio.ensure_future(self._refresh_loop())

    async def stop(self) -> None:
        """Stop reading keys (restoring the terminal), draw the last frame, end the display."""
        self._stop_keys()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        live, self._live = self._live, None
        if live is not None:
            with contextlib.suppress(Exception):
                live.update(self._frame(), refresh=True)
            live.stop()

    async def _refresh_loop(self) -> None:
        while True:
            if self._live is not None:
                try:
                    self._live.update(self._frame(), refresh=True)
                except Exception:
                    if not self._render_failed:  # log once; the run goes on
                        self._render_failed = True
                        _log.exception("dashboard: drawing failed")
            await asyncio.sleep(self._refresh_s)

    def _frame(self) -> RenderableType:
        return fit(self.snapshot(), self.console)

    # -- snapshot -------------------------------------------------------------------------

    def snapshot(self) -> DashboardSnapshot:
        """Read the simulation and the counters into a :class:`DashboardSnapshot`."""
        sim = self._sim
        if sim is None:
            raise RuntimeError("the dashboard has not started")
        now = self._wall()
        stats = sim.statistics()
        if self._breakdown_at is None or now - self._breakdown_at >= _BREAKDOWN_EVERY_S:
            self._breakdown = sim.breakdown()
            self._breakdown_at = now
        per_s, per_hour, effective = self.rates(now, stats.sim_now)
        speed = sim.speed
        state = sim.state
        eta = None
        if math.isfinite(sim.end_s) and state == "running":
            rate = speed if speed is not None else effective
            if rate:
                eta = max(0.0, sim.end_s - stats.sim_now) / rate
        target = target_statistics(sim.target)
        breakdown = self._breakdown
        recent = tuple(a for a in map(_activity_of, self._recent) if a is not None)
        return DashboardSnapshot(
            sim_now=stats.sim_now,
            start_s=sim.start_s,
            end_s=sim.end_s,
            speed=speed,
            state=state,
            title=f"sim-engine · {sim.scenario.name} · seed {sim.scenario.seed}",
            wall_elapsed_s=now - self._started_wall,
            users=stats.users,
            signed_up=stats.signed_up,
            actions=stats.actions,
            failed=stats.failed,
            in_flight=stats.in_flight,
            lifecycle=dict(breakdown.get("lifecycle", {})),
            persona=dict(breakdown.get("persona", {})),
            routine=dict(breakdown.get("routine", {})),
            in_session=int(breakdown.get("session", {}).get("in_session", 0)),
            actions_per_s=per_s,
            actions_per_sim_hour=per_hour,
            effective_speed=effective,
            eta_wall_s=eta,
            success_rate=(self.actions - self.failed) / self.actions if self.actions else None,
            latency_ms=self.latency_ms(),
            rate_limited=int(target.get("rate_limited", self.rate_limited)),
            retries=int(target.get("retries", self.retries)),
            breakers=target.get("breakers", {}),
            recent=recent,
            keys=self._stdin_fd is not None,
            message=self._message if now < self._message_until else "",
        )

    # -- keys -----------------------------------------------------------------------------

    def handle_key(self, key: str) -> str | None:
        """Act on one key press; return what was done (None for an unbound key).

        ``p`` (or space) pauses or resumes, ``+`` doubles the speed, ``-`` halves it
        (from ``max``: back to the last factor), ``m`` switches to ``max``, ``q`` stops.
        """
        sim = self._sim
        if sim is None or sim.stopping:
            return None
        done: str | None = None
        speed = sim.speed
        if key in ("p", "P", " "):
            if sim.paused:
                sim.resume()
                done = "resumed"
            else:
                sim.pause()
                done = "paused"
        elif key in ("+", "="):
            if speed is not None:
                sim.set_speed(min(speed * 2, _MAX_SPEED))
                done = f"speed {_speed_text(sim.speed, None)}"
        elif key in ("-", "_"):
            new = (self._last_speed or 3600.0) if speed is None else max(speed / 2, _MIN_SPEED)
            sim.set_speed(new)
            done = f"speed {_speed_text(sim.speed, None)}"
        elif key in ("m", "M"):
            if speed is not None:
                self._last_speed = speed
                sim.set_speed(None)
            done = "speed max"
        elif key in ("q", "Q"):
            sim.stop()
            done = "stopping…"
        if done is not None:
            self._message = done
            self._message_until = self._wall() + 3.0
            _log.info(f"dashboard: {done}", extra={"key": key})
            if self._live is not None:
                with contextlib.suppress(Exception):
                    self._live.update(self._frame(), refresh=True)
        return done

    def _start_keys(self) -> None:
        try:
            import termios
            import tty
        except ImportError:  # pragma: no cover - Windows
            return
        try:
            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return
            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except (OSError, ValueError, AttributeError, termios.error):
            return
        self._stdin_fd, self._saved_tty = fd, saved
        try:
            asyncio.get_running_loop().add_reader(fd, self._on_stdin)
        except (NotImplementedError, RuntimeError, ValueError):
            self._stop_keys()

    def _on_stdin(self) -> None:
        if self._stdin_fd is None:
            return
        try:
            data = os.read(self._stdin_fd, 64)
        except OSError:
            data = b""
        if not data:  # end of input: stop listening
            self._stop_keys()
            return
        for char in data.decode("utf-8", "ignore"):
            self.handle_key(char)

    def _stop_keys(self) -> None:
        fd, self._stdin_fd = self._stdin_fd, None
        if fd is None:
            return
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(fd)
        with contextlib.suppress(Exception):  # ImportError, termios.error, OSError
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_tty)
