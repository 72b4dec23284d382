"""Real HTTP with pyreqwest (Rust's reqwest/hyper): the load test's fast transport.

The same seam as :class:`~sim_engine.targets.http.AiohttpTransport` (one
keep-alive pool, redirects followed by :func:`follow_redirects` under the
safety guard, the response-size cap, the back-off hints, never raises for
network trouble) over pyreqwest, whose request costs about a third of an
aiohttp ``ClientSession`` request's CPU (``bench/throughput.py``:
``reqwest-raw`` beside ``aiohttp-raw``). ``sim-engine load`` uses it for
``http://`` targets; ``https://`` targets (and ``--http-client aiohttp``) go
through aiohttp, and so does a redirect hop to an ``https://`` URL: pyreqwest
0.15 aborts the interpreter at exit after a failed TLS handshake, and a load
test must survive a TLS error.

Errors are worded like aiohttp's where the load test sorts them into kinds
(:func:`sim_engine.runs.load_stats.error_kind`): ``connection refused``,
``name resolution``, ``timeout``, ``disconnected``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from time import perf_counter
from typing import Any

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import (
    ConnectError,
    PyreqwestError,
    ReadError,
    RequestTimeoutError,
    WriteError,
)

from sim_engine.model.settings_spec import DEFAULT_MAX_RESPONSE_BYTES
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.redirects import REDIRECT_STATUSES, follow_redirects
from sim_engine.targets.transport import (
    FORM_CONTENT_TYPE,
    HINT_HEADERS,
    Form,
    Response,
    TargetUnreachableError,
    too_large,
)

__all__ = ["ReqwestTransport", "network_error"]

_JSON_HEADERS = {"Content-Type": "application/json"}
_KEPT_HEADERS = (*HINT_HEADERS, "location")  # location: only to follow it (redirects.py)


class ReqwestTransport:
    """Sends requests to ``base_url`` through one pooled pyreqwest client.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000`` (no trailing path).
        concurrency: maximum connections open at once (requests beyond wait for one).
        timeout_s: total per-request timeout in wall seconds (waiting for a
            connection included).
        headers: headers sent with every request (user agent, synthetic marker).
        connect_timeout_s: TCP connect timeout in wall seconds (None: only the total).
        read_timeout_s: longest silence while reading, in wall seconds (None: only the total).
        allow_hosts: hosts a redirect may lead to besides loopback and the base
            URL's own host (``safety.allow_hosts``).
        max_response_bytes: the largest body read; a larger one (by its
            ``Content-Length``, or once read past the limit) is a status 0 response
            whose error names the size.
    """

    def __init__(
        self,
        base_url: str,
        concurrency: int = 64,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        *,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        allow_hosts: tuple[str, ...] = (),
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_bytes = max_response_bytes
        self._allow_hosts = allow_hosts
        builder = (
            ClientBuilder()
            .max_connections(concurrency)
            .follow_redirects(False)
            .timeout(timedelta(seconds=timeout_s))
            .gzip(True)
            .deflate(True)
            .default_headers(dict(headers or {}))
        )
        if connect_timeout_s is not None:
            builder = builder.connect_timeout(timedelta(seconds=connect_timeout_s))
        if read_timeout_s is not None:
            builder = builder.read_timeout(timedelta(seconds=read_timeout_s))
        self._builder = builder
        self._client: Client | None = None
        self._tls = AiohttpTransport(  # https:// hops (see the module docstring)
            base_url, concurrency, timeout_s, headers, connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s, allow_hosts=allow_hosts,
            max_response_bytes=max_response_bytes,
        )  # fmt: skip

    def _session(self) -> Client:
        if self._client is None:
            self._client = self._builder.build()
        return self._client

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send one request; connection errors, timeouts, a body over the size limit and
        redirects the safety guard refuses become status 0 responses."""
        data = None
        if isinstance(json_body, Form):
            data = json_body.encode()
            headers = {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})}
        elif json_body is not None:
            data = json.dumps(json_body)
            headers = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
        url = self.base_url + path
        resp = await self._send(method, url, data, headers)
        if resp.status not in REDIRECT_STATUSES:  # the common case: one hop
            return resp
        hosts = self._allow_hosts
        return await follow_redirects(self._send, method, url, data, headers, hosts, resp)

    async def _send(
        self, method: str, url: str, data: str | None, headers: dict[str, str] | None
    ) -> Response:
        """One hop, redirects not followed (a 3xx keeps its ``location`` header); an
        ``https://`` hop goes through aiohttp."""
        if url.startswith("https://"):
            return await self._tls.send_once(method, url, data, headers)
        builder = self._session().request(method, url)
        if headers:
            builder = builder.headers(headers)
        if data is not None:
            builder = builder.body_text(data)
        started = perf_counter()
        try:
            async with builder.build_streamed() as resp:
                status = resp.status
                size = _declared_size(resp, self._max_bytes)
                if isinstance(size, str):
                    body: bytes | str = size
                elif size is not None:  # the common case: read whole, no extra coroutine
                    body = bytes(await resp.bytes())
                else:
                    body = await _read_chunks(resp, self._max_bytes)
                latency_ms = (perf_counter() - started) * 1000.0
                if isinstance(body, str):
                    return Response(0, b"", latency_ms, body)
                kept = _KEPT_HEADERS if status in REDIRECT_STATUSES else HINT_HEADERS
                hints = {h: v for h in kept if (v := resp.get_header(h)) is not None}
        except PyreqwestError as exc:
            return Response(0, b"", (perf_counter() - started) * 1000.0, network_error(exc))
        if hints:
            return Response(status, body, latency_ms, headers=hints)
        return Response(status, body, latency_ms)

    async def check(self) -> None:
        """Raise :class:`TargetUnreachableError` unless the base URL answers at all."""
        resp = await self.request("GET", "/")
        if resp.status == 0:
            raise TargetUnreachableError(f"cannot reach target {self.base_url}: {resp.error}")

    async def aclose(self) -> None:
        """Close the pools."""
        await self._tls.aclose()
        if self._client is not None:
            await self._client.close()
            self._client = None


def _declared_size(resp: Any, limit: int) -> int | str | None:
    """The body's declared plain size (a ``Content-Length`` without ``Content-Encoding``)
    when it can be read whole; the error when it is declared over ``limit`` bytes; None
    when it must be read in chunks (no length, or compressed: the unpacked size is
    unknown)."""
    declared = resp.get_header("content-length")
    if declared is None or not declared.isdigit():
        return None
    size = int(declared)
    if size > limit:
        return too_large(limit, size)
    return size if resp.get_header("content-encoding") is None else None


async def _read_chunks(resp: Any, limit: int) -> bytes | str:
    """Return the body read chunk by chunk, or the error once it passes ``limit`` bytes
    (read no further)."""
    reader = resp.body_reader
    body = bytearray()
    while (chunk := await reader.read_chunk()) is not None:
        body += bytes(chunk)
        if len(body) > limit:
            return too_large(limit)
    return bytes(body)


def network_error(exc: PyreqwestError) -> str:
    """One line for a request that got no answer, worded as aiohttp words it where
    :func:`~sim_engine.runs.load_stats.error_kind` reads the kind.

    Returns:
        ``timeout``; ``cannot connect: connection refused ...``; ``cannot connect:
        name resolution failed ...``; ``cannot connect: <TLS or other cause>``;
        ``server disconnected: ...`` (a read or write error); otherwise the deepest cause.
    """
    causes = [str(c.get("message", "")) for c in (getattr(exc, "details", None) or {}).get(
        "causes", []
    ) or []]  # fmt: skip
    deepest = causes[-1] if causes else str(exc).splitlines()[0]
    text = " ".join(causes).lower()
    if isinstance(exc, RequestTimeoutError):
        return "timeout"
    if isinstance(exc, ConnectError):
        if "refused" in text:
            return f"cannot connect: connection refused ({deepest})"
        if "dns" in text or "lookup address" in text:
            return f"cannot connect: name resolution failed ({deepest})"
        return f"cannot connect: {deepest}"
    if isinstance(exc, (ReadError, WriteError)):
        return f"server disconnected: {deepest}"
    return deepest
