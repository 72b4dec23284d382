"""Request and response bodies of the demo social API (pydantic models).

Every model here is re-exported by :mod:`sim_engine.demo.app`. Timestamps are ISO 8601
date-time strings; ids are SQLite row ids.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "REACTION_KINDS",
    "CommentCreate",
    "CommentOut",
    "CommentPage",
    "ErrorOut",
    "FaultCountsOut",
    "FollowOut",
    "FollowPage",
    "HealthOut",
    "LoginIn",
    "PostCreate",
    "PostOut",
    "PostPage",
    "PostUpdate",
    "ReactionCreate",
    "ReactionOut",
    "StatsOut",
    "TokenOut",
    "UserCreate",
    "UserOut",
]


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
    author_followers: int = Field(0, description="Followers of the post's author.")
    author_posts: int = Field(0, description="Posts the author has written.")
    reaction_count: int = Field(0, description="Reactions to the post.")
    comment_count: int = Field(0, description="Comments on the post.")


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
    reactions: int


REACTION_KINDS = ("like", "love", "laugh", "wow", "sad", "angry")
"""The kinds of reaction a post may get."""


class ReactionCreate(BaseModel):
    """Body of ``POST /posts/{id}/reactions``."""

    kind: Literal["like", "love", "laugh", "wow", "sad", "angry"] = "like"


class ReactionOut(BaseModel):
    """A user's reaction to a post (one per user and post)."""

    id: int
    post_id: int
    user_id: int
    kind: str
    created_at: str = Field(description="ISO 8601 date-time.")


class FollowPage(BaseModel):
    """A page of a user's followers, newest follow first."""

    items: list[FollowOut]
    total: int


class FaultCountsOut(BaseModel):
    """Requests seen by the fault injector since the config was last set, by outcome."""

    requests: int
    passed: int
    drop: int
    rate_limit: int
    error: int
