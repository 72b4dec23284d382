"""Bounded disk for long runs: JSON-lines files rotated by size or wall time, gzipped,
a fixed number kept (issue 15, must-have 4).

Built on the standard library's :mod:`logging.handlers` (``RotatingFileHandler``
for size, ``TimedRotatingFileHandler`` for time) with the documented ``namer`` and
``rotator`` hooks compressing each rotated file with gzip. Rotated files sit beside
the live one: ``actions.jsonl.1.gz`` (newest) to ``actions.jsonl.N.gz`` by size, or
``actions.jsonl.2026-11-26_18-00-00.gz`` by time; at most ``keep`` of them stay.
The live file is opened for appending, so a resumed run goes on writing it.
"""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from sim_engine.model.settings_spec import RotationSpec, parse_duration

__all__ = ["LineWriter", "open_lines", "read_lines", "rotated_files"]

_NUMBERED = re.compile(r"\.(\d+)(\.gz)?$")


class LineWriter(Protocol):
    """Where a sink writes whole lines (each ending with a newline)."""

    def write(self, line: str) -> object: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


def _gzip_rotator(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out)
    os.remove(source)


class _RotatingLines:
    """A :class:`LineWriter` over a rotating :mod:`logging` handler (one line per record)."""

    def __init__(self, handler: logging.FileHandler) -> None:
        handler.terminator = ""  # lines carry their own newline
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        self.closed = False

    def write(self, line: str) -> int:
        # makeLogRecord: no caller lookup, no args; the handler rotates before writing.
        self._handler.handle(logging.makeLogRecord({"msg": line}))
        return len(line)

    def flush(self) -> None:
        self._handler.flush()

    def close(self) -> None:
        if not self.closed:
            self._handler.close()
            self.closed = True


def open_lines(path: Path, rotation: RotationSpec | None, append: bool) -> LineWriter | IO[str]:
    """Open ``path`` for JSON lines: a plain file without ``rotation``, else a rotating one.

    Raises:
        OSError: the file cannot be opened.
    """
    if rotation is None:
        return open(path, "a" if append else "w", encoding="utf-8")
    if not append and path.exists():
        path.unlink()  # a fresh run starts the file anew, as "w" would
    handler: logging.FileHandler
    if rotation.max_bytes is not None:
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=rotation.max_bytes, backupCount=rotation.keep, encoding="utf-8"
        )
    else:
        every_s = max(1, round(parse_duration(rotation.every or "1d")))
        handler = logging.handlers.TimedRotatingFileHandler(
            path, when="S", interval=every_s, backupCount=rotation.keep, encoding="utf-8", utc=True
        )
    if rotation.compress:
        handler.namer = lambda name: name + ".gz"
        handler.rotator = _gzip_rotator
    return _RotatingLines(handler)


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of ``path`` still on disk, oldest first (the live file excluded)."""
    found = [p for p in path.parent.glob(path.name + ".*") if p.name != path.name]
    numbered = [p for p in found if _NUMBERED.search(p.name)]
    if numbered:  # by size: .1 is the newest
        return sorted(numbered, key=lambda p: -int(_NUMBERED.search(p.name).group(1)))  # type: ignore[union-attr]
    return sorted(found)  # by time: the suffix is a sortable UTC date-time


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a file, gzipped (``.gz``) or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        yield from handle
