"""The scenario: one YAML file naming the population, routines, personas, clock and target.

Validated with pydantic before anything runs: unknown keys are rejected and
every error names its field path (``personas.lurker.actions.working.browse_feed``).
The default scenario ships inside the package (``default_scenario.yaml``) and
its figures come from seed 002 (the Sim-Engine requirements: Lurker,
Chatterbox, Night Owl, Content Curator; the 00–06 sleeping / 06–09 working /
09–11 relaxing routine table) and from the published facts in DESIGN.md
(reads far exceed writes; 30-minute session inactivity timeout; weekend days
carry 0.5–0.85x a weekday's activity).

The schema is split over :mod:`sim_engine.model.personas_spec` (personas, routine)
and :mod:`sim_engine.model.settings_spec` (population, clock, target, limits,
safety, state, output); this module assembles the whole :class:`Scenario` and
re-exports every name.

Loading is pure: validation never imports plugin code. A scenario whose
``plugins:`` list names modules is validated against a plugin registry the
caller built from that list (``sim_engine.api.plugins.load_scenario_with_plugins``
does both); see :mod:`sim_engine.model.plugin_spec`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import PrivateAttr, ValidationError, ValidationInfo, model_validator

from sim_engine.model.analytics_spec import AnalyticsSpec
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.browser_spec import BrowserSpec, check_browser
from sim_engine.model.builtin import social_api
from sim_engine.model.lifecycle import LifecycleSpec
from sim_engine.model.personas_spec import (
    ACTIONS,
    ROUTINE_STATES,
    FollowUpSpec,
    PersonaSpec,
    RoutineBlock,
    RoutineSpec,
    SessionSpec,
    ThinkTimeSpec,
    _Frozen,
)
from sim_engine.model.plugin_spec import CONTEXT_KEY, PluginCatalog, catalog_of, merge_plugin_specs
from sim_engine.model.schedule_spec import ScheduleSpec
from sim_engine.model.settings_spec import (
    BackoffSpec,
    CircuitBreakerSpec,
    ClockSpec,
    FounderSpec,
    LimitsSpec,
    OutputSpec,
    PopulationSpec,
    SafetySpec,
    StateSpec,
    TargetSpec,
    parse_duration,
    parse_run_duration,
)

__all__ = [
    "ACCOUNT_ACTIONS",
    "ACTIONS",
    "ROUTINE_STATES",
    "AnalyticsSpec",
    "BackoffSpec",
    "CircuitBreakerSpec",
    "ClockSpec",
    "FollowUpSpec",
    "FounderSpec",
    "LimitsSpec",
    "OutputSpec",
    "PersonaSpec",
    "PopulationSpec",
    "RoutineBlock",
    "RoutineSpec",
    "SafetySpec",
    "Scenario",
    "ScenarioError",
    "ScheduleSpec",
    "SessionSpec",
    "StateSpec",
    "TargetSpec",
    "ThinkTimeSpec",
    "default_scenario",
    "load_scenario",
    "parse_duration",
    "parse_run_duration",
    "read_scenario_data",
    "validate_scenario",
]


ACCOUNT_ACTIONS: tuple[str, ...] = ("sign_up", "log_in")
"""Actions every run may record besides the API's own: a user's sign-up and log-in."""


class ScenarioError(ValueError):
    """A scenario is malformed; ``str()`` is one line naming the file and field path."""


class Scenario(_Frozen):
    """A whole scenario (see ``docs/scenario.md``).

    ``plugins``: Python modules whose actions, personas, workflows and generators the
    scenario may use (see ``docs/plugins.md``). Validation does not import them: the
    caller builds a plugin registry from them and passes it in
    (``Scenario.model_validate(data, context={"registry": registry})``, or
    :func:`validate_scenario` / :func:`load_scenario` with ``registry=``). The
    registry a scenario was validated with is kept (:attr:`registry`; a private
    attribute, not a field: it is not dumped) so that :meth:`action_names`,
    :meth:`with_overrides` and the run see the same plugins. Two scenarios
    validated with different registries compare unequal.
    """

    name: str = "scenario"
    seed: int = 0
    clock: ClockSpec = ClockSpec()
    schedule: ScheduleSpec | None = None
    target: TargetSpec = TargetSpec()
    population: PopulationSpec = PopulationSpec()
    routine: RoutineSpec
    personas: dict[str, PersonaSpec]
    lifecycle: LifecycleSpec = LifecycleSpec()
    api: ApiSpec | None = None
    limits: LimitsSpec = LimitsSpec()
    safety: SafetySpec = SafetySpec()
    state: StateSpec = StateSpec()
    output: OutputSpec = OutputSpec()
    analytics: AnalyticsSpec | None = None
    browser: BrowserSpec | None = None
    plugins: tuple[str, ...] = ()

    _registry: PluginCatalog | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _add_plugin_specs(cls, data: Any, info: ValidationInfo) -> Any:
        return merge_plugin_specs(data, catalog_of(info))

    @model_validator(mode="after")
    def _personas_consistent(self, info: ValidationInfo) -> Scenario:
        self._registry = catalog_of(info)
        if not self.personas:
            raise ValueError("at least one persona is needed")
        known = self.action_names()
        for name, persona in self.personas.items():
            self._check_persona_actions(name, persona, known)
        for name in self.population.personas or {}:
            if name not in self.personas:
                raise ValueError(
                    f"population.personas names unknown persona {name!r}{self._unloaded()}"
                )
        shares = self.persona_shares()
        if not any(s > 0 for s in shares.values()):
            raise ValueError("persona shares must not all be zero")
        for i, founder in enumerate(self.population.founders):
            if founder.persona is not None and founder.persona not in self.personas:
                raise ValueError(
                    f"population.founders.{i}.persona names unknown persona {founder.persona!r}"
                )
        if len(self.population.founders) > self.population.max:
            raise ValueError("population.founders outnumber population.max")
        return self

    @model_validator(mode="after")
    def _analytics_covers(self) -> Scenario:
        if self.analytics is not None:
            self.analytics.check_covers(self.recorded_actions())
        if self.browser is not None:
            check_browser(self.browser, self.recorded_actions(), self._registry)
        return self

    def _check_persona_actions(self, name: str, persona: PersonaSpec, known: set[str]) -> None:
        """Every action a persona's matrix or affinity names must exist."""
        for state, weights in persona.actions.items():
            for action in weights:
                if action not in known:
                    raise ValueError(
                        f"personas.{name}.actions.{state}: unknown action {action!r} "
                        f"(known: {', '.join(sorted(known))}){self._unloaded()}"
                    )
        for i, affinity in enumerate(persona.affinity):
            if self.api is None:
                raise ValueError(f"personas.{name}.affinity needs an api section")
            if affinity.action not in known:
                raise ValueError(
                    f"personas.{name}.affinity.{i}.action: unknown action {affinity.action!r}"
                )
            keys = {f"memory.{k}" for k in self.api.memory} | {f"pool.{k}" for k in self.api.pools}
            if affinity.when not in keys:
                raise ValueError(
                    f"personas.{name}.affinity.{i}.when: unknown memory {affinity.when!r}"
                )

    def _unloaded(self) -> str:
        """A hint for errors when the scenario names plugins but was validated without them."""
        if self.plugins and self._registry is None:
            return "; its plugins were not loaded (validate it with a plugin registry)"
        return ""

    @property
    def registry(self) -> PluginCatalog | None:
        """The plugin registry the scenario was validated with (None: built-ins only)."""
        return self._registry

    def action_names(self) -> set[str]:
        """The names persona matrices may use: the ``api`` section's actions and
        workflows, or the built-in social API's actions; plus the plugin actions of
        the registry the scenario was validated with."""
        names = self.api.names() if self.api is not None else set(ACTIONS)
        if self._registry is not None:
            names |= set(self._registry.action_names())
        return names

    def recorded_actions(self) -> set[str]:
        """The action names a run's records may carry: every action of the ``api``
        section (or of the demo API's built-in description), ``sign_up``, ``log_in``
        and the plugin actions of the registry the scenario was validated with."""
        api = self.api if self.api is not None else social_api()
        names = set(api.actions) | set(ACCOUNT_ACTIONS)
        if self._registry is not None:
            names |= set(self._registry.action_names())
        return names

    def analytics_mapping(self) -> AnalyticsSpec:
        """The ``analytics`` section, or the default mapping (the demo API's actions),
        checked against :meth:`recorded_actions`.

        Raises:
            ScenarioError: one line naming an action the mapping cannot name (a
                scenario with its own ``api`` section and no ``analytics`` section).
        """
        spec = self.analytics if self.analytics is not None else AnalyticsSpec()
        try:
            spec.check_covers(self.recorded_actions())
        except ValueError as exc:
            raise ScenarioError(f"{self.name}: {exc}") from None
        return spec

    def persona_shares(self) -> dict[str, float]:
        """Return persona name -> share (population override first, else each persona's own)."""
        override = self.population.personas or {}
        return {name: override.get(name, spec.share) for name, spec in self.personas.items()}

    def with_overrides(self, **changes: Any) -> Scenario:
        """Return a copy with dotted-path overrides, re-validated (with the same plugin registry).

        Example: ``scenario.with_overrides(**{"population.initial": 200})``.

        Raises:
            ScenarioError: the result is invalid.
        """
        data = self.model_dump(mode="json")
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[key]
            node[leaf] = value
        return validate_scenario(data, source="<overrides>", registry=self._registry)


def _format_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    # a key with a line break or other control character is quoted: the message stays one line
    path = ".".join(p if str(p).isprintable() else repr(p) for p in map(str, first["loc"]))
    path = path or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if path == "(top level)" and re.match(r"^[A-Za-z_][\w]*(\.[\w]+)*: ", msg):
        return f"{source}: {msg}{more}"  # a whole-scenario check that names its own path
    if path in ("api",) and re.match(r"^[A-Za-z_][\w]*(\.[\w]+)*: ", msg):
        return f"{source}: api.{msg}{more}"
    return f"{source}: {path}: {msg}{more}"


def validate_scenario(
    data: Any, source: str = "<scenario>", *, registry: PluginCatalog | None = None
) -> Scenario:
    """Validate a parsed scenario mapping against an optional plugin registry.

    Args:
        data: the scenario mapping (e.g. from :func:`read_scenario_data`).
        source: names the scenario in error messages (a file name).
        registry: the plugins the scenario may use (None: built-in actions and
            generators only). Nothing is imported here.

    Raises:
        ScenarioError: one line naming ``source`` and the first bad field path.
    """
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: (top level): a scenario must be a YAML mapping")
    try:
        return Scenario.model_validate(dict(data), context={CONTEXT_KEY: registry})
    except ValidationError as exc:
        raise ScenarioError(_format_error(exc, source)) from None


_REPLACED = frozenset(
    {
        "personas",
        "api",
        "population.timezones",
        "population.personas",
        "routine.intensity",
        "lifecycle.segments",
        "lifecycle.pattern_distribution",
        "lifecycle.events",
        "lifecycle.session_depth",
    }
)
"""Mappings that a scenario file gives whole (a share table, a set of personas): they
replace the default's instead of being merged into it."""


def _merge(base: dict[str, Any], extra: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, Mapping)
            and isinstance(merged.get(key), dict)
            and path not in _REPLACED
        ):
            merged[key] = _merge(merged[key], value, f"{path}.")
        else:
            merged[key] = value
    return merged


def _default_data() -> dict[str, Any]:
    text = resources.files("sim_engine.model").joinpath("default_scenario.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def default_scenario() -> Scenario:
    """Return the built-in default scenario (``sim_engine/default_scenario.yaml``)."""
    return validate_scenario(_default_data(), source="default_scenario.yaml")


def read_scenario_data(path: str | Path) -> dict[str, Any]:
    """Read a scenario file into the mapping to validate (defaults merged in, not validated).

    Sections the file leaves out (``routine``, ``personas``, ...) come from the
    default scenario and the others are merged key by key, except the tables
    that only make sense whole (``personas``, ``api``, time-zone and share
    tables): given in the file, they replace the default's. A caller that loads
    plugins reads the ``plugins`` list from this mapping before validating it.

    Raises:
        ScenarioError: unreadable file, YAML syntax error, or not a mapping (the
            message names the file and the line, in one line).
    """
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ScenarioError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ScenarioError(f"{source}: {where}: {problem}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: YAML: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: (top level): a scenario must be a YAML mapping")
    return _merge(_default_data(), data)


def load_scenario(path: str | Path, registry: PluginCatalog | None = None) -> Scenario:
    """Load and validate a scenario file (see :func:`read_scenario_data` for the merging).

    Pure: the modules the scenario lists under ``plugins:`` are not imported. Pass
    the registry built from them (``sim_engine.api.plugins.load_plugins``), or use
    ``sim_engine.api.plugins.load_scenario_with_plugins``, which does both.

    Args:
        path: the YAML file.
        registry: the plugins the scenario may use (None: built-ins only).

    Raises:
        ScenarioError: unreadable file, YAML syntax error, or invalid field
            (the message names the file, the line or field path, in one line).
    """
    return validate_scenario(read_scenario_data(path), source=str(path), registry=registry)
