"""Storage of the demo social API: the SQLite schema, password hashing and :class:`DemoStore`.

One :class:`DemoStore` wraps one ``sqlite3`` connection in autocommit mode
(``isolation_level=None``); multi-statement writes run in explicit transactions
(:meth:`DemoStore.transaction`). File databases are opened in WAL mode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sim_engine.demo.schemas import (
    CommentOut,
    FollowOut,
    PostCreate,
    PostOut,
    PostUpdate,
    StatsOut,
    TokenOut,
    UserCreate,
    UserOut,
)
from sim_engine.demo.store_social import POST_COUNTS, SOCIAL_SCHEMA, SocialQueries, post_counts

__all__ = [
    "PBKDF2_ITERATIONS",
    "DemoStore",
    "DuplicateUserError",
    "hash_password",
    "verify_password",
]

#: PBKDF2 iterations. Deliberately low: the demo must sign up thousands of simulated users fast.
PBKDF2_ITERATIONS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT,
    avatar_url    TEXT,
    tag           TEXT,
    password_hash TEXT    NOT NULL,
    is_synthetic  INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token      TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_tokens_user ON tokens(user_id);
CREATE TABLE IF NOT EXISTS posts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id  INTEGER NOT NULL REFERENCES users(id),
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    tags       TEXT    NOT NULL DEFAULT '[]',
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    view_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_posts_author ON posts(author_id);
CREATE TABLE IF NOT EXISTS comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id    INTEGER NOT NULL REFERENCES posts(id),
    author_id  INTEGER NOT NULL REFERENCES users(id),
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_comments_post ON comments(post_id);
CREATE INDEX IF NOT EXISTS idx_comments_author ON comments(author_id);
CREATE TABLE IF NOT EXISTS follows (
    follower_id INTEGER NOT NULL REFERENCES users(id),
    followee_id INTEGER NOT NULL REFERENCES users(id),
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX IF NOT EXISTS idx_follows_followee ON follows(followee_id);
"""


# --------------------------------------------------------------------------------------
# Passwords and time
# --------------------------------------------------------------------------------------


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Hash a password with PBKDF2-HMAC-SHA256 and a random 16-byte salt.

    Args:
        password (str): The clear-text password.
        iterations (int): PBKDF2 iteration count; low by default to keep sign-ups fast.

    Returns:
        str: ``"pbkdf2_sha256$<iterations>$<salt hex>$<digest hex>"``.
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """Check a clear-text password against a value produced by :func:`hash_password`.

    Args:
        password (str): The clear-text password to check.
        encoded (str): The stored hash.

    Returns:
        bool: True when the password matches; False on mismatch or a malformed hash.
    """
    try:
        algorithm, iterations_text, salt_hex, digest_hex = encoded.split("$")
        if algorithm != "pbkdf2_sha256":
            return False
        salt = bytes.fromhex(salt_hex)
        iterations = int(iterations_text)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest.hex(), digest_hex)


# --------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------


class DuplicateUserError(Exception):
    """Raised by :meth:`DemoStore.create_user` when the username or email is taken."""


class DemoStore(SocialQueries):
    """Thin data-access layer over one ``sqlite3`` connection (reactions and followers:
    :class:`~sim_engine.demo.store_social.SocialQueries`).

    Args:
        db_path (str): SQLite database path, or ``":memory:"`` for a private in-memory DB.

    Raises:
        sqlite3.Error: If the database cannot be opened or the schema cannot be created.
    """

    def __init__(self, db_path: str = ":memory:") -> None:
        self.db_path = db_path
        self.conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        if db_path != ":memory:" and not db_path.startswith("file::memory:"):
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.executescript(_SCHEMA + SOCIAL_SCHEMA)

    def close(self) -> None:
        """Close the underlying connection."""
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block of statements atomically (``BEGIN IMMEDIATE`` ... ``COMMIT``)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- users ---------------------------------------------------------------------------

    @staticmethod
    def _user(row: sqlite3.Row) -> UserOut:
        return UserOut(
            id=row["id"],
            username=row["username"],
            email=row["email"],
            name=row["name"],
            avatar_url=row["avatar_url"],
            tag=row["tag"],
            is_synthetic=bool(row["is_synthetic"]),
            created_at=row["created_at"],
        )

    def create_user(self, data: UserCreate, *, synthetic: bool, now: str) -> UserOut:
        """Insert a user.

        Raises:
            DuplicateUserError: If the username or email already exists.
        """
        clash = self.conn.execute(
            "SELECT username = ? AS same_name FROM users WHERE username = ? OR email = ? LIMIT 1",
            (data.username, data.username, data.email),
        ).fetchone()
        if clash is not None:
            field = "username" if clash["same_name"] else "email"
            raise DuplicateUserError(f"{field} already registered")
        try:
            cur = self.conn.execute(
                "INSERT INTO users (username, email, name, avatar_url, tag, password_hash,"
                " is_synthetic, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    data.username,
                    data.email,
                    data.name,
                    data.avatar_url,
                    data.tag,
                    hash_password(data.password),
                    int(synthetic),
                    now,
                ),
            )
        except sqlite3.IntegrityError as exc:  # pragma: no cover - race with another writer
            raise DuplicateUserError("username or email already registered") from exc
        user = self.get_user(int(cur.lastrowid or 0))
        assert user is not None
        return user

    def get_user(self, user_id: int) -> UserOut | None:
        """Return the user with this id, or None."""
        row = self.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else self._user(row)

    def user_exists(self, user_id: int) -> bool:
        """Return True if a user with this id exists."""
        return (
            self.conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is not None
        )

    def delete_user(self, user_id: int) -> None:
        """Delete a user with their posts (and those posts' comments and reactions), comments,
        reactions, follows, tokens."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM reactions WHERE user_id = ?"
                " OR post_id IN (SELECT id FROM posts WHERE author_id = ?)",
                (user_id, user_id),
            )
            db.execute(
                "DELETE FROM comments WHERE author_id = ?"
                " OR post_id IN (SELECT id FROM posts WHERE author_id = ?)",
                (user_id, user_id),
            )
            db.execute("DELETE FROM posts WHERE author_id = ?", (user_id,))
            db.execute(
                "DELETE FROM follows WHERE follower_id = ? OR followee_id = ?", (user_id, user_id)
            )
            db.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))

    # -- auth ----------------------------------------------------------------------------

    def login(self, username: str, password: str, *, now: str) -> TokenOut | None:
        """Check credentials and issue a new token; None on bad credentials."""
        row = self.conn.execute(
            "SELECT id, password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None or not verify_password(password, row["password_hash"]):
            return None
        token = secrets.token_hex(32)
        self.conn.execute(
            "INSERT INTO tokens (token, user_id, created_at) VALUES (?, ?, ?)",
            (token, row["id"], now),
        )
        return TokenOut(token=token, user_id=row["id"])

    def user_for_token(self, token: str) -> int | None:
        """Return the user id owning this token, or None."""
        row = self.conn.execute("SELECT user_id FROM tokens WHERE token = ?", (token,)).fetchone()
        return None if row is None else int(row["user_id"])

    # -- posts ---------------------------------------------------------------------------

    @staticmethod
    def _post(row: sqlite3.Row) -> PostOut:
        return PostOut(
            id=row["id"],
            author_id=row["author_id"],
            title=row["title"],
            body=row["body"],
            tags=json.loads(row["tags"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            view_count=row["view_count"],
            **post_counts(row),
        )

    def create_post(self, author_id: int, data: PostCreate, *, now: str) -> PostOut:
        """Insert a post and return it."""
        cur = self.conn.execute(
            "INSERT INTO posts (author_id, title, body, tags, created_at, updated_at, view_count)"
            " VALUES (?, ?, ?, ?, ?, ?, 0)",
            (author_id, data.title, data.body, json.dumps(data.tags), now, now),
        )
        post = self.get_post(int(cur.lastrowid or 0))
        assert post is not None
        return post

    def get_post(self, post_id: int) -> PostOut | None:
        """Return a post (with its counts) without touching its view count, or None."""
        row = self.conn.execute(
            f"SELECT {POST_COUNTS} FROM posts WHERE id = ?", (post_id,)
        ).fetchone()
        return None if row is None else self._post(row)

    def view_post(self, post_id: int) -> PostOut | None:
        """Increment a post's view count and return it, or None if it does not exist."""
        cur = self.conn.execute(
            "UPDATE posts SET view_count = view_count + 1 WHERE id = ?", (post_id,)
        )
        if cur.rowcount == 0:
            return None
        return self.get_post(post_id)

    def list_posts(
        self, *, limit: int, offset: int, author_id: int | None, popular: bool = False
    ) -> tuple[list[PostOut], int]:
        """Return one page of posts (newest first, or most viewed first with ``popular``),
        each with its counts, and the total matching count."""
        where, params = ("WHERE author_id = ?", [author_id]) if author_id is not None else ("", [])
        total = self.conn.execute(f"SELECT COUNT(*) FROM posts {where}", params).fetchone()[0]
        order = "view_count DESC, id DESC" if popular else "id DESC"
        rows = self.conn.execute(
            f"SELECT {POST_COUNTS} FROM posts {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [self._post(r) for r in rows], int(total)

    def select_posts(self, sql: str, params: tuple[object, ...]) -> list[PostOut]:
        """Run ``sql`` (a ``SELECT * FROM posts ...``) and return its rows as posts."""
        return [self._post(r) for r in self.conn.execute(sql, params).fetchall()]

    def update_post(self, post_id: int, data: PostUpdate, *, now: str) -> PostOut:
        """Apply the fields set in ``data`` and bump ``updated_at``."""
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [now]
        if data.title is not None:
            sets.append("title = ?")
            params.append(data.title)
        if data.body is not None:
            sets.append("body = ?")
            params.append(data.body)
        if data.tags is not None:
            sets.append("tags = ?")
            params.append(json.dumps(data.tags))
        self.conn.execute(f"UPDATE posts SET {', '.join(sets)} WHERE id = ?", [*params, post_id])
        post = self.get_post(post_id)
        assert post is not None
        return post

    def delete_post(self, post_id: int) -> None:
        """Delete a post and its comments and reactions."""
        with self.transaction() as db:
            db.execute("DELETE FROM comments WHERE post_id = ?", (post_id,))
            db.execute("DELETE FROM reactions WHERE post_id = ?", (post_id,))
            db.execute("DELETE FROM posts WHERE id = ?", (post_id,))

    # -- comments ------------------------------------------------------------------------

    @staticmethod
    def _comment(row: sqlite3.Row) -> CommentOut:
        return CommentOut(
            id=row["id"],
            post_id=row["post_id"],
            author_id=row["author_id"],
            body=row["body"],
            created_at=row["created_at"],
        )

    def create_comment(self, post_id: int, author_id: int, body: str, *, now: str) -> CommentOut:
        """Insert a comment and return it."""
        cur = self.conn.execute(
            "INSERT INTO comments (post_id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
            (post_id, author_id, body, now),
        )
        row = self.conn.execute("SELECT * FROM comments WHERE id = ?", (cur.lastrowid,)).fetchone()
        return self._comment(row)

    def list_comments(
        self, post_id: int, *, limit: int, offset: int
    ) -> tuple[list[CommentOut], int]:
        """Return a post's comments (oldest first) and their total count."""
        total = self.conn.execute(
            "SELECT COUNT(*) FROM comments WHERE post_id = ?", (post_id,)
        ).fetchone()[0]
        rows = self.conn.execute(
            "SELECT * FROM comments WHERE post_id = ? ORDER BY id ASC LIMIT ? OFFSET ?",
            (post_id, limit, offset),
        ).fetchall()
        return [self._comment(r) for r in rows], int(total)

    # -- follows -------------------------------------------------------------------------

    def follow(self, follower_id: int, followee_id: int, *, now: str) -> tuple[FollowOut, bool]:
        """Create a follow relation; returns it and whether it was newly created."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)",
            (follower_id, followee_id, now),
        )
        row = self.conn.execute(
            "SELECT * FROM follows WHERE follower_id = ? AND followee_id = ?",
            (follower_id, followee_id),
        ).fetchone()
        out = FollowOut(
            follower_id=row["follower_id"],
            followee_id=row["followee_id"],
            created_at=row["created_at"],
        )
        return out, cur.rowcount > 0

    def unfollow(self, follower_id: int, followee_id: int) -> None:
        """Remove a follow relation (no error if absent)."""
        self.conn.execute(
            "DELETE FROM follows WHERE follower_id = ? AND followee_id = ?",
            (follower_id, followee_id),
        )

    # -- stats ---------------------------------------------------------------------------

    def stats(self) -> StatsOut:
        """Return the row counts of users, posts, comments, follows and reactions."""
        counts = {
            table: int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("users", "posts", "comments", "follows", "reactions")
        }
        return StatsOut(**counts)
