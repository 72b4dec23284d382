"""The built-in demo target: a small social API built on FastAPI and stdlib ``sqlite3``.

The app exposes users, token authentication, posts, comments and follows. It is what
``sim-engine`` simulates against when no other target is configured, and it is small and
deterministic enough to be driven in-process through :class:`httpx.ASGITransport`.

Design notes:

* The schema is created by :func:`create_app` itself, not in a lifespan handler, because
  ``httpx.ASGITransport`` does not run lifespan events.
* Every endpoint and dependency is ``async def`` and talks to SQLite directly. FastAPI runs
  sync endpoints in a thread pool, which would make in-process runs non-deterministic;
  the SQLite calls are fast enough to run on the event loop.
* Each app owns one ``sqlite3`` connection in autocommit mode (``isolation_level=None``);
  multi-statement writes are wrapped in explicit transactions.
* If a request carries the ``X-Sim-Time`` header (an ISO 8601 date-time), its value is stored
  as ``created_at``/``updated_at`` instead of the wall clock, so simulated runs record
  simulated time.
* A user signed up with the header ``X-Synthetic: true`` is flagged ``is_synthetic``.
* Injected faults (:mod:`sim_engine.demo.faults`) are applied by a :class:`FaultInjector`
  placed outside every other layer, so a dropped connection closes the real socket. Its
  :class:`FaultController` is ``app.state.faults``; ``GET/PUT/DELETE /admin/faults`` read
  and replace its config at run time.

Example:
    >>> import httpx
    >>> from sim_engine.demo.app import create_app
    >>> client = httpx.AsyncClient(
    ...     transport=httpx.ASGITransport(app=create_app()), base_url="http://demo"
    ... )
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp

from sim_engine.demo.faults import FaultConfig, FaultController, FaultInjector

__all__ = [
    "API_TITLE",
    "CommentCreate",
    "CommentOut",
    "CommentPage",
    "DemoStore",
    "ErrorOut",
    "FaultCountsOut",
    "FollowOut",
    "HealthOut",
    "LoginIn",
    "PostCreate",
    "PostOut",
    "PostPage",
    "PostUpdate",
    "StatsOut",
    "TokenOut",
    "UserCreate",
    "UserOut",
    "create_app",
    "hash_password",
    "serve",
    "verify_password",
]

API_TITLE = "sim-engine demo social API"
API_VERSION = "1.0.0"

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


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _parse_sim_time(value: str) -> str:
    """Validate an ``X-Sim-Time`` value and normalise it to ISO 8601 with an offset.

    Raises:
        ValueError: If the value is not an ISO 8601 date-time.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):  # datetime.fromisoformat() accepts "Z" only from 3.11
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.isoformat()


# --------------------------------------------------------------------------------------
# Pydantic models
# --------------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Error body returned with every 4xx response (except 422 validation errors)."""

    detail: str


class HealthOut(BaseModel):
    """Body of ``GET /health``."""

    status: str = "ok"


class UserCreate(BaseModel):
    """Body of ``POST /users``."""

    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=200)
    avatar_url: str | None = Field(default=None, max_length=2048)
    tag: str | None = Field(default=None, max_length=64, description="Interest/faction tag.")


class UserOut(BaseModel):
    """A public user object (never includes the password)."""

    id: int
    username: str
    email: str
    name: str | None
    avatar_url: str | None
    tag: str | None
    is_synthetic: bool
    created_at: str = Field(description="ISO 8601 date-time.")


class LoginIn(BaseModel):
    """Body of ``POST /auth/login``."""

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class TokenOut(BaseModel):
    """Body returned by a successful login."""

    token: str = Field(description="Bearer token to send as `Authorization: Bearer <token>`.")
    user_id: int


class PostCreate(BaseModel):
    """Body of ``POST /posts``."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(max_length=100_000)
    tags: list[str] = Field(default_factory=list, max_length=50)


class PostUpdate(BaseModel):
    """Body of ``PUT /posts/{id}``; fields left out are unchanged."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=100_000)
    tags: list[str] | None = Field(default=None, max_length=50)


class PostOut(BaseModel):
    """A post object."""

    id: int
    author_id: int
    title: str
    body: str
    tags: list[str]
    created_at: str = Field(description="ISO 8601 date-time.")
    updated_at: str = Field(description="ISO 8601 date-time.")
    view_count: int


class PostPage(BaseModel):
    """A page of posts, newest first."""

    items: list[PostOut]
    total: int
    limit: int
    offset: int


class CommentCreate(BaseModel):
    """Body of ``POST /posts/{id}/comments``."""

    body: str = Field(min_length=1, max_length=20_000)


class CommentOut(BaseModel):
    """A comment object."""

    id: int
    post_id: int
    author_id: int
    body: str
    created_at: str = Field(description="ISO 8601 date-time.")


class CommentPage(BaseModel):
    """The comments of a post, oldest first."""

    items: list[CommentOut]
    total: int


class FollowOut(BaseModel):
    """A follow relation."""

    follower_id: int
    followee_id: int
    created_at: str = Field(description="ISO 8601 date-time.")


class StatsOut(BaseModel):
    """Row counts of the main tables."""

    users: int
    posts: int
    comments: int
    follows: int


# --------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------


class DuplicateUserError(Exception):
    """Raised by :meth:`DemoStore.create_user` when the username or email is taken."""


class DemoStore:
    """Thin data-access layer over one ``sqlite3`` connection.

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
        self.conn.executescript(_SCHEMA)

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
        """Delete a user with their posts (and those posts' comments), comments, follows, tokens."""
        with self.transaction() as db:
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
        """Return a post without touching its view count, or None."""
        row = self.conn.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
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
        self, *, limit: int, offset: int, author_id: int | None
    ) -> tuple[list[PostOut], int]:
        """Return one page of posts (newest first) and the total matching count."""
        where, params = ("WHERE author_id = ?", [author_id]) if author_id is not None else ("", [])
        total = self.conn.execute(f"SELECT COUNT(*) FROM posts {where}", params).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT * FROM posts {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [self._post(r) for r in rows], int(total)

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
        """Delete a post and its comments."""
        with self.transaction() as db:
            db.execute("DELETE FROM comments WHERE post_id = ?", (post_id,))
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
        """Return the row counts of users, posts, comments and follows."""
        counts = {
            table: int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("users", "posts", "comments", "follows")
        }
        return StatsOut(**counts)


# --------------------------------------------------------------------------------------
# Dependencies (all async: sync dependencies would run in a thread pool)
# --------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Token from `POST /auth/login`.")


async def get_store(request: Request) -> DemoStore:
    """Return the :class:`DemoStore` attached to the running app."""
    store: DemoStore = request.app.state.store
    return store


async def request_time(
    x_sim_time: Annotated[
        str | None,
        Header(description="Simulated ISO 8601 date-time to store instead of the wall clock."),
    ] = None,
) -> str:
    """Return the timestamp to store: ``X-Sim-Time`` if sent, else the current UTC time.

    Raises:
        HTTPException: 400 if ``X-Sim-Time`` is not an ISO 8601 date-time.
    """
    if x_sim_time is None or not x_sim_time.strip():
        return _utc_now_iso()
    try:
        return _parse_sim_time(x_sim_time)
    except ValueError:
        raise HTTPException(400, "invalid X-Sim-Time header: expected ISO 8601") from None


async def current_user_id(
    store: Annotated[DemoStore, Depends(get_store)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    """Return the id of the authenticated user.

    Raises:
        HTTPException: 401 if the bearer token is missing or unknown.
    """
    if credentials is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    user_id = store.user_for_token(credentials.credentials)
    if user_id is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user_id


StoreDep = Annotated[DemoStore, Depends(get_store)]
NowDep = Annotated[str, Depends(request_time)]
UserIdDep = Annotated[int, Depends(current_user_id)]


def _err(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


# --------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------

router = APIRouter()


@router.get("/health", tags=["meta"])
async def health() -> HealthOut:
    """Liveness probe."""
    return HealthOut(status="ok")


@router.get("/stats", tags=["meta"])
async def stats(store: StoreDep) -> StatsOut:
    """Row counts of users, posts, comments and follows."""
    return store.stats()


@router.post("/users", status_code=201, tags=["users"], responses=_err(400, 409))
async def create_user(
    data: UserCreate,
    store: StoreDep,
    now: NowDep,
    x_synthetic: Annotated[
        str | None, Header(description="`true` marks the new user as synthetic.")
    ] = None,
) -> UserOut:
    """Sign up a new user. Sends 409 if the username or email is already registered."""
    synthetic = (x_synthetic or "").strip().lower() in {"true", "1", "yes"}
    try:
        return store.create_user(data, synthetic=synthetic, now=now)
    except DuplicateUserError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/auth/login", tags=["auth"], responses=_err(400, 401))
async def login(data: LoginIn, store: StoreDep, now: NowDep) -> TokenOut:
    """Exchange a username and password for a bearer token."""
    token = store.login(data.username, data.password, now=now)
    if token is None:
        raise HTTPException(401, "invalid username or password")
    return token


@router.get("/users/{user_id}", tags=["users"], responses=_err(404))
async def get_user(user_id: int, store: StoreDep) -> UserOut:
    """Return one user."""
    user = store.get_user(user_id)
    if user is None:
        raise HTTPException(404, "user not found")
    return user


@router.delete(
    "/users/{user_id}",
    status_code=204,
    response_class=Response,
    tags=["users"],
    responses=_err(401, 403, 404),
)
async def delete_user(user_id: int, store: StoreDep, me: UserIdDep) -> Response:
    """Delete your own account with its posts, comments, follows and tokens."""
    if user_id != me:
        if not store.user_exists(user_id):
            raise HTTPException(404, "user not found")
        raise HTTPException(403, "you can only delete your own account")
    store.delete_user(user_id)
    return Response(status_code=204)


@router.post(
    "/users/{user_id}/follow",
    status_code=201,
    tags=["follows"],
    responses={
        200: {"model": FollowOut, "description": "Already following"},
        **_err(400, 401, 404),
    },
)
async def follow_user(
    user_id: int, response: Response, store: StoreDep, me: UserIdDep, now: NowDep
) -> FollowOut:
    """Follow a user: 201 when created, 200 when already following."""
    if user_id == me:
        raise HTTPException(400, "you cannot follow yourself")
    if not store.user_exists(user_id):
        raise HTTPException(404, "user not found")
    follow, created = store.follow(me, user_id, now=now)
    if not created:
        response.status_code = 200
    return follow


@router.delete(
    "/users/{user_id}/follow",
    status_code=204,
    response_class=Response,
    tags=["follows"],
    responses=_err(401),
)
async def unfollow_user(user_id: int, store: StoreDep, me: UserIdDep) -> Response:
    """Stop following a user (no error if you were not following them)."""
    store.unfollow(me, user_id)
    return Response(status_code=204)


@router.get("/posts", tags=["posts"])
async def list_posts(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    author_id: Annotated[int | None, Query()] = None,
) -> PostPage:
    """List posts, newest first. Does not change view counts."""
    items, total = store.list_posts(limit=limit, offset=offset, author_id=author_id)
    return PostPage(items=items, total=total, limit=limit, offset=offset)


@router.post("/posts", status_code=201, tags=["posts"], responses=_err(400, 401))
async def create_post(data: PostCreate, store: StoreDep, me: UserIdDep, now: NowDep) -> PostOut:
    """Publish a post as the authenticated user."""
    return store.create_post(me, data, now=now)


@router.get("/posts/{post_id}", tags=["posts"], responses=_err(404))
async def get_post(post_id: int, store: StoreDep) -> PostOut:
    """Read a post; increments its view count (the returned value includes the increment)."""
    post = store.view_post(post_id)
    if post is None:
        raise HTTPException(404, "post not found")
    return post


async def _own_post(post_id: int, store: StoreDep, me: UserIdDep) -> int:
    """Check that the post exists (404) and belongs to the caller (403); return its id."""
    post = store.get_post(post_id)
    if post is None:
        raise HTTPException(404, "post not found")
    if post.author_id != me:
        raise HTTPException(403, "only the author can change this post")
    return post_id


OwnPostDep = Annotated[int, Depends(_own_post)]


@router.put("/posts/{post_id}", tags=["posts"], responses=_err(400, 401, 403, 404))
async def update_post(
    data: PostUpdate, post_id: OwnPostDep, store: StoreDep, now: NowDep
) -> PostOut:
    """Edit your own post; fields left out are unchanged. Sets ``updated_at``."""
    return store.update_post(post_id, data, now=now)


@router.delete(
    "/posts/{post_id}",
    status_code=204,
    response_class=Response,
    tags=["posts"],
    responses=_err(401, 403, 404),
)
async def delete_post(post_id: OwnPostDep, store: StoreDep) -> Response:
    """Delete your own post and its comments."""
    store.delete_post(post_id)
    return Response(status_code=204)


@router.get("/posts/{post_id}/comments", tags=["comments"], responses=_err(404))
async def list_comments(
    post_id: int,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CommentPage:
    """List a post's comments, oldest first."""
    if store.get_post(post_id) is None:
        raise HTTPException(404, "post not found")
    items, total = store.list_comments(post_id, limit=limit, offset=offset)
    return CommentPage(items=items, total=total)


@router.post(
    "/posts/{post_id}/comments", status_code=201, tags=["comments"], responses=_err(400, 401, 404)
)
async def create_comment(
    post_id: int, data: CommentCreate, store: StoreDep, me: UserIdDep, now: NowDep
) -> CommentOut:
    """Comment on a post."""
    if store.get_post(post_id) is None:
        raise HTTPException(404, "post not found")
    return store.create_comment(post_id, me, data.body, now=now)


# --------------------------------------------------------------------------------------
# Admin: injected faults (never faulted themselves)
# --------------------------------------------------------------------------------------

admin_router = APIRouter(prefix="/admin", tags=["admin"])


class FaultCountsOut(BaseModel):
    """Requests seen by the fault injector since the config was last set, by outcome."""

    requests: int
    passed: int
    drop: int
    rate_limit: int
    error: int


async def get_faults_controller(request: Request) -> FaultController:
    """Dependency: the app's :class:`FaultController`."""
    controller: FaultController = request.app.state.faults
    return controller


FaultsDep = Annotated[FaultController, Depends(get_faults_controller)]


@admin_router.get("/faults")
async def get_faults(faults: FaultsDep) -> FaultConfig:
    """The fault config in force."""
    return faults.config


@admin_router.put("/faults")
async def put_faults(config: FaultConfig, faults: FaultsDep) -> FaultConfig:
    """Replace the fault config (reseeds the fault generators and restarts burst timing)."""
    return faults.set(config)


@admin_router.delete("/faults")
async def delete_faults(faults: FaultsDep) -> FaultConfig:
    """Turn every fault off; returns the (empty) config now in force."""
    return faults.set(None)


@admin_router.get("/faults/stats")
async def fault_stats(faults: FaultsDep) -> FaultCountsOut:
    """How many faultable requests were passed, dropped, rate limited or failed."""
    c = faults.counts
    return FaultCountsOut(
        requests=c["requests"],
        passed=c["pass"],
        drop=c["drop"],
        rate_limit=c["rate_limit"],
        error=c["error"],
    )


# --------------------------------------------------------------------------------------
# Factory and runner
# --------------------------------------------------------------------------------------


class _DemoAPI(FastAPI):
    """FastAPI with the fault injector wrapped around its whole middleware stack."""

    def build_middleware_stack(self) -> ASGIApp:
        return FaultInjector(super().build_middleware_stack(), self.state.faults)


def create_app(
    db_path: str = ":memory:", faults: FaultConfig | FaultController | None = None
) -> FastAPI:
    """Build the demo social API with its own SQLite connection and schema.

    The schema is created right here (not in a lifespan handler), so the app works when
    called in-process through ``httpx.ASGITransport``. Each call returns an independent app;
    with the default ``":memory:"`` each app has its own private, empty database.

    Args:
        db_path (str): SQLite database file (opened in WAL mode), or ``":memory:"``.
        faults (FaultConfig | FaultController | None): Faults to inject (see
            :mod:`sim_engine.demo.faults`); None starts with none, and they can still be
            turned on at run time through ``PUT /admin/faults``. Pass a
            :class:`FaultController` to control the clock and sleep (tests).

    Returns:
        fastapi.FastAPI: The ASGI app. Its store is at ``app.state.store`` (:class:`DemoStore`)
        and its fault controller at ``app.state.faults`` (:class:`FaultController`).

    Raises:
        sqlite3.Error: If the database cannot be opened or initialised.
    """
    app = _DemoAPI(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "A small social API (users, posts, comments, follows) used as the built-in "
            "target of sim-engine. Send `X-Sim-Time` to store simulated timestamps and "
            "`X-Synthetic: true` at sign-up to flag synthetic users. `/admin/faults` "
            "turns injected faults (errors, latency, 429 bursts, dropped connections) on "
            "and off."
        ),
    )
    app.state.faults = faults if isinstance(faults, FaultController) else FaultController(faults)
    app.state.store = DemoStore(db_path)
    app.include_router(router)
    app.include_router(admin_router)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    db_path: str = ":memory:",
    faults: FaultConfig | None = None,
) -> None:
    """Run the demo API with uvicorn until interrupted (blocking).

    Args:
        host (str): Interface to bind.
        port (int): TCP port to bind.
        db_path (str): SQLite database file, or ``":memory:"``.
        faults (FaultConfig | None): Faults to inject from the start; None for none.

    Raises:
        sqlite3.Error: If the database cannot be opened.
        SystemExit: If uvicorn cannot bind the address.
    """
    import uvicorn

    app = create_app(db_path, faults)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        app.state.store.close()
