"""The run settings of a scenario: population, clock, target, limits, safety, state, output.

Part of the scenario schema (:mod:`sim_engine.model.scenario` re-exports every name).
Figures from seed 000 (rate limits, retries, the safety guards) and DESIGN.md.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sim_engine.model.bounds import (
    MAX_DURATION_S,
    MAX_RATE,
    MAX_SPEED,
    MAX_USERS,
    MAX_WAIT_S,
    Weight,
    check_speed,
    check_start,
)
from sim_engine.model.safety import check_kill_file

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "FOREVER",
    "BackoffSpec",
    "CircuitBreakerSpec",
    "ClockSpec",
    "FounderSpec",
    "LimitsSpec",
    "OutputSpec",
    "PopulationSpec",
    "RotationSpec",
    "SafetySpec",
    "StateSpec",
    "TargetSpec",
    "check_target_url",
    "parse_duration",
    "parse_run_duration",
]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

DEFAULT_MAX_RESPONSE_BYTES = 10_000_000
"""The default ``limits.max_response_bytes``: 10 MB, far above any page of an API."""


def parse_duration(text: str | int | float) -> float:
    """Parse ``90s``, ``30m``, ``2h``, ``3d``, ``1w`` (or bare seconds) into simulated seconds.

    Raises:
        ValueError: the text is not a duration from 0 to ten years
            (:data:`~sim_engine.model.bounds.MAX_DURATION_S`).
    """
    try:
        if isinstance(text, (int, float)):
            value = float(text)
        else:
            match = _DURATION_RE.match(text)
            if not match:
                raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 3d, 1w)")
            value = float(match.group(1)) * _DURATION_UNITS_S[match.group(2) or "s"]
    except OverflowError:
        value = math.inf
    if value < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    if not value <= MAX_DURATION_S:  # also NaN
        raise ValueError(f"a duration must be at most 3650d (ten years), got {text!r}")
    return value


FOREVER = "forever"
"""The duration of a run without an end (``--duration forever``, ``clock.duration: forever``)."""


def parse_run_duration(text: str | int | float | None) -> float | None:
    """A run's duration in simulated seconds; None (no end) for ``forever`` or None.

    Raises:
        ValueError: neither ``forever`` nor a duration :func:`parse_duration` takes.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == FOREVER):
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; or {FOREVER} to run until stopped") from None


def check_target_url(url: str) -> str:
    """Return ``url`` when it is a target: an ``http(s)`` URL with a host, or ``inprocess``.

    The word ``demo`` (the built-in demo server, as a saved run names it) is taken too.

    Raises:
        ValueError: one line saying what is wrong (a bad port, an unclosed ``[``, a
            space or control character, another scheme, no host).
    """
    if url in ("inprocess", "demo"):
        return url
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(f"target URL {url!r} contains a space or control character")
    try:
        parts = urlsplit(url)
        _ = parts.port  # parsed lazily: a bad port raises here
    except ValueError as exc:
        raise ValueError(f"target URL {url!r} does not parse: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target {url!r} is not an http(s) URL with a host, nor 'inprocess'")
    return url


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"({_LABEL}\.)+{_LABEL}"


def _shaped(pattern: str, what: str) -> AfterValidator:
    """A check that a text matches ``pattern`` whole, else says it is not ``what``."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > 4096 or not compiled.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not {what}")
        return value

    return AfterValidator(check)


Domain = Annotated[str, _shaped(_DOMAIN, "a domain like sim-engine.test")]
"""A DNS domain with at least two labels (``sim-engine.test``)."""
Email = Annotated[
    str, _shaped(rf"[A-Za-z0-9._%+-]+@{_DOMAIN}", "an email like ann@sim-engine.test")
]
"""An email address: ``local@domain``."""
HeaderName = Annotated[
    str, _shaped(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "an HTTP header name (no space, colon or line)")
]
"""An HTTP header name (an RFC 9110 token: no space, colon or line break)."""
OneLine = Annotated[str, _shaped(r"[^\x00-\x1f\x7f]*", "one line without control characters")]
"""A header value or a name: no line break or other control character."""


class FounderSpec(_Frozen):
    """A named account created before anyone else, if absent on the target (seed 001's bootstrap).

    Attributes:
        name: full name.
        email: login email (default: derived from the name on the synthetic domain).
        persona: persona name (default: drawn by share).
        password: password (default: derived from the run secret, like every user's;
            give one for a founder that must log in again in later, separate runs).
    """

    name: OneLine = Field(min_length=1)
    email: Email | None = None
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

    initial: int = Field(50, ge=0, le=MAX_USERS)
    max: int = Field(10_000, ge=1, le=MAX_USERS)
    signups_per_day: float = Field(10.0, ge=0, le=MAX_RATE)
    personas: dict[str, Weight] | None = None
    timezones: dict[str, Weight] = {"UTC": 1.0}
    email_domain: Domain = "sim-engine.test"
    tags: tuple[str, ...] = ()
    avatar: Literal["initials", "url"] = "initials"
    max_signups_per_day: int | None = Field(None, ge=0, le=MAX_USERS)
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
        duration: how much simulated time to run (``2h``, ``3d``); ``forever`` or null
            runs until stopped (``ctl stop``, the kill switch, a signal). Left out: ``1d``.
    """

    start: datetime | None = None
    speed: float | Literal["max"] = 3600.0
    duration: str | None = "1d"

    @field_validator("start")
    @classmethod
    def _start_in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_start(value)

    @field_validator("speed", mode="before")
    @classmethod
    def _positive(cls, value: object) -> object:
        if value == "max":
            return value
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise TypeError
            return check_speed(float(value))
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"speed must be 'max' or a positive number at most {MAX_SPEED:.0f}, "
                f"got {value!r:.40}"
            ) from None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        parse_run_duration(value)
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
    timeout_s: float = Field(10.0, gt=0, le=MAX_WAIT_S)
    page_size: int = Field(20, ge=1, le=100)
    binding: str | None = None

    @field_validator("url")
    @classmethod
    def _url_parses(cls, value: str | None) -> str | None:
        return None if value is None else check_target_url(value)


class BackoffSpec(_Frozen):
    """Exponential backoff with jitter between retries (wall seconds).

    The n-th retry waits ``min(max_s, base_s * multiplier**n)``, jittered
    (``full``: uniform in [0, that]; ``equal``: half fixed, half uniform;
    ``none``), and never less than a ``Retry-After`` or ``Backoff`` header asks.
    """

    base_s: float = Field(0.5, gt=0, le=MAX_WAIT_S)
    max_s: float = Field(30.0, gt=0, le=MAX_WAIT_S)
    multiplier: float = Field(2.0, ge=1, le=1000)
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
    failure_threshold: int = Field(5, ge=1, le=MAX_USERS)
    error_rate: float = Field(0.5, gt=0, le=1)
    window: int = Field(20, ge=1, le=MAX_USERS)
    min_calls: int = Field(10, ge=1, le=MAX_USERS)
    open_s: float = Field(5.0, gt=0, le=MAX_WAIT_S)
    half_open_probes: int = Field(1, ge=1, le=MAX_USERS)


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
        max_response_bytes: the largest response body read (bytes); a larger one
            is not read past the limit and becomes a failed action (status 0).
    """

    min_action_interval_s: float = Field(2.0, ge=0, le=MAX_WAIT_S)
    max_concurrent_sessions: int | None = Field(None, ge=1, le=MAX_USERS)
    requests_per_second: float | None = Field(None, gt=0, le=MAX_RATE)
    burst: int = Field(10, ge=1, le=MAX_USERS)
    max_retries: int = Field(3, ge=0, le=20)
    retry_non_idempotent: bool = False
    connect_timeout_s: float = Field(5.0, gt=0, le=MAX_WAIT_S)
    read_timeout_s: float = Field(10.0, gt=0, le=MAX_WAIT_S)
    backoff: BackoffSpec = BackoffSpec()
    circuit_breaker: CircuitBreakerSpec = CircuitBreakerSpec()
    max_response_bytes: int = Field(DEFAULT_MAX_RESPONSE_BYTES, ge=1, le=2**31)


class SafetySpec(_Frozen):
    """Guards that keep a run from harming a real system (seed 000, seed 003).

    Attributes:
        enabled: the kill switch: ``false`` stops all activity at once.
        allow_hosts: hosts outside 127.0.0.0/8 and ::1 that may be targeted.
        synthetic_header: header marking every request as synthetic.
        synthetic_value: its value.
        user_agent: user agent (default ``sim-engine/<version>``).
        kill_file: a file of this name in the run directory stops the run: a path
            relative to the run directory, never outside it (no absolute path, no
            ``..``) nor one of the run's own files.
    """

    enabled: bool = True
    allow_hosts: tuple[str, ...] = ()
    synthetic_header: HeaderName = "X-Synthetic"
    synthetic_value: OneLine = "true"
    user_agent: OneLine | None = None
    kill_file: str = Field("KILL", min_length=1)

    @field_validator("kill_file")
    @classmethod
    def _inside_run_dir(cls, value: str) -> str:
        return check_kill_file(value)


class StateSpec(_Frozen):
    """Crash-safe state in ``DIR/state.db`` (SQLite, WAL).

    A checkpoint is taken at whichever comes first: ``checkpoint_every_s`` wall
    seconds, ``checkpoint_every_sim_s`` simulated seconds of progress, or
    ``checkpoint_every_actions`` actions, so that a resume at ``--speed max`` does
    not send again hours of simulated traffic.

    Attributes:
        checkpoint_every_s: wall seconds between checkpoints (sign-ups and created
            resources are written at once, whatever this says).
        checkpoint_every_sim_s: simulated seconds of progress between checkpoints.
        checkpoint_every_actions: actions between checkpoints.
    """

    checkpoint_every_s: float = Field(5.0, gt=0, le=MAX_WAIT_S)
    checkpoint_every_sim_s: float = Field(900.0, gt=0, le=31_536_000)
    checkpoint_every_actions: int = Field(5000, ge=1, le=100_000_000)


class RotationSpec(_Frozen):
    """Rotation of ``actions.jsonl`` and ``log.jsonl`` for runs that go on for months.

    Give ``max_bytes`` (rotate when the live file would grow past it) or ``every``
    (rotate every so much wall time: ``1h``, ``1d``). Rotated files are gzipped
    (``compress``) and the newest ``keep`` of each are kept (``sinks/rotation.py``).
    """

    max_bytes: int | None = Field(None, ge=1024, le=2**40)
    every: str | None = None
    keep: int = Field(7, ge=1, le=10_000)
    compress: bool = True

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None and not parse_duration(value) >= 1:
            raise ValueError(f"every must be at least 1s, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> RotationSpec:
        if (self.max_bytes is None) == (self.every is None):
            raise ValueError("give one of max_bytes (size) or every (wall time)")
        return self


class OutputSpec(_Frozen):
    """What the run reports.

    Attributes:
        latest_actions: how many of the latest actions ``metrics.json`` keeps.
        top_n: length of the top-posters and top-viewed-posts lists.
        users_sample_s: sampling interval of ``users_over_time`` (simulated seconds,
            1 to 86,400).
        log_actions: which actions ``log.jsonl`` repeats: ``failed`` (default; the
            actions that did not succeed), ``all`` or ``none``. ``actions.jsonl``
            holds every action whatever this says.
        rotate: rotation of ``actions.jsonl`` and ``log.jsonl`` (None: they grow).
    """

    latest_actions: int = Field(50, ge=0, le=10_000)
    top_n: int = Field(10, ge=1, le=1000)
    users_sample_s: float = Field(3600.0, ge=1, le=MAX_WAIT_S)
    log_actions: Literal["failed", "all", "none"] = "failed"
    rotate: RotationSpec | None = None
