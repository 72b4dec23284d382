"""The demo store's social side: reactions, followers, counts carried by posts.

:class:`SocialQueries` is mixed into :class:`~sim_engine.demo.store.DemoStore`
(it uses the store's ``conn`` and ``transaction``). A user has at most one
reaction per post (reacting again changes its kind). Posts listed by the API carry
what a reader sees next to a post on a social site: its author's follower and post
counts and its reaction and comment counts (``POST_COUNTS``), the figures the
engine's picker may weigh by (``weight: {post: author_followers}``).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

from sim_engine.demo.schemas import FollowOut, ReactionOut

__all__ = ["POST_COUNTS", "SOCIAL_SCHEMA", "SocialQueries", "post_counts"]

SOCIAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS reactions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id    INTEGER NOT NULL REFERENCES posts(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    kind       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    UNIQUE (post_id, user_id)
);
CREATE INDEX IF NOT EXISTS idx_reactions_user ON reactions(user_id);
CREATE INDEX IF NOT EXISTS idx_follows_follower ON follows(follower_id);
"""
"""Tables the social side adds to the store's schema."""

POST_COUNTS = (
    "posts.*,"
    " (SELECT COUNT(*) FROM follows f WHERE f.followee_id = posts.author_id) AS author_followers,"
    " (SELECT COUNT(*) FROM posts q WHERE q.author_id = posts.author_id) AS author_posts,"
    " (SELECT COUNT(*) FROM reactions r WHERE r.post_id = posts.id) AS reaction_count,"
    " (SELECT COUNT(*) FROM comments c WHERE c.post_id = posts.id) AS comment_count"
)
"""Columns of a post with its counts (``SELECT {POST_COUNTS} FROM posts ...``)."""

_COUNT_FIELDS = ("author_followers", "author_posts", "reaction_count", "comment_count")


def post_counts(row: sqlite3.Row) -> dict[str, int]:
    """The counts of a post row selected with :data:`POST_COUNTS` (0 for a plain row)."""
    keys = row.keys()
    return {k: int(row[k]) if k in keys else 0 for k in _COUNT_FIELDS}


class SocialQueries:
    """Reactions and followers, over the store's connection (a mixin of ``DemoStore``)."""

    conn: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        """Run a block atomically (the store's own ``transaction``)."""
        raise NotImplementedError

    @staticmethod
    def _reaction(row: sqlite3.Row) -> ReactionOut:
        return ReactionOut(**dict(row))  # the table's columns are the answer's fields

    def react(self, post_id: int, user_id: int, kind: str, *, now: str) -> tuple[ReactionOut, bool]:
        """Set the user's reaction to a post; returns it and whether it is new (else its
        kind was changed)."""
        with self.transaction() as db:
            old = db.execute(
                "SELECT id FROM reactions WHERE post_id = ? AND user_id = ?", (post_id, user_id)
            ).fetchone()
            if old is None:
                db.execute(
                    "INSERT INTO reactions (post_id, user_id, kind, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (post_id, user_id, kind, now),
                )
            else:
                db.execute("UPDATE reactions SET kind = ? WHERE id = ?", (kind, old["id"]))
            row = db.execute(
                "SELECT * FROM reactions WHERE post_id = ? AND user_id = ?", (post_id, user_id)
            ).fetchone()
        return self._reaction(row), old is None

    def reaction(self, reaction_id: int) -> ReactionOut | None:
        """Return one reaction, or None."""
        row = self.conn.execute("SELECT * FROM reactions WHERE id = ?", (reaction_id,)).fetchone()
        return None if row is None else self._reaction(row)

    def delete_reaction(self, reaction_id: int) -> None:
        """Delete a reaction (no error if absent)."""
        self.conn.execute("DELETE FROM reactions WHERE id = ?", (reaction_id,))

    def comment_author(self, comment_id: int) -> int | None:
        """Return a comment's author, or None when there is no such comment."""
        row = self.conn.execute(
            "SELECT author_id FROM comments WHERE id = ?", (comment_id,)
        ).fetchone()
        return None if row is None else int(row["author_id"])

    def delete_comment(self, comment_id: int) -> None:
        """Delete a comment (no error if absent)."""
        self.conn.execute("DELETE FROM comments WHERE id = ?", (comment_id,))

    def followers(self, user_id: int, *, limit: int, offset: int) -> tuple[list[FollowOut], int]:
        """Return one page of a user's followers (newest follow first) and their count."""
        total = self.conn.execute(
            "SELECT COUNT(*) FROM follows WHERE followee_id = ?", (user_id,)
        ).fetchone()[0]
        rows = self.conn.execute(
            "SELECT * FROM follows WHERE followee_id = ? ORDER BY created_at DESC, follower_id DESC"
            " LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        ).fetchall()
        return [_follow(r) for r in rows], int(total)


def _follow(row: sqlite3.Row) -> FollowOut:
    return FollowOut(
        follower_id=row["follower_id"], followee_id=row["followee_id"], created_at=row["created_at"]
    )
