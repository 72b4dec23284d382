"""Structured logs: ``DIR/log.jsonl``, one JSON object per line, secrets redacted.

Two writers share one file handle (so lines never interleave):

* :class:`JsonLogSink`, a :class:`~sim_engine.model.records.Sink`: one line per
  failed action (its trace: user, persona, routine state, session, endpoint,
  status, wall latency, retries, skipped, error; every action with
  ``output.log_actions: all``, none with ``none``: ``actions.jsonl`` holds them
  all already), per user joining, per lifecycle change and per simulated day;
* the stdlib :mod:`logging` tree under ``sim_engine`` (run started/stopped,
  run errors, control commands), through :class:`JsonFormatter` and
  :class:`RedactFilter` -- see :func:`configure_logging`.

Every line has ``ts`` (wall time, ISO 8601 UTC), ``level`` (``debug``,
``info``, ``warning``, ``error``) and ``event``; every line goes through
:func:`sim_engine.observe.redact.redact`. :class:`LogAddon` wires both into a run
(the runner always adds it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from sim_engine.model.records import (
    ActionRecord,
    DaySnapshot,
    LifecycleRecord,
    Record,
    Sink,
    UserRecord,
)
from sim_engine.model.settings_spec import RotationSpec
from sim_engine.observe.redact import redact, redact_text
from sim_engine.sinks.rotation import LineWriter, open_lines

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = [
    "ACTION_LINES",
    "LOG_FILE",
    "JsonFormatter",
    "JsonLogSink",
    "LogAddon",
    "RedactFilter",
    "action_level",
    "configure_logging",
    "remove_logging",
]

LOG_FILE = "log.jsonl"
"""The log's file name in the run directory."""

ACTION_LINES = ("failed", "all", "none")
"""The values of ``output.log_actions``: which actions ``log.jsonl`` repeats."""

LOGGER = "sim_engine"
"""The logger :func:`configure_logging` attaches to (every module logs below it)."""

_log = logging.getLogger(__name__)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__
) | {"message", "asctime", "taskName"}


def _wall_iso(wall_s: float) -> str:
    return datetime.fromtimestamp(wall_s, timezone.utc).isoformat(timespec="milliseconds")


def _sim_iso(sim_ts: float) -> str | None:
    if not math.isfinite(sim_ts):
        return None
    return datetime.fromtimestamp(sim_ts, timezone.utc).isoformat(timespec="seconds")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def _dumps(entry: dict[str, Any]) -> str:
    return _ENCODER.encode(redact(entry))


def action_level(record: ActionRecord) -> str:
    """Return the log level of an action: ``error`` when no response arrived (status 0,
    not skipped), ``warning`` for any other failure, ``info`` when it succeeded."""
    if record.ok:
        return "info"
    if record.status == 0 and not record.skipped:
        return "error"
    return "warning"


class JsonLogSink:
    """Writes the records of a run as JSON lines (see the module docstring).

    Lines are buffered and flushed every ``flush_every`` lines and at :meth:`close`.
    The file is appended to, so a resumed run continues its log.

    Args:
        path: the log file, or a directory (then ``path/log.jsonl``).
        flush_every: lines between flushes.
        wall: the wall-clock source (``time.time``); injectable for tests.
        actions: which actions get a line: ``failed`` (the default: the ones that
            did not succeed, intended errors included), ``all`` or ``none``.
        rotation: rotate the file by size or wall time, gzipped, a number kept
            (``output.rotate``; None: it grows).

    Raises:
        OSError: the file cannot be opened.
        ValueError: ``actions`` is none of the three.
    """

    def __init__(
        self,
        path: str | Path,
        flush_every: int = 1000,
        wall: Callable[[], float] = time.time,
        actions: str = "failed",
        rotation: RotationSpec | None = None,
    ) -> None:
        if actions not in ACTION_LINES:
            raise ValueError(f"actions: {actions!r} is not one of {', '.join(ACTION_LINES)}")
        self._actions = actions
        path = Path(path)
        if path.is_dir():
            path = path / LOG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: LineWriter | IO[str] = open_lines(path, rotation, append=True)
        self._flush_every = flush_every
        self._pending = 0
        self._wall = wall

    @property
    def stream(self) -> TextIO:
        """The open file (a :func:`configure_logging` target sharing the handle)."""
        return self._file  # type: ignore[return-value]

    def emit(self, record: Record) -> None:
        """Write one record as a JSON line (records other than these four are ignored;
        actions as ``actions`` says)."""
        if isinstance(record, ActionRecord):
            if self._actions == "none" or (self._actions == "failed" and record.ok):
                return
            entry = self._action(record)
        elif isinstance(record, LifecycleRecord):
            entry = {
                "ts": _wall_iso(self._wall()),
                "level": "info",
                "event": "lifecycle",
                "sim_time": record.sim_time,
                "user_id": record.user_id,
                "change": record.change,
                "from": record.old,
                "to": record.new,
                "reason": record.reason,
            }
        elif isinstance(record, UserRecord):
            entry = {
                "ts": _wall_iso(self._wall()),
                "level": "info",
                "event": "user_joined",
                "sim_time": record.sim_time,
                "user_id": record.user_id,
                "persona": record.persona,
                "timezone": record.timezone,
                "remote_id": record.remote_id,
            }
        elif isinstance(record, DaySnapshot):
            entry = {
                "ts": _wall_iso(self._wall()),
                "level": "info",
                "event": "day",
                "sim_time": _sim_iso(record.day_end_ts),
                "day_start": _sim_iso(record.day_start_ts),
                "total_users": record.total_users,
                "states": record.state_distribution,
                "patterns": record.pattern_distribution,
            }
        else:
            return
        self.write(entry)

    def _action(self, rec: ActionRecord) -> dict[str, Any]:
        return {
            "ts": _wall_iso(self._wall()),
            "level": action_level(rec),
            "event": "action",
            "sim_time": rec.sim_time,
            "user_id": rec.user_id,
            "persona": rec.persona,
            "state": rec.state,
            "session_id": rec.session_id,
            "action": rec.action,
            "endpoint": rec.endpoint,
            "status": rec.status,
            "ok": rec.ok,
            "latency_ms": rec.latency_ms,
            "retries": rec.retries,
            "skipped": rec.skipped,
            "post_id": rec.post_id,
            "error": rec.error,
        }

    def write(self, entry: dict[str, Any]) -> None:
        """Write one entry (redacted) as a JSON line."""
        if self._file.closed:
            return
        self._file.write(_dumps(entry) + "\n")
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Push buffered lines to the file."""
        if not self._file.closed:
            self._file.flush()
        self._pending = 0

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self.flush()
            self._file.close()


class RedactFilter(logging.Filter):
    """Masks secrets in a log record's message and ``extra`` fields (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always returns True."""
        record.msg = redact_text(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, redact({key: value})[key])
        return True


class JsonFormatter(logging.Formatter):
    """Formats a log record as one JSON line: ``ts``, ``level``, ``logger``, ``event``
    (the message), the ``extra=`` fields, and ``exception`` (type and message) when
    there is one. The whole object goes through :func:`~sim_engine.observe.redact.redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line (without the newline)."""
        entry: dict[str, Any] = {
            "ts": _wall_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["exception"] = f"{type(exc).__name__}: {exc}"
        return _dumps(entry)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    previous_level = logging.NOTSET
    owns_stream = False


def configure_logging(
    target: str | Path | TextIO, level: int = logging.INFO, logger: str = LOGGER
) -> logging.Handler:
    """Send the ``sim_engine`` loggers to ``target`` as redacted JSON lines.

    Args:
        target: a file path (appended to) or an open text stream (e.g.
            :attr:`JsonLogSink.stream`, to share the run's ``log.jsonl``).
        level: the lowest level written.
        logger: the logger to attach to.

    Returns:
        The handler; pass it to :func:`remove_logging` when done.
    """
    if isinstance(target, (str, Path)):
        handler = _JsonHandler(open(target, "a", encoding="utf-8"))  # noqa: SIM115
        handler.owns_stream = True
    else:
        handler = _JsonHandler(target)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactFilter())
    handler.setLevel(level)
    log = logging.getLogger(logger)
    handler.previous_level = log.level
    if log.level == logging.NOTSET or log.level > level:
        log.setLevel(level)
    log.addHandler(handler)
    return handler


def remove_logging(handler: logging.Handler, logger: str = LOGGER) -> None:
    """Detach a handler made by :func:`configure_logging` (closing its file if it opened one)."""
    log = logging.getLogger(logger)
    log.removeHandler(handler)
    handler.flush()
    if isinstance(handler, _JsonHandler):
        log.setLevel(handler.previous_level)
        if handler.owns_stream:
            handler.stream.close()
    handler.close()


class LogAddon:
    """The add-on that writes ``DIR/log.jsonl`` for every run.

    Its sink logs the records; between :meth:`start` and :meth:`stop` the
    ``sim_engine`` loggers write to the same file, and the run's start, end
    (with its final counters) and failure are logged.

    Args:
        out_dir: the run directory.
        actions: which actions get a line (``failed``, ``all``, ``none``; see
            :class:`JsonLogSink`).
        rotation: ``output.rotate`` (None: the file grows).
    """

    def __init__(
        self, out_dir: str | Path, actions: str = "failed", rotation: RotationSpec | None = None
    ) -> None:
        self.sink = JsonLogSink(Path(out_dir) / LOG_FILE, actions=actions, rotation=rotation)
        self._handler: logging.Handler | None = None
        self._sim: Simulation | None = None

    def sinks(self) -> list[Sink]:
        """Return the log sink."""
        return [self.sink]

    async def start(self, sim: Simulation) -> None:
        """Attach the JSON handler and log ``run started``."""
        self._sim = sim
        self._handler = configure_logging(self.sink.stream)
        speed = sim.speed
        _log.info(
            "run started",
            extra={
                "scenario": sim.scenario.name,
                "seed": sim.scenario.seed,
                "users": len(sim.users),
                "speed": "max" if speed is None else speed,
                "start": _sim_iso(sim.start_s),
                "end": _sim_iso(sim.end_s),
                "pid": os.getpid(),
            },
        )

    async def stop(self) -> None:
        """Log ``run stopped`` (or ``run failed`` when an exception is on its way), detach."""
        if self._handler is None:
            return
        exc = sys.exc_info()[1]
        sim = self._sim
        fields: dict[str, Any] = {}
        if sim is not None:
            stats = sim.statistics()
            fields = {
                "sim_time": _sim_iso(stats.sim_now),
                "users": stats.users,
                "signed_up": stats.signed_up,
                "actions": stats.actions,
                "failed": stats.failed,
            }
        if exc is not None and not isinstance(
            exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)
        ):
            _log.error("run failed", exc_info=exc, extra=fields)
        else:
            _log.info("run stopped", extra=fields)
        remove_logging(self._handler)
        self._handler = None
        self.sink.flush()
