"""Crash-safe state in SQLite (WAL): the population, user memories, the clock and random state.

``DIR/state.db`` holds two tables: ``meta`` (key -> JSON: the format tag, the
run's settings, the engine's exported state at the last checkpoint) and
``users`` (user id -> JSON of :func:`~sim_engine.model.population.user_to_dict`);
``created`` lists every resource the run created on the target, with how to
delete it, written when the creating action's answer arrives (see
:meth:`SqliteStore.save_created`; ``sim-engine cleanup`` reads it).
Users are written through at every event that must not be forgotten (created,
signed up, a post created or deleted); the engine's state and every changed
user are saved together in one transaction at each checkpoint. With WAL and
``synchronous=NORMAL`` a committed write survives the process being killed.

Passwords are never stored: they derive from the run secret (kept here so a
resumed run can log its users in again). The file, with its ``-wal`` and
``-shm`` files, is readable by its owner only (mode 0600).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sim_engine.model.population import SimUser, user_from_dict, user_to_dict

__all__ = ["FORMAT", "NO_OWNER", "SqliteStore", "StateError"]

FORMAT = "sim-engine-state/1"
"""Format tag written in every state file; a file without it is refused."""

NO_OWNER = -1
"""The user id of a created resource whose owner is no longer known (see
:meth:`SqliteStore.orphan_created`)."""


class StateError(ValueError):
    """A state file is missing, corrupt, foreign, or would be overwritten (one-line message)."""


def _owner_only(path: Path) -> None:
    """Create ``path`` readable by its owner only (0600), or narrow it and its ``-wal`` and
    ``-shm`` files to that: the file holds the run secret and users' tokens. SQLite
    creates the ``-wal`` and ``-shm`` files with the database file's mode.

    Raises:
        OSError: the file cannot be created or its mode changed.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            os.chmod(name, 0o600)


class SqliteStore:
    """The :class:`~sim_engine.model.records.Store` of a run directory.

    Args:
        path: the state file (``DIR/state.db``).
        create: True for a new run (refuses a file that already holds a run);
            False to open an existing run's state (refuses anything else).

    Raises:
        StateError: see ``create``; or the file is corrupt or not ours.
    """

    def __init__(self, path: str | Path, create: bool) -> None:
        self.path = Path(path)
        if create and self.path.exists() and self.path.stat().st_size > 0:
            raise StateError(
                f"{self.path} already holds a run: resume it with --resume "
                f"{self.path.parent} or choose another --out"
            )
        if not create and not self.path.exists():
            raise StateError(f"{self.path}: no saved state to resume")
        try:
            _owner_only(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"{self.path}: cannot open ({exc})") from None
        try:
            if not create:
                # Check first: switching to WAL would rewrite a foreign file's header.
                self._check_format()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if create:  # one transaction: a kill leaves either nothing or a whole file
                with self._transaction():
                    self._db.execute(
                        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                    )
                    self._db.execute("CREATE TABLE users (user_id INTEGER PRIMARY KEY, data TEXT)")
                    self.set_meta("format", FORMAT)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateError(f"{self.path}: not a sim-engine state file ({exc})") from None
        except StateError:
            self._db.close()
            raise
        self._created_table()

    def _check_format(self) -> None:
        try:
            fmt = self.get_meta("format")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a sim-engine state file ({exc})") from None
        if fmt != FORMAT:
            raise StateError(f"{self.path}: not a sim-engine state file (format {fmt!r})")

    # -- meta -----------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store one JSON value under ``key``."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return the JSON value under ``key`` (``default`` when absent).

        Raises:
            StateError: the value is not valid JSON (corruption).
        """
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            raise StateError(f"{self.path}: corrupt value for {key!r}") from None

    # -- Store protocol -------------------------------------------------------------------

    def save_user(self, user: SimUser) -> None:
        """Persist one user now (committed before returning)."""
        self._db.execute(
            "INSERT OR REPLACE INTO users (user_id, data) VALUES (?, ?)",
            (user.user_id, json.dumps(user_to_dict(user), separators=(",", ":"))),
        )

    def remove_user(self, user_id: int) -> None:
        """Forget a user."""
        self._db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))

    def checkpoint(self, state: dict[str, Any], users: Iterable[SimUser]) -> None:
        """Save the engine state and the given users in one transaction."""
        rows = [(u.user_id, json.dumps(user_to_dict(u), separators=(",", ":"))) for u in users]
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO users (user_id, data) VALUES (?, ?)", rows)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('engine', ?)",
                (json.dumps(state),),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- loading --------------------------------------------------------------------------

    def load(self) -> tuple[dict[str, Any], list[SimUser]]:
        """Return the engine state of the last checkpoint and every saved user.

        Raises:
            StateError: no checkpoint yet, or a row that is not a saved user.
        """
        state = self.get_meta("engine")
        if not isinstance(state, dict):
            raise StateError(f"{self.path}: no checkpoint to resume from")
        return state, self.saved_users()

    def saved_users(self) -> list[SimUser]:
        """Return every saved user, checkpointed or written through since.

        Raises:
            StateError: a row that is not a saved user.
        """
        users = []
        for user_id, data in self._db.execute("SELECT user_id, data FROM users ORDER BY user_id"):
            try:
                users.append(user_from_dict(json.loads(data)))
            except (KeyError, ValueError, TypeError) as exc:
                raise StateError(f"{self.path}: corrupt user {user_id} ({exc})") from None
        return users

    def has_checkpoint(self) -> bool:
        """True once the engine's state has been checkpointed at least once."""
        return isinstance(self.get_meta("engine"), dict)

    def clear_users(self) -> None:
        """Forget every saved user (a run restarted before its first checkpoint)."""
        self._db.execute("DELETE FROM users")

    def user_count(self) -> int:
        """Return how many users are saved."""
        return int(self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    # -- resources the run created (sim-engine cleanup) -------------------------------------

    def _created_table(self) -> None:
        """Create the ``created`` table (also in a state file written before it existed)."""
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS created (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "user_id INTEGER NOT NULL, kind TEXT NOT NULL, item_id TEXT NOT NULL, "
                "data TEXT NOT NULL, UNIQUE (kind, item_id))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS created_user ON created (user_id)")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StateError(f"{self.path}: cannot keep created resources ({exc})") from None

    def save_created(self, user_id: int, kind: str, item_id: str, data: dict[str, Any]) -> None:
        """Record one resource the run created (committed before returning).

        Args:
            user_id: the engine's id of the user that created it.
            kind: its kind (a memory key without its prefix: ``own_posts``).
            item_id: its id as JSON text (kind and id identify it; a second
                record of the same resource is ignored).
            data: JSON-ready: what created it and how to delete it.
        """
        self._db.execute(
            "INSERT OR IGNORE INTO created (user_id, kind, item_id, data) VALUES (?, ?, ?, ?)",
            (user_id, kind, item_id, json.dumps(data, separators=(",", ":"), default=str)),
        )

    def remove_created(self, kind: str, item_id: str) -> None:
        """Forget a created resource (deleted, by the run or by cleanup)."""
        self._db.execute("DELETE FROM created WHERE kind = ? AND item_id = ?", (kind, item_id))

    def orphan_created(self) -> None:
        """Mark every created resource as having no known owner (the users were cleared)."""
        self._db.execute(f"UPDATE created SET user_id = {NO_OWNER}")

    def created(self) -> list[tuple[int, int, str, str, dict[str, Any]]]:
        """Return every created resource, oldest first: (seq, user id, kind, item id, data).

        Raises:
            StateError: a row whose data is not JSON (corruption).
        """
        return self._created_rows("", ())

    def created_by(self, user_id: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Return the resources ``user_id`` created, newest first: (kind, item id, data).

        Raises:
            StateError: a row whose data is not JSON (corruption).
        """
        rows = self._created_rows("WHERE user_id = ?", (user_id,))
        return [(kind, item_id, data) for _, _, kind, item_id, data in reversed(rows)]

    def _created_rows(
        self, where: str, args: tuple[Any, ...]
    ) -> list[tuple[int, int, str, str, dict[str, Any]]]:
        rows = []
        for seq, user_id, kind, item_id, data in self._db.execute(
            f"SELECT seq, user_id, kind, item_id, data FROM created {where} ORDER BY seq", args
        ):
            try:
                rows.append((seq, user_id, kind, item_id, json.loads(data)))
            except ValueError:
                raise StateError(f"{self.path}: corrupt created resource {seq}") from None
        return rows

    def close(self) -> None:
        """Close the database (the WAL is checkpointed into the main file)."""
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
