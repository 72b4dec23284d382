"""Plugins: a module on sys.path registers an action, a generator, a persona and hooks; a
scenario naming it validates and runs in-process, and the plugin action is recorded."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import BUSY_START, importable_module, read_jsonl
from sim_engine import plugins
from sim_engine.api.plugins import (
    REGISTRY,
    PluginError,
    PluginTarget,
    prepare_scenario_data,
    registered_action_names,
    registered_generators,
)
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.scenario import ScenarioError, load_scenario

PLUGIN_SOURCE = '''
"""A test plugin: an action, a generator, a persona and session hooks."""

from sim_engine import plugins
from sim_engine.model.scenario import PersonaSpec

SEEN = {"starts": 0, "ends": 0, "users": set(), "calls": []}


@plugins.action("check_health")
async def check_health(ctx):
    resp = await ctx.call("GET", "/health")
    SEEN["calls"].append((ctx.user_id, ctx.user is not None and ctx.user.email, ctx.token))
    return {"status": resp.status, "ok": resp.status == 200, "endpoint": "GET /health"}


@plugins.generator("shout")
def shout(rng, word="hey"):
    return word.upper() + "!" * rng.randint(1, 3)


@plugins.persona("pinger")
def pinger():
    weights = {"check_health": 3.0, "browse_feed": 1.0}
    return PersonaSpec(
        share=0.0,
        sessions_per_day=24.0,
        actions={"working": weights, "relaxing": weights},
        session={"mean_actions": 6.0, "think_time": {"median_s": 20.0, "min_s": 2.0}},
    )


@plugins.hook
class Counter:
    def on_session_start(self, user, sim_t):
        SEEN["starts"] += 1
        SEEN["users"].add(user.user_id)

    def on_session_end(self, user, sim_t):
        SEEN["ends"] += 1
'''


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = REGISTRY.snapshot()
    try:
        yield
    finally:
        REGISTRY.restore(saved)


@pytest.fixture
def plugin_module(tmp_path: Path, clean_registry: None) -> Iterator[str]:
    """Write the test plugin under a unique name and put its directory on sys.path."""
    with importable_module(tmp_path, "sim_test_plugin", PLUGIN_SOURCE) as name:
        yield name


def scenario_file(tmp_path: Path, module: str, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "name": "plugin-test",
        "seed": 4,
        "plugins": [module],
        "population": {
            "initial": 12,
            "signups_per_day": 0,
            "personas": {"pinger": 1.0, "lurker": 0.0, "chatterbox": 0.0, "night_owl": 0.0,
                         "content_curator": 0.0},
        },
        "limits": {"min_action_interval_s": 0},
    }  # fmt: skip
    data.update(extra)
    path = tmp_path / "plugin-scenario.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


# -- registration and discovery -------------------------------------------------------------


def test_scenario_imports_its_plugins_before_validation(tmp_path: Path, plugin_module: str) -> None:
    scenario = load_scenario(scenario_file(tmp_path, plugin_module))
    assert scenario.plugins == (plugin_module,)
    assert "check_health" in scenario.action_names()
    assert "pinger" in scenario.personas  # joined because population.personas names it
    assert scenario.personas["pinger"].actions["relaxing"]["check_health"] == 3.0
    gens = registered_generators()
    assert "shout" in gens
    assert gens["shout"](random.Random(1), "hi").startswith("HI!")
    assert len(REGISTRY.hooks) == 1


def test_unknown_action_is_still_rejected(tmp_path: Path, plugin_module: str) -> None:
    path = scenario_file(
        tmp_path,
        plugin_module,
        personas={"p": {"share": 1, "actions": {"relaxing": {"check_healthz": 1}}}},
        population={"initial": 1},
    )
    with pytest.raises(ScenarioError, match="unknown action 'check_healthz'"):
        load_scenario(path)


def test_bad_plugin_module_is_a_one_line_error(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, "no_such_sim_plugin_module")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert "plugins: cannot import plugin module 'no_such_sim_plugin_module'" in message
    proc = subprocess.run(
        [sys.executable, "-m", "sim_engine", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim-engine: error: "), proc.stderr
    assert "no_such_sim_plugin_module" in lines[0]


def test_plugin_that_fails_to_import_is_a_one_line_error(
    tmp_path: Path, clean_registry: None
) -> None:
    (tmp_path / "sim_broken_plugin_x.py").write_text("raise RuntimeError('boom\\nmore')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ScenarioError) as info:
            load_scenario(scenario_file(tmp_path, "sim_broken_plugin_x"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sim_broken_plugin_x", None)
    assert "\n" not in str(info.value)
    assert "sim_broken_plugin_x' failed to import: RuntimeError: boom" in str(info.value)


def test_not_a_module_name(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is not a module name"):
        load_scenario(scenario_file(tmp_path, "plugins/my.py"))


def test_registration_errors(clean_registry: None) -> None:
    with pytest.raises(PluginError, match="built in"):
        plugins.action("browse_feed")(_noop_action)
    with pytest.raises(PluginError, match="async"):
        plugins.action("sync_one")(lambda ctx: None)
    with pytest.raises(PluginError, match="not an identifier"):
        plugins.generator("bad name")(lambda rng: 1)
    with pytest.raises(PluginError, match="synchronous"):
        plugins.on_session_start(_noop_action)
    with pytest.raises(PluginError, match="neither"):
        plugins.hook(object())
    plugins.action("twice")(_noop_action)
    plugins.action("twice")(_noop_action)  # the same function again: fine (a re-import)
    with pytest.raises(PluginError, match="already registered"):
        plugins.action("twice")(_other_action)


async def _noop_action(ctx: Any) -> None:
    return None


async def _other_action(ctx: Any) -> None:
    return None


def test_plugin_workflow_joins_an_api_section(clean_registry: None) -> None:
    @plugins.action("ping")
    async def ping(ctx: Any) -> None:
        return None

    @plugins.workflow("ping_twice")
    def ping_twice() -> dict[str, Any]:
        return {"steps": [{"action": "ping"}, {"action": "browse", "think_s": [1, 2]}]}

    data = {
        "api": {"actions": {"browse": {"path": "/posts"}}},
        "personas": {"p": {"share": 1, "actions": {"relaxing": {"ping_twice": 1}}}},
    }
    out = prepare_scenario_data(data)
    assert out["api"]["workflows"]["ping_twice"]["steps"][0]["action"] == "ping"
    assert "workflows" not in data["api"]  # the input is left alone
    clash = {"api": {"actions": {"ping": {"path": "/ping"}}}}
    with pytest.raises(ValueError, match="plugins: plugin action 'ping' has the name"):
        prepare_scenario_data(clash)


# -- the plugin target --------------------------------------------------------------------


class _Inner:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    async def send(self, request: ActionRequest) -> Outcome:
        self.sent.append(request.action)
        return Outcome(200, True, 1.0)

    async def aclose(self) -> None:
        self.closed = True

    def has(self, user_id: int, key: str) -> bool:
        return key == "memory.x"


async def test_plugin_target_runs_plugin_actions_and_delegates_the_rest(
    clean_registry: None,
) -> None:
    @plugins.action("returns_dict")
    async def returns_dict(ctx: Any) -> dict[str, Any]:
        assert ctx.token == "tok"
        assert ctx.auth_headers()["Authorization"] == "Bearer tok"
        return {"status": 404}

    @plugins.action("raises")
    async def raises(ctx: Any) -> None:
        raise KeyError("nope")

    @plugins.action("returns_junk")
    async def returns_junk(ctx: Any) -> int:
        return 3

    inner = _Inner()
    target = PluginTarget(inner, transport=None, seed=1)  # type: ignore[arg-type]

    def req(action: str) -> ActionRequest:
        return ActionRequest(action, 1, 0.0, "1970-01-01T00:00:00+00:00", "tok")

    out = await target.send(req("returns_dict"))
    assert (out.status, out.ok, out.endpoint) == (404, False, "plugin returns_dict")
    out = await target.send(req("raises"))
    assert out.status == 0 and not out.ok and "KeyError" in (out.error or "")
    out = await target.send(req("returns_junk"))
    assert not out.ok and "not Outcome or dict" in (out.error or "")
    out = await target.send(req("browse_feed"))
    assert out.ok and inner.sent == ["browse_feed"]
    assert target.resolve("raises", 1) == "raises"
    assert target.has(1, "memory.x")  # delegated
    await target.aclose()
    assert inner.closed
    assert registered_action_names() >= {"returns_dict", "raises", "returns_junk"}


# -- a whole run ------------------------------------------------------------------------------


@pytest.fixture
def plugin_run(tmp_path: Path, plugin_module: str) -> tuple[Path, Any]:
    from datetime import datetime

    from sim_engine.runs.runner import RunOptions, execute

    scenario = load_scenario(scenario_file(tmp_path, plugin_module))
    start = datetime.fromisoformat(BUSY_START.replace("Z", "+00:00")).timestamp()
    out = tmp_path / "run"
    execute(
        RunOptions(
            scenario=scenario,
            target_url="inprocess",
            speed=None,
            duration_s=3 * 3600,
            start_s=start,
            out_dir=out,
            control=False,
        )
    )
    return out, sys.modules[plugin_module]


def test_hooks_see_session_starts_and_ends(plugin_run: tuple[Path, Any]) -> None:
    _out, module = plugin_run
    seen = module.SEEN
    assert seen["starts"] > 0
    assert 0 < seen["ends"] <= seen["starts"], (
        "no session end seen: the engine must call on_session_end for every session "
        "that called on_session_start (Simulation._end_session skips sessions that "
        "used all their actions)"
    )
    assert seen["users"] <= set(range(1, 13))


def test_plugin_action_runs_and_is_recorded(plugin_run: tuple[Path, Any]) -> None:
    out, module = plugin_run
    records = read_jsonl(out / "actions.jsonl")
    mine = [r for r in records if r["action"] == "check_health"]
    assert mine, (
        "no check_health record: the engine must pass plugin action names through "
        "(Simulation._bind maps unknown names to browse_feed)"
    )
    assert all(r["ok"] and r["status"] == 200 for r in mine)
    assert all(r["endpoint"] == "GET /health" for r in mine)
    assert all(r["persona"] == "pinger" for r in records)
    calls = module.SEEN["calls"]
    assert len(calls) == len(mine)
    assert all(email and token for _uid, email, token in calls)  # identity and token known
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["actions_by_type"]["check_health"] == len(mine)
