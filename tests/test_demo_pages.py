"""The demo app's web pages (``sim_engine.demo.pages``), in-process through httpx: the same
data as the API, a cookie session from sign-up and log-in, writes through forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from sim_engine.demo import create_app

Client = httpx.AsyncClient


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo"
    ) as c:
        yield c
    app.state.store.close()


async def page_signup(client: Client, name: str, **headers: str) -> None:
    form = {"username": name, "email": f"{name}@example.org", "password": "pw-" + name}
    resp = await client.post("/signup", data=form, headers=headers)
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/"


async def api_post(client: Client, name: str, title: str, body: str, tags: list[str]) -> int:
    await client.post("/users", json={"username": name, "email": f"{name}@x.org", "password": "pw"})
    token = (await client.post("/auth/login", json={"username": name, "password": "pw"})).json()
    resp = await client.post(
        "/posts",
        json={"title": title, "body": body, "tags": tags},
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert resp.status_code == 201
    return int(resp.json()["id"])


def titles(html: str) -> list[str]:
    return re.findall(r'data-testid="post-link">([^<]*)</a>', html)


async def test_signup_sets_a_session_cookie_and_pages_show_who_is_signed_in(
    client: Client,
) -> None:
    assert 'data-testid="nav-login"' in (await client.get("/")).text
    await page_signup(client, "ana")
    assert client.cookies.get("sim_session")
    home = (await client.get("/")).text
    assert 'data-testid="nav-profile">ana</a>' in home
    assert 'data-testid="nav-login"' not in home
    me = await client.get("/me")
    assert me.status_code == 303 and re.fullmatch(r"/u/\d+", me.headers["location"])
    await client.post("/logout")
    assert not client.cookies.get("sim_session")
    assert (await client.get("/me")).headers["location"] == "/login?next=/me"


async def test_login_page_checks_the_password_and_follows_only_local_next(
    client: Client,
) -> None:
    await page_signup(client, "bo")
    client.cookies.clear()
    bad = await client.post("/login", data={"username": "bo", "password": "nope"})
    assert bad.status_code == 401 and "invalid username or password" in bad.text
    good = await client.post(
        "/login", data={"username": "bo", "password": "pw-bo", "next": "//evil.example/x"}
    )
    assert good.status_code == 303 and good.headers["location"] == "/"
    nxt = await client.post(
        "/login", data={"username": "bo", "password": "pw-bo", "next": "/compose"}
    )
    assert nxt.headers["location"] == "/compose"


async def test_synthetic_markers_flag_accounts_signed_up_through_the_page(
    client: Client,
) -> None:
    await page_signup(client, "plain")
    await page_signup(client, "byheader", **{"X-Synthetic": "true"})
    client.cookies.set("sim_synthetic", "1")
    await page_signup(client, "bycookie")
    users = {
        u["username"]: u["is_synthetic"]
        for u in [(await client.get(f"/users/{i}")).json() for i in (1, 2, 3)]
    }
    assert users == {"plain": False, "byheader": True, "bycookie": True}


async def test_listings_show_the_api_data(client: Client) -> None:
    first = await api_post(client, "u1", "Quiet mornings", "coffee and rain", ["life"])
    await api_post(client, "u2", "Rust tips", "borrow checker notes", ["code", "rust"])
    await api_post(client, "u3", "Python tips", "typing and coffee", ["code"])
    for _ in range(3):
        await client.get(f"/posts/{first}")  # API reads count as views
    assert titles((await client.get("/")).text) == ["Python tips", "Rust tips", "Quiet mornings"]
    assert titles((await client.get("/popular")).text)[0] == "Quiet mornings"
    assert titles((await client.get("/tags/code")).text) == ["Python tips", "Rust tips"]
    assert titles((await client.get("/tags/cod")).text) == []
    assert titles((await client.get("/search", params={"q": "COFFEE"})).text) == [
        "Python tips",
        "Quiet mornings",
    ]
    assert titles((await client.get("/search", params={"q": "coffee typing"})).text) == [
        "Python tips"
    ]
    assert titles((await client.get("/search", params={"q": "50%"})).text) == []
    ask = await client.get("/assistant", params={"q": "any tips about borrow?"})
    assert set(titles(ask.text)) == {"Rust tips", "Python tips"}
    profile = (await client.get("/u/2")).text
    assert titles(profile) == ["Rust tips"] and "1 posts" in profile


async def test_post_page_counts_a_view_and_shows_comments_made_through_the_form(
    client: Client,
) -> None:
    post_id = await api_post(client, "author", "Hello", "<b>not bold</b>", [])
    page = await client.get(f"/p/{post_id}")
    assert page.status_code == 200
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page.text  # autoescaped
    assert f'data-post-id="{post_id}"' in page.text  # the recently-viewed script's hook
    assert (await client.get(f"/posts/{post_id}")).json()["view_count"] == 2
    anonymous = await client.post(f"/p/{post_id}/comments", data={"body": "hi"})
    assert anonymous.headers["location"] == f"/login?next=/p/{post_id}/comments"
    await page_signup(client, "reader")
    made = await client.post(
        f"/p/{post_id}/comments",
        data={"body": "nice"},
        headers={"X-Sim-Time": "2030-01-02T03:04:05Z"},
    )
    assert made.status_code == 303 and made.headers["location"].startswith(f"/p/{post_id}#c")
    comments = (await client.get(f"/posts/{post_id}/comments")).json()["items"]
    assert [(c["body"], c["created_at"]) for c in comments] == [
        ("nice", "2030-01-02T03:04:05+00:00")
    ]
    assert (
        'data-testid="comment"><span class="meta">reader:</span> nice'
        in (await client.get(f"/p/{post_id}")).text
    )
    assert (await client.get("/p/999")).status_code == 404


async def test_compose_and_edit_through_forms_only_for_the_author(client: Client) -> None:
    assert (await client.get("/compose")).headers["location"] == "/login?next=/compose"
    await page_signup(client, "writer")
    bad = await client.post("/compose", data={"title": "  ", "body": "x"})
    assert bad.status_code == 400 and 'data-testid="error"' in bad.text
    made = await client.post("/compose", data={"title": "Mine", "body": "text", "tags": "a, #b"})
    assert made.status_code == 303
    post_id = int(made.headers["location"].rsplit("/", 1)[1])
    assert (await client.get(f"/posts/{post_id}")).json()["tags"] == ["a", "b"]
    edit = await client.get(f"/p/{post_id}/edit")
    assert 'value="Mine"' in edit.text
    saved = await client.post(f"/p/{post_id}/edit", data={"title": "Mine v2", "body": "more"})
    assert saved.headers["location"] == f"/p/{post_id}"
    assert (await client.get(f"/posts/{post_id}")).json()["title"] == "Mine v2"
    client.cookies.clear()
    await page_signup(client, "other")
    assert (await client.get(f"/p/{post_id}/edit")).status_code == 403
    denied = await client.post(f"/p/{post_id}/edit", data={"title": "hijack"})
    assert denied.status_code == 403
    assert (await client.get(f"/posts/{post_id}")).json()["title"] == "Mine v2"


async def test_duplicate_sign_up_is_shown_on_the_form(client: Client) -> None:
    await page_signup(client, "twin")
    again = await client.post(
        "/signup", data={"username": "twin", "email": "t2@x.org", "password": "p"}
    )
    assert again.status_code == 409 and 'data-testid="error"' in again.text
    bad = await client.post("/signup", data={"username": "x", "email": "nope", "password": "p"})
    assert bad.status_code == 400 and "email" in bad.text


async def test_pages_are_not_in_the_openapi_document(client: Client) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and "/signup" not in paths and "/posts" in paths
