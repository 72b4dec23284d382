"""Scenario fields from the environment: ``SIM_ENGINE__SECTION__FIELD=value`` (issue 15).

Seed 001 configures its always-on simulation with environment variables
(``GROWTH_USERS_PER_DAY``); a container or a systemd unit does the same here. Any
scenario field can be set: the name is ``SIM_ENGINE__`` then the field path with
``__`` between the parts, in any case (``SIM_ENGINE__POPULATION__INITIAL=500``,
``SIM_ENGINE__CLOCK__SPEED=60``, ``SIM_ENGINE__SCHEDULE__TIMEZONE=Europe/Paris``).
Lists and tables are JSON (``SIM_ENGINE__SAFETY__ALLOW_HOSTS='["demo.example.com"]'``)
and replace the file's whole. Values are read by pydantic-settings' environment
source (which knows the scenario's types and decodes JSON where a field is a list or
a table) and validated with the scenario, so a bad value is the same one-line error
as in a file, naming the variables that were set.

Precedence, highest first: a command-line flag (``--users``), its environment
variable (``SIM_ENGINE_USERS``, one underscore: Click's ``auto_envvar_prefix``), a
scenario variable (``SIM_ENGINE__POPULATION__INITIAL``), the scenario file, the
built-in defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Optional

from sim_engine.api.plugins import validate_with_plugins
from sim_engine.model.scenario import Scenario, ScenarioError, default_scenario, read_scenario_data

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = ["ENV_PREFIX", "load_scenario_env", "scenario_env"]

ENV_PREFIX = "SIM_ENGINE__"
"""The prefix of scenario fields in the environment (two underscores)."""


@cache
def _settings_class() -> type[BaseSettings]:
    """A settings class with the scenario's fields, all optional (never instantiated:
    it only tells the environment source the fields' types)."""
    from pydantic import create_model
    from pydantic_settings import BaseSettings

    fields: dict[str, Any] = {
        name: (Optional[info.annotation], None)  # noqa: UP045  (a runtime type expression)
        for name, info in Scenario.model_fields.items()
    }
    return create_model("ScenarioEnvironment", __base__=BaseSettings, **fields)


def scenario_env(environ: Mapping[str, str]) -> dict[str, tuple[tuple[str, ...], Any]]:
    """The scenario fields set in ``environ``: ``{variable: (field path, value)}``.

    Values are strings (the scenario's validation converts them) or, for lists and
    tables, decoded JSON.

    Raises:
        ScenarioError: a variable names no scenario section, or holds bad JSON.
    """
    names = {k: v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    if not names:
        return {}
    for name in names:
        section = name[len(ENV_PREFIX) :].split("__")[0].lower()
        if section not in Scenario.model_fields:
            raise ScenarioError(f"environment: {name}: {section!r} is not a scenario section")
    from pydantic_settings import EnvSettingsSource  # imported when a variable is set

    source = EnvSettingsSource(
        _settings_class(), case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter="__"
    )
    source.env_vars = {k.lower(): v for k, v in names.items()}
    try:
        decoded = source()
    except Exception as exc:  # pydantic-settings' SettingsError: bad JSON for a table
        first = str(exc).splitlines()[0]
        raise ScenarioError(f"environment: {first} ({', '.join(sorted(names))})") from None
    out: dict[str, tuple[tuple[str, ...], Any]] = {}
    for name in sorted(names):
        path = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        value: Any = decoded
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        out[name] = (path, value)
    return out


def _apply(data: dict[str, Any], env: dict[str, tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """``data`` with each variable's value set at its path (replacing what was there)."""
    for name, (path, value) in env.items():
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                if child is not None:
                    raise ScenarioError(f"environment: {name}: {part!r} is not a section")
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return data


def load_scenario_env(path: str | None, environ: Mapping[str, str]) -> Scenario:
    """The scenario file (or the built-in one) with the ``SIM_ENGINE__`` variables applied,
    its plugins loaded, validated.

    Raises:
        ScenarioError: one line naming the file and field (and the variables set, when
            any was).
    """
    env = scenario_env(environ)
    if path is not None:
        data, source = read_scenario_data(path), str(path)
    else:
        data, source = default_scenario().model_dump(mode="json"), "default scenario"
    if not env:
        return validate_with_plugins(data, source=source)[0]
    try:
        return validate_with_plugins(_apply(data, env), source=source)[0]
    except ScenarioError as exc:
        raise ScenarioError(f"{exc} (environment: {', '.join(env)})") from None
