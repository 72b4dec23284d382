"""The figures of a load test: tallies per action, ``load.json`` and the printed summary."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim_engine._version import __version__
from sim_engine.runs.load_options import LoadOptions
from sim_engine.runs.load_stats import LoadStats, Tally
from sim_engine.runs.load_thresholds import Verdict, failed_of

__all__ = ["LoadResult", "Tally", "format_summary", "write_load_json"]


@dataclass
class LoadResult:
    """What a load test measured (``load.json`` is :meth:`to_dict`).

    Attributes:
        options: the settings it ran with.
        target: the base URL used.
        wall_s: wall seconds from the first sign-up to the last answer.
        completed_users: users that made all their requests.
        cut_short: some user stopped before its count (duration or interrupt).
        interrupted: stopped by SIGINT/SIGTERM.
        impossible: request slots given up because no drawn action was possible
            (``api`` guards, e.g. nothing to read yet); not counted as requests.
        distribution: the flattened action distribution (name -> probability).
        transport: the resilient transport's counters (retries, rate limited...;
            empty unless ``resilient``).
        stats: the tallies (overall, by action, by endpoint, setup, by status).
        verdicts: the thresholds checked at the end.
        aborted: the live threshold failure that stopped the test (``--abort-on-fail``).
        cpu_s: CPU seconds this process used over ``wall_s`` (its cost per request).
        dropped_iterations: open model: arrivals whose virtual user was still busy
            (or signing up) at their time, not sent; their wait is in the latency
            through the coordinated-omission correction.
        timeline: the test over time, a sample every ``progress_every_s`` and one at
            the end (:data:`~sim_engine.runs.load_live.Sample`: users, req/s,
            failures/s, the interval's p50/p95/p99).
    """

    options: LoadOptions
    target: str
    wall_s: float = 0.0
    completed_users: int = 0
    cut_short: bool = False
    interrupted: bool = False
    impossible: int = 0
    dropped_iterations: int = 0
    cpu_s: float = 0.0
    distribution: dict[str, float] = field(default_factory=dict)
    transport: dict[str, Any] = field(default_factory=dict)
    stats: LoadStats = field(default_factory=LoadStats)
    verdicts: list[Verdict] = field(default_factory=list)
    aborted: Verdict | None = None
    timeline: list[dict[str, float]] = field(default_factory=list)

    @property
    def total(self) -> Tally:
        """Every request (sign-up and log-in excluded)."""
        return self.stats.total

    @property
    def by_action(self) -> dict[str, Tally]:
        """Action name -> tally."""
        return self.stats.by_action

    @property
    def by_endpoint(self) -> dict[str, Tally]:
        """``METHOD /path/{template}`` -> tally."""
        return self.stats.by_endpoint

    @property
    def setup(self) -> dict[str, Tally]:
        """Sign-up and log-in."""
        return self.stats.setup

    @property
    def by_status(self) -> Counter[int]:
        """HTTP status -> count (0: no answer)."""
        return self.stats.by_status

    @property
    def failed_verdicts(self) -> list[Verdict]:
        """The thresholds that failed (the live one that aborted the test first)."""
        return failed_of(self.verdicts, self.aborted)

    @property
    def requests(self) -> int:
        """Requests made (sign-up and log-in excluded)."""
        return self.total.requests

    @property
    def failed(self) -> int:
        """Requests that failed (deliberate errors excluded)."""
        return self.total.failed

    @property
    def success_rate(self) -> float:
        """Share of requests that succeeded, deliberate errors left out (1.0 with none)."""
        real = self.total.requests - self.total.intended
        return (real - self.total.failed) / real if real > 0 else 1.0

    @property
    def requests_per_second(self) -> float:
        """Requests per wall second over the whole test (setup included in the time)."""
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    def latency_ms(self) -> dict[str, float]:
        """Latency of the requests: ``p50``, ``p95``, ``p99``, ``mean``, ``max`` (wall ms)."""
        return self.total.percentiles()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready figures (the content of ``load.json``)."""
        o = self.options
        return {
            "scenario": o.scenario.name,
            "seed": o.scenario.seed,
            "target": self.target,
            "model": o.model,
            "processes": o.processes,
            "users": o.virtual_users(),
            "stages": [list(stage) for stage in o.stages],
            "arrival_rate": o.arrival_rate,
            "dropped_iterations": self.dropped_iterations,
            "latency_corrected": o.arrival_rate is not None,
            "corrected_samples": self.total.corrected,
            "min_request_count": o.min_requests,
            "max_request_count": o.max_requests,
            "delay_ms": [o.delay_min_ms, o.delay_max_ms],
            "duration_s": o.duration_s,
            "requests": self.requests,
            "failed": self.failed,
            "intended_errors": self.total.intended,
            "success_rate": round(self.success_rate, 6),
            "latency_ms": self.latency_ms(),
            "requests_per_second": round(self.requests_per_second, 3),
            "wall_seconds": round(self.wall_s, 3),
            "cpu_seconds": round(self.cpu_s, 3),
            "completed_users": self.completed_users,
            "cut_short": self.cut_short,
            "interrupted": self.interrupted,
            "impossible": self.impossible,
            "by_action": _rows(self.by_action),
            "by_endpoint": _rows(self.by_endpoint),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "errors": dict(sorted(self.total.errors.items())),
            "resilient": o.resilient,
            "http_client": _client_used(o, self.target),
            "thresholds": [
                {"threshold": v.threshold.text, "passed": v.passed, "value": v.value}
                for v in self.verdicts
            ],
            "aborted_by": None if self.aborted is None else self.aborted.threshold.text,
            "setup": {name: t.as_dict() for name, t in self.setup.items()},
            "distribution": {k: round(v, 6) for k, v in self.distribution.items()},
            "transport": self.transport,
            "timeline": [{k: round(v, 3) for k, v in point.items()} for point in self.timeline],
            "version": __version__,
        }


def _rows(table: dict[str, Tally]) -> dict[str, Any]:
    """Tallies as ``load.json`` rows, the busiest first."""
    return {name: t.as_dict() for name, t in sorted(table.items(), key=lambda kv: -kv[1].requests)}


def _client_used(options: LoadOptions, target: str) -> str:
    """The HTTP client the requests went through (``inprocess``: none)."""
    if not target.startswith(("http://", "https://")):
        return "inprocess"
    return options.http_client if target.startswith("http://") else "aiohttp"


def write_load_json(result: LoadResult, out_dir: Path) -> Path:
    """Write ``OUT_DIR/load.json`` (atomically) and return its path.

    Raises:
        OSError: the directory cannot be written.
    """
    path = out_dir / "load.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def format_summary(result: LoadResult) -> list[str]:
    """Return the end-of-test summary as printable lines."""
    lat = result.latency_ms()
    head = "Interrupted" if result.interrupted else "Done"
    if result.aborted is not None:
        head = "Aborted (threshold failed)"
    if result.cut_short and not result.interrupted:
        head += " (duration reached)"
    lines = [
        f"{head}: {result.requests} requests from {result.options.virtual_users()} users "
        f"in {result.wall_s:.1f} s, {result.requests_per_second:.1f} requests/s",
        f"  success {100 * result.success_rate:.1f}% ({result.failed} failed"
        + (f", {result.total.intended} deliberate errors" if result.total.intended else "")
        + ")",
        f"  latency p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f} / p99 {lat['p99']:.1f} ms "
        f"(max {lat['max']:.1f})",
    ]
    lines.extend(_shape_lines(result))
    if result.setup:
        setup = ", ".join(
            f"{name} {t.requests} ({t.failed} failed)" for name, t in result.setup.items()
        )
        lines.append(f"  setup: {setup}")
    rows = sorted(result.by_action.items(), key=lambda kv: -kv[1].requests)
    if rows:
        lines.append("  by action:")
        width = max(len(name) for name, _ in rows)
        for name, t in rows:
            p = t.percentiles()
            lines.append(
                f"    {name:<{width}}  {t.requests:>7} requests  {t.failed:>6} failed  "
                f"p50 {p['p50']:.1f} / p95 {p['p95']:.1f} ms"
            )
    lines.extend(_endpoint_lines(result))
    if result.impossible:
        lines.append(f"  {result.impossible} request slots had no possible action")
    if result.total.errors:
        kinds = ", ".join(f"{k} {n}" for k, n in result.total.errors.most_common())
        lines.append(f"  errors by kind: {kinds}")
    if result.aborted is not None:
        lines.append(f"  aborted: {result.aborted.line()}")
    lines.extend(f"  {v.line()}" for v in result.verdicts)
    return lines


def _shape_lines(result: LoadResult) -> list[str]:
    """What the open model and the stages did: the rate, drops, the latency correction."""
    o = result.options
    lines = []
    if o.stages:
        unit = " users" if o.arrival_rate is None else "/s"
        ramps = ", ".join(f"{d:g}s:{target:g}{unit}" for d, target in o.stages)
        lines.append(f"  stages: {ramps}")
    if o.arrival_rate is not None:
        lines.append(
            f"  open model: {result.dropped_iterations} iterations dropped (virtual user "
            f"busy); latency corrected for coordinated omission (HdrHistogram, expected "
            f"interval per user; {result.total.corrected} samples added)"
        )
    return lines


def _endpoint_lines(result: LoadResult) -> list[str]:
    """The final per-endpoint table: requests, req/s, failures, p50/p95/p99, errors."""
    rows = sorted(result.by_endpoint.items(), key=lambda kv: -kv[1].requests)
    if not rows:
        return []
    width = max(len(name) for name, _ in rows)
    wall = result.wall_s
    lines = ["  by endpoint:"]
    for name, t in rows:
        p = t.percentiles()
        rps = t.requests / wall if wall > 0 else 0.0
        errors = ", ".join(f"{k} {n}" for k, n in t.errors.most_common(3))
        lines.append(
            f"    {name:<{width}}  {t.requests:>7} req  {rps:>8.1f}/s  {t.failed:>6} failed  "
            f"p50 {p['p50']:.1f} / p95 {p['p95']:.1f} / p99 {p['p99']:.1f} ms"
            + (f"  ({errors})" if errors else "")
        )
    return lines
