"""The OpenAPI import on documents shaped like real third-party APIs (issue #12, "Why" 2 and 3).

Documents: ``tests/openapi_docs.py`` (a Conduit-style OpenAPI 3.0 document with token
auth under the ``Token`` prefix and wrapped bodies; a Kinto-style Swagger 2.0 document
with HTTP Basic, envelopes and operational endpoints). Swagger 2.0 is converted by
swagger2openapi as ``scripts/test-deps.sh`` installs it (``tools/swagger2openapi``); the
tests fail, never skip, when it is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import sim_engine
from openapi_docs import conduit, kinto
from sim_engine.api.openapi import (
    ImportOptions,
    OpenApiError,
    build_scenario,
    load_openapi,
    scenario_from_openapi,
)
from sim_engine.api.openapi.auth import documented_prefix
from sim_engine.api.openapi.swagger import CONVERTER_ENV, find_converter
from sim_engine.model.scenario import validate_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def converter() -> str:
    """swagger2openapi, as ``scripts/test-deps.sh`` installs it (the test installs nothing)."""
    found = find_converter()
    if found is None:
        pytest.fail("swagger2openapi is not installed: run `bash scripts/test-deps.sh`")
    return found


def _actions(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    actions: dict[str, dict[str, Any]] = scenario["api"]["actions"]
    return actions


# -- Swagger 2.0 ------------------------------------------------------------------------------


def test_swagger_2_is_converted_and_imported(converter: str, tmp_path: Path) -> None:
    path = tmp_path / "swagger.yaml"
    path.write_text(yaml.safe_dump(kinto()), encoding="utf-8")
    doc = load_openapi(str(path))
    assert doc["openapi"].startswith("3.0")
    result = build_scenario(doc, source=str(path))
    scenario = result.scenario
    validate_scenario(scenario)
    assert scenario["target"] == {"url": "http://127.0.0.1:8888"}  # host + schemes
    create = _actions(scenario)["create_bucket"]
    assert create["path"] == "/v1/buckets"  # basePath
    assert create["body"] == {"data": {}}  # the body parameter's envelope, nothing in it
    assert create["extract"] == [
        {"path": "data", "to": "memory.own_buckets", "fields": {"id": "id"}}
    ]
    # a Swagger 2.0 mapping given to build_scenario directly is converted too
    assert scenario_from_openapi(kinto())["api"]["actions"].keys() == _actions(scenario).keys()


def test_missing_converter_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONVERTER_ENV, str(tmp_path / "no-such-swagger2openapi"))
    with pytest.raises(OpenApiError) as info:
        build_scenario(kinto(), source="kinto.json")
    message = str(info.value)
    assert message.startswith("kinto.json: cannot run swagger2openapi") and "\n" not in message
    assert "npm install -g swagger2openapi" in message


def test_a_converter_failure_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "swagger2openapi"
    fake.write_text("#!/bin/sh\necho 'Error: bad things' >&2\necho '  at x (y.js:1)' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(CONVERTER_ENV, str(fake))
    with pytest.raises(OpenApiError) as info:
        build_scenario(kinto(), source="k.json")
    assert (
        str(info.value)
        == "k.json: swagger2openapi could not convert it (exit 3): Error: bad things"
    )


# -- auth -------------------------------------------------------------------------------------


def test_a_password_sign_up_without_scheme_or_token_is_basic_auth(converter: str) -> None:
    """Kinto declares no security scheme: its accounts (a password in a ``data`` envelope)
    log in with HTTP Basic. The account is named after the user, whose id is that name."""
    result = build_scenario(kinto())
    auth = result.scenario["api"]["auth"]
    assert auth == {
        "signup": {
            "method": "POST",
            "path": "/v1/accounts",
            "body": {"data": {"id": "{user.username}", "password": "{user.password}"}},
            "expect": [200, 201],
        },
        "scheme": "basic",
        "user_id_path": "data.id",
    }
    assert any("HTTP Basic is assumed" in note for note in result.header_notes)
    assert "POST /v1/accounts" not in {
        f"{a['method']} {a['path']}" for a in _actions(result.scenario).values()
    }


def test_undeclared_ids_of_open_objects_are_assumed_and_permissions_left_out(
    converter: str,
) -> None:
    result = build_scenario(kinto())
    actions = _actions(result.scenario)
    assert actions["get_buckets"]["extract"] == [
        {"path": "data[*]", "to": "memory.seen_buckets", "fields": {"id": "id"}}
    ]
    assert actions["get_bucket"]["path"] == "/v1/buckets/{bucket.id}"
    assert any("buckets items declare no id" in note for note in result.header_notes)
    bodies = json.dumps([a.get("body") for a in actions.values()])
    assert "permissions" not in bodies  # optional: who may do what is the owner's business
    assert actions["patch_bucket"]["body"] == {"data": {}}  # the envelope, even when empty


def test_authorization_api_key_with_token_login_is_token_auth() -> None:
    """Issue #12, Why 2: an ``apiKey`` scheme in the ``Authorization`` header plus a log-in
    returning a token became ``api_key: CHANGE-ME`` and the log-in was dropped."""
    result = build_scenario(conduit())
    auth = result.scenario["api"]["auth"]
    validate_scenario(result.scenario)
    assert auth["scheme"] == "token" and "prefix" not in auth  # "Token xxxxxx.yyy"
    assert "api_key" not in auth
    assert auth["login"]["path"] == "/api/users/login"
    assert auth["token_path"] == "user.token"
    assert any("'Authorization: Token TOKEN' (as documented)" in n for n in result.header_notes)
    assert result.report()[0].startswith("auth: token: Authorization: Token TOKEN")


def test_wrapped_sign_up_and_log_in_bodies_are_found() -> None:
    """Issue #12, Why 2: a sign-up whose fields are nested under a wrapper object was not
    recognised and became an action creating random accounts."""
    scenario = scenario_from_openapi(conduit())
    auth = scenario["api"]["auth"]
    assert auth["signup"]["path"] == "/api/users"
    assert auth["signup"]["body"] == {
        "user": {
            "username": "{user.username}",
            "email": "{user.email}",
            "password": "{user.password}",
        }
    }
    assert auth["login"]["body"] == {
        "user": {"email": "{user.email}", "password": "{user.password}"}
    }
    posts = [a["path"] for a in _actions(scenario).values() if a["method"] == "POST"]
    assert "/api/users" not in posts and "/api/users/login" not in posts


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("JWT", {"scheme": "token", "prefix": "JWT"}), ("Bearer", {"scheme": "bearer"}),
     ("Token", {"scheme": "token"})],
)  # fmt: skip
def test_auth_prefix_option_overrides_the_document(prefix: str, expected: dict[str, str]) -> None:
    auth = scenario_from_openapi(conduit(), options=ImportOptions(auth_prefix=prefix))["api"][
        "auth"
    ]
    assert {k: v for k, v in auth.items() if k in ("scheme", "prefix")} == expected


def test_undocumented_prefix_assumes_bearer_and_says_so() -> None:
    doc = conduit()
    del doc["components"]["securitySchemes"]["Token"]["description"]
    result = build_scenario(doc)
    assert result.scenario["api"]["auth"]["scheme"] == "bearer"
    assert any("Bearer assumed (set it with --auth-prefix)" in n for n in result.header_notes)


def test_token_in_another_header_is_header_auth() -> None:
    doc = conduit()
    doc["components"]["securitySchemes"]["Token"]["name"] = "X-Session"
    auth = scenario_from_openapi(doc)["api"]["auth"]
    assert (auth["scheme"], auth["header"], auth["token_path"]) == (
        "header",
        "X-Session",
        "user.token",
    )


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("must be in the 'Authorization' header :\n\n    Token xxxx.yy", "Token"),
        ("Send `Authorization: JWT <token>`", "JWT"),
        ("The Authorization header must be prefixed with 'Bearer '", "Bearer"),
        ("Use the Authorization header to pass the key", None),
        ("Api-Key {key}", "Api-Key"),
        ("Nothing about it.", None),
    ],
)  # fmt: skip
def test_documented_prefix(text: str, prefix: str | None) -> None:
    assert documented_prefix(text) == prefix


# -- what is left out -------------------------------------------------------------------------


_OPS = {
    "GET /", "GET /__heartbeat__", "GET /__lbheartbeat__", "GET /__version__", "GET /__api__",
    "GET /contribute.json", "POST /batch", "DELETE /__user_data__/{principal}",
}  # fmt: skip
_DESTRUCTIVE = {
    "POST /__flush__", "GET /permissions", "DELETE /accounts", "DELETE /buckets",
    "DELETE /buckets/{bucket_id}/collections",
    "DELETE /buckets/{bucket_id}/collections/{collection_id}/records",
}  # fmt: skip


def _labels(scenario: dict[str, Any]) -> set[str]:
    prefix = "/v1"
    return {
        f"{a['method']} {a['path'].removeprefix(prefix) or '/'}"
        for a in _actions(scenario).values()
    }


def test_destructive_and_operational_endpoints_are_left_out(converter: str) -> None:
    """Issue #12, Why 3: bulk DELETE on whole collections with weight 1.0 for writers, and
    heartbeat, version, health, metadata kept as user actions."""
    result = build_scenario(kinto())
    assert result.left_out["ops"] and set(result.left_out["ops"]) == _OPS
    assert set(result.left_out["destructive"]) == _DESTRUCTIVE
    kept = _labels(result.scenario)
    assert kept and not any("__" in label or label == "GET /" for label in kept)
    deletes = [a["path"] for a in _actions(result.scenario).values() if a["method"] == "DELETE"]
    assert deletes and all(path.endswith("}") for path in deletes)  # items only
    report = "\n".join(result.report())
    assert "left out: 6 destructive or admin" in report and "--include-destructive" in report
    assert "left out: 8 operational" in report and "--include-ops" in report


def test_include_flags_keep_them(converter: str) -> None:
    wide = build_scenario(kinto(), options=ImportOptions(include_destructive=True))
    assert "destructive" not in wide.left_out
    assert "DELETE /buckets" in _labels(wide.scenario)
    validate_scenario(wide.scenario)
    ops = build_scenario(kinto(), options=ImportOptions(include_ops=True))
    assert "ops" not in ops.left_out and "GET /__heartbeat__" in _labels(ops.scenario)


@pytest.mark.parametrize(
    ("path", "kept"),
    [("/api/", False), ("/api/v1", False), ("/api/status", False), ("/api/spec.yaml", False),
     ("/api/contents", True), ("/v2/api-docs", False), ("/api/me", True)],
)  # fmt: skip
def test_operational_endpoints_under_an_api_prefix(path: str, kept: bool) -> None:
    """``/api`` and ``/v1`` prefixes are not operational themselves (Jupyter's API is all
    under ``/api/``): what follows them is looked at."""
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            path: {"get": {"responses": {"200": {"description": "ok"}}}},
            "/other": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
    }
    labels = {f"{a['method']} {a['path']}" for a in _actions(scenario_from_openapi(doc)).values()}
    assert (f"GET {path}" in labels) is kept


def _ok(method: str) -> dict[str, Any]:
    return {method: {"responses": {"200": {"description": "ok"}}}}


def test_what_starts_server_processes_is_left_out_unless_asked_for() -> None:
    """Jupyter's unedited import kept ``POST /api/kernels``, ``/api/terminals`` and
    ``/api/sessions`` (which starts a kernel) as user actions: measured on Jupyter Server
    2.21, a day with ``--include-ops`` left 3 login shells running on the server (nothing
    the run could delete) and its kernel starts failed (500, 97.5% success); without them
    100% (402 actions), no process left. Reading those lists stays: it starts nothing."""
    paths: dict[str, Any] = {
        "/api/kernels": {**_ok("get"), **_ok("post")},
        "/api/kernels/{kernel_id}": {**_ok("get"), **_ok("delete")},
        "/api/kernels/{kernel_id}/restart": _ok("post"),
        "/api/terminals": {**_ok("get"), **_ok("post")},
        "/api/sessions": {**_ok("get"), **_ok("post")},
        "/api/contents/{path}": {**_ok("get"), **_ok("put")},
    }
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}
    result = build_scenario(doc)
    processes = {"POST /api/kernels", "DELETE /api/kernels/{kernel_id}", "POST /api/sessions",
                 "POST /api/kernels/{kernel_id}/restart", "POST /api/terminals"}  # fmt: skip
    assert set(result.left_out["processes"]) == processes
    assert {"GET /api/kernels", "GET /api/sessions", "GET /api/terminals"} <= _labels(
        result.scenario
    )
    assert "left out: 5 starting or stopping server processes" in "\n".join(result.report())
    kept = build_scenario(doc, options=ImportOptions(include_ops=True))
    starts = {"POST /api/kernels", "POST /api/sessions", "POST /api/terminals"}
    assert "processes" not in kept.left_out and starts <= _labels(kept.scenario)
    # sessions are only processes where the document starts processes: a log-in elsewhere
    del paths["/api/kernels"], paths["/api/kernels/{kernel_id}"]
    del paths["/api/kernels/{kernel_id}/restart"], paths["/api/terminals"]
    assert "processes" not in build_scenario(doc).left_out


def test_deleting_an_item_is_not_a_collection_delete() -> None:
    """``DELETE /profiles/{username}/follow`` (unfollow) and ``/articles/{slug}/favorite``
    end with a literal segment but act on one item: kept."""
    labels = {
        f"{a['method']} {a['path']}" for a in _actions(scenario_from_openapi(conduit())).values()
    }
    assert any(label.startswith("DELETE /api/profiles/") for label in labels)
    assert any(label.endswith("/favorite") and label.startswith("DELETE") for label in labels)


# -- the command line ---------------------------------------------------------------------------


def test_cli_init_prints_what_it_inferred_and_left_out(converter: str, tmp_path: Path) -> None:
    source = tmp_path / "kinto.json"
    source.write_text(json.dumps(kinto()), encoding="utf-8")
    out = tmp_path / "kinto.yaml"
    proc = sim_engine("init", "--from-openapi", str(source), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{out}: ") and "auth basic (sign-up POST /v1/accounts)" in lines[0]
    assert "  auth: basic: HTTP Basic with each user's name and password" in lines
    assert any(line.startswith("  left out: 6 destructive or admin (") for line in lines)
    assert any(line.startswith("  left out: 8 operational (") for line in lines)
    assert sim_engine("validate", str(out)).returncode == 0


def test_cli_auth_prefix(tmp_path: Path) -> None:
    source = tmp_path / "conduit.json"
    source.write_text(json.dumps(conduit()), encoding="utf-8")
    out = tmp_path / "c.yaml"
    proc = sim_engine("init", "--from-openapi", str(source), "-o", str(out), "--auth-prefix", "JWT")
    assert proc.returncode == 0, proc.stderr
    assert "  auth: token: Authorization: JWT TOKEN; token at user.token of /api/users/login" in (
        proc.stdout.splitlines()
    )
    assert yaml.safe_load(out.read_text("utf-8"))["api"]["auth"]["prefix"] == "JWT"
    bad = sim_engine("init", "--from-openapi", str(source), "-o", str(tmp_path / "d.yaml"),
                     "--auth-prefix", "two words")  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--auth-prefix: 'two words' is not one word" in bad.stderr


def _schemeless() -> dict[str, Any]:
    """Jupyter Server's shape: no security scheme, though every call needs a token."""
    items = {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": items}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {"/api/kernels": {"get": {"responses": ok}}},
    }


def test_api_key_option_sends_a_given_key() -> None:
    """Jupyter Server declares no security scheme but wants ``Authorization: token T``."""
    options = ImportOptions(api_key="token s3cret")
    result = build_scenario(_schemeless(), options=options)
    auth = result.scenario["api"]["auth"]
    assert auth == {"scheme": "api_key", "header": "Authorization", "api_key": "token s3cret"}
    validate_scenario(result.scenario)
    assert result.report()[0] == "auth: api_key: one API key in Authorization"
    doc = conduit()  # an apiKey scheme names the header; --api-key-header overrides it
    doc["components"]["securitySchemes"]["Token"]["name"] = "X-Key"
    assert scenario_from_openapi(doc, options=options)["api"]["auth"]["header"] == "X-Key"
    other = ImportOptions(api_key="k", api_key_header="X-Other")
    assert scenario_from_openapi(doc, options=other)["api"]["auth"]["header"] == "X-Other"


def test_cli_api_key_options(tmp_path: Path) -> None:
    source = tmp_path / "jupyter.json"
    source.write_text(json.dumps(_schemeless()), encoding="utf-8")
    out = tmp_path / "j.yaml"
    proc = sim_engine("init", "--from-openapi", str(source), "-o", str(out), "--api-key", "token t")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(out.read_text("utf-8"))["api"]["auth"]["api_key"] == "token t"
    for args, message in (
        (("--api-key", "a\nb"), "--api-key: empty, or holds a control character"),
        (("--api-key", "k", "--api-key-header", "X Bad"), "is not an HTTP header name"),
        (("--api-key-header", "X-K"), "--api-key-header needs --api-key"),
    ):
        bad = sim_engine(
            "init", "--from-openapi", str(source), "-o", str(tmp_path / "b.yaml"), *args
        )
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, args


def test_deleting_ones_own_account_is_the_engines_delete_account(converter: str) -> None:
    """Kinto's ``DELETE /accounts/{id}`` (operationId ``delete_account``) deletes the
    signed-up user: it becomes ``delete_account``, which churn clean-up and ``cleanup``
    use to delete users, never drawn by a persona (issue #12, must-have 1)."""
    result = build_scenario(kinto())
    actions = _actions(result.scenario)
    assert actions["delete_account"] == {
        "method": "DELETE",
        "path": "/v1/accounts/{user.id}",
        "expect": [200],
    }
    assert "delete_account_op" not in actions
    validate_scenario(result.scenario)
    for persona in result.scenario["personas"].values():
        for weights in persona["actions"].values():
            assert weights["delete_account"] == 0
