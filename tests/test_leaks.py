"""Secrets a target echoes never reach an output (issue 13.5).

A loopback API (aiohttp, a free 127.0.0.1 port) puts the password of a sign-up or
log-in and the token of any other request into its error bodies, in every shape
seen in the wild: a validation error's ``input``, ``password <pw>``, a bare word,
``Authorization: Bearer <tok>``, ``"token": "<tok>"``, ``token=<tok>``, and a token
cut short by the 120-byte excerpt. A real ``sim-engine run -v --html`` runs
against it; none of the secrets it handed out or was sent may appear in any file
of the run directory (``state.db``, which keeps tokens to resume by design, aside)
or on the console.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from aiohttp import web

import helpers
from helpers import BUSY_START, DEMO_LOGIN, DEMO_SIGNUP, Starter
from sim_engine.engine.executor import masked_error
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.redact import MASK, mask_known

sim_engine = functools.partial(helpers.sim_engine, timeout=90)


class EchoApi:
    """Sign-up, log-in and notes; a share of the answers echo the request's secrets."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.calls = itertools.count()
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}  # token -> username
        self.passwords: set[str] = set()
        self.echoed = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/users", self.sign_up)
        app.router.add_post("/auth/login", self.log_in)
        app.router.add_get("/notes", self.notes)
        app.router.add_post("/notes", self.notes)
        return app

    def _echo(self, status: int, text: str) -> web.Response:
        self.echoed += 1
        return web.Response(status=status, text=text)

    async def sign_up(self, request: web.Request) -> web.Response:
        body = await request.json()
        name, password = body["username"], body["password"]
        self.passwords.add(password)
        user = self.users.setdefault(name, {"password": password, "tries": 0})
        user["tries"] += 1
        if user["tries"] == 1 and len(self.users) % 2 == 0:
            shapes = [
                json.dumps({"detail": [{"loc": ["body", "password"], "input": password}]}),
                f"the password {password} is too weak",
                f"{password} rejected",
            ]
            return self._echo(422, shapes[len(self.users) // 2 % len(shapes)])
        user["id"] = next(self.ids)
        return web.json_response({"id": user["id"]}, status=201)

    async def log_in(self, request: web.Request) -> web.Response:
        body = await request.json()
        name, password = body["username"], body["password"]
        self.passwords.add(password)
        user = self.users.get(name)
        if user is None or "id" not in user:
            return web.json_response({"detail": "no such user"}, status=401)
        user["logins"] = user.get("logins", 0) + 1
        if user["logins"] == 1 and user["id"] % 3 == 0:
            return self._echo(401, f"wrong password for {name}: {password}")
        token = secrets.token_hex(16)
        self.tokens[token] = name
        return web.json_response({"token": token, "user_id": user["id"]})

    async def notes(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return web.json_response({"detail": "no token"}, status=401)
        call = next(self.calls)
        shapes = [
            f"Authorization: Bearer {token} rejected",
            json.dumps({"error": "expired", "token": token}),
            f"session {token} expired",
            f"token={token}&retry=no",
            "x" * 100 + f" {token}",  # the excerpt (120 bytes) cuts the token short
        ]
        if call % 2 == 0:
            return self._echo(500, shapes[call // 2 % len(shapes)])
        if request.method == "POST":
            return web.json_response({"id": next(self.ids)}, status=201)
        return web.json_response({"items": []})


def scenario(tmp_path: Path) -> Path:
    actions: dict[str, Any] = {
        "write_note": {
            "method": "POST",
            "path": "/notes",
            "body": {"text": "{{sentence}}"},
            "expect": [201],
        },
        "list_notes": {"path": "/notes", "expect": [200]},
    }
    weights = {"write_note": 1, "list_notes": 1}
    data = {
        "name": "leaks",
        "seed": 13,
        "population": {"initial": 8, "signups_per_day": 2},
        "lifecycle": {"enabled": False},
        "personas": {
            "member": {
                "share": 1,
                "sessions_per_day": 6,
                "actions": {"working": weights, "relaxing": weights},
            }
        },
        "api": {
            "auth": {"signup": DEMO_SIGNUP, "login": DEMO_LOGIN, "login_user_id_path": "user_id"},
            "actions": actions,
        },
    }
    path = tmp_path / "leaks.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def test_no_echoed_secret_reaches_any_output(serve: Starter, tmp_path: Path) -> None:
    api = EchoApi()
    url = await serve(api.app())
    out = tmp_path / "run"
    proc = await asyncio.to_thread(
        sim_engine,
        *("run", "--scenario", str(scenario(tmp_path)), "--target", url, "-v", "--html"),
        *("--speed", "max", "--duration", "1d", "--start", BUSY_START, "--out", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert api.echoed >= 20 and len(api.tokens) >= 5 and len(api.passwords) >= 8
    texts = {"console": proc.stdout + proc.stderr}
    for path in sorted(out.iterdir()):
        if path.is_file() and not path.name.startswith("state.db"):
            texts[path.name] = path.read_text("utf-8", errors="replace")
    assert {"actions.jsonl", "metrics.json", "report.html"} <= set(texts)
    leaks = [
        (name, secret[:8])
        for secret in [*api.tokens, *api.passwords]
        for name, text in texts.items()
        if secret in text or secret[:16] in text
    ]
    assert leaks == []
    errors = [json.loads(line).get("error") or "" for line in texts["actions.jsonl"].splitlines()]
    assert sum(MASK in error for error in errors) >= 20  # the echoes were there, masked


def test_mask_known_masks_values_and_cut_values() -> None:
    token = "a1b2c3d4e5f6a7b8"
    assert mask_known(f"session {token} expired", [token, None]) == "session *** expired"
    assert mask_known(f"HTTP 500: ... {token[:9]}…", [token]) == "HTTP 500: ... ***…"
    assert mask_known("id 12 is gone", ["12", ""]) == "id 12 is gone"  # too short to mask


def test_the_executor_masks_by_value_what_patterns_miss() -> None:
    user = SimUser(1, 0, 0.0, "Ann", "ann@example.com", ZoneInfo("UTC"), 1)
    user.token = "tok-0123456789"
    request = ActionRequest("log_in", 1, 0.0, "", payload={"username": "ann", "password": "pw-9x8"})
    error = "HTTP 401: pw-9x8 and tok-0123456789 and Bearer other-credential"
    masked = masked_error(error, user, request, Outcome(401, False, 1.0, error=error))
    assert masked == "HTTP 401: *** and *** and Bearer ***"


def test_metrics_expose_no_error_text() -> None:
    """``/metrics`` labels an error by its category only: no target text reaches it."""
    from prometheus_client import generate_latest

    from sim_engine.model.records import ActionRecord
    from sim_engine.observe.prometheus import PrometheusExporter

    token = "a1b2c3d4e5f6a7b8c9d0"
    exporter = PrometheusExporter(0)
    for status in (0, 401, 500):
        error = f"HTTP {status}: session {token} expired"
        exporter.emit(
            ActionRecord(
                "2024-05-15T18:00:00Z",
                0.0,
                1,
                "member",
                "working",
                "list_notes",
                status,
                False,
                1.0,
                error=error,
                endpoint="GET /notes",
            )
        )
    text = generate_latest(exporter.registry).decode()
    assert 'sim_engine_errors_total{category="http_5xx"} 1.0' in text
    assert token not in text
