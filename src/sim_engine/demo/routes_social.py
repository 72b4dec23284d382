"""Routes of the demo social API: health, stats, users, auth, follows, posts, comments
and reactions.

Every endpoint is ``async def`` and talks to SQLite directly through the app's
:class:`~sim_engine.demo.store.DemoStore` (fast enough to run on the event loop).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response

from sim_engine.demo.deps import NowDep, StoreDep, UserIdDep
from sim_engine.demo.deps import error_responses as _err
from sim_engine.demo.schemas import (
    CommentCreate,
    CommentOut,
    CommentPage,
    FollowOut,
    FollowPage,
    HealthOut,
    LoginIn,
    PostCreate,
    PostOut,
    PostPage,
    PostUpdate,
    ReactionCreate,
    ReactionOut,
    StatsOut,
    TokenOut,
    UserCreate,
    UserOut,
)
from sim_engine.demo.store import DuplicateUserError

__all__ = ["router"]

router = APIRouter()


@router.get("/health", tags=["meta"])
async def health() -> HealthOut:
    """Liveness probe."""
    return HealthOut(status="ok")


@router.get("/stats", tags=["meta"])
async def stats(store: StoreDep) -> StatsOut:
    """Row counts of users, posts, comments, follows and reactions."""
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


@router.get("/users/{user_id}/followers", tags=["follows"], responses=_err(404))
async def list_followers(
    user_id: int,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FollowPage:
    """List a user's followers, newest follow first (who followed you lately)."""
    if not store.user_exists(user_id):
        raise HTTPException(404, "user not found")
    items, total = store.followers(user_id, limit=limit, offset=offset)
    return FollowPage(items=items, total=total)


@router.get("/posts", tags=["posts"])
async def list_posts(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    author_id: Annotated[int | None, Query()] = None,
    sort: Annotated[Literal["new", "popular"], Query()] = "new",
) -> PostPage:
    """List posts, newest first (``sort=popular``: most viewed first), each with its
    author's follower and post counts and its reaction and comment counts. Does not
    change view counts."""
    items, total = store.list_posts(
        limit=limit, offset=offset, author_id=author_id, popular=sort == "popular"
    )
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


def _check_owner(owner: int | None, me: int, what: str, forbidden: str) -> None:
    """Raise 404 ``{what} not found`` when ``owner`` is None (no such item), 403
    ``forbidden`` when the item is not the caller's (``me``, a user id)."""
    if owner is None:
        raise HTTPException(404, f"{what} not found")
    if owner != me:
        raise HTTPException(403, forbidden)


async def _own_post(post_id: int, store: StoreDep, me: UserIdDep) -> int:
    """Check that the post exists (404) and belongs to the caller (403); return its id."""
    post = store.get_post(post_id)
    _check_owner(
        None if post is None else post.author_id, me, "post", "only the author can change this post"
    )
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


@router.delete(
    "/comments/{comment_id}",
    status_code=204,
    response_class=Response,
    tags=["comments"],
    responses=_err(401, 403, 404),
)
async def delete_comment(comment_id: int, store: StoreDep, me: UserIdDep) -> Response:
    """Delete your own comment."""
    author = store.comment_author(comment_id)
    _check_owner(author, me, "comment", "only the author can delete this comment")
    store.delete_comment(comment_id)
    return Response(status_code=204)


@router.post(
    "/posts/{post_id}/reactions",
    status_code=201,
    tags=["reactions"],
    responses={
        200: {"model": ReactionOut, "description": "Your reaction, changed"},
        **_err(400, 401, 404),
    },
)
async def react(
    post_id: int,
    data: ReactionCreate,
    response: Response,
    store: StoreDep,
    me: UserIdDep,
    now: NowDep,
) -> ReactionOut:
    """React to a post (one reaction per user and post): 201 when new, 200 when changed."""
    if store.get_post(post_id) is None:
        raise HTTPException(404, "post not found")
    reaction, created = store.react(post_id, me, data.kind, now=now)
    if not created:
        response.status_code = 200
    return reaction


@router.delete(
    "/reactions/{reaction_id}",
    status_code=204,
    response_class=Response,
    tags=["reactions"],
    responses=_err(401, 403, 404),
)
async def delete_reaction(reaction_id: int, store: StoreDep, me: UserIdDep) -> Response:
    """Take back your own reaction."""
    reaction = store.reaction(reaction_id)
    forbidden = "only its author can take back this reaction"
    _check_owner(None if reaction is None else reaction.user_id, me, "reaction", forbidden)
    store.delete_reaction(reaction_id)
    return Response(status_code=204)
