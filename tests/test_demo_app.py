"""Tests of the built-in demo social API (in-process) and of its subprocess launcher."""

from __future__ import annotations

import socket
import sqlite3
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sim_engine.demo import DemoServer, DemoServerError, create_app
from sim_engine.demo.app import hash_password, verify_password


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo"
    ) as c:
        yield c
    app.state.store.close()


async def signup(
    client: httpx.AsyncClient, username: str, headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"username": username, "email": f"{username}@example.org", "password": "pw-" + username}
    body.update(extra)
    resp = await client.post("/users", json=body, headers=headers or {})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    resp = await client.post(
        "/auth/login", json={"username": username, "password": "pw-" + username}
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


async def user_with_auth(client: httpx.AsyncClient, username: str) -> tuple[int, dict[str, str]]:
    user = await signup(client, username)
    return user["id"], await login(client, username)


async def make_post(
    client: httpx.AsyncClient, auth: dict[str, str], title: str = "hello", **extra: Any
) -> dict[str, Any]:
    resp = await client.post("/posts", json={"title": title, "body": "b", **extra}, headers=auth)
    assert resp.status_code == 201, resp.text
    post: dict[str, Any] = resp.json()
    return post


# ---------------------------------------------------------------------------------------
# basics, users, auth
# ---------------------------------------------------------------------------------------


async def test_health_and_empty_stats(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/stats")).json() == {
        "users": 0,
        "posts": 0,
        "comments": 0,
        "follows": 0,
        "reactions": 0,
    }


async def test_signup_returns_user_without_password(client: httpx.AsyncClient) -> None:
    user = await signup(client, "alice", name="Alice A.", avatar_url="http://a/x.png", tag="cats")
    assert set(user) == {
        "id",
        "username",
        "email",
        "name",
        "avatar_url",
        "tag",
        "is_synthetic",
        "created_at",
    }
    assert user["username"] == "alice"
    assert user["email"] == "alice@example.org"
    assert user["name"] == "Alice A."
    assert user["tag"] == "cats"
    assert user["is_synthetic"] is False
    fetched = await client.get(f"/users/{user['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == user
    assert "password" not in fetched.text


async def test_signup_synthetic_flag(client: httpx.AsyncClient) -> None:
    user = await signup(client, "bot", headers={"X-Synthetic": "true"})
    assert user["is_synthetic"] is True
    assert (await client.get(f"/users/{user['id']}")).json()["is_synthetic"] is True


async def test_signup_duplicates_and_validation(client: httpx.AsyncClient) -> None:
    await signup(client, "alice")
    dup_name = await client.post(
        "/users", json={"username": "alice", "email": "other@example.org", "password": "x"}
    )
    assert dup_name.status_code == 409
    assert "username" in dup_name.json()["detail"]
    dup_mail = await client.post(
        "/users", json={"username": "alice2", "email": "alice@example.org", "password": "x"}
    )
    assert dup_mail.status_code == 409
    assert "email" in dup_mail.json()["detail"]
    assert (await client.post("/users", json={"username": "x"})).status_code == 422
    bad_email = await client.post(
        "/users", json={"username": "y", "email": "nope", "password": "x"}
    )
    assert bad_email.status_code == 422


async def test_login_and_token_auth(client: httpx.AsyncClient) -> None:
    user = await signup(client, "alice")
    resp = await client.post("/auth/login", json={"username": "alice", "password": "pw-alice"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["user_id"] == user["id"]
    assert len(body["token"]) == 64
    int(body["token"], 16)  # hex

    wrong = await client.post("/auth/login", json={"username": "alice", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "invalid username or password"}
    unknown = await client.post("/auth/login", json={"username": "bob", "password": "x"})
    assert unknown.status_code == 401

    post = {"title": "t", "body": "b"}
    missing = await client.post("/posts", json=post)
    assert missing.status_code == 401
    assert "detail" in missing.json()
    bogus = await client.post("/posts", json=post, headers={"Authorization": "Bearer deadbeef"})
    assert bogus.status_code == 401
    basic = await client.post("/posts", json=post, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    ok = await client.post(
        "/posts", json=post, headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert ok.status_code == 201


async def test_unknown_user_404(client: httpx.AsyncClient) -> None:
    resp = await client.get("/users/999")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "user not found"}


def test_password_hashing() -> None:
    encoded = hash_password("secret")
    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password("secret", encoded)
    assert not verify_password("Secret", encoded)
    assert not verify_password("secret", "garbage")
    assert hash_password("secret") != encoded  # random salt


# ---------------------------------------------------------------------------------------
# posts
# ---------------------------------------------------------------------------------------


async def test_post_crud_and_view_count(client: httpx.AsyncClient) -> None:
    uid, auth = await user_with_auth(client, "alice")
    post = await make_post(client, auth, title="First", tags=["a", "b"])
    assert post["author_id"] == uid
    assert post["title"] == "First"
    assert post["tags"] == ["a", "b"]
    assert post["view_count"] == 0
    assert post["created_at"] == post["updated_at"]

    listed = (await client.get("/posts")).json()
    assert listed["total"] == 1
    assert listed["items"][0]["view_count"] == 0

    for expected in (1, 2, 3):
        read = await client.get(f"/posts/{post['id']}")
        assert read.status_code == 200
        assert read.json()["view_count"] == expected
    # listing never increments
    await client.get("/posts")
    assert (await client.get("/posts")).json()["items"][0]["view_count"] == 3

    upd = await client.put(
        f"/posts/{post['id']}",
        json={"title": "Edited", "tags": []},
        headers={**auth, "X-Sim-Time": "2031-05-06T07:08:09+00:00"},
    )
    assert upd.status_code == 200
    edited = upd.json()
    assert edited["title"] == "Edited"
    assert edited["body"] == "b"  # untouched
    assert edited["tags"] == []
    assert edited["updated_at"] == "2031-05-06T07:08:09+00:00"
    assert edited["created_at"] == post["created_at"]
    assert edited["view_count"] == 3

    deleted = await client.delete(f"/posts/{post['id']}", headers=auth)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"/posts/{post['id']}")).status_code == 404
    assert (await client.put(f"/posts/{post['id']}", json={}, headers=auth)).status_code == 404
    assert (await client.delete(f"/posts/{post['id']}", headers=auth)).status_code == 404


async def test_post_validation(client: httpx.AsyncClient) -> None:
    _, auth = await user_with_auth(client, "alice")
    assert (
        await client.post("/posts", json={"title": "", "body": "b"}, headers=auth)
    ).status_code == 422
    long_title = {"title": "x" * 201, "body": "b"}
    assert (await client.post("/posts", json=long_title, headers=auth)).status_code == 422
    ok = await make_post(client, auth, title="x" * 200)
    assert ok["tags"] == []
    assert (await client.get("/posts?limit=0")).status_code == 422
    assert (await client.get("/posts?limit=101")).status_code == 422
    assert (await client.get("/posts?offset=-1")).status_code == 422


async def test_only_author_can_update_or_delete(client: httpx.AsyncClient) -> None:
    _, alice = await user_with_auth(client, "alice")
    _, bob = await user_with_auth(client, "bob")
    post = await make_post(client, alice)
    put = await client.put(f"/posts/{post['id']}", json={"title": "mine"}, headers=bob)
    assert put.status_code == 403
    assert "detail" in put.json()
    assert (await client.delete(f"/posts/{post['id']}", headers=bob)).status_code == 403
    assert (await client.get(f"/posts/{post['id']}")).json()["title"] == "hello"
    assert (await client.put(f"/posts/{post['id']}", json={"title": "x"})).status_code == 401


async def test_pagination_newest_first(client: httpx.AsyncClient) -> None:
    a_id, alice = await user_with_auth(client, "alice")
    b_id, bob = await user_with_auth(client, "bob")
    ids = []
    for i in range(25):
        ids.append((await make_post(client, alice if i % 2 == 0 else bob, title=f"p{i}"))["id"])

    page = (await client.get("/posts")).json()
    assert page["total"] == 25
    assert page["limit"] == 20
    assert page["offset"] == 0
    assert [p["id"] for p in page["items"]] == ids[::-1][:20]

    page2 = (await client.get("/posts", params={"limit": 10, "offset": 20})).json()
    assert page2["total"] == 25
    assert (page2["limit"], page2["offset"]) == (10, 20)
    assert [p["id"] for p in page2["items"]] == ids[::-1][20:]

    beyond = (await client.get("/posts", params={"offset": 100})).json()
    assert beyond["items"] == []
    assert beyond["total"] == 25

    by_bob = (await client.get("/posts", params={"author_id": b_id, "limit": 100})).json()
    assert by_bob["total"] == 12
    assert all(p["author_id"] == b_id for p in by_bob["items"])
    by_alice = (await client.get("/posts", params={"author_id": a_id, "limit": 5})).json()
    assert by_alice["total"] == 13
    assert len(by_alice["items"]) == 5


# ---------------------------------------------------------------------------------------
# comments, follows, deletion
# ---------------------------------------------------------------------------------------


async def test_comments(client: httpx.AsyncClient) -> None:
    a_id, alice = await user_with_auth(client, "alice")
    b_id, bob = await user_with_auth(client, "bob")
    post = await make_post(client, alice)
    url = f"/posts/{post['id']}/comments"

    assert (await client.get(url)).json() == {"items": [], "total": 0}
    assert (await client.post(url, json={"body": "hi"})).status_code == 401
    c1 = await client.post(url, json={"body": "first!"}, headers=bob)
    assert c1.status_code == 201
    comment = c1.json()
    assert set(comment) == {"id", "post_id", "author_id", "body", "created_at"}
    assert (comment["post_id"], comment["author_id"], comment["body"]) == (
        post["id"],
        b_id,
        "first!",
    )
    await client.post(url, json={"body": "thanks"}, headers=alice)
    listed = (await client.get(url)).json()
    assert listed["total"] == 2
    assert [c["author_id"] for c in listed["items"]] == [b_id, a_id]

    assert (await client.get("/posts/999/comments")).status_code == 404
    assert (
        await client.post("/posts/999/comments", json={"body": "x"}, headers=bob)
    ).status_code == 404
    assert (await client.post(url, json={"body": ""}, headers=bob)).status_code == 422

    # deleting the post deletes its comments
    assert (await client.delete(f"/posts/{post['id']}", headers=alice)).status_code == 204
    assert (await client.get("/stats")).json()["comments"] == 0


async def test_follows(client: httpx.AsyncClient) -> None:
    a_id, alice = await user_with_auth(client, "alice")
    b_id, _ = await user_with_auth(client, "bob")

    first = await client.post(f"/users/{b_id}/follow", headers=alice)
    assert first.status_code == 201
    assert first.json()["follower_id"] == a_id
    assert first.json()["followee_id"] == b_id
    again = await client.post(f"/users/{b_id}/follow", headers=alice)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert (await client.get("/stats")).json()["follows"] == 1

    self_follow = await client.post(f"/users/{a_id}/follow", headers=alice)
    assert self_follow.status_code == 400
    assert "detail" in self_follow.json()
    assert (await client.post("/users/999/follow", headers=alice)).status_code == 404
    assert (await client.post(f"/users/{b_id}/follow")).status_code == 401

    assert (await client.delete(f"/users/{b_id}/follow", headers=alice)).status_code == 204
    assert (await client.get("/stats")).json()["follows"] == 0
    assert (await client.delete(f"/users/{b_id}/follow", headers=alice)).status_code == 204


async def test_delete_user_cascades(client: httpx.AsyncClient) -> None:
    a_id, alice = await user_with_auth(client, "alice")
    b_id, bob = await user_with_auth(client, "bob")
    a_post = await make_post(client, alice)
    b_post = await make_post(client, bob)
    await client.post(f"/posts/{a_post['id']}/comments", json={"body": "b on a"}, headers=bob)
    await client.post(f"/posts/{b_post['id']}/comments", json={"body": "a on b"}, headers=alice)
    await client.post(f"/posts/{b_post['id']}/comments", json={"body": "b on b"}, headers=bob)
    await client.post(f"/users/{b_id}/follow", headers=alice)
    await client.post(f"/users/{a_id}/follow", headers=bob)
    await client.post(f"/posts/{a_post['id']}/reactions", json={"kind": "love"}, headers=bob)
    await client.post(f"/posts/{b_post['id']}/reactions", json={}, headers=alice)
    await client.post(f"/posts/{b_post['id']}/reactions", json={}, headers=bob)
    assert (await client.get("/stats")).json() == {
        "users": 2,
        "posts": 2,
        "comments": 3,
        "follows": 2,
        "reactions": 3,
    }

    assert (await client.delete(f"/users/{b_id}", headers=alice)).status_code == 403
    assert (await client.delete("/users/999", headers=alice)).status_code == 404
    assert (await client.delete(f"/users/{a_id}")).status_code == 401

    assert (await client.delete(f"/users/{a_id}", headers=alice)).status_code == 204
    # alice's post, comments and reactions on it, her comments, reactions and follows
    # (both ways) are gone
    assert (await client.get("/stats")).json() == {
        "users": 1,
        "posts": 1,
        "comments": 1,
        "follows": 0,
        "reactions": 1,
    }
    assert (await client.get(f"/users/{a_id}")).status_code == 404
    assert (await client.get(f"/posts/{a_post['id']}")).status_code == 404
    remaining = (await client.get(f"/posts/{b_post['id']}/comments")).json()
    assert [c["body"] for c in remaining["items"]] == ["b on b"]
    # her token no longer works
    assert (
        await client.post("/posts", json={"title": "t", "body": "b"}, headers=alice)
    ).status_code == 401


# ---------------------------------------------------------------------------------------
# simulated time, OpenAPI, isolation
# ---------------------------------------------------------------------------------------


async def test_sim_time_header(client: httpx.AsyncClient) -> None:
    sim = {"X-Sim-Time": "2030-01-02T03:04:05+02:00"}
    user = await signup(client, "alice", headers=sim)
    assert user["created_at"] == "2030-01-02T03:04:05+02:00"
    auth = await login(client, "alice")
    post = await make_post(client, {**auth, **sim})
    assert post["created_at"] == post["updated_at"] == "2030-01-02T03:04:05+02:00"
    comment = await client.post(
        f"/posts/{post['id']}/comments",
        json={"body": "x"},
        headers={**auth, "X-Sim-Time": "2030-01-02T04:00:00Z"},
    )
    assert comment.json()["created_at"] == "2030-01-02T04:00:00+00:00"

    bob = await signup(client, "bob")
    follow = await client.post(f"/users/{bob['id']}/follow", headers={**auth, **sim})
    assert follow.json()["created_at"] == "2030-01-02T03:04:05+02:00"

    # without the header: the wall clock, as ISO 8601 with an offset
    assert bob["created_at"].startswith("20")
    assert bob["created_at"].endswith("+00:00")
    assert bob["created_at"] > "2024"

    bad = await client.post(
        "/posts", json={"title": "t", "body": "b"}, headers={**auth, "X-Sim-Time": "yesterday"}
    )
    assert bad.status_code == 400
    assert "X-Sim-Time" in bad.json()["detail"]


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["info"]["title"] == "sim-engine demo social API"
    paths = doc["paths"]
    expected = {
        "/health": {"get"},
        "/stats": {"get"},
        "/users": {"post"},
        "/auth/login": {"post"},
        "/users/{user_id}": {"get", "delete"},
        "/users/{user_id}/follow": {"post", "delete"},
        "/posts": {"get", "post"},
        "/posts/{post_id}": {"get", "put", "delete"},
        "/posts/{post_id}/comments": {"get", "post"},
        "/posts/{post_id}/reactions": {"post"},
        "/reactions/{reaction_id}": {"delete"},
        "/comments/{comment_id}": {"delete"},
        "/users/{user_id}/followers": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    schemas = doc["components"]["schemas"]
    for name in ("UserCreate", "UserOut", "PostCreate", "PostOut", "PostPage", "CommentOut"):
        assert name in schemas
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    post_op = paths["/posts"]["post"]
    assert post_op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PostOut"
    )


async def test_reactions_one_per_user_and_post(client: httpx.AsyncClient) -> None:
    a_id, alice = await user_with_auth(client, "alice")
    _, bob = await user_with_auth(client, "bob")
    post = await make_post(client, alice)
    url = f"/posts/{post['id']}/reactions"
    first = await client.post(url, json={"kind": "laugh"}, headers=bob)
    assert first.status_code == 201 and first.json()["kind"] == "laugh"
    again = await client.post(url, json={"kind": "wow"}, headers=bob)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["kind"] == "wow"
    assert (await client.post(url, json={"kind": "meh"}, headers=bob)).status_code == 422
    assert (await client.post(url, json={})).status_code == 401
    assert (await client.post("/posts/999/reactions", json={}, headers=bob)).status_code == 404
    assert (await client.get(f"/posts/{post['id']}")).json()["reaction_count"] == 1
    rid = first.json()["id"]
    assert (await client.delete(f"/reactions/{rid}", headers=alice)).status_code == 403
    assert (await client.delete(f"/reactions/{rid}", headers=bob)).status_code == 204
    assert (await client.delete(f"/reactions/{rid}", headers=bob)).status_code == 404
    assert (await client.get("/stats")).json()["reactions"] == 0
    assert a_id


async def test_followers_counts_and_popular_sort(client: httpx.AsyncClient) -> None:
    a_id, alice = await user_with_auth(client, "alice")
    b_id, bob = await user_with_auth(client, "bob")
    _, carol = await user_with_auth(client, "carol")
    old = await make_post(client, alice, "old")
    await make_post(client, alice, "mid")
    new = await make_post(client, bob, "new")
    await client.post(f"/users/{a_id}/follow", headers=bob)
    await client.post(f"/users/{a_id}/follow", headers=carol, params={})
    comment = await client.post(f"/posts/{old['id']}/comments", json={"body": "c"}, headers=bob)
    await client.get(f"/posts/{old['id']}")
    await client.get(f"/posts/{old['id']}")
    followers = (await client.get(f"/users/{a_id}/followers")).json()
    assert followers["total"] == 2
    assert {f["follower_id"] for f in followers["items"]} == {b_id, b_id + 1}
    assert (await client.get("/users/999/followers")).status_code == 404
    newest = (await client.get("/posts")).json()["items"]
    assert [p["title"] for p in newest] == ["new", "mid", "old"]
    by_title = {p["title"]: p for p in newest}
    assert by_title["old"]["author_followers"] == 2 and by_title["old"]["author_posts"] == 2
    assert by_title["old"]["comment_count"] == 1 and by_title["new"]["author_followers"] == 0
    popular = (await client.get("/posts", params={"sort": "popular"})).json()["items"]
    assert [p["title"] for p in popular] == ["old", "new", "mid"]  # 2 views, then newest first
    assert (await client.get("/posts", params={"sort": "best"})).status_code == 422
    cid = comment.json()["id"]
    assert (await client.delete(f"/comments/{cid}", headers=alice)).status_code == 403
    assert (await client.delete(f"/comments/{cid}", headers=bob)).status_code == 204
    assert (await client.delete(f"/comments/{cid}", headers=bob)).status_code == 404
    assert new["author_id"] == b_id


async def test_apps_are_isolated() -> None:
    app1, app2 = create_app(), create_app()
    t1 = httpx.ASGITransport(app=app1)
    t2 = httpx.ASGITransport(app=app2)
    async with (
        httpx.AsyncClient(transport=t1, base_url="http://demo") as c1,
        httpx.AsyncClient(transport=t2, base_url="http://demo") as c2,
    ):
        await signup(c1, "alice")
        assert (await c1.get("/stats")).json()["users"] == 1
        assert (await c2.get("/stats")).json()["users"] == 0


async def test_file_database_persists_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite3"
    app = create_app(str(db))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://demo"
    ) as c:
        await signup(c, "alice")
    app.state.store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT username FROM users").fetchall() == [("alice",)]
    conn.close()
    # re-opening an existing database works and keeps the data
    app2 = create_app(str(db))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app2), base_url="http://demo"
    ) as c:
        assert (await c.get("/stats")).json()["users"] == 1
    app2.state.store.close()


# ---------------------------------------------------------------------------------------
# subprocess launcher
# ---------------------------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    """True if a new server could listen on the port (TIME_WAIT leftovers are fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        sock.listen()
        return True


def test_demo_server_subprocess() -> None:
    srv = DemoServer()
    with srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}"
        assert srv.running
        db_path = srv.db_path
        assert db_path is not None
        with urllib.request.urlopen(f"{srv.base_url}/health", timeout=5) as resp:
            assert resp.status == 200
            assert resp.read() == b'{"status":"ok"}'
        created = httpx.post(
            f"{srv.base_url}/users",
            json={"username": "real", "email": "real@example.org", "password": "pw"},
            timeout=5,
        )
        assert created.status_code == 201
        assert Path(db_path).exists()
        proc = srv.process
        assert proc is not None
    assert proc.poll() is not None  # process ended
    assert not srv.running
    assert _port_is_free(srv.port)
    assert not Path(db_path).exists()  # temporary database removed
    srv.stop()  # idempotent


def test_demo_server_fails_cleanly_when_port_taken() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        srv = DemoServer(port=port, startup_timeout=20)
        with pytest.raises(DemoServerError, match="exited with code"):
            srv.start()
        assert not srv.running
