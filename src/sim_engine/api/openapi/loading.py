"""Reading an OpenAPI document: a file or a loopback URL, JSON or YAML, ``$ref`` s resolved.

Part of :mod:`sim_engine.api.openapi` (the package re-exports the public names).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sim_engine.api.openapi.errors import OpenApiError, OpenApiFetchError
from sim_engine.api.openapi.swagger import convert_swagger
from sim_engine.model.safety import SafetyError, check_target_allowed

__all__ = [
    "FETCH_TIMEOUT_S",
    "MAX_DOCUMENT_BYTES",
    "OpenApiError",
    "OpenApiFetchError",
    "check_document",
    "is_url",
    "load_openapi",
    "resolve_refs",
]

FETCH_TIMEOUT_S = 10.0
"""Wall seconds allowed to fetch a document from a URL."""

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
"""Larger documents are refused."""


_REFUSED = "refused: documents are fetched only from loopback hosts (127.0.0.0/8, ::1, localhost)"


class _LoopbackRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a loopback host."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        try:
            check_target_allowed(newurl, ())
        except SafetyError:
            raise OpenApiError(f"{req.full_url}: redirected to {newurl}: {_REFUSED}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def is_url(source: str) -> bool:
    """Whether ``source`` is an ``http(s)://`` URL (else a file path)."""
    return source.lower().startswith(("http://", "https://"))


def _fetch(url: str) -> bytes:
    """Fetch a document from a loopback URL (no proxy, loopback redirects only).

    Raises:
        OpenApiError: refused: the URL (or a redirect) leaves loopback; too large.
        OpenApiFetchError: unreachable, HTTP error, timeout.
    """
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
    """Check that ``doc`` is an OpenAPI 3.0 / 3.1 or Swagger 2.0 document with paths.

    A Swagger 2.0 document is converted to OpenAPI 3.0 first (by ``swagger2openapi``,
    see :mod:`sim_engine.api.openapi.swagger`).

    Returns:
        The OpenAPI 3 document (a dict).

    Raises:
        OpenApiError: one line: not a mapping, another Swagger or OpenAPI version, no
            paths, or a Swagger 2.0 document that could not be converted.
    """
    if not isinstance(doc, Mapping):
        raise OpenApiError(f"{source}: not an OpenAPI document (the top level is not a mapping)")
    if "swagger" in doc:
        if not re.match(r"^2\.0(\.\d+)?$", str(doc.get("swagger"))):
            raise OpenApiError(
                f"{source}: Swagger {doc.get('swagger')} is not supported "
                "(use Swagger 2.0, OpenAPI 3.0 or 3.1)"
            )
        if not isinstance(doc.get("paths"), Mapping) or not doc.get("paths"):
            raise OpenApiError(f"{source}: the document has no paths: nothing to simulate")
        doc = convert_swagger(doc, source)
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
    """Read an OpenAPI 3.0 / 3.1 or Swagger 2.0 document (YAML or JSON) from a file or a
    loopback URL; Swagger 2.0 is converted to OpenAPI 3.0 (see :func:`check_document`).

    Local ``$ref`` s (``#/components/...``) are resolved (see :func:`resolve_refs`).

    Args:
        source: a file path, or an ``http(s)://`` URL on a loopback host (127.0.0.0/8,
            ::1, localhost); fetched with a short timeout, without proxies.

    Returns:
        The resolved document.

    Raises:
        OpenApiFetchError: a URL that cannot be fetched (unreachable, HTTP error, timeout).
        OpenApiError: a URL outside loopback, unreadable file, invalid JSON/YAML, not
            OpenAPI 3.0/3.1 or a convertible Swagger 2.0, no paths, or a ``$ref`` to
            nothing.
            One line naming the source.
    """
    if is_url(source):
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
