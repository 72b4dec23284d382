"""JSON Lines files: ``actions.jsonl`` and ``users.jsonl`` in the output directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from sim_engine.model.records import ActionRecord, LifecycleRecord, Record, UserRecord
from sim_engine.model.settings_spec import RotationSpec
from sim_engine.sinks.rotation import open_lines

__all__ = ["JsonlSink"]


class JsonlSink:
    """Writes ``DIR/actions.jsonl``, ``DIR/users.jsonl`` (users as they join) and
    ``DIR/lifecycle.jsonl`` (lifecycle changes).

    Lines are buffered and flushed every ``flush_every`` records and at
    :meth:`close`, so an interrupted run loses at most one buffer.

    Args:
        out_dir: output directory (created if missing).
        flush_every: records between flushes.
        append: append to existing files (a resumed run) instead of starting them anew.
        rotation: rotate ``actions.jsonl`` by size or wall time, gzipped, a number kept
            (``output.rotate``; :mod:`sim_engine.sinks.rotation`); None: it grows.

    Raises:
        OSError: the directory or files cannot be created.
    """

    def __init__(
        self,
        out_dir: str | Path,
        flush_every: int = 1000,
        append: bool = False,
        rotation: RotationSpec | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        mode = "a" if append else "w"
        self._actions = open_lines(self.out_dir / "actions.jsonl", rotation, append)
        self._users: IO[str] = self._open("users.jsonl", mode)
        self._lifecycle: IO[str] = self._open("lifecycle.jsonl", mode)
        self._flush_every = flush_every
        self._pending = 0

    def _open(self, name: str, mode: str) -> IO[str]:
        return open(self.out_dir / name, mode, encoding="utf-8")

    def emit(self, record: Record) -> None:
        """Append one record as a JSON line."""
        if isinstance(record, ActionRecord):
            self._actions.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        elif isinstance(record, UserRecord):
            self._users.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
            self._users.flush()  # a user is rare and must not be lost in a buffer
        elif isinstance(record, LifecycleRecord):
            self._lifecycle.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the files."""
        for handle in (self._actions, self._users, self._lifecycle):
            handle.flush()
        self._pending = 0

    def close(self) -> None:
        """Flush and close both files."""
        if not self._actions.closed:
            self.flush()
            for handle in (self._actions, self._users, self._lifecycle):
                handle.close()
