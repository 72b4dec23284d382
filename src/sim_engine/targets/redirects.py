"""Following redirects ourselves, each hop checked against the safety guard.

The aiohttp transport never lets aiohttp follow a redirect (a loopback server
answering ``307`` to another host would otherwise get the request, body and
password included, re-sent there). :func:`follow_redirects` sends one hop at a
time and, on a 3xx with a ``Location``, checks the next URL: a hop to the same
host or to a host the guard allows (loopback, ``safety.allow_hosts``) is
followed, at most :data:`MAX_REDIRECTS` times; any other becomes a failed
response (status 0, a one-line reason) and nothing is sent there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urljoin, urlsplit

from sim_engine.model.redact import is_secret_key
from sim_engine.model.safety import SafetyError, check_target_allowed
from sim_engine.targets.transport import Response

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "SendOnce", "follow_redirects"]

MAX_REDIRECTS = 5
"""Redirect hops followed for one request before it fails."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""Statuses whose ``Location`` is followed (when the guard allows it)."""

SendOnce = Callable[[str, str, "str | None", "dict[str, str] | None"], Awaitable[Response]]
"""``(method, absolute_url, data, headers) -> Response``: one hop, redirects not followed;
the response's ``headers`` carry ``location`` for a 3xx."""


async def follow_redirects(
    send: SendOnce,
    method: str,
    url: str,
    data: str | None,
    headers: dict[str, str] | None,
    allow_hosts: tuple[str, ...],
    first: Response | None = None,
) -> Response:
    """Send ``method url`` through ``send``, following allowed redirects.

    Args:
        send: sends one hop (see :data:`SendOnce`).
        method: the HTTP method; a 303 (and a 301/302 of anything but GET/HEAD)
            continues as a GET without a body, as browsers and aiohttp do.
        url: the absolute first URL (already checked by the caller).
        data: the encoded body, or None.
        headers: per-request headers; on a hop to another origin those naming a
            secret (``Authorization``, ``X-Api-Key``, ``Cookie``) are dropped.
        allow_hosts: hosts allowed besides loopback (``safety.allow_hosts``);
            the first URL's host is always allowed.
        first: the first hop's response when the caller already sent it (a
            transport's fast path that only comes here for a redirect).

    Returns:
        The final response, its latency summed over the hops; a status-0 response
        with a one-line ``error`` when a hop is refused or there are too many.
    """
    first_url = url
    latency_ms = 0.0
    for _ in range(MAX_REDIRECTS + 1):
        resp = first if first is not None else await send(method, url, data, headers)
        first = None
        latency_ms += resp.latency_ms
        location = (resp.headers or {}).get("location")
        if resp.status not in REDIRECT_STATUSES or not location:
            return _with_latency(_without_location(resp), latency_ms)
        next_url = urljoin(url, location)
        try:
            check_target_allowed(next_url, (*allow_hosts, urlsplit(first_url).hostname or ""))
        except SafetyError as exc:
            return Response(0, b"", latency_ms, f"redirect refused ({resp.status}): {exc}")
        if _origin(next_url) != _origin(url) and headers:
            headers = {k: v for k, v in headers.items() if not is_secret_key(k)}
        if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
            method, data = ("HEAD" if method == "HEAD" else "GET"), None
        url = next_url
    return Response(0, b"", latency_ms, f"too many redirects (more than {MAX_REDIRECTS})")


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _without_location(resp: Response) -> Response:
    """The response with the ``location`` header (kept only to follow it) removed."""
    if resp.headers is None or "location" not in resp.headers:
        return resp
    rest = {k: v for k, v in resp.headers.items() if k != "location"}
    return Response(resp.status, resp.body, resp.latency_ms, resp.error, resp.skipped,
                    resp.retries, rest or None)  # fmt: skip


def _with_latency(resp: Response, latency_ms: float) -> Response:
    if resp.latency_ms == latency_ms:
        return resp
    return Response(resp.status, resp.body, latency_ms, resp.error, resp.skipped,
                    resp.retries, resp.headers)  # fmt: skip
