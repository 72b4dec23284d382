"""A small forum API nobody here wrote the scenario for: members, threads and replies.

FastAPI, served by uvicorn on 127.0.0.1 (a free port) in a thread of the test.
Nothing in it looks like the demo API: sign-up bodies are wrapped in a
``member`` object, sessions come from ``POST /api/sessions`` and are sent in an
``X-Session-Key`` header, answers wrap their item (``{"thread": {...}}``) and
ids are ``uid`` / ``tid`` / ``rid``. Replies are children of threads: a thread
that still has replies cannot be deleted (409), nor a member who still owns a
thread or a reply (409), so only a cleanup that goes children first, members
last, can empty it (unless ``keeps_orphans``: a member may then leave what they own
behind, which nobody can delete any more). ``freeze_at`` (a number of threads) holds
every later request unanswered (a run killed with requests in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, Response


class Forum:
    """The forum's records, in memory (``snapshot()`` for before/after comparisons)."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.members: dict[int, dict[str, str]] = {}
        self.sessions: dict[str, int] = {}
        self.threads: dict[int, int] = {}  # thread id -> author
        self.replies: dict[int, tuple[int, int]] = {}  # reply id -> (thread, author)
        self.deletes: list[str] = []  # paths of the DELETE requests answered 204
        self.frozen = False
        self.freeze_at: int | None = None  # freeze once there are this many threads
        # a member who still owns threads or replies may leave, and they stay (as Kinto 26
        # keeps a deleted account's buckets); else leaving answers 409
        self.keeps_orphans = False

    def snapshot(self) -> tuple[dict[int, str], dict[int, int], dict[int, tuple[int, int]]]:
        """Every record: members (id -> handle), threads, replies."""
        members = {uid: m["handle"] for uid, m in self.members.items()}
        return members, dict(self.threads), dict(self.replies)

    def add_member(self, handle: str, secret: str) -> int:
        uid = next(self.ids)
        self.members[uid] = {"handle": handle, "secret": secret}
        return uid

    def me(self, key: str | None) -> int:
        if key is None or key not in self.sessions:
            raise HTTPException(401, "no session")
        return self.sessions[key]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def hold(request: Request, call_next: Any) -> Any:
            if self.freeze_at is not None and len(self.threads) >= self.freeze_at:
                self.frozen = True
            if not self.frozen:
                return await call_next(request)
            while self.frozen:  # held, never done: its client was killed meanwhile
                await asyncio.sleep(0.02)
            return Response(status_code=503)

        @app.get("/")
        def root() -> dict[str, str]:
            return {"forum": "ok"}

        @app.post("/api/members", status_code=201)
        def join(body: dict[str, Any]) -> dict[str, Any]:
            member = body["member"]
            if any(m["handle"] == member["handle"] for m in self.members.values()):
                raise HTTPException(409, "taken")
            return {"member": {"uid": self.add_member(member["handle"], member["secret"])}}

        @app.post("/api/sessions")
        def session(body: dict[str, Any]) -> dict[str, Any]:
            for uid, m in self.members.items():
                if (m["handle"], m["secret"]) == (body.get("handle"), body.get("secret")):
                    key = f"k{next(self.ids)}"
                    self.sessions[key] = uid
                    return {"session": {"key": key, "uid": uid}}
            raise HTTPException(401, "bad credentials")

        @app.get("/api/threads")
        def threads() -> dict[str, Any]:
            return {"threads": [{"tid": t, "by": a} for t, a in self.threads.items()]}

        @app.post("/api/threads", status_code=201)
        def start(body: dict[str, Any], x_session_key: str | None = Header(None)) -> Any:
            tid = next(self.ids)
            self.threads[tid] = self.me(x_session_key)
            return {"thread": {"tid": tid, "subject": body.get("subject")}}

        @app.post("/api/threads/{tid}/replies", status_code=201)
        def reply(tid: int, x_session_key: str | None = Header(None)) -> Any:
            me = self.me(x_session_key)
            if tid not in self.threads:
                raise HTTPException(404, "no such thread")
            rid = next(self.ids)
            self.replies[rid] = (tid, me)
            return {"reply": {"rid": rid, "tid": tid}}

        @app.delete("/api/threads/{tid}/replies/{rid}", status_code=204)
        def unreply(tid: int, rid: int, x_session_key: str | None = Header(None)) -> Response:
            me = self.me(x_session_key)
            if self.replies.get(rid, (None,))[0] != tid:
                raise HTTPException(404, "no such reply")
            if self.replies[rid][1] != me:
                raise HTTPException(403, "not yours")
            del self.replies[rid]
            return self._deleted(f"/api/threads/{tid}/replies/{rid}")

        @app.delete("/api/threads/{tid}", status_code=204)
        def drop(tid: int, x_session_key: str | None = Header(None)) -> Response:
            me = self.me(x_session_key)
            if tid not in self.threads:
                raise HTTPException(404, "no such thread")
            if self.threads[tid] != me:
                raise HTTPException(403, "not yours")
            if any(t == tid for t, _ in self.replies.values()):
                raise HTTPException(409, "the thread has replies")
            del self.threads[tid]
            return self._deleted(f"/api/threads/{tid}")

        @app.delete("/api/members/{uid}", status_code=204)
        def leave(uid: int, x_session_key: str | None = Header(None)) -> Response:
            if self.me(x_session_key) != uid:
                raise HTTPException(403, "not you")
            owns = uid in self.threads.values() or any(a == uid for _, a in self.replies.values())
            if owns and not self.keeps_orphans:
                raise HTTPException(409, "delete your threads and replies first")
            del self.members[uid]
            self.sessions = {k: u for k, u in self.sessions.items() if u != uid}
            return self._deleted(f"/api/members/{uid}")

        return app

    def _deleted(self, path: str) -> Response:
        self.deletes.append(path)
        return Response(status_code=204)


@contextlib.contextmanager
def serve(forum: Forum) -> Iterator[str]:
    """Serve the forum on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(forum.app(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the forum did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        forum.frozen = False
        server.should_exit = True
        thread.join(10)
        sock.close()
