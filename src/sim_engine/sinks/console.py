"""Human-readable console output: a line per action, or a line per simulated hour."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import TextIO

from sim_engine.model.records import ActionRecord, Record, UserRecord

__all__ = ["SHORT_NAMES", "ConsoleSink"]

SHORT_NAMES = {
    "browse_feed": "browse",
    "read_post": "read",
    "create_post": "post",
    "update_post": "update",
    "delete_post": "delete",
    "sign_up": "sign-up",
    "log_in": "log-in",
    "delete_account": "delete acct",
    "browse_trending": "trending",
    "check_followers": "followers",
    "follow_author": "follow",
    "follow_back": "follow back",
}
"""Short action names for narrow columns (console lines, the dashboard's feed)."""
_SHORT = SHORT_NAMES


class ConsoleSink:
    """Prints records to a stream.

    Args:
        stream: where lines go (the CLI passes ``sys.stdout``; tests a ``StringIO``).
        per_action: one line per action when True; otherwise one summary line
            per simulated hour.
    """

    def __init__(self, stream: TextIO, per_action: bool) -> None:
        self._stream = stream
        self._per_action = per_action
        self._names: dict[int, str] = {}
        self._hour: int | None = None
        self._counts: Counter[str] = Counter()
        self._failed = 0
        self._users = 0

    def emit(self, record: Record) -> None:
        """Print (or tally) one record."""
        if isinstance(record, UserRecord):
            self._users += 1
            self._names[record.user_id] = record.name
            if self._per_action:
                self._write(
                    f"{record.sim_time}  + {record.name} joined ({record.persona}, "
                    f"{record.timezone}, {record.email})"
                )
            return
        if not isinstance(record, ActionRecord):
            return
        if self._per_action:
            self._write(self._action_line(record))
            return
        hour = int(record.sim_ts // 3600)
        if self._hour is not None and hour != self._hour:
            self._flush_hour()
        self._hour = hour
        self._counts[record.action] += 1
        self._failed += not record.ok

    def _action_line(self, rec: ActionRecord) -> str:
        who = self._names.get(rec.user_id, f"user {rec.user_id}")
        target = f" post {rec.post_id}" if rec.post_id is not None else ""
        err = f"  ! {rec.error}" if rec.error else ""
        return (
            f"{rec.sim_time}  {who:<22.22} {rec.persona:<16} {rec.state:<9} "
            f"{_SHORT.get(rec.action, rec.action):<8}{target:<10} {rec.status:>3} "
            f"{rec.latency_ms:7.1f} ms{err}"
        )

    def _flush_hour(self) -> None:
        if self._hour is None or not self._counts:
            return
        stamp = datetime.fromtimestamp(self._hour * 3600, timezone.utc).strftime("%Y-%m-%d %H:00Z")
        total = sum(self._counts.values())
        mix = ", ".join(f"{_SHORT.get(a, a)} {n}" for a, n in self._counts.most_common())
        ok = 100.0 * (total - self._failed) / total
        self._write(f"[{stamp}] users {self._users:>6} | {total:>6} actions ({mix}) | ok {ok:.1f}%")
        self._counts.clear()
        self._failed = 0

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")

    def close(self) -> None:
        """Print the last hour's line."""
        if not self._per_action:
            self._flush_hour()
        self._stream.flush()
