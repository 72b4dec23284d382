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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["JOURNAL_NAME", "DispatchJournal", "Progress", "read_journal"]

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

    def dispatched(self, user_id: int, sim_t: float, next_s: float, left: int) -> None:
        """Record, before the request goes out, that ``user_id`` sends an action at
        ``sim_t``, its next step due at ``next_s`` (simulated epoch seconds) with ``left``
        actions left in its session."""
        os.write(self._fd, b"%d %r %r %d\n" % (user_id, sim_t, next_s, left))

    def reset(self) -> None:
        """Empty the journal (called once a checkpoint has committed)."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_journal(path: str | Path) -> dict[int, Progress]:
    """Return each user's last dispatched action recorded in the journal at ``path``.

    Returns ``{user id: Progress}``; empty when the file is missing. A torn last
    line (a kill during a write) and malformed lines are skipped.
    """
    last: dict[int, Progress] = {}
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return last
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]  # a torn last line from a kill
    for line in data.splitlines():
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
