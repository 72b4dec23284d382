"""The OpenAPI import's builder and entry points: a document in, a starter scenario out.

Part of :mod:`sim_engine.api.openapi` (the package re-exports :func:`build_scenario`,
:func:`scenario_from_openapi` and :func:`import_openapi`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sim_engine.api.openapi.actions import _ActionSteps
from sim_engine.api.openapi.auth import _AuthSteps
from sim_engine.api.openapi.loading import (
    OpenApiError,
    check_document,
    is_url,
    load_openapi,
    resolve_refs,
)
from sim_engine.api.openapi.schemas import (
    _list_items,
    _map,
    _Op,
    _resource_of,
    _seq,
    _snake,
)
from sim_engine.api.openapi.state import ImportOptions, ImportResult
from sim_engine.model.safety import SafetyError, check_target_allowed

__all__ = ["build_scenario", "import_openapi", "scenario_from_openapi"]

_METHODS = ("get", "post", "put", "patch", "delete")
_IGNORED_METHODS = ("head", "options", "trace")


class _Builder(_AuthSteps, _ActionSteps):
    """Builds the scenario from a resolved document (one use)."""

    def build(self) -> ImportResult:
        info = _map(self.doc.get("info"))
        self.result.title = str(info.get("title") or "api")
        self._servers()
        self._collect()
        self._find_auth()
        self._index_params()
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
                op.kind = "create" if self._is_create(op) else "other_write"
            else:
                op.kind = "other_write"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "api"


def _default_routine() -> dict[str, Any]:
    from sim_engine.model.scenario import default_scenario

    routine: dict[str, Any] = default_scenario().routine.model_dump(mode="json")
    for day in ("weekday", "weekend"):
        routine[day] = [{k: v for k, v in b.items() if v is not None} for b in routine[day]]
    return routine


def build_scenario(
    doc: dict[str, Any],
    base_url: str | None = None,
    source: str = "<openapi>",
    options: ImportOptions | None = None,
) -> ImportResult:
    """Build a starter scenario from an OpenAPI document, with what the import noticed.

    Args:
        doc: an OpenAPI 3.0 / 3.1 document (``$ref`` s resolved or not), or a Swagger
            2.0 one (converted first, see :func:`check_document`).
        base_url: the scenario's ``target.url`` (default: ``servers[0].url`` when it is
            absolute and on a loopback host; else none).
        source: where the document came from (for messages and the header comment).
        options: overrides and what to keep (:class:`ImportOptions`; default: none).

    Returns:
        An :class:`ImportResult` whose ``scenario`` passes ``validate_scenario``.

    Raises:
        OpenApiError: not OpenAPI 3.0/3.1, no paths, or no operation usable as an action.
    """
    doc = resolve_refs(check_document(doc, source), source)
    try:
        result = _Builder(doc, base_url, source, options or ImportOptions()).build()
    except OpenApiError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # a part the rules above do not expect (the document does not follow the spec)
        raise OpenApiError(f"{source}: malformed OpenAPI document ({exc})") from None
    except RecursionError:
        raise OpenApiError(f"{source}: nested too deeply") from None
    result.source = source
    return result


def scenario_from_openapi(
    doc: dict[str, Any], base_url: str | None = None, options: ImportOptions | None = None
) -> dict[str, Any]:
    """Return a starter scenario (a mapping) for the API an OpenAPI document describes.

    See :func:`build_scenario` (this is its ``scenario``) and the module docstring
    for the rules.

    Raises:
        OpenApiError: not OpenAPI 3.0/3.1, no paths, or no usable operation.
    """
    return build_scenario(doc, base_url, options=options).scenario


def import_openapi(
    source: str, base_url: str | None = None, options: ImportOptions | None = None
) -> ImportResult:
    """Load ``source`` (file or loopback URL) and build its scenario.

    When the document names no loopback server and ``base_url`` is None, a URL
    source's origin (``http://127.0.0.1:8000``) becomes ``target.url``.

    Raises:
        OpenApiFetchError: the URL cannot be fetched.
        OpenApiError: the URL is refused (not loopback); the document is unreadable,
            invalid or unsupported.
    """
    doc = load_openapi(source)
    result = build_scenario(doc, base_url, source, options)
    if is_url(source) and base_url is None and "target" not in result.scenario:
        parts = urlsplit(source)
        result.scenario = {
            "name": result.scenario["name"],
            "target": {"url": f"{parts.scheme}://{parts.netloc}"},
            **{k: v for k, v in result.scenario.items() if k != "name"},
        }
    return result
