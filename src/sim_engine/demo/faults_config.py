"""Fault configuration of the demo server: the :class:`FaultConfig` model and its shorthands.

What goes wrong and how often (:class:`FaultConfig`, its latency distributions and
:class:`RateLimitConfig`), and the parsers of the command-line shorthands
(:func:`parse_latency`, :func:`parse_burst`). Everything here is re-exported by
:mod:`sim_engine.demo.faults`, the module to import from.

Example:
    >>> from sim_engine.demo.faults_config import FaultConfig, parse_latency
    >>> FaultConfig(latency=parse_latency("uniform:10:100")).active
    True
"""

from __future__ import annotations

import fnmatch
import math
import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "DEFAULT_EXEMPT_PATHS",
    "FAULTS_ENV",
    "AnyLatency",
    "ExponentialLatency",
    "FaultConfig",
    "FaultConfigError",
    "FixedLatency",
    "Latency",
    "LognormalLatency",
    "NoLatency",
    "RateLimitConfig",
    "UniformLatency",
    "one_line",
    "parse_burst",
    "parse_latency",
]

#: Environment variable read by ``python -m sim_engine.demo`` and ``sim-engine demo-server``.
FAULTS_ENV = "SIM_ENGINE_DEMO_FAULTS"

#: Paths never faulted unless the config says otherwise (``/admin/*`` is always exempt).
#: ``/`` is not an API route; sim-engine's targets probe it once to check reachability.
DEFAULT_EXEMPT_PATHS: tuple[str, ...] = (
    "/",
    "/health",
    "/admin/*",
    "/openapi.json",
    "/docs",
    "/docs/*",
    "/redoc",
)

#: Always exempt, whatever ``exempt_paths`` says: faults must never lock the admin API out.
_ALWAYS_EXEMPT: tuple[str, ...] = ("/admin/*",)


class FaultConfigError(ValueError):
    """A fault switch (environment variable, flag or JSON) is invalid; the message is one line."""


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class NoLatency(BaseModel):
    """No added latency."""

    model_config = _FROZEN
    distribution: Literal["none"] = "none"

    def sample_ms(self, rng: random.Random) -> float:
        """Return the delay in milliseconds (always 0)."""
        return 0.0


class FixedLatency(BaseModel):
    """The same delay for every request."""

    model_config = _FROZEN
    distribution: Literal["fixed"] = "fixed"
    ms: float = Field(ge=0, description="Delay in milliseconds.")

    def sample_ms(self, rng: random.Random) -> float:
        """Return the delay in milliseconds."""
        return self.ms


class UniformLatency(BaseModel):
    """A delay drawn uniformly between ``min_ms`` and ``max_ms``."""

    model_config = _FROZEN
    distribution: Literal["uniform"] = "uniform"
    min_ms: float = Field(ge=0)
    max_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLatency:
        if self.max_ms < self.min_ms:
            raise ValueError("max_ms must be >= min_ms")
        return self

    def sample_ms(self, rng: random.Random) -> float:
        """Draw a delay in milliseconds."""
        return rng.uniform(self.min_ms, self.max_ms)


class ExponentialLatency(BaseModel):
    """An exponentially distributed delay with mean ``mean_ms``, optionally capped."""

    model_config = _FROZEN
    distribution: Literal["exponential"] = "exponential"
    mean_ms: float = Field(ge=0)
    limit_ms: float | None = Field(default=None, ge=0, description="Cap on any one delay.")

    def sample_ms(self, rng: random.Random) -> float:
        """Draw a delay in milliseconds."""
        value = rng.expovariate(1.0 / self.mean_ms) if self.mean_ms > 0 else 0.0
        return value if self.limit_ms is None else min(value, self.limit_ms)


class LognormalLatency(BaseModel):
    """A log-normal delay: median ``median_ms``, shape ``sigma`` (of the underlying normal)."""

    model_config = _FROZEN
    distribution: Literal["lognormal"] = "lognormal"
    median_ms: float = Field(ge=0)
    sigma: float = Field(default=0.5, ge=0)
    limit_ms: float | None = Field(default=None, ge=0, description="Cap on any one delay.")

    def sample_ms(self, rng: random.Random) -> float:
        """Draw a delay in milliseconds."""
        if self.median_ms <= 0:
            return 0.0
        value = rng.lognormvariate(math.log(self.median_ms), self.sigma)
        return value if self.limit_ms is None else min(value, self.limit_ms)


AnyLatency = NoLatency | FixedLatency | UniformLatency | ExponentialLatency | LognormalLatency

#: Any latency distribution, told apart by its ``distribution`` field (a pydantic field type).
Latency = Annotated[AnyLatency, Field(discriminator="distribution")]


class RateLimitConfig(BaseModel):
    """When requests are answered ``429 Too Many Requests``.

    Two modes, which can be combined: each request is limited with ``probability``; and, when
    ``burst_every_s`` is set, bursts of ``burst_length_s`` seconds recur every
    ``burst_every_s`` seconds (the first one starting ``burst_start_s`` seconds after the
    config was set, by default one period later), during which every request gets 429.

    ``retry_after_s`` is the ``Retry-After`` value in whole seconds; when None it is the time
    left in the burst rounded up (at least 1), or 1 outside bursts.
    """

    model_config = _FROZEN
    probability: float = Field(default=0.0, ge=0, le=1)
    burst_every_s: float | None = Field(default=None, gt=0)
    burst_length_s: float = Field(default=0.0, ge=0)
    burst_start_s: float | None = Field(default=None, ge=0)
    retry_after_s: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _burst_fits(self) -> RateLimitConfig:
        if self.burst_every_s is not None:
            if self.burst_length_s <= 0:
                raise ValueError("burst_length_s must be > 0 when burst_every_s is set")
            if self.burst_length_s > self.burst_every_s:
                raise ValueError("burst_length_s must be <= burst_every_s")
        return self

    @property
    def active(self) -> bool:
        """True when any request can be rate limited."""
        return self.probability > 0 or self.burst_every_s is not None

    def burst_remaining(self, elapsed_s: float) -> float:
        """Seconds left in the burst at ``elapsed_s`` seconds after the epoch; 0 outside one."""
        if self.burst_every_s is None:
            return 0.0
        start = self.burst_every_s if self.burst_start_s is None else self.burst_start_s
        if elapsed_s < start:
            return 0.0
        into = (elapsed_s - start) % self.burst_every_s
        return self.burst_length_s - into if into < self.burst_length_s else 0.0


class FaultConfig(BaseModel):
    """What the demo server does wrong. The default config injects nothing.

    Attributes:
        error_rate: Probability (0..1) of answering ``error_status`` with a JSON ``detail``.
        error_status: Status of injected errors (500..599, default 503).
        latency: Added delay per request, a distribution in milliseconds. In JSON either an
            object (``{"distribution": "lognormal", "median_ms": 50, "sigma": 1.0}``) or the
            flag shorthand (``"lognormal:50:1.0"``, ``"50"``).
        rate_limit: 429 answers (probability and/or periodic bursts) with ``Retry-After``.
        drop_rate: Probability (0..1) of closing the connection without an HTTP response.
        stall_rate: Probability (0..1) of a stall: the request hangs ``stall_ms`` before
            going on (or until the client disconnects), to provoke client read timeouts.
        stall_ms: Length of a stall in milliseconds (default 30 s).
        exempt_paths: Path patterns (``fnmatch``; ``/x/*`` also matches ``/x``) never faulted.
            ``/admin/*`` is exempt in any case.
        seed: Seed of the fault random generators; None draws one from the OS.
    """

    model_config = _FROZEN
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=503, ge=500, le=599)
    latency: Latency = Field(default_factory=NoLatency)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    stall_rate: float = Field(default=0.0, ge=0, le=1)
    stall_ms: float = Field(default=30_000.0, ge=0)
    exempt_paths: tuple[str, ...] = DEFAULT_EXEMPT_PATHS
    seed: int | None = None

    @field_validator("latency", mode="before")
    @classmethod
    def _latency_shorthand(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return FixedLatency(ms=float(value))
        if isinstance(value, str):
            try:
                return parse_latency(value)
            except FaultConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def active(self) -> bool:
        """True when any fault can happen."""
        return (
            self.error_rate > 0
            or self.drop_rate > 0
            or (self.stall_rate > 0 and self.stall_ms > 0)
            or self.rate_limit.active
            or not isinstance(self.latency, NoLatency)
        )

    def is_exempt(self, path: str) -> bool:
        """True if requests to ``path`` are never faulted."""
        for pattern in (*_ALWAYS_EXEMPT, *self.exempt_paths):
            if fnmatch.fnmatchcase(path, pattern):
                return True
            if pattern.endswith("/*") and path == pattern[:-2]:
                return True
        return False


# --------------------------------------------------------------------------------------
# Parsing the command-line shorthands
# --------------------------------------------------------------------------------------


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultConfigError(f"{what}: not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise FaultConfigError(f"{what}: must be a finite number >= 0, got {text!r}")
    return value


_LATENCY_USAGE = (
    "expected MS, fixed:MS, uniform:MIN:MAX, exponential:MEAN[:LIMIT],"
    " lognormal:MEDIAN[:SIGMA[:LIMIT]] or none"
)


def parse_latency(spec: str) -> AnyLatency:
    """Parse the ``--latency-ms`` shorthand.

    Forms (all values in milliseconds, except ``SIGMA``): ``50`` or ``fixed:50``;
    ``uniform:10:100``; ``exponential:50`` (mean) or ``exponential:50:2000`` (capped);
    ``lognormal:50:1.0`` (median 50 ms, sigma 1.0; sigma defaults to 0.5) with an optional
    cap as fourth part; ``none`` (or ``0``).

    Raises:
        FaultConfigError: On an unknown form or a bad number.
    """
    text = spec.strip().lower()
    if text in ("", "none", "off"):
        return NoLatency()
    kind, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    what = f"latency {spec!r}"
    try:
        if not parts and kind not in ("fixed", "uniform", "exponential", "lognormal"):
            ms = _number(kind, what)
            return NoLatency() if ms == 0 else FixedLatency(ms=ms)
        nums = [_number(p, what) for p in parts]
        if kind == "fixed" and len(nums) == 1:
            return FixedLatency(ms=nums[0])
        if kind == "uniform" and len(nums) == 2:
            return UniformLatency(min_ms=nums[0], max_ms=nums[1])
        if kind == "exponential" and len(nums) in (1, 2):
            return ExponentialLatency(mean_ms=nums[0], limit_ms=nums[1] if len(nums) > 1 else None)
        if kind == "lognormal" and 1 <= len(nums) <= 3:
            return LognormalLatency(
                median_ms=nums[0],
                sigma=nums[1] if len(nums) > 1 else 0.5,
                limit_ms=nums[2] if len(nums) > 2 else None,
            )
    except ValidationError as exc:
        raise FaultConfigError(f"{what}: {one_line(exc)}") from None
    raise FaultConfigError(f"{what}: {_LATENCY_USAGE}")


def parse_burst(spec: str) -> RateLimitConfig:
    """Parse the ``--rate-limit-burst EVERY_S:LENGTH_S[:RETRY_AFTER_S]`` shorthand.

    ``"30:5:2"``: every 30 s (the first after 30 s) a 5 s burst during which every request
    gets ``429`` with ``Retry-After: 2``. Without the third part ``Retry-After`` is the time
    left in the burst.

    Raises:
        FaultConfigError: On a malformed value.
    """
    what = f"rate-limit burst {spec!r}"
    parts = spec.strip().split(":")
    if len(parts) not in (2, 3):
        raise FaultConfigError(f"{what}: expected EVERY_S:LENGTH_S[:RETRY_AFTER_S]")
    every, length = (_number(p, what) for p in parts[:2])
    retry: int | None = None
    if len(parts) == 3:
        retry_value = _number(parts[2], what)
        if retry_value != int(retry_value):
            raise FaultConfigError(f"{what}: RETRY_AFTER_S must be whole seconds")
        retry = int(retry_value)
    try:
        return RateLimitConfig(burst_every_s=every, burst_length_s=length, retry_after_s=retry)
    except ValidationError as exc:
        raise FaultConfigError(f"{what}: {one_line(exc)}") from None


def one_line(exc: ValidationError) -> str:
    """Summarise a pydantic error on one line: ``field.path: message; ...``.

    Args:
        exc (pydantic.ValidationError): The error to summarise.

    Returns:
        str: ``loc: message`` items joined by ``"; "`` (the first line of ``exc`` if none).
    """
    items = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        message = str(err["msg"]).replace("\n", " ").removeprefix("Value error, ")
        items.append(f"{loc}: {message}" if loc else message)
    return "; ".join(items) or str(exc).splitlines()[0]
