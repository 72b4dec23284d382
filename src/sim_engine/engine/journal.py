"""The write-ahead journal of dispatched actions: a resumed run does not send them again.

Checkpoints save the engine's state every few thousand actions or simulated
minutes; a kill between two of them used to make the resumed run plan its users
from the last checkpoint again, so it re-sent everything they had done since.
Now every action is written to ``DIR/dispatched.log`` *before* its request goes
out (one unbuffered ``write`` of about 40 bytes: the line survives the process
being killed, since it is in the kernel's page cache once ``write`` returns). On
resume, :func:`read_journal` gives each user's last dispatched action: a user in
the middle of a session goes on with it where it was (its next step, its actions
left), any other plans its next session after it, not after the checkpoint.

Each checkpoint empties the file (what it recorded is then in ``state.db``).
Lines are ``<user id> <sim time> <next step's sim time> <actions left>`` (simulated
epoch seconds); a torn last line from a kill is ignored.

A request that may create something on the target (the declarative target's
``POST`` and ``PUT``, sign-ups) adds a line of its own before it goes out, ``c <key> <user id>
<sim time> <action> <METHOD> <client-named: 0|1> <path>``, and ``a <key>`` once its
answer is in, and with it the resource in ``state.db``'s ``created`` table (the key is
unique to the request). A ``c`` line without its ``a`` is a creation *in doubt*: sent,
never answered (the process was killed mid-request, or the request timed out).
:func:`read_unanswered` lists them; a checkpoint keeps those still waiting for their
answer in the emptied file.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "JOURNAL_NAME",
    "DispatchJournal",
    "Progress",
    "Unanswered",
    "mark_answered",
    "read_journal",
    "read_unanswered",
]

JOURNAL_NAME = "dispatched.log"
"""The journal's file name inside the run directory."""


class Progress(NamedTuple):
    """A user's last dispatched action, as the journal recorded it.

    Attributes:
        sim_t: when it was sent (simulated epoch seconds).
        next_s: when the session's next step was due if it answered at once.
        left: actions left in the session after it (0: the session ended with it).
    """

    sim_t: float
    next_s: float
    left: int


class Unanswered(NamedTuple):
    """A request that may have created something and got no answer (see the module
    docstring).

    Attributes:
        user_id: the engine's id of the user who sent it.
        sim_t: when it was sent (simulated epoch seconds).
        action: the action's name (a plugin's ``ctx.call``: the action it matched,
            else ``ctx.call``).
        method: ``POST`` or ``PUT``.
        path: the path it was sent to (with its query).
        named: the request named the resource itself (a ``PUT`` to a path no picked
            item gave): deleting that path deletes it, if it was created.
        key: its key in the journal (:func:`mark_answered` settles it).
    """

    key: str
    user_id: int
    sim_t: float
    action: str
    method: str
    path: str
    named: bool


class DispatchJournal:
    """Appends one line per dispatched action to ``path`` (see the module docstring).

    Implements :class:`~sim_engine.engine.capabilities.Journal`.

    Args:
        path: the journal file (created 0600 if missing; appended to otherwise).

    Raises:
        OSError: the file cannot be opened.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._waiting: dict[bytes, bytes] = {}  # key -> line: creations sent, not answered
        self._keys = itertools.count()
        self._prefix = os.urandom(4).hex().encode()  # keys unique across resumed processes

    def dispatched(self, user_id: int, sim_t: float, next_s: float, left: int) -> None:
        """Record, before the request goes out, that ``user_id`` sends an action at
        ``sim_t``, its next step due at ``next_s`` (simulated epoch seconds) with ``left``
        actions left in its session."""
        os.write(self._fd, b"%d %r %r %d\n" % (user_id, sim_t, next_s, left))

    def sending(self, user_id: int, sim_t: float, action: str, method: str, path: str,
                named: bool) -> bytes:  # fmt: skip
        """Record, before it goes out, a request that may create something (see
        :class:`Unanswered` for the fields); return its key for :meth:`answered`."""
        key = b"%s.%d" % (self._prefix, next(self._keys))
        line = b"c %s %d %r %s %s %d %s\n" % (
            key, user_id, sim_t, action.encode(), method.encode(), named, path.encode()
        )  # fmt: skip
        self._waiting[key] = line
        os.write(self._fd, line)
        return key

    def answered(self, key: bytes) -> None:
        """The answer to the request :meth:`sending` gave ``key`` arrived (and what it
        created is recorded): it is no longer in doubt."""
        if self._waiting.pop(key, None) is not None:
            os.write(self._fd, b"a %s\n" % key)

    def reset(self) -> None:
        """Empty the journal (called once a checkpoint has committed), but for the
        creations still waiting for their answer."""
        os.ftruncate(self._fd, 0)
        if self._waiting:
            os.write(self._fd, b"".join(self._waiting.values()))

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _lines(path: str | Path) -> list[bytes]:
    """The journal's complete lines (none when the file is missing; a torn last one dropped)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]  # a torn last line from a kill
    return data.splitlines()


def read_unanswered(path: str | Path) -> list[Unanswered]:
    """Return the creations in doubt the journal at ``path`` holds: sent, never answered
    (oldest first; malformed lines skipped)."""
    sent: dict[bytes, Unanswered] = {}
    for line in _lines(path):
        parts = line.split(maxsplit=7)
        try:
            if len(parts) == 8 and parts[0] == b"c":
                action, method, named, where = (p.decode() for p in parts[4:])
                user_id, sim_t = int(parts[2]), float(parts[3])
                key = parts[1].decode()
                sent[parts[1]] = Unanswered(
                    key, user_id, sim_t, action, method, where, named == "1"
                )
            elif len(parts) == 2 and parts[0] == b"a":
                sent.pop(parts[1], None)
        except (ValueError, UnicodeDecodeError):
            continue
    return sorted(sent.values(), key=lambda u: (u.sim_t, u.user_id))


def mark_answered(path: str | Path, keys: list[str]) -> None:
    """Note in the journal at ``path`` that the creations in doubt with these ``keys`` are
    settled (``sim-engine cleanup`` deleted them, or found them never made): they are no
    longer reported. Nothing happens when the file is missing."""
    if not keys or not Path(path).exists():
        return
    with Path(path).open("ab") as journal:
        journal.write(b"".join(b"a %s\n" % key.encode() for key in keys))


def read_journal(path: str | Path) -> dict[int, Progress]:
    """Return each user's last dispatched action recorded in the journal at ``path``.

    Returns ``{user id: Progress}``; empty when the file is missing. A torn last
    line (a kill during a write) and malformed lines are skipped.
    """
    last: dict[int, Progress] = {}
    for line in _lines(path):
        parts = line.split()
        if len(parts) != 4:
            continue
        try:
            user_id = int(parts[0])
            entry = Progress(float(parts[1]), float(parts[2]), int(parts[3]))
        except ValueError:
            continue
        if user_id not in last or entry.sim_t >= last[user_id].sim_t:
            last[user_id] = entry
    return last
