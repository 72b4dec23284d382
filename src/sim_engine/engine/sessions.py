"""Sessions: when a user acts, what it does next, and when its session ends.

A user event (a session start or the next step of a session) becomes either
nothing (asleep, a day the user skips, the session is over: the next session
is planned) or a :class:`Dispatch` the executor sends. Sign-up and log-in
come first for a user without a token. Think times come from the persona
(lognormal), floored by ``limits.min_action_interval_s``; a session ends by
its length, by ``inactivity_timeout_s`` or by falling asleep.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sim_engine.api.binding import signup_requests, user_password
from sim_engine.engine.capabilities import Binder, SessionHook, SessionPolicy
from sim_engine.engine.events import NEXT, SESSION, local_iso, offset_s
from sim_engine.engine.scheduler import Scheduler
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.lifecycle import LifecycleState
from sim_engine.model.population import SimUser, save_rng, user_rng
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import Scenario
from sim_engine.model.schedule_spec import Schedule

__all__ = ["Dispatch", "Sessions"]


@dataclass(slots=True)  # read-only by convention: frozen costs 8x to build
class Dispatch:
    """Requests to send for one user now, then a think time (simulated seconds)."""

    user: SimUser
    persona: CompiledPersona
    state: str
    sim_t: float
    requests: list[ActionRequest]
    think_s: float


class Sessions:
    """Plans sessions and the steps within them; keeps the open-session count.

    Args:
        scenario: the validated scenario.
        personas: the compiled personas, by index.
        scheduler: where the next events go.
        binder: turns steps into requests (social API or ``api`` section).
        secret: run secret (passwords derive from it).
        lookahead_s: the smallest possible think time (simulated seconds).
        hooks: told when sessions start and end.
        alive: tells whether a user id is still in the run.
        policy: routine states, session starts, lengths and think times.
    """

    def __init__(
        self,
        scenario: Scenario,
        personas: list[CompiledPersona],
        scheduler: Scheduler,
        binder: Binder,
        secret: str,
        lookahead_s: float,
        hooks: Sequence[SessionHook],
        alive: Callable[[int], bool],
        policy: SessionPolicy,
    ) -> None:
        self._scenario = scenario
        self._personas = personas
        self._scheduler = scheduler
        self._binder = binder
        self.secret = secret
        self._lookahead_s = lookahead_s
        self._hooks = list(hooks)
        self._alive = alive
        self._policy = policy
        self._floor_s = scenario.limits.min_action_interval_s
        spec = scenario.schedule
        self._schedule = Schedule(spec) if spec is not None else None
        self._hooked: set[int] = set()  # users whose session start the hooks saw
        self._workflow: set[int] = set()  # users with workflow steps left
        self.open_sessions = 0

    def on_event(self, kind: int, user: SimUser, sim_t: float) -> Dispatch | None:
        """Handle a session start or next step; return what to send, if anything."""
        persona = self._personas[user.persona]
        offset = offset_s(user, sim_t)
        state = self._policy.state(persona, sim_t, offset)
        life = user.life
        if life is not None and (not life.active_today or life.state is LifecycleState.CHURNED):
            # A session planned for, or running into, a day the user skips (e.g. a
            # vacation starting at midnight) ends without acting -- even a first
            # session that would sign up: it waits for the next active day.
            self.session_ended(user, sim_t)
            self._close(user)
            return None
        rng = user_rng(user)
        if kind == SESSION and self._closed(user, sim_t, rng):
            save_rng(user, rng)
            return None
        if kind == SESSION and not self._start(user, persona, sim_t, rng):
            save_rng(user, rng)
            return None
        if state == "sleeping" or not self.in_session(user):
            self._end(user, persona, sim_t, offset, rng)
            save_rng(user, rng)
            return None
        dispatch = self._step(user, persona, state, sim_t, rng)
        save_rng(user, rng)
        return dispatch

    def _closed(self, user: SimUser, sim_t: float, rng: random.Random) -> bool:
        """True when the ``schedule`` is closed at ``sim_t``: the session moves to the next
        opening (spread over its first hour), or -- with lifecycles, when that is past the
        user's day -- is dropped, and the user's next local midnight plans more."""
        schedule = self._schedule
        if schedule is None or schedule.is_open(sim_t):
            return False
        later = schedule.next_open(sim_t) + rng.uniform(0.0, schedule.spread_s())
        if user.life is None or user.token is None or later < user.day_end:
            self._scheduler.push(max(later, sim_t + self._lookahead_s), SESSION, user)
        return True

    def _start(
        self, user: SimUser, persona: CompiledPersona, sim_t: float, rng: random.Random
    ) -> bool:
        """Open a session; False when the session cap defers it (seed 000's throttling)."""
        cap = self._scenario.limits.max_concurrent_sessions
        if cap is not None and self.open_sessions >= cap:
            self._scheduler.push(sim_t + rng.uniform(30.0, 120.0), SESSION, user)
            return False
        user.session_id += 1
        self.set_left(user, self._policy.length(persona, user, rng))
        if self._hooks:
            self._hooked.add(user.user_id)
            for hook in self._hooks:
                hook.on_session_start(user, sim_t)
        return True

    def _step(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        sim_t: float,
        rng: random.Random,
    ) -> Dispatch | None:
        if user.token is None:
            requests = self.signup_requests(user, sim_t)
            think_s = max(self._policy.think_s(persona, rng), self._floor_s)
            return Dispatch(user, persona, state, sim_t, requests, think_s)
        planned = self._binder.plan(user, persona, state, sim_t, rng)
        if planned.drew:
            self.set_left(user, user.session_left - 1)
        if planned.more:
            self._workflow.add(user.user_id)
        else:
            self._workflow.discard(user.user_id)
        think_s = max(self._policy.think_s(persona, rng, planned.think_s), self._floor_s)
        if planned.request is None:  # nothing possible: the user just thinks
            return Dispatch(user, persona, state, sim_t, [], think_s)
        return Dispatch(user, persona, state, sim_t, [planned.request], think_s)

    def password(self, user: SimUser) -> str:
        """The user's password (derived from the run secret; see :func:`user_password`)."""
        return user_password(user, self.secret, self._scenario)

    def signup_requests(self, user: SimUser, sim_t: float) -> list[ActionRequest]:
        """The sign-up and log-in requests of ``user`` (only the log-in once it joined)."""
        password = self.password(user)
        iso = local_iso(user, sim_t)
        return signup_requests(user, password, sim_t, iso)

    def think_s(self, user: SimUser, rng: random.Random) -> float:
        """A think time of the user's persona (simulated seconds, at least the scenario's
        ``limits.min_action_interval_s``), drawn with ``rng``."""
        drawn = self._policy.think_s(self._personas[user.persona], rng)
        return max(drawn, self._floor_s)

    def follow_up(self, user: SimUser, base: float, think_s: float) -> None:
        """After an answer: the next step after ``think_s``, or the end of the session."""
        user.pending = False
        if not self._alive(user.user_id):
            return
        persona = self._personas[user.persona]
        if self.in_session(user) and think_s <= persona.session.inactivity_timeout_s:
            self._scheduler.push(base + think_s, NEXT, user)
            return
        rng = user_rng(user)
        self._end(user, persona, base, offset_s(user, base), rng)
        save_rng(user, rng)

    def _end(
        self,
        user: SimUser,
        persona: CompiledPersona,
        sim_t: float,
        offset: float,
        rng: random.Random,
    ) -> None:
        """End the session and plan the next one (today's, or none: midnight plans more)."""
        self.session_ended(user, sim_t)
        self._close(user)
        nxt = self._policy.next_start(persona, user, sim_t, offset, rng, ended=True)
        life = user.life
        if (
            life is not None
            and user.token is not None
            and (nxt >= user.day_end or not life.active_today)
        ):
            return  # today's sessions are over; the user's next local midnight plans more
        if math.isfinite(nxt):
            self._scheduler.push(max(nxt, sim_t + self._lookahead_s), SESSION, user)

    def _close(self, user: SimUser) -> None:
        self.set_left(user, 0)
        self._workflow.discard(user.user_id)
        self._binder.drop(user.user_id)

    def session_ended(self, user: SimUser, sim_t: float) -> None:
        """Tell the hooks that a session they saw start is over (once per session)."""
        if user.user_id in self._hooked:
            self._hooked.discard(user.user_id)
            for hook in self._hooks:
                hook.on_session_end(user, sim_t)

    def in_session(self, user: SimUser) -> bool:
        """True while the user has actions (or workflow steps) left in its session."""
        return user.session_left > 0 or user.user_id in self._workflow

    def set_left(self, user: SimUser, left: int) -> None:
        """Set the actions left in the user's session, keeping the open-session count."""
        if user.session_left > 0 and left <= 0:
            self.open_sessions -= 1
        elif user.session_left <= 0 and left > 0:
            self.open_sessions += 1
        user.session_left = max(0, left)
