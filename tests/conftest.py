"""Fixtures shared by the test modules (plain helpers are in ``helpers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from helpers import Starter


@pytest.fixture
async def serve() -> AsyncIterator[Starter]:
    """Serve aiohttp apps on free 127.0.0.1 ports: ``await serve(app)`` starts one and
    returns its base URL; all are stopped when the test ends."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
