"""Session policies: the persona model of a simulation, and a closed-loop load test's.

:class:`PersonaPolicy` is the behaviour model: routine states and session
starts from the persona's routine (a non-homogeneous Poisson process in the
user's local time), session lengths from the persona (or from the lifecycle's
session depth), lognormal think times. :class:`ClosedLoopPolicy` is seed 004's
load test on the same scheduler: every virtual user starts at once, makes
``randint(min, max)`` requests with a uniform wall delay before each, and is
done (no next session).
"""

from __future__ import annotations

import math
import random

from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.lifecycle import REFERENCE_MEAN_ACTIONS, LifecycleSpec, session_depth
from sim_engine.model.population import SimUser

__all__ = ["ClosedLoopPolicy", "PersonaPolicy"]


class PersonaPolicy:
    """The persona model (see ``docs/scenario.md``, "Sessions").

    Args:
        life: the lifecycle section when enabled (session depth follows engagement).
    """

    def __init__(self, life: LifecycleSpec | None) -> None:
        self._life = life

    def state(self, persona: CompiledPersona, sim_t: float, offset_s: float) -> str:
        """The persona's routine state at ``sim_t`` in the user's local time."""
        return persona.state_at(sim_t, offset_s)

    def next_start(
        self,
        persona: CompiledPersona,
        user: SimUser,
        sim_t: float,
        offset_s: float,
        rng: random.Random,
        ended: bool = False,
    ) -> float:
        """The next session start, drawn from the routine's intensity (times the user's
        activity multiplier); after a session (``ended``), the earlier of that and a
        follow-up (:meth:`CompiledPersona.follow_up_start`)."""
        nxt = persona.next_session_start(sim_t, offset_s, rng, user.activity)
        return min(nxt, persona.follow_up_start(sim_t, rng)) if ended else nxt

    def length(self, persona: CompiledPersona, user: SimUser, rng: random.Random) -> int:
        """Geometric by the persona's mean, or the lifecycle's session depth."""
        if user.life is None or self._life is None:
            return persona.session_length(rng)
        factor = persona.session.mean_actions / REFERENCE_MEAN_ACTIONS
        depth = session_depth(self._life, user.life, rng, scale=factor)
        return min(depth, persona.session.max_actions)

    def think_s(
        self, persona: CompiledPersona, rng: random.Random, step_s: float | None = None
    ) -> float:
        """Lognormal with the persona's median and sigma, or a workflow step's own
        think time (simulated seconds)."""
        drawn = persona.think_time_s(rng)
        return drawn if step_s is None else step_s


class ClosedLoopPolicy:
    """Seed 004's load test: one session per virtual user, starting at once.

    Args:
        min_requests, max_requests: each user's request count is ``randint`` of these.
        delay_min_s, delay_max_s: uniform wait before each request (seconds; with
            a clock at speed 1 these are wall seconds).

    Raises:
        ValueError: a negative count or delay, or a minimum above its maximum.
    """

    def __init__(
        self, min_requests: int, max_requests: int, delay_min_s: float, delay_max_s: float
    ) -> None:
        if min_requests < 0 or max_requests < min_requests:
            raise ValueError("request counts must satisfy 0 <= min <= max")
        if delay_min_s < 0 or delay_max_s < delay_min_s:
            raise ValueError("delays must satisfy 0 <= min <= max")
        self._counts = (min_requests, max_requests)
        self._delays = (delay_min_s, delay_max_s)

    def state(self, persona: CompiledPersona, sim_t: float, offset_s: float) -> str:
        """Always awake: the persona's ``relaxing`` matrix (``working`` without one)."""
        return "relaxing" if "relaxing" in persona.spec.actions else "working"

    def next_start(
        self,
        persona: CompiledPersona,
        user: SimUser,
        sim_t: float,
        offset_s: float,
        rng: random.Random,
        ended: bool = False,
    ) -> float:
        """The first session starts at once; a user is done after it (``inf``)."""
        return sim_t if user.session_id == 0 else math.inf

    def length(self, persona: CompiledPersona, user: SimUser, rng: random.Random) -> int:
        """``randint(min, max)`` requests."""
        return rng.randint(*self._counts)

    def think_s(
        self, persona: CompiledPersona, rng: random.Random, step_s: float | None = None
    ) -> float:
        """A uniform delay between the minimum and the maximum (workflow steps too)."""
        return rng.uniform(*self._delays)
