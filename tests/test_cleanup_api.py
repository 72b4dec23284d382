"""``sim-engine cleanup`` of a run against your own API (a scenario's ``api`` section).

A small notes API (aiohttp, 127.0.0.1, a free port) holds one account that
predates the run; a real ``sim-engine run`` signs users up and writes notes
through the scenario's ``api`` section; cleanup then goes through the same
section: each user logs in through ``auth`` and calls ``delete_account``, which
takes the user's notes along (``api.cleanup.with_account``). A section without
``delete_account`` cannot say how to delete what the run created: cleanup
sends nothing, says what stays and exits 1.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

import helpers
from helpers import BUSY_START, DEMO_LOGIN, DEMO_SIGNUP, Starter

#: These runs talk to a real server: give the command more time than the usual minute.
sim_engine = functools.partial(helpers.sim_engine, timeout=90)


class NotesApi:
    """Users (sign-up, log-in, delete your own account) and their notes, in memory."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.users: dict[int, dict[str, str]] = {}
        self.tokens: dict[str, int] = {}
        self.notes: dict[int, int] = {}  # note id -> author id
        self.log: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/users", self.sign_up)
        app.router.add_post("/auth/login", self.log_in)
        app.router.add_get("/notes", self.list_notes)
        app.router.add_post("/notes", self.write_note)
        app.router.add_delete("/users/{id}", self.delete_user)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.log.append((request.method, request.path))
        return await handler(request)  # type: ignore[no-any-return]

    def add_user(self, username: str, password: str) -> int:
        user_id = next(self.ids)
        self.users[user_id] = {"username": username, "password": password}
        return user_id

    def me(self, request: web.Request) -> int:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise web.HTTPUnauthorized(text='{"detail": "no token"}')
        return self.tokens[token]

    async def sign_up(self, request: web.Request) -> web.Response:
        body = await request.json()
        if any(u["username"] == body["username"] for u in self.users.values()):
            return web.json_response({"detail": "taken"}, status=409)
        return web.json_response(
            {"id": self.add_user(body["username"], body["password"])}, status=201
        )

    async def log_in(self, request: web.Request) -> web.Response:
        body = await request.json()
        for user_id, user in self.users.items():
            if (user["username"], user["password"]) == (body["username"], body["password"]):
                token = f"t{next(self.ids)}"
                self.tokens[token] = user_id
                return web.json_response({"token": token, "user_id": user_id})
        return web.json_response({"detail": "bad credentials"}, status=401)

    async def list_notes(self, request: web.Request) -> web.Response:
        me = self.me(request)
        items = [{"id": n} for n, author in self.notes.items() if author == me]
        return web.json_response({"items": items})

    async def write_note(self, request: web.Request) -> web.Response:
        note = next(self.ids)
        self.notes[note] = self.me(request)
        return web.json_response({"id": note}, status=201)

    async def delete_user(self, request: web.Request) -> web.Response:
        me, user_id = self.me(request), int(request.match_info["id"])
        if user_id not in self.users:
            return web.json_response({"detail": "no such user"}, status=404)
        if user_id != me:
            return web.json_response({"detail": "not yours"}, status=403)
        del self.users[user_id]
        self.notes = {n: a for n, a in self.notes.items() if a != user_id}
        self.tokens = {t: u for t, u in self.tokens.items() if u != user_id}
        return web.Response(status=204)


WEIGHTS = {"write_note": 2, "list_notes": 1}


def scenario(tmp_path: Path, with_delete_account: bool) -> Path:
    actions: dict[str, Any] = {
        "write_note": {
            "method": "POST",
            "path": "/notes",
            "body": {"text": "{{sentence}}"},
            "expect": [201],
            "extract": [{"path": "", "to": "memory.notes"}],
        },
        "list_notes": {"path": "/notes", "expect": [200]},
    }
    cleanup: dict[str, Any] = {}
    if with_delete_account:
        actions["delete_account"] = {
            "method": "DELETE",
            "path": "/users/{user.id}",
            "expect": [204],
        }
        cleanup = {"with_account": ["memory.notes"]}
    data = {
        "name": "notes",
        "seed": 5,
        "population": {"initial": 6, "signups_per_day": 1},
        "lifecycle": {"enabled": False},
        "personas": {
            "member": {
                "share": 1,
                "sessions_per_day": 6,
                "actions": {"working": WEIGHTS, "relaxing": WEIGHTS},
            }
        },
        "api": {
            "auth": {"signup": DEMO_SIGNUP, "login": DEMO_LOGIN, "login_user_id_path": "user_id"},
            "memory": {"notes": 50},
            "actions": actions,
            "cleanup": cleanup,
        },
    }
    path = tmp_path / "notes.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def run(api: NotesApi, serve: Starter, tmp_path: Path, with_delete_account: bool) -> Path:
    """Serve the API, keep a person's account and note on it, run a simulated day."""
    url = await serve(api.app())
    person = api.add_user("real.person", "pw-1")
    api.notes[next(api.ids)] = person
    out = tmp_path / "run"
    proc = await asyncio.to_thread(
        sim_engine,
        *("run", "--scenario", str(scenario(tmp_path, with_delete_account)), "--target", url),
        *("--speed", "max", "--duration", "1d", "--start", BUSY_START, "--out", str(out), "-q"),
    )
    assert proc.returncode == 0, proc.stderr
    assert len(api.users) >= 6 and len(api.notes) >= 10
    return out


async def test_cleanup_deletes_every_account_through_delete_account(
    serve: Starter, tmp_path: Path
) -> None:
    api = NotesApi()
    out = await run(api, serve, tmp_path, with_delete_account=True)
    person = next(u for u, v in api.users.items() if v["username"] == "real.person")
    run_users = set(api.users) - {person}
    before = (dict(api.users), dict(api.notes))

    notes = len(api.notes) - 1
    dry = await asyncio.to_thread(sim_engine, "cleanup", str(out), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    # the notes API has no deleting action for notes: its delete_account takes them along
    assert dry.stdout.splitlines() == [
        f"would delete 0 notes and {len(run_users)} users",
        f"  notes: 0 to delete, {notes} gone with their creator's account",
        f"  users: {len(run_users)} to delete",
    ]
    assert (api.users, api.notes) == before  # a dry run sends nothing
    assert not any(method == "DELETE" for method, _ in api.log)

    gone = min(run_users)  # a user someone else deleted meanwhile: it cannot log in
    del api.users[gone]
    gone_notes = sum(1 for author in api.notes.values() if author == gone)
    api.log.clear()
    done = await asyncio.to_thread(sim_engine, "cleanup", str(out))
    # not "already gone": nothing says what became of what it created (issue 12, Why 1)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"deleted 0 notes and {len(run_users) - 1} users",
        f"  notes: 0 deleted, {notes - gone_notes} gone with their creator's account",
        f"  users: {len(run_users) - 1} deleted",
        f"stays on the target: {gone_notes} notes (its creator could not log in)",
        "stays on the target: 1 users (could not log in)",
    ]
    # only the person who was there before the run is left, with their note, and
    # the notes of the user who cannot log in any more
    assert set(api.users) == {person}
    assert set(api.notes.values()) == {person, gone}
    deletes = sorted(path for method, path in api.log if method == "DELETE")
    assert deletes == sorted(f"/users/{u}" for u in run_users - {gone})

    api.log.clear()
    again = await asyncio.to_thread(sim_engine, "cleanup", str(out))
    assert again.returncode == 1, again.stderr
    # the deleted users left the state; the one that cannot log in is tried again
    assert again.stdout.splitlines()[-2:] == done.stdout.splitlines()[-2:]
    assert [call for call in api.log if call != ("GET", "/")] == [("POST", "/auth/login")]


async def test_cleanup_says_what_stays_when_the_description_cannot_delete(
    serve: Starter, tmp_path: Path
) -> None:
    api = NotesApi()
    out = await run(api, serve, tmp_path, with_delete_account=False)
    before = (dict(api.users), dict(api.notes))
    api.log.clear()
    notes = len(api.notes) - 1
    for extra in ((), ("--dry-run",)):
        proc = await asyncio.to_thread(sim_engine, "cleanup", str(out), *extra)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == ("would delete" if extra else "deleted") + " 0 notes and 0 users"
        assert lines[-2:] == [
            f"stays on the target: {notes} notes "
            "(no DELETE action forgets an item of memory.notes)",
            f"stays on the target: {len(api.users) - 1} users "
            "(the api section has no delete_account action)",
        ]
    assert api.log == []  # not a single request, not even the reachability check
    assert (api.users, api.notes) == before
