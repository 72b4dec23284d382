"""Tests of the structured logs (``observe.logs``) and of redaction (``observe.redact``)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers import read_jsonl
from sim_engine import ActionRecord, ActionRequest, Outcome, Simulation, UserRecord
from sim_engine.demo import create_app
from sim_engine.engine.clock import FastForwardClock
from sim_engine.model.population import password_for
from sim_engine.model.records import DaySnapshot, LifecycleRecord
from sim_engine.model.scenario import default_scenario
from sim_engine.observe.logs import (
    LOG_FILE,
    JsonFormatter,
    JsonLogSink,
    LogAddon,
    RedactFilter,
    action_level,
    configure_logging,
    remove_logging,
)
from sim_engine.observe.redact import MASK, is_secret_key, redact, redact_text
from sim_engine.runs.targets import bind_target
from sim_engine.targets.inprocess import AsgiTransport

BUSY = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc).timestamp()
ACTION_FIELDS = {
    "ts",
    "level",
    "event",
    "sim_time",
    "user_id",
    "persona",
    "action",
    "endpoint",
    "status",
    "latency_ms",
    "retries",
    "skipped",
    "error",
}


def action(**changes: Any) -> ActionRecord:
    values: dict[str, Any] = {
        "sim_time": "2026-03-02T15:00:00.000+01:00",
        "sim_ts": BUSY,
        "user_id": 4,
        "persona": "lurker",
        "state": "working",
        "action": "browse_feed",
        "status": 200,
        "ok": True,
        "latency_ms": 2.5,
        "endpoint": "GET /posts",
        "session_id": 3,
    }
    values.update(changes)
    return ActionRecord(**values)


# -- redact -------------------------------------------------------------------------------


def test_redact_masks_secret_keys_in_nested_structures() -> None:
    value = {
        "username": "ann",
        "Password": "hunter2",
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k1", "Set-Cookie": "s=1"},
        "items": [{"token": "t0k3n", "n": 1}, ("api_key", {"client_secret": "cs"})],
        "access_token": "at",
        "refresh-token": "rt",
        "token_count": 3,
        "secret": None,
    }
    out = redact(value)
    assert out["username"] == "ann" and out["Password"] == MASK
    assert out["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "Set-Cookie": MASK}
    assert out["items"][0] == {"token": MASK, "n": 1}
    assert out["items"][1] == ("api_key", {"client_secret": MASK})
    assert out["access_token"] == MASK and out["refresh-token"] == MASK
    assert out["token_count"] == 3 and out["secret"] is None
    assert value["Password"] == "hunter2"  # the input is left alone
    assert redact(42) == 42 and redact(None) is None
    assert is_secret_key("PASSWORD") and is_secret_key("x-auth-token") and not is_secret_key(7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.abc-123_x", "Authorization: Bearer ***"),
        ("authorization: bearer abc", "authorization: bearer ***"),
        ("Token 9f8e7d6c5b4a", "Token ***"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic ***"),
        ("Token expired", "Token expired"),
        ("invalid token provided", "invalid token provided"),
        ("GET /feed?token=3f9a8b7c6d5e4f30&limit=20", "GET /feed?token=***&limit=20"),
        ("/x?access_token=abc.def&api_key=K1#frag", "/x?access_token=***&api_key=***#frag"),
        ("password=hunter2 user=ann", "password=*** user=ann"),
        (
            'HTTP 422: {"username":"ann","password":"hunter2","token":"t"}',
            'HTTP 422: {"username":"ann","password":"***","token":"***"}',
        ),
        ("HTTP 500: internal error", "HTTP 500: internal error"),
        ('HTTP 422: {"user":"ann","password":"hunt', 'HTTP 422: {"user":"ann","password":"***'),
        (
            'HTTP 422: {"detail":[{"loc":["body","password"],"msg":"too short","input":"abc"}]}',
            'HTTP 422: {"detail":[{"loc":["body","password"],"msg":"too short","input":"***"}]}',
        ),
        (
            'HTTP 422: {"detail":[{"loc":["body","username"],"msg":"taken","input":"ann"}]}',
            'HTTP 422: {"detail":[{"loc":["body","username"],"msg":"taken","input":"ann"}]}',
        ),
    ],
)
def test_redact_masks_credentials_in_strings(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact([text]) == [expected]


# -- the sink -----------------------------------------------------------------------------


def test_log_lines_are_json_with_the_fields(tmp_path: Path) -> None:
    sink = JsonLogSink(tmp_path, actions="all")  # a directory: DIR/log.jsonl
    assert sink.path == tmp_path / LOG_FILE
    sink.emit(action())
    sink.emit(action(status=429, ok=False, error="HTTP 429", retries=2, action="create_post"))
    sink.emit(action(status=0, ok=False, error="timeout after 10 s", latency_ms=10000.0))
    sink.emit(action(status=0, ok=False, skipped=True, error="circuit open", latency_ms=0.0))
    sink.emit(
        LifecycleRecord(
            "2026-03-02T00:00:00.000+01:00", BUSY, 4, "state", "NEW", "ACTIVE", "a week old"
        )
    )
    sink.emit(
        UserRecord(
            "2026-03-02T15:00:00.000+01:00",
            BUSY,
            4,
            "lurker",
            "Ann Lee",
            "ann@example.test",
            "Europe/Paris",
            "AL",
            None,
            17,
        )
    )
    sink.emit(DaySnapshot(BUSY - 86400, BUSY, 10, {"NEW": 10}, {"DAILY": 10}, {"NEW": 0.5}))
    sink.close()
    sink.close()  # idempotent
    lines = read_jsonl(tmp_path / LOG_FILE)
    assert [e["event"] for e in lines] == [
        "action", "action", "action", "action", "lifecycle", "user_joined", "day",
    ]  # fmt: skip
    for entry in lines[:4]:
        assert set(entry) >= ACTION_FIELDS
        assert entry["sim_time"] == "2026-03-02T15:00:00.000+01:00"
        datetime.fromisoformat(entry["ts"])
    ok, limited, timeout, skipped = lines[:4]
    assert ok["level"] == "info" and ok["status"] == 200 and ok["latency_ms"] == 2.5
    assert ok["endpoint"] == "GET /posts" and ok["user_id"] == 4 and ok["persona"] == "lurker"
    assert ok["retries"] == 0 and ok["skipped"] is False and ok["error"] is None
    assert limited["level"] == "warning" and limited["retries"] == 2
    assert timeout["level"] == "error"  # no response at all
    assert skipped["level"] == "warning" and skipped["skipped"] is True
    life = lines[4]
    assert (life["from"], life["to"], life["level"]) == ("NEW", "ACTIVE", "info")
    assert "ann@example.test" not in (tmp_path / LOG_FILE).read_text()  # no personal data
    assert lines[6]["states"] == {"NEW": 10}


def test_actions_are_logged_when_they_fail_unless_asked(tmp_path: Path) -> None:
    """actions.jsonl holds every action: by default log.jsonl repeats only the failed
    ones (``output.log_actions: failed``); ``all`` and ``none`` are the other choices."""
    assert default_scenario().output.log_actions == "failed"
    records = [
        action(),
        action(status=500, ok=False, error="HTTP 500"),
        action(action="create_post"),
        action(status=0, ok=False, skipped=True, error="circuit open"),
    ]
    counts = {}
    for choice in ("failed", "all", "none"):
        path = tmp_path / f"{choice}.jsonl"
        sink = JsonLogSink(path) if choice == "failed" else JsonLogSink(path, actions=choice)
        for record in records:
            sink.emit(record)
        sink.close()
        lines = read_jsonl(tmp_path / f"{choice}.jsonl")
        counts[choice] = [(e["status"], e["ok"]) for e in lines]
    assert counts == {
        "failed": [(500, False), (0, False)],
        "all": [(200, True), (500, False), (200, True), (0, False)],
        "none": [],
    }
    with pytest.raises(ValueError, match="'some' is not one of failed, all, none"):
        JsonLogSink(tmp_path, actions="some")


def test_action_level() -> None:
    assert action_level(action()) == "info"
    assert action_level(action(status=500, ok=False)) == "warning"
    assert action_level(action(status=0, ok=False)) == "error"
    assert action_level(action(status=0, ok=False, skipped=True)) == "warning"


def test_sink_redacts_errors_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonLogSink(path)
    sink.emit(action(status=401, ok=False, error="HTTP 401: Bearer abcdef123456 rejected"))
    sink.close()
    sink = JsonLogSink(path)  # a resumed run continues the file
    sink.emit(action(error='HTTP 422: {"password":"p4ss"}', status=422, ok=False))
    sink.close()
    text = path.read_text()
    assert "abcdef123456" not in text and "p4ss" not in text
    lines = read_jsonl(path)
    assert lines[0]["error"] == "HTTP 401: Bearer *** rejected"
    assert lines[1]["error"] == 'HTTP 422: {"password":"***"}'


# -- stdlib logging -----------------------------------------------------------------------


def test_configure_logging_writes_redacted_json(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    log = logging.getLogger("sim_engine.test")
    handler = configure_logging(path)
    try:
        log.info("login for %s with Bearer %s", "ann", "s3cr3tt0k3n", extra={"password": "pw"})
        log.debug("not written at info level")
        try:
            raise ValueError("token=abc123def456 was refused")
        except ValueError:
            log.exception("request failed", extra={"headers": {"Authorization": "Basic xyz"}})
        logging.getLogger("other").warning("not ours")
    finally:
        remove_logging(handler)
    log.info("after removal")
    lines = read_jsonl(path)
    assert len(lines) == 2
    first, second = lines
    assert first["event"] == "login for ann with Bearer ***"
    assert first["level"] == "info" and first["logger"] == "sim_engine.test"
    assert first["password"] == MASK
    datetime.fromisoformat(first["ts"])
    assert second["level"] == "error" and second["event"] == "request failed"
    assert second["exception"] == "ValueError: token=*** was refused"
    assert second["headers"] == {"Authorization": MASK}
    text = path.read_text()
    for secret in ("s3cr3tt0k3n", 'pw"', "abc123def456", "xyz"):
        assert secret not in text, secret


def test_redact_filter_and_formatter_on_another_handler() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("sim_engine.test.filter")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.warning("sent Authorization: Bearer %s", "tok_very_secret")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "WARNING sent Authorization: Bearer ***\n"
    record = logging.LogRecord("x", logging.INFO, "f", 1, "api_key=%s", ("K9",), None)
    assert json.loads(JsonFormatter().format(record))["event"] == "api_key=***"


async def test_log_addon_logs_start_stop_and_failure(tmp_path: Path) -> None:
    scenario = default_scenario().with_overrides(**{"population.initial": 3})

    def handle(_req: ActionRequest) -> Outcome:
        return Outcome(500, False, 1.0, error="HTTP 500")

    from sim_engine.targets import MockTarget

    addon = LogAddon(tmp_path)
    sim = Simulation(scenario, MockTarget(handle), FastForwardClock(BUSY), addon.sinks(), 3600)
    sim.populate()
    await addon.start(sim)
    await sim.run()
    await addon.stop()
    addon.sink.close()
    addon = LogAddon(tmp_path)
    await addon.start(sim)
    try:
        raise RuntimeError("the target broke")
    except RuntimeError:
        await addon.stop()  # as the runner does, in a finally clause
    addon.sink.close()
    lines = read_jsonl(tmp_path / LOG_FILE)
    events = [e["event"] for e in lines]
    assert events[0] == "run started"
    assert lines[0]["users"] == 3 and lines[0]["speed"] == "max" and lines[0]["seed"] == 7
    stopped = lines[events.index("run stopped")]
    assert stopped["actions"] == sim.statistics().actions
    assert "action" in events
    assert events[-1] == "run failed"
    assert lines[-1]["level"] == "error"
    assert lines[-1]["exception"] == "RuntimeError: the target broke"
    assert not logging.getLogger("sim_engine").handlers  # detached


async def test_a_run_logs_no_password_or_token(tmp_path: Path) -> None:
    """The engine's sign-up and log-in payloads carry passwords, answers carry tokens,
    and an error may echo either: none reaches log.jsonl."""
    secret = "run-secret-for-the-test"
    tokens: set[str] = set()
    passwords: set[str] = set()

    class Spy:
        """The in-process demo API, but every 7th answer fails echoing the request, and
        every 4th sign-up fails echoing its body."""

        def __init__(self) -> None:
            self.inner = bind_target(default_scenario(), AsgiTransport(create_app()))
            self.n = 0
            self.signups = 0

        async def send(self, request: ActionRequest) -> Outcome:
            self.n += 1
            if request.payload and "password" in request.payload:
                passwords.add(request.payload["password"])
            outcome = await self.inner.send(request)
            if outcome.token:
                tokens.add(outcome.token)
            if self.n % 7 == 0 and request.action not in ("sign_up", "log_in"):
                echo = json.dumps({"token": request.token, "payload": request.payload})
                return dataclasses.replace(
                    outcome,
                    ok=False,
                    status=500,
                    error=f"HTTP 500: Authorization: Bearer {request.token} echo {echo}",
                )
            self.signups += request.action == "sign_up"
            if request.action == "sign_up" and self.signups % 4 == 0:
                body = json.dumps(request.payload)
                return Outcome(422, False, 1.0, error=f"HTTP 422: {body}")
            return outcome

        async def aclose(self) -> None:
            await self.inner.aclose()

    scenario = default_scenario().with_overrides(
        **{"population.initial": 40, "population.timezones": {"UTC": 1.0}, "seed": 9}
    )
    target = Spy()
    addon = LogAddon(tmp_path, actions="all")  # every action's line, to look for secrets in
    sim = Simulation(
        scenario, target, FastForwardClock(BUSY), addon.sinks(), duration_s=6 * 3600, secret=secret
    )
    sim.populate()
    await addon.start(sim)
    await sim.run()
    await addon.stop()
    addon.sink.close()
    await target.aclose()

    text = (tmp_path / LOG_FILE).read_text(encoding="utf-8")
    lines = read_jsonl(tmp_path / LOG_FILE)
    assert sum(e["event"] == "action" for e in lines) == sim.statistics().actions > 50
    assert len(tokens) > 10 and len(passwords) > 10
    assert passwords <= {password_for(secret, uid) for uid in range(1000)}  # the engine's
    for value in tokens | passwords | {secret}:
        assert value not in text, value
    echoed = [e for e in lines if e.get("error") and "echo" in e["error"]]
    assert echoed and all("Bearer ***" in e["error"] for e in echoed)
    assert any('"password": "***"' in e["error"] for e in lines if e.get("status") == 422)
