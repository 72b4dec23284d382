"""Tests of the safety features: the target guard, synthetic tagging, the kill switch,
``sim-engine cleanup`` and secrets kept out of every output.

Everything runs the real command line (``python -m sim_engine``) in a subprocess.
Request headers are observed with a small recording API (aiohttp, 127.0.0.1, a
free port) that answers like the demo social API; cleanup runs against a demo
server started by the test, holding data the run did not create.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

import helpers
from helpers import BUSY_START, read_jsonl, reap, sim_engine_popen
from sim_engine import __version__
from sim_engine.demo.app import verify_password
from sim_engine.demo.launcher import DemoServer
from sim_engine.engine.simulation import user_password
from sim_engine.model.population import user_from_dict
from sim_engine.model.scenario import default_scenario, validate_scenario
from sim_engine.runs.runstate import SafetyError, check_target_allowed

#: These runs talk to real servers: give the command more time than the usual minute.
sim_engine = functools.partial(helpers.sim_engine, timeout=90)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def wait_for_checkpoint(out: Path, proc: subprocess.Popen[str], limit_s: float = 20) -> None:
    """Wait until the run has taken its first checkpoint (it is then under way)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (out / "state.db").exists():
            try:
                db = sqlite3.connect(f"file:{out / 'state.db'}?mode=ro", uri=True)
                try:
                    if db.execute("SELECT 1 FROM meta WHERE key = 'engine'").fetchone():
                        return
                finally:
                    db.close()
            except sqlite3.Error:
                pass
        time.sleep(0.05)
    raise AssertionError("the run took no checkpoint")


# -- the target guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.0.0.1",
        "http://127.1.2.3:9/api",
        "http://127.255.255.254",
        "https://localhost:8443",
        "http://localhost",
        "http://[::1]:8000",
        "http://[::1]",
        "inprocess",
        "demo",
    ],
)
def test_loopback_targets_are_allowed(url: str) -> None:
    check_target_allowed(url, ())


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://example.com", "example.com"),
        ("https://example.com:8443/api", "example.com"),
        ("http://10.0.0.1:8000", "10.0.0.1"),
        ("http://192.168.1.1", "192.168.1.1"),
        ("http://172.16.0.5", "172.16.0.5"),
        ("http://0.0.0.0:8000", "0.0.0.0"),
        ("http://128.0.0.1", "128.0.0.1"),
        ("http://[::2]:80", "::2"),
        ("http://[::ffff:10.0.0.1]", "::ffff:10.0.0.1"),
        ("http://localhost.example.com", "localhost.example.com"),
        ("http://127.0.0.1.nip.io", "127.0.0.1.nip.io"),
    ],
)
def test_other_targets_are_refused(url: str, host: str) -> None:
    with pytest.raises(SafetyError) as info:
        check_target_allowed(url, ())
    message = str(info.value)
    assert "\n" not in message
    assert host in message and "allow_hosts" in message


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8000", "http://", "file:///x"])
def test_non_http_targets_are_refused(url: str) -> None:
    with pytest.raises(SafetyError):
        check_target_allowed(url, ())


def test_allow_hosts_admits_exactly_the_listed_hosts() -> None:
    check_target_allowed("https://staging.example.com/api", ("staging.example.com",))
    check_target_allowed("http://10.0.0.1:8000", ("10.0.0.1",))
    check_target_allowed("http://192.168.1.1", ("10.0.0.1", "192.168.1.1"))
    with pytest.raises(SafetyError):
        check_target_allowed("https://prod.example.com", ("staging.example.com",))
    with pytest.raises(SafetyError):
        check_target_allowed("http://example.com", ("staging.example.com",))


def test_cli_refuses_a_remote_target_at_once_and_does_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    started = time.monotonic()
    proc = sim_engine("run", "--target", "http://example.com", "--out", str(out))
    took = time.monotonic() - started
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "example.com" in lines[0] and "allow_hosts" in lines[0]
    assert took < 15
    assert not (out / "state.db").exists()
    assert not out.exists() or not any(out.iterdir())


def _non_loopback_ip() -> str | None:
    """An address of this machine outside 127.0.0.0/8, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet is sent for UDP connect
            ip = sock.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


# -- a recording API ---------------------------------------------------------------------------


class RecordingApi:
    """A tiny API answering like the demo social API, recording every request's headers."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self._users: dict[str, int] = {}
        self._posts: dict[int, int] = {}  # post id -> author id
        self._ids = itertools.count(1)
        self._post_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            body = await request.text()
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "body": json.loads(body) if body.startswith("{") else None,
                }
            )
            response: web.StreamResponse = await handler(request)
            return response

        def me(request: web.Request) -> int | None:
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            return int(token.split("-")[1]) if token in self.tokens else None

        async def root(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def sign_up(request: web.Request) -> web.Response:
            data = await request.json()
            if data["username"] in self._users:
                return web.json_response({"detail": "taken"}, status=409)
            user_id = next(self._ids)
            self._users[data["username"]] = user_id
            return web.json_response({"id": user_id, "username": data["username"]}, status=201)

        async def log_in(request: web.Request) -> web.Response:
            data = await request.json()
            user_id = self._users.get(data["username"])
            if user_id is None:
                return web.json_response({"detail": "no"}, status=401)
            token = f"tok-{user_id}-{secrets.token_hex(12)}"
            self.tokens.add(token)
            return web.json_response({"token": token, "user_id": user_id})

        async def list_posts(request: web.Request) -> web.Response:
            limit = int(request.query.get("limit", 20))
            offset = int(request.query.get("offset", 0))
            author = request.query.get("author_id")
            ids = sorted(
                (p for p, a in self._posts.items() if author is None or a == int(author)),
                reverse=True,
            )
            page = [{"id": p, "author_id": self._posts[p]} for p in ids[offset : offset + limit]]
            return web.json_response(
                {"items": page, "total": len(ids), "limit": limit, "offset": offset}
            )

        async def create_post(request: web.Request) -> web.Response:
            user_id = me(request)
            if user_id is None:
                return web.json_response({"detail": "auth"}, status=401)
            post_id = next(self._post_ids)
            self._posts[post_id] = user_id
            return web.json_response({"id": post_id, "author_id": user_id}, status=201)

        async def one_post(request: web.Request) -> web.Response:
            post_id = int(request.match_info["post_id"])
            if post_id not in self._posts:
                return web.json_response({"detail": "gone"}, status=404)
            if request.method == "GET":
                return web.json_response({"id": post_id, "view_count": 1})
            if me(request) != self._posts[post_id]:
                return web.json_response({"detail": "not yours"}, status=403)
            if request.method == "DELETE":
                del self._posts[post_id]
                return web.Response(status=204)
            return web.json_response({"id": post_id})

        async def delete_user(request: web.Request) -> web.Response:
            return web.Response(status=204)

        app = web.Application(middlewares=[record])
        app.router.add_get("/", root)
        app.router.add_post("/users", sign_up)
        app.router.add_post("/auth/login", log_in)
        app.router.add_get("/posts", list_posts)
        app.router.add_post("/posts", create_post)
        app.router.add_route("*", "/posts/{post_id}", one_post)
        app.router.add_delete("/users/{user_id}", delete_user)
        return app

    def __enter__(self) -> RecordingApi:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(self._app())
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, 0)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def api() -> Iterator[RecordingApi]:
    with RecordingApi() as server:
        yield server


def test_cli_refusal_sends_nothing_to_a_real_non_loopback_address(tmp_path: Path) -> None:
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no address outside 127.0.0.0/8")
    with RecordingApi("0.0.0.0") as server:
        url = f"http://{ip}:{server.port}"
        with urllib.request.urlopen(url + "/", timeout=5) as resp:  # reachable indeed
            assert resp.status == 200
        server.requests.clear()
        out = tmp_path / "run"
        proc = sim_engine("run", "--target", url, "--duration", "1h", "--out", str(out))
        assert proc.returncode == 2, proc.stderr
        assert ip in proc.stderr and "allow_hosts" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr
        time.sleep(0.2)
        assert server.requests == []
        assert not (out / "state.db").exists()

        # ...and listing the host under allow_hosts admits it
        scenario = write_yaml(tmp_path / "allow.yaml", {"safety": {"allow_hosts": [ip]}})
        proc = sim_engine(
            "run",
            *("--scenario", str(scenario), "--target", url, "--speed", "max"),
            *("--duration", "2h", "--users", "5", "--start", BUSY_START),
            *("--out", str(tmp_path / "allowed"), "-q"),
        )
        assert proc.returncode == 0, proc.stderr
        assert any(r["path"] == "/users" for r in server.requests)


# -- synthetic tagging -------------------------------------------------------------------------


def _tagged_run(
    api: RecordingApi, tmp_path: Path, safety: dict[str, Any], domain: str | None
) -> None:
    data: dict[str, Any] = {"safety": safety}
    if domain is not None:
        data["population"] = {"email_domain": domain}
    scenario = write_yaml(tmp_path / "tagged.yaml", data)
    proc = sim_engine(
        "run",
        *("--scenario", str(scenario), "--target", api.url, "--speed", "max"),
        *("--duration", "12h", "--users", "20", "--seed", "4", "--start", BUSY_START),
        *("--out", str(tmp_path / "run"), "-q"),
    )
    assert proc.returncode == 0, proc.stderr


def test_every_request_carries_the_configured_tags(api: RecordingApi, tmp_path: Path) -> None:
    safety = {
        "synthetic_header": "X-Load-Test",
        "synthetic_value": "sim-42",
        "user_agent": "acme-traffic/9.9 (+https://acme.test/bots)",
    }
    _tagged_run(api, tmp_path, safety, "synthetic.invalid")
    signups = [r for r in api.requests if r["method"] == "POST" and r["path"] == "/users"]
    assert len(signups) >= 8
    assert {r["path"] for r in api.requests} >= {"/", "/users", "/auth/login", "/posts"}
    for request in api.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers.get("x-load-test") == "sim-42", request
        assert headers.get("user-agent") == safety["user_agent"], request
        assert "x-synthetic" not in headers
    for request in signups:
        assert request["body"]["email"].endswith("@synthetic.invalid"), request["body"]
    users = read_jsonl(tmp_path / "run" / "users.jsonl")
    assert users and all(u["email"].endswith("@synthetic.invalid") for u in users)


def test_default_tags_are_x_synthetic_and_a_versioned_user_agent(
    api: RecordingApi, tmp_path: Path
) -> None:
    _tagged_run(api, tmp_path, {}, None)
    signups = [r for r in api.requests if r["method"] == "POST" and r["path"] == "/users"]
    assert signups
    for request in api.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers.get("x-synthetic") == "true", request
        assert headers.get("user-agent") == f"sim-engine/{__version__}", request
    domain = default_scenario().population.email_domain
    assert all(r["body"]["email"].endswith("@" + domain) for r in signups)


# -- the kill switch ----------------------------------------------------------------------------


def test_disabled_scenario_runs_nothing(api: RecordingApi, tmp_path: Path) -> None:
    scenario = write_yaml(tmp_path / "off.yaml", {"safety": {"enabled": False}})
    out = tmp_path / "run"
    proc = sim_engine(
        "run",
        "--scenario",
        str(scenario),
        "--target",
        api.url,
        "--duration",
        "1h",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "kill switch" in proc.stdout and "enabled" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert api.requests == []
    assert not (out / "state.db").exists()


def _stop_mid_run(
    tmp_path: Path, stop: Any, scenario: Path | None = None
) -> tuple[dict[str, Any], float]:
    out = tmp_path / "run"
    args = ["--target", "inprocess", "--speed", "60", "--duration", "1d", "--users", "20"]
    if scenario is not None:
        args += ["--scenario", str(scenario)]
    proc = sim_engine_popen("run", *args, "--start", BUSY_START, "--out", str(out), "-q")
    try:
        wait_for_checkpoint(out, proc)
        time.sleep(1.0)
        assert proc.poll() is None
        sent = time.monotonic()
        stop(out)
        stdout, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        reap(proc)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "Interrupted" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["interrupted"] is True
    assert metrics["run"]["simulated_seconds"] < 3 * 3600  # a simulated day would take 24 min
    return metrics, took


def test_kill_command_stops_a_running_run_at_once(tmp_path: Path) -> None:
    def kill(out: Path) -> None:
        proc = sim_engine("kill", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "KILL" in proc.stdout

    metrics, took = _stop_mid_run(tmp_path, kill)
    assert took < 3, took
    assert "kill file" in metrics["run"]["stopped_by"]
    assert "KILL" in metrics["run"]["stopped_by"]


def test_kill_command_needs_a_run_directory(tmp_path: Path) -> None:
    proc = sim_engine("kill", str(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "state.db" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_disabling_the_scenario_file_mid_run_stops_it(tmp_path: Path) -> None:
    scenario = write_yaml(tmp_path / "live.yaml", {"safety": {"enabled": True}})

    def disable(_out: Path) -> None:
        write_yaml(scenario, {"safety": {"enabled": False}})
        later = time.time() + 2
        os.utime(scenario, (later, later))  # a different mtime even on coarse file systems

    metrics, took = _stop_mid_run(tmp_path, disable, scenario)
    assert took < 3, took
    assert "safety.enabled" in metrics["run"]["stopped_by"]


# -- cleanup ------------------------------------------------------------------------------------


def _http(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _demo_counts(db_path: Path) -> tuple[set[int], set[int]]:
    db = sqlite3.connect(db_path)
    try:
        users = {row[0] for row in db.execute("SELECT id FROM users")}
        posts = {row[0] for row in db.execute("SELECT id FROM posts")}
    finally:
        db.close()
    return users, posts


def test_cleanup_deletes_what_the_run_created_and_nothing_else(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.db"
    out = tmp_path / "run"
    with DemoServer(db_path=str(db_path)) as server:
        url = server.base_url
        human = _http(
            url,
            "POST",
            "/users",
            {"username": "real.person", "email": "real.person@example.org", "password": "pw-1"},
        )
        token = _http(url, "POST", "/auth/login", {"username": "real.person", "password": "pw-1"})
        post = _http(url, "POST", "/posts", {"title": "mine", "body": "hands off"}, token["token"])

        # Busy (helpers.busy_overrides): nobody quits, so the run's users and posts are
        # all still there for cleanup to delete.
        busy = helpers.busy_scenario_file(tmp_path / "busy.yaml")
        proc = sim_engine(
            "run",
            *("--target", url, "--speed", "max", "--duration", "1d", "--users", "40"),
            *("--seed", "8", "--start", BUSY_START, "--out", str(out), "-q"),
            *("--scenario", str(busy)),
        )
        assert proc.returncode == 0, proc.stderr
        users, posts = _demo_counts(db_path)
        run_users, run_posts = users - {human["id"]}, posts - {post["id"]}
        assert len(run_users) >= 30 and len(run_posts) >= 10

        dry = sim_engine("cleanup", str(out), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        match = re.search(r"would delete .*?(\d+) own_posts\b.* (\d+) users", dry.stdout)
        assert match, dry.stdout
        assert (int(match[1]), int(match[2])) == (len(run_posts), len(run_users))
        assert _demo_counts(db_path) == (users, posts)  # a dry run deletes nothing

        done = sim_engine("cleanup", str(out))
        assert done.returncode == 0, done.stderr
        match = re.search(r"deleted .*?(\d+) own_posts\b.* (\d+) users", done.stdout)
        assert match, done.stdout
        assert (int(match[1]), int(match[2])) == (len(run_posts), len(run_users))
        assert _demo_counts(db_path) == ({human["id"]}, {post["id"]})
        # the person who was there before the run still has their account and post
        again = _http(url, "POST", "/auth/login", {"username": "real.person", "password": "pw-1"})
        assert again["user_id"] == human["id"]
        assert _http(url, "GET", f"/posts/{post['id']}")["body"] == "hands off"

        second = sim_engine("cleanup", str(out))
        assert second.returncode == 0, second.stderr
        assert "deleted 0 users" in second.stdout
        assert _demo_counts(db_path) == ({human["id"]}, {post["id"]})


def test_cleanup_of_a_directory_without_a_run_fails_cleanly(tmp_path: Path) -> None:
    proc = sim_engine("cleanup", str(tmp_path))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- secrets never reach an output ------------------------------------------------------------


def test_no_password_or_token_in_any_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    founder_password = "Founder-Pa55word-" + secrets.token_hex(6)
    # Busy (helpers.busy_overrides): nobody quits, so every signed-up user is in state.db.
    scenario = helpers.busy_scenario_file(
        tmp_path / "secrets.yaml",
        **{
            "population.founders": [
                {"name": "Maria Reyes", "persona": "chatterbox"},
                {"name": "Ada Quill", "password": founder_password},
            ]
        },
    )
    proc = sim_engine(
        "run",
        *("--scenario", str(scenario), "--speed", "max", "--duration", "1d", "--users", "30"),
        *("--seed", "6", "--start", BUSY_START, "--out", str(out), "-v", "--html"),
    )
    assert proc.returncode == 0, proc.stderr

    db = sqlite3.connect(out / "state.db")
    try:
        engine = json.loads(db.execute("SELECT value FROM meta WHERE key = 'engine'").fetchone()[0])
        users = [user_from_dict(json.loads(d)) for (d,) in db.execute("SELECT data FROM users")]
    finally:
        db.close()
    db = sqlite3.connect(out / "state.db")
    try:  # the full scenario (with founders' passwords) lives only in state.db
        saved = db.execute("SELECT value FROM meta WHERE key = 'scenario'").fetchone()[0]
    finally:
        db.close()
    run_scenario = validate_scenario(json.loads(saved))
    passwords = {user_password(u, engine["secret"], run_scenario) for u in users}
    assert sum(u.founder for u in users) == 2
    demo = sqlite3.connect(out / "demo.db")
    try:
        tokens = {row[0] for row in demo.execute("SELECT token FROM tokens")}
        hashes = dict(demo.execute("SELECT email, password_hash FROM users"))
    finally:
        demo.close()
    # the derived passwords are the real ones (else the grep below would prove nothing)
    signed_up = [u for u in users if u.remote_id is not None]
    assert len(signed_up) >= 20
    for user in signed_up:
        password = user_password(user, engine["secret"], run_scenario)
        assert verify_password(password, hashes[user.email]), user.email
    assert len(passwords) == len(users) >= 30 and len(tokens) >= 30
    secrets_ = passwords | tokens | {engine["secret"]}

    private = {"state.db", "demo.db"}
    outputs = {
        p.name: p.read_bytes().decode("utf-8", "replace")
        for p in out.rglob("*")
        if p.is_file() and p.name.split("-")[0] not in private
    }
    assert {"actions.jsonl", "users.jsonl", "metrics.json", "report.html"} <= set(outputs)
    outputs["<stdout>"] = proc.stdout
    outputs["<stderr>"] = proc.stderr
    assert proc.stdout.count("\n") > 100  # -v: one line per action
    for name, text in outputs.items():
        leaked = [s for s in secrets_ if s in text]  # scenario.json masks founder passwords
        assert not leaked, f"{name} holds {len(leaked)} secrets, e.g. {leaked[0][:6]}..."
    for name in ("log.jsonl", "report.html"):
        if name in outputs:
            assert not any(s in outputs[name] for s in secrets_)
