"""The shipped deployment files (issue 15, must-have 5): ``Dockerfile``, ``compose.yaml``,
``deploy/``. Checked by reading them -- ``compose.yaml`` against the Compose
specification's JSON Schema, services, ports, mounted files, and every ``SIM_ENGINE_*``
variable against the real command line and scenario -- and with ``docker compose
config`` too when a container engine with compose is on the machine (no test depends
on one)."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sim_engine.cli.run import run
from sim_engine.runs.envconfig import ENV_PREFIX, load_scenario_env

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
METRICS_PORT = "9464"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _option_variables() -> set[str]:
    """The variables ``sim-engine run`` reads: an explicit envvar, else the automatic one."""
    return {p.envvar if isinstance(p.envvar, str) else f"SIM_ENGINE_{(p.name or '').upper()}"
            for p in run.params}  # fmt: skip


def _check_variables(env: dict[str, str], where: str) -> None:
    """Every ``SIM_ENGINE_X`` is an option of ``run``; the ``SIM_ENGINE__`` ones validate."""
    options = _option_variables()
    for name in env:
        if name.startswith("SIM_ENGINE_") and not name.startswith(ENV_PREFIX):
            assert name in options, f"{where}: {name} is no option of sim-engine run"
    load_scenario_env(None, env)  # raises ScenarioError for a bad field or value


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_dockerfile_is_multi_stage_non_root_and_healthchecked() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM ", text, re.M)) == 2 and "COPY --from=build" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    env = _dockerfile_env()
    _check_variables(env, "Dockerfile")
    assert (
        env["SIM_ENGINE_METRICS_PORT"] == METRICS_PORT and env["SIM_ENGINE_DURATION"] == "forever"
    )
    assert env["SIM_ENGINE_METRICS_HOST"] == "0.0.0.0"  # reachable from Prometheus's container
    assert f"EXPOSE {METRICS_PORT}" in text and f"{METRICS_PORT}/healthz" in text
    assert ".venv" in (ROOT / ".dockerignore").read_text(encoding="utf-8")


def _compose_spec_errors(compose: dict[str, Any]) -> list[str]:
    """What the Compose specification's JSON Schema (compose-spec/compose-spec's
    ``schema/compose-spec.json``, Apache-2.0, as vendored and kept up to date by the
    check-jsonschema package) finds wrong in ``compose``, one line each."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(compose)]  # fmt: skip


def test_compose_file_follows_the_compose_specification() -> None:
    """No container engine needed: the schema ``docker compose config`` checks against."""
    compose = _compose()
    assert _compose_spec_errors(compose) == []
    # the schema does catch a mistake (so an empty list above means something)
    typo = copy.deepcopy(compose)
    typo["services"]["sim-engine"]["enviroment"] = typo["services"]["sim-engine"]["environment"]
    typo["services"]["grafana"]["ports"] = {"3000": 3000}
    errors = _compose_spec_errors(typo)
    assert any("enviroment" in e for e in errors) and any("grafana/ports" in e for e in errors)


def test_compose_services_ports_and_mounted_files() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"demo-api", "sim-engine", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} published beyond loopback"
    sim = services["sim-engine"]
    env = {k: str(v) for k, v in sim["environment"].items()}
    _check_variables({**_dockerfile_env(), **env}, "compose.yaml")
    scenario = load_scenario_env(None, env)
    target_host = env["SIM_ENGINE_TARGET"].split("//")[1].split(":")[0]
    assert target_host in services and target_host in scenario.safety.allow_hosts
    api_port = env["SIM_ENGINE_TARGET"].rsplit(":", 1)[1]
    assert services[target_host]["command"][-3] == api_port  # --port N --db FILE
    control = env["SIM_ENGINE_CONTROL_PORT"]
    assert f"127.0.0.1:{control}:{control}" in sim["ports"]  # the web page, on this machine
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text(encoding="utf-8"))
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"sim-engine:{METRICS_PORT}"]


def test_grafana_is_provisioned_with_the_shipped_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    provisioning = ROOT / next(s for s, t in mounts.items() if t == "/etc/grafana/provisioning")
    sources = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text("utf-8"))
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert sources["datasources"][0]["isDefault"] is True
    providers = yaml.safe_load((provisioning / "dashboards/sim-engine.yaml").read_text("utf-8"))
    path = providers["providers"][0]["options"]["path"]
    dashboards = ROOT / next(s for s, t in mounts.items() if t == path)
    dashboard = json.loads((dashboards / "sim-engine.json").read_text(encoding="utf-8"))
    # provisioning does not fill __inputs: ${DS_PROMETHEUS} must be a datasource variable
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/sim-engine.json"


def test_systemd_unit() -> None:
    text = (ROOT / "deploy/sim-engine.service").read_text(encoding="utf-8")
    sections = re.findall(r"^\[(\w+)\]", text, re.M)
    assert sections == ["Unit", "Service", "Install"]
    env = dict(re.findall(r"^Environment=(\w+)=(.*)$", text, re.M))
    _check_variables(env, "sim-engine.service")
    assert env["SIM_ENGINE_RESUME_IF_EXISTS"] == "true" and env["SIM_ENGINE_DURATION"] == "forever"
    assert re.search(r"^ExecStart=\S+/sim-engine run$", text, re.M)
    assert re.search(r"^KillSignal=SIGTERM$", text, re.M)  # graceful: checkpoints, outputs


def test_docker_compose_config_when_available() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no container engine on this machine")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60)
    if version.returncode != 0:
        pytest.skip("docker has no compose plugin here")
    proc = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
