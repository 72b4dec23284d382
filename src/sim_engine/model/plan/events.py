"""Sessions and events of a chunk of users, one local day at a time, in bulk.

For every active user-day (see :mod:`sim_engine.model.plan.population`) the
planner does what the event engine's ``DayCycle`` and ``Sessions`` do, for all
users of the chunk at once:

* the first session of an active day starts with a density proportional to the
  persona's routine intensity over the user's local day
  (:meth:`CompiledPersona.session_start_within`); on the day a user joins, and
  without a lifecycle, sessions follow the non-homogeneous Poisson process from
  the joining time or midnight (:meth:`CompiledPersona.next_session_start`);
* each later session starts at the next point of that process after the previous
  session's last action, while it falls before the user's next local midnight;
* a session has the lifecycle's depth (state or binge range stretched by the
  persona's ``mean_actions / 4``, capped by ``max_actions``), or a geometric
  length without a lifecycle; a user's first session signs up and logs in first;
* actions are ``think_time`` apart (lognormal, floored by ``min_s`` and
  ``limits.min_action_interval_s``); a gap over ``inactivity_timeout_s`` or an
  action falling in ``sleeping`` ends the session;
* each action is drawn from the persona's weights in the routine state at that
  instant, in the user's local time (UTC offset at the instant, DST-correct);
* a ``schedule:`` section gates session starts as the engine's ``Sessions`` does: a
  session due while it is closed moves to its next opening, spread uniformly over the
  opening's first hour, or is dropped when that is past the user's next local
  midnight (the engine drops it there with lifecycles, for a user who signed up; the
  planner's next day plans its own sessions, gated the same way).

Rounds are vectorised over user-days: round ``k`` plans every user-day's
``k``-th session. Workflows of an ``api`` section and session affinity are not
expanded: the drawn name is the event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim_engine.model.behaviour import compile_personas
from sim_engine.model.lifecycle import REFERENCE_MEAN_ACTIONS, depth_range
from sim_engine.model.plan.calendar import week_position
from sim_engine.model.plan.lifecycle import STATES
from sim_engine.model.plan.population import (
    ABSENT,
    ACTIVE_BIT,
    BINGE_BIT,
    JOIN_BIT,
    STATE_MASK,
    Population,
)
from sim_engine.model.plan.propensity import propensities
from sim_engine.model.plan.rand import U64, exponential, hash64, normal, uniform, user_keys
from sim_engine.model.plan.tables import ActionTable, WeekTables
from sim_engine.model.scenario import ACTIONS, Scenario
from sim_engine.model.schedule_spec import Schedule

__all__ = ["SIGNUP_EVENTS", "ChunkPlanner", "DayPlan", "PlanModel", "event_names"]

SIGNUP_EVENTS = ("sign_up", "log_in")
"""A user's first session starts with these two events (as the engine's sign-up does)."""
MAX_ROUNDS = 4095
_FIRST, _GAP, _LEN, _STEP, _FOLLOW, _GATE = 300, 301, 302, 303, 304, 305
_SESSION_BITS, _STEP_BITS, _DAY_BITS = 26, 14, 12
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def event_names(scenario: Scenario) -> tuple[str, ...]:
    """The event vocabulary: the scenario's action names, then ``sign_up`` and ``log_in``."""
    names = scenario.action_names()
    known = tuple(a for a in ACTIONS if a in names)
    return known + tuple(sorted(names - set(known) - set(SIGNUP_EVENTS))) + SIGNUP_EVENTS


class PlanModel:
    """A scenario's behaviour model as arrays (built once per process).

    Args:
        scenario: the validated scenario.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        personas = compile_personas(scenario)
        self.names = event_names(scenario)
        self.week = WeekTables(personas)
        self.actions = ActionTable(personas, self.names)
        life = scenario.lifecycle
        self.life = life.enabled
        s = [p.session for p in personas]
        self.median = np.log([x.think_time.median_s for x in s])
        self.sigma = np.asarray([x.think_time.sigma for x in s])
        self.min_s = np.maximum(
            [x.think_time.min_s for x in s], scenario.limits.min_action_interval_s
        )
        self.timeout = np.asarray([x.inactivity_timeout_s for x in s])
        self.mean = np.asarray([x.mean_actions for x in s])
        self.max_actions = np.asarray([x.max_actions for x in s], dtype=np.int64)
        keys = [st.value for st in STATES] + ["BINGE"]
        ranges = [
            [
                depth_range(life, k, x.mean_actions / REFERENCE_MEAN_ACTIONS)
                if k in life.session_depth
                else (1, 1)
                for k in keys
            ]
            for x in s
        ]
        self.depth = np.asarray(ranges, dtype=np.int64)  # (personas, 6, 2)
        self.activity_sigma = np.asarray([p.spec.activity_sigma for p in personas])
        self.posting_sigma = np.asarray([p.spec.posting_sigma for p in personas])
        follow = [x.follow_up for x in s]
        self.follow_p = np.asarray([f.probability for f in follow])
        self.follow_mu = np.log([f.median_s for f in follow])
        self.follow_sigma = np.asarray([f.sigma for f in follow])
        self.sign_up = self.names.index("sign_up")


@dataclass
class DayPlan:
    """One local day of a chunk: events and sessions as columns (sorted by id).

    Event columns: ``event_id``, ``user`` (index; user id is index + 1), ``ts``
    (simulated epoch s), ``offset`` (UTC offset, s), ``action`` (index into the
    event names), ``routine`` (routine state code), ``state`` (lifecycle state
    code), ``session``. Session columns: ``session_id``, ``s_user``, ``start``,
    ``end`` (the last event's time), ``count``, ``s_state``.
    """

    day: int
    event_id: I64
    user: I64
    ts: F64
    offset: npt.NDArray[np.int32]
    action: npt.NDArray[np.int16]
    routine: npt.NDArray[np.int8]
    state: npt.NDArray[np.int8]
    session: I64
    session_id: I64
    s_user: I64
    start: F64
    end: F64
    count: npt.NDArray[np.int32]
    s_state: npt.NDArray[np.int8]

    @property
    def events(self) -> int:
        """How many events the day has."""
        return len(self.event_id)


@dataclass
class _Rows:
    """Active user-days of one day, aligned arrays (a subset is a session round)."""

    user: I64
    persona: I64
    zone: I64
    code: npt.NDArray[np.uint8]
    key: U64
    base: F64  # week position minus epoch time (offset - shift + epoch Monday)
    end: F64  # cumulative intensity at the next local midnight
    activity: F64  # the user's activity multiplier (session rate)
    posting: F64  # the user's posting multiplier (write weights)

    def take(self, sel: I64) -> _Rows:
        return _Rows(*(getattr(self, f)[sel] for f in _ROW_FIELDS))


_ROW_FIELDS = ("user", "persona", "zone", "code", "key", "base", "end", "activity", "posting")


class ChunkPlanner:
    """Plans the users ``lo`` to ``hi - 1`` of a :class:`Population`, day after day.

    Days must be planned in order from 0 (a user signs up in its first session);
    :meth:`skip_day` advances without building events (resume).
    """

    def __init__(self, model: PlanModel, population: Population) -> None:
        self.model = model
        self.pop = population
        self.lo, self.hi = population.first, population.first + population.size
        self.keys = user_keys(population.key, np.arange(self.lo, self.hi, dtype=np.int64))
        self.signed = np.zeros(population.size, np.bool_)
        persona = population.persona.astype(np.int64)
        self.activity, self.posting = propensities(
            self.keys, model.activity_sigma[persona], model.posting_sigma[persona]
        )
        self.gate: tuple[F64, F64, float] | None = None  # the schedule's openings, spread
        spec = model.scenario.schedule
        if spec is not None:
            schedule, mid = Schedule(spec), population.calendar.midnights
            opens, closes = schedule.openings(float(mid.min()), float(mid.max()))
            self.gate = np.asarray(opens), np.asarray(closes), schedule.spread_s()

    def _rows(self, day: int) -> tuple[_Rows, F64, npt.NDArray[np.bool_]]:
        pop, week = self.pop, self.model.week
        codes = pop.codes[:, day]
        local = np.flatnonzero((codes != ABSENT) & ((codes & ACTIVE_BIT) != 0))
        persona = pop.persona[local].astype(np.int64)
        keep = week.mass[persona] > 0
        local, persona = local[keep], persona[keep]
        user = local + self.lo
        zone = pop.zone[local].astype(np.int64)
        join = (codes[local] & JOIN_BIT) != 0
        mid = pop.calendar.midnights
        m0 = np.where(join, pop.created_ts[local], mid[zone, day])
        offset = pop.calendar.offsets(zone, m0 + 1.0)
        base = week_position(np.zeros(len(user)), offset, week.shift_h[persona])
        end = week.cumulative(persona, mid[zone, day + 1] + base)
        key = hash64(self.keys[local], day)
        rows = _Rows(
            user, persona, zone, codes[local], key, base, end,
            self.activity[local], self.posting[local],
        )  # fmt: skip
        return rows, week.cumulative(persona, m0 + base), join

    def _first_starts(self, rows: _Rows, g0: F64, join: npt.NDArray[np.bool_]) -> tuple[I64, F64]:
        forced = ~join if self.model.life else np.zeros(len(join), np.bool_)
        within = g0 + uniform(rows.key, _FIRST) * (rows.end - g0)
        y = np.where(forced, within, g0 + exponential(rows.key, _GAP, 0) / rows.activity)
        alive = np.where(forced, rows.end > g0, y < rows.end)
        sel = np.flatnonzero(alive)
        return sel, self.model.week.inverse(rows.persona[sel], y[sel]) - rows.base[sel]

    def skip_day(self, day: int) -> None:
        """Advance past ``day`` without keeping its events (sign-ups still count)."""
        self.plan_day(day)

    def plan_day(self, day: int) -> DayPlan:
        """Plan local day ``day`` for every user of the chunk."""
        rows, g0, join = self._rows(day)
        sel, start = self._first_starts(rows, g0, join)
        parts: list[dict[str, npt.NDArray[np.generic]]] = []
        k = 0
        while sel.size and k <= MAX_ROUNDS:
            if self.gate is not None:
                sel, start = self._gated(rows, sel, start, k, day)
                if not sel.size:
                    break
            sub = rows.take(sel)
            part, last = self._round(sub, start, k, day)
            parts.append(part)
            ok, nxt = self._next_starts(sub, last, k)
            sel, start = sel[ok], nxt[ok]
            k += 1
        return _assemble(day, parts)

    def _gated(self, rows: _Rows, sel: I64, start: F64, k: int, day: int) -> tuple[I64, F64]:
        """The sessions ``sel`` of round ``k`` starting at ``start`` once the schedule gated
        them: moved to the next opening (plus a uniform draw of the spread) when closed,
        dropped when that is at or past the user's next local midnight."""
        assert self.gate is not None
        opens, closes, spread = self.gate
        i = np.searchsorted(opens, start, side="right") - 1
        shut = (i < 0) | (start >= closes[np.maximum(i, 0)])
        if not shut.any():
            return sel, start
        nxt = opens[np.minimum(i + 1, len(opens) - 1)]
        moved = np.where(shut, nxt + uniform(rows.key[sel], _GATE, k) * spread, start)
        keep = moved < self.pop.calendar.midnights[rows.zone[sel], day + 1]
        return sel[keep], moved[keep]

    def _next_starts(self, rows: _Rows, last: F64, k: int) -> tuple[npt.NDArray[np.bool_], F64]:
        """After sessions ending at ``last``: whether another starts before local midnight,
        and when (the routine's next point, or an earlier follow-up)."""
        m, week = self.model, self.model.week
        y = week.cumulative(rows.persona, last + rows.base)
        y += exponential(rows.key, _GAP, k + 1) / rows.activity
        ok = y < rows.end
        nxt = np.full(len(y), np.inf)
        nxt[ok] = week.inverse(rows.persona[ok], y[ok]) - rows.base[ok]
        p = rows.persona
        if not (m.follow_p[p] > 0).any():
            return ok, nxt
        fire = uniform(rows.key, _FOLLOW, k) < m.follow_p[p]
        later = last + np.exp(m.follow_mu[p] + m.follow_sigma[p] * normal(rows.key, _FOLLOW, k))
        fire &= week.cumulative(p, later + rows.base) < rows.end
        return ok | fire, np.where(fire, np.minimum(nxt, later), nxt)

    def _lengths(self, rows: _Rows, k: int) -> I64:
        m = self.model
        p = rows.persona
        if m.life:
            row = np.where((rows.code & BINGE_BIT) != 0, 5, rows.code & STATE_MASK).astype(np.int64)
            rng = m.depth[p, row]
            length = geometric_depths(rng[:, 0], rng[:, 1], uniform(rows.key, _LEN, k))
        else:
            mean = m.mean[p]
            q = 1.0 / np.maximum(mean, 1.0 + 1e-12)
            u = uniform(rows.key, _LEN, k)
            length = 1 + np.floor(np.log1p(-u) / np.log1p(-q)).astype(np.int64)
            length = np.where(mean <= 1.0, 1, length)
        return np.minimum(length, m.max_actions[p])

    def _thinks(self, p: I64, keys: U64, together: npt.NDArray[np.bool_]) -> F64:
        """Think times after each step (simulated s): lognormal, floored; 0 where ``together``."""
        m = self.model
        u1, u2 = uniform(keys, 1), uniform(keys, 2)
        normal = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
        think: F64 = np.maximum(np.exp(m.median[p] + m.sigma[p] * normal), m.min_s[p])
        think[together] = 0.0  # sign-up and log-in go together
        return think

    def _round(
        self, rows: _Rows, start: F64, k: int, day: int
    ) -> tuple[dict[str, npt.NDArray[np.generic]], F64]:
        """Plan one session per row starting at ``start``; return its columns and last times."""
        m, cal = self.model, self.pop.calendar
        local = rows.user - self.lo
        signup = ~self.signed[local]
        n = self._lengths(rows, k) + 2 * signup
        first = np.cumsum(n) - n
        sidx = np.repeat(np.arange(len(n)), n)
        j = np.arange(int(n.sum())) - first[sidx]
        p = rows.persona[sidx]
        sk = hash64(rows.key[sidx], k << 16 | j, _STEP)
        think = self._thinks(p, sk, (j == 0) & signup[sidx])
        # Whole microseconds: an integer running sum is exact, so a step's time does not
        # depend on the sessions planned before it in the array (chunking).
        think_us = np.round(think * 1e6).astype(np.int64)
        excl = np.cumsum(think_us) - think_us
        ts = start[sidx] + (excl - excl[first][sidx]) * 1e-6
        zone = rows.zone[sidx]
        offset = cal.offsets(zone, ts)
        routine = m.week.state(p, week_position(ts, offset, m.week.shift_h[p]))
        prev = np.concatenate(([0.0], think[:-1]))
        bad = ((routine == 0) | ((j > 0) & (prev > m.timeout[p]))).astype(np.int64)
        cb = np.cumsum(bad)
        acted = (cb - (cb[first] - bad[first])[sidx]) == 0
        count = np.add.reduceat(acted.astype(np.int32), first)
        last = np.where(count > 0, ts[first + np.maximum(count, 1) - 1], start)
        self.signed[local[signup & (count > 0)]] = True
        action = m.actions.draw(p, routine, uniform(sk, 3), rows.posting[sidx])
        up = signup[sidx] & (j < 2)
        action = np.where(up, m.sign_up + j, action).astype(np.int16)
        uid = rows.user + 1
        sid = (uid << _SESSION_BITS) + (day << _DAY_BITS) + k
        state = (rows.code & STATE_MASK).astype(np.int8)
        a = acted
        return {
            "event_id": (sid[sidx][a] << _STEP_BITS) + j[a],
            "user": rows.user[sidx][a],
            "ts": ts[a],
            "offset": offset[a],
            "action": action[a],
            "routine": routine[a],
            "state": state[sidx][a],
            "session": sid[sidx][a],
            "session_id": sid[count > 0],
            "s_user": rows.user[count > 0],
            "start": start[count > 0],
            "end": last[count > 0],
            "count": count[count > 0],
            "s_state": state[count > 0],
        }, last


def geometric_depths(low: I64, high: I64, u: F64) -> I64:
    """:func:`~sim_engine.model.lifecycle.geometric_depth` over arrays (``u`` uniform)."""
    q = 1.0 / (1.0 + np.maximum(high - low, 0) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.floor(np.log1p(-u) / np.log1p(-q))
    extra = np.where(high > low, extra, 0.0)
    out: I64 = np.minimum(high, low + extra.astype(np.int64))
    return out


_EVENT_COLS = ("event_id", "user", "ts", "offset", "action", "routine", "state", "session")
_SESSION_COLS = ("session_id", "s_user", "start", "end", "count", "s_state")
_DTYPES = {
    "event_id": np.int64, "user": np.int64, "ts": np.float64, "offset": np.int32,
    "action": np.int16, "routine": np.int8, "state": np.int8, "session": np.int64,
    "session_id": np.int64, "s_user": np.int64, "start": np.float64, "end": np.float64,
    "count": np.int32, "s_state": np.int8,
}  # fmt: skip


def _assemble(day: int, parts: list[dict[str, npt.NDArray[np.generic]]]) -> DayPlan:
    cols = {
        name: np.concatenate([p[name] for p in parts]).astype(_DTYPES[name], copy=False)
        if parts
        else np.zeros(0, _DTYPES[name])
        for name in _DTYPES
    }
    order = np.argsort(cols["event_id"], kind="stable")
    for name in _EVENT_COLS:
        cols[name] = cols[name][order]
    order = np.argsort(cols["session_id"], kind="stable")
    for name in _SESSION_COLS:
        cols[name] = cols[name][order]
    return DayPlan(day, **cols)
