"""Server-rendered web pages of the demo app (Jinja2 templates, no JavaScript build step).

The pages show the API's data (one :class:`~sim_engine.demo.store.DemoStore`) to a
browser: the home feed (``/``), ``/popular``, a tag's posts (``/tags/{tag}``),
``/search?q=``, a post with its comments (``/p/{id}``, which counts a view like
``GET /posts/{id}``), ``/compose`` and ``/p/{id}/edit``, ``/signup`` and ``/login``
(a cookie session, :data:`~sim_engine.demo.page_data.SESSION_COOKIE`), ``/logout``,
profiles (``/u/{id}``, ``/me``), a reading list of recently viewed posts (``/list``,
kept by the page's JavaScript in ``localStorage``) and ``/assistant?q=``, which suggests
posts for a question. Elements a flow clicks carry ``data-testid`` attributes.

Forms post ``application/x-www-form-urlencoded`` bodies; a form with a bad field is
shown again with status 400 and a one-line message; pages for signed-in users redirect
to ``/login?next=...`` (303) without a session. ``X-Sim-Time`` stamps writes as in the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Cookie, Depends, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from sim_engine.demo.deps import NowDep, StoreDep
from sim_engine.demo.page_data import (
    PAGE_SIZE,
    SESSION_COOKIE,
    SYNTHETIC_COOKIE,
    is_synthetic,
    popular_posts,
    post_views,
    search_posts,
    tag_posts,
)
from sim_engine.demo.schemas import PostCreate, PostUpdate, UserCreate, UserOut
from sim_engine.demo.store import DemoStore, DuplicateUserError

__all__ = ["pages_router"]

pages_router = APIRouter(include_in_schema=False)
_templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

SessionCookie = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]


async def _form(request: Request) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` body of a POST: field -> its last value
    (read with the standard library, so the pages need no multipart parser)."""
    text = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


FormDep = Annotated[dict[str, str], Depends(_form)]


def _me(store: DemoStore, token: str | None) -> UserOut | None:
    user_id = store.user_for_token(token) if token else None
    return store.get_user(user_id) if user_id is not None else None


def _page(
    request: Request, name: str, me: UserOut | None, status: int = 200, **context: Any
) -> HTMLResponse:
    return _templates.TemplateResponse(request, name, {"me": me, **context}, status_code=status)


def _to(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _login_first(request: Request) -> RedirectResponse:
    return _to("/login?next=" + quote(request.url.path, safe="/"))


def _safe_next(target: str) -> str:
    """Only a local path (never ``//host`` or a scheme) is followed after log-in."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _listing(request: Request, me: UserOut | None, store: DemoStore, **ctx: Any) -> HTMLResponse:
    ctx["posts"] = post_views(store, ctx["posts"])
    return _page(request, "feed.html", me, **ctx)


@pages_router.get("/", response_class=HTMLResponse)
async def home(
    request: Request, store: StoreDep, session: SessionCookie = None, page: int = 1
) -> HTMLResponse:
    """The home feed: the newest posts, :data:`PAGE_SIZE` a page (``?page=2``...)."""
    page = max(1, page)
    posts, total = store.list_posts(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, author_id=None)
    more = page * PAGE_SIZE < total
    return _listing(
        request,
        _me(store, session),
        store,
        heading="Latest posts",
        posts=posts,
        page=page,
        more=more,
        kind="home",
    )


@pages_router.get("/popular", response_class=HTMLResponse)
async def popular(request: Request, store: StoreDep, session: SessionCookie = None) -> HTMLResponse:
    """The most viewed posts."""
    return _listing(
        request,
        _me(store, session),
        store,
        heading="Popular",
        posts=popular_posts(store),
        kind="popular",
    )


@pages_router.get("/tags/{tag}", response_class=HTMLResponse)
async def tag(
    request: Request, tag: str, store: StoreDep, session: SessionCookie = None
) -> HTMLResponse:
    """The newest posts carrying ``tag``."""
    return _listing(
        request,
        _me(store, session),
        store,
        heading=f"#{tag}",
        posts=tag_posts(store, tag),
        kind="tag",
    )


@pages_router.get("/search", response_class=HTMLResponse)
async def search(
    request: Request, store: StoreDep, session: SessionCookie = None, q: str = ""
) -> HTMLResponse:
    """Posts whose title or body contain every word of ``q``."""
    return _listing(
        request,
        _me(store, session),
        store,
        heading="Search",
        q=q,
        posts=search_posts(store, q),
        kind="search",
    )


@pages_router.get("/assistant", response_class=HTMLResponse)
async def assistant(
    request: Request, store: StoreDep, session: SessionCookie = None, q: str = ""
) -> HTMLResponse:
    """Suggestions for a question: posts matching any of its longer words, newest first."""
    found: dict[int, Any] = {}
    for word in [w for w in q.split() if len(w) > 3][:5]:
        for post in search_posts(store, word, limit=5):
            found.setdefault(post.id, post)
    posts = post_views(store, list(found.values())[:10])
    return _page(request, "assistant.html", _me(store, session), q=q, posts=posts)


@pages_router.get("/list", response_class=HTMLResponse)
async def reading_list(
    request: Request, store: StoreDep, session: SessionCookie = None
) -> HTMLResponse:
    """Recently viewed posts, drawn by the page's script from ``localStorage``."""
    return _page(request, "list.html", _me(store, session))


@pages_router.get("/p/{post_id}", response_class=HTMLResponse)
async def post_page(
    request: Request, post_id: int, store: StoreDep, session: SessionCookie = None
) -> HTMLResponse:
    """A post (its view count goes up by one) and its comments, oldest first."""
    post = store.view_post(post_id)
    if post is None:
        raise HTTPException(404, "post not found")
    comments, _ = store.list_comments(post_id, limit=200, offset=0)
    names = {
        c.author_id: (u.username if (u := store.get_user(c.author_id)) else "deleted")
        for c in comments
    }
    return _page(
        request,
        "post.html",
        _me(store, session),
        view=post_views(store, [post])[0],
        comments=comments,
        names=names,
    )


@pages_router.post("/p/{post_id}/comments", response_class=HTMLResponse)
async def comment(
    request: Request,
    post_id: int,
    form: FormDep,
    store: StoreDep,
    now: NowDep,
    session: SessionCookie = None,
) -> Response:
    """Comment on a post as the signed-in user, then show the post at the comment."""
    body = form.get("body", "")
    me = _me(store, session)
    if me is None:
        return _login_first(request)
    if store.get_post(post_id) is None:
        raise HTTPException(404, "post not found")
    if not body.strip():
        return _to(f"/p/{post_id}")
    made = store.create_comment(post_id, me.id, body.strip(), now=now)
    return _to(f"/p/{post_id}#c{made.id}")


def _tags(text: str) -> list[str]:
    return [t.strip().lstrip("#") for t in text.split(",") if t.strip().lstrip("#")][:50]


@pages_router.get("/compose", response_class=HTMLResponse)
async def compose_form(
    request: Request, store: StoreDep, session: SessionCookie = None
) -> Response:
    """The form for a new post (signed-in users)."""
    me = _me(store, session)
    if me is None:
        return _login_first(request)
    return _page(request, "compose.html", me, post=None, error=None)


@pages_router.post("/compose", response_class=HTMLResponse)
async def compose(
    request: Request,
    form: FormDep,
    store: StoreDep,
    now: NowDep,
    session: SessionCookie = None,
) -> Response:
    """Publish a post; a bad title shows the form again with 400."""
    me = _me(store, session)
    if me is None:
        return _login_first(request)
    data = _post_form(PostCreate, form)
    if isinstance(data, str):
        return _page(request, "compose.html", me, 400, post=None, error=data)
    assert isinstance(data, PostCreate)
    return _to(f"/p/{store.create_post(me.id, data, now=now).id}")


def _post_form(
    model: type[PostCreate] | type[PostUpdate], form: dict[str, str]
) -> PostCreate | PostUpdate | str:
    """The form's post (``title``, ``body``, ``tags`` separated by commas), or the first
    problem with it (one line)."""
    title, body, tags = (form.get(k, "") for k in ("title", "body", "tags"))
    try:
        return model(title=title.strip(), body=body, tags=_tags(tags))
    except ValidationError as exc:
        return _first_error(exc)


async def _own(store: DemoStore, post_id: int, session: str | None) -> tuple[UserOut, Any]:
    me = _me(store, session)
    if me is None:
        raise HTTPException(401, "sign in first")
    post = store.get_post(post_id)
    if post is None:
        raise HTTPException(404, "post not found")
    if post.author_id != me.id:
        raise HTTPException(403, "only the author can change this post")
    return me, post


@pages_router.get("/p/{post_id}/edit", response_class=HTMLResponse)
async def edit_form(
    request: Request, post_id: int, store: StoreDep, session: SessionCookie = None
) -> Response:
    """The form editing your own post."""
    if _me(store, session) is None:
        return _login_first(request)
    me, post = await _own(store, post_id, session)
    return _page(request, "compose.html", me, post=post, error=None)


@pages_router.post("/p/{post_id}/edit", response_class=HTMLResponse)
async def edit(
    request: Request,
    post_id: int,
    form: FormDep,
    store: StoreDep,
    now: NowDep,
    session: SessionCookie = None,
) -> Response:
    """Save an edit of your own post (sets ``updated_at``)."""
    if _me(store, session) is None:
        return _login_first(request)
    me, post = await _own(store, post_id, session)
    data = _post_form(PostUpdate, form)
    if isinstance(data, str):
        return _page(request, "compose.html", me, 400, post=post, error=data)
    assert isinstance(data, PostUpdate)
    store.update_post(post_id, data, now=now)
    return _to(f"/p/{post_id}")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"


def _signed_in(target: str, token: str) -> RedirectResponse:
    response = _to(_safe_next(target))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", max_age=30 * 86400)
    return response


@pages_router.get("/signup", response_class=HTMLResponse)
async def signup_form(request: Request) -> HTMLResponse:
    """The sign-up form."""
    return _page(request, "signup.html", None, error=None)


@pages_router.post("/signup", response_class=HTMLResponse)
async def signup(
    request: Request,
    form: FormDep,
    store: StoreDep,
    now: NowDep,
    x_synthetic: Annotated[str | None, Header()] = None,
    marker: Annotated[str | None, Cookie(alias=SYNTHETIC_COOKIE)] = None,
) -> Response:
    """Create an account (flagged synthetic by the header or cookie marker) and sign in."""
    username, email, password = (form.get(k, "") for k in ("username", "email", "password"))
    try:
        data = UserCreate(username=username.strip(), email=email.strip(), password=password)
        store.create_user(data, synthetic=is_synthetic(x_synthetic, marker), now=now)
    except ValidationError as exc:
        return _page(request, "signup.html", None, 400, error=_first_error(exc))
    except DuplicateUserError as exc:
        return _page(request, "signup.html", None, 409, error=str(exc))
    token = store.login(data.username, password, now=now)
    assert token is not None  # just created with this password
    return _signed_in("/", token.token)


@pages_router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> HTMLResponse:
    """The log-in form (``next``: the local page to go to afterwards)."""
    return _page(request, "login.html", None, error=None, next=next)


@pages_router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    form: FormDep,
    store: StoreDep,
    now: NowDep,
) -> Response:
    """Check the credentials, set the session cookie and go on to ``next``."""
    username, password, next = (form.get(k, "") for k in ("username", "password", "next"))
    next = next or "/"
    token = store.login(username.strip(), password, now=now)
    if token is None:
        return _page(
            request, "login.html", None, 401, error="invalid username or password", next=next
        )
    return _signed_in(next, token.token)


@pages_router.post("/logout")
async def logout() -> Response:
    """Forget the session cookie."""
    response = _to("/")
    response.delete_cookie(SESSION_COOKIE)
    return response


@pages_router.get("/me")
async def me_page(request: Request, store: StoreDep, session: SessionCookie = None) -> Response:
    """Your own profile, or the log-in page."""
    me = _me(store, session)
    return _login_first(request) if me is None else _to(f"/u/{me.id}")


@pages_router.get("/u/{user_id}", response_class=HTMLResponse)
async def profile(
    request: Request, user_id: int, store: StoreDep, session: SessionCookie = None
) -> HTMLResponse:
    """A user's profile with their newest posts."""
    user = store.get_user(user_id)
    if user is None:
        raise HTTPException(404, "user not found")
    posts, total = store.list_posts(limit=PAGE_SIZE, offset=0, author_id=user_id)
    return _page(
        request,
        "profile.html",
        _me(store, session),
        user=user,
        total=total,
        posts=post_views(store, posts),
    )
