"""Long-term dynamics: lifecycle states, activity patterns, life events, streaks, engagement.

These decide *whether* (and how deeply) a user is active on a given local day;
the routine and the persona still decide *when* and *what*. Each user's day is
decided once, at its local midnight, by :func:`decide_day` -- a pure function
of the user's :class:`LifecycleStatus`, the :class:`LifecycleSpec`, the date and
the user's own random generator.

Defaults are the figures of seed 003 (HogFlix dynamic synthetic traffic):

* states NEW (first 7 days) -> ACTIVE -> DORMANT (14+ days inactive) -> CHURNED
  (30+ days inactive, 3 % daily chance), reactivation DORMANT -> ACTIVE, and a
  DORMANT return-probability modifier of 0.3; CASUAL (named in seed 003's
  session-depth table) is entered when engagement falls below 50 and left
  above 65 (our thresholds, with hysteresis);
* patterns DAILY 85 %; REGULAR 45 % with a Thursday–Saturday boost; WEEKEND
  15 % weekdays / 85 % weekends; BINGE 5 %, 90 % during 3–7 day binges that
  follow 10–21 day cooldowns; MONTHLY 3 %, 80 % on days 1–3 of the month. New
  users are DAILY; after 14 days a pattern is drawn from their segment's
  distribution (seed 003's Premium/Standard/Basic table);
* life events VACATION 0.5 %/day, 7–14 days, 0 % return; SICK 1 %, 3–5 days,
  10 %; BUSY_WORK 2 %, 5–10 days, 20 %; NEW_RELEASE_HYPE 1 %, 3–7 days, 95 %;
* streaks: +5 % return probability per 3-day streak (max +20 %); breaking a
  7+ day streak costs 10 engagement; engagement starts at 85–95, +2 per active
  day (max 100), -1 per inactive day, and shifts the return probability by
  (score - 50) / 200;
* session depth NEW 3–8 actions, ACTIVE 2–5, CASUAL 1–3, BINGE 5–15.

The Thursday–Saturday boost's size is not given by seed 003; we use +0.15.

The scenario's lifecycle section (:class:`LifecycleSpec` and its parts, with the
:class:`ActivityPattern` and :class:`LifeEvent` vocabularies) lives in
:mod:`sim_engine.model.lifecycle_spec` and is re-exported here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from sim_engine.model.lifecycle_spec import (
    ActivityPattern,
    ChurnHazardSpec,
    CleanupSpec,
    DayRange,
    EngagementSpec,
    EventSpec,
    LifecycleSpec,
    LifeEvent,
    PatternsSpec,
    ReplacementSpec,
    StreakSpec,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "REFERENCE_MEAN_ACTIONS",
    "ActivityPattern",
    "ChurnHazardSpec",
    "CleanupSpec",
    "DayDecision",
    "DayRange",
    "EngagementSpec",
    "EventSpec",
    "LifeEvent",
    "LifecycleSpec",
    "LifecycleState",
    "LifecycleStatus",
    "PatternsSpec",
    "ReplacementSpec",
    "StreakSpec",
    "Transition",
    "decide_day",
    "depth_range",
    "geometric_depth",
    "lifecycle_from_dict",
    "lifecycle_to_dict",
    "new_status",
    "session_depth",
]


class LifecycleState(str, Enum):
    """Where a user is in its life with the product."""

    NEW = "NEW"
    ACTIVE = "ACTIVE"
    CASUAL = "CASUAL"
    DORMANT = "DORMANT"
    CHURNED = "CHURNED"


ALLOWED_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.NEW: frozenset(
        {
            LifecycleState.ACTIVE,
            LifecycleState.CASUAL,
            LifecycleState.DORMANT,
            LifecycleState.CHURNED,
        }
    ),
    LifecycleState.ACTIVE: frozenset(
        {LifecycleState.CASUAL, LifecycleState.DORMANT, LifecycleState.CHURNED}
    ),
    LifecycleState.CASUAL: frozenset(
        {LifecycleState.ACTIVE, LifecycleState.DORMANT, LifecycleState.CHURNED}
    ),
    LifecycleState.DORMANT: frozenset({LifecycleState.ACTIVE, LifecycleState.CHURNED}),
    LifecycleState.CHURNED: frozenset(),
}
"""The legal lifecycle transitions, in one place."""


# -- per-user status ----------------------------------------------------------------------


@dataclass(slots=True)
class LifecycleStatus:
    """A user's long-term state (mutable; owned by the engine, changed by :func:`decide_day`).

    Days are proleptic ordinals of the user's *local* date (``date.toordinal()``).
    """

    segment: str
    signup_day: int
    engagement: float
    state: LifecycleState = LifecycleState.NEW
    pattern: ActivityPattern = ActivityPattern.DAILY
    pattern_assigned: bool = False
    streak: int = 0
    inactive_days: int = 0
    event: LifeEvent | None = None
    event_until: int = 0
    binge_left: int = 0
    cooldown_left: int = 0
    active_today: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """One change: ``change`` is ``state``, ``pattern`` or ``event``."""

    change: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class DayDecision:
    """What :func:`decide_day` decided for one local day."""

    active: bool
    return_probability: float
    transitions: tuple[Transition, ...] = field(default=())


def new_status(spec: LifecycleSpec, day: int, rng: random.Random) -> LifecycleStatus:
    """Return the status of a user signing up on local day ``day`` (segment drawn by share)."""
    names = list(spec.segments)
    segment = rng.choices(names, [spec.segments[n] for n in names])[0]
    status = LifecycleStatus(
        segment=segment, signup_day=day, engagement=float(spec.engagement.start.draw(rng))
    )
    status.cooldown_left = spec.patterns.cooldown_days.draw(rng)
    return status


def assign_pattern(spec: LifecycleSpec, segment: str, rng: random.Random) -> ActivityPattern:
    """Draw a pattern from the segment's distribution."""
    dist = spec.pattern_distribution[segment]
    patterns = list(dist)
    return rng.choices(patterns, [dist[p] for p in patterns])[0]


def pattern_probability(
    spec: PatternsSpec, status: LifecycleStatus, pattern: ActivityPattern, today: date
) -> float:
    """Return a pattern's base return probability on ``today`` (binge state as it stands)."""
    if pattern is ActivityPattern.DAILY:
        return spec.daily
    if pattern is ActivityPattern.REGULAR:
        boost = spec.regular_boost if today.weekday() in spec.regular_boost_weekdays else 0.0
        return spec.regular + boost
    if pattern is ActivityPattern.WEEKEND:
        return spec.weekend_weekend if today.weekday() >= 5 else spec.weekend_weekday
    if pattern is ActivityPattern.BINGE:
        return spec.binge_binging if status.binge_left > 0 else spec.binge_normal
    low, high = spec.monthly_spike_days.low, spec.monthly_spike_days.high
    return spec.monthly_spike if low <= today.day <= high else spec.monthly


REFERENCE_MEAN_ACTIONS = 4.0
"""With a lifecycle, a persona's session depth factor is ``session.mean_actions`` over this."""


def depth_range(spec: LifecycleSpec, key: str, scale: float = 1.0) -> tuple[int, int]:
    """Return the inclusive ``(low, high)`` actions of a session in depth row ``key``.

    ``key`` is a lifecycle state's name or ``BINGE``; ``scale`` (a persona's depth
    factor) stretches both ends, rounded, with ``1 <= low <= high``.
    """
    depth = spec.session_depth[key]
    low = max(1, round(depth.low * scale))
    return low, max(low, round(depth.high * scale))


def geometric_depth(low: int, high: int, u: float) -> int:
    """Return a session length from a uniform ``u`` in [0, 1): geometric from ``low``.

    ``low`` plus a geometric count (0, 1, 2, ...) whose mean is ``(high - low) / 2``,
    capped at ``high``: most sessions are as short as the range allows and a few run
    long, as observed sessions do (DESIGN.md: about 60 % single-action sessions in a
    messaging data set), instead of every length in the range being equally likely.
    """
    if high <= low:
        return low
    q = 1.0 / (1.0 + (high - low) / 2.0)  # success chance of the geometric count
    extra = int(math.log1p(-u) / math.log1p(-q))
    return min(high, low + extra)


def session_depth(
    spec: LifecycleSpec, status: LifecycleStatus, rng: random.Random, scale: float = 1.0
) -> int:
    """Draw the number of actions of a session from the state's (or binge's) range.

    ``scale`` stretches the range's ends (a persona's depth factor); the length is
    :func:`geometric_depth` in the scaled range.
    """
    binging = status.pattern is ActivityPattern.BINGE and status.binge_left > 0
    low, high = depth_range(spec, "BINGE" if binging else status.state.value, scale)
    return geometric_depth(low, high, rng.random())


def _advance_binge(spec: PatternsSpec, status: LifecycleStatus, rng: random.Random) -> None:
    if status.binge_left > 0:
        status.binge_left -= 1
        if status.binge_left == 0:
            status.cooldown_left = spec.cooldown_days.draw(rng)
    elif status.cooldown_left > 0:
        status.cooldown_left -= 1
    if status.binge_left == 0 and status.cooldown_left == 0:
        status.binge_left = spec.binge_days.draw(rng)


def _life_event(
    spec: LifecycleSpec,
    status: LifecycleStatus,
    day: int,
    rng: random.Random,
    out: list[Transition],
) -> None:
    if status.event is not None and day > status.event_until:
        out.append(Transition("event", status.event.value, "none", "event ended"))
        status.event = None
    if status.event is not None:
        return
    for event, ev in spec.events.items():
        if ev.daily_probability > 0 and rng.random() < ev.daily_probability:
            length = ev.days.draw(rng)
            status.event = event
            status.event_until = day + length - 1
            out.append(Transition("event", "none", event.value, f"{event.value} for {length} days"))
            return


def _return_probability(
    spec: LifecycleSpec, status: LifecycleStatus, today: date, day_weight: float
) -> float:
    if status.event is not None:
        return min(1.0, spec.events[status.event].return_probability * day_weight)
    p = pattern_probability(spec.patterns, status, status.pattern, today) * day_weight
    st = spec.streak
    p += min(st.max_bonus, (status.streak // st.every_days) * st.bonus)
    if spec.engagement.enabled:
        p += (status.engagement - 50.0) / spec.engagement.divisor
    if status.state is LifecycleState.DORMANT:
        p *= spec.dormant_return_multiplier
    return min(1.0, max(0.0, p))


def _move(status: LifecycleStatus, new: LifecycleState, reason: str, out: list[Transition]) -> None:
    if new not in ALLOWED_TRANSITIONS[status.state]:
        raise ValueError(f"illegal lifecycle transition {status.state.value} -> {new.value}")
    out.append(Transition("state", status.state.value, new.value, reason))
    status.state = new


def decide_day(
    spec: LifecycleSpec,
    status: LifecycleStatus,
    today: date,
    rng: random.Random,
    churnable: bool = True,
    day_weight: float = 1.0,
) -> DayDecision:
    """Decide whether the user is active on local day ``today`` and apply the day's changes.

    In order: the churn hazard may end the user's life for good (CHURNED, inactive);
    life events end or start; the binge cycle advances; the return
    probability is computed (an event's times ``day_weight``, or the pattern's base
    times ``day_weight``, plus the streak bonus and the engagement shift, times the
    DORMANT multiplier); activity is drawn; streak and engagement are updated; then
    the lifecycle transitions and the pattern assignment are applied.
    A CHURNED user is never active and never changes.

    Args:
        spec: the scenario's lifecycle section.
        status: the user's status (mutated).
        today: the user's local date.
        rng: the user's generator.
        churnable: False for accounts that never churn (founders).
        day_weight: how much of a weekday's routine intensity the user's persona has
            on ``today`` (``CompiledPersona.day_weight``: about 0.8 on a weekend day of
            the default routine), so lighter days are also days fewer users come.

    Returns:
        The decision, with every transition and its reason.
    """
    if status.state is LifecycleState.CHURNED:
        status.active_today = False
        return DayDecision(False, 0.0)
    day = today.toordinal()
    out: list[Transition] = []
    age = day - status.signup_day
    hazard = spec.churn_hazard.probability(age) if churnable else 0.0
    if hazard > 0 and rng.random() < hazard:
        _move(status, LifecycleState.CHURNED, f"quit on day {age} after sign-up (hazard)", out)
        status.active_today = False
        return DayDecision(False, 0.0, tuple(out))
    _life_event(spec, status, day, rng, out)
    if status.pattern is ActivityPattern.BINGE:
        _advance_binge(spec.patterns, status, rng)
    p = _return_probability(spec, status, today, day_weight)
    active = rng.random() < p
    _update_habits(spec, status, active)
    _transitions(spec, status, day, active, rng, out, churnable)
    # A user churns only on a day it was not active (see _transitions), so a day that
    # ends CHURNED is never an active one: no need to reset ``active`` here.
    status.active_today = active
    return DayDecision(active, p, tuple(out))


def _update_habits(spec: LifecycleSpec, status: LifecycleStatus, active: bool) -> None:
    eng = spec.engagement
    if active:
        status.streak += 1
        status.inactive_days = 0
        status.engagement = min(100.0, status.engagement + eng.active_gain)
        return
    if status.streak >= spec.streak.break_min_days:
        status.engagement -= spec.streak.break_penalty
    status.streak = 0
    status.inactive_days += 1
    status.engagement = max(0.0, status.engagement - eng.inactive_loss)


def _transitions(
    spec: LifecycleSpec,
    status: LifecycleStatus,
    day: int,
    active: bool,
    rng: random.Random,
    out: list[Transition],
    churnable: bool,
) -> None:
    """Apply the day's state transition (at most one) and the pattern assignment.

    CHURNED is reached only from DORMANT on a day the user was not active, so a user
    that churns today is inactive today (:func:`decide_day` relies on it).
    """
    age = day - status.signup_day
    state = status.state
    s = LifecycleState
    if state is s.DORMANT:
        if active:
            _move(status, s.ACTIVE, "returned while dormant (reactivated)", out)
        elif (
            churnable
            and status.inactive_days >= spec.churn_after_days
            and rng.random() < spec.churn_daily_probability
        ):
            _move(status, s.CHURNED, f"{status.inactive_days} days inactive", out)
            return
    elif status.inactive_days >= spec.dormant_after_days:
        _move(status, s.DORMANT, f"{status.inactive_days} days inactive", out)
    elif state is s.NEW and age >= spec.new_days:
        low = status.engagement < spec.casual_below
        _move(status, s.CASUAL if low else s.ACTIVE, f"first {spec.new_days} days over", out)
    elif state is s.ACTIVE and status.engagement < spec.casual_below:
        _move(status, s.CASUAL, f"engagement {status.engagement:.0f} < {spec.casual_below:g}", out)
    elif state is s.CASUAL and status.engagement >= spec.active_above:
        _move(status, s.ACTIVE, f"engagement {status.engagement:.0f} >= {spec.active_above:g}", out)
    if not status.pattern_assigned and age >= spec.pattern_after_days:
        old = status.pattern
        status.pattern = assign_pattern(spec, status.segment, rng)
        status.pattern_assigned = True
        out.append(
            Transition(
                "pattern",
                old.value,
                status.pattern.value,
                f"assigned after {spec.pattern_after_days} days ({status.segment})",
            )
        )


def lifecycle_to_dict(status: LifecycleStatus) -> dict[str, object]:
    """Serialise a status for the state store."""
    return {
        "segment": status.segment,
        "signup_day": status.signup_day,
        "engagement": status.engagement,
        "state": status.state.value,
        "pattern": status.pattern.value,
        "pattern_assigned": status.pattern_assigned,
        "streak": status.streak,
        "inactive_days": status.inactive_days,
        "event": status.event.value if status.event is not None else None,
        "event_until": status.event_until,
        "binge_left": status.binge_left,
        "cooldown_left": status.cooldown_left,
        "active_today": status.active_today,
    }


def lifecycle_from_dict(data: dict[str, Any]) -> LifecycleStatus:
    """Rebuild a status saved by :func:`lifecycle_to_dict`.

    Raises:
        KeyError, ValueError: not a saved status.
    """
    event = data.get("event")
    return LifecycleStatus(
        segment=str(data["segment"]),
        signup_day=int(data["signup_day"]),
        engagement=float(data["engagement"]),
        state=LifecycleState(data["state"]),
        pattern=ActivityPattern(data["pattern"]),
        pattern_assigned=bool(data["pattern_assigned"]),
        streak=int(data["streak"]),
        inactive_days=int(data["inactive_days"]),
        event=LifeEvent(event) if event else None,
        event_until=int(data["event_until"]),
        binge_left=int(data["binge_left"]),
        cooldown_left=int(data["cooldown_left"]),
        active_today=bool(data["active_today"]),
    )
