"""Run metrics: an observer of records that builds seed 002's metrics.

Seed 002 asks for: total users over time, actions per type per simulated hour,
top posters, top viewed posts, and the latest N actions. Latency percentiles
come from an HDR histogram (``hdrhistogram``), in wall milliseconds.
Memory is bounded by the number of users, posts and simulated hours, never by
the number of actions.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any

from hdrh.histogram import HdrHistogram

from sim_engine.model.records import ActionRecord, DaySnapshot, LifecycleRecord, Record, UserRecord

__all__ = ["DailyMetrics", "MetricsCollector"]

_HOUR_S = 3600.0
_MAX_HOURS = 24 * 366  # actions_per_hour keeps at most a year of simulated hours
_MIN_TRACKED_POSTS = 20_000  # view counts kept for at most this many posts (pruned by half)
_MAX_LATENCY_US = 600_000_000  # 10 wall minutes


def _iso_utc(sim_ts: float) -> str:
    return datetime.fromtimestamp(sim_ts, timezone.utc).isoformat()


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(1, _MAX_LATENCY_US, 3)


class MetricsCollector:
    """Aggregates :class:`ActionRecord` and :class:`UserRecord` into run metrics.

    Args:
        start_s: simulated start (simulated epoch seconds).
        latest_n: how many of the latest actions to keep.
        top_n: length of the top lists.
        sample_s: ``users_over_time`` sampling interval (simulated seconds).
    """

    def __init__(
        self, start_s: float, latest_n: int = 50, top_n: int = 10, sample_s: float = _HOUR_S
    ) -> None:
        self.start_s = start_s
        self.last_s = start_s
        self._top_n = top_n
        self._sample_s = sample_s
        self._joined: list[float] = []
        self._users: dict[int, tuple[str, str]] = {}
        self._per_hour: dict[int, Counter[str]] = {}
        self._by_action: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._failed_by_action: Counter[str] = Counter()
        self._posts_by_user: Counter[int] = Counter()
        self._post_author: dict[int, int] = {}
        self._views: Counter[int] = Counter()
        self._latest: deque[dict[str, Any]] = deque(maxlen=latest_n)
        self._max_posts = max(_MIN_TRACKED_POSTS, top_n * 100)
        self._intended = 0
        self._newest_pruned = 0
        self._latency = _new_histogram()
        self._latency_by_action: dict[str, HdrHistogram] = {}

    # -- Sink -----------------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Take one record."""
        if isinstance(record, UserRecord):
            self._joined.insert(bisect_right(self._joined, record.sim_ts), record.sim_ts)
            self._users[record.user_id] = (record.name, record.persona)
        elif isinstance(record, ActionRecord):
            self._on_action(record)

    def close(self) -> None:
        """Nothing to release."""

    def _on_action(self, rec: ActionRecord) -> None:
        self.last_s = max(self.last_s, rec.sim_ts)
        hour = int(rec.sim_ts // _HOUR_S)
        counts = self._per_hour.get(hour)
        if counts is None:
            counts = self._per_hour[hour] = Counter()
            if len(self._per_hour) > _MAX_HOURS:
                del self._per_hour[min(self._per_hour)]
        counts[rec.action] += 1
        self._by_action[rec.action] += 1
        self._by_status[rec.status] += 1
        self._latest.append(rec.to_dict())
        latency_us = max(1, min(int(rec.latency_ms * 1000), _MAX_LATENCY_US))
        self._latency.record_value(latency_us)
        hist = self._latency_by_action.get(rec.action)
        if hist is None:
            hist = self._latency_by_action[rec.action] = _new_histogram()
        hist.record_value(latency_us)
        if rec.intended:
            self._intended += 1
            return
        if not rec.ok:
            self._failed_by_action[rec.action] += 1
            return
        if rec.action == "create_post" and rec.post_id is not None:
            self._posts_by_user[rec.user_id] += 1
            self._post_author[rec.post_id] = rec.user_id
        elif rec.action == "read_post" and rec.post_id is not None:
            self._views[rec.post_id] += 1
            if len(self._views) > self._max_posts:
                self._prune_posts()

    def _prune_posts(self) -> None:
        """Bound memory on long runs: keep the most-read half of the tracked posts.

        The top list stays exact for any post read more often than the ones
        dropped (a space-saving approximation of heavy hitters).
        """
        keep = dict(self._views.most_common(self._max_posts // 2))
        self._views = Counter(keep)
        self._post_author = {
            pid: uid
            for pid, uid in self._post_author.items()
            if pid in keep or pid > self._newest_pruned
        }
        self._newest_pruned = max(self._post_author, default=self._newest_pruned)

    # -- results --------------------------------------------------------------------------

    def users_at(self, sim_t: float) -> int:
        """Return how many users had joined by ``sim_t`` (simulated epoch seconds)."""
        return bisect_right(self._joined, sim_t)

    def users_over_time(self, end_s: float | None = None) -> list[dict[str, Any]]:
        """Return ``[{"sim_time", "users"}]`` every ``sample_s`` from the start to ``end_s``."""
        end = self.last_s if end_s is None else end_s
        out = []
        t = self.start_s
        while t < end:
            out.append({"sim_time": _iso_utc(t), "users": self.users_at(t)})
            t += self._sample_s
        out.append({"sim_time": _iso_utc(end), "users": self.users_at(end)})
        return out

    def actions_per_hour(self) -> list[dict[str, Any]]:
        """Return ``[{"hour": ISO UTC, "total": n, "counts": {action: n}}]`` by simulated hour."""
        return [
            {
                "hour": _iso_utc(hour * _HOUR_S),
                "total": sum(counts.values()),
                "counts": dict(sorted(counts.items())),
            }
            for hour, counts in sorted(self._per_hour.items())
        ]

    def top_posters(self) -> list[dict[str, Any]]:
        """Return the users who created the most posts, most first."""
        out = []
        for user_id, posts in self._posts_by_user.most_common(self._top_n):
            name, persona = self._users.get(user_id, ("?", "?"))
            out.append({"user_id": user_id, "name": name, "persona": persona, "posts": posts})
        return out

    def top_viewed_posts(self) -> list[dict[str, Any]]:
        """Return the most-read posts (reads by simulated users), most first."""
        return [
            {
                "post_id": post_id,
                "author_user_id": self._post_author.get(post_id),
                "views": views,
            }
            for post_id, views in self._views.most_common(self._top_n)
        ]

    def latency_ms(self, action: str | None = None) -> dict[str, float]:
        """Return latency percentiles p50/p95/p99 and max in wall milliseconds."""
        hist = self._latency if action is None else self._latency_by_action.get(action)
        if hist is None or hist.get_total_count() == 0:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
        return {
            name: hist.get_value_at_percentile(p) / 1000.0
            for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        }

    def summary(self) -> dict[str, Any]:
        """Return totals: actions by type, statuses, success rate, latency percentiles."""
        total = sum(self._by_action.values())
        failed = sum(self._failed_by_action.values())
        return {
            "users": len(self._joined),
            "actions": total,
            "failed": failed,
            "intended_errors": self._intended,
            "success_rate": (total - failed - self._intended) / (total - self._intended)
            if total > self._intended
            else 1.0,
            "actions_by_type": dict(self._by_action.most_common()),
            "failed_by_type": dict(self._failed_by_action.most_common()),
            "status_counts": {str(k): v for k, v in sorted(self._by_status.items())},
            "latency_ms": self.latency_ms(),
            "latency_ms_by_action": {
                a: self.latency_ms(a) for a in sorted(self._latency_by_action)
            },
        }

    def snapshot(self, end_s: float | None = None) -> dict[str, Any]:
        """Return everything ``metrics.json`` holds."""
        return {
            "start": _iso_utc(self.start_s),
            "end": _iso_utc(self.last_s if end_s is None else end_s),
            "summary": self.summary(),
            "users_over_time": self.users_over_time(end_s),
            "actions_per_hour": self.actions_per_hour(),
            "top_posters": self.top_posters(),
            "top_viewed_posts": self.top_viewed_posts(),
            "latest_actions": list(self._latest),
        }


class DailyMetrics:
    """Daily history (seed 003's ``daily_metrics.json``), one entry per simulated day.

    A day is 24 simulated hours from the run's start; the engine closes each one
    with a :class:`DaySnapshot` (population by state and pattern) and this
    collector adds what happened during it, counted from the records. Only the
    last ``history_days`` days are kept.

    Args:
        history_days: how many days to keep (seed 003: 90).
    """

    def __init__(self, history_days: int = 90) -> None:
        self._days: deque[dict[str, Any]] = deque(maxlen=history_days)
        self._reset()

    def _reset(self) -> None:
        self._active: set[int] = set()
        self._sessions: set[tuple[int, int]] = set()
        self._actions = 0
        self._signups = 0
        self._churned = 0
        self._cleaned = 0
        self._reactivated = 0

    def emit(self, record: Record) -> None:
        """Take one record."""
        if isinstance(record, ActionRecord):
            if record.state == "cleanup":
                return
            self._actions += 1
            self._active.add(record.user_id)
            self._sessions.add((record.user_id, record.session_id))
            if record.action == "sign_up" and record.ok:
                self._signups += 1
        elif isinstance(record, LifecycleRecord):
            if record.change == "state" and record.new == "CHURNED":
                self._churned += 1
            elif record.change == "state" and record.old == "DORMANT" and record.new == "ACTIVE":
                self._reactivated += 1
            elif record.change == "cleanup" and record.new == "DELETED":
                self._cleaned += 1
        elif isinstance(record, DaySnapshot):
            self._close_day(record)

    def _close_day(self, snap: DaySnapshot) -> None:
        active = len(self._active)
        start = _iso_utc(snap.day_start_ts)
        if self._days and self._days[-1]["start"] == start:
            self._days.pop()  # the same day closed again (a resumed run): the later one wins
        self._days.append(
            {
                "date": datetime.fromtimestamp(snap.day_start_ts, timezone.utc).date().isoformat(),
                "start": _iso_utc(snap.day_start_ts),
                "end": _iso_utc(snap.day_end_ts),
                "total_users": snap.total_users,
                "active_today": active,
                "new_signups": self._signups,
                "churned": self._churned,
                "churned_cleaned": self._cleaned,
                "reactivated": self._reactivated,
                "state_distribution": dict(sorted(snap.state_distribution.items())),
                "pattern_distribution": dict(sorted(snap.pattern_distribution.items())),
                "avg_engagement_by_state": dict(sorted(snap.engagement_by_state.items())),
                "sessions": len(self._sessions),
                "actions": self._actions,
                "sessions_per_active_user": round(len(self._sessions) / active, 3) if active else 0,
                "actions_per_active_user": round(self._actions / active, 3) if active else 0,
            }
        )
        self._reset()

    def close(self) -> None:
        """Nothing to release."""

    def restore(self, history: list[dict[str, Any]], before_s: float | None = None) -> None:
        """Take back the days a resumed run had already closed (oldest first).

        Args:
            history: the days of ``daily_metrics.json``.
            before_s: the start of the run day the resumed run goes on with
                (simulated epoch seconds): a day starting there or later was closed
                early by the stop and is left out, to be closed again with all its
                records (replay them with :meth:`emit`).
        """
        for day in history:
            start = datetime.fromisoformat(str(day["start"]).replace("Z", "+00:00")).timestamp()
            if before_s is None or start < before_s - 1e-3:
                self._days.append(day)

    def history(self) -> list[dict[str, Any]]:
        """Return the kept days, oldest first."""
        return list(self._days)
