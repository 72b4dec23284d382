"""Calibrate a scenario to a real event log: fit, simulate, compare (``sim-engine calibrate``).

:func:`calibrate` fits :class:`~sim_engine.realism.scenario_fit.Params` in two steps:

1. **Robust first fits** from the log (:mod:`sim_engine.realism.fitting`): time zones
   (each user's most frequent offset, or the dominant offset of a log without time
   zones), the routine intensity by local hour on weekdays and weekend days, think
   times and follow-up delays (quantiles of the gaps inside and between sessions),
   the session depth, the action mix, the arrivals, and first guesses of the
   propensities and the retention curve (a power law).
2. **Simulated moments**: the scenario is planned by ``generate``'s vectorised planner
   (:mod:`sim_engine.realism.simulate`) on a sample of the population, measured with
   the estimators of ``sim-engine realism``, and each figure is corrected against the
   log's: hourly intensities by the ratio of hourly rates, the return probability by
   D1, the churn hazard by D30 / D1, the activity spread by the Gini of events, the
   follow-up chance by the median burstiness B, the posting spread by the Gini of
   writes, the session rate by sessions per active day, the arrivals by the users
   seen. A few rounds with one seed (common random numbers) converge.

The best round's figures are then simulated for the log's whole span and population
and compared with the log: hourly L1 ≤ 0.1, |ΔB median| ≤ 0.1, |ΔGini| ≤ 0.05 and
|ΔD30| ≤ 0.05 (issue 11's tolerances, :data:`TOLERANCES`). Days without any event in
a busy stretch (collection gaps) are cut from the simulated log too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from sim_engine.realism.estimators import RealismFacts, RealismInputError, distances, facts
from sim_engine.realism.fitting import (
    Gaps,
    LogShape,
    collection_gaps,
    dominant_offset,
    fit_retention,
    hourly_intensity,
    log_shape,
    user_offsets,
    zone_name,
)
from sim_engine.realism.logfacts import DEFAULT_READ_ACTIONS, DEFAULT_WRITE_ACTIONS, log_facts
from sim_engine.realism.readers import EventLog
from sim_engine.realism.scenario_fit import (
    DEMO_MIX,
    Params,
    action_name,
    scenario_data,
    to_scenario,
)
from sim_engine.realism.simulate import SimulatedLog, simulate
from sim_engine.realism.updates import Secant, update_intensity, update_retention

__all__ = ["TOLERANCES", "CalibrateOptions", "Calibration", "Check", "calibrate"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
TOLERANCES: dict[str, float] = {
    "hourly_l1": 0.1,
    "burstiness_median": 0.1,
    "gini_events": 0.05,
    "d30": 0.05,
}
"""Issue 11 item 4: how close the simulated log must be to the real one."""
MAX_SIM_DAYS = 3650
HAZARD_DECAY = 1.0
"""The churn hazard's decay: 1, a power-law retention curve (docs/realism.md says why it
is not fitted)."""
MAX_ZONES = 8
MIN_ZONE_SHARE = 0.005
"""A zone needs 0.5 % of the users (a few travellers or a bot get none of their own)."""
USERS_TOLERANCE = 0.15
"""A round is good when it also simulates the log's users within 15 %."""
ROUND_USER_DAYS = 100_000_000
"""Planned user-days a correction round costs at most (the population is scaled down)."""


@dataclass(frozen=True)
class CalibrateOptions:
    """How to calibrate.

    Attributes:
        write_actions, read_actions: as for ``sim-engine realism`` (None: defaults).
        seed: the scenario's seed (and the simulations').
        rounds: simulate-and-correct rounds at most.
        sample_events: events a correction round simulates at most (the population is
            scaled down to it; the final comparison is at full size).
    """

    write_actions: Sequence[str] | None = None
    read_actions: Sequence[str] | None = None
    seed: int = 1
    rounds: int = 10
    sample_events: int = 250_000


@dataclass(frozen=True)
class Check:
    """One comparison: the log's figure, the simulation's, their distance, pass or fail.

    ``distance`` is the L1 distance for ``hourly_l1`` and the signed difference
    simulated − log otherwise; None when either log lacks the figure: not a failure
    when the real log lacks it, a failure when only the simulation does.
    """

    name: str
    log: float | None
    simulated: float | None
    distance: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        """Within tolerance (or not measurable in the real log)."""
        if self.distance is None:
            return self.log is None
        return abs(self.distance) <= self.tolerance


@dataclass(frozen=True)
class Calibration:
    """The outcome: the fitted figures, the scenario mapping, both logs' facts, the checks.

    Attributes:
        params: the fitted :class:`Params`.
        data: the scenario as a YAML-ready mapping.
        real, simulated: the facts of the log and of the full-size simulation.
        checks: one :class:`Check` per tolerance.
        rounds: correction rounds run; ``gap_days``: collection gaps cut.
        notes: what the fit assumed (time zones, action mix), one line each.
    """

    params: Params
    data: dict[str, Any]
    real: RealismFacts
    simulated: RealismFacts
    checks: tuple[Check, ...]
    rounds: int
    gap_days: int
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Every check within its tolerance."""
        return all(c.passed for c in self.checks)


@dataclass
class _Target:
    """The real log prepared for fitting and comparing."""

    log: EventLog
    code: I64
    t: F64
    facts: RealismFacts
    shape: LogShape
    local: bool
    offset_s: float  # the dominant offset (logs without time zones)
    gaps: Gaps
    actions: dict[str, float]
    writes: frozenset[str] | None  # None: writes unknown
    reads: frozenset[str] | None  # None: every non-write is a read

    def local_s(self, t: F64, offsets: F64 | None) -> F64:
        """Local instants of events as the comparison measures them."""
        return t + (offsets if self.local and offsets is not None else self.offset_s)


def _sorted(log: EventLog) -> tuple[I64, F64, npt.NDArray[np.intp], int]:
    uniq, code = np.unique(log.user, return_inverse=True)
    code = code.reshape(-1).astype(np.int64)
    order = np.lexsort((log.t, code))
    return code[order], log.t[order], order, int(uniq.size)


def _actions(
    log: EventLog, options: CalibrateOptions
) -> tuple[dict[str, float], frozenset[str] | None, frozenset[str] | None]:
    """The action mix and the write / read sets, in scenario action names."""
    if log.action is None:
        return dict(DEMO_MIX), None, None
    counts = np.bincount(log.action, minlength=len(log.action_names))
    mix: dict[str, float] = {}
    for name, n in zip(log.action_names, counts.tolist(), strict=True):
        key = action_name(name)
        mix[key] = mix.get(key, 0.0) + n / max(int(counts.sum()), 1)
    mix = {k: v for k, v in mix.items() if v > 0}
    writes = {action_name(n) for n in (options.write_actions or DEFAULT_WRITE_ACTIONS)} & set(mix)
    unknown = not writes and options.write_actions is None
    reads = {action_name(n) for n in (options.read_actions or DEFAULT_READ_ACTIONS)} & set(mix)
    read_set = frozenset(reads) if reads or options.read_actions else None
    return mix, (None if unknown else frozenset(writes)), (None if unknown else read_set)


def _target(log: EventLog, options: CalibrateOptions) -> _Target:
    real = log_facts(log, options.write_actions, options.read_actions)
    code, t, _order, users = _sorted(log)
    offset = 3600.0 * dominant_offset(np.asarray(real.hourly_shares))
    mix, writes, reads = _actions(log, options)
    return _Target(
        log=log,
        code=code,
        t=t,
        facts=real,
        shape=log_shape(code, t, users),
        local=log.offset_s is not None,
        offset_s=0.0 if log.offset_s is not None else offset,
        gaps=collection_gaps(t),
        actions=mix,
        writes=writes,
        reads=reads,
    )


def _zones(target: _Target) -> dict[str, float]:
    if not target.local or target.log.offset_s is None:
        return {zone_name(target.offset_s): 1.0}
    code, _, order, users = _sorted(target.log)
    per_user = user_offsets(code, target.log.offset_s[order], users)
    offs, counts = np.unique(per_user, return_counts=True)
    top = np.argsort(counts)[::-1][:MAX_ZONES]
    keep = counts[top] >= MIN_ZONE_SHARE * counts.sum()
    keep[0] = True  # the largest zone, always
    top = top[keep]
    shares: dict[str, float] = {}
    for i in top:
        name = zone_name(float(offs[i]))
        shares[name] = shares.get(name, 0.0) + float(counts[i]) / float(counts[top].sum())
    return shares


def _depth_high(mean_events: float) -> int:
    """The cap ``H`` whose depth 1 + geometric (mean ``(H − 1)/2``, capped at H) is closest."""

    def mean(h: int) -> float:
        mu = (h - 1) / 2.0
        return 1.0 + (mu * (1.0 - (mu / (1.0 + mu)) ** (2 * mu)) if h > 1 else 0.0)

    return min(range(1, 200), key=lambda h: abs(mean(h) - mean_events))


def _first_params(target: _Target, seed: int) -> Params:
    f, shape = target.facts, target.shape
    local_first = target.t.min() + (0.0 if target.local else target.offset_s)
    start = datetime.fromtimestamp(local_first, timezone.utc).date()
    days = min(MAX_SIM_DAYS, math.ceil(f.span_days) + 2)
    local = target.local_s(target.log.t, target.log.offset_s)
    weekday, weekend = hourly_intensity(local)
    return_p, hazard, decay = fit_retention(f.retention, decays=(HAZARD_DECAY,)) or (
        f.d1 or 0.3,
        0.3,
        HAZARD_DECAY,
    )
    return Params(
        start=start,
        days=days,
        seed=seed,
        zones=_zones(target),
        weekday=tuple(weekday.tolist()),
        weekend=tuple(weekend.tolist()),
        actions=target.actions,
        writes=target.writes or frozenset({"create_post", "update_post", "delete_post"}),
        sessions_per_day=max(0.01, 2.0 * (shape.sessions_per_active_day - 1.0)),
        activity_sigma=float(np.clip(0.5 * shape.count_sigma, 0.0, 3.0)),
        posting_sigma=1.0 if target.writes else 0.0,
        depth_high=_depth_high(f.session_mean_events),
        think_median_s=float(np.clip(shape.think[0], 1.0, 1800.0)),
        think_sigma=float(np.clip(shape.think[1], 0.0, 4.0)),
        follow_p=0.3,
        follow_median_s=float(np.clip(shape.follow_up[0], 60.0, 86_400.0)),
        follow_sigma=float(np.clip(shape.follow_up[1], 0.0, 4.0)),
        return_p=float(np.clip(return_p, 0.005, 1.0)),
        hazard_first_day=hazard,
        hazard_decay=decay,
        initial=max(1, shape.day0_users),
        signups_per_day=max(0.0, (shape.users - shape.day0_users) / max(f.span_days, 1.0)),
    )


@dataclass
class _Measured:
    facts: RealismFacts
    shape: LogShape
    local_s: F64


def _measure(target: _Target, sim: SimulatedLog) -> _Measured | None:
    t0, t1 = float(target.t.min()), float(target.t.max())
    sim = sim.select(target.gaps.keep(sim.t) & (sim.t >= t0) & (sim.t <= t1))
    if np.unique(sim.user).size < 2:
        return None
    writes = None if target.writes is None else sim.is_action(target.writes)
    reads = None if target.reads is None or writes is None else sim.is_action(target.reads)
    offsets = sim.offset_s if target.local else None
    f = facts(sim.user, sim.t, offsets, writes, is_read=reads, span_end_s=t1)
    uniq, code = np.unique(sim.user, return_inverse=True)
    order = np.lexsort((sim.t, code))
    shape = log_shape(code[order].astype(np.int64), sim.t[order], int(uniq.size))
    return _Measured(f, shape, target.local_s(sim.t, offsets))


def _checks(real: RealismFacts, sim: RealismFacts) -> tuple[Check, ...]:
    d = distances(real, sim)
    pairs = {
        "hourly_l1": (None, None, d.hourly_l1),
        "burstiness_median": (real.burstiness_median, sim.burstiness_median, d.burstiness_median),
        "gini_events": (real.gini_events, sim.gini_events, d.gini_events),
        "d30": (real.d30, sim.d30, d.d30),
    }
    return tuple(Check(name, a, b, dist, TOLERANCES[name]) for name, (a, b, dist) in pairs.items())


def _score(checks: tuple[Check, ...], users_ratio: float) -> float:
    worst = max(
        (abs(c.distance) / c.tolerance for c in checks if c.distance is not None), default=0
    )
    return max(worst, abs(users_ratio - 1.0) / USERS_TOLERANCE)


QUIET_PER_UNIT = 0.05
"""Below 0, the Gini knob starts quiet spells: ``quiet_p = −knob × 0.05`` per day."""


def _spread(knob: float) -> tuple[float, float]:
    """The Gini knob: above 0 the activity spread (sigma), below 0 quiet spells.

    Heterogeneous activity raises the Gini of events per user; quiet spells (the
    same users come back fewer days, but for longer lives at a given D1) lower it.
    """
    return max(knob, 0.0), max(-knob, 0.0) * QUIET_PER_UNIT


class _Fitter:
    """The simulate-and-correct rounds (one :class:`Secant` per scalar figure)."""

    def __init__(self, target: _Target, params: Params, scale: float) -> None:
        self.target, self.params, self.scale = target, params, scale
        self.gini = Secant(params.activity_sigma, 0.15, -1.0, 3.0)
        self.burst = Secant(params.follow_p, 0.4, 0.0, 1.0)
        self.posting = Secant(params.posting_sigma, 0.15, 0.0, 4.0)
        self.best: tuple[float, Params, _Measured | None] | None = None

    def round(self) -> float | None:
        """Simulate the current figures on the sample, correct them; return the score."""
        p, t, scale = self.params, self.target, self.scale
        sample = p.scaled(scale)
        sim = simulate(to_scenario(sample), sample.initial, p.days, p.start, p.seed)
        self.scale = min(scale, scale * ROUND_USER_DAYS / max(sim.planned_users * p.days, 1))
        got = _measure(t, sim)
        if got is None:
            self.params = replace(p, initial=p.initial * 4, signups_per_day=p.signups_per_day * 4)
            return None
        ratio = got.shape.users / max(t.shape.users * scale, 1e-9)
        score = _score(_checks(t.facts, got.facts), ratio)
        if self.best is None or score < self.best[0]:
            self.best = (score, p, got if scale == 1.0 else None)
        self.params = self._corrected(p, got, ratio)
        return score

    def _corrected(self, p: Params, got: _Measured, users_ratio: float) -> Params:
        t, f, g = self.target, self.target.facts, got.facts
        weekday, weekend = update_intensity(
            t.local_s(t.log.t, t.log.offset_s), got.local_s, p.weekday, p.weekend
        )
        activity, quiet = _spread(self.gini.step(f.gini_events, g.gini_events))
        return_p, hazard = update_retention(f, g, p.return_p, p.hazard_first_day, p.hazard_decay)
        grow = float(np.clip(1.0 / max(users_ratio, 1e-9), 0.1, 10.0))
        extra = max(t.shape.sessions_per_active_day - 1.0, 0.002)
        extra_sim = max(got.shape.sessions_per_active_day - 1.0, 0.002)
        return replace(
            p,
            weekday=weekday,
            weekend=weekend,
            return_p=return_p,
            hazard_first_day=hazard,
            activity_sigma=activity,
            quiet_p=quiet,
            follow_p=self.burst.step(f.burstiness_median, g.burstiness_median),
            posting_sigma=self.posting.step(f.gini_writes, g.gini_writes),
            sessions_per_day=float(np.clip(p.sessions_per_day * extra / extra_sim, 0.01, 1000.0)),
            initial=max(1, round(p.initial * grow)),
            signups_per_day=p.signups_per_day * grow,
        )


def _notes(target: _Target, params: Params) -> tuple[str, ...]:
    zones = ", ".join(f"{z} {s:.0%}" for z, s in params.zones.items())
    where = "users' own offsets" if target.local else "the dominant offset (no time zones)"
    notes = [f"time zones from {where}: {zones}"]
    if target.log.action is None:
        notes.append("no action column: the demo API's read-mostly mix (50 reads per write)")
    if target.gaps.days:
        notes.append(f"{len(target.gaps.days)} collection gap day(s) cut from the simulation")
    if params.days >= MAX_SIM_DAYS:
        notes.append(f"the log spans more than {MAX_SIM_DAYS} days: simulated the first ones")
    return tuple(notes)


def calibrate(
    log: EventLog,
    options: CalibrateOptions | None = None,
    progress: Callable[[int, float | None], None] | None = None,
) -> Calibration:
    """Fit a scenario to ``log``, simulate it at full size and compare (see module doc).

    ``progress(round, score)`` is called after each round; ``score`` is the largest
    distance over its tolerance (users included), None when a round saw under two users.

    Raises:
        RealismInputError: the log cannot be measured (one user only, ...) or the
            fitted scenario produces fewer than two users.
    """
    opts = options or CalibrateOptions()
    target = _target(log, opts)
    scale = min(1.0, opts.sample_events / max(target.facts.events, 1))
    fitter = _Fitter(target, _first_params(target, opts.seed), scale)
    rounds = 0
    for rounds in range(1, opts.rounds + 1):
        score = fitter.round()
        if progress is not None:
            progress(rounds, score)
        if score is not None and score <= 0.5:
            break
    params, full = fitter.params, None
    if fitter.best is not None:
        _, params, full = fitter.best
    if full is None:  # the best round was a sample: simulate the whole population
        sim = simulate(to_scenario(params), params.initial, params.days, params.start, params.seed)
        full = _measure(target, sim)
    if full is None:
        raise RealismInputError("the fitted scenario planned fewer than two active users")
    return Calibration(
        params=params,
        data=scenario_data(params),
        real=target.facts,
        simulated=full.facts,
        checks=_checks(target.facts, full.facts),
        rounds=rounds,
        gap_days=len(target.gaps.days),
        notes=_notes(target, params),
    )
