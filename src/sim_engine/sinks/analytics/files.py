"""Batch files for import: one JSON message per line, in each vendor's shape.

``posthog-file`` writes ``DIR/analytics-posthog.jsonl`` (events and ``$set``
messages, for PostHog's batch import), ``segment-file`` writes
``DIR/analytics-segment.jsonl`` (track, page and identify calls of the Segment
spec) and ``mixpanel-file`` writes ``DIR/analytics-mixpanel.jsonl`` (import API
events; Mixpanel's ``/import`` takes newline-delimited JSON) and
``DIR/analytics-mixpanel-profiles.jsonl`` (Engage ``$set`` updates). Shapes in
:mod:`sim_engine.sinks.analytics.formats`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sim_engine.sinks.analytics.formats import (
    mixpanel_event,
    mixpanel_profile,
    posthog_event,
    posthog_identify,
    segment_event,
    segment_identify,
)

__all__ = ["FILE_FORMATS", "FileWriter", "file_writer", "json_line"]

Shape = Callable[[dict[str, Any]], dict[str, Any]]

FILE_FORMATS: dict[str, tuple[str, Shape, str, Shape]] = {
    "posthog": ("analytics-posthog.jsonl", posthog_event, "", posthog_identify),
    "segment": ("analytics-segment.jsonl", segment_event, "", segment_identify),
    "mixpanel": (
        "analytics-mixpanel.jsonl",
        mixpanel_event,
        "analytics-mixpanel-profiles.jsonl",
        mixpanel_profile,
    ),
}
"""Vendor -> (events file, event shape, identify file or "" for the same, identify shape)."""


def json_line(message: dict[str, Any]) -> str:
    """One batch-file line (without its newline): compact JSON, non-ASCII kept."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class FileWriter:
    """Writes events and identify calls as JSON lines (an ``AnalyticsWriter``).

    Lines are buffered and flushed every ``flush_every`` lines and at :meth:`close`.

    Args:
        path: the events file.
        shape: event dict -> the vendor's message.
        identify_shape: identify dict -> the vendor's message.
        identify_path: where identify lines go (None: the events file).
        append: append (a resumed run) instead of starting the files anew.
        flush_every: lines between flushes.

    Raises:
        OSError: a file cannot be opened.
    """

    def __init__(
        self,
        path: Path,
        shape: Shape,
        identify_shape: Shape,
        identify_path: Path | None = None,
        append: bool = False,
        flush_every: int = 1000,
    ) -> None:
        mode = "a" if append else "w"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._events: IO[str] = open(path, mode, encoding="utf-8")  # noqa: SIM115
        self._people: IO[str] = (
            self._events if identify_path is None else open(identify_path, mode, encoding="utf-8")  # noqa: SIM115
        )
        self._shape, self._identify_shape = shape, identify_shape
        self._flush_every, self._pending = flush_every, 0

    def _write(self, handle: IO[str], message: dict[str, Any]) -> None:
        handle.write(json_line(message) + "\n")
        self._pending += 1
        if self._pending >= self._flush_every:
            self._events.flush()
            self._people.flush()
            self._pending = 0

    def track(self, event: dict[str, Any]) -> None:
        """Write one event line."""
        self._write(self._events, self._shape(event))

    def identify(self, identity: dict[str, Any]) -> None:
        """Write one identify line."""
        self._write(self._people, self._identify_shape(identity))

    def close(self) -> None:
        """Flush and close the files."""
        for handle in {id(self._events): self._events, id(self._people): self._people}.values():
            if not handle.closed:
                handle.close()


def file_writer(vendor: str, out_dir: Path, append: bool = False) -> FileWriter:
    """The batch-file writer of ``vendor`` (``posthog``, ``segment``, ``mixpanel``) in ``out_dir``.

    Raises:
        KeyError: an unknown vendor.
        OSError: a file cannot be opened.
    """
    name, shape, people, identify_shape = FILE_FORMATS[vendor]
    people_path = out_dir / people if people else None
    return FileWriter(out_dir / name, shape, identify_shape, people_path, append)
