"""Configuration from the environment and the scenario's JSON Schema (issue 15, must-have 2).

Precedence, highest first: flag > SIM_ENGINE_<OPTION> > SIM_ENGINE__SECTION__FIELD >
scenario file > defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import assert_one_line_error, sim_engine
from sim_engine.model.scenario import ScenarioError
from sim_engine.runs.envconfig import load_scenario_env, scenario_env

ROOT = Path(__file__).resolve().parent.parent


def test_scenario_fields_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("population:\n  initial: 7\n  max: 900\nclock:\n  speed: 3600\n")
    env = {
        "SIM_ENGINE__POPULATION__INITIAL": "500",  # env beats the file
        "sim_engine__clock__duration": "forever",  # any case
        "SIM_ENGINE__SAFETY__ALLOW_HOSTS": '["demo.example.com"]',  # JSON list
        "SIM_ENGINE__POPULATION__TIMEZONES": '{"Europe/Paris": 1}',  # JSON table, whole
        "SIM_ENGINE__SCHEDULE__HOURS": "09:00-21:00",
        "SIM_ENGINE_SPEED": "60",  # one underscore: a CLI option's, not a scenario field
    }
    scenario = load_scenario_env(str(path), env)
    assert scenario.population.initial == 500 and scenario.population.max == 900  # file kept
    assert scenario.clock.speed == 3600 and scenario.clock.duration == "forever"
    assert scenario.safety.allow_hosts == ("demo.example.com",)
    assert dict(scenario.population.timezones) == {"Europe/Paris": 1.0}
    assert scenario.schedule is not None and scenario.schedule.hours == "09:00-21:00"
    assert load_scenario_env(str(path), {}).population.initial == 7  # file > default
    assert load_scenario_env(None, {}).population.initial != 500


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIM_ENGINE__POPULATION__INITIAL": "lots"}, "population.initial: .*SIM_ENGINE__POP"),
        ({"SIM_ENGINE__POPULATON__INITIAL": "5"}, "'populaton' is not a scenario section"),
        ({"SIM_ENGINE__POPULATION__INITAL": "5"}, "population.inital"),
        ({"SIM_ENGINE__POPULATION__TIMEZONES": "{bad"}, "SIM_ENGINE__POPULATION__TIMEZONES"),
    ],
)
def test_bad_variables_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as info:
        load_scenario_env(None, env)
    assert "\n" not in str(info.value)


def test_only_prefixed_variables_count() -> None:
    assert scenario_env({"PATH": "/bin", "SIM_ENGINE_USERS": "3"}) == {}


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """A short run configured by the environment alone (plus ``args``)."""
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    options = {"SIM_ENGINE_TARGET": "inprocess", "SIM_ENGINE_SPEED": "max",
               "SIM_ENGINE_DURATION": "2h", "SIM_ENGINE_QUIET": "true",
               "SIM_ENGINE_OUT": str(out)}  # fmt: skip
    proc = sim_engine("run", *args, env={**os.environ, **options, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "scenario.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_precedence_flag_then_option_variable_then_scenario_variable(tmp_path: Path) -> None:
    field = {"SIM_ENGINE__POPULATION__INITIAL": "9"}
    assert _run(tmp_path, field)["population"]["initial"] == 9
    both = {**field, "SIM_ENGINE_USERS": "6"}
    assert _run(tmp_path, both)["population"]["initial"] == 6
    assert _run(tmp_path, both, "--users", "4")["population"]["initial"] == 4


def test_kill_switch_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "SIM_ENGINE__SAFETY__ENABLED": "false"}
    proc = sim_engine("run", "--out", str(tmp_path / "r"), env=env, timeout=60)
    assert proc.returncode == 0 and "kill switch" in proc.stdout
    assert not (tmp_path / "r").exists()


def test_schema_command_validates_the_shipped_scenarios(tmp_path: Path) -> None:
    proc = sim_engine("schema", timeout=60)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = [ROOT / "src/sim_engine/model/default_scenario.yaml", *ROOT.glob("examples/*/*.yaml")]
    assert len(files) >= 3
    for path in files:
        # as an editor sees it: YAML timestamps are strings there
        data = json.loads(json.dumps(yaml.safe_load(path.read_text("utf-8")), default=str))
        errors = list(validator.iter_errors(data))
        assert not errors, (path, errors[0].message)
    partial = {"population": {"initial": 5}, "schedule": {"hours": "09:00-21:00"}}
    assert not list(validator.iter_errors(partial))  # missing sections come from defaults
    bad = {"population": {"initial": "lots", "colour": 1}}
    messages = " ".join(e.message for e in validator.iter_errors(bad))
    assert "'lots'" in messages and "colour" in messages
    out = tmp_path / "scenario.schema.json"
    assert sim_engine("schema", "-o", str(out), timeout=60).returncode == 0
    assert json.loads(out.read_text(encoding="utf-8")) == schema


def test_validate_checks_the_scenario_run_would_use(tmp_path: Path) -> None:
    """``validate`` applies the SIM_ENGINE__ variables as ``run`` does: a file that is
    fine alone fails with the variable that breaks it, and a good variable shows."""
    path = tmp_path / "s.yaml"
    path.write_text("population:\n  initial: 7\n")
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SIM_ENGINE")}
    alone = sim_engine("validate", str(path), env=clean, timeout=60)
    assert alone.returncode == 0 and " with " not in alone.stdout, alone.stderr
    assert "lurker 55%" in alone.stdout  # the built-in mix
    persona = "SIM_ENGINE__POPULATION__PERSONAS"
    good = sim_engine("validate", str(path), env={**clean, persona: '{"lurker": 1}'}, timeout=60)
    assert good.returncode == 0, good.stderr
    assert f"ok with {persona} " in good.stdout and "lurker 55%" not in good.stdout
    ghost = sim_engine("validate", str(path), env={**clean, persona: '{"ghost": 1}'}, timeout=60)
    line = assert_one_line_error(ghost, 2)
    assert "unknown persona 'ghost'" in line and f"(environment: {persona})" in line
    bad = sim_engine("validate", str(path), env={**clean, "SIM_ENGINE__POPULATION__INITIAL": "x"},
                     timeout=60)  # fmt: skip
    line = assert_one_line_error(bad, 2)
    assert "population.initial" in line and "SIM_ENGINE__POPULATION__INITIAL" in line


def test_load_and_generate_read_scenario_variables_too(tmp_path: Path) -> None:
    """``load`` and ``generate`` take the scenario ``run`` would use (the variables applied)."""
    off = {**os.environ, "SIM_ENGINE__SAFETY__ENABLED": "false"}
    proc = sim_engine("load", "--target", "inprocess", "--out", str(tmp_path / "l"), env=off)
    assert proc.returncode == 0 and "kill switch" in proc.stdout, proc.stderr
    assert not (tmp_path / "l").exists()
    bad = {**os.environ, "SIM_ENGINE__POPULATION__INITIAL": "lots"}
    generate = ("generate", "--users", "5", "--days", "1", "--start", "2026-01-01")
    for args in (("load", "--target", "inprocess"), generate):
        proc = sim_engine(*args, "--out", str(tmp_path / "x"), env=bad)
        assert "SIM_ENGINE__POPULATION__INITIAL" in assert_one_line_error(proc, 2)
    seeded = {**os.environ, "SIM_ENGINE__SEED": "5"}
    out = tmp_path / "g"
    proc = sim_engine("generate", "--users", "20", "--days", "2", "--start", "2026-01-01",
                      "--out", str(out), "-q", env=seeded, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["run"]["seed"] == 5
