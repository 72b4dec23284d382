"""Load-test mode (seed 004): counts, figures, duration, exit codes; in-process and real HTTP."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import DEMO_LOGIN, DEMO_SIGNUP, assert_one_line_error, importable_module, sim_engine
from sim_engine.api.plugins import load_scenario_with_plugins
from sim_engine.demo.faults import DEFAULT_EXEMPT_PATHS, FaultConfig
from sim_engine.demo.launcher import DemoServer, find_free_port
from sim_engine.model.scenario import ACTIONS, default_scenario, validate_scenario
from sim_engine.runs.load_thresholds import parse_thresholds
from sim_engine.runs.loadtest import (
    LoadOptions,
    LoadTestError,
    action_distribution,
    format_summary,
    run_load,
)

SUMMARY_KEYS = {
    "requests",
    "failed",
    "success_rate",
    "latency_ms",
    "requests_per_second",
    "wall_seconds",
    "by_action",
    "by_status",
    "setup",
    "users",
    "min_request_count",
    "max_request_count",
    "distribution",
    "transport",
    "cut_short",
}


def small(tmp_path: Path, **changes: Any) -> LoadOptions:
    settings: dict[str, Any] = {
        "scenario": default_scenario(),
        "users": 10,
        "min_requests": 5,
        "max_requests": 20,
        "delay_min_ms": 0.0,
        "delay_max_ms": 5.0,
        "target_url": "inprocess",
        "out_dir": tmp_path / "out",
    }
    settings.update(changes)
    return LoadOptions(**settings)


# -- in-process ----------------------------------------------------------------------------


def test_counts_and_figures(tmp_path: Path) -> None:
    options = small(tmp_path)
    result = run_load(options)
    assert 10 * 5 <= result.requests <= 10 * 20
    assert result.completed_users == 10
    assert not result.cut_short and not result.interrupted
    assert sum(t.requests for t in result.by_action.values()) == result.requests
    assert set(result.by_action) <= set(ACTIONS)
    assert {k: t.requests for k, t in result.setup.items()} == {"sign_up": 10, "log_in": 10}
    assert all(t.failed == 0 for t in result.setup.values())
    assert result.success_rate == 1.0  # the demo API injects no faults by default
    lat = result.latency_ms()
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert result.requests_per_second > 0

    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert set(data) >= SUMMARY_KEYS
    assert data["requests"] == result.requests
    assert data["users"] == 10
    assert sum(a["requests"] for a in data["by_action"].values()) == data["requests"]
    assert sum(data["by_status"].values()) == data["requests"]
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p95"] <= data["latency_ms"]["p99"]
    for figures in data["by_action"].values():
        p = figures["latency_ms"]
        assert p["p50"] <= p["p95"] <= p["p99"] <= p["max"]
    assert data["transport"] == {}  # raw by default: no resilient transport, no retries
    assert data["resilient"] is False
    assert sum(a["requests"] for a in data["by_endpoint"].values()) == data["requests"]
    # each share rounded to 6 decimals: 11 actions sum to 1 within 11 x 5e-7
    assert sum(data["distribution"].values()) == pytest.approx(1.0, abs=6e-6)

    lines = format_summary(result)
    assert lines[0].startswith(f"Done: {result.requests} requests from 10 users")
    assert any("p50" in line and "p99" in line for line in lines)


def _faulty_server(tmp_path: Path, **faults: Any) -> DemoServer:
    """The demo server answering 503 at random (sign-up and log-in spared)."""
    exempt = (*DEFAULT_EXEMPT_PATHS, "/users", "/auth/login")
    config = FaultConfig(error_status=503, exempt_paths=exempt, seed=5, **faults)
    return DemoServer(db_path=str(tmp_path / "faulty.db"), faults=config)


def test_raw_by_default_resilient_on_request(tmp_path: Path) -> None:
    with _faulty_server(tmp_path, error_rate=0.4) as server:
        url = server.base_url
        raw = run_load(small(tmp_path, target_url=url, users=4, min_requests=50, max_requests=50))
        res = run_load(
            small(
                tmp_path, target_url=url, users=4, min_requests=50, max_requests=50, resilient=True
            )
        )
    # raw: each request sent once, every 503 the server gave is a failure
    assert raw.requests == 200 and raw.transport == {}
    assert raw.by_status[503] == raw.failed
    assert 0.25 < raw.failed / raw.requests < 0.55
    assert dict(raw.total.errors) == {"http_5xx": raw.failed}
    assert raw.by_status.get(0, 0) == 0  # nothing held back or skipped client-side
    # resilient: GETs are retried, and circuit breakers open (requests not sent at all)
    assert res.transport["retries"] > 0
    assert res.total.errors["skipped"] > 0


def test_abort_on_fail_stops_at_the_first_failed_threshold(tmp_path: Path) -> None:
    rules = parse_thresholds(["error_rate<5%", "rps>1"])
    with _faulty_server(tmp_path, error_rate=0.5) as server:
        options = small(
            tmp_path,
            target_url=server.base_url,
            users=3,
            min_requests=100_000,
            max_requests=100_000,
            delay_min_ms=1.0,
            delay_max_ms=3.0,
            thresholds=rules,
            abort_on_fail=True,
            progress_every_s=0.3,
        )
        result = run_load(options)
    assert result.aborted is not None and result.aborted.threshold.text == "error_rate<5%"
    assert result.cut_short and result.requests < 3 * 100_000
    assert result.wall_s < 10
    assert [v.threshold.text for v in result.failed_verdicts] == ["error_rate<5%"]
    assert format_summary(result)[0].startswith("Aborted (threshold failed)")
    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert data["aborted_by"] == "error_rate<5%"


def test_min_equals_max_gives_exact_counts(tmp_path: Path) -> None:
    result = run_load(small(tmp_path, users=4, min_requests=7, max_requests=7, out_dir=None))
    assert result.requests == 28
    assert not (tmp_path / "out").exists()  # no --out: nothing written


def test_duration_cuts_it_short(tmp_path: Path) -> None:
    console = io.StringIO()
    options = small(
        tmp_path,
        users=5,
        min_requests=10_000,
        max_requests=10_000,
        delay_min_ms=5.0,
        delay_max_ms=10.0,
        duration_s=0.6,
        console=console,
        progress_every_s=0.2,
    )
    result = run_load(options)
    assert result.cut_short  # stopped by the duration, not by the counts
    assert result.completed_users == 0
    assert 0 < result.requests < 5 * 10_000
    assert result.wall_s >= 0.5  # (no upper bound on wall time: the machine may be loaded)
    assert "requests" in console.getvalue()  # progress lines
    assert format_summary(result)[0].startswith("Done (duration reached)")


def test_action_distribution_is_weighted_by_share() -> None:
    base = default_scenario().model_dump(mode="json")
    base["personas"] = {
        "reader": {"share": 3, "actions": {"relaxing": {"browse_feed": 1}}},
        "writer": {
            "share": 1,
            "post_frequency": 2,  # create_post weighs twice as much
            "actions": {"relaxing": {"create_post": 1, "read_post": 1}},
        },
    }
    base["population"]["personas"] = None
    scenario = validate_scenario(base)
    dist = action_distribution(scenario)
    assert dist == pytest.approx(
        {"browse_feed": 0.75, "create_post": 0.25 * 2 / 3, "read_post": 0.25 / 3}
    )
    assert next(iter(dist)) == "browse_feed"  # most likely first
    default = action_distribution(default_scenario())
    assert sum(default.values()) == pytest.approx(1.0)
    assert set(default) <= set(ACTIONS)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_requests": 9, "max_requests": 3}, "--min-request-count (9) is larger"),
        ({"users": 0}, "--users must be at least 1"),
        ({"min_requests": -1}, "cannot be negative"),
        ({"delay_min_ms": 10.0, "delay_max_ms": 1.0}, "--delay-min (10) is larger"),
        ({"duration_s": 0.0}, "--duration must be positive"),
    ],
)
def test_bad_options(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LoadTestError, match=re.escape(message)):
        run_load(small(tmp_path, **changes))


# -- an ``api`` section ----------------------------------------------------------------------

API = {
    "auth": {
        "signup": DEMO_SIGNUP,
        "login": DEMO_LOGIN,
        "login_user_id_path": "user_id",
    },
    "memory": {"seen": 20},
    "actions": {
        "feed": {
            "path": "/posts",
            "query": {"limit": 10},
            "expect": [200],
            "extract": [{"path": "items[*]", "to": "memory.seen"}],
        },
        "open": {
            "path": "/posts/{post.id}",
            "pick": {"post": "memory.seen"},
            "expect": [200],
            "fallback": "feed",
        },
        "write": {
            "method": "POST",
            "path": "/posts",
            "body": {"title": "{{title}}", "body": "{{sentence}}"},
            "expect": [201],
        },
    },
    "workflows": {"skim": {"steps": [{"action": "feed"}, {"action": "open"}]}},
}


def test_api_scenario_runs_its_actions_and_workflows(tmp_path: Path) -> None:
    pytest.importorskip("sim_engine.targets.declarative")
    data = default_scenario().model_dump(mode="json")
    weights = {"feed": 1, "open": 2, "write": 1, "skim": 1}
    data.update(api=API, personas={"p": {"share": 1, "actions": {"relaxing": weights}}})
    data["population"]["personas"] = None
    result = run_load(small(tmp_path, scenario=validate_scenario(data)))
    assert 10 * 5 <= result.requests + result.impossible <= 10 * 20
    assert set(result.by_action) <= {"feed", "open", "write"}
    assert result.by_action["feed"].requests > 0 and result.by_action["write"].requests > 0
    assert result.failed == 0, {k: v.as_dict() for k, v in result.by_action.items()}
    assert all(t.failed == 0 for t in result.setup.values())


# -- plugins take part -----------------------------------------------------------------------

PLUGIN = """
from sim_engine import plugins

SEEN = {"starts": 0, "ends": 0}

@plugins.action("ping_health")
async def ping_health(ctx):
    resp = await ctx.call("GET", "/health")
    assert ctx.user is not None and ctx.token
    return {"status": resp.status}

@plugins.on_session_start
def started(user, sim_t):
    SEEN["starts"] += 1

@plugins.on_session_end
def ended(user, sim_t):
    SEEN["ends"] += 1
"""


@pytest.fixture
def plugin_module(tmp_path: Path) -> Iterator[str]:
    """Write PLUGIN under a unique importable name (removed from sys.modules afterwards)."""
    with importable_module(tmp_path, "sim_load_plugin", PLUGIN) as name:
        yield name


def test_plugin_actions_and_hooks_take_part(tmp_path: Path, plugin_module: str) -> None:
    path = tmp_path / "s.yaml"
    weights = {"ping_health": 1, "browse_feed": 1}
    path.write_text(
        json.dumps(
            {
                "plugins": [plugin_module],
                "personas": {"p": {"share": 1, "actions": {"relaxing": weights}}},
            }
        ),
        encoding="utf-8",
    )
    scenario, _registry = load_scenario_with_plugins(path)
    result = run_load(small(tmp_path, scenario=scenario, users=6))
    assert result.by_action["ping_health"].requests > 0
    assert result.by_action["ping_health"].failed == 0
    assert 6 * 5 <= result.requests <= 6 * 20
    seen = sys.modules[plugin_module].SEEN
    assert seen == {"starts": 6, "ends": 6}


# -- the command, over real HTTP -------------------------------------------------------------


def test_cli_against_the_real_demo_server(tmp_path: Path) -> None:
    out = tmp_path / "load"
    proc = sim_engine(
        "load",
        "--users", "10",
        "--min-request-count", "5",
        "--max-request-count", "20",
        "--delay-min", "0",
        "--delay-max", "5",
        "--seed", "11",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads((out / "load.json").read_text("utf-8"))
    assert 50 <= data["requests"] <= 200
    assert data["seed"] == 11
    assert data["target"].startswith("http://127.0.0.1:")
    # The only failures a healthy demo API gives: reading a post its author has
    # just deleted (404), which concurrent users can always race into.
    failed = {name: tally["failed"] for name, tally in data["by_action"].items()}
    assert all(n == 0 for name, n in failed.items() if name != "read_post"), failed
    assert set(data["by_status"]) <= {"200", "201", "204", "404"}, data["by_status"]
    assert data["by_status"].get("404", 0) == failed.get("read_post", 0)
    assert data["success_rate"] >= 0.95
    assert "Done: " in proc.stdout
    assert "latency p50" in proc.stdout
    assert f"{out / 'load.json'}" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--min-request-count", "20", "--max-request-count", "10"], "is larger than"),
        (["--delay-min", "50", "--delay-max", "10"], "--delay-min (50) is larger"),
        (["--users", "0"], "--users must be at least 1"),
        (["--duration", "soon"], "--duration: not a duration"),
        (["--target", "http://example.com"], "refusing to target example.com"),
    ],
)
def test_cli_bad_input_exits_2(args: list[str], needle: str) -> None:
    line = assert_one_line_error(sim_engine("load", "-q", *args), 2)
    assert needle in line


def test_cli_unreachable_target_exits_1() -> None:
    url = f"http://127.0.0.1:{find_free_port()}"
    line = assert_one_line_error(sim_engine("load", "--target", url, "--users", "2"), 1)
    assert "cannot reach target" in line
