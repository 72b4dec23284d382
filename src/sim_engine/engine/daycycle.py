"""The day cycle: run days, users' local midnights, churn and its clean-up.

Two clocks of days run through a simulation. The *run day* (every 86,400
simulated seconds from the start) emits a :class:`DaySnapshot` of lifecycle
states, resets the daily sign-up cap and plans replacements for churned users.
Each *user's local midnight* (with a ``lifecycle`` section) decides the user's
next day -- active or not, state transitions -- plans its first session, and
cleans a churned user from the target (or keeps it), per ``lifecycle.cleanup``:
first what the run recorded as created by the user (newest first, children before
parents: an API that does not delete a user's resources with its account keeps
them, and nobody can log in as the user afterwards), then its account.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import datetime

from sim_engine.engine.capabilities import CreationCleaner
from sim_engine.engine.events import DAY, DAY_S, REPLACE, SESSION, TICK, next_midnight, offset_of
from sim_engine.engine.executor import Executor, masked_error
from sim_engine.engine.growth import Growth
from sim_engine.engine.ledger import Ledger
from sim_engine.engine.scheduler import Scheduler
from sim_engine.engine.sessions import Sessions
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.lifecycle import LifecycleSpec, LifecycleState, decide_day
from sim_engine.model.population import SimUser, save_rng, user_rng
from sim_engine.model.records import ActionRequest, DaySnapshot, LifecycleRecord, Target

__all__ = ["DayCycle"]


class DayCycle:
    """Handles run days and users' local midnights.

    Args:
        life: the lifecycle section (None when disabled).
        personas: the compiled personas, by index.
        scheduler, ledger, growth, sessions, executor: the run's collaborators.
        target: the target (churned users are deleted through it).
        can_delete: the API can delete an account (``delete_account``).
        cleaner: deletes what a churned user created before its account (None: the
            target records nothing of what users create).
        start_s: simulated start of the run (its first run day).
        lookahead_s: the smallest possible think time (simulated seconds).

    Attributes:
        day_start_s: simulated start of the current run day.
    """

    def __init__(
        self,
        life: LifecycleSpec | None,
        personas: list[CompiledPersona],
        scheduler: Scheduler,
        ledger: Ledger,
        growth: Growth,
        sessions: Sessions,
        executor: Executor,
        target: Target,
        can_delete: bool,
        start_s: float,
        lookahead_s: float,
        cleaner: CreationCleaner | None = None,
    ) -> None:
        self._life = life
        self._personas = personas
        self._scheduler = scheduler
        self._ledger = ledger
        self._growth = growth
        self._sessions = sessions
        self._executor = executor
        self._target = target
        self._can_delete = can_delete
        self._cleaner = cleaner
        self._lookahead_s = lookahead_s
        self.day_start_s = start_s

    def start(self) -> None:
        """Schedule the end of the current run day."""
        self._scheduler.push(self.day_start_s + DAY_S, TICK, None)

    def on_tick(self, sim_t: float) -> None:
        """End of a run-relative simulated day: snapshot, reset caps, replace churned users."""
        self._ledger.emit(self.snapshot(sim_t))
        self.day_start_s = sim_t
        self._growth.arrivals_today = 0
        self._scheduler.push(sim_t + DAY_S, TICK, None)
        replacement = self._life.replacement if self._life is not None else None
        if replacement is None or not replacement.enabled:
            return
        live = sum(
            1
            for u in self._ledger.users.values()
            if u.life is None or u.life.state is not LifecycleState.CHURNED
        )
        deficit = replacement.target_pool - live
        if deficit > 0:
            rng = self._growth.rng
            for _ in range(min(deficit, replacement.daily.draw(rng))):
                self._scheduler.push(sim_t + rng.uniform(0, DAY_S), REPLACE, None)

    def snapshot(self, end_s: float) -> DaySnapshot:
        """Return the lifecycle snapshot of the run day ending at ``end_s``."""
        states: dict[str, int] = {}
        patterns: dict[str, int] = {}
        engagement: dict[str, float] = {}
        for user in self._ledger.users.values():
            life = user.life
            if life is None:
                continue
            state = life.state.value
            states[state] = states.get(state, 0) + 1
            engagement[state] = engagement.get(state, 0.0) + life.engagement
            if life.state is not LifecycleState.CHURNED:
                patterns[life.pattern.value] = patterns.get(life.pattern.value, 0) + 1
        return DaySnapshot(
            day_start_ts=self.day_start_s,
            day_end_ts=end_s,
            total_users=len(self._ledger.users),
            state_distribution=states,
            pattern_distribution=patterns,
            engagement_by_state={k: round(v / states[k], 2) for k, v in engagement.items()},
        )

    def on_day(self, user: SimUser, sim_t: float) -> None:
        """A user's local midnight: decide the day (lifecycle), plan its first session."""
        life, spec = user.life, self._life
        if life is None or spec is None or user.user_id not in self._ledger.users:
            return
        local = datetime.fromtimestamp(sim_t + 1.0, user.tz)
        rng = user_rng(user)
        self._ledger.touch(user)  # its lifecycle status changes: the next checkpoint saves it
        persona = self._personas[user.persona]
        decision = decide_day(
            spec,
            life,
            local.date(),
            rng,
            churnable=not user.founder,
            day_weight=persona.day_weight(local.date().weekday()),
        )
        iso = datetime.fromtimestamp(sim_t, user.tz).isoformat(timespec="milliseconds")
        for change in decision.transitions:
            self._ledger.emit(
                LifecycleRecord(
                    iso, sim_t, user.user_id, change.change, change.old, change.new, change.reason
                )
            )
        if life.state is LifecycleState.CHURNED:
            self._churn(user, sim_t, iso, rng)
            save_rng(user, rng)
            return
        user.day_end = next_midnight(local)
        self._scheduler.push(user.day_end, DAY, user)
        if decision.active and not user.pending and user.session_left == 0:
            first = persona.session_start_within(sim_t, user.day_end, offset_of(local), rng)
            if math.isfinite(first):
                self._scheduler.push(max(first, sim_t + self._lookahead_s), SESSION, user)
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
        if not self._can_delete:
            self._kept(user, sim_t, iso, "kept: the api section has no delete_account action")
            return
        requests = []
        if user.token is None:
            requests = self._sessions.signup_requests(user, sim_t)[-1:]
        requests.append(
            ActionRequest(
                "delete_account", user.user_id, sim_t, iso, None, remote_user_id=user.remote_id
            )
        )
        self._executor.spawn(sim_t, self._cleanup(user, sim_t, iso, requests))

    def _kept(self, user: SimUser, sim_t: float, iso: str, reason: str) -> None:
        """Record that a churned user stays on the target, and why."""
        self._ledger.emit(
            LifecycleRecord(iso, sim_t, user.user_id, "cleanup", "CHURNED", "KEPT", reason)
        )

    async def _cleanup(
        self, user: SimUser, sim_t: float, iso: str, requests: list[ActionRequest]
    ) -> None:
        persona = self._personas[user.persona]
        await self._executor.settled(user.user_id)  # a creation in flight: recorded first
        for request in requests:
            if request.action == "delete_account":
                failed = await self._delete_creations(user, sim_t, iso)
                if failed is not None:
                    self._kept(user, sim_t, iso, f"kept: cleanup of its creations failed: {failed}")
                    return
                if user.token:
                    request = dataclasses.replace(request, token=user.token)
            outcome = await self._target.send(request)
            self._executor.apply(user, request, outcome)
            self._executor.record(user, persona, "cleanup", request, outcome)
            if not outcome.ok:
                error = outcome.error and masked_error(outcome.error, user, request, outcome)
                self._kept(user, sim_t, iso, f"cleanup failed: {error}")
                return
        self._forget(user, sim_t, iso, "deleted from the target with all it created")

    async def _delete_creations(self, user: SimUser, sim_t: float, iso: str) -> str | None:
        """Delete, newest first, what the run recorded as created by ``user`` (logged in),
        each delete recorded like any action; stop at the first the target refuses.

        Returns:
            why one could not be deleted (not 2xx, 404 or 410), or None when all went.
        """
        if self._cleaner is None:
            return None
        persona = self._personas[user.persona]
        for creation in self._cleaner.creations(user.user_id):
            request = ActionRequest(creation.action, user.user_id, sim_t, iso, user.token)
            outcome = await self._cleaner.delete_creation(request, creation)
            self._executor.apply(user, request, outcome)
            self._executor.record(user, persona, "cleanup", request, outcome)
            if not (outcome.ok or outcome.status in (404, 410)):
                error = outcome.error and masked_error(outcome.error, user, request, outcome)
                return f"{creation.action} {creation.kind} {creation.item_id}: {error}"
        return None

    def _forget(self, user: SimUser, sim_t: float, iso: str, reason: str) -> None:
        self._sessions.session_ended(user, sim_t)
        self._ledger.remove(user)
        self._ledger.emit(
            LifecycleRecord(iso, sim_t, user.user_id, "cleanup", "CHURNED", "DELETED", reason)
        )
