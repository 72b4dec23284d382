"""Live analytics through the vendors' official Python SDKs, with historical timestamps.

Each writer is an :class:`~sim_engine.sinks.analytics.sink.AnalyticsWriter` around
one SDK client pointed at ``host``; batching, retries and back-off on rate limits
(429) are the SDK's own. The engine does not wait for the network: PostHog and
Segment queue in memory and send from their own threads; the Mixpanel SDK sends in
the caller's thread, so its calls run on a worker thread of ours. When a queue is
full the run waits for room (back-pressure: at ``--speed max`` the host's pace sets
the run's) instead of the SDK dropping events. :meth:`close` flushes everything and
waits for it (a run's end).

* PostHog (``posthog``): ``Client(key, host=..., historical_migration=True)``;
  events through ``capture`` with the event's simulated ``timestamp`` and ``uuid``,
  traits through ``set`` (a ``$set`` event). Posted to ``HOST/batch/``.
* Segment (``segment-analytics-python``): ``Client(write_key, host=...)``;
  ``track``, ``page`` and ``identify`` with the simulated ``timestamp`` (kept with
  the user's offset) and ``message_id``. Posted to ``HOST/v1/batch``.
* Mixpanel (``mixpanel``): ``Mixpanel(token, consumer=BufferedConsumer(...))``;
  events through ``import_data`` (``HOST/import``, for events older than five
  days), ``time`` in milliseconds and ``$insert_id`` the event's uuid; traits through
  ``people_set`` (``HOST/engage``). The token authenticates ``/import`` as the basic
  auth user unless a project secret is given.

The SDKs are an optional extra: ``pip install 'sim-engine[analytics]'``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sim_engine.sinks.analytics.formats import mixpanel_time_ms

__all__ = ["SDK_PACKAGES", "MixpanelWriter", "PosthogWriter", "SdkMissingError", "SegmentWriter"]

_log = logging.getLogger(__name__)

SDK_PACKAGES = {
    "posthog": "posthog",
    "segment": "segment-analytics-python",
    "mixpanel": "mixpanel",
}
"""Vendor -> the PyPI package of its official SDK."""


class _QuietImport(logging.Filter):
    """Drops the Mixpanel SDK's per-call notice that ``api_secret`` is deprecated: the
    project secret (or token) is how ``/import`` authenticates without a service
    account, and the notice would repeat for every event."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("api_secret is deprecated")


class SdkMissingError(RuntimeError):
    """The vendor's SDK is not installed; ``str()`` says how to install it."""


_QUIET = _QuietImport()


def _missing(vendor: str) -> SdkMissingError:
    return SdkMissingError(
        f"--analytics {vendor} needs the {SDK_PACKAGES[vendor]} package: "
        "pip install 'sim-engine[analytics]'"
    )


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _make_room(pending: Any) -> None:
    """Wait (blocking the caller: back-pressure on the engine) while an SDK's queue is
    full, instead of letting the SDK drop the next message. ``pending``: the SDK's
    :class:`queue.Queue`, or None when this SDK version keeps it elsewhere."""
    if pending is None or pending.maxsize <= 0:
        return
    while pending.qsize() >= pending.maxsize:
        _PAUSE.wait(PAUSE_S)


PAUSE_S = 0.005
"""Wall seconds between two looks at a full SDK queue."""

_PAUSE = threading.Event()  # never set: a sleep that is not a wall-clock read


class _Errors:
    """Counts the batches an SDK reports as failed (logged once each, without the key)."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.failed = 0

    def __call__(self, error: Any, batch: Any = None) -> None:
        self.failed += 1
        _log.warning("%s: a batch failed: %s", self.vendor, type(error).__name__)


class PosthogWriter:
    """Events and traits to PostHog through its SDK (see the module docstring).

    Args:
        host: the PostHog host (``http://127.0.0.1:PORT``; the runner checks it is allowed).
        key: the project API key.
        flush_at: events per batch.
        max_retries: retries of a failed batch (the SDK backs off between them).
        timeout_s: wall seconds per request.
        max_queue: events the SDK may hold unsent; when it is full the run waits
            (the host's pace sets the run's) rather than the SDK dropping events.

    Raises:
        SdkMissingError: ``posthog`` is not installed.
    """

    def __init__(
        self,
        host: str,
        key: str,
        flush_at: int = 100,
        max_retries: int = 3,
        timeout_s: float = 15,
        max_queue: int = 10_000,
    ) -> None:
        try:
            from posthog import Posthog
        except ImportError:
            raise _missing("posthog") from None
        self.errors = _Errors("posthog")
        self._client = Posthog(
            key,
            host=host,
            flush_at=flush_at,
            max_retries=max_retries,
            timeout=timeout_s,
            historical_migration=True,
            capture_mode="v0",
            on_error=self.errors,
            max_queue_size=max_queue,
        )
        lane = getattr(self._client, "_analytics_lane", None)
        self._pending = getattr(lane, "queue", None)

    def track(self, event: dict[str, Any]) -> None:
        """Queue one event (PostHog's ``capture``), waiting while the SDK's queue is full."""
        _make_room(self._pending)
        self._client.capture(
            event["event"],
            distinct_id=event["distinct_id"],
            properties=dict(event["properties"]),
            timestamp=_when(event["timestamp"]),
            uuid=event["uuid"],
        )

    def identify(self, identity: dict[str, Any]) -> None:
        """Queue the user's traits (PostHog's ``set``: a ``$set`` event)."""
        _make_room(self._pending)
        self._client.set(
            distinct_id=identity["distinct_id"],
            properties=dict(identity["traits"]),
            timestamp=_when(identity["timestamp"]),
            uuid=identity["uuid"],
        )

    def close(self) -> None:
        """Send what is queued and stop the SDK's threads."""
        self._client.flush()
        self._client.shutdown()


class SegmentWriter:
    """Track, page and identify calls to Segment through its SDK (see the module docstring).

    Args:
        host: the Segment API host (``http://127.0.0.1:PORT``).
        key: the source's write key.
        upload_size: messages per batch.
        max_retries: retries of a failed batch.
        timeout_s: wall seconds per request.
        max_queue: messages the SDK may hold unsent (then the run waits, as for PostHog).

    Raises:
        SdkMissingError: ``segment-analytics-python`` is not installed.
    """

    def __init__(
        self,
        host: str,
        key: str,
        upload_size: int = 100,
        max_retries: int = 10,
        timeout_s: float = 15,
        max_queue: int = 10_000,
    ) -> None:
        try:
            from segment.analytics import Client
        except ImportError:
            raise _missing("segment") from None
        self.errors = _Errors("segment")
        self._client = Client(
            key,
            host=host,
            upload_size=upload_size,
            max_retries=max_retries,
            timeout=timeout_s,
            on_error=self.errors,
            max_queue_size=max_queue,
        )
        self._pending = getattr(self._client, "queue", None)

    def track(self, event: dict[str, Any]) -> None:
        """Queue a ``track`` call (a ``page`` call for an event of kind ``page``)."""
        _make_room(self._pending)
        common = {
            "user_id": event["distinct_id"],
            "properties": dict(event["properties"]),
            "timestamp": _when(event["timestamp"]),
            "message_id": event["uuid"],
        }
        if event["kind"] == "page":
            self._client.page(name=event["event"], **common)
        else:
            self._client.track(event=event["event"], **common)

    def identify(self, identity: dict[str, Any]) -> None:
        """Queue an ``identify`` call."""
        _make_room(self._pending)
        self._client.identify(
            user_id=identity["distinct_id"],
            traits=dict(identity["traits"]),
            timestamp=_when(identity["timestamp"]),
            message_id=identity["uuid"],
        )

    def close(self) -> None:
        """Send what is queued and stop the SDK's threads."""
        self._client.flush()
        self._client.join()


class MixpanelWriter:
    """Events (``/import``) and profiles (``/engage``) to Mixpanel through its SDK.

    The SDK's :class:`BufferedConsumer` batches (up to 50 messages, its maximum) and
    retries; it sends in the calling thread, so the calls run on one worker thread
    fed by a queue.

    Args:
        host: the Mixpanel API host (``http://127.0.0.1:PORT``).
        token: the project token.
        secret: the project secret for ``/import`` (None: the token, which Mixpanel
            accepts as the basic auth user).
        batch: messages per request (at most 50).
        timeout_s: wall seconds per request.
        max_queue: calls waiting for the worker; when full the run waits.

    Raises:
        SdkMissingError: ``mixpanel`` is not installed.
    """

    def __init__(
        self,
        host: str,
        token: str,
        secret: str | None = None,
        batch: int = 50,
        timeout_s: float = 15,
        max_queue: int = 10_000,
    ) -> None:
        try:
            from mixpanel import BufferedConsumer, Mixpanel
        except ImportError:
            raise _missing("mixpanel") from None
        logging.getLogger("mixpanel").addFilter(_QUIET)
        base = host.rstrip("/")
        self._consumer = BufferedConsumer(
            max_size=batch,
            events_url=f"{base}/track",
            people_url=f"{base}/engage",
            import_url=f"{base}/import",
            groups_url=f"{base}/groups",
            request_timeout=timeout_s,
        )
        self._client = Mixpanel(token, consumer=self._consumer)
        self._secret = secret if secret is not None else token
        self.errors = _Errors("mixpanel")
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(max_queue)
        self._worker = threading.Thread(target=self._work, name="mixpanel-writer", daemon=True)
        self._worker.start()

    def _run(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as exc:  # the SDK raises MixpanelException for a failed batch
            self.errors(exc)

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                self._run(self._consumer.flush)
                return
            self._run(call)

    def track(self, event: dict[str, Any]) -> None:
        """Queue one event for ``/import``."""
        properties = {"$insert_id": event["uuid"], **event["properties"]}
        self._queue.put(
            lambda: self._client.import_data(
                None,
                event["distinct_id"],
                event["event"],
                mixpanel_time_ms(event["sim_ts"]),
                properties,
                api_secret=self._secret,
            )
        )

    def identify(self, identity: dict[str, Any]) -> None:
        """Queue a profile ``$set`` for ``/engage``."""
        self._queue.put(
            lambda: self._client.people_set(
                identity["distinct_id"],
                dict(identity["traits"]),
                meta={"$time": identity["sim_ts"], "$ignore_time": True},  # simulated, not wall
            )
        )

    def close(self) -> None:
        """Send what is queued, flush the SDK's buffers and stop the worker."""
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()
