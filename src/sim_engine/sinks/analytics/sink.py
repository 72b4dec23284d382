"""The analytics sink: records in, analytics events out to a writer (a file or an SDK).

:class:`AnalyticsSink` is a :class:`~sim_engine.model.records.Sink`. It learns users
from their :class:`~sim_engine.model.records.UserRecord` (identifying each once),
maps each :class:`~sim_engine.model.records.ActionRecord` with the
:class:`~sim_engine.model.analytics.AnalyticsMapper`, and hands the results to an
:class:`AnalyticsWriter`: the batch files of :mod:`sim_engine.sinks.analytics.files`
or the SDK clients of :mod:`sim_engine.sinks.analytics.live`.
"""

from __future__ import annotations

from typing import Any, Protocol

from sim_engine.model.analytics import AnalyticsMapper, AnalyticsUser
from sim_engine.model.records import ActionRecord, Record, UserRecord

__all__ = ["AnalyticsSink", "AnalyticsWriter"]


class AnalyticsWriter(Protocol):
    """Where mapped events go (shapes in :mod:`sim_engine.model.analytics`)."""

    def track(self, event: dict[str, Any]) -> None:
        """Send or write one event (must not block for long)."""
        ...

    def identify(self, identity: dict[str, Any]) -> None:
        """Send or write one user's traits."""
        ...

    def close(self) -> None:
        """Flush everything queued (the SDKs' batches too) and release resources."""
        ...


class AnalyticsSink:
    """Maps a run's records to analytics events and passes them to ``writer``.

    Args:
        mapper: the scenario's mapping.
        writer: a file writer or an SDK writer.
        users: users known before the run (a resumed run's ``users.jsonl``); they are
            not identified again.

    Attributes:
        events: events passed to the writer so far.
        identified: identify calls passed to the writer so far.
    """

    def __init__(
        self,
        mapper: AnalyticsMapper,
        writer: AnalyticsWriter,
        users: list[UserRecord] | None = None,
    ) -> None:
        self.mapper = mapper
        self.writer = writer
        self._users = {u.user_id: AnalyticsUser.from_record(u) for u in users or []}
        self.events = 0
        self.identified = 0
        self._closed = False

    def emit(self, record: Record) -> None:
        """Map one record: a user joining is identified, an action becomes an event."""
        if isinstance(record, ActionRecord):
            user = self._users.get(record.user_id)
            if user is None:  # not seen joining (a founder restored, an old run)
                user = AnalyticsUser(record.user_id, record.persona)
            event = self.mapper.event(record, user)
            if event is not None:
                self.writer.track(event)
                self.events += 1
        elif isinstance(record, UserRecord):
            user = AnalyticsUser.from_record(record)
            self._users[record.user_id] = user
            identity = self.mapper.identify(user, record.sim_time, record.sim_ts)
            if identity is not None:
                self.writer.identify(identity)
                self.identified += 1

    def close(self) -> None:
        """Close the writer (flushing what it holds); later calls do nothing."""
        if not self._closed:
            self._closed = True
            self.writer.close()
