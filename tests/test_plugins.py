"""Plugins: a module on sys.path declares an action, a generator, a persona and hooks; a
scenario naming it validates (against a registry built from its ``plugins:`` list) and runs
in-process, and the plugin action is recorded. Registries are explicit values: validation
imports nothing by itself, and two registries never see each other's plugins."""

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
    TAG_ATTR,
    PluginError,
    PluginRegistry,
    load_plugins,
    load_scenario_with_plugins,
)
from sim_engine.model.plugin_spec import PluginCatalog, merge_plugin_specs
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    read_scenario_data,
    validate_scenario,
)
from sim_engine.model.templates import ContentPool, TemplateError, render, template_problem
from sim_engine.targets.plugin import PluginTarget, registry_for

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
def plugin_module(tmp_path: Path) -> Iterator[str]:
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


def test_scenario_is_validated_against_the_registry_of_its_plugins(
    tmp_path: Path, plugin_module: str
) -> None:
    scenario, registry = load_scenario_with_plugins(scenario_file(tmp_path, plugin_module))
    assert scenario.plugins == (plugin_module,)
    assert registry.modules == [plugin_module]
    assert scenario.registry is registry  # kept: with_overrides and the run use the same one
    assert "check_health" in scenario.action_names()
    assert "pinger" in scenario.personas  # joined because population.personas names it
    assert scenario.personas["pinger"].actions["relaxing"]["check_health"] == 3.0
    shout = registry.generator("shout")
    assert shout is not None
    assert shout(random.Random(1), "hi").startswith("HI!")
    assert len(registry.hooks) == 1
    again = scenario.with_overrides(seed=5)  # re-validated with the same registry
    assert again.seed == 5 and again.registry is registry
    assert "check_health" in again.action_names()


def test_validation_imports_no_plugin(tmp_path: Path) -> None:
    """Validating a scenario that lists a module under ``plugins:`` without a registry
    neither imports the module nor sees its actions."""
    source = "import sys\nsys.modules[__name__].IMPORTED = True\n" + PLUGIN_SOURCE
    with importable_module(tmp_path, "sim_unimported_plugin", source) as name:
        path = scenario_file(tmp_path, name, population={"initial": 3})
        scenario = load_scenario(path)  # built-in personas only: valid without the plugin
        assert scenario.plugins == (name,)
        assert scenario.registry is None
        assert "check_health" not in scenario.action_names()
        data = read_scenario_data(path)
        Scenario.model_validate(data)
        validate_scenario(data, source="s.yaml")
        assert name not in sys.modules, "validation imported a plugin module"
        naming = scenario_file(
            tmp_path,
            name,
            personas={"p": {"share": 1, "actions": {"relaxing": {"check_health": 1}}}},
            population={"initial": 3},
        )
        with pytest.raises(ScenarioError, match=r"unknown action 'check_health'.*not loaded"):
            load_scenario(naming)
        assert name not in sys.modules
        scenario, _registry = load_scenario_with_plugins(naming)  # the caller loads them
        assert name in sys.modules
        assert "check_health" in scenario.action_names()


def test_unknown_action_is_still_rejected(tmp_path: Path, plugin_module: str) -> None:
    path = scenario_file(
        tmp_path,
        plugin_module,
        personas={"p": {"share": 1, "actions": {"relaxing": {"check_healthz": 1}}}},
        population={"initial": 1},
    )
    with pytest.raises(ScenarioError, match="unknown action 'check_healthz'"):
        load_scenario_with_plugins(path)


def test_bad_plugin_module_is_a_one_line_error(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, "no_such_sim_plugin_module")
    with pytest.raises(ScenarioError) as info:
        load_scenario_with_plugins(path)
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


def test_plugin_that_fails_to_import_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "sim_broken_plugin_x.py").write_text("raise RuntimeError('boom\\nmore')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ScenarioError) as info:
            load_scenario_with_plugins(scenario_file(tmp_path, "sim_broken_plugin_x"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sim_broken_plugin_x", None)
    assert "\n" not in str(info.value)
    assert "sim_broken_plugin_x' failed to import: RuntimeError: boom" in str(info.value)


def test_not_a_module_name(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is not a module name"):
        load_scenario_with_plugins(scenario_file(tmp_path, "plugins/my.py"))


def test_registration_errors() -> None:
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
    with pytest.raises(PluginError, match="not a plugin"):
        PluginRegistry().add(_noop_action)  # no decorator

    async def twice_a(ctx: Any) -> None:
        return None

    async def twice_b(ctx: Any) -> None:
        return None

    plugins.action("twice")(twice_a)
    plugins.action("twice")(twice_b)
    registry = PluginRegistry.from_objects(twice_a, twice_a)  # the same function again: fine
    assert registry.action_names() == {"twice"}
    with pytest.raises(PluginError, match="already registered"):
        PluginRegistry.from_objects(twice_a, twice_b)


def test_decorators_only_tag() -> None:
    """A decorator returns its object unchanged, tagged; no registry learns of it."""

    async def tagged(ctx: Any) -> None:
        return None

    before = load_plugins([], entry_points=False)
    assert plugins.action("tagged_only", endpoint="GET /x")(tagged) is tagged
    assert [(t.kind, t.name, t.endpoint) for t in getattr(tagged, TAG_ATTR)] == [
        ("action", "tagged_only", "GET /x")
    ]
    assert before.action_names() == frozenset()
    assert load_plugins([], entry_points=False).action_names() == frozenset()
    registry = PluginRegistry.from_objects(tagged)
    assert registry.actions["tagged_only"].endpoint == "GET /x"
    assert isinstance(registry, PluginCatalog)


async def _noop_action(ctx: Any) -> None:
    return None


def test_plugin_workflow_joins_an_api_section() -> None:
    @plugins.action("ping")
    async def ping(ctx: Any) -> None:
        return None

    @plugins.workflow("ping_twice")
    def ping_twice() -> dict[str, Any]:
        return {"steps": [{"action": "ping"}, {"action": "browse", "think_s": [1, 2]}]}

    registry = PluginRegistry.from_objects(ping, ping_twice)
    data: dict[str, dict[str, Any]] = {
        "api": {"actions": {"browse": {"path": "/posts"}}},
        "personas": {"p": {"share": 1, "actions": {"relaxing": {"ping_twice": 1}}}},
    }
    out = merge_plugin_specs(data, registry)
    assert out["api"]["workflows"]["ping_twice"]["steps"][0]["action"] == "ping"
    assert "workflows" not in data["api"]  # the input is left alone
    assert merge_plugin_specs(data, None) is data  # no registry: nothing joins
    scenario = validate_scenario(
        {**data, "routine": _routine(), "population": {"initial": 1}}, registry=registry
    )
    assert scenario.api is not None and "ping_twice" in scenario.api.workflows
    with pytest.raises(ScenarioError, match="unknown action 'ping_twice'"):
        validate_scenario({**data, "routine": _routine(), "population": {"initial": 1}})
    clash = {"api": {"actions": {"ping": {"path": "/ping"}}}}
    with pytest.raises(ValueError, match="plugins: plugin action 'ping' has the name"):
        merge_plugin_specs(clash, registry)


def _routine() -> dict[str, Any]:
    day = [{"start": "00:00", "end": "24:00", "state": "relaxing"}]
    return {"weekday": day, "weekend": day}


# -- explicit registries ----------------------------------------------------------------------

ALPHA = """
from sim_engine import plugins

@plugins.action("alpha")
async def alpha(ctx):
    return None

@plugins.generator("alpha_word")
def alpha_word(rng, *args):
    return "alpha-" + "-".join(args)

@plugins.hook
class Hook:
    made = 0

    def __init__(self):
        type(self).made += 1

    def on_session_start(self, user, sim_t):
        pass
"""

BETA = """
from sim_engine import plugins

@plugins.action("beta")
async def beta(ctx):
    return None
"""


def test_two_registries_do_not_see_each_other(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        importable_module(tmp_path / "a", "sim_alpha_plugin", ALPHA) as alpha,
        importable_module(tmp_path / "b", "sim_beta_plugin", BETA) as beta,
    ):
        ra = load_plugins([alpha], entry_points=False)
        rb = load_plugins([beta], entry_points=False)
        both = load_plugins([alpha, beta, alpha], entry_points=False)  # a repeat is skipped
        assert ra.action_names() == {"alpha"}
        assert rb.action_names() == {"beta"}
        assert both.action_names() == {"alpha", "beta"}
        assert both.modules == [alpha, beta]
        assert ra.generator("alpha_word") is not None and rb.generator("alpha_word") is None
        assert sys.modules[alpha].Hook.made == 2  # each registry gets its own hook instance
        assert len(ra.hooks) == 1 and rb.hooks == []

        personas = {"p": {"share": 1, "actions": {"relaxing": {"alpha": 1, "browse_feed": 1}}}}
        data = {"personas": personas, "routine": _routine(), "population": {"initial": 1}}
        assert "alpha" in validate_scenario(data, registry=ra).action_names()
        with pytest.raises(ScenarioError, match="unknown action 'alpha'"):
            validate_scenario(data, registry=rb)

        # templates: a plugin generator renders only with the registry that has it
        rng = random.Random(1)
        assert render("{{alpha_word:x:y}}", {}, rng, registry=ra) == "alpha-x-y"
        assert ContentPool(1, size=40, registry=ra).generate("alpha_word", "z", rng) == "alpha-z"
        with pytest.raises(TemplateError, match="unknown generator"):
            render("{{alpha_word}}", {}, rng, registry=rb)
        with pytest.raises(TemplateError, match="unknown generator"):
            render("{{alpha_word}}", {}, rng)
        assert template_problem({"t": "{{alpha_word}}"}, registry=ra) is None
        assert template_problem({"t": "{{alpha_word}}"}) == "unknown generator {{alpha_word}}"


def test_the_run_uses_the_registry_the_scenario_was_validated_with(
    tmp_path: Path, plugin_module: str
) -> None:
    scenario, registry = load_scenario_with_plugins(scenario_file(tmp_path, plugin_module))
    assert registry_for(scenario) is registry
    other = PluginRegistry()
    assert registry_for(scenario, other) is other  # an explicit one wins
    bare = load_scenario(scenario_file(tmp_path, plugin_module, population={"initial": 2}))
    built = registry_for(bare)  # validated without one: built from scenario.plugins
    assert built is not registry and built.action_names() == {"check_health"}


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


async def test_plugin_target_runs_plugin_actions_and_delegates_the_rest() -> None:
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
    registry = PluginRegistry.from_objects(returns_dict, raises, returns_junk)
    target = PluginTarget(inner, None, registry, seed=1)  # type: ignore[arg-type]

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
    assert registry.action_names() == {"returns_dict", "raises", "returns_junk"}


# -- a whole run ------------------------------------------------------------------------------


@pytest.fixture
def plugin_run(tmp_path: Path, plugin_module: str) -> tuple[Path, Any]:
    from datetime import datetime

    from sim_engine.runs.runner import RunOptions, execute

    scenario, _registry = load_scenario_with_plugins(scenario_file(tmp_path, plugin_module))
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
