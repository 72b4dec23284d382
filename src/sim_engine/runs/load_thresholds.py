"""Pass/fail verdicts: ``--threshold 'p95<200ms'`` for ``load`` and ``run``.

Grammar (one threshold per ``--threshold``; spaces around the operator allowed)::

    [SCOPE:]METRIC OP VALUE[UNIT]

* ``SCOPE``: an endpoint as the records name it (``GET /posts/{id}``) or an
  action (``read_post``); without one, every request (sign-up and log-in are
  left out in ``load``).
* ``METRIC``: ``p50``, ``p90``, ``p95``, ``p99``, ``p99.9`` (any ``pN``),
  ``avg``, ``max`` (latency, wall time; ``UNIT`` ``ms`` (default) or ``s``);
  ``error_rate`` (``%`` or a fraction: ``1%`` = ``0.01``), ``rps`` (requests per
  wall second), ``requests``, ``failures`` (counts).
* ``OP``: ``<``, ``<=``, ``>``, ``>=``.

A latency or error-rate threshold whose scope saw no request fails ("no
requests"): a CI check must not pass because nothing was measured; counts
(``rps``, ``requests``, ``failures``) are then 0. See ``docs/load-testing.md``.
"""

from __future__ import annotations

import asyncio
import math
import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim_engine.runs.load_stats import LoadStats, Tally

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation
    from sim_engine.model.records import Sink

__all__ = [
    "Threshold",
    "ThresholdError",
    "ThresholdGuard",
    "Verdict",
    "evaluate",
    "failed_of",
    "parse_threshold",
    "parse_thresholds",
]


class ThresholdError(ValueError):
    """A threshold that cannot be read; ``str()`` is one line naming it."""


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_PATTERN = re.compile(
    r"^(?:(?P<scope>.+?)\s*:\s*)?(?P<metric>[a-z_]+|p\d+(?:\.\d+)?)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>ms|s|%)?$"
)
_LATENCY = ("avg", "max")
_COUNTS = ("rps", "requests", "failures")
_LIVE_SKIPPED = ("rps", "requests")  # lower bounds on volume: judged at the end only


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold.

    Attributes:
        text: as written (for messages).
        scope: endpoint or action name; None: every request.
        metric: ``pN``, ``avg``, ``max``, ``error_rate``, ``rps``, ``requests``, ``failures``.
        op: ``<``, ``<=``, ``>``, ``>=``.
        limit: the bound, in wall ms for latency, a fraction for ``error_rate``.
    """

    text: str
    scope: str | None
    metric: str
    op: str
    limit: float

    def observe(self, tally: Tally, wall_s: float) -> float:
        """The metric's value in ``tally`` over ``wall_s`` wall seconds."""
        metric = self.metric
        if metric.startswith("p"):
            return tally.percentile_ms(float(metric[1:]))
        if metric == "avg":
            return tally.hist.mean() / 1000 if tally.requests else 0.0
        if metric == "max":
            return float(tally.latency.get_max_value()) / 1000 if tally.requests else 0.0
        if metric == "error_rate":
            return tally.error_rate
        if metric == "rps":
            return tally.requests / wall_s if wall_s > 0 else 0.0
        return float(tally.requests if metric == "requests" else tally.failed)

    def describe(self, value: float) -> str:
        """``value`` in this metric's unit (``340.2 ms``, ``2.31%``, ``412.0/s``)."""
        if self.metric == "error_rate":
            return f"{100 * value:.2f}%"
        if self.metric == "rps":
            return f"{value:.1f}/s"
        if self.metric in ("requests", "failures"):
            return f"{value:.0f}"
        return f"{value:.1f} ms"


@dataclass(frozen=True)
class Verdict:
    """A threshold checked: passed or not, and the value seen (None: no requests)."""

    threshold: Threshold
    passed: bool
    value: float | None

    def line(self) -> str:
        """One line: ``threshold failed: p95<200ms (p95 was 340.2 ms)``."""
        t = self.threshold
        word = "passed" if self.passed else "failed"
        if self.value is None:
            where = f" for {t.scope}" if t.scope else ""
            return f"threshold {word}: {t.text} (no requests{where})"
        return f"threshold {word}: {t.text} ({t.metric} was {t.describe(self.value)})"


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold (grammar in the module docstring).

    Raises:
        ThresholdError: one line naming the threshold and what is wrong.
    """
    match = _PATTERN.match(text.strip())
    if match is None:
        raise ThresholdError(
            f"--threshold {text!r}: expected [SCOPE:]METRIC OP VALUE, e.g. 'p95<200ms', "
            "'error_rate<1%', 'rps>500', 'GET /posts:p99<500ms'"
        )
    metric, unit = match["metric"], match["unit"]
    value = float(match["value"])
    is_latency = metric in _LATENCY or (metric.startswith("p") and metric != "p")
    if is_latency:
        _check_percentile(text, metric)
        if unit == "%":
            raise ThresholdError(f"--threshold {text!r}: {metric} takes ms or s, not %")
        value = value * 1000 if unit == "s" else value
    elif metric == "error_rate":
        if unit in ("ms", "s"):
            raise ThresholdError(f"--threshold {text!r}: error_rate takes % or a fraction")
        value = value / 100 if unit == "%" else value
    elif metric in _COUNTS:
        if unit is not None:
            raise ThresholdError(f"--threshold {text!r}: {metric} takes a plain number")
    else:
        known = "pN (p95, p99.9), avg, max, error_rate, rps, requests, failures"
        raise ThresholdError(f"--threshold {text!r}: unknown metric {metric!r} (known: {known})")
    return Threshold(text.strip(), match["scope"], metric, match["op"], value)


def _check_percentile(text: str, metric: str) -> None:
    if metric.startswith("p") and metric not in _LATENCY:
        pct = float(metric[1:])
        if not 0 < pct <= 100:
            raise ThresholdError(f"--threshold {text!r}: a percentile lies in (0, 100]")


def parse_thresholds(texts: tuple[str, ...] | list[str]) -> tuple[Threshold, ...]:
    """Parse each of ``texts`` (see :func:`parse_threshold`).

    Raises:
        ThresholdError: the first that cannot be read.
    """
    return tuple(parse_threshold(t) for t in texts)


def _scope_tally(stats: LoadStats, scope: str | None) -> Tally | None:
    if scope is None:
        return stats.total
    return stats.by_endpoint.get(scope) or stats.by_action.get(scope)


def evaluate(
    thresholds: tuple[Threshold, ...], stats: LoadStats, wall_s: float, live: bool = False
) -> list[Verdict]:
    """Check ``thresholds`` against ``stats`` gathered over ``wall_s`` wall seconds.

    Args:
        live: checking during the test: thresholds on ``rps`` and ``requests``
            (which only the whole test can judge) and scopes without requests
            yet are left out.

    Returns:
        One verdict per threshold checked, in order.
    """
    verdicts = []
    for t in thresholds:
        if live and t.metric in _LIVE_SKIPPED:
            continue
        tally = _scope_tally(stats, t.scope)
        if (tally is None or tally.requests == 0) and t.metric not in _COUNTS:
            if not live:
                verdicts.append(Verdict(t, False, None))
            continue
        tally = tally or Tally()
        value = t.observe(tally, wall_s)
        passed = math.isfinite(value) and _OPS[t.op](value, t.limit)
        verdicts.append(Verdict(t, passed, value))
    return verdicts


def failed_of(verdicts: list[Verdict], aborted: Verdict | None) -> list[Verdict]:
    """The failed verdicts, the live one that aborted the test first (once)."""
    failed = [v for v in verdicts if not v.passed]
    if aborted is not None and aborted.threshold not in {v.threshold for v in failed}:
        failed.insert(0, aborted)
    return failed


class ThresholdGuard:
    """An add-on that judges thresholds over the run's records (``run`` and ``load``).

    Its sink keeps a :class:`LoadStats`; with ``abort`` it checks the thresholds
    every ``every_s`` wall seconds and stops the simulation at the first failure
    (:attr:`aborted` then holds the verdict). :meth:`verdicts` gives the final ones.

    Args:
        thresholds: what to check.
        stats: where the records are counted (a load test passes its own; None: a new
            one counting every action, sign-up and log-in included).
        abort: check live and stop at the first failure (``--abort-on-fail``).
        every_s: wall seconds between live checks.
        now: wall-clock source in seconds (injected in tests).
    """

    def __init__(
        self,
        thresholds: tuple[Threshold, ...],
        stats: LoadStats | None = None,
        *,
        abort: bool = False,
        every_s: float = 2.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.thresholds = thresholds
        self.stats = stats if stats is not None else LoadStats(split_setup=False)
        self._own_sink = stats is None
        self.abort = abort
        self.every_s = every_s
        self._now = now
        self._started = now()
        self._task: asyncio.Task[None] | None = None
        self.aborted: Verdict | None = None

    def sinks(self) -> list[Sink]:
        """The stats sink when the guard counts for itself."""
        return [self.stats] if self._own_sink else []

    async def start(self, sim: Simulation) -> None:
        """Start the clock of ``rps``; with ``abort``, the live checks."""
        self._started = self._now()
        if self.abort and self.thresholds:
            self._task = asyncio.ensure_future(self._watch(sim))

    async def stop(self) -> None:
        """Stop the live checks."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def check_now(self) -> Verdict | None:
        """One live check: the first failed verdict (None: all pass so far)."""
        live = evaluate(self.thresholds, self.stats, self._now() - self._started, live=True)
        return next((v for v in live if not v.passed), None)

    async def _watch(self, sim: Simulation) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            failed = self.check_now()
            if failed is not None:
                self.aborted = failed
                sim.stop()
                return

    def verdicts(self, wall_s: float | None = None) -> list[Verdict]:
        """The final verdicts over ``wall_s`` (default: since :meth:`start`)."""
        seconds = self._now() - self._started if wall_s is None else wall_s
        return evaluate(self.thresholds, self.stats, seconds)
