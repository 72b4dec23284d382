"""In-process: call an ASGI app (the demo API) directly, without sockets.

Uses httpx's ``ASGITransport`` (seed 002: "direct function call to avoid
overhead"). The app runs in the caller's event loop; with the demo app's
``async def`` endpoints the run stays deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from sim_engine.model.settings_spec import DEFAULT_MAX_RESPONSE_BYTES
from sim_engine.targets.transport import (
    FORM_CONTENT_TYPE,
    HINT_HEADERS,
    Form,
    Response,
    TargetUnreachableError,
    too_large,
)

__all__ = ["AsgiTransport"]

_Message = MutableMapping[str, Any]
_Send = Callable[[_Message], Awaitable[None]]


class AsgiTransport:
    """Sends requests to an ASGI application in the same process.

    Args:
        app: an ASGI application (e.g. ``sim_engine.demo.create_app()``).
        headers: headers sent with every request.
        max_response_bytes: the largest body taken from the app; a larger one is
            dropped as the app sends it (past the limit, or at once when its
            ``Content-Length`` says so) and comes back as a status 0 response
            whose error names the size.
    """

    base_url = "inprocess://app"

    def __init__(
        self,
        app: Any,
        headers: dict[str, str] | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.app = app
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_CappedApp(app, max_response_bytes)),
            base_url="http://inprocess",
            headers=headers,
        )

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Call the app; an exception inside it, or a body over the size limit, becomes a
        status 0 response."""
        started = time.perf_counter()
        try:
            if isinstance(json_body, Form):
                form_headers = {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})}
                resp = await self._client.request(
                    method, path, content=json_body.encode(), headers=form_headers
                )
            else:
                resp = await self._client.request(method, path, json=json_body, headers=headers)
        except _TooLargeError as exc:
            return Response(0, b"", (time.perf_counter() - started) * 1000.0, str(exc))
        except Exception as exc:  # an app crash is an outcome, not our crash
            return Response(0, b"", (time.perf_counter() - started) * 1000.0, repr(exc)[:200])
        latency_ms = (time.perf_counter() - started) * 1000.0
        hints = {h: v for h in HINT_HEADERS if (v := resp.headers.get(h)) is not None}
        return Response(resp.status_code, resp.content, latency_ms, headers=hints or None)

    async def check(self) -> None:
        """Raise :class:`TargetUnreachableError` if the app cannot answer."""
        resp = await self.request("GET", "/")
        if resp.status == 0:
            raise TargetUnreachableError(f"in-process app failed: {resp.error}")

    async def aclose(self) -> None:
        """Close the client."""
        await self._client.aclose()


class _TooLargeError(Exception):
    """The app's answer passed the size limit (the message is the record's error)."""


class _CappedApp:
    """The app, its answers' bodies counted as it sends them: past ``limit`` bytes the
    answer is abandoned (:class:`_TooLargeError` raised through the app) so that
    nothing more of it is kept."""

    def __init__(self, app: Any, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: _Message, receive: Any, send: _Send) -> None:
        if scope.get("type") != "http":
            await self._app(scope, receive, send)
            return
        limit, seen = self._limit, 0

        async def capped_send(message: _Message) -> None:
            nonlocal seen
            kind = message.get("type")
            if kind == "http.response.start":
                declared = _content_length(message.get("headers") or ())
                if declared is not None and declared > limit:
                    raise _TooLargeError(too_large(limit, declared))
            elif kind == "http.response.body":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLargeError(too_large(limit))
            await send(message)

        await self._app(scope, receive, capped_send)


def _content_length(headers: Any) -> int | None:
    """The ``Content-Length`` among raw ASGI headers (``(name, value)`` byte pairs), or None."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
