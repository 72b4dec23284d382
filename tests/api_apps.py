"""Small FastAPI apps that behave like third-party APIs, for the memory-rule, auth and plugin
tests (run in process through :class:`~sim_engine.targets.inprocess.AsgiTransport`).

* :func:`conduit_app`: a RealWorld-like blog: bodies wrapped in an envelope
  (``{"user": {...}}``, ``{"article": {...}}``), ``Authorization: Token T`` (the prefix is a
  parameter), articles by slug with a ``state``, comments whose answers do not name their
  article, follows that refuse oneself (400) and a second follow (409).
* :func:`oauth_app`: an OAuth2 password-flow token endpoint (form bodies, access and
  refresh tokens, ``expires_in``) in front of ``GET /me``, on an injected clock.
* :func:`open_app`: no auth at all; ``GET /private`` always answers 401; creates answer
  with or without an envelope.
"""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

__all__ = ["Conduit", "OAuth", "conduit_app", "oauth_app", "open_app"]


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"errors": {"body": [detail]}}, status_code=status)


@dataclass
class Conduit:
    """The conduit app's state, for the tests to read and change."""

    prefix: str = "Token"
    users: dict[str, str] = field(default_factory=dict)  # username -> password
    tokens: dict[str, str] = field(default_factory=dict)  # token -> username
    articles: dict[str, dict[str, Any]] = field(default_factory=dict)  # slug -> article
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> comment + slug
    follows: set[tuple[str, str]] = field(default_factory=set)  # (follower, followed)
    hits: Counter[str] = field(default_factory=Counter)  # "METHOD path" -> requests
    refused: list[tuple[str, int]] = field(default_factory=list)  # (path, status) of 4xx
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_article(self, author: str, state: str = "open") -> dict[str, Any]:
        n = next(self.ids)
        article = {"id": n, "slug": f"a-{n}", "author": author, "state": state, "title": "t"}
        self.articles[f"a-{n}"] = article
        return article

    def me(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        word, _, token = header.partition(" ")
        return self.tokens.get(token) if word == self.prefix else None


def conduit_app(state: Conduit) -> FastAPI:
    """The RealWorld-like app over ``state`` (see the module docstring)."""
    app = FastAPI()

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Any:
        state.hits[f"{request.method} {request.url.path}"] += 1
        response = await call_next(request)
        if 400 <= response.status_code < 500:
            state.refused.append((request.url.path, response.status_code))
        return response

    @app.post("/users", status_code=201)
    async def sign_up(request: Request) -> Any:
        user = (await request.json())["user"]
        if user["username"] in state.users:
            return _error(409, "taken")
        state.users[user["username"]] = user["password"]
        return {"user": {"username": user["username"], "id": len(state.users)}}

    @app.post("/users/login")
    async def log_in(request: Request) -> Any:
        user = (await request.json())["user"]
        if state.users.get(user["username"]) != user["password"]:
            return _error(401, "bad credentials")
        token = f"t{next(state.ids)}"
        state.tokens[token] = user["username"]
        return {"user": {"username": user["username"], "token": token}}

    @app.get("/articles")
    async def list_articles() -> Any:
        return {"articles": list(state.articles.values())}

    @app.post("/articles", status_code=201)
    async def create(request: Request) -> Any:
        me = state.me(request)
        if me is None:
            return _error(401, "who are you")
        return {"article": state.add_article(me)}

    @app.get("/articles/{slug}")
    async def read(slug: str) -> Any:
        article = state.articles.get(slug)
        return {"article": article} if article else _error(404, "no such article")

    @app.post("/articles/{slug}/comments")
    async def comment(slug: str, request: Request) -> Any:
        me = state.me(request)
        if me is None:
            return _error(401, "who are you")
        if slug not in state.articles:
            return _error(404, "no such article")
        n = next(state.ids)
        state.comments[n] = {"id": n, "author": me, "slug": slug}
        return {"comment": {"id": n, "author": me, "body": "hi"}}  # the slug is not in it

    @app.delete("/articles/{slug}/comments/{n}")
    async def uncomment(slug: str, n: int, request: Request) -> Any:
        me, found = state.me(request), state.comments.get(n)
        if found is None or found["slug"] != slug:
            return _error(404, "no such comment")
        if found["author"] != me:
            return _error(403, "not yours")
        del state.comments[n]
        return Response(status_code=204)

    @app.post("/profiles/{username}/follow")
    async def follow(username: str, request: Request) -> Any:
        me = state.me(request)
        if me is None:
            return _error(401, "who are you")
        if me == username:
            return _error(400, "cannot follow yourself")
        if (me, username) in state.follows:
            return _error(409, "already following")
        state.follows.add((me, username))
        return {"profile": {"username": username, "following": True}}

    return app


@dataclass
class OAuth:
    """The OAuth2 app's state: its clock (wall seconds), tokens and every token request."""

    now: float = 1000.0
    lifetime_s: float = 60.0
    passwords: dict[str, str] = field(default_factory=dict)
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (user, expiry)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    grants: list[dict[str, str]] = field(default_factory=list)  # the form of each request
    content_types: list[str] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def issue(self, user: str) -> dict[str, Any]:
        n = next(self.ids)
        self.access[f"at{n}"] = (user, self.now + self.lifetime_s)
        self.refresh[f"rt{n}"] = user
        return {
            "access_token": f"at{n}",
            "token_type": "bearer",
            "expires_in": int(self.lifetime_s),
            "refresh_token": f"rt{n}",
        }


def oauth_app(state: OAuth) -> FastAPI:
    """``POST /oauth/token`` (password and refresh_token grants, form bodies; a user is
    created by its first password grant) and ``GET /me`` (a live access token)."""
    app = FastAPI()

    @app.post("/oauth/token")
    async def token(request: Request) -> Any:
        state.content_types.append(request.headers.get("content-type", ""))
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        state.grants.append(form)
        if form.get("client_id") != "sim":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") == "password":
            known = state.passwords.setdefault(form["username"], form["password"])
            if known != form["password"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return state.issue(form["username"])
        if form.get("grant_type") == "refresh_token":
            user = state.refresh.pop(form.get("refresh_token", ""), None)  # rotated
            if user is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return state.issue(user)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    @app.get("/me")
    async def me(request: Request) -> Any:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user, expiry = state.access.get(token, (None, 0.0))
        if user is None or expiry <= state.now:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return {"username": user}

    return app


def open_app(hits: Counter[str]) -> FastAPI:
    """No auth: ``GET /notes``, ``POST /notes`` (answer ``{"id": n}``), ``POST /boxed``
    (answer ``{"note": {"id": n}}``), and ``GET /private``: always 401."""
    app = FastAPI()
    ids = itertools.count(1)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Any:
        hits[f"{request.method} {request.url.path}"] += 1
        return await call_next(request)

    @app.get("/notes")
    async def notes() -> Any:
        return [{"id": 1}]

    @app.post("/notes", status_code=201)
    async def create() -> Any:
        return {"id": next(ids), "text": "x"}

    @app.post("/boxed", status_code=201)
    async def boxed() -> Any:
        return {"note": {"id": 1000 + next(ids)}}

    @app.get("/private")
    async def private() -> Any:
        return JSONResponse({"detail": "not authenticated"}, status_code=401)

    return app


def basic_user(request: Request) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (None without one)."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    return base64.b64decode(header[6:]).decode().split(":", 1)[0]
