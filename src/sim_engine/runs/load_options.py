"""A load test's settings and its action distribution (``sim-engine load``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sim_engine.model.behaviour import compile_personas
from sim_engine.model.scenario import Scenario
from sim_engine.runs.load_shapes import Profile
from sim_engine.runs.load_thresholds import Threshold

__all__ = ["LoadOptions", "LoadTestError", "action_distribution"]

_MAX_PROCESSES = 64


class LoadTestError(ValueError):
    """Bad load-test input (e.g. min > max); ``str()`` is one line."""


@dataclass(frozen=True)
class LoadOptions:
    """A load test's settings.

    Attributes:
        scenario: the validated scenario (actions, personas, limits, safety, seed).
        users: concurrent virtual users (>= 1).
        min_requests: fewest requests per user (>= 0).
        max_requests: most requests per user (>= ``min_requests``).
        duration_s: wall seconds after which every user stops (None: no limit).
        delay_min_ms: shortest wait before each request (wall milliseconds, >= 0).
        delay_max_ms: longest wait (>= ``delay_min_ms``).
        target_url: base URL, ``inprocess``, or None for the built-in demo server.
        out_dir: where ``load.json`` goes (and the demo server's database); None:
            nothing is written (a temporary directory holds the database).
        console: stream for progress lines (None: silent).
        progress_every_s: wall seconds between progress lines.
        resilient: send through the scenario's ``limits`` (rate limit, backoff,
            retries, circuit breakers) as ``run`` does; False (the default): raw,
            every request sent once, overload shows as it is.
        thresholds: pass/fail criteria checked at the end (``--threshold``).
        abort_on_fail: also check them every ``progress_every_s`` and stop at the
            first failure (``--abort-on-fail``).
        stages: ``(wall seconds, target)`` ramps (``--stages``): virtual users in the
            closed model, iterations per second in the open one; the test lasts
            their total. Empty: no stages.
        arrival_rate: the open model's rate in iterations per wall second
            (``--arrival-rate``): constant for ``duration_s``, or the start of the
            ``stages`` ramps; ``users`` virtual users share the arrivals. None:
            the closed model.
        csv_prefix: write Locust-compatible ``PREFIX_stats.csv``,
            ``PREFIX_stats_history.csv`` and ``PREFIX_failures.csv`` (None: no CSV).
        csv_every_s: wall seconds between history rows (``--csv-interval``).
        metrics_port: serve Prometheus metrics on 127.0.0.1:PORT while the test
            runs (None: off; with ``processes`` > 1 the parent serves the workers' merged).
        processes: worker processes sharing the test (``--processes``; see
            :mod:`sim_engine.runs.load_workers`).
        http_client: ``reqwest`` (pyreqwest, the default: about a third of aiohttp's
            CPU per request; ``https://`` targets still go through aiohttp) or
            ``aiohttp`` (``--http-client``).
    """

    scenario: Scenario
    users: int = 100
    min_requests: int = 10
    max_requests: int = 1000
    duration_s: float | None = None
    delay_min_ms: float = 100.0
    delay_max_ms: float = 2000.0
    target_url: str | None = None
    out_dir: Path | None = None
    console: TextIO | None = None
    progress_every_s: float = 2.0
    resilient: bool = False
    thresholds: tuple[Threshold, ...] = ()
    abort_on_fail: bool = False
    stages: tuple[tuple[float, float], ...] = ()
    arrival_rate: float | None = None
    csv_prefix: str | None = None
    csv_every_s: float = 1.0
    metrics_port: int | None = None
    processes: int = 1
    http_client: str = "reqwest"

    @property
    def model(self) -> str:
        """``open`` (arrival rate), ``closed-stages`` (ramping users) or ``closed`` (counts)."""
        if self.arrival_rate is not None:
            return "open"
        return "closed-stages" if self.stages else "closed"

    def profile(self) -> Profile | None:
        """The stages or the constant rate as a profile over wall seconds (None: counts)."""
        if self.arrival_rate is not None:
            if self.stages:
                return Profile.of(self.arrival_rate, self.stages)
            return Profile.constant(self.arrival_rate, self.duration_s or 0.0)
        return Profile.of(0.0, self.stages) if self.stages else None

    def virtual_users(self) -> int:
        """Virtual users made: the stages' peak in the closed model with stages, else ``users``."""
        if self.stages and self.arrival_rate is None:
            return max(1, math.ceil(max(target for _, target in self.stages) - 1e-9))
        return self.users

    def check(self) -> None:
        """Check the figures.

        Raises:
            LoadTestError: one line naming the bad option.
        """
        if self.users < 1:
            raise LoadTestError(f"--users must be at least 1 (got {self.users})")
        if self.min_requests < 0:
            raise LoadTestError(f"--min-request-count cannot be negative (got {self.min_requests})")
        if self.max_requests < self.min_requests:
            raise LoadTestError(
                f"--min-request-count ({self.min_requests}) is larger than "
                f"--max-request-count ({self.max_requests})"
            )
        if self.delay_min_ms < 0:
            raise LoadTestError(f"--delay-min cannot be negative (got {self.delay_min_ms:g})")
        if self.delay_max_ms < self.delay_min_ms:
            raise LoadTestError(
                f"--delay-min ({self.delay_min_ms:g}) is larger than "
                f"--delay-max ({self.delay_max_ms:g})"
            )
        if self.duration_s is not None and not self.duration_s > 0:
            raise LoadTestError(f"--duration must be positive (got {self.duration_s:g} s)")
        self._check_shape()
        self._check_processes()
        if not (math.isfinite(self.csv_every_s) and self.csv_every_s > 0):
            raise LoadTestError(f"--csv-interval must be positive (got {self.csv_every_s:g} s)")
        if not action_distribution(self.scenario):
            raise LoadTestError("the scenario's personas give no action a positive weight")

    def _check_processes(self) -> None:
        if not 1 <= self.processes <= _MAX_PROCESSES:
            raise LoadTestError(
                f"--processes must be from 1 to {_MAX_PROCESSES} (got {self.processes})"
            )
        if self.processes == 1:
            return
        if self.arrival_rate is not None and self.users < self.processes:
            raise LoadTestError(f"--processes {self.processes} needs at least that many --users")

    def _check_shape(self) -> None:
        if self.stages and self.duration_s is not None:
            raise LoadTestError("--stages set the test's length: drop --duration")
        if self.stages and sum(d for d, _ in self.stages) <= 0:
            raise LoadTestError("--stages last no time at all")
        rate = self.arrival_rate
        if rate is None:
            return
        if not (math.isfinite(rate) and rate >= 0):
            raise LoadTestError(f"--arrival-rate must be a number >= 0 (got {rate})")
        if not self.stages and self.duration_s is None:
            raise LoadTestError(
                "--arrival-rate needs --duration (a constant rate) or --stages (ramping rates)"
            )
        if not self.stages and rate <= 0:
            raise LoadTestError("--arrival-rate must be positive without --stages")


def action_distribution(scenario: Scenario) -> dict[str, float]:
    """Flatten the personas' weight matrices into one action distribution.

    Each persona's ``relaxing`` matrix (its ``working`` one when it has no
    ``relaxing``), with ``post_frequency`` and ``update_frequency`` applied, is
    normalised and weighted by the persona's share. Returns name -> probability
    (summing to 1; empty when nothing has weight), most likely first.
    """
    shares = scenario.persona_shares()
    total_share = sum(shares.values())
    mix: dict[str, float] = {}
    if total_share <= 0:
        return mix
    for persona in compile_personas(scenario):
        share = shares[persona.name] / total_share
        if share <= 0:
            continue
        state = "relaxing" if "relaxing" in persona.spec.actions else "working"
        for name, p in persona.action_probabilities(state).items():
            mix[name] = mix.get(name, 0.0) + share * p
    norm = sum(mix.values())
    return {k: v / norm for k, v in sorted(mix.items(), key=lambda kv: -kv[1])} if norm else {}
