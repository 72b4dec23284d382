"""Pure helpers of the declarative target: outcomes of failed calls, wrong-on-purpose bodies.

No state, no I/O: each turns a response, a template or a request into an
:class:`~sim_engine.model.records.Outcome`, a string or a body.
"""

from __future__ import annotations

import json
from typing import Any

from sim_engine.model.api_spec import ActionSpec, ApiSpec, RequestTemplate, placeholders
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import TemplateError, find
from sim_engine.targets.declarative._memory import IDENTITY_FIELDS, UserState
from sim_engine.targets.transport import Response

__all__ = [
    "created_id",
    "endpoint",
    "error_kinds",
    "excerpt",
    "failed",
    "first_id",
    "invalid",
    "remember_identity",
    "unbuildable",
    "valid_path",
]

_EXCERPT_BYTES = 120


def remember_identity(user: UserState, request: ActionRequest) -> None:
    """Keep the identity fields templates may use from a sign-up or log-in payload."""
    for key, value in (request.payload or {}).items():
        if key in IDENTITY_FIELDS and value is not None:
            user.identity[key] = value


def endpoint(template: RequestTemplate) -> str:
    """Return ``METHOD /path/{template}``, as records and metrics name an action."""
    return f"{template.method} {template.path}"


def excerpt(body: bytes) -> str:
    """Return the first 120 bytes of a body as one line (``(empty body)`` when empty)."""
    if not body:
        return "(empty body)"
    text = body[:_EXCERPT_BYTES].decode("utf-8", "replace").replace("\n", " ")
    return text + ("…" if len(body) > _EXCERPT_BYTES else "")


def failed(
    resp: Response, expect: tuple[int, ...], where: str, post_id: Any = None, retried: int = 0
) -> Outcome | None:
    """Return the outcome of a response that is not a success (no answer, a status not in
    ``expect``), or None for a success. ``retried``: extra sends after a token renewal."""
    if resp.status == 0:
        error = resp.error or "no response"
    elif resp.status not in expect:
        error = f"HTTP {resp.status}: {excerpt(resp.body)}"
    else:
        return None
    return Outcome(
        resp.status,
        False,
        resp.latency_ms,
        error=error,
        post_id=post_id,
        endpoint=where,
        skipped=resp.skipped,
        retries=resp.retries + retried,
    )


def unbuildable(exc: TemplateError, where: str, post_id: Any = None) -> Outcome:
    """Return the skipped outcome of a request whose template cannot be filled."""
    return Outcome(0, False, 0.0, error=f"cannot build the request: {exc}", post_id=post_id,
                   endpoint=where, skipped=True)  # fmt: skip


def first_id(picks: dict[str, tuple[str, dict[str, Any]]]) -> Any:
    """Return the ``id`` of the first picked item (what the records show as touched), or None."""
    for _, item in picks.values():
        return item.get("id")
    return None


def created_id(body: bytes) -> Any:
    """Return the id of the resource a create answer describes, for the records: its ``id``,
    or the ``id`` of the one object it wraps (``{"article": {"id": 7, ...}}``); None when the
    answer is not JSON or has none (or the id is not a string or a number)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and "id" not in doc and len(doc) == 1:
        doc = next(iter(doc.values()))
    value = doc.get("id") if isinstance(doc, dict) else None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def valid_path(path: str) -> bool:
    """Return True when ``path`` is a well-formed JSON path."""
    try:
        find(None, path)
    except TemplateError:
        return False
    return True


def invalid(body: Any) -> Any:
    """Return the body with every field of the wrong type (an empty object or list becomes
    the other)."""
    if isinstance(body, dict):
        return {k: _wrong_type(v) for k, v in body.items()} if body else []
    if isinstance(body, list):
        return [_wrong_type(v) for v in body] if body else {}
    return _wrong_type(body)


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "not-a-boolean"
    if isinstance(value, (int, float)):
        return "not-a-number"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return "not-a-list"
    if isinstance(value, dict):
        return "not-an-object"
    return 12345


def error_kinds(api: ApiSpec, action: ActionSpec) -> list[str]:
    """Return the error kinds that make sense for an action (in ``api.errors.kinds`` order)."""
    kinds: list[str] = []
    for kind in api.errors.kinds:
        if kind == "wrong_password":
            ok = api.auth.login is not None or api.auth.effective_scheme == "basic"
        elif kind == "invalid_payload":
            ok = action.body is not None
        else:
            ok = any(name in action.pick for name, _ in placeholders(action.path))
        if ok and kind not in kinds:
            kinds.append(kind)
    return kinds
