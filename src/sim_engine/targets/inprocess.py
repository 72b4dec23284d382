"""In-process: call an ASGI app (the demo API) directly, without sockets.

Uses httpx's ``ASGITransport`` (seed 002: "direct function call to avoid
overhead"). The app runs in the caller's event loop; with the demo app's
``async def`` endpoints the run stays deterministic.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from sim_engine.targets.transport import HINT_HEADERS, Response, TargetUnreachableError

__all__ = ["AsgiTransport"]


class AsgiTransport:
    """Sends requests to an ASGI application in the same process.

    Args:
        app: an ASGI application (e.g. ``sim_engine.demo.create_app()``).
        headers: headers sent with every request.
    """

    base_url = "inprocess://app"

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://inprocess", headers=headers
        )

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Call the app; an exception inside it becomes a status 0 response."""
        started = time.perf_counter()
        try:
            resp = await self._client.request(method, path, json=json_body, headers=headers)
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
