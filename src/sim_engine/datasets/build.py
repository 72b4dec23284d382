"""Planned columns (numpy) into the dataset's tables (pyarrow), without per-row Python.

Categorical columns become dictionary arrays over small vocabularies; times are
milliseconds since the epoch; identities are assembled with Arrow compute.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sim_engine.datasets.schema import DAILY_METRICS, EVENTS, LIFECYCLE_CHANGES, SESSIONS, USERS
from sim_engine.model.plan.events import DayPlan
from sim_engine.model.plan.lifecycle import EVENTS as LIFE_EVENTS
from sim_engine.model.plan.lifecycle import PATTERNS, STATES, Changes
from sim_engine.model.plan.population import ABSENT, ACTIVE_BIT, STATE_MASK, Population
from sim_engine.model.plan.tables import ROUTINE_CODES
from sim_engine.model.scenario import Scenario

__all__ = [
    "Vocab",
    "daily_metrics_table",
    "events_table",
    "lifecycle_table",
    "sessions_table",
    "users_table",
]

_CHANGE_KINDS = ("state", "pattern", "event")


def _dict(indices: npt.NDArray[np.integer], dictionary: pa.Array, itype: pa.DataType) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(indices.astype(itype.to_pandas_dtype())), dictionary
    )


def _ms(ts: npt.NDArray[np.float64], tz: str | None = "UTC") -> pa.Array:
    return pa.array(np.round(ts * 1000.0).astype(np.int64), type=pa.timestamp("ms", tz=tz))


def properties_json(name: str) -> str:
    """The ``properties`` JSON of an event named ``name``, marked synthetic."""
    return json.dumps({"is_synthetic": True, "action": name}, separators=(",", ":"))


@dataclass
class Vocab:
    """The dictionaries of a dataset's categorical columns.

    Args:
        scenario: the scenario (personas, segments, email domain, founders).
        events: the event names (:func:`~sim_engine.model.plan.events.event_names`).
        zones: time zone names by zone index.
    """

    scenario: Scenario
    events: Sequence[str]
    zones: Sequence[str]

    def __post_init__(self) -> None:
        self.event_dict = pa.array(list(self.events))
        self.props = pa.array([properties_json(n) for n in self.events])
        self.personas = pa.array(list(self.scenario.personas))
        self.segments = pa.array(list(self.scenario.lifecycle.segments) or ["default"])
        self.states = pa.array([s.value for s in STATES])
        self.routine = pa.array(list(ROUTINE_CODES))
        self.zone_dict = pa.array(list(self.zones))
        self.changes = pa.array(list(_CHANGE_KINDS))
        self.life_values = pa.array(
            [s.value for s in STATES]
            + [p.value for p in PATTERNS]
            + [e.value for e in LIFE_EVENTS]
            + ["none"]
        )


def events_table(plan: DayPlan, pop: Population, vocab: Vocab) -> pa.Table:
    """The ``events`` rows of a planned day (``pop``: the chunk the plan was made for)."""
    local = plan.user - pop.first
    cols = [
        pa.array(plan.event_id),
        pa.array(plan.user + 1),
        _ms(plan.ts),
        _ms(plan.ts + plan.offset, None),
        pa.array(plan.offset),
        _dict(plan.action, vocab.event_dict, pa.int16()),
        pa.array(plan.session),
        _dict(pop.persona[local], vocab.personas, pa.int16()),
        _dict(plan.state, vocab.states, pa.int8()),
        _dict(plan.routine, vocab.routine, pa.int8()),
        _dict(pop.segment[local], vocab.segments, pa.int8()),
        _dict(plan.action, vocab.props, pa.int16()),
    ]
    return pa.Table.from_arrays(cols, schema=EVENTS)


def sessions_table(plan: DayPlan, pop: Population, vocab: Vocab) -> pa.Table:
    """The ``sessions`` rows of a planned day."""
    cols = [
        pa.array(plan.session_id),
        pa.array(plan.s_user + 1),
        _ms(plan.start),
        _ms(plan.end),
        pa.array(plan.count),
        _dict(pop.persona[plan.s_user - pop.first], vocab.personas, pa.int16()),
        _dict(plan.s_state, vocab.states, pa.int8()),
    ]
    return pa.Table.from_arrays(cols, schema=SESSIONS)


def _names(pop: Population, scenario: Scenario) -> tuple[pa.Array, pa.Array]:
    from mimesis import Person
    from mimesis.locales import Locale

    from sim_engine.model.plan.rand import bounded, user_keys

    data = Person(Locale.EN)._dataset  # the name lists Mimesis draws from
    first = pa.array(sorted(set(data["names"]["female"]) | set(data["names"]["male"])))
    last = pa.array(sorted(set(data["surnames"])))
    keys = user_keys(pop.key, np.arange(pop.first, pop.first + pop.size))
    fi = bounded(keys, 0, len(first) - 1, 400)
    li = bounded(keys, 0, len(last) - 1, 401)
    name = pc.binary_join_element_wise(pc.take(first, fi), pc.take(last, li), " ")
    founders = scenario.population.founders
    nf = int(pop.founder.sum())
    if nf:
        fixed = [f.name for f in founders[:nf]] + name.to_pylist()[nf:]
        name = pa.array(fixed)
    slug = pc.replace_substring_regex(pc.utf8_lower(name), r"[^a-z0-9]+", ".")
    ids = pc.cast(pa.array(np.arange(pop.first + 1, pop.first + pop.size + 1)), pa.string())
    domain = "@" + scenario.population.email_domain
    email = pc.binary_join_element_wise(slug, ".", ids, domain, "")
    if nf:
        mails = email.to_pylist()
        for i, f in enumerate(founders[:nf]):
            if f.email:
                mails[i] = f.email
        email = pa.array(mails)
    return name, email


def users_table(pop: Population, scenario: Scenario, vocab: Vocab) -> pa.Table:
    """The ``users`` rows of ``pop`` (a slice or the whole population)."""
    name, email = _names(pop, scenario)
    mid = pop.calendar.midnights
    zone = pop.zone.astype(np.int64)
    churned = pop.churn_day >= 0
    churn_ts = mid[zone, np.maximum(pop.churn_day, 0)]
    churn = pa.array(
        np.round(churn_ts * 1000).astype(np.int64), type=pa.timestamp("ms", tz="UTC"), mask=~churned
    )
    cols = [
        pa.array(np.arange(pop.first + 1, pop.first + pop.size + 1, dtype=np.int64)),
        name,
        email,
        _dict(pop.persona, vocab.personas, pa.int16()),
        _dict(pop.segment, vocab.segments, pa.int8()),
        _dict(pop.zone, vocab.zone_dict, pa.int16()),
        _ms(pop.created_ts),
        churn,
        pa.array(pop.founder),
    ]
    return pa.Table.from_arrays(cols, schema=USERS)


def lifecycle_table(changes: Sequence[Changes], pop: Population, vocab: Vocab) -> pa.Table:
    """The ``lifecycle_changes`` rows: each change at the user's local midnight of its day."""
    base = np.asarray([0, len(STATES), len(STATES) + len(PATTERNS)])
    none = len(STATES) + len(PATTERNS) + len(LIFE_EVENTS)
    parts = [c for c in changes if len(c.user)]
    if not parts:
        return LIFECYCLE_CHANGES.empty_table()
    user = np.concatenate([c.user for c in parts])
    kind = np.concatenate([c.kind for c in parts]).astype(np.int64)
    day = np.concatenate([np.full(len(c.user), c.day) for c in parts])

    def code(values: npt.NDArray[np.int8]) -> npt.NDArray[np.int64]:
        v = values.astype(np.int64)
        return np.where(v < 0, none, base[kind] + v)

    old = code(np.concatenate([c.old for c in parts]))
    new = code(np.concatenate([c.new for c in parts]))
    ts = pop.calendar.midnights[pop.zone[user - pop.first].astype(np.int64), day]
    cols = [
        pa.array(user + 1),
        _ms(ts),
        _dict(kind, vocab.changes, pa.int8()),
        _dict(old, vocab.life_values, pa.int8()),
        _dict(new, vocab.life_values, pa.int8()),
    ]
    return pa.Table.from_arrays(cols, schema=LIFECYCLE_CHANGES)


def daily_metrics_table(pop: Population, start: date, activity: npt.NDArray[np.int64]) -> pa.Table:
    """The ``daily_metrics`` rows.

    Args:
        pop: the whole population.
        start: the first local date.
        activity: int64 ``(days, 3)``: users with events, sessions, events per day.
    """
    days = pop.codes.shape[1]
    bins = np.stack([np.bincount(pop.codes[:, d], minlength=256) for d in range(days)])
    codes = np.arange(256)
    present = codes != ABSENT
    active = present & ((codes & ACTIVE_BIT) != 0)
    cols: list[pa.Array] = [
        pa.array([start + timedelta(days=d) for d in range(days)], pa.date32()),
        pa.array(bins[:, present].sum(axis=1).astype(np.int64)),
        pa.array(np.bincount(pop.join_day, minlength=days).astype(np.int64)),
        pa.array(bins[:, active].sum(axis=1).astype(np.int64)),
        pa.array(activity[:, 0]),
        pa.array(activity[:, 1]),
        pa.array(activity[:, 2]),
    ]
    for s in range(len(STATES)):
        mask = present & ((codes & STATE_MASK) == s)
        cols.append(pa.array(bins[:, mask].sum(axis=1).astype(np.int64)))
    return pa.Table.from_arrays(cols, schema=DAILY_METRICS)
