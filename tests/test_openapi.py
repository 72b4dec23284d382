"""Tests of the OpenAPI import (``sim_engine.api.openapi`` and ``sim-engine init``).

The main subject is the demo API's own OpenAPI document: the scenario generated
from it must validate, sign users up and log them in through the demo's
``/users`` and ``/auth/login``, and link ``/posts/{post_id}`` to the memory the
list and create operations fill. The end-to-end run needs the declarative
target (``sim_engine.targets.declarative``) and is skipped until it exists.
"""

from __future__ import annotations

import copy
import http.server
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helpers import read_jsonl, sim_engine
from sim_engine.api.openapi import (
    OpenApiError,
    OpenApiFetchError,
    build_scenario,
    import_openapi,
    load_openapi,
    render_scenario,
    resolve_refs,
    scenario_from_openapi,
    write_scenario,
)
from sim_engine.cli.main import cli
from sim_engine.demo import create_app
from sim_engine.model.scenario import load_scenario, validate_scenario

# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_doc() -> dict[str, Any]:
    doc: dict[str, Any] = create_app().openapi()
    return doc


@pytest.fixture
def demo_json(tmp_path: Path, demo_doc: dict[str, Any]) -> Path:
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(demo_doc), encoding="utf-8")
    return path


@pytest.fixture
def demo_yaml(tmp_path: Path, demo_doc: dict[str, Any]) -> Path:
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(demo_doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_scenario(demo_doc: dict[str, Any]) -> dict[str, Any]:
    return scenario_from_openapi(demo_doc)


def _doc(paths: dict[str, Any], version: str = "3.0.3", **extra: Any) -> dict[str, Any]:
    return {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def _ok(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


class _Server:
    """A tiny HTTP server on 127.0.0.1: ``routes`` maps a path to (status, headers, body)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = outer.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.routes = routes
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(demo_doc: dict[str, Any]) -> Iterator[_Server]:
    body = json.dumps(demo_doc).encode()
    srv = _Server(
        {
            "/openapi.json": (200, {"Content-Type": "application/json"}, body),
            "/openapi.yaml": (200, {}, yaml.safe_dump(demo_doc).encode()),
            "/away": (302, {"Location": "http://example.com/openapi.json"}, b""),
            "/here": (302, {"Location": "/openapi.json"}, b""),
        }
    )
    yield srv
    srv.close()


# -- the demo API's own document ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_demo_document_gives_a_valid_scenario(
    fmt: str, demo_json: Path, demo_yaml: Path, tmp_path: Path
) -> None:
    source = demo_json if fmt == "json" else demo_yaml
    result = build_scenario(load_openapi(str(source)), source=str(source))
    scenario = validate_scenario(result.scenario)
    assert scenario.api is not None
    assert len(scenario.api.actions) >= 10
    out = write_scenario(result, tmp_path / "s.yaml")
    loaded = load_scenario(out)
    assert loaded.api == scenario.api
    assert set(loaded.personas) == {"reader", "writer"}


def test_demo_auth_uses_sign_up_and_login(demo_scenario: dict[str, Any]) -> None:
    auth = validate_scenario(demo_scenario).api.auth  # type: ignore[union-attr]
    assert auth.effective_scheme == "bearer"
    assert auth.signup is not None and auth.login is not None
    assert (auth.signup.method, auth.signup.path) == ("POST", "/users")
    assert auth.signup.body["username"] == "{user.username}"
    assert auth.signup.body["email"] == "{user.email}"
    assert auth.signup.body["password"] == "{user.password}"
    assert auth.signup.body["name"] == "{user.name}"
    assert (auth.login.method, auth.login.path) == ("POST", "/auth/login")
    assert auth.login.body == {"username": "{user.username}", "password": "{user.password}"}
    assert auth.token_path == "token"
    assert auth.user_id_path == "id"
    assert auth.signup.expect == (201,)


def test_demo_posts_link_producers_to_consumers(demo_scenario: dict[str, Any]) -> None:
    api = validate_scenario(demo_scenario).api
    assert api is not None
    actions = api.actions
    listed = actions["list_posts"]
    assert (listed.method, listed.path) == ("GET", "/posts")
    assert (listed.extract[0].path, listed.extract[0].to, listed.extract[0].fields) == (
        "items[*]",
        "memory.seen_posts",
        {"id": "id"},
    )
    created = actions["create_post"]
    assert created.extract[0].to == "memory.own_posts"
    assert created.body["title"] == "{{title}}"
    assert created.body["body"] == "{{paragraph}}"
    assert created.expect == (201,)
    read = actions["get_post"]
    assert read.path == "/posts/{post.id}"
    assert read.pick == {"post": "memory.seen_posts"}
    for name in ("update_post", "delete_post"):
        assert actions[name].path == "/posts/{post.id}"
        assert actions[name].pick == {"post": "memory.own_posts"}
    assert actions["delete_post"].forget == "post"
    assert actions["update_post"].forget is None
    assert actions["create_comment"].pick == {"post": "memory.seen_posts"}
    assert actions["create_comment"].path == "/posts/{post.id}/comments"
    # users are learnt from the posts' author ids, then followed
    assert ("items[*]", "memory.seen_users", {"id": "author_id"}) in [
        (e.path, e.to, e.fields) for e in listed.extract
    ]
    assert actions["follow_user"].path == "/users/{other_user.id}/follow"
    assert actions["follow_user"].expect == (200, 201)
    assert set(api.memory) >= {"seen_posts", "own_posts", "seen_users"}
    assert api.fallback == "list_posts"


def test_demo_skips_admin_and_infrastructure(demo_doc: dict[str, Any]) -> None:
    result = build_scenario(demo_doc)
    skipped = dict(result.skipped)
    assert "GET /health" in skipped
    assert {"PUT /admin/faults", "DELETE /admin/faults"} <= set(skipped)
    paths = {a["path"] for a in result.scenario["api"]["actions"].values()}
    assert not any(p.startswith("/admin") for p in paths)
    text = render_scenario(result)
    assert "#   PUT /admin/faults: admin or permission endpoint" in text
    assert "# GET /posts/{post_id}: Get Post" in text  # a comment above each action


def test_demo_reads_far_exceed_writes(demo_scenario: dict[str, Any]) -> None:
    actions = demo_scenario["api"]["actions"]
    for persona in demo_scenario["personas"].values():
        for weights in persona["actions"].values():
            reads = sum(w for n, w in weights.items() if actions[n]["method"] == "GET")
            writes = sum(w for n, w in weights.items() if actions[n]["method"] != "GET")
            assert reads > writes
    reader = demo_scenario["personas"]["reader"]["actions"]["relaxing"]
    assert reader["list_posts"] > 10 * reader["create_post"]


def test_self_deletion_gets_weight_zero(demo_doc: dict[str, Any]) -> None:
    result = build_scenario(demo_doc)
    # the engine's delete_account: churn clean-up and `cleanup` delete users with it
    delete_user = result.scenario["api"]["actions"]["delete_account"]
    assert delete_user["path"] == "/users/{user.id}"
    for persona in result.scenario["personas"].values():
        assert all(w["delete_account"] == 0 for w in persona["actions"].values())
    assert any("own account" in note for note in result.notes["delete_account"])


def test_action_names_drop_fastapi_suffixes(demo_scenario: dict[str, Any]) -> None:
    assert set(demo_scenario["api"]["actions"]) == {
        "stats", "get_user", "delete_account", "follow_user", "unfollow_user", "list_posts",
        "create_post", "get_post", "update_post", "delete_post", "list_comments",
        "create_comment", "delete_comment", "react", "delete_reaction", "list_followers",
    }  # fmt: skip


# -- other documents -----------------------------------------------------------------------

_ITEM = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}


def test_names_from_camel_case_and_from_method_and_path() -> None:
    doc = _doc(
        {
            "/widgets": {
                "get": {"operationId": "listWidgets", "responses": _ok({"type": "array"})},
                "post": {"responses": _ok(_ITEM, "201"), "requestBody": _body(_ITEM)},
            },
            "/widgets/{widgetId}": {"get": {"responses": _ok(_ITEM)}},
        }
    )
    actions = scenario_from_openapi(doc)["api"]["actions"]
    assert set(actions) == {"list_widgets", "post_widgets", "get_widgets_widget_id"}
    assert actions["get_widgets_widget_id"]["pick"] == {"widget": "memory.own_widgets"}


def test_openapi_31_types_const_and_examples() -> None:
    schema = {
        "type": "object",
        "required": ["title", "kind", "score", "code"],
        "properties": {
            "title": {"type": ["string", "null"], "maxLength": 200},
            "kind": {"const": "note"},
            "score": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
            "ratio": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["XYZ"]},
            "published": {"type": ["boolean", "null"]},
            "created": {"type": "string", "format": "date-time"},
            "ref": {"type": "string", "format": "uuid"},
            "contact": {"type": "string", "format": "email"},
            "homepage": {"type": "string", "format": "uri"},
            "status": {"enum": ["draft", "live", None]},
            "labels": {"type": "array", "items": {"type": "string"}},
            "aliases": {"type": "array", "items": {"type": ["string", "null"]}, "minItems": 2},
            "description": {"type": "string"},
            "id": {"type": "integer", "readOnly": True},
            "meta": {
                "type": "object",
                "required": ["count"],
                "properties": {"count": {"type": "integer", "minimum": 2, "maximum": 9}},
            },
        },
    }
    doc = _doc(
        {"/notes": {"post": {"requestBody": _body(schema), "responses": _ok(_ITEM, "201")}}},
        version="3.1.0",
    )
    result = build_scenario(doc)
    validate_scenario(result.scenario)
    body = result.scenario["api"]["actions"]["post_notes"]["body"]
    assert body == {
        "title": "{{title}}",
        "kind": "note",
        "score": "{{int:1:5}}",
        "ratio": "{{float:0:1}}",
        "code": "XYZ",
        "published": "{{bool}}",
        "created": "{{datetime}}",
        "ref": "{{uuid}}",
        "contact": "{{email}}",
        "homepage": "{{url}}",
        "status": "{{choice:draft|live}}",
        "labels": ["{{tag}}"],
        "aliases": ["{{word}}", "{{word}}"],
        "description": "{{paragraph}}",
        "meta": {"count": "{{int:2:9}}"},
    }


def test_other_swagger_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "swagger.yaml"
    path.write_text("swagger: '1.2'\ninfo: {title: x, version: '1'}\npaths: {/a: {}}\n", "utf-8")
    with pytest.raises(OpenApiError) as info:
        load_openapi(str(path))
    message = str(info.value)
    assert "Swagger 1.2 is not supported" in message and "\n" not in message
    with pytest.raises(OpenApiError, match="no paths"):
        scenario_from_openapi({"swagger": "2.0", "paths": {}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("openapi: 3.2.0\npaths: {/a: {get: {responses: {}}}}\n", "OpenAPI 3.2.0 is not supported"),
        ("openapi: 3.0.0\ninfo: {title: x}\n", "no paths"),
        ("- just\n- a list\n", "not an OpenAPI document"),
        ("title: x\n", "no 'openapi' version"),
        ("openapi: [3.0\n", "line 2, column 1: expected ','"),
        ('{"openapi": "3.0.0", "paths": {"/a": {"get": {"$ref": 1}}\n', "line"),
    ],
)
def test_bad_documents_give_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OpenApiError) as info:
        load_openapi(str(path))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(OpenApiError, match="cannot read"):
        load_openapi(str(tmp_path / "absent.json"))


def test_refs_resolved_with_cycle_protection() -> None:
    node = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "parent": {"$ref": "#/components/schemas/Node"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        },
    }
    doc = _doc(
        {
            "/nodes": {
                "post": {
                    "requestBody": {"$ref": "#/components/requestBodies/NewNode"},
                    "responses": _ok({"$ref": "#/components/schemas/Node"}, "201"),
                }
            },
            "/nodes/{id}": {
                "parameters": [{"$ref": "#/components/parameters/Id"}],
                "get": {"responses": _ok({"$ref": "#/components/schemas/Node"})},
            },
        },
        components={
            "schemas": {"Node": node},
            "requestBodies": {"NewNode": _body({"$ref": "#/components/schemas/Node"})},
            "parameters": {"Id": {"name": "id", "in": "path", "required": True}},
        },
    )
    resolved = resolve_refs(doc)
    marker = {"x-circular-ref": "#/components/schemas/Node"}

    def cycle_depth(schema: dict[str, Any]) -> int:
        depth = 0
        while schema != marker:
            schema, depth = schema["properties"]["parent"], depth + 1
            assert depth < 5
        return depth

    body = resolved["paths"]["/nodes"]["post"]["requestBody"]["content"]["application/json"]
    assert 1 <= cycle_depth(body["schema"]) <= 2
    assert 1 <= cycle_depth(resolved["components"]["schemas"]["Node"]) <= 2
    children = body["schema"]["properties"]["children"]["items"]
    assert children == marker or children["properties"]["children"]["items"] == marker
    param = resolved["paths"]["/nodes/{id}"]["parameters"][0]
    assert param == {"name": "id", "in": "path", "required": True}
    result = build_scenario(doc)
    validate_scenario(result.scenario)
    actions = result.scenario["api"]["actions"]
    assert actions["post_nodes"]["body"] == {"name": "{{name}}"}  # optional cycles left out
    assert actions["get_nodes_id"]["pick"] == {"node": "memory.own_nodes"}


def test_dangling_ref_is_refused() -> None:
    doc = _doc({"/a": {"get": {"responses": _ok({"$ref": "#/components/schemas/Nope"})}}})
    with pytest.raises(OpenApiError, match="points to nothing"):
        resolve_refs(doc)


def test_api_key_auth_and_servers() -> None:
    doc = _doc(
        {"/things": {"get": {"responses": _ok({"type": "array", "items": _ITEM})}}},
        servers=[{"url": "http://127.0.0.1:{port}/v2", "variables": {"port": {"default": "9000"}}}],
        security=[{"key": []}],
        components={"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-K"}}},
    )
    result = build_scenario(doc)
    scenario = result.scenario
    validate_scenario(scenario)
    assert scenario["target"] == {"url": "http://127.0.0.1:9000"}
    assert scenario["api"]["actions"]["get_things"]["path"] == "/v2/things"
    assert scenario["api"]["auth"] == {"scheme": "api_key", "header": "X-K", "api_key": "CHANGE-ME"}
    assert any("api_key" in note for note in result.header_notes)
    assert "CHANGE-ME" in render_scenario(result)


def test_non_loopback_server_is_not_a_target() -> None:
    doc = _doc(
        {"/things": {"get": {"responses": _ok({"type": "array", "items": _ITEM})}}},
        servers=[{"url": "https://api.example.com/v1"}],
    )
    result = build_scenario(doc)
    assert "target" not in result.scenario
    assert result.scenario["api"]["actions"]["get_things"]["path"] == "/v1/things"
    assert any("not loopback" in note for note in result.header_notes)
    assert build_scenario(doc, base_url="http://127.0.0.1:5000").scenario["target"] == {
        "url": "http://127.0.0.1:5000"
    }


def test_basic_auth_with_sign_up() -> None:
    signup = {
        "type": "object",
        "required": ["email", "password"],
        "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
    }
    doc = _doc(
        {
            "/register": {"post": {"requestBody": _body(signup), "responses": _ok(_ITEM, "201")}},
            "/things": {"get": {"responses": _ok({"type": "array", "items": _ITEM})}},
        },
        components={"securitySchemes": {"b": {"type": "http", "scheme": "basic"}}},
    )
    auth = scenario_from_openapi(doc)["api"]["auth"]
    assert auth["scheme"] == "basic"
    assert auth["signup"]["body"] == {"email": "{user.email}", "password": "{user.password}"}
    assert "login" not in auth


def test_bearer_without_login_falls_back_to_none() -> None:
    doc = _doc(
        {"/things": {"get": {"responses": _ok({"type": "array", "items": _ITEM})}}},
        components={"securitySchemes": {"jwt": {"type": "http", "scheme": "bearer"}}},
    )
    result = build_scenario(doc)
    validate_scenario(result.scenario)
    assert result.scenario["api"]["auth"]["scheme"] == "none"
    assert any("no log-in operation" in note for note in result.header_notes)


def test_unfillable_action_gets_weight_zero() -> None:
    doc = _doc(
        {
            "/things": {"get": {"responses": _ok({"type": "array", "items": _ITEM})}},
            "/gadgets/{gadget_id}": {"get": {"responses": _ok(_ITEM)}},
        }
    )
    result = build_scenario(doc)
    validate_scenario(result.scenario)
    for persona in result.scenario["personas"].values():
        assert persona["actions"]["working"]["get_gadgets_gadget_id"] == 0
    assert any("memory.seen_gadgets" in n for n in result.notes["get_gadgets_gadget_id"])


def test_body_references_link_to_memory_and_to_the_user() -> None:
    signup = {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
    }
    order = {
        "type": "object",
        "required": ["productId", "ownerId", "quantity"],
        "properties": {
            "productId": {"type": "integer"},
            "ownerId": {"type": "integer"},
            "quantity": {"type": "integer"},
        },
    }
    profile = {"properties": {"username": {"type": "string"}, "bio": {"type": "string"}}}
    doc = _doc(
        {
            "/users": {"post": {"requestBody": _body(signup), "responses": _ok(_ITEM, "201")}},
            "/products": {"get": {"responses": _ok({"type": "array", "items": _ITEM})}},
            "/orders": {"post": {"requestBody": _body(order), "responses": _ok(_ITEM, "201")}},
            "/users/{userId}": {"patch": {"requestBody": _body(profile), "responses": _ok(_ITEM)}},
        }
    )
    scenario = scenario_from_openapi(doc)
    validate_scenario(scenario)
    profile_action = scenario["api"]["actions"]["patch_users_user_id"]
    assert profile_action["path"] == "/users/{user.id}"
    assert profile_action["body"] == {"username": "{user.username}", "bio": "{{paragraph}}"}
    action = scenario["api"]["actions"]["post_orders"]
    assert action["body"] == {
        "productId": "{product.id}",
        "ownerId": "{user.id}",
        "quantity": "{{int:1:10}}",
    }
    assert action["pick"] == {"product": "memory.seen_products"}
    assert scenario["api"]["auth"]["signup"]["path"] == "/users"
    # no security scheme, a password sign-up and no log-in: HTTP Basic is assumed
    assert scenario["api"]["auth"]["scheme"] == "basic"


def test_malformed_documents_raise_only_openapi_errors(demo_doc: dict[str, Any]) -> None:
    junk: list[Any] = [None, 1, "x", [], {}, {"type": ["null"]}, {"$ref": "#/nope"}]
    rng = random.Random(7)

    def slots(node: Any) -> Iterator[tuple[Any, Any]]:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            yield node, key
            if isinstance(value, (dict, list)):
                yield from slots(value)

    for _ in range(150):
        doc = copy.deepcopy(demo_doc)
        for _ in range(rng.randint(1, 3)):
            parent, key = rng.choice(list(slots(doc)))
            if isinstance(parent, dict) and rng.random() < 0.5:
                del parent[key]
            else:
                parent[key] = copy.deepcopy(rng.choice(junk))
        try:
            result = build_scenario(doc)
        except OpenApiError as exc:
            assert "\n" not in str(exc)
            continue
        validate_scenario(result.scenario)
        render_scenario(result)


def test_comments_stay_comments_and_odd_paths_are_skipped(tmp_path: Path) -> None:
    doc = _doc(
        {
            "/things": {
                "get": {
                    "summary": "List\nthings: all of them\n- really",
                    "responses": _ok({"type": "array", "items": _ITEM}),
                }
            },
            "/files/{name}.json": {"get": {"responses": _ok(_ITEM)}},
        },
        info={"title": "A\nB", "version": "1"},
    )
    result = build_scenario(doc)
    assert "GET /files/{name}.json" in dict(result.skipped)
    path = write_scenario(result, tmp_path / "s.yaml")
    assert load_scenario(path).api == validate_scenario(result.scenario).api
    assert "# GET /things: List things: all of them - really" in path.read_text("utf-8")


def test_nothing_usable_is_an_error() -> None:
    doc = _doc({"/admin/x": {"get": {"responses": _ok(_ITEM)}}})
    with pytest.raises(OpenApiError, match="no operation"):
        scenario_from_openapi(doc)


# -- URLs -------------------------------------------------------------------------------------


def test_url_source_on_loopback(server: _Server) -> None:
    for path in ("/openapi.json", "/openapi.yaml", "/here"):
        doc = load_openapi(server.url + path)
        assert doc["info"]["title"] == "sim-engine demo social API"
    result = import_openapi(server.url + "/openapi.json")
    assert result.scenario["target"] == {"url": server.url}
    validate_scenario(result.scenario)


def test_url_errors(server: _Server) -> None:
    with pytest.raises(OpenApiError, match="only from loopback") as info:
        load_openapi("http://example.com/openapi.json")
    assert not isinstance(info.value, OpenApiFetchError)
    with pytest.raises(OpenApiError, match=r"redirected to http://example\.com"):
        load_openapi(server.url + "/away")
    with pytest.raises(OpenApiFetchError, match="HTTP 404"):
        load_openapi(server.url + "/missing.json")


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_init_writes_refuses_and_forces(demo_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.yaml"
    runner = CliRunner()
    args = ["init", "--from-openapi", str(demo_json), "-o", str(out)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].startswith(f"{out}: 16 actions") and lines[1].startswith("  auth: bearer: ")
    assert "  left out: 1 operational (GET /health; --include-ops keeps them)" in lines
    assert "actions" in first.output and "auth bearer" in first.output
    assert "seen_posts" in first.output
    validated = runner.invoke(cli, ["validate", str(out)])
    assert validated.exit_code == 0, validated.output
    out.write_text("# mine\n", encoding="utf-8")
    again = runner.invoke(cli, args)
    assert again.exit_code == 2
    assert "exists (use --force" in again.output
    assert out.read_text(encoding="utf-8") == "# mine\n"
    forced = runner.invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "personas:" in out.read_text(encoding="utf-8")


def test_cli_init_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    swagger = tmp_path / "swagger.json"
    swagger.write_text('{"swagger": "1.2", "paths": {"/a": {}}}', encoding="utf-8")
    proc = sim_engine("init", "--from-openapi", str(swagger), "-o", str(tmp_path / "s.yaml"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim-engine: error: "), proc.stderr
    assert "Swagger" in lines[0]
    assert not (tmp_path / "s.yaml").exists()
    result = CliRunner().invoke(
        cli, ["init", "--from-openapi", "http://example.com/o.json", "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 2


# -- end to end -------------------------------------------------------------------------------


def test_generated_scenario_runs_against_the_demo(demo_json: Path, tmp_path: Path) -> None:
    pytest.importorskip("sim_engine.targets.declarative")
    scenario = tmp_path / "s.yaml"
    out = tmp_path / "run"
    init = sim_engine("init", "--from-openapi", str(demo_json), "-o", str(scenario))
    assert init.returncode == 0, init.stderr
    run = sim_engine(
        *("run", "--scenario", str(scenario), "--target", "inprocess", "--speed", "max"),
        *("--duration", "6h", "--users", "20", "--start", "2024-05-15T08:00:00Z"),
        *("--out", str(out), "-q"),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    records = read_jsonl(out / "actions.jsonl")
    actions = [r for r in records if r.get("kind", "action") == "action"]
    generated = set(yaml.safe_load(scenario.read_text(encoding="utf-8"))["api"]["actions"])
    ok_by_action = Counter(r["action"] for r in actions if r["ok"] and r["action"] in generated)
    statuses = Counter(r["status"] for r in actions)
    assert len(ok_by_action) >= 5, (ok_by_action, statuses)
    assert {"list_posts", "create_post", "get_post"} <= set(ok_by_action), ok_by_action
    two_xx = sum(n for s, n in statuses.items() if 200 <= s < 300)
    assert two_xx >= 0.9 * sum(statuses.values()), statuses
