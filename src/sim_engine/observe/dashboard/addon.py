"""The live dashboard add-on: counts records as a sink, redraws every ``refresh_s``
wall seconds, and reads keys (see :mod:`sim_engine.observe.dashboard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram
from rich.console import Console, RenderableType
from rich.live import Live

from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, Sink, UserRecord
from sim_engine.observe.counts import user_counts
from sim_engine.observe.dashboard.snapshot import DashboardSnapshot, activity_of, target_statistics
from sim_engine.observe.dashboard.view import fit, speed_text

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = ["Dashboard"]

_log = logging.getLogger("sim_engine.observe.dashboard")

_MAX_LATENCY_US = 600_000_000  # 10 wall minutes
_RATE_WINDOW_S = 5.0  # wall seconds over which rates are measured
_BREAKDOWN_EVERY_S = 1.0  # breakdown() walks the population: at most once a wall second
_MIN_SPEED, _MAX_SPEED = 0.01, 1e9


class Dashboard:
    """The live dashboard add-on (see :mod:`sim_engine.observe.dashboard`).

    Args:
        console: where to draw (default: a new :class:`rich.console.Console` on stdout).
        refresh_s: wall seconds between two frames.
        recent: lines in the recent-activity feed (fewer when the terminal is short).
        keys: read keys from stdin when it is a terminal.
        wall: the wall-clock source (``time.monotonic``); injectable for tests.

    Raises:
        ValueError: ``refresh_s`` is not positive.
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
        self.page_steps = 0  # browser steps; their documents' load times (wall us):
        self._page_load = HdrHistogram(1, _MAX_LATENCY_US, 3)
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
            if record.page is not None:
                self._on_page(record.page)
        elif isinstance(record, UserRecord) or (
            isinstance(record, LifecycleRecord) and record.change == "state"
        ):
            self._recent.append(record)

    def _on_page(self, page: dict[str, Any]) -> None:
        self.page_steps += 1
        load = page.get("load_ms")
        if load is not None:
            self._page_load.record_value(max(1, min(int(float(load) * 1000), _MAX_LATENCY_US)))

    def page_load_ms(self) -> float | None:
        """Median load time (wall ms, Navigation Timing) of the documents browser steps
        opened so far; None before the first."""
        if self._page_load.get_total_count() == 0:
            return None
        return float(self._page_load.get_value_at_percentile(50)) / 1000.0

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
        eta = _eta(sim.end_s, stats.sim_now, speed if speed is not None else effective, state)
        target = target_statistics(sim.target)
        breakdown, counts = self._breakdown, user_counts(stats, self._breakdown)
        recent = tuple(a for a in map(activity_of, self._recent) if a is not None)
        return DashboardSnapshot(
            sim_now=stats.sim_now,
            start_s=sim.run_start_s,
            end_s=sim.end_s,
            speed=speed,
            state=state,
            title=f"sim-engine · {sim.scenario.name} · seed {sim.scenario.seed}",
            wall_elapsed_s=now - self._started_wall,
            users=counts.known,
            signed_up=counts.joined,
            actions=stats.actions,
            failed=stats.failed,
            in_flight=stats.in_flight,
            lifecycle=dict(breakdown.get("lifecycle", {})),
            persona=dict(breakdown.get("persona", {})),
            routine=dict(breakdown.get("routine", {})),
            in_session=counts.active,
            actions_per_s=per_s,
            actions_per_sim_hour=per_hour,
            effective_speed=effective,
            eta_wall_s=eta,
            success_rate=(self.actions - self.failed) / self.actions if self.actions else None,
            latency_ms=self.latency_ms(),
            page_steps=self.page_steps,
            page_load_ms=self.page_load_ms(),
            rate_limited=int(target.get("rate_limited", self.rate_limited)),
            retries=int(target.get("retries", self.retries)),
            breakers=target.get("breakers", {}),
            starving=str(target.get("starving", "")),
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
                done = f"speed {speed_text(sim.speed, None)}"
        elif key in ("-", "_"):
            new = (self._last_speed or 3600.0) if speed is None else max(speed / 2, _MIN_SPEED)
            sim.set_speed(new)
            done = f"speed {speed_text(sim.speed, None)}"
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


def _eta(end_s: float, sim_now: float, rate: float | None, state: str) -> float | None:
    """Wall seconds left until ``end_s`` at ``rate`` simulated seconds per wall second
    (None: open-ended, not running, or no rate yet)."""
    if not math.isfinite(end_s) or state != "running" or not rate:
        return None
    return max(0.0, end_s - sim_now) / rate
