"""Template values for request bodies and parameters of the OpenAPI import.

A value is chosen from the property's name, format and type: ``{{email}}`` for
an ``email``, ``{{int:18:80}}`` for an ``age``, ``{user.username}`` in a sign-up
body, ``{post.id}`` for a ``post_id`` that another operation's answers fill.
Part of :mod:`sim_engine.api.openapi` (internal).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from sim_engine.api.openapi.schemas import (
    _ID_FIELDS,
    _USER_REF_WORDS,
    _norm,
    _singular,
    _snake,
)

_MAX_DEPTH = 5  # nesting depth of generated bodies


class _Known(Protocol):
    """What the values need to know of the import in progress (the builder provides it)."""

    def users_known(self) -> bool:
        """Whether the simulated users have ids on the target (a user resource or a sign-up)."""
        ...

    def resources(self) -> list[str]:
        """The resources the document's operations act on, sorted."""
        ...

    def filled(self, key: str) -> bool:
        """Whether some operation fills the memory key ``memory.seen_R`` / ``memory.own_R``."""
        ...

    def stores(self, key: str, field: str) -> bool:
        """Whether every item of the memory key has ``field``."""
        ...


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


_PERMISSIONS = re.compile(r"permissions?|acls?|roles|grants|principals|owners|sharing", re.I)


class _Values:
    """Realistic template values for schemas, chosen by property name, format and type."""

    def __init__(
        self,
        known: _Known,
        picks: dict[str, str],
        *,
        user_fields: bool = False,
        login: bool = False,
    ) -> None:
        self.known = known
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
            if not must and (name in _ID_FIELDS or _PERMISSIONS.fullmatch(str(name))):
                continue  # the server assigns ids; who may do what is the owner's business
            if self.login and not must and not _credential(str(name), sub_n):
                continue  # a log-in body carries only what it needs
            value = self.value(sub_n, str(name), depth=depth + 1, required=must)
            if value is not _SKIP:
                out[str(name)] = value
        if self.user_fields and _nameless_account(schema, out):
            out = {"id": "{user.username}", **out}  # the name HTTP Basic logs in with
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
            return "{user.id}" if self.known.users_known() else None
        known = self.known
        for resource in known.resources():
            if _singular(resource) != word:
                continue
            seen, own = f"memory.seen_{resource}", f"memory.own_{resource}"
            key = seen if known.filled(seen) else own if known.filled(own) else None
            if key is None or not known.stores(key, "id"):
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


def _nameless_account(schema: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether an account body has a password but no name to log in with, and may take an
    ``id`` (declared, or an open object): Kinto's ``{"data": {"password": ...}}``."""
    if "{user.password}" not in body.values() or "id" in body:
        return False
    if {"{user.username}", "{user.email}"} & {v for v in body.values() if isinstance(v, str)}:
        return False
    return (
        "id" in (schema.get("properties") or {})
        or schema.get("additionalProperties", True) is not False
    )


def _credential(name: str, schema: dict[str, Any], depth: int = 3) -> bool:
    """Whether a property is a credential (user name, email, password) or an object
    that holds one (``{"user": {"email": ..., "password": ...}}``)."""
    if re.search(r"user|mail|pass|login", name, re.I):
        return True
    props = schema.get("properties") or {}
    return depth > 1 and any(_credential(str(k), _norm(v), depth - 1) for k, v in props.items())


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
