"""The calibrated scenario: its parameters (:class:`Params`) and the YAML mapping they make.

One persona (``calibrated``) lives a routine of 24 one-hour blocks on weekdays and
24 on weekend days (each block's intensity fitted), in the log's time zones, with a
lifecycle reduced to the three figures retention needs: a daily return probability
(every user ``DAILY``), a churn hazard that falls with tenure, and the session depth.
Life events, streaks, engagement, dormancy and the other patterns are switched off,
so every figure of the file is one the calibration fitted or a neutral constant.

Every section is written whole, so loading the file (which merges it into the
default scenario) gives the same scenario whatever the default holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sim_engine.model.bounds import MAX_USERS
from sim_engine.model.personas_spec import ACTIONS
from sim_engine.model.scenario import Scenario, default_scenario, validate_scenario

__all__ = [
    "DEMO_MIX",
    "NEVER_DAYS",
    "PERSONA",
    "QUIET_DAYS",
    "Params",
    "action_name",
    "scenario_data",
    "to_scenario",
]

PERSONA = "calibrated"
"""The calibrated scenario's one persona."""
NEVER_DAYS = 1_000_000
"""A day count that means never (dormancy and inactivity churn are off)."""
DEMO_MIX: dict[str, float] = {"browse_feed": 5.0, "read_post": 5.0, "create_post": 0.2}
"""The action mix of a log without actions: the demo API's, 50 reads per write (about
50:1 on Twitter timelines: R. Krikorian, "Timelines at Scale", QCon 2013)."""
MAX_SIGNUPS_PER_DAY = 100_000.0
_NAME_RE = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class Params:
    """Everything the calibration fits; :func:`scenario_data` turns it into a scenario.

    Time figures are simulated seconds (the log's seconds: a real log's wall seconds).

    Attributes:
        start: the first local date simulated; ``days``: how many.
        seed: the scenario's seed.
        zones: IANA zone -> share of users.
        weekday, weekend: 24 routine intensities by local hour (0: asleep).
        actions: action -> weight (the log's action mix); ``writes``: the write actions.
        sessions_per_day: the persona's session rate on a weekday (beyond the one
            session of each active day, see docs/lifecycle.md).
        activity_sigma, posting_sigma: log-normal shapes of the per-user propensities.
        depth_high: sessions last 1 + a geometric count of actions, capped here.
        think_median_s, think_sigma: think time between actions (log-normal).
        follow_p, follow_median_s, follow_sigma: follow-up sessions (bursts).
        return_p: the daily chance that a user who is still there comes back.
        quiet_p: the daily chance that a quiet spell starts (the lifecycle's
            ``VACATION`` event: 7 to 60 days without coming back), for users whose
            active days cluster more than a daily coin flip makes them.
        hazard_first_day, hazard_decay: the churn hazard ``first_day · age^-decay``.
        initial: users on day 0; ``signups_per_day``: Poisson arrivals after.
    """

    start: date
    days: int
    seed: int = 1
    zones: dict[str, float] = field(default_factory=lambda: {"Etc/UTC": 1.0})
    weekday: tuple[float, ...] = (1.0,) * 24
    weekend: tuple[float, ...] = (1.0,) * 24
    actions: dict[str, float] = field(default_factory=lambda: dict(DEMO_MIX))
    writes: frozenset[str] = frozenset({"create_post", "update_post", "delete_post"})
    sessions_per_day: float = 1.0
    activity_sigma: float = 1.0
    posting_sigma: float = 1.0
    depth_high: int = 1
    think_median_s: float = 20.0
    think_sigma: float = 1.0
    follow_p: float = 0.3
    follow_median_s: float = 3_600.0
    follow_sigma: float = 1.0
    return_p: float = 0.5
    quiet_p: float = 0.0
    hazard_first_day: float = 0.3
    hazard_decay: float = 1.0
    initial: int = 10
    signups_per_day: float = 1.0

    def scaled(self, factor: float) -> Params:
        """The same users' behaviour for a population ``factor`` times as large."""
        return replace(
            self,
            initial=max(1, round(self.initial * factor)),
            signups_per_day=min(MAX_SIGNUPS_PER_DAY, self.signups_per_day * factor),
        )


def _blocks(intensity: tuple[float, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for h, x in enumerate(intensity):
        end = f"{h + 1:02d}:00"
        block: dict[str, Any] = {"start": f"{h:02d}:00", "end": end, "state": "sleeping"}
        if x > 0:
            block = {**block, "state": "relaxing", "intensity": round(float(x), 6)}
        out.append(block)
    return out


def action_name(name: str) -> str:
    """A log's action name as a scenario action name (lower case, ``[a-z0-9_]``)."""
    clean = _NAME_RE.sub("_", name.strip().lower()).strip("_") or "action"
    return clean if clean[0].isalpha() else f"a_{clean}"


def _api(p: Params) -> dict[str, Any] | None:
    """An ``api`` section naming the log's actions when they are not the demo API's."""
    if set(p.actions) <= set(ACTIONS):
        return None
    actions = {
        name: {"method": "POST" if name in p.writes else "GET", "path": f"/{name}"}
        for name in p.actions
    }
    return {"auth": {"scheme": "none"}, "actions": actions}


def _persona(p: Params) -> dict[str, Any]:
    mix = {k: round(v, 6) for k, v in p.actions.items()}
    return {
        "description": "Fitted to a real event log by `sim-engine calibrate`.",
        "share": 1.0,
        "sessions_per_day": round(max(p.sessions_per_day, 0.01), 6),
        "activity_sigma": round(p.activity_sigma, 4),
        "posting_sigma": round(p.posting_sigma, 4),
        "session": {
            "mean_actions": 4.0,  # the lifecycle's session_depth holds the fitted depth
            "max_actions": p.depth_high,
            "think_time": {
                "median_s": round(p.think_median_s, 3),
                "sigma": round(p.think_sigma, 4),
            },
            "inactivity_timeout_s": 1800.0,
            "follow_up": {
                "probability": round(p.follow_p, 4),
                "median_s": round(p.follow_median_s, 1),
                "sigma": round(p.follow_sigma, 4),
            },
        },
        "actions": {"working": mix, "relaxing": mix},
    }


QUIET_DAYS = (7, 60)
"""How long a quiet spell lasts (days, uniform)."""


def _quiet(p: Params) -> dict[str, Any]:
    if p.quiet_p <= 0:
        return {}
    spell = {"daily_probability": round(p.quiet_p, 5), "days": list(QUIET_DAYS)}
    return {"VACATION": {**spell, "return_probability": 0.0}}


def _lifecycle(p: Params) -> dict[str, Any]:
    depth = [1, p.depth_high]
    data = default_scenario().lifecycle.model_dump(mode="json")
    data.update(
        enabled=True,
        dormant_after_days=NEVER_DAYS,
        churn_after_days=NEVER_DAYS,
        churn_daily_probability=0.0,
        churn_hazard={"first_day": round(p.hazard_first_day, 4), "decay": round(p.hazard_decay, 4)},
        dormant_return_multiplier=1.0,
        segments={"All": 1.0},
        pattern_distribution={"All": {"DAILY": 1.0}},
        events=_quiet(p),
        streak={"every_days": 1, "bonus": 0.0, "max_bonus": 0.0, "break_penalty": 0.0},
        engagement={**data["engagement"], "enabled": False},
        session_depth=dict.fromkeys(("NEW", "ACTIVE", "CASUAL", "DORMANT", "BINGE"), depth),
        replacement={**data["replacement"], "enabled": False},
    )
    data["patterns"] = {**data["patterns"], "daily": round(p.return_p, 4)}
    return data


def scenario_data(p: Params, name: str = "calibrated") -> dict[str, Any]:
    """The scenario as a YAML-ready mapping (every section it sets written whole)."""
    population = default_scenario().population.model_dump(mode="json")
    population.update(
        initial=p.initial,
        max=MAX_USERS,
        signups_per_day=round(min(p.signups_per_day, MAX_SIGNUPS_PER_DAY), 4),
        max_signups_per_day=MAX_USERS,
        founders=[],
        timezones={z: round(s, 6) for z, s in p.zones.items()},
        personas=None,
    )
    data: dict[str, Any] = {
        "name": name,
        "seed": p.seed,
        "clock": {"start": p.start.isoformat(), "speed": "max", "duration": f"{p.days}d"},
        "population": population,
        "routine": {
            "intensity": {"sleeping": 0.0, "working": 0.3, "relaxing": 1.0},
            "weekday": _blocks(p.weekday),
            "weekend": _blocks(p.weekend),
        },
        "personas": {PERSONA: _persona(p)},
        "lifecycle": _lifecycle(p),
    }
    api = _api(p)
    if api is not None:
        data["api"] = api
    return data


def to_scenario(p: Params) -> Scenario:
    """The validated scenario of ``p`` (as loading its file would give it).

    Raises:
        ScenarioError: a fitted figure is out of the scenario's bounds (a bug).
    """
    merged = default_scenario().model_dump(mode="json", by_alias=True, exclude_none=True)
    merged.update(scenario_data(p))
    return validate_scenario(merged, source="calibrated scenario")
