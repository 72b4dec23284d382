"""OpenAPI import: turn an OpenAPI 3.0 / 3.1 document into a starter scenario.

``sim-engine init --from-openapi FILE_OR_URL -o scenario.yaml`` calls
:func:`import_openapi` and :func:`write_scenario`. The result is a scenario with
an ``api`` section (see :mod:`sim_engine.model.api_spec`) that validates as written
and runs: one action per operation, request bodies built from the schemas with
realistic generator values, producer -> consumer links between operations, auth
from the security schemes, and two starter personas. The rules are documented
in ``docs/openapi-import.md``; in short:

* **Resources.** A path parameter names an item of the resource whose literal
  segment precedes it (``/posts/{post_id}`` -> ``posts``). Each resource with
  ids has two memory keys: ``seen_R`` (items this user saw in a list answer)
  and ``own_R`` (items this user created).
* **Producers.** ``GET`` on a collection (``/posts``) whose answer is an array
  of objects with an id (``[*]``, or ``items[*]``/``data[*]``... in a page
  object) extracts the ids into ``memory.seen_R``. ``POST`` on a collection
  whose 2xx answer has an id extracts it into ``memory.own_R``. A resource no
  list operation returns is learnt from reference fields of other answers
  (``post_id``, ``postId``; ``author_id``/``owner_id``... for users).
* **Consumers.** ``GET /R/{id}`` picks from ``seen_R`` (else ``own_R``);
  ``PUT``/``PATCH``/``DELETE /R/{id}`` pick from ``own_R`` (else ``seen_R``),
  ``DELETE`` forgets the item; a parent parameter (``/R/{id}/children``) picks
  from ``seen_R`` (else ``own_R``). Items of the sign-up resource the user owns
  are the user itself (``{user.id}``). An action whose memory nothing fills is
  kept with weight 0 and a comment.
* **Auth.** ``http bearer`` / ``oauth2`` / ``openIdConnect`` -> a log-in
  operation found by heuristics (path or operationId with
  login/token/auth/session, a token-like field in its answer) and its
  ``token_path``; ``http basic`` -> ``basic``; ``apiKey`` (header) ->
  ``api_key`` with a placeholder key; a ``POST`` with a password property on
  ``/users``, ``/register``, ``/signup``... -> ``auth.signup``.

Public API: :func:`load_openapi`, :func:`scenario_from_openapi`,
:func:`build_scenario`, :func:`import_openapi`, :func:`render_scenario`,
:func:`write_scenario`, :class:`ImportResult`, :class:`OpenApiError`.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "ImportResult",
    "OpenApiError",
    "OpenApiFetchError",
    "build_scenario",
    "import_openapi",
    "load_openapi",
    "render_scenario",
    "resolve_refs",
    "scenario_from_openapi",
    "write_scenario",
]

FETCH_TIMEOUT_S = 10.0
"""Wall seconds allowed to fetch a document from a URL."""

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
"""Larger documents are refused."""

SEEN_BOUND = 50
"""How many items each ``seen_R`` memory keeps (newest kept)."""

OWN_BOUND = 100
"""How many items each ``own_R`` memory keeps."""

_METHODS = ("get", "post", "put", "patch", "delete")
_IGNORED_METHODS = ("head", "options", "trace")
_MAX_DEPTH = 5  # nesting depth of generated bodies

# Starter weights per kind of action: (reader working, reader relaxing,
# writer working, writer relaxing). Reads far exceed writes.
_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "list": (5.0, 6.0, 3.0, 3.0),
    "read": (4.0, 6.0, 3.0, 4.0),
    "other_read": (0.3, 0.5, 0.3, 0.5),
    "create": (0.05, 0.1, 1.5, 2.0),
    "update": (0.02, 0.03, 0.8, 1.0),
    "delete": (0.01, 0.01, 0.2, 0.3),
    "other_write": (0.1, 0.2, 1.0, 1.5),
}

_TOKEN_FIELDS = (
    "access_token", "accessToken", "token", "jwt", "id_token", "idToken", "auth_token",
    "authToken", "session_token", "sessionToken", "bearer", "key",
)  # fmt: skip
_ID_FIELDS = ("id", "_id", "uuid", "ID", "Id")
_ARRAY_FIELDS = ("items", "data", "results", "content", "records", "entries", "rows", "list")
_USER_REF_WORDS = (
    "user", "author", "owner", "creator", "created_by", "poster", "sender", "recipient",
    "member", "account", "profile",
)  # fmt: skip
_SIGNUP_SEGMENTS = (
    "users", "accounts", "members", "register", "registration", "signup", "sign-up",
    "sign_up", "join", "customers",
)  # fmt: skip
_SIGNUP_OPID = re.compile(r"register|sign_?up|create_?(user|account|member|customer)", re.I)
_LOGIN_WORDS = re.compile(r"log_?in|sign_?in|token|auth|session", re.I)
_NOT_LOGIN = re.compile(r"log_?out|sign_?out|refresh|revoke|introspect|verify|reset", re.I)
_HOUSEKEEPING = re.compile(r"log_?out|sign_?out|refresh|revoke", re.I)
_INFRA_PATHS = re.compile(
    r"^/(health|healthz|livez|readyz|ready|ping|metrics|version|openapi\.json|openapi\.yaml|"
    r"docs|redoc|swagger)(/|$)",
    re.I,
)
_ADMIN_SEGMENTS = ("admin", "internal", "debug", "_internal")


class OpenApiError(ValueError):
    """An OpenAPI document cannot be used; ``str()`` is one line naming the source."""


class OpenApiFetchError(OpenApiError):
    """An OpenAPI URL could not be fetched (unreachable, HTTP error, timeout): a runtime
    failure rather than bad input."""


# -- loading ---------------------------------------------------------------------------------


_REFUSED = "refused: documents are fetched only from loopback hosts (127.0.0.0/8, ::1, localhost)"


class _LoopbackRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a loopback host."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        from sim_engine.runs.runstate import SafetyError, check_target_allowed

        try:
            check_target_allowed(newurl, ())
        except SafetyError:
            raise OpenApiError(f"{req.full_url}: redirected to {newurl}: {_REFUSED}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def _fetch(url: str) -> bytes:
    """Fetch a document from a loopback URL (no proxy, loopback redirects only).

    Raises:
        OpenApiError: refused: the URL (or a redirect) leaves loopback; too large.
        OpenApiFetchError: unreachable, HTTP error, timeout.
    """
    from sim_engine.runs.runstate import SafetyError, check_target_allowed

    try:
        check_target_allowed(url, ())
    except SafetyError:
        raise OpenApiError(f"{url}: {_REFUSED}") from None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _LoopbackRedirects())
    request = urllib.request.Request(
        url, headers={"Accept": "application/json, application/yaml;q=0.9, */*;q=0.5"}
    )
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_S) as response:
            data: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
    except OpenApiError:
        raise
    except urllib.error.HTTPError as exc:
        raise OpenApiFetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise OpenApiFetchError(f"{url}: cannot fetch: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, bad ports, malformed URLs
        raise OpenApiFetchError(f"{url}: cannot fetch: {exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise OpenApiError(f"{url}: larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB")
    return data


def _parse(data: bytes, source: str) -> Any:
    """Parse JSON or YAML text.

    Raises:
        OpenApiError: not UTF-8, or neither valid JSON nor valid YAML.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OpenApiError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML flow style, or broken JSON: YAML says where
        except RecursionError:
            raise OpenApiError(f"{source}: JSON: nested too deeply") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise OpenApiError(f"{source}: {where}: {problem}") from None
    except RecursionError:
        raise OpenApiError(f"{source}: YAML: nested too deeply") from None


def check_document(doc: Any, source: str = "<openapi>") -> dict[str, Any]:
    """Check that ``doc`` is an OpenAPI 3.0 or 3.1 document with paths.

    Returns:
        The document (a dict).

    Raises:
        OpenApiError: one line: not a mapping, Swagger 2.0, another version, no paths.
    """
    if not isinstance(doc, Mapping):
        raise OpenApiError(f"{source}: not an OpenAPI document (the top level is not a mapping)")
    if "swagger" in doc:
        raise OpenApiError(
            f"{source}: Swagger {doc.get('swagger')} is not supported: convert it to "
            "OpenAPI 3 first (e.g. npx swagger2openapi)"
        )
    version = doc.get("openapi")
    if version is None:
        raise OpenApiError(f"{source}: not an OpenAPI document (no 'openapi' version field)")
    if not re.match(r"^3\.[01](\.\d+)?(-.*)?$", str(version)):
        raise OpenApiError(f"{source}: OpenAPI {version} is not supported (use OpenAPI 3.0 or 3.1)")
    paths = doc.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        raise OpenApiError(f"{source}: the document has no paths: nothing to simulate")
    return dict(doc)


def load_openapi(source: str) -> dict[str, Any]:
    """Read an OpenAPI 3.0 / 3.1 document (YAML or JSON) from a file or a loopback URL.

    Local ``$ref`` s (``#/components/...``) are resolved (see :func:`resolve_refs`).

    Args:
        source: a file path, or an ``http(s)://`` URL on a loopback host (127.0.0.0/8,
            ::1, localhost); fetched with a short timeout, without proxies.

    Returns:
        The resolved document.

    Raises:
        OpenApiFetchError: a URL that cannot be fetched (unreachable, HTTP error, timeout).
        OpenApiError: a URL outside loopback, unreadable file, invalid JSON/YAML, not
            OpenAPI 3.0/3.1 (e.g. Swagger 2.0), no paths, or a ``$ref`` to nothing.
            One line naming the source.
    """
    if _is_url(source):
        data = _fetch(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise OpenApiError(f"{source}: cannot read: {exc.strerror or exc}") from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise OpenApiError(f"{source}: larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB")
    doc = check_document(_parse(data, source), source)
    return resolve_refs(doc, source)


def _pointer(doc: Any, ref: str, source: str) -> Any:
    node = doc
    for raw in ref[2:].split("/") if ref != "#" else []:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise OpenApiError(f"{source}: $ref {ref!r} points to nothing")
    return node


def resolve_refs(doc: dict[str, Any], source: str = "<openapi>") -> dict[str, Any]:
    """Return a copy of ``doc`` with every local ``$ref`` replaced by what it points to.

    A ``$ref`` met again while it is being expanded (a cycle, e.g. a tree node whose
    ``children`` are nodes) becomes ``{"x-circular-ref": REF}``; an external one
    (another file or a URL) becomes ``{"x-unresolved-ref": REF}``. Keys beside a
    ``$ref`` (OpenAPI 3.1) override the target's.

    Raises:
        OpenApiError: a local ``$ref`` points to nothing.
    """
    cache: dict[str, Any] = {}

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str):
                siblings = {k: walk(v, stack) for k, v in node.items() if k != "$ref"}
                if not ref.startswith("#"):
                    return {"x-unresolved-ref": ref, **siblings}
                if ref in stack:
                    return {"x-circular-ref": ref, **siblings}
                if ref not in cache:
                    cache[ref] = walk(_pointer(doc, ref, source), (*stack, ref))
                target = cache[ref]
                if siblings and isinstance(target, dict):
                    return {**target, **siblings}
                return target
            return {k: walk(v, stack) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, stack) for v in node]
        return node

    try:
        resolved = walk(doc, ())
    except RecursionError:
        raise OpenApiError(f"{source}: nested too deeply") from None
    assert isinstance(resolved, dict)
    return resolved


# -- schemas ---------------------------------------------------------------------------------


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (malformed documents)."""
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (malformed documents)."""
    return value if isinstance(value, list) else []


def _norm(schema: Any, depth: int = 0) -> dict[str, Any]:
    """Flatten a schema: ``allOf`` merged, first non-null ``anyOf``/``oneOf`` chosen,
    3.1 type lists reduced to their first non-null type, type inferred when missing.
    Malformed parts (``properties`` that is not a mapping...) are dropped."""
    if not isinstance(schema, Mapping) or depth > 20:
        return {}
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {str(k): v for k, v in _map(out["properties"]).items()}
    if "required" in out:
        out["required"] = [str(r) for r in _seq(out["required"]) if isinstance(r, (str, int))]
    for key in ("allOf", "oneOf", "anyOf", "enum"):
        if key in out and not isinstance(out[key], list):
            del out[key]
    if "items" in out and not isinstance(out["items"], Mapping):
        out["items"] = {}
    if not isinstance(out.get("type", ""), (str, list)):
        del out["type"]
    if isinstance(out.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in out.items() if k != "allOf"}
        props: dict[str, Any] = dict(merged.get("properties") or {})
        required: list[str] = list(merged.get("required") or [])
        for part in out["allOf"]:
            sub = _norm(part, depth + 1)
            props.update(sub.get("properties") or {})
            required.extend(r for r in sub.get("required") or [] if r not in required)
            for key, value in sub.items():
                if key not in ("properties", "required"):
                    merged.setdefault(key, value)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        out = merged
    for combo in ("oneOf", "anyOf"):
        options = out.get(combo)
        if isinstance(options, list) and options:
            chosen = next(
                (o for o in (_norm(x, depth + 1) for x in options) if o.get("type") != "null"),
                {},
            )
            rest = {k: v for k, v in out.items() if k not in ("oneOf", "anyOf")}
            out = {**chosen, **{k: v for k, v in rest.items() if k not in chosen}}
            break
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [t for t in kind if t != "null" and isinstance(t, str)]
        out["type"] = kinds[0] if kinds else "null"
    if "type" not in out:
        if "properties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
        elif "const" in out:
            out["type"] = _json_type(out["const"])
        elif isinstance(out.get("enum"), list) and out["enum"]:
            out["type"] = _json_type(out["enum"][0])
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array" if isinstance(value, list) else ""


def _json_media(content: Any) -> Any:
    """The schema of the JSON media type in a ``content`` map (None: no JSON there)."""
    if not isinstance(content, Mapping):
        return None
    for media, spec in content.items():
        base = str(media).split(";")[0].strip().lower()
        if base in ("application/json", "*/*") or base.endswith("+json"):
            return spec.get("schema", {}) if isinstance(spec, Mapping) else {}
    return None


def _find_field(schema: Any, names: tuple[str, ...], depth: int = 2) -> str | None:
    """Dotted path of the first property named in ``names`` (breadth first, ``depth`` levels)."""
    level: list[tuple[str, dict[str, Any]]] = [("", _norm(schema))]
    for _ in range(depth):
        nxt: list[tuple[str, dict[str, Any]]] = []
        for prefix, node in level:
            props = node.get("properties") or {}
            for name in names:
                if name in props:
                    return f"{prefix}{name}"
            for key, sub in props.items():
                sub_n = _norm(sub)
                if sub_n.get("type") == "object":
                    nxt.append((f"{prefix}{key}.", sub_n))
        level = nxt
    return None


def _snake(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"\W+|_+", "_", text).strip("_").lower()
    if not text:
        return "op"
    return f"op_{text}" if text[0].isdigit() else text


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 1:
        return word[:-1]
    return word


def _id_like(name: str) -> bool:
    return bool(re.search(r"(^|_)(id|uuid|key|slug)$", _snake(name)))


# -- the import ------------------------------------------------------------------------------


@dataclass
class _Op:
    """One operation of the document."""

    method: str  # upper case
    path: str  # as in the document
    spec: dict[str, Any]
    params: list[dict[str, Any]]
    segments: list[str]  # path segments, params kept as "{name}"
    kind: str = "other_read"
    resource: str | None = None  # the collection a list/create acts on, or the item's
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def last_is_param(self) -> bool:
        return bool(self.segments) and self.segments[-1].startswith("{")

    def request_schema(self) -> tuple[Any, bool, bool]:
        """(JSON schema or None, body required, body present but not JSON)."""
        body = self.spec.get("requestBody")
        if not isinstance(body, Mapping):
            return None, False, False
        schema = _json_media(body.get("content"))
        content = body.get("content")
        other = schema is None and isinstance(content, Mapping) and bool(content)
        return schema, bool(body.get("required")), other

    def response_schema(self) -> Any:
        """The JSON schema of the first documented 2xx answer (None: none)."""
        responses = _map(self.spec.get("responses"))
        for code in sorted(responses, key=str):
            if str(code).startswith("2") and isinstance(responses[code], Mapping):
                schema = _json_media(responses[code].get("content"))
                if schema is not None:
                    return schema
        return None

    def expect(self) -> list[int]:
        responses = _map(self.spec.get("responses"))
        codes: set[int] = set()
        for code in responses:
            text = str(code).upper()
            if text == "2XX":
                codes.update((200, 201, 202, 204))
            elif re.fullmatch(r"2\d\d", text):
                codes.add(int(text))
        return sorted(codes) or [200, 201, 202, 204]


def _resource_of(segments: list[str], index: int) -> str:
    """The resource a path parameter at ``segments[index]`` is an item of."""
    if index > 0 and not segments[index - 1].startswith("{"):
        return _snake(segments[index - 1])
    name = _snake(segments[index][1:-1])
    base = re.sub(r"_?(id|uuid|key|slug)$", "", name) or name
    return base if base.endswith("s") else f"{base}s"


def _item_id_field(schema: Any) -> str | None:
    props = _norm(schema).get("properties") or {}
    for name in _ID_FIELDS:
        if name in props:
            return name
    return None


def _list_items(schema: Any) -> tuple[str, dict[str, Any]] | None:
    """Where the items of a list answer are (``[*]`` or ``FIELD[*]``) and their schema."""
    node = _norm(schema)
    if node.get("type") == "array":
        return "[*]", _norm(node.get("items"))
    props = node.get("properties") or {}
    arrays = [(k, _norm(v)) for k, v in props.items() if _norm(v).get("type") == "array"]
    preferred = [a for a in arrays if a[0] in _ARRAY_FIELDS]
    for key, sub in preferred or (arrays if len(arrays) == 1 else []):
        return f"{key}[*]", _norm(sub.get("items"))
    return None


def _created_id(schema: Any, resource: str) -> tuple[str, str] | None:
    """(path, id field) of a created item in a create answer (None: no id in it)."""
    node = _norm(schema)
    if node.get("type") not in ("object", None):
        return None
    single = _singular(resource)
    names = (*_ID_FIELDS, f"{single}_id", f"{_camel(single)}Id")
    props = node.get("properties") or {}
    for name in names:
        if name in props:
            return "", name
    for wrapper in ("data", "item", "result", single, _camel(single)):
        sub = _norm(props.get(wrapper))
        field_name = _item_id_field(sub) if sub.get("type") == "object" else None
        if field_name:
            return wrapper, field_name
    return None


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


@dataclass
class ImportResult:
    """A generated scenario and what the import noticed.

    Attributes:
        scenario: the scenario mapping (validates with ``validate_scenario``).
        title: the document's ``info.title``.
        source: where the document came from (for the header comment).
        operations: how many operations the document has.
        skipped: ``(METHOD PATH, reason)`` of operations not turned into actions.
        notes: action name -> comment lines written above it.
        header_notes: comment lines for the header (auth, target).
    """

    scenario: dict[str, Any]
    title: str = ""
    source: str = ""
    operations: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    header_notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: actions, auth scheme, memory keys."""
        api = self.scenario["api"]
        auth = api.get("auth") or {}
        scheme = auth.get("scheme", "none")
        parts = [f"{len(api['actions'])} actions"]
        if self.skipped:
            parts[0] += f" ({len(self.skipped)} operations skipped)"
        how = []
        if auth.get("signup"):
            how.append(f"sign-up {auth['signup']['method']} {auth['signup']['path']}")
        if auth.get("login"):
            how.append(f"login {auth['login']['method']} {auth['login']['path']}")
        parts.append(f"auth {scheme}" + (f" ({', '.join(how)})" if how else ""))
        memory = api.get("memory") or {}
        parts.append(f"memory: {', '.join(memory) if memory else 'none'}")
        return "; ".join(parts)


class _Builder:
    """Builds the scenario from a resolved document (one use)."""

    def __init__(self, doc: dict[str, Any], base_url: str | None, source: str) -> None:
        self.doc = doc
        self.source = source
        self.base_url = base_url
        self.result = ImportResult(scenario={})
        self.ops: list[_Op] = []
        self.prefix = ""
        self.target_url: str | None = None
        self.signup: _Op | None = None
        self.login: _Op | None = None
        self.user_resource: str | None = None
        self.seen_from: dict[str, list[tuple[_Op, str, str]]] = {}  # R -> (op, path, id field)
        self.own_from: dict[str, list[tuple[_Op, str, str]]] = {}
        self.refs_from: dict[str, list[tuple[_Op, str, str]]] = {}  # secondary references
        self.memory: dict[str, int] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}
        self.impossible: set[str] = set()

    # -- steps --

    def build(self) -> ImportResult:
        info = _map(self.doc.get("info"))
        self.result.title = str(info.get("title") or "api")
        self._servers()
        self._collect()
        self._find_auth()
        self._classify()
        self._producers()
        auth = self._auth()
        for op in self.ops:
            self._action(op)
        if not self.actions:
            raise OpenApiError(
                f"{self.source}: no operation could be turned into an action"
                + (
                    f" (skipped: {self.result.skipped[0][0]}: {self.result.skipped[0][1]}, ...)"
                    if self.result.skipped
                    else ""
                )
            )
        self._declare_memory()
        api: dict[str, Any] = {"auth": auth}
        if self.memory:
            api["memory"] = self.memory
        api["actions"] = self.actions
        fallback = self._fallback()
        if fallback is not None:
            api["fallback"] = fallback
        scenario: dict[str, Any] = {"name": _slug(self.result.title)}
        if self.target_url:
            scenario["target"] = {"url": self.target_url}
        scenario["personas"] = self._personas()
        scenario["routine"] = _default_routine()
        scenario["api"] = api
        self.result.scenario = scenario
        return self.result

    def _servers(self) -> None:
        servers = self.doc.get("servers")
        url = ""
        if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
            url = str(servers[0].get("url") or "")
            for name, var in _map(servers[0].get("variables")).items():
                if isinstance(var, Mapping) and "default" in var:
                    url = url.replace("{" + str(name) + "}", str(var["default"]))
        parts = urlsplit(url)
        self.prefix = "/" + parts.path.strip("/") if parts.path.strip("/") else ""
        if "{" in self.prefix:
            self.prefix = ""
        if self.base_url:
            self.target_url = self.base_url.rstrip("/")
        elif parts.scheme in ("http", "https") and parts.hostname:
            from sim_engine.runs.runstate import SafetyError, check_target_allowed

            origin = f"{parts.scheme}://{parts.netloc}"
            try:
                check_target_allowed(origin, ())
                self.target_url = origin
            except SafetyError:
                self.result.header_notes.append(
                    f"servers[0] is {origin}: not loopback, so no target.url was set; run "
                    "against a local copy with --target URL"
                )

    def _collect(self) -> None:
        paths = self.doc.get("paths") or {}
        for path, item in paths.items():
            if not isinstance(item, Mapping):
                continue
            path = str(path)
            shared = [p for p in _seq(item.get("parameters")) if isinstance(p, Mapping)]
            for method, spec in item.items():
                if method in _IGNORED_METHODS:
                    self.result.operations += 1
                    self.result.skipped.append(
                        (f"{method.upper()} {path}", f"{method.upper()} is not simulated")
                    )
                    continue
                if method not in _METHODS or not isinstance(spec, Mapping):
                    continue
                self.result.operations += 1
                own = [p for p in _seq(spec.get("parameters")) if isinstance(p, Mapping)]
                keys = {(str(p.get("name")), str(p.get("in"))) for p in own}
                params = [dict(p) for p in own] + [
                    dict(p) for p in shared if (str(p.get("name")), str(p.get("in"))) not in keys
                ]
                segments = [s for s in path.split("/") if s]
                self.ops.append(_Op(method.upper(), path, dict(spec), params, segments))

    def _find_auth(self) -> None:
        signups = []
        for op in self.ops:
            if op.method != "POST" or re.search(r"password|reset", op.path, re.I):
                continue
            schema, _, _ = op.request_schema()
            props = _norm(schema).get("properties") or {}
            if not any(re.fullmatch(r"pass(word|wd)?1?", _snake(p)) for p in props):
                continue
            last = op.segments[-1].lower() if op.segments else ""
            op_id = str(op.spec.get("operationId") or "")
            if last in _SIGNUP_SEGMENTS or _SIGNUP_OPID.search(op_id):
                signups.append(op)
        self.signup = signups[0] if signups else None
        if self.signup is not None:
            last = self.signup.segments[-1].lower()
            self.user_resource = (
                _snake(last) if last in ("users", "accounts", "members", "customers") else "users"
            )
        elif any(s.lower() == "users" for op in self.ops for s in op.segments):
            self.user_resource = "users"
        candidates: list[tuple[int, _Op]] = []
        for op in self.ops:
            if op.method != "POST" or op is self.signup:
                continue
            text = f"{op.path} {op.spec.get('operationId') or ''}"
            if not _LOGIN_WORDS.search(text) or _NOT_LOGIN.search(text):
                continue
            has_token = _find_field(op.response_schema(), _TOKEN_FIELDS) is not None
            strong = bool(re.search(r"log_?in|sign_?in|token", text, re.I))
            if has_token or strong:
                candidates.append((0 if has_token else 1, op))
        if candidates:
            self.login = min(candidates, key=lambda c: c[0])[1]

    def _classify(self) -> None:
        for op in self.ops:
            last_literal = next((s for s in reversed(op.segments) if not s.startswith("{")), "")
            if op.last_is_param():
                op.resource = _resource_of(op.segments, len(op.segments) - 1)
                op.kind = {
                    "GET": "read",
                    "PUT": "update",
                    "PATCH": "update",
                    "DELETE": "delete",
                    "POST": "other_write",
                }[op.method]
            elif op.method == "GET":
                listed = _list_items(op.response_schema())
                op.resource = _snake(last_literal) if last_literal else None
                op.kind = "list" if listed is not None else "other_read"
            elif op.method == "POST":
                op.resource = _snake(last_literal) if last_literal else None
                created = _created_id(op.response_schema(), op.resource) if op.resource else None
                op.kind = "create" if created is not None else "other_write"
            else:
                op.kind = "other_write"

    def _producers(self) -> None:
        for op in self.ops:
            if op is self.signup or op is self.login or self._skip_reason(op):
                continue
            if op.kind == "list" and op.resource:
                listed = _list_items(op.response_schema())
                assert listed is not None
                where, items = listed
                id_field = _item_id_field(items)
                if id_field:
                    self.seen_from.setdefault(op.resource, []).append((op, where, id_field))
                self._references(op, where, items)
            elif op.kind == "create" and op.resource:
                created = _created_id(op.response_schema(), op.resource)
                assert created is not None
                self.own_from.setdefault(op.resource, []).append((op, *created))
            elif op.kind == "read" and op.resource:
                self._references(op, "", _norm(op.response_schema()))

    def _references(self, op: _Op, where: str, items: dict[str, Any]) -> None:
        """Note reference fields (``post_id``, ``authorId``) of answer items."""
        for prop in items.get("properties") or {}:
            resource = self._referenced_resource(prop)
            if resource is not None and resource != op.resource:
                self.refs_from.setdefault(resource, []).append((op, where, prop))

    def _referenced_resource(self, prop: str) -> str | None:
        """The resource a ``X_id`` / ``XId`` property refers to (None: not a reference)."""
        snake = _snake(prop)
        match = re.fullmatch(r"(.+)_id", snake)
        if not match:
            return None
        word = match.group(1)
        if word in _USER_REF_WORDS or word.endswith(("_user", "_author")):
            return self.user_resource
        known = {op.resource for op in self.ops if op.resource}
        for resource in known:
            if _singular(resource) == word:
                return resource
        return None

    # -- auth --

    def _auth(self) -> dict[str, Any]:
        notes = self.result.header_notes
        schemes = self._security_schemes()
        auth: dict[str, Any] = {}
        if self.signup is not None:
            auth["signup"] = self._auth_request(self.signup, signup=True)
        kinds = {name: _norm(s) for name, s in schemes.items()}
        bearer = [n for n, s in kinds.items() if _is_token_scheme(s)]
        basic = [
            n
            for n, s in kinds.items()
            if s.get("type") == "http" and str(s.get("scheme", "")).lower() == "basic"
        ]
        api_key = [n for n, s in kinds.items() if s.get("type") == "apiKey"]
        login = None
        if self.login is not None:
            login_schema, _, other = self.login.request_schema()
            if other and login_schema is None:
                notes.append(
                    f"{self.login.label} takes a form body, not JSON: write auth.login by hand"
                )
            else:
                login = self.login
        if bearer and login is not None:
            auth["login"] = self._auth_request(login, signup=False)
            auth["token_path"] = _find_field(login.response_schema(), _TOKEN_FIELDS) or "token"
            if _find_field(login.response_schema(), _TOKEN_FIELDS) is None:
                notes.append(f"no token field documented in {login.label}: check token_path")
            auth["scheme"] = "bearer"
        elif basic:
            auth["scheme"] = "basic"
        elif api_key:
            spec = kinds[api_key[0]]
            auth["scheme"] = "api_key"
            auth["header"] = str(spec.get("name") or "X-API-Key")
            auth["api_key"] = "CHANGE-ME"
            notes.append(
                f"security scheme {api_key[0]!r} is an API key: put a real key in api.auth.api_key"
            )
            if spec.get("in") != "header":
                notes.append(
                    f"the API takes the key in the {spec.get('in')}, not a header: edit the "
                    "actions (query) instead of api.auth"
                )
        else:
            auth["scheme"] = "none"
            if bearer:
                notes.append(
                    f"security scheme {bearer[0]!r} uses tokens but no log-in operation was "
                    "found: add auth.login and token_path, then set scheme: bearer"
                )
            elif schemes:
                names = ", ".join(sorted(schemes))
                notes.append(
                    f"security schemes not supported ({names}): requests go unauthenticated"
                )
        if self.signup is not None or "login" in auth:
            user_id = self._user_id_path()
            auth["user_id_path"] = user_id
            if user_id is None:
                notes.append("no user id in the sign-up (or log-in) answer: {user.id} is unknown")
        if auth.get("scheme") in ("bearer", "basic") and self.signup is None:
            notes.append(
                "no sign-up operation found: the simulated users must already exist on the "
                "target, or add auth.signup"
            )
        return auth

    def _security_schemes(self) -> dict[str, Any]:
        defined = _map(_map(self.doc.get("components")).get("securitySchemes"))
        if not isinstance(defined, Mapping):
            return {}
        used: set[str] = set()
        for req in _seq(self.doc.get("security")):
            if isinstance(req, Mapping):
                used.update(str(k) for k in req)
        for op in self.ops:
            for req in _seq(op.spec.get("security")):
                if isinstance(req, Mapping):
                    used.update(str(k) for k in req)
        names = [n for n in defined if n in used] or list(defined)
        return {n: defined[n] for n in names if isinstance(defined[n], Mapping)}

    def _auth_request(self, op: _Op, *, signup: bool) -> dict[str, Any]:
        schema, _, _ = op.request_schema()
        request: dict[str, Any] = {"method": op.method, "path": self.prefix + op.path}
        body = _Values(self, {}, user_fields=True, login=not signup).object(
            _norm(schema), required=True, depth=0
        )
        if body is not _SKIP:
            request["body"] = body
        request["expect"] = op.expect()
        return request

    def _user_id_path(self) -> str | None:
        if self.signup is not None:
            found = _created_id(self.signup.response_schema(), self.user_resource or "users")
            if found is not None:
                return f"{found[0]}.{found[1]}" if found[0] else found[1]
            return None
        if self.login is not None:
            return _find_field(
                self.login.response_schema(), ("user_id", "userId", "uid")
            ) or _find_field(self.login.response_schema(), ("id",), depth=2)
        return None

    # -- actions --

    def _skip_reason(self, op: _Op) -> str | None:
        if op is self.signup:
            return "the sign-up: api.auth.signup"
        if op is self.login:
            return "the log-in: api.auth.login"
        if any(s.lower() in _ADMIN_SEGMENTS for s in op.segments):
            return "administrative: simulated users do not call it"
        if _INFRA_PATHS.match(op.path):
            return "infrastructure endpoint, not user behaviour"
        if op.method == "POST" and _HOUSEKEEPING.search(f"{op.path} {op.spec.get('operationId')}"):
            return "token housekeeping: the engine logs in again when needed"
        if op.spec.get("deprecated"):
            return "deprecated"
        partial = [s for s in op.segments if "{" in s and not re.fullmatch(r"\{[^{}]+\}", s)]
        if partial:
            return f"a path parameter inside a segment ({partial[0]}) is not supported"
        _, required, other = op.request_schema()
        if other and required:
            media = ", ".join(str(m) for m in _map(op.spec["requestBody"].get("content")))
            return f"request body is {media}, not JSON"
        for param in op.params:
            if param.get("in") == "cookie" and param.get("required"):
                return f"needs cookie {param.get('name')!r}"
        return None

    def _action(self, op: _Op) -> None:
        reason = self._skip_reason(op)
        if reason is not None:
            if op is not self.signup and op is not self.login:
                self.result.skipped.append((op.label, reason))
            return
        name = self._name(op)
        op.name = name
        picks: dict[str, str] = {}
        notes: list[str] = [
            f"{op.label}" + (f": {op.spec['summary']}" if op.spec.get("summary") else "")
        ]
        action: dict[str, Any] = {"method": op.method}
        values = _Values(self, picks)
        forget: str | None = None
        segments: list[str] = []
        last = len(op.segments) - 1
        for index, segment in enumerate(op.segments):
            if not (segment.startswith("{") and segment.endswith("}")):
                segments.append(segment)
                continue
            pname = segment[1:-1]
            param = next(
                (p for p in op.params if p.get("name") == pname and p.get("in") == "path"), {}
            )
            pschema = _norm(param.get("schema"))
            resource = _resource_of(op.segments, index)
            is_target = index == last
            if (pschema.get("enum") or pschema.get("format") in ("date", "date-time")) and not (
                _id_like(pname)
            ):
                segments.append(str(values.scalar(pschema, pname)))
                continue
            mode = {"read": "seen", "update": "own", "delete": "own"}.get(op.kind, "seen")
            if not is_target:
                mode = "seen"
            placeholder, picked = self._pick(resource, mode, picks, notes)
            segments.append(placeholder)
            if is_target and op.kind == "delete" and picked is not None:
                forget = picked
        path = self.prefix + "/" + "/".join(segments)
        if op.path.endswith("/") and segments:
            path += "/"
        action["path"] = path
        if op.method in ("PUT", "PATCH") and "{user.id}" in path:
            values.user_fields = True  # the user's own profile: keep the identity it logs in with
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for param in op.params:
            where, pname = param.get("in"), str(param.get("name"))
            if not param.get("required") or where not in ("query", "header"):
                continue
            if where == "header" and pname.lower() in ("authorization", "content-type", "accept"):
                continue
            value = values.scalar(_norm(param.get("schema")), pname)
            if value is _SKIP:
                value = "{{word}}"
            if where == "query":
                query[pname] = value
            else:
                headers[pname] = str(value)
        if query:
            action["query"] = query
        schema, required, _ = op.request_schema()
        if schema is not None:
            body = (
                values.object(_norm(schema), required=True, depth=0)
                if _norm(schema).get("type", "object") == "object"
                else values.value(_norm(schema), "body", depth=0, required=True)
            )
            if body is not _SKIP:
                action["body"] = body
            elif required:
                action["body"] = {}
        if headers:
            action["headers"] = headers
        action["expect"] = op.expect()
        if picks:
            action["pick"] = picks
        extract = self._extract(op)
        if extract:
            action["extract"] = extract
        if forget is not None:
            action["forget"] = forget
        missing = sorted({k for k in picks.values() if not self._filled(k)})
        if missing:
            self.impossible.add(name)
            notes.append(
                f"never possible as generated: nothing fills {', '.join(missing)} "
                "(weight 0; give it a producer, or a pool)"
            )
        elif op.method == "DELETE" and "{user.id}" in action["path"] and op.kind == "delete":
            self.impossible.add(name)
            notes.append("deletes the simulated user's own account: weight 0 on purpose")
        self.actions[name] = action
        self.kinds[name] = op.kind
        self.result.notes[name] = notes

    def _name(self, op: _Op) -> str:
        op_id = str(op.spec.get("operationId") or "")
        if op_id:
            suffix = re.sub(r"\W", "_", op.path) + "_" + op.method.lower()
            if op_id.endswith(suffix) and len(op_id) > len(suffix):
                op_id = op_id[: -len(suffix)]  # FastAPI's generated ids: name + path + method
            base = _snake(op_id)
        else:
            words = [re.sub(r"[{}]", "", s) for s in op.segments]
            base = _snake("_".join([op.method.lower(), *words]))
        if base in ("sign_up", "log_in", "delete_account"):
            base = f"{base}_op"  # the engine's own action names
        name, n = base, 2
        while name in self.actions:
            name, n = f"{base}_{n}", n + 1
        return name

    def _pick(
        self, resource: str, mode: str, picks: dict[str, str], notes: list[str]
    ) -> tuple[str, str | None]:
        """The placeholder of an item of ``resource`` and the pick name (None: ``{user.id}``)."""
        seen, own = f"memory.seen_{resource}", f"memory.own_{resource}"
        if resource == self.user_resource and (mode == "own" or not self._filled(seen)):
            return "{user.id}", None
        if mode == "own":
            if self._filled(own):
                key = own
            elif self._filled(seen):
                key = seen
                notes.append(
                    f"nothing creates {resource}: picks from what the user has seen (edit if "
                    "only owners may change them)"
                )
            else:
                key = own
        else:
            key = seen if self._filled(seen) or not self._filled(own) else own
        for pick_name, where in picks.items():
            if where == key:
                return f"{{{pick_name}.id}}", pick_name
        base = _singular(resource)
        base = "other_user" if base == "user" else base
        if not re.match(r"^[A-Za-z_]", base):
            base = f"item_{base}"
        pick_name, n = base, 2
        while pick_name in picks:
            pick_name, n = f"{base}_{n}", n + 1
        picks[pick_name] = key
        return f"{{{pick_name}.id}}", pick_name

    def _filled(self, key: str) -> bool:
        kind, _, name = key.removeprefix("memory.").partition("_")
        if kind == "seen":
            return bool(self.seen_from.get(name) or self.refs_from.get(name))
        return bool(self.own_from.get(name))

    def _extract(self, op: _Op) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for table, prefix in ((self.own_from, "own"), (self.seen_from, "seen")):
            for resource, sources in table.items():
                for source, where, id_field in sources:
                    if source is op:
                        rules.append(
                            {
                                "path": where,
                                "to": f"memory.{prefix}_{resource}",
                                "fields": {"id": id_field},
                            }
                        )
        for resource, sources in self.refs_from.items():
            if self.seen_from.get(resource):
                continue  # a list operation already shows them
            for source, where, ref in sources:
                if source is op:
                    rules.append(
                        {"path": where, "to": f"memory.seen_{resource}", "fields": {"id": ref}}
                    )
        return rules

    def _declare_memory(self) -> None:
        used: set[str] = set()
        for action in self.actions.values():
            used.update(action.get("pick", {}).values())
            used.update(rule["to"] for rule in action.get("extract", []))
        keys = sorted(used, key=lambda k: (k.split("_", 1)[-1], k))
        for key in keys:
            name = key.removeprefix("memory.")
            self.memory[name] = SEEN_BOUND if name.startswith("seen_") else OWN_BOUND

    def _fallback(self) -> str | None:
        for kind in ("list", "other_read"):
            for name, action in self.actions.items():
                if self.kinds[name] == kind and not action.get("pick"):
                    return name
        return None

    def _personas(self) -> dict[str, Any]:
        def weights(column: int) -> dict[str, float]:
            out = {
                name: 0.0 if name in self.impossible else _WEIGHTS[self.kinds[name]][column]
                for name in self.actions
            }
            if not any(w > 0 for w in out.values()):
                out = dict.fromkeys(out, 1.0)
            return out

        return {
            "reader": {
                "description": "Mostly browses and reads; rarely writes.",
                "share": 0.8,
                "sessions_per_day": 3,
                "actions": {"working": weights(0), "relaxing": weights(1)},
            },
            "writer": {
                "description": "Creates and edits often; reads too.",
                "share": 0.2,
                "sessions_per_day": 5,
                "actions": {"working": weights(2), "relaxing": weights(3)},
            },
        }


def _is_token_scheme(scheme: dict[str, Any]) -> bool:
    kind = scheme.get("type")
    if kind == "http":
        return str(scheme.get("scheme", "")).lower() == "bearer"
    return kind in ("oauth2", "openIdConnect")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "api"


def _default_routine() -> dict[str, Any]:
    from sim_engine.model.scenario import default_scenario

    routine: dict[str, Any] = default_scenario().routine.model_dump(mode="json")
    for day in ("weekday", "weekend"):
        routine[day] = [{k: v for k, v in b.items() if v is not None} for b in routine[day]]
    return routine


# -- values ----------------------------------------------------------------------------------


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


_SKIP: Any = _Skip()

_STRING_BY_NAME: tuple[tuple[str, str], ...] = (
    (r"e_?mail(_address)?", "{{email}}"),
    (r"(.*_)?(url|uri|link|website|homepage|href|avatar|image|picture|photo)(_url)?", "{{url}}"),
    (r"(.*_)?(phone|mobile|tel|telephone)(_number)?", "{{phone}}"),
    (r"(.*_)?(city|town)", "{{city}}"),
    (r"(.*_)?colou?r", "{{color}}"),
    (r"(first|given)_?name", "{{first_name}}"),
    (r"(last|family|sur)_?name|surname", "{{last_name}}"),
    (r"(user_?name|handle|login|nick(name)?|screen_name)", "{{username}}"),
    (r"(full_|display_|author_|real_)?name|author|owner", "{{name}}"),
    (r"(.*_)?(title|subject|headline|caption)", "{{title}}"),
    (r"summary|excerpt|tagline|status_text", "{{sentence}}"),
    (
        r"(.*_)?(body|description|text|content|message|comment|bio|about|notes?|details|review)",
        "{{paragraph}}",
    ),
    (r"(.*_)?(tag|category|label|slug|keyword|topic|genre)", "{{tag}}"),
    (r"(.*_)?(uuid|guid)", "{{uuid}}"),
    (r"(.*_)?(date|day|birthday|dob)", "{{date}}"),
    (r"(.*_)?(at|time|timestamp|datetime)", "{{datetime}}"),
    (r"pass(word|wd)?", "{{uuid}}"),
    (r"(.*_)?(word|word_?list|term|query|q|search)", "{{word}}"),
)
_USER_FIELD_BY_NAME: tuple[tuple[str, str], ...] = (
    (r"user_?name|login|handle|nick(name)?|screen_name|user", "{user.username}"),
    (r"e_?mail(_address)?", "{user.email}"),
    (
        r"pass(word|wd)?1?|password_?(confirm|confirmation|again|2)|confirm_?password",
        "{user.password}",
    ),
    (r"(full_|display_|real_)?name", "{user.name}"),
)
_INT_BY_NAME: tuple[tuple[str, int, int], ...] = (
    (r"(.*_)?age", 18, 80),
    (r"(.*_)?year", 1990, 2025),
    (r"(.*_)?(rating|stars|score|priority|level)", 1, 5),
    (r"(.*_)?(count|quantity|qty|amount|number|num|size|limit|per_page|page_size)", 1, 10),
    (r"page", 1, 5),
)


class _Values:
    """Realistic template values for schemas, chosen by property name, format and type."""

    def __init__(
        self,
        builder: _Builder,
        picks: dict[str, str],
        *,
        user_fields: bool = False,
        login: bool = False,
    ) -> None:
        self.builder = builder
        self.picks = picks
        self.user_fields = user_fields
        self.login = login

    def object(self, schema: dict[str, Any], *, required: bool, depth: int) -> Any:
        props = schema.get("properties") or {}
        if not props:
            return {} if required else _SKIP
        needed = set(schema.get("required") or [])
        out: dict[str, Any] = {}
        for name, sub in props.items():
            sub_n = _norm(sub)
            if sub_n.get("readOnly"):
                continue
            must = name in needed
            if not must and name in _ID_FIELDS:
                continue  # the server assigns ids
            if self.login and not must and not re.search(r"user|mail|pass|login", name, re.I):
                continue  # a log-in body carries only what it needs
            value = self.value(sub_n, str(name), depth=depth + 1, required=must)
            if value is not _SKIP:
                out[str(name)] = value
        return out

    def value(
        self,
        schema: dict[str, Any],
        name: str,
        *,
        depth: int,
        required: bool,
        element: bool = False,
    ) -> Any:
        """A template value for any schema (``element``: an array element, so short text)."""
        if "x-circular-ref" in schema or "x-unresolved-ref" in schema:
            return {} if required else _SKIP
        kind = schema.get("type")
        if kind == "object" or (kind is None and "properties" in schema):
            if depth > _MAX_DEPTH:
                return {} if required else _SKIP
            return self.object(schema, required=required, depth=depth)
        if kind == "array":
            if depth > _MAX_DEPTH:
                return [] if required else _SKIP
            items = _norm(schema.get("items"))
            if schema.get("maxItems") == 0:
                return []
            if not required and ("x-circular-ref" in items or "x-unresolved-ref" in items):
                return _SKIP
            item = self.value(items, _singular(name), depth=depth + 1, required=True, element=True)
            if item is _SKIP:
                return [] if required else _SKIP
            count = max(1, min(int(schema.get("minItems") or 1), 10))
            return [item] * count
        return self.scalar(schema, name, required=required, element=element)

    def scalar(
        self, schema: dict[str, Any], name: str, *, required: bool = True, element: bool = False
    ) -> Any:
        """A template value for a string, number, integer or boolean (``_SKIP``: unknown)."""
        snake = _snake(name)
        if self.user_fields:
            for pattern, value in _USER_FIELD_BY_NAME:
                if re.fullmatch(pattern, snake):
                    return value
        if "const" in schema:
            return schema["const"]
        enum = [v for v in schema.get("enum") or [] if v is not None]
        if enum:
            texts = [str(v) for v in enum]
            if (
                len(enum) > 1
                and all(isinstance(v, str) for v in enum)
                and not any(re.search(r"[{}|]", t) for t in texts)
            ):
                return "{{choice:" + "|".join(texts) + "}}"
            return enum[0]
        kind = schema.get("type")
        reference = self._reference(snake)
        if reference is not None and kind in ("integer", "string", None):
            return reference
        if kind == "boolean":
            return "{{bool}}"
        if kind in ("integer", "number"):
            return self._number(schema, snake, integer=kind == "integer")
        if kind not in ("string", None):
            return _SKIP
        if kind is None and not required:
            return _SKIP  # untyped and optional: better left out
        return self._string(schema, snake, "{{word}}" if element else "{{words:3}}")

    def _reference(self, snake: str) -> str | None:
        """``{user.id}`` or ``{pick.id}`` for a property naming another resource's id."""
        match = re.fullmatch(r"(.+)_id", snake)
        if not match:
            return None
        word = match.group(1)
        if word in _USER_REF_WORDS or word.endswith(("_user", "_author")):
            return "{user.id}" if self.builder.user_resource or self.builder.signup else None
        builder = self.builder
        for resource in sorted({op.resource for op in builder.ops if op.resource}):
            if _singular(resource) != word:
                continue
            seen, own = f"memory.seen_{resource}", f"memory.own_{resource}"
            key = seen if builder._filled(seen) else own if builder._filled(own) else None
            if key is None:
                return None
            for pick_name, where in self.picks.items():
                if where == key:
                    return f"{{{pick_name}.id}}"
            pick_name, n = word, 2
            while pick_name in self.picks or pick_name == "user":
                pick_name, n = f"{word}_{n}", n + 1
            self.picks[pick_name] = key
            return f"{{{pick_name}.id}}"
        return None

    def _number(self, schema: dict[str, Any], snake: str, *, integer: bool) -> str:
        lo = _bound(schema, "minimum", "exclusiveMinimum", +1 if integer else 0)
        hi = _bound(schema, "maximum", "exclusiveMaximum", -1 if integer else 0)
        if lo is None or hi is None:
            d_lo, d_hi = 1.0, 100.0
            for pattern, a, b in _INT_BY_NAME:
                if re.fullmatch(pattern, snake):
                    d_lo, d_hi = float(a), float(b)
                    break
            if lo is None and hi is None:
                lo, hi = d_lo, d_hi
            elif lo is None:
                assert hi is not None
                lo = min(d_lo, hi) if d_lo <= hi else hi - (d_hi - d_lo)
            else:
                hi = max(d_hi, lo) if d_hi >= lo else lo + (d_hi - d_lo)
        assert lo is not None and hi is not None
        hi = max(hi, lo)
        if integer:
            return f"{{{{int:{int(-(-lo // 1))}:{int(hi // 1)}}}}}"
        return f"{{{{float:{lo:g}:{hi:g}}}}}"

    def _string(self, schema: dict[str, Any], snake: str, fallback: str) -> Any:
        fmt = str(schema.get("format") or "").lower()
        by_format = {
            "email": "{{email}}", "idn-email": "{{email}}", "uuid": "{{uuid}}",
            "date-time": "{{datetime}}", "date": "{{date}}", "uri": "{{url}}", "url": "{{url}}",
            "iri": "{{url}}", "uri-reference": "{{url}}", "password": "{{uuid}}",
            "ipv4": "192.0.2.10", "ipv6": "2001:db8::10", "hostname": "host.sim-engine.test",
            "byte": "c2ltLWVuZ2luZQ==", "binary": "sim-engine",
        }  # fmt: skip
        text = by_format.get(fmt)
        if text is None:
            for pattern, value in _STRING_BY_NAME:
                if re.fullmatch(pattern, snake):
                    text = value
                    break
        if text is None and schema.get("pattern"):
            example = _example(schema)
            if isinstance(example, str):
                return example  # a documented value is likelier to match the pattern
        if text is None:
            text = fallback
        max_len = schema.get("maxLength")
        min_len = schema.get("minLength")
        long_ones = ("{{paragraph}}", "{{sentence}}", "{{title}}", "{{words:3}}", "{{name}}")
        if isinstance(max_len, int):
            if max_len < 30 and text in long_ones:
                text = "{{word}}"
            elif max_len < 200 and text == "{{paragraph}}":
                text = "{{sentence}}"
        if isinstance(min_len, int) and min_len > 20 and text in ("{{word}}", "{{tag}}"):
            text = "{{paragraph}}"
        return text


def _example(schema: dict[str, Any]) -> Any:
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    if "example" in schema:
        return schema["example"]
    return schema.get("default")


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, step: int) -> float | None:
    value = schema.get(inclusive)
    excl = schema.get(exclusive)
    if isinstance(excl, bool):  # OpenAPI 3.0: a flag on minimum/maximum
        if excl and isinstance(value, (int, float)):
            return float(value) + step
    elif isinstance(excl, (int, float)):
        return float(excl) + step
    return float(value) if isinstance(value, (int, float)) else None


# -- public API ------------------------------------------------------------------------------


def build_scenario(
    doc: dict[str, Any], base_url: str | None = None, source: str = "<openapi>"
) -> ImportResult:
    """Build a starter scenario from an OpenAPI document, with what the import noticed.

    Args:
        doc: an OpenAPI 3.0 / 3.1 document (``$ref`` s resolved or not).
        base_url: the scenario's ``target.url`` (default: ``servers[0].url`` when it is
            absolute and on a loopback host; else none).
        source: where the document came from (for messages and the header comment).

    Returns:
        An :class:`ImportResult` whose ``scenario`` passes ``validate_scenario``.

    Raises:
        OpenApiError: not OpenAPI 3.0/3.1, no paths, or no operation usable as an action.
    """
    doc = resolve_refs(check_document(doc, source), source)
    try:
        result = _Builder(doc, base_url, source).build()
    except OpenApiError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # a part the rules above do not expect (the document does not follow the spec)
        raise OpenApiError(f"{source}: malformed OpenAPI document ({exc})") from None
    except RecursionError:
        raise OpenApiError(f"{source}: nested too deeply") from None
    result.source = source
    return result


def scenario_from_openapi(doc: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    """Return a starter scenario (a mapping) for the API an OpenAPI document describes.

    See :func:`build_scenario` (this is its ``scenario``) and the module docstring
    for the rules.

    Raises:
        OpenApiError: not OpenAPI 3.0/3.1, no paths, or no usable operation.
    """
    return build_scenario(doc, base_url).scenario


def import_openapi(source: str, base_url: str | None = None) -> ImportResult:
    """Load ``source`` (file or loopback URL) and build its scenario.

    When the document names no loopback server and ``base_url`` is None, a URL
    source's origin (``http://127.0.0.1:8000``) becomes ``target.url``.

    Raises:
        OpenApiFetchError: the URL cannot be fetched.
        OpenApiError: the URL is refused (not loopback); the document is unreadable,
            invalid or unsupported.
    """
    doc = load_openapi(source)
    result = build_scenario(doc, base_url, source)
    if _is_url(source) and base_url is None and "target" not in result.scenario:
        parts = urlsplit(source)
        result.scenario = {
            "name": result.scenario["name"],
            "target": {"url": f"{parts.scheme}://{parts.netloc}"},
            **{k: v for k, v in result.scenario.items() if k != "name"},
        }
    return result


def _dump(data: Any, flow: bool | None = None) -> str:
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=flow, allow_unicode=True, width=96
    )


def render_scenario(result: ImportResult | Mapping[str, Any]) -> str:
    """Render a scenario as commented YAML (a header telling what to edit, notes per action).

    Args:
        result: an :class:`ImportResult`, or a bare scenario mapping (header only).
    """
    if not isinstance(result, ImportResult):
        result = ImportResult(scenario=dict(result))
    scenario = result.scenario
    lines = [
        "# sim-engine starter scenario generated by `sim-engine init --from-openapi`",
        "# from "
        + _comment(
            f"{result.source or 'an OpenAPI document'}"
            + (f" ({result.title})" if result.title else "")
            + "."
        ),
        "#",
        "# What to edit (docs/openapi-import.md):",
        "#   * personas.*.actions: relative weights of each action per routine state",
        "#     (reads far exceed writes); an action with weight 0 is never drawn.",
        "#   * api.actions.*.body: generated values ({{sentence}}, {{int:1:100}}, ...)",
        "#     chosen from property names; put real-looking values where they matter.",
        "#   * api.auth: how users sign up and log in (check token_path, user_id_path).",
        "#   * api.memory: what each user remembers (seen_X: listed; own_X: created).",
        "#   * target.url, population, clock: see docs/scenario.md.",
        "# Then: sim-engine validate FILE && sim-engine run --scenario FILE --target URL",
    ]
    if result.header_notes:
        lines += ["#", "# Notes:", *(f"#   * {_comment(n)}" for n in result.header_notes)]
    if result.skipped:
        lines += ["#", "# Operations not turned into actions:"]
        lines += [f"#   {_comment(f'{label}: {reason}')}" for label, reason in result.skipped]
    text = "\n".join(lines) + "\n\n"
    head = {k: v for k, v in scenario.items() if k not in ("personas", "routine", "api")}
    if head:
        text += _dump(head, flow=False)
    if "personas" in scenario:
        text += (
            "\n# Starter personas: edit shares, sessions per day and the action weights"
            "\n# (relative; 0 = never). Reads far exceed writes.\n"
        )
        text += _dump({"personas": scenario["personas"]}, flow=False)
    if "routine" in scenario:
        text += "\n# The daily routine (copied from the default scenario).\n"
        text += _dump({"routine": scenario["routine"]})
    if "api" in scenario:
        text += "\n# The API: one action per operation (see the comment above each).\n"
        text += _annotate_actions(_dump({"api": scenario["api"]}), result.notes)
    return text


def _comment(text: str, limit: int = 200) -> str:
    """One line of comment text (whitespace collapsed, shortened)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _annotate_actions(text: str, notes: dict[str, list[str]]) -> str:
    out: list[str] = []
    in_actions = False
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            in_actions = line == "  actions:"
        elif in_actions and line.startswith("    ") and not line.startswith("     "):
            key = line.strip().split(":", 1)[0].strip("'\"")
            if key in notes:
                out.extend(f"    # {_comment(note)}" for note in notes[key])
        out.append(line)
    return "\n".join(out) + "\n"


def write_scenario(
    result: ImportResult | Mapping[str, Any], path: str | Path, *, force: bool = False
) -> Path:
    """Write a scenario as commented YAML (see :func:`render_scenario`).

    Args:
        result: an :class:`ImportResult`, or a bare scenario mapping.
        path: the file to write.
        force: overwrite an existing file (False: refuse).

    Returns:
        The path written.

    Raises:
        FileExistsError: the file exists and ``force`` is False.
        OSError: it cannot be written.
    """
    target = Path(path)
    text = render_scenario(result)
    if not force and target.exists():
        raise FileExistsError(f"{target}: exists (use --force to overwrite)")
    target.write_text(text, encoding="utf-8")
    return target
