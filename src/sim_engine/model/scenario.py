"""The scenario: one YAML file naming the population, routines, personas, clock and target.

Validated with pydantic before anything runs: unknown keys are rejected and
every error names its field path (``personas.lurker.actions.working.browse_feed``).
The default scenario ships inside the package (``default_scenario.yaml``) and
its figures come from seed 002 (the Sim-Engine requirements: Lurker,
Chatterbox, Night Owl, Content Curator; the 00–06 sleeping / 06–09 working /
09–11 relaxing routine table) and from the published facts in DESIGN.md
(reads far exceed writes; 30-minute session inactivity timeout; weekend days
carry 0.5–0.85x a weekday's activity).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sim_engine.model.api_spec import AffinitySpec, ApiSpec
from sim_engine.model.lifecycle import LifecycleSpec

__all__ = [
    "ACTIONS",
    "ROUTINE_STATES",
    "BackoffSpec",
    "CircuitBreakerSpec",
    "ClockSpec",
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
    "SessionSpec",
    "StateSpec",
    "TargetSpec",
    "ThinkTimeSpec",
    "default_scenario",
    "load_scenario",
    "parse_duration",
]

ACTIONS: tuple[str, ...] = ("browse_feed", "read_post", "create_post", "update_post", "delete_post")
"""The actions every persona's weight matrix may name (the demo social API's operations)."""

ROUTINE_STATES: tuple[str, ...] = ("sleeping", "working", "relaxing")
"""Routine states; ``sleeping`` never acts."""

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ScenarioError(ValueError):
    """A scenario is malformed; ``str()`` is one line naming the file and field path."""


def parse_duration(text: str | int | float) -> float:
    """Parse ``90s``, ``30m``, ``2h``, ``3d``, ``1w`` (or bare seconds) into simulated seconds.

    Raises:
        ValueError: the text is not a non-negative duration.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _DURATION_RE.match(text)
        if not match:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 3d, 1w)")
        value = float(match.group(1)) * _DURATION_UNITS_S[match.group(2) or "s"]
    if value < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThinkTimeSpec(_Frozen):
    """Think time between two actions of a session: lognormal, in simulated seconds.

    Attributes:
        median_s: median think time (simulated seconds).
        sigma: lognormal shape; larger gives a heavier tail (burstier gaps).
        min_s: floor applied to every draw (simulated seconds).
    """

    median_s: float = Field(20.0, gt=0)
    sigma: float = Field(1.0, ge=0, le=4)
    min_s: float = Field(1.0, gt=0)


class SessionSpec(_Frozen):
    """A persona's session model.

    Attributes:
        mean_actions: mean number of actions per session (geometric distribution,
            so most sessions are short).
        max_actions: hard cap on actions per session.
        think_time: gap between actions.
        inactivity_timeout_s: a gap longer than this ends the session instead
            (30 simulated minutes: the analytics convention, DESIGN.md).
    """

    mean_actions: float = Field(4.0, ge=1)
    max_actions: int = Field(30, ge=1)
    think_time: ThinkTimeSpec = ThinkTimeSpec()
    inactivity_timeout_s: float = Field(1800.0, gt=0)


def _known_actions(weights: dict[str, float]) -> dict[str, float]:
    # Validated per routine state, so errors name ``personas.X.actions.<state>``.
    # Action names are checked by the scenario (they depend on its ``api`` section).
    for name, weight in weights.items():
        if weight < 0:
            raise ValueError(f"weight of {name!r} is negative")
    if not any(w > 0 for w in weights.values()):
        raise ValueError("no positive action weight")
    return weights


_ActionWeights = Annotated[dict[str, float], AfterValidator(_known_actions)]


class PersonaSpec(_Frozen):
    """A behaviour template.

    Attributes:
        share: relative share of the population (normalised over all personas).
        description: free text.
        sessions_per_day: expected sessions on a typical weekday; spread over the
            day in proportion to the routine's intensity.
        hour_shift_h: active-hours skew: the persona lives its routine this many
            hours later (a Night Owl with 6 sleeps 06:00–12:00 local).
        hour_weights: optional 24 multipliers on the intensity, by local hour.
        actions: action weight matrix per routine state (relative weights).
        post_frequency: multiplier on ``create_post`` weights.
        update_frequency: multiplier on ``update_post`` weights.
        session: session length and think-time model.
        affinity: session-affinity modifiers (seed 001), e.g. double the weight of
            ``accept_offer`` while ``memory.open_requests`` is non-empty (``api`` only).
    """

    share: float = Field(ge=0)
    description: str = ""
    sessions_per_day: float = Field(3.0, ge=0)
    hour_shift_h: float = Field(0.0, ge=-12, le=12)
    hour_weights: tuple[float, ...] | None = None
    actions: dict[Literal["working", "relaxing"], _ActionWeights]
    post_frequency: float = Field(1.0, ge=0)
    update_frequency: float = Field(1.0, ge=0)
    session: SessionSpec = SessionSpec()
    affinity: tuple[AffinitySpec, ...] = ()

    @field_validator("hour_weights")
    @classmethod
    def _24_weights(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and (len(value) != 24 or any(w < 0 for w in value)):
            raise ValueError("hour_weights needs 24 non-negative numbers, one per local hour")
        return value


class RoutineBlock(_Frozen):
    """One block of a day: ``start``–``end`` local time (``HH:MM``, end exclusive; ``24:00`` ok).

    Attributes:
        intensity: overrides the state's intensity for this block (0..1+).
    """

    start: str
    end: str
    state: Literal["sleeping", "working", "relaxing"]
    intensity: float | None = Field(None, ge=0)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-4]):[0-5]\d", value) or (
            value.startswith("24") and value != "24:00"
        ):
            raise ValueError(f"time must be HH:MM between 00:00 and 24:00, got {value!r}")
        return value

    def minutes(self) -> tuple[int, int]:
        """Return (start, end) in minutes after local midnight."""
        h1, m1 = self.start.split(":")
        h2, m2 = self.end.split(":")
        return int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)


def _check_cover(blocks: tuple[RoutineBlock, ...], label: str) -> None:
    cursor = 0
    for block in blocks:
        start, end = block.minutes()
        if start != cursor or end <= start:
            raise ValueError(
                f"{label} blocks must cover 00:00–24:00 in order without gaps or overlaps "
                f"(block {block.start}–{block.end})"
            )
        cursor = end
    if cursor != 24 * 60:
        raise ValueError(f"{label} blocks must end at 24:00")


class RoutineSpec(_Frozen):
    """The daily routine: blocks for weekdays and weekends, and each state's intensity.

    Attributes:
        weekday: blocks covering 00:00–24:00 on Monday–Friday.
        weekend: blocks covering 00:00–24:00 on Saturday and Sunday.
        intensity: activity intensity per state (sleeping must be 0: no actions).
    """

    weekday: tuple[RoutineBlock, ...]
    weekend: tuple[RoutineBlock, ...]
    intensity: dict[Literal["sleeping", "working", "relaxing"], float] = {
        "sleeping": 0.0,
        "working": 0.3,
        "relaxing": 1.0,
    }

    @model_validator(mode="after")
    def _covers_day(self) -> RoutineSpec:
        _check_cover(self.weekday, "weekday")
        _check_cover(self.weekend, "weekend")
        if self.intensity.get("sleeping", 0.0) != 0.0:
            raise ValueError("intensity.sleeping must be 0: sleeping users take no action")
        if any(value < 0 for value in self.intensity.values()):
            raise ValueError("intensity values cannot be negative")
        return self


class FounderSpec(_Frozen):
    """A named account created before anyone else, if absent on the target (seed 001's bootstrap).

    Attributes:
        name: full name.
        email: login email (default: derived from the name on the synthetic domain).
        persona: persona name (default: drawn by share).
        password: password (default: derived from the scenario name and email, so it
            stays the same across runs and an existing founder can log in).
    """

    name: str = Field(min_length=1)
    email: str | None = None
    persona: str | None = None
    password: str | None = None


class PopulationSpec(_Frozen):
    """Who lives in the simulation and how it grows.

    Attributes:
        initial: users created at the start of the run.
        max: the population never grows past this.
        signups_per_day: Poisson arrival rate of new users (per simulated day).
        personas: optional override of persona shares (name -> share).
        timezones: IANA zone -> share; each user lives in one.
        email_domain: synthetic email domain (never a real one).
        tags: optional interest/faction tags, one given to each user at random.
        avatar: ``initials`` (no URL) or ``url`` (a synthetic avatar URL).
        max_signups_per_day: cap on Poisson sign-ups per simulated day (None: no cap).
        founders: accounts created first, if absent (seed 001); they never churn.
    """

    initial: int = Field(50, ge=0)
    max: int = Field(10_000, ge=1)
    signups_per_day: float = Field(10.0, ge=0)
    personas: dict[str, float] | None = None
    timezones: dict[str, float] = {"UTC": 1.0}
    email_domain: str = "sim-engine.test"
    tags: tuple[str, ...] = ()
    avatar: Literal["initials", "url"] = "initials"
    max_signups_per_day: int | None = Field(None, ge=0)
    founders: tuple[FounderSpec, ...] = ()

    @field_validator("timezones")
    @classmethod
    def _zones_exist(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one time zone is needed")
        for name, share in value.items():
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {name!r}") from None
            if share < 0:
                raise ValueError(f"share of {name!r} is negative")
        return value

    @model_validator(mode="after")
    def _initial_within_max(self) -> PopulationSpec:
        if self.initial > self.max:
            raise ValueError(f"initial ({self.initial}) is larger than max ({self.max})")
        return self


class ClockSpec(_Frozen):
    """Simulated time.

    Attributes:
        start: simulated start (ISO date or date-time; default: now).
        speed: ``max`` or simulated seconds per wall second.
        duration: how much simulated time to run (``2h``, ``3d``); None runs until stopped.
    """

    start: datetime | None = None
    speed: float | Literal["max"] = 3600.0
    duration: str | None = "1d"

    @field_validator("speed")
    @classmethod
    def _positive(cls, value: float | str) -> float | str:
        if value != "max" and not float(value) > 0:
            raise ValueError("speed must be 'max' or a positive number")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class TargetSpec(_Frozen):
    """What the users act on.

    Attributes:
        url: base URL of the API; None starts the built-in demo server; the
            word ``inprocess`` calls the demo app in-process without sockets.
        concurrency: cap on requests in flight at once.
        timeout_s: per-request timeout (wall seconds).
        page_size: feed page size for ``browse_feed``.
        binding: a target registered by a plugin (``@plugins.target(name)``) to use
            instead of the built-in social API or the ``api`` section.
    """

    url: str | None = None
    concurrency: int = Field(64, ge=1, le=10_000)
    timeout_s: float = Field(10.0, gt=0)
    page_size: int = Field(20, ge=1, le=100)
    binding: str | None = None


class BackoffSpec(_Frozen):
    """Exponential backoff with jitter between retries (wall seconds).

    The n-th retry waits ``min(max_s, base_s * multiplier**n)``, jittered
    (``full``: uniform in [0, that]; ``equal``: half fixed, half uniform;
    ``none``), and never less than a ``Retry-After`` or ``Backoff`` header asks.
    """

    base_s: float = Field(0.5, gt=0)
    max_s: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: Literal["full", "equal", "none"] = "full"


class CircuitBreakerSpec(_Frozen):
    """A circuit breaker per endpoint (method and path template).

    Opens after ``failure_threshold`` consecutive failures, or when the error
    rate over the last ``window`` calls (at least ``min_calls``) exceeds
    ``error_rate``; stays open ``open_s`` wall seconds (actions to that endpoint
    are skipped and recorded as skipped); then lets ``half_open_probes`` calls
    through, and closes on success.
    """

    enabled: bool = True
    failure_threshold: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1)
    window: int = Field(20, ge=1)
    min_calls: int = Field(10, ge=1)
    open_s: float = Field(5.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class LimitsSpec(_Frozen):
    """How hard the users may press on the target (seed 000's rate-limit strategy).

    Attributes:
        min_action_interval_s: minimum gap between one user's actions (simulated
            seconds; seed 000: 2,000 ms).
        max_concurrent_sessions: cap on sessions running at once (seed 000: 20;
            default None: no cap).
        requests_per_second: global cap (token bucket, wall seconds; None: no cap).
        burst: token-bucket size.
        max_retries: retries after a 429, 503 or lost connection (seed 000: 3).
        retry_non_idempotent: also retry POST (off: a retried POST may duplicate).
        connect_timeout_s / read_timeout_s: wall seconds.
        backoff: retry waits.
        circuit_breaker: per-endpoint breaker.
    """

    min_action_interval_s: float = Field(2.0, ge=0)
    max_concurrent_sessions: int | None = Field(None, ge=1)
    requests_per_second: float | None = Field(None, gt=0)
    burst: int = Field(10, ge=1)
    max_retries: int = Field(3, ge=0, le=20)
    retry_non_idempotent: bool = False
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    backoff: BackoffSpec = BackoffSpec()
    circuit_breaker: CircuitBreakerSpec = CircuitBreakerSpec()


class SafetySpec(_Frozen):
    """Guards that keep a run from harming a real system (seed 000, seed 003).

    Attributes:
        enabled: the kill switch: ``false`` stops all activity at once.
        allow_hosts: hosts outside 127.0.0.0/8 and ::1 that may be targeted.
        synthetic_header: header marking every request as synthetic.
        synthetic_value: its value.
        user_agent: user agent (default ``sim-engine/<version>``).
        kill_file: a file of this name in the run directory stops the run.
    """

    enabled: bool = True
    allow_hosts: tuple[str, ...] = ()
    synthetic_header: str = Field("X-Synthetic", min_length=1)
    synthetic_value: str = "true"
    user_agent: str | None = None
    kill_file: str = Field("KILL", min_length=1)


class StateSpec(_Frozen):
    """Crash-safe state in ``DIR/state.db`` (SQLite, WAL).

    Attributes:
        checkpoint_every_s: wall seconds between checkpoints (sign-ups and created
            resources are written at once, whatever this says).
    """

    checkpoint_every_s: float = Field(5.0, gt=0)


class OutputSpec(_Frozen):
    """What the run reports.

    Attributes:
        latest_actions: how many of the latest actions ``metrics.json`` keeps.
        top_n: length of the top-posters and top-viewed-posts lists.
        users_sample_s: sampling interval of ``users_over_time`` (simulated seconds).
    """

    latest_actions: int = Field(50, ge=0, le=10_000)
    top_n: int = Field(10, ge=1, le=1000)
    users_sample_s: float = Field(3600.0, gt=0)


class Scenario(_Frozen):
    """A whole scenario (see ``docs/scenario.md``).

    ``plugins``: Python modules imported before validation, so persona matrices
    may name their actions (see ``docs/plugins.md``).
    """

    name: str = "scenario"
    seed: int = 0
    clock: ClockSpec = ClockSpec()
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
    plugins: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _load_plugins(cls, data: Any) -> Any:
        from sim_engine.api.plugins import prepare_scenario_data

        return prepare_scenario_data(data)

    @model_validator(mode="after")
    def _personas_consistent(self) -> Scenario:
        if not self.personas:
            raise ValueError("at least one persona is needed")
        known = self.action_names()
        for name, persona in self.personas.items():
            for state, weights in persona.actions.items():
                for action in weights:
                    if action not in known:
                        raise ValueError(
                            f"personas.{name}.actions.{state}: unknown action {action!r} "
                            f"(known: {', '.join(sorted(known))})"
                        )
            for i, affinity in enumerate(persona.affinity):
                if self.api is None:
                    raise ValueError(f"personas.{name}.affinity needs an api section")
                if affinity.action not in known:
                    raise ValueError(
                        f"personas.{name}.affinity.{i}.action: unknown action {affinity.action!r}"
                    )
                keys = {f"memory.{k}" for k in self.api.memory} | {
                    f"pool.{k}" for k in self.api.pools
                }
                if affinity.when not in keys:
                    raise ValueError(
                        f"personas.{name}.affinity.{i}.when: unknown memory {affinity.when!r}"
                    )
        shares = self.persona_shares()
        if not any(s > 0 for s in shares.values()):
            raise ValueError("persona shares must not all be zero")
        for name in self.population.personas or {}:
            if name not in self.personas:
                raise ValueError(f"population.personas names unknown persona {name!r}")
        for i, founder in enumerate(self.population.founders):
            if founder.persona is not None and founder.persona not in self.personas:
                raise ValueError(
                    f"population.founders.{i}.persona names unknown persona {founder.persona!r}"
                )
        if len(self.population.founders) > self.population.max:
            raise ValueError("population.founders outnumber population.max")
        return self

    def action_names(self) -> set[str]:
        """The names persona matrices may use: the ``api`` section's actions and
        workflows, or the built-in social API's actions; plus plugin actions."""
        from sim_engine.api.plugins import registered_action_names

        names = self.api.names() if self.api is not None else set(ACTIONS)
        return names | registered_action_names()

    def persona_shares(self) -> dict[str, float]:
        """Return persona name -> share (population override first, else each persona's own)."""
        override = self.population.personas or {}
        return {name: override.get(name, spec.share) for name, spec in self.personas.items()}

    def with_overrides(self, **changes: Any) -> Scenario:
        """Return a copy with dotted-path overrides, re-validated.

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
        return validate_scenario(data, source="<overrides>")


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


def validate_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a parsed scenario mapping.

    Raises:
        ScenarioError: one line naming ``source`` and the first bad field path.
    """
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: (top level): a scenario must be a YAML mapping")
    try:
        return Scenario.model_validate(dict(data))
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


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file.

    Sections the file leaves out (``routine``, ``personas``, ...) come from the
    default scenario and the others are merged key by key, except the tables
    that only make sense whole (``personas``, ``api``, time-zone and share
    tables): given in the file, they replace the default's.

    Raises:
        ScenarioError: unreadable file, YAML syntax error, or invalid field
            (the message names the file, the line or field path, in one line).
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
    return validate_scenario(_merge(_default_data(), data), source=source)
