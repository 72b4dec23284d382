"""Queries and the cookie session behind the demo app's web pages (:mod:`.pages`).

The pages show the same SQLite data as the API (:class:`~sim_engine.demo.store.DemoStore`);
what the API has no route for (popular posts, a tag's posts, a search) is read here.
A signed-in browser carries the cookie :data:`SESSION_COOKIE`, whose value is an API
token issued by :meth:`DemoStore.login`, so a page session and an API session are one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_engine.demo.schemas import PostOut, UserOut
from sim_engine.demo.store import DemoStore

__all__ = [
    "PAGE_SIZE",
    "SESSION_COOKIE",
    "SYNTHETIC_COOKIE",
    "PostView",
    "is_synthetic",
    "popular_posts",
    "post_views",
    "search_posts",
    "tag_posts",
]

#: The cookie holding a signed-in browser's token (HttpOnly, SameSite=Lax).
SESSION_COOKIE = "sim_session"
#: A cookie marking a synthetic browser (value ``1``); like the ``X-Synthetic`` header,
#: it flags the account signed up through the page as synthetic.
SYNTHETIC_COOKIE = "sim_synthetic"
#: Posts per listing page.
PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class PostView:
    """A post with its author's name, as a listing shows it."""

    post: PostOut
    author: str


def is_synthetic(header: str | None, cookie: str | None) -> bool:
    """True when the ``X-Synthetic`` header or the :data:`SYNTHETIC_COOKIE` says so
    (``true``, ``1`` or ``yes``, any case)."""
    return any((v or "").strip().lower() in {"true", "1", "yes"} for v in (header, cookie))


def post_views(store: DemoStore, posts: list[PostOut]) -> list[PostView]:
    """Attach each post's author name (``deleted`` for an author that is gone)."""
    names: dict[int, str] = {}
    for post in posts:
        if post.author_id not in names:
            user: UserOut | None = store.get_user(post.author_id)
            names[post.author_id] = user.username if user is not None else "deleted"
    return [PostView(p, names[p.author_id]) for p in posts]


def popular_posts(store: DemoStore, limit: int = PAGE_SIZE) -> list[PostOut]:
    """The most viewed posts, most views first (newest first among equals)."""
    return store.select_posts(
        "SELECT * FROM posts ORDER BY view_count DESC, id DESC LIMIT ?", (limit,)
    )


def tag_posts(store: DemoStore, tag: str, limit: int = PAGE_SIZE) -> list[PostOut]:
    """The newest posts carrying ``tag`` (exact match against the post's tag list)."""
    return store.select_posts(
        "SELECT * FROM posts WHERE EXISTS (SELECT 1 FROM json_each(posts.tags) WHERE value = ?)"
        " ORDER BY id DESC LIMIT ?",
        (tag, limit),
    )


def search_posts(store: DemoStore, query: str, limit: int = PAGE_SIZE) -> list[PostOut]:
    """The newest posts whose title or body contains every word of ``query`` (any case).
    An empty query finds nothing."""
    words = [w for w in query.split() if w][:8]
    if not words:
        return []
    where = " AND ".join("(title LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')" for _ in words)
    params: list[object] = []
    for word in words:
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like]
    return store.select_posts(
        f"SELECT * FROM posts WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit)
    )
