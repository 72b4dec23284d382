"""The lifecycle section of a scenario: activity patterns, life events and their figures.

:class:`LifecycleSpec` and its parts are frozen pydantic models whose defaults are the
figures of seed 003 (see :mod:`sim_engine.model.lifecycle` for what they mean and how
:func:`~sim_engine.model.lifecycle.decide_day` uses them). Every public name here is
re-exported by :mod:`sim_engine.model.lifecycle`, the module to import from.
"""

from __future__ import annotations

import random
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim_engine.model.bounds import MAX_DAYS, MAX_USERS, MAX_WEIGHT, Weight

__all__ = [
    "ActivityPattern",
    "ChurnHazardSpec",
    "CleanupSpec",
    "DayRange",
    "EngagementSpec",
    "EventSpec",
    "LifeEvent",
    "LifecycleSpec",
    "PatternsSpec",
    "ReplacementSpec",
    "StreakSpec",
]


class ActivityPattern(str, Enum):
    """How often a user comes back (seed 003)."""

    DAILY = "DAILY"
    REGULAR = "REGULAR"
    WEEKEND = "WEEKEND"
    BINGE = "BINGE"
    MONTHLY = "MONTHLY"


class LifeEvent(str, Enum):
    """Temporary events that override the pattern's return probability (seed 003)."""

    VACATION = "VACATION"
    SICK = "SICK"
    BUSY_WORK = "BUSY_WORK"
    NEW_RELEASE_HYPE = "NEW_RELEASE_HYPE"


# -- configuration ------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DayRange(_Frozen):
    """An inclusive range of whole days (or actions): ``[low, high]``."""

    low: int = Field(ge=0, le=MAX_DAYS)
    high: int = Field(ge=0, le=MAX_DAYS)

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("a range is [low, high]")
            return {"low": value[0], "high": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self

    def draw(self, rng: random.Random) -> int:
        """Return a uniform whole number in the range."""
        return rng.randint(self.low, self.high)


def _r(low: int, high: int) -> DayRange:
    return DayRange(low=low, high=high)


class PatternsSpec(_Frozen):
    """Base daily return probabilities of the activity patterns (seed 003).

    Attributes:
        daily: DAILY's probability.
        regular: REGULAR's probability; ``regular_boost`` is added on
            ``regular_boost_weekdays`` (0 = Monday; default Thursday–Saturday).
        weekend_weekday / weekend_weekend: WEEKEND's probability on weekdays / weekends.
        binge_normal / binge_binging: BINGE's probability in cooldown / during a binge;
            binges last ``binge_days`` and are followed by ``cooldown_days``.
        monthly / monthly_spike: MONTHLY's probability, and on ``monthly_spike_days``
            (days of the month, inclusive).
    """

    daily: float = Field(0.85, ge=0, le=1)
    regular: float = Field(0.45, ge=0, le=1)
    regular_boost: float = Field(0.15, ge=0, le=1)
    regular_boost_weekdays: tuple[int, ...] = (3, 4, 5)
    weekend_weekday: float = Field(0.15, ge=0, le=1)
    weekend_weekend: float = Field(0.85, ge=0, le=1)
    binge_normal: float = Field(0.05, ge=0, le=1)
    binge_binging: float = Field(0.90, ge=0, le=1)
    binge_days: DayRange = _r(3, 7)
    cooldown_days: DayRange = _r(10, 21)
    monthly: float = Field(0.03, ge=0, le=1)
    monthly_spike: float = Field(0.80, ge=0, le=1)
    monthly_spike_days: DayRange = _r(1, 3)


class ChurnHazardSpec(_Frozen):
    """A churn hazard that falls with tenure: quitting for good, whatever the state.

    On the ``a``-th day after sign-up (``a >= 1``) a churnable user quits (becomes
    CHURNED, inactive that day) with probability ``first_day * a ** -decay``. With
    ``decay`` 1 the share of a cohort still there on day ``N`` falls roughly like
    ``N ** -first_day``: a power law, as consumer-app retention curves do (about 77 %
    of daily users lost by day 3 and 90 % by day 30, DESIGN.md).

    Attributes:
        first_day: the chance on the first day after sign-up (0: no hazard).
        decay: how fast the chance falls with tenure (power of the day number).
    """

    first_day: float = Field(0.0, ge=0, le=1)
    decay: float = Field(1.0, ge=0, le=4)

    def probability(self, age_days: int) -> float:
        """The chance of quitting on day ``age_days`` after sign-up (0 before day 1)."""
        if self.first_day <= 0 or age_days < 1:
            return 0.0
        return float(self.first_day * age_days**-self.decay)


class EventSpec(_Frozen):
    """One life event: daily chance to start, duration, return probability while it lasts."""

    daily_probability: float = Field(ge=0, le=1)
    days: DayRange
    return_probability: float = Field(ge=0, le=1)


def _default_events() -> dict[LifeEvent, EventSpec]:
    return {
        LifeEvent.VACATION: EventSpec(
            daily_probability=0.005, days=_r(7, 14), return_probability=0.0
        ),
        LifeEvent.SICK: EventSpec(daily_probability=0.01, days=_r(3, 5), return_probability=0.10),
        LifeEvent.BUSY_WORK: EventSpec(
            daily_probability=0.02, days=_r(5, 10), return_probability=0.20
        ),
        LifeEvent.NEW_RELEASE_HYPE: EventSpec(
            daily_probability=0.01, days=_r(3, 7), return_probability=0.95
        ),
    }


def _default_segments() -> dict[str, dict[ActivityPattern, float]]:
    p = ActivityPattern
    return {  # seed 003's pattern assignment table, by plan
        "Premium": {
            p.DAILY: 0.25,
            p.REGULAR: 0.45,
            p.WEEKEND: 0.15,
            p.BINGE: 0.10,
            p.MONTHLY: 0.05,
        },
        "Standard": {
            p.DAILY: 0.15,
            p.REGULAR: 0.40,
            p.WEEKEND: 0.20,
            p.BINGE: 0.15,
            p.MONTHLY: 0.10,
        },
        "Basic": {p.DAILY: 0.05, p.REGULAR: 0.30, p.WEEKEND: 0.25, p.BINGE: 0.20, p.MONTHLY: 0.20},
    }


class StreakSpec(_Frozen):
    """Streak bonus and break penalty (seed 003)."""

    every_days: int = Field(3, ge=1, le=MAX_DAYS)
    bonus: float = Field(0.05, ge=0, le=1)
    max_bonus: float = Field(0.20, ge=0, le=1)
    break_min_days: int = Field(7, ge=1, le=MAX_DAYS)
    break_penalty: float = Field(10.0, ge=0, le=MAX_WEIGHT)


class EngagementSpec(_Frozen):
    """Engagement score dynamics (seed 003): start, gains, losses, effect on return."""

    start: DayRange = _r(85, 95)
    active_gain: float = Field(2.0, ge=0, le=MAX_WEIGHT)
    inactive_loss: float = Field(1.0, ge=0, le=MAX_WEIGHT)
    divisor: float = Field(200.0, gt=0, le=MAX_WEIGHT)
    enabled: bool = True


class CleanupSpec(_Frozen):
    """What happens to churned users on the target (seed 003: 90 % deleted, 10 % kept)."""

    delete_share: float = Field(0.9, ge=0, le=1)


class ReplacementSpec(_Frozen):
    """Keep a target pool size with a few sign-ups a day (seed 003: ~400 users, 2–5 a day)."""

    enabled: bool = False
    target_pool: int = Field(400, ge=1, le=MAX_USERS)
    daily: DayRange = _r(2, 5)


class LifecycleSpec(_Frozen):
    """All long-term dynamics of a scenario (defaults: seed 003).

    Attributes:
        enabled: when False, users act every day by their routine alone.
        new_days: days a user stays NEW.
        pattern_after_days: days after sign-up when the pattern is assigned.
        dormant_after_days: inactive days that make a user DORMANT.
        churn_after_days: inactive days after which a DORMANT user may churn.
        churn_daily_probability: that daily chance.
        churn_hazard: the chance, each day, that a user quits for good whatever its
            state, falling with tenure (see :class:`ChurnHazardSpec`; off by default).
        dormant_return_multiplier: multiplies a DORMANT user's return probability.
        casual_below / active_above: engagement thresholds ACTIVE -> CASUAL -> ACTIVE.
        segments: user segment (seed 003's plan) -> share of users.
        pattern_distribution: segment -> pattern -> share, used after ``pattern_after_days``.
        patterns, events, streak, engagement: see their classes.
        session_depth: actions per session by state (``BINGE`` while binging).
        cleanup, replacement: see their classes.
        history_days: days of daily metrics kept.
    """

    enabled: bool = True
    new_days: int = Field(7, ge=0, le=MAX_DAYS)
    pattern_after_days: int = Field(14, ge=0, le=MAX_DAYS)
    dormant_after_days: int = Field(14, ge=1, le=MAX_DAYS)
    churn_after_days: int = Field(30, ge=1, le=MAX_DAYS)
    churn_daily_probability: float = Field(0.03, ge=0, le=1)
    churn_hazard: ChurnHazardSpec = ChurnHazardSpec()
    dormant_return_multiplier: float = Field(0.3, ge=0, le=1)
    casual_below: float = Field(50.0, ge=0, le=100)
    active_above: float = Field(65.0, ge=0, le=100)
    segments: dict[str, Weight] = {"Premium": 0.25, "Standard": 0.5, "Basic": 0.25}
    pattern_distribution: dict[str, dict[ActivityPattern, Weight]] = Field(
        default_factory=_default_segments
    )
    patterns: PatternsSpec = PatternsSpec()
    events: dict[LifeEvent, EventSpec] = Field(default_factory=_default_events)
    streak: StreakSpec = StreakSpec()
    engagement: EngagementSpec = EngagementSpec()
    session_depth: dict[str, DayRange] = {
        "NEW": _r(3, 8),
        "ACTIVE": _r(2, 5),
        "CASUAL": _r(1, 3),
        "DORMANT": _r(1, 3),
        "BINGE": _r(5, 15),
    }
    cleanup: CleanupSpec = CleanupSpec()
    replacement: ReplacementSpec = ReplacementSpec()
    history_days: int = Field(90, ge=1, le=MAX_DAYS)

    @model_validator(mode="after")
    def _consistent(self) -> LifecycleSpec:
        if not self.segments or not any(v > 0 for v in self.segments.values()):
            raise ValueError("segments need at least one positive share")
        if any(v < 0 for v in self.segments.values()):
            raise ValueError("segments shares cannot be negative")
        for segment, shares in self.pattern_distribution.items():
            if any(v < 0 for v in shares.values()):
                raise ValueError(f"pattern_distribution.{segment} has a negative share")
        for segment in self.segments:
            dist = self.pattern_distribution.get(segment)
            if dist is None:
                raise ValueError(f"pattern_distribution has no entry for segment {segment!r}")
            if not any(v > 0 for v in dist.values()):
                raise ValueError(f"pattern_distribution.{segment} has no positive share")
        if self.active_above < self.casual_below:
            raise ValueError("active_above must be at least casual_below")
        missing = {"NEW", "ACTIVE", "CASUAL", "DORMANT", "BINGE"} - set(self.session_depth)
        if missing:
            raise ValueError(f"session_depth lacks {', '.join(sorted(missing))}")
        return self
