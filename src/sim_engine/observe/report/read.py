"""Reading a run directory for the report: ``metrics.json``, ``daily_metrics.json``,
``users.jsonl`` and one streaming pass over ``actions.jsonl``.

Memory is bounded by the number of users and simulated hours, never by the
number of actions: counts are aggregated per simulated hour, latency
percentiles per simulated hour come from HDR histograms (only a window of
recent hours is kept open; older ones are kept compressed), and session
lengths from one open session per user.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from hdrh.histogram import HdrHistogram

__all__ = [
    "ERROR_CATEGORIES",
    "HOUR_S",
    "ActionStats",
    "NotARunDirError",
    "ReportError",
    "RunFiles",
    "error_category",
    "iso_to_utc",
    "load_run",
    "read_actions",
    "utc_text",
]

ERROR_CATEGORIES = ("timeout", "connection", "4xx", "5xx", "bad answer", "skipped")
"""How failed actions are grouped in the error-rate chart."""

HOUR_S = 3600
"""Simulated seconds in a simulated hour (the report's time bucket)."""

_MAX_LATENCY_US = 600_000_000  # 10 wall minutes, as in metrics.py
_OPEN_HOURS = 48  # simulated hours of latency histograms kept uncompressed
_SESSION_EXCLUDED = frozenset({"sign_up", "log_in", "delete_account"})


class ReportError(ValueError):
    """A run file is missing or unreadable; the message is one line naming the file."""


class NotARunDirError(ReportError):
    """The directory does not exist or holds no run outputs."""


# -- files ---------------------------------------------------------------------------------


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


# -- times ---------------------------------------------------------------------------------


def utc_text(sim_ts: float) -> str:
    """Simulated epoch seconds -> ``YYYY-MM-DD HH:MM:SS`` (UTC), as Plotly date axes want."""
    return datetime.fromtimestamp(sim_ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def iso_to_utc(value: str) -> str:
    """An ISO 8601 time (``Z``, an offset, or naive = UTC) -> ``YYYY-MM-DD HH:MM:SS`` UTC.

    Raises:
        ValueError: ``value`` is not an ISO 8601 time.
    """
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
    """Group a failed action: one of :data:`ERROR_CATEGORIES`.

    Args:
        status: the HTTP status (0: no response).
        error: the action's error text (a timeout is told from it when status is 0).
        skipped: the action was not sent (circuit open, kill switch).
    """
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


# -- actions.jsonl --------------------------------------------------------------------------


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
    """What one pass over ``actions.jsonl`` yields (all bounded by hours and users).

    Attributes:
        actions: number of action lines.
        per_hour: simulated hour (epoch seconds // 3600) -> action name -> count.
        ok_per_hour: simulated hour -> actions that succeeded.
        errors_per_hour: simulated hour -> error category -> failed actions.
        rhythm: persona -> the user's local hour of day (0-23) -> actions.
        latency: simulated hour -> (p50, p95, p99) in wall milliseconds.
        session_lengths: actions in a session -> number of sessions.
        pages: browser steps (records with a ``page``; docs/browser.md).
        page_timing: ``ttfb`` / ``dcl`` / ``load`` -> simulated hour -> (p50, p95, p99)
            of the Navigation Timing of the documents browser steps opened (wall ms).
        page_problems: ``console errors`` / ``failed requests`` -> how many steps saw.
    """

    actions: int = 0
    per_hour: dict[int, Counter[str]] = field(default_factory=dict)
    ok_per_hour: Counter[int] = field(default_factory=Counter)
    errors_per_hour: dict[int, Counter[str]] = field(default_factory=dict)
    rhythm: dict[str, Counter[int]] = field(default_factory=dict)
    latency: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    session_lengths: Counter[int] = field(default_factory=Counter)
    pages: int = 0
    page_timing: dict[str, dict[int, tuple[float, float, float]]] = field(default_factory=dict)
    page_problems: Counter[str] = field(default_factory=Counter)


_PAGE_PHASES = {"ttfb": "ttfb_ms", "dcl": "dcl_ms", "load": "load_ms"}
"""Navigation Timing phases of a browser step's ``page`` -> the field holding it."""


class _Action(NamedTuple):
    """The fields of one ``actions.jsonl`` line the report uses."""

    sim_ts: float
    action: str
    ok: bool
    status: int
    latency_ms: float
    user_id: int
    local_hour: int
    persona: str
    skipped: bool
    session_id: int
    cleanup: bool
    error: Any
    page: Any


def _parse_action(path: Path, number: int, rec: dict[str, Any]) -> _Action:
    try:
        action = _Action(
            sim_ts=float(rec["sim_ts"]),
            action=str(rec["action"]),
            ok=bool(rec["ok"]),
            status=int(rec["status"]),
            latency_ms=float(rec["latency_ms"]),
            user_id=int(rec["user_id"]),
            local_hour=_local_hour(str(rec["sim_time"])),
            persona=str(rec.get("persona") or "?"),
            skipped=bool(rec.get("skipped", False)),
            session_id=int(rec.get("session_id") or 0),
            cleanup=rec.get("state") == "cleanup",
            error=rec.get("error"),
            page=rec.get("page"),
        )
    except KeyError as exc:
        raise ReportError(f"{path}: line {number} has no {exc.args[0]!r} field") from None
    except (TypeError, ValueError):
        raise ReportError(f"{path}: line {number} is not a valid action record") from None
    if not math.isfinite(action.sim_ts):
        raise ReportError(f"{path}: line {number} has a non-finite sim_ts")
    return action


class _ActionTotals:
    """Folds parsed actions into an :class:`ActionStats`, one at a time."""

    def __init__(self) -> None:
        self.stats = ActionStats()
        self._latency = _HourlyLatency()
        self._sessions: dict[int, tuple[int, int]] = {}  # user -> (session_id, actions so far)
        self._pages = {phase: _HourlyLatency() for phase in _PAGE_PHASES}

    def add(self, a: _Action) -> None:
        stats = self.stats
        stats.actions += 1
        hour = int(a.sim_ts // HOUR_S)
        counts = stats.per_hour.get(hour)
        if counts is None:
            counts = stats.per_hour[hour] = Counter()
        counts[a.action] += 1
        if a.ok:
            stats.ok_per_hour[hour] += 1
        else:
            errors = stats.errors_per_hour.get(hour)
            if errors is None:
                errors = stats.errors_per_hour[hour] = Counter()
            errors[error_category(a.status, a.error, a.skipped)] += 1
        by_hour = stats.rhythm.get(a.persona)
        if by_hour is None:
            by_hour = stats.rhythm[a.persona] = Counter()
        by_hour[a.local_hour] += 1
        if not a.skipped:
            self._latency.record(hour, a.latency_ms)
        if not a.cleanup and a.action not in _SESSION_EXCLUDED:
            self._session_action(a.user_id, a.session_id)
        if isinstance(a.page, dict):
            self._page(hour, a.page)

    def _page(self, hour: int, page: dict[str, Any]) -> None:
        self.stats.pages += 1
        for phase, key in _PAGE_PHASES.items():
            value = page.get(key)
            if isinstance(value, (int, float)):
                self._pages[phase].record(hour, float(value))
        for problem, key in (
            ("console errors", "console_errors"),
            ("failed requests", "failed_requests"),
        ):
            self.stats.page_problems[problem] += len(page.get(key) or ())

    def _session_action(self, user_id: int, session_id: int) -> None:
        current = self._sessions.get(user_id)
        if current is not None and current[0] == session_id:
            self._sessions[user_id] = (session_id, current[1] + 1)
        else:
            if current is not None:
                self.stats.session_lengths[current[1]] += 1
            self._sessions[user_id] = (session_id, 1)

    def finish(self) -> ActionStats:
        for _session_id, length in self._sessions.values():
            self.stats.session_lengths[length] += 1
        self._sessions.clear()
        self.stats.latency = self._latency.percentiles()
        self.stats.page_timing = {p: h.percentiles() for p, h in self._pages.items()}
        return self.stats


def read_actions(path: Path) -> ActionStats:
    """Aggregate ``actions.jsonl`` in one streaming pass.

    Raises:
        ReportError: the file is missing, unreadable, or a line is not an action.
    """
    if not path.is_file():
        raise ReportError(f"{path}: missing (the run directory has no {path.name})")
    totals = _ActionTotals()
    for number, rec in _iter_jsonl(path):
        totals.add(_parse_action(path, number, rec))
    return totals.finish()


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


# -- the run directory ---------------------------------------------------------------------


@dataclass
class RunFiles:
    """What the report reads from a run directory.

    Attributes:
        metrics: ``metrics.json`` (checked to have the keys the report uses).
        days: ``daily_metrics.json`` (None when the run has none).
        actions: the aggregates of ``actions.jsonl``.
        names: user id -> name, for the authors of the most viewed posts.
    """

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


def _read_metrics(metrics_path: Path) -> dict[str, Any]:
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
    return metrics


def _read_days(daily_path: Path) -> list[dict[str, Any]] | None:
    days = _read_json(daily_path, required=False)
    if days is not None and not (isinstance(days, list) and all(isinstance(d, dict) for d in days)):
        raise ReportError(f"{daily_path}: not a list of days")
    for number, day in enumerate(days or [], 1):
        try:
            iso_to_utc(str(day["start"]))
            iso_to_utc(str(day.get("end", day["start"])))
        except (KeyError, ValueError):
            raise ReportError(f"{daily_path}: day {number} has no valid 'start' time") from None
    return days


def load_run(run_dir: Path) -> RunFiles:
    """Read the report's inputs from ``run_dir``.

    Raises:
        NotARunDirError: ``run_dir`` is missing or holds no run outputs.
        ReportError: a run file is missing, unreadable or malformed (one line, naming it).
    """
    _check_run_dir(run_dir)
    metrics = _read_metrics(run_dir / "metrics.json")
    days = _read_days(run_dir / "daily_metrics.json")
    actions = read_actions(run_dir / "actions.jsonl")
    wanted = {
        p["author_user_id"]
        for p in metrics["top_viewed_posts"]
        if isinstance(p, dict) and isinstance(p.get("author_user_id"), int)
    }
    names = _user_names(run_dir / "users.jsonl", wanted)
    return RunFiles(metrics, days, actions, names)
