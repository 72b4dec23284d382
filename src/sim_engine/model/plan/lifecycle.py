""":func:`~sim_engine.model.lifecycle.decide_day` over arrays of users at once.

The same rules, in the same order, with the same :class:`LifecycleSpec` figures:
life events end or start, the binge cycle advances, the return probability (an
event's, else the pattern's base plus the streak bonus and the engagement shift,
times the DORMANT multiplier) decides activity, streak and engagement move, then
at most one state transition and the pattern assignment. Draws are hashed from
``(user key, day, stream)`` (:mod:`sim_engine.model.plan.rand`), not taken from
a sequential generator, so the scalar and the vectorised decisions agree in
distribution, not draw by draw (``tests/test_plan_model.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from sim_engine.model.lifecycle import (
    ActivityPattern,
    LifecycleSpec,
    LifecycleState,
    LifecycleStatus,
    LifeEvent,
    pattern_probability,
)
from sim_engine.model.lifecycle_spec import DayRange
from sim_engine.model.plan.rand import U64, bounded, uniform

__all__ = ["EVENTS", "PATTERNS", "STATES", "Changes", "LifeArrays"]

STATES = tuple(LifecycleState)
PATTERNS = tuple(ActivityPattern)
EVENTS = tuple(LifeEvent)
NEW, ACTIVE, CASUAL, DORMANT, CHURNED = range(5)
_BINGE = PATTERNS.index(ActivityPattern.BINGE)
_DAILY = PATTERNS.index(ActivityPattern.DAILY)
# Hash streams of the lifecycle's draws.
_EV_START, _EV_LEN, _COOL, _BINGE_LEN, _ACTIVE_S, _CHURN, _PATTERN = range(100, 107)
_SEGMENT, _ENGAGE, _COOL0, _QUIT = 110, 111, 112, 113

B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_Out = list[tuple[I64, int, Any, Any]]
_PROBE = LifecycleStatus(segment="", signup_day=0, engagement=0.0)  # patterns ignoring status


@dataclass
class Changes:
    """Transitions of one day: user indices, kind (0 state, 1 pattern, 2 event), old, new codes.

    Event codes are ``EVENTS`` positions, ``-1`` for none.
    """

    user: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int8]
    old: npt.NDArray[np.int8]
    new: npt.NDArray[np.int8]
    day: int = 0


def _draw(rng_range: DayRange, keys: U64, *salts: int) -> npt.NDArray[np.int64]:
    return bounded(keys, rng_range.low, rng_range.high, *salts)


class LifeArrays:
    """Lifecycle status of ``capacity`` users as arrays (a column per field of
    :class:`~sim_engine.model.lifecycle.LifecycleStatus`).

    Args:
        spec: the scenario's lifecycle section.
        capacity: how many users the arrays can hold.
    """

    def __init__(self, spec: LifecycleSpec, capacity: int) -> None:
        self.spec = spec
        n = capacity
        self.state = np.zeros(n, np.int8)
        self.pattern = np.full(n, _DAILY, np.int8)
        self.assigned = np.zeros(n, np.bool_)
        self.streak = np.zeros(n, np.int32)
        self.inactive = np.zeros(n, np.int32)
        self.engagement = np.zeros(n, np.float64)
        self.event = np.full(n, -1, np.int8)
        self.event_until = np.zeros(n, np.int32)
        self.binge_left = np.zeros(n, np.int32)
        self.cooldown = np.zeros(n, np.int32)
        self.signup_day = np.zeros(n, np.int32)
        self.segment = np.zeros(n, np.int8)
        self.churnable = np.ones(n, np.bool_)
        segs = list(spec.segments.values())
        self._seg_cum = np.cumsum(segs) / sum(segs)
        self._pattern_cum = np.asarray(
            [
                np.cumsum([spec.pattern_distribution[s].get(p, 0.0) for p in PATTERNS])
                for s in spec.segments
            ]
        )
        self._pattern_cum /= self._pattern_cum[:, -1:]

    def admit(self, idx: npt.NDArray[np.int64], keys: U64, day: int, founder: B) -> None:
        """Start the status of users ``idx`` signing up on day ``day`` (``new_status``)."""
        spec = self.spec
        self.segment[idx] = np.searchsorted(self._seg_cum, uniform(keys, _SEGMENT), "right")
        self.engagement[idx] = _draw(spec.engagement.start, keys, _ENGAGE)
        self.cooldown[idx] = _draw(spec.patterns.cooldown_days, keys, _COOL0)
        self.signup_day[idx] = day
        self.state[idx] = NEW
        self.churnable[idx] = ~founder

    def decide(
        self,
        idx: npt.NDArray[np.int64],
        keys: U64,
        day: int,
        today: date,
        day_weight: F64 | None = None,
    ) -> tuple[B, Changes]:
        """Decide day ``day`` (local date ``today``) for users ``idx`` (none CHURNED).

        Returns whether each is active, and the day's transitions. ``keys`` are the
        users' keys (:func:`~sim_engine.model.plan.rand.user_keys`), aligned with ``idx``;
        ``day_weight`` each user's persona's routine weight of the day (default 1).
        """
        out: list[tuple[npt.NDArray[np.int64], int, npt.ArrayLike, npt.ArrayLike]] = []
        weight = np.ones(len(idx)) if day_weight is None else day_weight
        stay = ~self._quit(idx, keys, day, out)
        active = np.zeros(len(idx), np.bool_)
        idx, keys, weight = idx[stay], keys[stay], weight[stay]
        self._events(idx, keys, day, out)
        self._binge(idx, keys, day)
        p = self._return_probability(idx, today, weight)
        active[stay] = act = uniform(keys, day, _ACTIVE_S) < p
        self._habits(idx, act)
        self._transitions(idx, keys, day, act, out)
        return active, _changes(out)

    def _quit(self, idx: I64, keys: U64, day: int, out: _Out) -> B:
        """The churn hazard: users quitting for good today (CHURNED, not active)."""
        hazard = self.spec.churn_hazard
        if hazard.first_day <= 0:
            return np.zeros(len(idx), np.bool_)
        age = (day - self.signup_day[idx]).astype(np.float64)
        p = np.where(age >= 1, hazard.first_day * np.maximum(age, 1.0) ** -hazard.decay, 0.0)
        quit = self.churnable[idx] & (uniform(keys, day, _QUIT) < p)
        out.append((idx[quit], 0, self.state[idx[quit]], CHURNED))
        self.state[idx[quit]] = CHURNED
        return quit

    def _events(self, idx: I64, keys: U64, day: int, out: _Out) -> None:
        ev = self.event[idx]
        ending = (ev >= 0) & (day > self.event_until[idx])
        out.append((idx[ending], 2, ev[ending], -1))
        ev = np.where(ending, -1, ev)
        free = ev < 0
        chosen = np.full(len(idx), -1, np.int8)
        length = np.zeros(len(idx), np.int64)
        for kind, spec in self.spec.events.items():  # the scenario's order, as decide_day
            code = EVENTS.index(kind)
            if spec.daily_probability <= 0:
                continue
            hit = (
                free & (chosen < 0) & (uniform(keys, day, _EV_START, code) < spec.daily_probability)
            )
            chosen[hit] = code
            length[hit] = _draw(spec.days, keys[hit], day, _EV_LEN)
        started = chosen >= 0
        ev = np.where(started, chosen, ev)
        self.event[idx] = ev
        self.event_until[idx] = np.where(started, day + length - 1, self.event_until[idx])
        out.append((idx[started], 2, -1, chosen[started]))

    def _binge(self, idx: I64, keys: U64, day: int) -> None:
        pats = self.spec.patterns
        b = self.pattern[idx] == _BINGE
        left, cool = self.binge_left[idx], self.cooldown[idx]
        ends = b & (left == 1)
        left = np.where(b & (left > 0), left - 1, left)
        cool = np.where(ends, _draw(pats.cooldown_days, keys, day, _COOL), cool)
        cool = np.where(b & ~ends & (self.binge_left[idx] == 0) & (cool > 0), cool - 1, cool)
        start = b & (left == 0) & (cool == 0)
        left = np.where(start, _draw(pats.binge_days, keys, day, _BINGE_LEN), left)
        self.binge_left[idx], self.cooldown[idx] = left, cool

    def _return_probability(self, idx: I64, today: date, weight: F64) -> F64:
        spec = self.spec
        pat = self.pattern[idx]
        base = np.zeros(len(idx))
        for code, kind in enumerate(PATTERNS):
            mask = pat == code
            if not mask.any():
                continue
            if kind is ActivityPattern.BINGE:
                binging = self.binge_left[idx] > 0
                base = np.where(mask & binging, spec.patterns.binge_binging, base)
                base = np.where(mask & ~binging, spec.patterns.binge_normal, base)
            else:
                base = np.where(mask, pattern_probability(spec.patterns, _PROBE, kind, today), base)
        st = spec.streak
        base = base * weight
        p = base + np.minimum(st.max_bonus, (self.streak[idx] // st.every_days) * st.bonus)
        if spec.engagement.enabled:
            p = p + (self.engagement[idx] - 50.0) / spec.engagement.divisor
        p = np.where(self.state[idx] == DORMANT, p * spec.dormant_return_multiplier, p)
        ev = self.event[idx]
        ev_p = np.asarray(
            [spec.events[k].return_probability if k in spec.events else 0.0 for k in EVENTS]
        )
        p = np.where(ev >= 0, ev_p[np.maximum(ev, 0)] * weight, p)
        clipped: F64 = np.clip(p, 0.0, 1.0)
        return clipped

    def _habits(self, idx: I64, active: B) -> None:
        spec = self.spec
        eng = self.engagement[idx]
        streak = self.streak[idx]
        broke = ~active & (streak >= spec.streak.break_min_days)
        eng = np.where(broke, eng - spec.streak.break_penalty, eng)
        eng = np.where(
            active,
            np.minimum(100.0, eng + spec.engagement.active_gain),
            np.maximum(0.0, eng - spec.engagement.inactive_loss),
        )
        self.engagement[idx] = eng
        self.streak[idx] = np.where(active, streak + 1, 0)
        self.inactive[idx] = np.where(active, 0, self.inactive[idx] + 1)

    def _transitions(self, idx: I64, keys: U64, day: int, active: B, out: _Out) -> None:
        spec = self.spec
        state = self.state[idx]
        inactive, eng = self.inactive[idx], self.engagement[idx]
        age = day - self.signup_day[idx]
        dormant = state == DORMANT
        churn = (
            dormant
            & ~active
            & self.churnable[idx]
            & (inactive >= spec.churn_after_days)
            & (uniform(keys, day, _CHURN) < spec.churn_daily_probability)
        )
        new = state.copy()
        new[dormant & active] = ACTIVE
        new[churn] = CHURNED
        rest = ~dormant
        to_dormant = rest & (inactive >= spec.dormant_after_days)
        new[to_dormant] = DORMANT
        rest &= ~to_dormant
        grown = rest & (state == NEW) & (age >= spec.new_days)
        new[grown] = np.where(eng[grown] < spec.casual_below, CASUAL, ACTIVE)
        rest &= ~grown
        new[rest & (state == ACTIVE) & (eng < spec.casual_below)] = CASUAL
        new[rest & (state == CASUAL) & (eng >= spec.active_above)] = ACTIVE
        moved = new != state
        out.append((idx[moved], 0, state[moved], new[moved]))
        self.state[idx] = new
        assign = ~churn & ~self.assigned[idx] & (age >= spec.pattern_after_days)
        if assign.any():
            seg = self.segment[idx][assign]
            u = uniform(keys[assign], day, _PATTERN)
            rows = self._pattern_cum[seg]
            drawn = (rows <= u[:, None]).sum(axis=1).astype(np.int8)
            picked = idx[assign]
            out.append((picked, 1, self.pattern[picked], drawn))
            self.pattern[picked] = drawn
            self.assigned[picked] = True

    def binging(self, idx: npt.NDArray[np.int64]) -> B:
        """True for users ``idx`` in a binge (their sessions use the BINGE depth)."""
        out: B = (self.pattern[idx] == _BINGE) & (self.binge_left[idx] > 0)
        return out


def _changes(
    parts: list[tuple[npt.NDArray[np.int64], int, npt.ArrayLike, npt.ArrayLike]],
) -> Changes:
    users = [p[0] for p in parts]
    n = [len(u) for u in users]
    return Changes(
        user=np.concatenate(users).astype(np.int64),
        kind=np.repeat(np.asarray([p[1] for p in parts], np.int8), n),
        old=np.concatenate(
            [
                np.broadcast_to(np.asarray(p[2], np.int8), (k,))
                for p, k in zip(parts, n, strict=True)
            ]
        ),
        new=np.concatenate(
            [
                np.broadcast_to(np.asarray(p[3], np.int8), (k,))
                for p, k in zip(parts, n, strict=True)
            ]
        ),
    )
