"""What a load test shows and writes: Locust-compatible CSV, the live view, Prometheus."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from helpers import Starter, sim_engine
from sim_engine.demo.launcher import find_free_port
from sim_engine.model.records import ActionRecord
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.load_csv import LocustCsv, split_name
from sim_engine.runs.load_live import LoadMonitor
from sim_engine.runs.load_stats import LoadStats
from sim_engine.runs.loadtest import LoadOptions, format_summary, run_load, run_load_async

# Locust's own column names (locust/stats.py: requests_csv_columns,
# stats_history_csv_columns, failures_columns), written out here on purpose.
LOCUST_STATS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
LOCUST_HISTORY = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
LOCUST_FAILURES = "Method,Name,Error,Occurrences"


def record(latency_ms: float, endpoint: str, *, status: int = 200, error: str | None = None) -> Any:
    return ActionRecord(
        sim_time="2026-01-01T00:00:00+00:00",
        sim_ts=0.0,
        user_id=1,
        persona="p",
        state="relaxing",
        action="browse_feed" if endpoint.startswith("GET /posts") else "create_post",
        status=status,
        ok=status < 400 and status != 0,
        latency_ms=latency_ms,
        session_id=1,
        endpoint=endpoint,
        error=error,
    )


def read(path: Path) -> tuple[str, list[dict[str, str]]]:
    text = path.read_text("utf-8")
    header = text.splitlines()[0]
    return header, list(csv.DictReader(io.StringIO(text)))


def test_split_name() -> None:
    assert split_name("GET /posts/{id}") == ("GET", "/posts/{id}")
    assert split_name("browse_feed") == ("", "browse_feed")


def test_csv_files_have_locusts_columns_and_our_figures(tmp_path: Path) -> None:
    stats = LoadStats()
    for ms in range(1, 101):  # 1..100 ms on GET /posts
        stats.emit(record(float(ms), "GET /posts"))
    for _ in range(3):
        stats.emit(record(5.0, "POST /posts", status=503))
    stats.emit(record(9.0, "POST /posts", status=0, error="timeout"))
    out = LocustCsv(str(tmp_path / "run"))
    out.open()
    out.append_history(stats, timestamp=1_700_000_000.9, now=10.0, users=7)
    for _ in range(50):  # 50 more requests in the next 2 s
        stats.emit(record(2.0, "GET /posts"))
    out.append_history(stats, timestamp=1_700_000_002.0, now=12.0, users=7)
    out.write_stats(stats, wall_s=4.0)
    out.write_failures(stats)
    out.close()

    header, rows = read(tmp_path / "run_stats.csv")
    assert header == LOCUST_STATS
    by_name = {(r["Type"], r["Name"]): r for r in rows}
    assert list(by_name) == [("GET", "/posts"), ("POST", "/posts"), ("", "Aggregated")]
    get = by_name[("GET", "/posts")]
    assert (get["Request Count"], get["Failure Count"]) == ("150", "0")
    assert float(get["Requests/s"]) == pytest.approx(150 / 4.0)
    assert float(get["Max Response Time"]) == pytest.approx(100.0, rel=0.01)
    agg = by_name[("", "Aggregated")]
    assert (agg["Request Count"], agg["Failure Count"]) == ("154", "4")
    assert float(agg["Failures/s"]) == pytest.approx(1.0)

    header, rows = read(tmp_path / "run_stats_history.csv")
    assert header == LOCUST_HISTORY
    assert [r["Timestamp"] for r in rows] == ["1700000000"] * 3 + ["1700000002"] * 3
    assert {r["User Count"] for r in rows} == {"7"}
    second_get = next(r for r in rows[3:] if r["Name"] == "/posts" and r["Type"] == "GET")
    assert float(second_get["Requests/s"]) == pytest.approx(25.0)  # 50 in 2 s
    assert second_get["Total Request Count"] == "150"
    # the percentiles are the interval's (Locust's current ones: 50 requests at 2 ms),
    # the Total columns the whole test's (1..100 ms and 50 x 2 ms: median 25 ms)
    assert {second_get["50%"], second_get["99%"], second_get["100%"]} == {"2.00"}
    assert float(second_get["Total Median Response Time"]) == pytest.approx(25.0, rel=0.01)
    first_get = next(r for r in rows[:3] if r["Name"] == "/posts" and r["Type"] == "GET")
    assert float(first_get["50%"]) == pytest.approx(50.0, rel=0.01)
    assert float(first_get["100%"]) == pytest.approx(100.0, rel=0.01)
    second_post = next(r for r in rows[3:] if r["Name"] == "/posts" and r["Type"] == "POST")
    assert second_post["50%"] == "N/A"  # no POST in the second interval
    assert second_post["Total Request Count"] == "4"
    second_all = next(r for r in rows[3:] if r["Name"] == "Aggregated")
    assert second_all["50%"] == "2.00" and float(second_all["Total Max Response Time"]) >= 99

    header, rows = read(tmp_path / "run_failures.csv")
    assert header == LOCUST_FAILURES
    assert [(r["Method"], r["Name"], r["Error"], r["Occurrences"]) for r in rows] == [
        ("POST", "/posts", "HTTP 503", "3"),
        ("POST", "/posts", "timeout", "1"),
    ]


def test_monitor_line_reports_the_current_rate() -> None:
    now = [0.0]
    stats = LoadStats()
    console = io.StringIO()
    monitor = LoadMonitor(stats, lambda: 3, console, every_s=2.0, now=lambda: now[0])
    monitor.start()
    for _ in range(10):
        stats.emit(record(1.0, "GET /posts"))
    now[0] = 2.0
    monitor.show()
    for _ in range(40):
        stats.emit(record(1.0, "GET /posts"))
    stats.emit(record(1.0, "POST /posts", status=0, error="Cannot connect: Connect call failed"))
    now[0] = 4.0
    monitor.show()
    monitor.stop()
    first, second = console.getvalue().splitlines()
    assert "10 requests, 5.0 req/s now, 0.0 failures/s" in first
    assert "51 requests, 20.5 req/s now, 0.5 failures/s" in second
    assert "3 users" in second and "errors: refused 1" in second


def test_a_load_test_writes_csv_and_an_endpoint_table(tmp_path: Path) -> None:
    prefix = tmp_path / "csv" / "load"
    console = io.StringIO()
    options = LoadOptions(
        default_scenario(),
        users=4,
        duration_s=2.5,
        min_requests=1_000_000,
        max_requests=1_000_000,
        delay_min_ms=5.0,
        delay_max_ms=10.0,
        target_url="inprocess",
        csv_prefix=str(prefix),
        csv_every_s=0.5,
        console=console,
        progress_every_s=0.5,
    )
    result = run_load(options)
    assert "req/s now" in console.getvalue()  # the live line (not a terminal)
    _, rows = read(Path(f"{prefix}_stats.csv"))
    agg = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(agg["Request Count"]) == result.requests > 0
    endpoints = {f"{r['Type']} {r['Name']}" for r in rows if r["Name"] != "Aggregated"}
    assert endpoints == set(result.by_endpoint)
    _, history = read(Path(f"{prefix}_stats_history.csv"))
    totals = [int(r["Total Request Count"]) for r in history if r["Name"] == "Aggregated"]
    assert len(totals) >= 2  # at least one periodic row set, and the one at the end
    assert totals == sorted(totals) and totals[-1] == result.requests
    assert Path(f"{prefix}_failures.csv").exists()
    lines = format_summary(result)
    assert "  by endpoint:" in lines
    assert any(line.strip().startswith("GET /posts ") for line in lines)


def test_prometheus_metrics_in_load_mode(tmp_path: Path) -> None:
    port = find_free_port()
    options = LoadOptions(
        default_scenario(),
        users=3,
        duration_s=2.0,
        min_requests=1_000_000,
        max_requests=1_000_000,
        delay_min_ms=5.0,
        delay_max_ms=10.0,
        target_url="inprocess",
        metrics_port=port,
    )

    def requests(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("sim_engine_requests_total{")]

    async def scrape_while_running() -> str:
        """Scrape every 0.2 s while the test runs (a loaded machine starts it late);
        the last scrape with more than 10 requests, else the last one."""
        test = asyncio.ensure_future(run_load_async(options, "inprocess", tmp_path))
        url, text = f"http://127.0.0.1:{port}/metrics", ""
        async with aiohttp.ClientSession() as session:
            while not test.done():
                await asyncio.sleep(0.2)
                try:
                    async with session.get(url) as resp:
                        text = await resp.text()
                except aiohttp.ClientError:  # not serving yet, or already stopped
                    continue
                if sum(float(line.rsplit(" ", 1)[1]) for line in requests(text)) > 10:
                    break
        await test
        return text

    lines = requests(asyncio.run(scrape_while_running()))
    assert lines and any('endpoint="GET /posts"' in line for line in lines)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) > 10


def test_cli_csv_and_summary(tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "t"
    proc = sim_engine(
        "load", "--target", "inprocess", "--users", "3", "--duration", "2.5s",
        "--delay-min", "1", "--delay-max", "5", "--csv", str(prefix), "--seed", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"csv: {prefix}_stats.csv" in proc.stdout
    assert "by endpoint:" in proc.stdout
    assert Path(f"{prefix}_stats.csv").read_text("utf-8").count("\n") >= 3  # header, rows


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_monitor_on_a_terminal_draws_a_per_endpoint_table() -> None:
    now = [0.0]
    stats = LoadStats()
    console = _Terminal()
    monitor = LoadMonitor(stats, lambda: 5, console, every_s=2.0, now=lambda: now[0])
    monitor.start()
    for _ in range(30):
        stats.emit(record(3.0, "GET /posts"))
    for _ in range(4):
        stats.emit(record(7.0, "POST /posts", status=503))
    now[0] = 2.0
    monitor.show()
    monitor.stop()
    screen = console.getvalue()
    for text in ("endpoint", "req/s", "fail/s", "p95", "errors", "GET /posts", "POST /posts"):
        assert text in screen, text
    assert "15.0" in screen and "2.0" in screen  # 30 and 4 requests over 2 s
    assert "http_5xx 4" in screen
    assert "req/s now" not in screen  # the table, not the plain line


def _bad_api(garbage: bool) -> web.Application:
    """Sign-up and log-in work; every other route answers 200 with a body that is not JSON
    (``garbage``) or JSON."""

    async def sign_up(request: web.Request) -> web.Response:
        return web.json_response({"id": 1, "username": "u", "name": "n"}, status=201)

    async def log_in(request: web.Request) -> web.Response:
        return web.json_response({"token": "t", "user_id": 1})

    async def other(request: web.Request) -> web.Response:
        if garbage:
            return web.Response(text="<html>not json", content_type="application/json")
        return web.json_response({"items": [], "total": 0, "limit": 20, "offset": 0})

    app = web.Application()
    app.router.add_post("/users", sign_up)
    app.router.add_post("/auth/login", log_in)
    app.router.add_route("*", "/{tail:.*}", other)
    return app


async def test_garbage_bodies_and_a_dead_target_are_errors_of_their_kind(
    serve: Starter, tmp_path: Path
) -> None:
    options = LoadOptions(
        default_scenario(),
        users=3,
        min_requests=40,
        max_requests=40,
        delay_min_ms=5.0,
        delay_max_ms=10.0,
    )
    garbage = await run_load_async(options, await serve(_bad_api(True)), tmp_path)
    assert garbage.requests == 120  # never stopped
    assert garbage.total.errors["garbage_body"] == garbage.failed > 0

    # a target that goes away in the middle of the test (after 20 answers): refused
    # connections, counted, and the test goes on
    seen: list[int] = []

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append(1)
        if len(seen) == 20:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(stop()))
        return await handler(request)

    app = _bad_api(False)
    app.middlewares.append(count)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop() -> None:
        await runner.cleanup()

    dead = await run_load_async(options, f"http://127.0.0.1:{port}", tmp_path)
    assert dead.requests == 120  # every user made its count
    assert dead.total.errors["refused"] > 0, dead.total.errors
    assert dead.failed == sum(dead.total.errors.values())
