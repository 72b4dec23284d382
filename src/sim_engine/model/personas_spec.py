"""Personas and the daily routine of a scenario (the ``personas`` and ``routine`` sections).

Part of the scenario schema (:mod:`sim_engine.model.scenario` re-exports every name).
The figures of the default scenario come from seed 002 (Lurker, Chatterbox, Night
Owl, Content Curator; the sleeping / working / relaxing routine table).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sim_engine.model.bounds import MAX_WAIT_S, MAX_WEIGHT, Weight
from sim_engine.model.workflow_spec import AffinitySpec

__all__ = [
    "ACTIONS",
    "ROUTINE_STATES",
    "FollowUpSpec",
    "PersonaSpec",
    "RoutineBlock",
    "RoutineSpec",
    "SessionSpec",
    "ThinkTimeSpec",
]

ACTIONS: tuple[str, ...] = (
    "browse_feed", "read_post", "create_post", "update_post", "delete_post",
    "browse_trending", "comment", "react", "follow_author", "check_followers", "follow_back",
)  # fmt: skip
"""The actions every persona's weight matrix may name (the demo social API's operations;
the last six are its social side: ``model/builtin/social_api.yaml``)."""

ROUTINE_STATES: tuple[str, ...] = ("sleeping", "working", "relaxing")
"""Routine states; ``sleeping`` never acts."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ThinkTimeSpec(_Frozen):
    """Think time between two actions of a session: lognormal, in simulated seconds.

    Attributes:
        median_s: median think time (simulated seconds).
        sigma: lognormal shape; larger gives a heavier tail (burstier gaps).
        min_s: floor applied to every draw (simulated seconds).
    """

    median_s: float = Field(20.0, gt=0, le=MAX_WAIT_S)
    sigma: float = Field(1.0, ge=0, le=4)
    min_s: float = Field(1.0, gt=0, le=MAX_WAIT_S)


class FollowUpSpec(_Frozen):
    """Bursty returns: a session may bring the user back soon (a self-exciting cascade).

    When a session ends, with chance ``probability`` a follow-up session is due a
    log-normal delay later (median ``median_s``, shape ``sigma``; simulated seconds);
    the next session is the earlier of it and the routine's own next start. Returns
    cluster, as real users' do (gaps between a person's actions are heavy-tailed with
    burstiness B of 0.3-0.6, Goh & Barabasi 2008), instead of arriving as a Poisson
    process (B = 0).

    Attributes:
        probability: chance that a session is followed up (0: off).
        median_s: median delay after the session's last action (simulated seconds).
        sigma: log-normal shape of the delay.
    """

    probability: float = Field(0.0, ge=0, le=1)
    median_s: float = Field(3600.0, gt=0, le=MAX_WAIT_S)
    sigma: float = Field(1.0, ge=0, le=4)


class SessionSpec(_Frozen):
    """A persona's session model.

    Attributes:
        mean_actions: mean number of actions per session (geometric distribution,
            so most sessions are short).
        max_actions: hard cap on actions per session.
        think_time: gap between actions.
        inactivity_timeout_s: a gap longer than this ends the session instead
            (30 simulated minutes: the analytics convention, DESIGN.md).
        follow_up: bursty returns after a session (see :class:`FollowUpSpec`).
    """

    mean_actions: float = Field(4.0, ge=1, le=10_000)
    max_actions: int = Field(30, ge=1, le=10_000)
    think_time: ThinkTimeSpec = ThinkTimeSpec()
    inactivity_timeout_s: float = Field(1800.0, gt=0, le=7 * MAX_WAIT_S)
    follow_up: FollowUpSpec = FollowUpSpec()


def _known_actions(weights: dict[str, float]) -> dict[str, float]:
    # Validated per routine state, so errors name ``personas.X.actions.<state>``.
    # Action names are checked by the scenario (they depend on its ``api`` section).
    for name, weight in weights.items():
        if weight < 0:
            raise ValueError(f"weight of {name!r} is negative")
    if not any(w > 0 for w in weights.values()):
        raise ValueError("no positive action weight")
    return weights


MIN_SESSIONS_PER_DAY = 0.01
"""The rarest persona besides a silent one: a session in 100 days (rarer rates make the
draw of the next session walk years of weeks)."""

_ActionWeights = Annotated[dict[str, Weight], AfterValidator(_known_actions)]


class PersonaSpec(_Frozen):
    """A behaviour template.

    Attributes:
        share: relative share of the population (normalised over all personas).
        description: free text.
        sessions_per_day: expected sessions on a typical weekday; spread over the
            day in proportion to the routine's intensity (0, or 0.01 to 1,000).
        hour_shift_h: active-hours skew: the persona lives its routine this many
            hours later (a Night Owl with 6 sleeps 06:00–12:00 local).
        hour_weights: optional 24 multipliers on the intensity, by local hour.
        actions: action weight matrix per routine state (relative weights).
        post_frequency: multiplier on ``create_post`` weights.
        update_frequency: multiplier on ``update_post`` weights.
        session: session length and think-time model.
        activity_sigma: log-normal shape of each user's activity multiplier (mean 1)
            on ``sessions_per_day``: 0 makes every user of the persona alike, 1.5 makes
            the top tenth of users start several times the median's sessions.
        posting_sigma: log-normal shape of each user's posting multiplier (mean 1) on
            the weights of write actions (methods other than GET), for 90-9-1
            participation (see :mod:`sim_engine.model.plan.propensity`).
        affinity: session-affinity modifiers (seed 001), e.g. double the weight of
            ``accept_offer`` while ``memory.open_requests`` is non-empty (``api`` only).
    """

    share: float = Field(ge=0, le=MAX_WEIGHT)
    description: str = ""
    sessions_per_day: float = Field(3.0, ge=0, le=1000)
    hour_shift_h: float = Field(0.0, ge=-12, le=12)
    hour_weights: tuple[float, ...] | None = None
    actions: dict[Literal["working", "relaxing"], _ActionWeights]
    post_frequency: float = Field(1.0, ge=0, le=1000)
    update_frequency: float = Field(1.0, ge=0, le=1000)
    session: SessionSpec = SessionSpec()
    activity_sigma: float = Field(0.0, ge=0, le=4)
    posting_sigma: float = Field(0.0, ge=0, le=4)
    affinity: tuple[AffinitySpec, ...] = ()

    @field_validator("sessions_per_day")
    @classmethod
    def _none_or_some(cls, value: float) -> float:
        if 0 < value < MIN_SESSIONS_PER_DAY:
            raise ValueError(
                f"sessions_per_day must be 0 (never) or at least {MIN_SESSIONS_PER_DAY:g} "
                "(a session in 100 days)"
            )
        return value

    @field_validator("hour_weights")
    @classmethod
    def _24_weights(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and (len(value) != 24 or not all(0 <= w <= MAX_WEIGHT for w in value)):
            raise ValueError(
                f"hour_weights needs 24 numbers from 0 to {MAX_WEIGHT:g}, one per local hour"
            )
        return value


class RoutineBlock(_Frozen):
    """One block of a day: ``start``–``end`` local time (``HH:MM``, end exclusive; ``24:00`` ok).

    Attributes:
        intensity: overrides the state's intensity for this block (0..1+).
    """

    start: str
    end: str
    state: Literal["sleeping", "working", "relaxing"]
    intensity: float | None = Field(None, ge=0, le=MAX_WEIGHT)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-4]):[0-5]\d", value) or (
            value.startswith("24") and value != "24:00"
        ):
            raise ValueError(f"time must be HH:MM between 00:00 and 24:00, got {value!r}")
        return value

    def minutes(self) -> tuple[int, int]:
        """Return (start, end) in minutes after local midnight."""
        h1, m1 = self.start.split(":")
        h2, m2 = self.end.split(":")
        return int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)


def _check_cover(blocks: tuple[RoutineBlock, ...], label: str) -> None:
    cursor = 0
    for block in blocks:
        start, end = block.minutes()
        if start != cursor or end <= start:
            raise ValueError(
                f"{label} blocks must cover 00:00–24:00 in order without gaps or overlaps "
                f"(block {block.start}–{block.end})"
            )
        cursor = end
    if cursor != 24 * 60:
        raise ValueError(f"{label} blocks must end at 24:00")


class RoutineSpec(_Frozen):
    """The daily routine: blocks for weekdays and weekends, and each state's intensity.

    Attributes:
        weekday: blocks covering 00:00–24:00 on Monday–Friday.
        weekend: blocks covering 00:00–24:00 on Saturday and Sunday.
        intensity: activity intensity per state (sleeping must be 0: no actions).
    """

    weekday: tuple[RoutineBlock, ...]
    weekend: tuple[RoutineBlock, ...]
    intensity: dict[Literal["sleeping", "working", "relaxing"], Weight] = {
        "sleeping": 0.0,
        "working": 0.3,
        "relaxing": 1.0,
    }

    @model_validator(mode="after")
    def _covers_day(self) -> RoutineSpec:
        _check_cover(self.weekday, "weekday")
        _check_cover(self.weekend, "weekend")
        if self.intensity.get("sleeping", 0.0) != 0.0:
            raise ValueError("intensity.sleeping must be 0: sleeping users take no action")
        if any(value < 0 for value in self.intensity.values()):
            raise ValueError("intensity values cannot be negative")
        return self
