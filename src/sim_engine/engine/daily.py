"""Lifecycle day handling of the engine: run days, users' local midnights, churn.

Two clocks of days run through a simulation. The *run day* (every 86,400
simulated seconds from the start) emits a :class:`DaySnapshot` of lifecycle
states, resets the daily sign-up cap and plans replacements for churned users.
Each *user's local midnight* (with a ``lifecycle`` section) decides the user's
next day -- active or not, state transitions -- plans its first session, and
cleans a churned user from the target (or keeps it), per ``lifecycle.cleanup``.

This is a mixin of :class:`~sim_engine.engine.simulation.Simulation`, apart from the
scheduler so that the engine module holds one concept (scheduling and
execution) and this one the day-level dynamics; it owns no state of its own.
The attributes and methods of ``Simulation`` it uses are declared for the type
checker only.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sim_engine.engine.events import (
    _DAY,
    _DAY_S,
    _REPLACE,
    _SESSION,
    _TICK,
    _next_midnight,
    _offset_of,
)
from sim_engine.model.lifecycle import LifecycleState, decide_day
from sim_engine.model.population import SimUser, save_rng, user_rng
from sim_engine.model.records import ActionRequest, DaySnapshot, LifecycleRecord

if TYPE_CHECKING:
    from sim_engine.model.behaviour import CompiledPersona
    from sim_engine.model.lifecycle import LifecycleSpec
    from sim_engine.model.records import Outcome, Store, Target
    from sim_engine.model.scenario import Scenario

__all__ = ["DailyDynamics"]


class DailyDynamics:
    """Mixin of ``Simulation``: run days and users' local midnights."""

    if TYPE_CHECKING:  # provided by Simulation; declared for the type checker only
        scenario: Scenario
        _target: Target
        _store: Store | None
        _life: LifecycleSpec | None
        _personas: list[CompiledPersona]
        _users: dict[int, SimUser]
        _growth_rng: random.Random
        _lookahead_s: float
        _day_start_s: float
        _arrivals_today: int

        def _push(self, sim_t: float, kind: int, user: SimUser | None) -> None: ...
        def _spawn(self, sim_t: float, coro: Coroutine[Any, Any, None]) -> None: ...
        def _session_ended(self, user: SimUser, sim_t: float) -> None: ...
        def _signup_requests(
            self, user: SimUser, sim_t: float, iso: str
        ) -> list[ActionRequest]: ...
        def _apply(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> None: ...
        def _record(
            self,
            user: SimUser,
            persona: CompiledPersona,
            state: str,
            request: ActionRequest,
            outcome: Outcome,
        ) -> None: ...
        def _emit(self, record: Any) -> None: ...

    def _on_tick(self, sim_t: float) -> None:
        """End of a run-relative simulated day: snapshot, reset caps, replace churned users."""
        self._emit(self._snapshot(sim_t))
        self._day_start_s = sim_t
        self._arrivals_today = 0
        self._push(sim_t + _DAY_S, _TICK, None)
        replacement = self._life.replacement if self._life is not None else None
        if replacement is None or not replacement.enabled:
            return
        live = sum(
            1
            for u in self._users.values()
            if u.life is None or u.life.state is not LifecycleState.CHURNED
        )
        deficit = replacement.target_pool - live
        if deficit > 0:
            for _ in range(min(deficit, replacement.daily.draw(self._growth_rng))):
                self._push(sim_t + self._growth_rng.uniform(0, _DAY_S), _REPLACE, None)

    def _snapshot(self, end_s: float) -> DaySnapshot:
        states: dict[str, int] = {}
        patterns: dict[str, int] = {}
        engagement: dict[str, float] = {}
        for user in self._users.values():
            life = user.life
            if life is None:
                continue
            state = life.state.value
            states[state] = states.get(state, 0) + 1
            engagement[state] = engagement.get(state, 0.0) + life.engagement
            if life.state is not LifecycleState.CHURNED:
                patterns[life.pattern.value] = patterns.get(life.pattern.value, 0) + 1
        return DaySnapshot(
            day_start_ts=self._day_start_s,
            day_end_ts=end_s,
            total_users=len(self._users),
            state_distribution=states,
            pattern_distribution=patterns,
            engagement_by_state={k: round(v / states[k], 2) for k, v in engagement.items()},
        )

    def _on_day(self, user: SimUser, sim_t: float) -> None:
        """A user's local midnight: decide the day (lifecycle), plan its first session."""
        life, spec = user.life, self._life
        if life is None or spec is None or user.user_id not in self._users:
            return
        local = datetime.fromtimestamp(sim_t + 1.0, user.tz)
        rng = user_rng(user)
        decision = decide_day(spec, life, local.date(), rng, churnable=not user.founder)
        iso = datetime.fromtimestamp(sim_t, user.tz).isoformat(timespec="milliseconds")
        for change in decision.transitions:
            self._emit(
                LifecycleRecord(
                    iso, sim_t, user.user_id, change.change, change.old, change.new, change.reason
                )
            )
        if life.state is LifecycleState.CHURNED:
            self._churn(user, sim_t, iso, rng)
            save_rng(user, rng)
            return
        user.day_end = _next_midnight(local)
        self._push(user.day_end, _DAY, user)
        if decision.active and not user.pending and user.session_left == 0:
            persona = self._personas[user.persona]
            first = persona.session_start_within(sim_t, user.day_end, _offset_of(local), rng)
            if math.isfinite(first):
                self._push(max(first, sim_t + self._lookahead_s), _SESSION, user)
        save_rng(user, rng)

    def _churn(self, user: SimUser, sim_t: float, iso: str, rng: random.Random) -> None:
        """Clean a churned user from the target (or keep it), per ``lifecycle.cleanup``."""
        assert self._life is not None
        if rng.random() >= self._life.cleanup.delete_share:
            self._kept(user, sim_t, iso, "kept on the target for reactivation analytics")
            return
        if user.remote_id is None:
            self._forget(user, sim_t, iso, "never signed up: nothing to delete")
            return
        api = self.scenario.api
        if api is not None and "delete_account" not in api.actions:
            self._kept(user, sim_t, iso, "kept: the api section has no delete_account action")
            return
        requests = []
        if user.token is None:
            requests = self._signup_requests(user, sim_t, iso)[-1:]
        requests.append(
            ActionRequest(
                "delete_account", user.user_id, sim_t, iso, None, remote_user_id=user.remote_id
            )
        )
        self._spawn(sim_t, self._cleanup(user, sim_t, iso, requests))

    def _kept(self, user: SimUser, sim_t: float, iso: str, reason: str) -> None:
        """Record that a churned user stays on the target, and why."""
        self._emit(LifecycleRecord(iso, sim_t, user.user_id, "cleanup", "CHURNED", "KEPT", reason))

    async def _cleanup(
        self, user: SimUser, sim_t: float, iso: str, requests: list[ActionRequest]
    ) -> None:
        persona = self._personas[user.persona]
        for request in requests:
            if request.action == "delete_account" and user.token:
                request = dataclasses.replace(request, token=user.token)
            outcome = await self._target.send(request)
            self._apply(user, request, outcome)
            self._record(user, persona, "cleanup", request, outcome)
            if not outcome.ok:
                self._kept(user, sim_t, iso, f"cleanup failed: {outcome.error}")
                return
        self._forget(user, sim_t, iso, "deleted from the target with all it created")

    def _forget(self, user: SimUser, sim_t: float, iso: str, reason: str) -> None:
        self._session_ended(user, sim_t)
        self._users.pop(user.user_id, None)
        forget = getattr(self._target, "forget_user", None)
        if forget is not None:
            forget(user.user_id)
        if self._store is not None:
            self._store.remove_user(user.user_id)
        self._emit(
            LifecycleRecord(iso, sim_t, user.user_id, "cleanup", "CHURNED", "DELETED", reason)
        )
