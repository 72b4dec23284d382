"""Schema helpers of the OpenAPI import: flattening, field lookup, names, operations.

Part of :mod:`sim_engine.api.openapi` (internal: the package re-exports the public names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ID_FIELDS = ("id", "_id", "uuid", "ID", "Id")
_USER_REF_WORDS = (
    "user", "author", "owner", "creator", "created_by", "poster", "sender", "recipient",
    "member", "account", "profile",
)  # fmt: skip
_ARRAY_FIELDS = ("items", "data", "results", "content", "records", "entries", "rows", "list")


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
    out = _drop_malformed(dict(schema))
    if isinstance(out.get("allOf"), list):
        out = _merge_all_of(out, depth)
    out = _choose_alternative(out, depth)
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [t for t in kind if t != "null" and isinstance(t, str)]
        out["type"] = kinds[0] if kinds else "null"
    if "type" not in out:
        inferred = _inferred_type(out)
        if inferred is not None:
            out["type"] = inferred
    return out


def _drop_malformed(out: dict[str, Any]) -> dict[str, Any]:
    """Drop or repair the parts of a schema that do not have their documented type."""
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
    return out


def _merge_all_of(out: dict[str, Any], depth: int) -> dict[str, Any]:
    """Merge the parts of ``allOf`` into one schema (properties and required lists joined)."""
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
    return merged


def _choose_alternative(out: dict[str, Any], depth: int) -> dict[str, Any]:
    """Replace ``oneOf`` / ``anyOf`` by its first non-null option (the schema's own keys kept)."""
    for combo in ("oneOf", "anyOf"):
        options = out.get(combo)
        if isinstance(options, list) and options:
            chosen = next(
                (o for o in (_norm(x, depth + 1) for x in options) if o.get("type") != "null"),
                {},
            )
            rest = {k: v for k, v in out.items() if k not in ("oneOf", "anyOf")}
            return {**chosen, **{k: v for k, v in rest.items() if k not in chosen}}
    return out


def _inferred_type(out: dict[str, Any]) -> str | None:
    """The type a schema without ``type`` has, from its other keys (None: unknown)."""
    if "properties" in out:
        return "object"
    if "items" in out:
        return "array"
    if "const" in out:
        return _json_type(out["const"])
    if isinstance(out.get("enum"), list) and out["enum"]:
        return _json_type(out["enum"][0])
    return None


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
