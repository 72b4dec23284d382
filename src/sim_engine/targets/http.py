"""Real HTTP with aiohttp: one keep-alive connection pool shared by all users."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from sim_engine.model.settings_spec import DEFAULT_MAX_RESPONSE_BYTES
from sim_engine.targets.redirects import follow_redirects
from sim_engine.targets.transport import (
    FORM_CONTENT_TYPE,
    HINT_HEADERS,
    Form,
    Response,
    TargetUnreachableError,
    too_large,
)

__all__ = ["AiohttpTransport"]

_JSON_HEADERS = {"Content-Type": "application/json"}
_KEPT_HEADERS = (*HINT_HEADERS, "location")  # location: only to follow it (redirects.py)


class AiohttpTransport:
    """Sends requests to ``base_url`` through a pooled aiohttp session.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000`` (no trailing path).
        concurrency: maximum open connections (the pool size).
        timeout_s: total per-request timeout in wall seconds.
        headers: headers sent with every request (user agent, synthetic marker).
        connect_timeout_s: TCP connect timeout in wall seconds (None: only the total);
            waiting for a free pooled connection does not count.
        read_timeout_s: longest silence while reading the response, in wall seconds
            (None: only the total).
        allow_hosts: hosts a redirect may lead to besides loopback and the base URL's
            own host (``safety.allow_hosts``); any other redirect fails the request
            before anything is sent there (:mod:`sim_engine.targets.redirects`).
        max_response_bytes: the largest body read; a larger one is not read past
            the limit (nor at all when its ``Content-Length`` says so) and comes
            back as a status 0 response whose error names the size.
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
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency, keepalive_timeout=30, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers
            )
        return self._session

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send one request; connection errors, timeouts, a body over the size limit and
        redirects the safety guard refuses become status 0 responses (see
        :func:`follow_redirects`)."""
        data = None
        if isinstance(json_body, Form):
            data = json_body.encode()
            headers = {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})}
        elif json_body is not None:
            data = json.dumps(json_body)
            headers = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
        url = self.base_url + path
        return await follow_redirects(self._send, method, url, data, headers, self._allow_hosts)

    async def _send(
        self, method: str, url: str, data: str | None, headers: dict[str, str] | None
    ) -> Response:
        """One hop, redirects not followed (a 3xx keeps its ``location`` header)."""
        started = time.perf_counter()
        try:
            async with self._client().request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                body = await _read_capped(resp, self._max_bytes)
                if isinstance(body, str):
                    return Response(0, b"", (time.perf_counter() - started) * 1000.0, body)
                latency_ms = (time.perf_counter() - started) * 1000.0
                hints = {h: v for h in _KEPT_HEADERS if (v := resp.headers.get(h)) is not None}
                if hints:
                    return Response(resp.status, body, latency_ms, headers=hints)
                return Response(resp.status, body, latency_ms)
        except asyncio.TimeoutError:
            return Response(0, b"", (time.perf_counter() - started) * 1000.0, "timeout")
        except aiohttp.ClientError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Response(0, b"", (time.perf_counter() - started) * 1000.0, reason)

    async def send_once(
        self, method: str, url: str, data: str | None, headers: dict[str, str] | None
    ) -> Response:
        """One hop to an absolute ``url``, redirects not followed (the pyreqwest transport
        sends its ``https://`` hops through it)."""
        return await self._send(method, url, data, headers)

    async def check(self) -> None:
        """Raise :class:`TargetUnreachableError` unless the base URL answers at all."""
        resp = await self.request("GET", "/")
        if resp.status == 0:
            raise TargetUnreachableError(f"cannot reach target {self.base_url}: {resp.error}")

    async def aclose(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | str:
    """Return the body, or the error when it is over ``limit`` bytes (read no further).

    A declared ``Content-Length`` over the limit is refused unread; a plain body
    of declared length is read at once (the parser stops at that length); any
    other (chunked, compressed) is read in chunks and dropped past the limit.
    """
    declared = resp.content_length
    if declared is not None and declared > limit:
        resp.close()  # drop the connection rather than drain the body
        return too_large(limit, declared)
    if declared is not None and "Content-Encoding" not in resp.headers:
        return await resp.read()
    body = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            resp.close()
            return too_large(limit)
    return bytes(body)
