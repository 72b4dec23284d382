"""The load test's pyreqwest transport answers exactly as the aiohttp one does.

Every request below goes to an aiohttp server on 127.0.0.1 through both
:class:`ReqwestTransport` and :class:`AiohttpTransport`; the responses must
agree field for field (status, body, error, back-off hints), and the network
failures must fall into the same kinds of :func:`error_kind`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from helpers import Starter
from sim_engine.demo.launcher import find_free_port
from sim_engine.runs.load_stats import error_kind
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.reqwest import ReqwestTransport
from sim_engine.targets.transport import Form, Response, TargetUnreachableError

CAP = 1000
"""The size limit the tests set (bytes)."""

Transports = tuple[ReqwestTransport, AiohttpTransport]


def _app(stats: dict[str, int]) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "type": request.headers.get("Content-Type"),
                "marker": request.headers.get("X-Synthetic"),
                "sim_time": request.headers.get("X-Sim-Time"),
                "body": await request.text(),
            }
        )

    async def sized(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if kind == "small":
            return web.Response(body=b"y" * CAP)
        if kind == "big":
            return web.Response(body=b"y" * (CAP + 1))
        if kind == "gzip":
            body = gzip.compress(b"\0" * 100_000)
            return web.Response(body=body, headers={"Content-Encoding": "gzip"})
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(4 if kind == "chunked" else 2):
            await resp.write(b"z" * 400)
        await resp.write_eof()
        return resp

    async def busy(_: web.Request) -> web.Response:
        stats["busy"] += 1
        return web.Response(status=503, headers={"Retry-After": "7", "Backoff": "3"})

    async def moved(request: web.Request) -> web.Response:
        target = request.query.get("to", "/echo/after")
        return web.Response(status=int(request.match_info["code"]), headers={"Location": target})

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text="late")

    async def hang_up(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()  # mid-body
        return resp

    app = web.Application()
    app.router.add_get("/size/{kind}", sized)
    app.router.add_get("/busy", busy)
    app.router.add_route("*", "/moved/{code}", moved)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang-up", hang_up)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def both(serve: Starter) -> AsyncIterator[tuple[Transports, dict[str, int]]]:
    stats = {"busy": 0}
    url = await serve(_app(stats))
    settings: dict[str, Any] = {
        "timeout_s": 0.4,
        "headers": {"X-Synthetic": "true"},
        "max_response_bytes": CAP,
    }
    pair = (ReqwestTransport(url, 4, **settings), AiohttpTransport(url, 4, **settings))
    try:
        yield pair, stats
    finally:
        for transport in pair:
            await transport.aclose()


def _same(fast: Response, slow: Response) -> tuple[Any, ...]:
    """The fields both must agree on (latency differs)."""
    assert (fast.status, fast.body, fast.error, fast.headers) == (
        slow.status,
        slow.body,
        slow.error,
        slow.headers,
    )
    return fast.status, fast.body, fast.error, fast.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("GET", "/posts?limit=20&offset=0", None, None),
        ("POST", "/posts", {"title": "t", "tags": ["a"]}, {"X-Sim-Time": "2024-01-01T00:00:00Z"}),
        ("PUT", "/posts/3", {"title": "u"}, {"Content-Type": "application/merge+json"}),
        ("DELETE", "/posts/3", None, {"Authorization": "Bearer t"}),
        ("POST", "/token", Form({"grant_type": "password", "username": "a b"}), None),
        ("PATCH", "/users/1", {"name": "é"}, None),
    ],
)
async def test_requests_arrive_and_answer_the_same(
    both: tuple[Transports, dict[str, int]],
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
) -> None:
    (fast, slow), _ = both
    a = await fast.request(method, path, body, dict(headers) if headers else None)
    b = await slow.request(method, path, body, dict(headers) if headers else None)
    _same(a, b)
    echoed = json.loads(a.body)
    assert (echoed["method"], echoed["path"], echoed["marker"]) == (method, path, "true")
    if isinstance(body, Form):
        assert echoed["type"] == "application/x-www-form-urlencoded"
        assert echoed["body"] == "grant_type=password&username=a+b"
    elif body is not None:
        assert json.loads(echoed["body"]) == body
        wanted = (headers or {}).get("Content-Type", "application/json")
        assert echoed["type"] == wanted
    assert a.latency_ms > 0


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/size/small", None),
        ("/size/chunked-small", None),
        ("/size/big", f"{CAP + 1} bytes"),  # Content-Length over the limit: refused unread
        ("/size/chunked", f"over {CAP} bytes"),  # no length: read in chunks, dropped past it
        ("/size/gzip", f"over {CAP} bytes"),  # small on the wire, 100 kB unpacked
    ],
)
async def test_the_size_limit_holds_the_same(
    both: tuple[Transports, dict[str, int]], path: str, error: str | None
) -> None:
    (fast, slow), _ = both
    status, body, told, _ = _same(await fast.request("GET", path), await slow.request("GET", path))
    assert told == (
        error and f"response too large: {error}, limit {CAP} (limits.max_response_bytes)"
    )
    assert (status, bool(body)) == ((200, True) if error is None else (0, False))
    again = await fast.request("GET", "/size/small")  # the pool still works
    assert again.status == 200


async def test_back_off_hints_and_redirects_the_same(
    both: tuple[Transports, dict[str, int]],
) -> None:
    (fast, slow), stats = both
    busy = await fast.request("GET", "/busy"), await slow.request("GET", "/busy")
    status, _, _, hints = _same(*busy)
    assert (status, hints, stats["busy"]) == (503, {"retry-after": "7", "backoff": "3"}, 2)
    for code in (301, 302, 303, 307, 308):
        a = await fast.request("POST", f"/moved/{code}", {"x": 1})
        b = await slow.request("POST", f"/moved/{code}", {"x": 1})
        _same(a, b)
        assert json.loads(a.body)["path"] == "/echo/after"
        assert a.headers is None  # the location is followed, not returned
    away = "/moved/302?to=http://198.51.100.7/steal"
    refused = _same(await fast.request("GET", away), await slow.request("GET", away))
    assert refused[0] == 0 and "redirect refused (302)" in str(refused[2])


async def test_network_failures_fall_into_the_same_kinds(
    both: tuple[Transports, dict[str, int]],
) -> None:
    (fast, slow), _ = both
    timed_out = _same(await fast.request("GET", "/slow"), await slow.request("GET", "/slow"))
    assert timed_out[:3] == (0, b"", "timeout")
    a, b = await fast.request("GET", "/hang-up"), await slow.request("GET", "/hang-up")
    assert (a.status, b.status) == (0, 0)
    assert error_kind(a.status, a.error) == error_kind(b.status, b.error) == "disconnected", (a, b)
    closed = f"http://127.0.0.1:{find_free_port()}"  # nothing listens there
    kinds = []
    for transport in (ReqwestTransport(closed, 2, 2.0), AiohttpTransport(closed, 2, 2.0)):
        try:
            resp = await transport.request("GET", "/")
            kinds.append(error_kind(resp.status, resp.error))
            with pytest.raises(TargetUnreachableError, match=closed):
                await transport.check()
        finally:
            await transport.aclose()
    assert kinds == ["refused", "refused"]


def test_load_picks_the_client_by_option_and_scheme() -> None:
    from sim_engine.model.scenario import default_scenario
    from sim_engine.runs.runner import RunOptions, build_transport

    def built(url: str, client: str) -> str:
        options = RunOptions(
            default_scenario(), url, None, None, 0.0, Path("."), resilient=False,
            http_client=client,
        )  # fmt: skip
        return type(build_transport(url, options)).__name__

    assert built("http://127.0.0.1:9", "reqwest") == "ReqwestTransport"
    assert built("http://127.0.0.1:9", "aiohttp") == "AiohttpTransport"
    assert built("https://127.0.0.1:9", "reqwest") == "AiohttpTransport"  # TLS: aiohttp
    assert RunOptions(default_scenario(), None, None, None, 0.0, Path(".")).http_client == "aiohttp"


async def test_a_redirect_to_https_goes_through_aiohttp(
    both: tuple[Transports, dict[str, int]],
) -> None:
    (fast, slow), _ = both
    port = fast.base_url.rsplit(":", 1)[1]
    to_tls = f"/moved/302?to=https://127.0.0.1:{port}/echo"  # no TLS there: the handshake fails
    status, _, error, _ = _same(
        await fast.request("GET", to_tls), await slow.request("GET", to_tls)
    )
    assert status == 0 and error and error_kind(status, error) in ("tls", "disconnected", "other")


def test_a_failed_tls_handshake_leaves_the_process_exit_code_alone(tmp_path: Path) -> None:
    """pyreqwest 0.15 aborts the interpreter at exit (134) after a failed TLS handshake:
    the transport must never make one itself."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio
        from sim_engine.targets.reqwest import ReqwestTransport

        async def main():
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            transport = ReqwestTransport(f"http://127.0.0.1:{port}", 2, 2.0)
            resp = await transport._send("GET", f"https://127.0.0.1:{port}/", None, None)
            await transport.aclose()
            server.close()
            print("status", resp.status)

        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "status 0" in proc.stdout
