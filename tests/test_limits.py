"""Issue 13, item 9: the response-size cap, jittered releases after a 429, and
``sim-engine run`` exiting 1 when every action failed.

Servers are aiohttp apps on 127.0.0.1 (the ``serve`` fixture) or ASGI apps called in
process; the 429 releases run on a manual clock.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fastapi import FastAPI
from fastapi.responses import Response as AsgiResponse
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from helpers import FakeClock, Starter, sim_engine
from sim_engine.cli.run import _exit_if_all_failed
from sim_engine.model.scenario import LimitsSpec
from sim_engine.model.settings_spec import DEFAULT_MAX_RESPONSE_BYTES
from sim_engine.targets.http import AiohttpTransport
from sim_engine.targets.inprocess import AsgiTransport
from sim_engine.targets.resilient import ResilientTransport
from sim_engine.targets.transport import Response

CAP = 1000
"""The size limit the tests set (bytes)."""

CHUNK = b"x" * 4096
MAX_CHUNKS = 4000
"""The endless server stops after this many chunks (16 MB) if nobody hangs up."""


# -- the size limit: the scenario key -------------------------------------------------------


def test_the_limit_defaults_to_10_mb_and_is_bounded() -> None:
    assert LimitsSpec().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 10_000_000
    assert LimitsSpec(max_response_bytes=CAP).max_response_bytes == CAP
    for bad in (0, -1, 2**40):
        with pytest.raises(ValidationError, match="max_response_bytes"):
            LimitsSpec(max_response_bytes=bad)


# -- the size limit: aiohttp against a loopback server --------------------------------------


def _sizes_app(stats: dict[str, Any]) -> web.Application:
    """``/small``, ``/big`` (declared length), ``/chunked``, ``/gzip`` (small on the wire,
    large unpacked), ``/endless`` (chunks until the client hangs up, counted in ``stats``)
    and ``/count`` (a large body; every hit counted)."""

    async def small(_: web.Request) -> web.Response:
        return web.Response(body=b"y" * CAP)

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"y" * (CAP + 1))

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(4):
            await resp.write(b"z" * 400)
        await resp.write_eof()
        return resp

    async def packed(_: web.Request) -> web.Response:
        body = gzip.compress(b"\0" * 100_000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for _ in range(MAX_CHUNKS):
                await resp.write(CHUNK)
                stats["chunks"] += 1
        except (ConnectionError, RuntimeError):
            pass
        finally:
            stats["done"].set()
        return resp

    async def count(_: web.Request) -> web.Response:
        stats["hits"] += 1
        return web.Response(body=b"y" * (CAP * 5))

    app = web.Application()
    for path, handler in (
        ("/small", small),
        ("/big", big),
        ("/chunked", chunked),
        ("/gzip", packed),
        ("/endless", endless),
        ("/count", count),
    ):
        app.router.add_get(path, handler)
    return app


@pytest.fixture
async def sizes(serve: Starter) -> tuple[str, dict[str, Any]]:
    stats: dict[str, Any] = {"chunks": 0, "hits": 0, "done": asyncio.Event()}
    return await serve(_sizes_app(stats)), stats


async def test_aiohttp_body_at_the_limit_is_read(sizes: tuple[str, dict[str, Any]]) -> None:
    url, _ = sizes
    transport = AiohttpTransport(url, timeout_s=5, max_response_bytes=CAP)
    try:
        resp = await transport.request("GET", "/small")
    finally:
        await transport.aclose()
    assert (resp.status, len(resp.body), resp.error) == (200, CAP, None)


@pytest.mark.parametrize(
    ("path", "told"),
    [
        ("/big", f"{CAP + 1} bytes"),  # Content-Length over the limit: refused unread
        ("/chunked", f"over {CAP} bytes"),  # no length: read in chunks, dropped past it
        ("/gzip", f"over {CAP} bytes"),  # small on the wire, 100 kB unpacked
    ],
)
async def test_aiohttp_body_over_the_limit_fails_with_its_size(
    sizes: tuple[str, dict[str, Any]], path: str, told: str
) -> None:
    url, _ = sizes
    transport = AiohttpTransport(url, timeout_s=5, max_response_bytes=CAP)
    try:
        resp = await transport.request("GET", path)
        after = await transport.request("GET", "/small")  # the pool still works
    finally:
        await transport.aclose()
    assert (resp.status, resp.body) == (0, b"")
    assert resp.error == f"response too large: {told}, limit {CAP} (limits.max_response_bytes)"
    assert after.status == 200


async def test_aiohttp_stops_reading_an_endless_body(sizes: tuple[str, dict[str, Any]]) -> None:
    url, stats = sizes
    transport = AiohttpTransport(url, timeout_s=10, max_response_bytes=64 * 1024)
    try:
        resp = await transport.request("GET", "/endless")
    finally:
        await transport.aclose()
    assert resp.status == 0 and resp.error is not None
    assert resp.error.startswith("response too large: over 65536 bytes")
    await asyncio.wait_for(stats["done"].wait(), 10)
    assert stats["chunks"] < MAX_CHUNKS  # the client hung up: the server could not go on


async def test_a_body_over_the_limit_is_not_retried(sizes: tuple[str, dict[str, Any]]) -> None:
    url, stats = sizes
    limits = LimitsSpec(max_retries=3, max_response_bytes=CAP)
    inner = AiohttpTransport(url, timeout_s=5, max_response_bytes=CAP)
    transport = ResilientTransport(inner, limits, rng=random.Random(1))
    try:
        resp = await transport.request("GET", "/count")
    finally:
        await transport.aclose()
    assert (resp.status, resp.retries, stats["hits"]) == (0, 0, 1)


# -- the size limit: the in-process transport -----------------------------------------------


def _asgi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/small")
    async def small() -> AsgiResponse:
        return AsgiResponse(b"y" * CAP)

    @app.get("/big")
    async def big() -> AsgiResponse:
        return AsgiResponse(b"y" * (CAP + 1))

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> Any:
            for _ in range(10):
                yield b"z" * 400

        return StreamingResponse(parts())

    return app


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/small", 200, None),
        (
            "/big",
            0,
            f"response too large: {CAP + 1} bytes, limit {CAP} (limits.max_response_bytes)",
        ),
        (
            "/stream",
            0,
            f"response too large: over {CAP} bytes, limit {CAP} (limits.max_response_bytes)",
        ),
    ],
)
async def test_inprocess_body_over_the_limit_fails_with_its_size(
    path: str, status: int, error: str | None
) -> None:
    transport = AsgiTransport(_asgi_app(), max_response_bytes=CAP)
    try:
        resp = await transport.request("GET", path)
    finally:
        await transport.aclose()
    assert (resp.status, resp.error) == (status, error)
    assert len(resp.body) == (CAP if status == 200 else 0)


# -- releases after a 429 are spread ---------------------------------------------------------


class Throttling:
    """Answers the first request 429 ``Retry-After: 2``, then 200; records send times."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[float] = []

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        self.sent.append(self.clock.t)
        await asyncio.sleep(0)
        if len(self.sent) == 1:
            return Response(429, b"", 1.0, headers={"retry-after": "2"})
        return Response(200, b"{}", 1.0)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def _releases(jitter: str, seed: int, waiting: int) -> list[float]:
    """Send times of ``waiting`` callers held by one 429 (``Retry-After: 2``, at t=0)."""
    clock = FakeClock()
    inner = Throttling(clock)
    limits = LimitsSpec.model_validate(
        {"max_retries": 0, "backoff": {"base_s": 0.5, "max_s": 30.0, "jitter": jitter}}
    )
    transport = ResilientTransport(
        inner, limits, now=clock, sleep=clock.sleep, rng=random.Random(seed)
    )
    assert (await transport.request("GET", "/posts/0")).status == 429
    answers = await asyncio.gather(
        *(transport.request("GET", f"/posts/{i}") for i in range(1, waiting + 1))
    )
    assert all(a.status == 200 for a in answers)
    return inner.sent[1:]


async def test_callers_held_by_one_429_are_released_over_a_window() -> None:
    sent = await _releases("full", seed=7, waiting=8)
    # the seeded generator: one draw for the 429's own backoff (the hint, 2 s, wins),
    # then one per held caller, uniform over a quarter of the gate (0.5 s) after it opens
    rng = random.Random(7)
    rng.uniform(0.0, 0.5)
    expected = [2.0 + rng.uniform(0.0, 0.25 * 2.0) for _ in range(8)]
    assert sorted(sent) == sorted(expected)
    assert min(sent) >= 2.0  # never before the server's Retry-After
    assert max(sent) <= 2.5
    assert len(set(sent)) == 8  # no two at the same instant


async def test_without_jitter_callers_are_released_together() -> None:
    assert await _releases("none", seed=7, waiting=4) == [2.0] * 4


# -- sim-engine run exits 1 when every action failed -----------------------------------------


async def test_run_exits_1_when_every_action_failed(serve: Starter, tmp_path: Path) -> None:
    async def boom(_: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", boom)
    url = await serve(app)
    out = tmp_path / "run"
    done = await asyncio.to_thread(
        sim_engine,
        *("run", "--target", url, "--speed", "max", "--duration", "2h", "--users", "3"),
        *("--seed", "1", "--out", str(out), "-q"),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("sim-engine: error: every action failed (")
    assert "status 500 x" in error[0]
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["actions"] > 0 and summary["failed"] == summary["actions"]
    assert "Done:" in done.stdout  # the summary and the outputs come first


@pytest.mark.parametrize(
    ("actions", "failed", "intended"),
    [(5, 4, 0), (0, 0, 0), (3, 0, 3), (4, 1, 2)],
)
def test_run_exits_0_with_a_success_or_no_action(actions: int, failed: int, intended: int) -> None:
    summary = {
        "actions": actions,
        "failed": failed,
        "intended_errors": intended,
        "status_counts": {"500": failed},
    }
    _exit_if_all_failed(summary, Path("out"))  # returns: not every action failed


def test_every_action_failed_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    summary = {
        "actions": 7,
        "failed": 6,
        "intended_errors": 1,
        "status_counts": {"0": 2, "500": 4, "400": 1},
    }
    with pytest.raises(SystemExit) as exited:
        _exit_if_all_failed(summary, Path("out"))
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "sim-engine: error: every action failed (6 of 6; status 500 x4, 0 x2, 400 x1); see out\n"
    )
