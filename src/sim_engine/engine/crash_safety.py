"""Crash safety of the engine: write-through, checkpoints, restore and reconcile.

A run with a :class:`Store` writes each user through at every event that must
not be forgotten (created, signed up, a post created or deleted) and
checkpoints the engine's own state with every changed user in one
transaction. After a crash, :meth:`CrashSafety.restore` takes the users and the
state back and plans each user's next day and session from the current
simulated time; :meth:`CrashSafety.reconcile` then brings the users' memory in
line with what the target actually holds (see ``docs/safety.md``).

This is a mixin of :class:`~sim_engine.engine.simulation.Simulation`, apart from the
scheduler because persistence is a concern of its own that the run loop only
calls into; it owns no state of its own. The attributes and methods of
``Simulation`` it uses are declared for the type checker only.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sim_engine.api.binding import _run_tag
from sim_engine.engine.events import _DAY, _SESSION, _next_midnight, _offset_of
from sim_engine.model.population import SimUser, rng_from_json, rng_to_json, save_rng, user_rng
from sim_engine.model.records import ActionRequest

if TYPE_CHECKING:
    from sim_engine.engine.clock import Clock
    from sim_engine.model.behaviour import CompiledPersona
    from sim_engine.model.lifecycle import LifecycleSpec
    from sim_engine.model.population import IdentityFactory
    from sim_engine.model.records import Store, Target
    from sim_engine.model.scenario import Scenario

__all__ = ["CrashSafety"]


class CrashSafety:
    """Mixin of ``Simulation``: saving, restoring, reconciling."""

    if TYPE_CHECKING:  # provided by Simulation; declared for the type checker only
        scenario: Scenario
        _target: Target
        _clock: Clock
        _store: Store | None
        _dirty: set[int]
        _life: LifecycleSpec | None
        _personas: list[CompiledPersona]
        _users: dict[int, SimUser]
        _factory: IdentityFactory
        _growth_rng: random.Random
        _secret: str
        _start_s: float
        _end_s: float
        _day_start_s: float
        _arrivals_today: int
        _populated: bool
        _signed_up: int
        _actions: int
        _failed: int

        def _push(self, sim_t: float, kind: int, user: SimUser | None) -> None: ...
        def _signup_requests(
            self, user: SimUser, sim_t: float, iso: str
        ) -> list[ActionRequest]: ...

    def _saved(self, user: SimUser) -> None:
        """Write a user through to the store (an event that must not be forgotten)."""
        self._dirty.add(user.user_id)
        if self._store is not None:
            self._store.save_user(user)

    def export_state(self) -> dict[str, Any]:
        """Return the engine's own state (not the users) as JSON-ready data."""
        return {
            "sim_now": self._clock.now(),
            "start_s": self._start_s,
            "end_s": self._end_s if math.isfinite(self._end_s) else None,
            "day_start_s": self._day_start_s,
            "arrivals_today": self._arrivals_today,
            "secret": self._secret,
            "factory": self._factory.export_state(),
            "growth_rng": rng_to_json(self._growth_rng),
            "counters": {
                "signed_up": self._signed_up,
                "actions": self._actions,
                "failed": self._failed,
            },
        }

    def checkpoint(self) -> int:
        """Save the engine's state and every user changed since the last checkpoint.

        Returns the number of users saved (0 without a store).
        """
        if self._store is None:
            return 0
        changed = [
            u for u in self._users.values() if u.life is not None or u.user_id in self._dirty
        ]
        self._store.checkpoint(self.export_state(), changed)
        self._dirty.clear()
        return len(changed)

    def restore(self, state: dict[str, Any], users: Sequence[SimUser]) -> None:
        """Continue a crashed run: take back its users and state (before :meth:`run`).

        Every user gets its next local midnight and next session planned from
        the current simulated time; tokens are not kept, so each logs in again
        at its next session.

        Raises:
            KeyError, ValueError: ``state`` is not an exported state.
        """
        self._populated = True
        self._secret = str(state["secret"])
        self._factory.run_tag = _run_tag(self._secret)
        self._day_start_s = float(state["day_start_s"])
        self._arrivals_today = int(state["arrivals_today"])
        # Users created after the checkpoint were written through: ids go on after them.
        next_id = max([int(state["factory"]["next_id"]), *(u.user_id + 1 for u in users)])
        self._factory.restore_state({**state["factory"], "next_id": next_id})
        rng_from_json(self._growth_rng, state["growth_rng"])
        counters = state.get("counters", {})
        self._signed_up = int(counters.get("signed_up", 0))
        self._actions = int(counters.get("actions", 0))
        self._failed = int(counters.get("failed", 0))
        now = self._clock.now()
        for user in users:
            self._users[user.user_id] = user
            rng = user_rng(user)
            local = datetime.fromtimestamp(now, user.tz)
            if user.life is not None and self._life is not None:
                user.day_end = _next_midnight(local)
                self._push(user.day_end, _DAY, user)
                if not user.life.active_today:
                    save_rng(user, rng)
                    continue
            persona = self._personas[user.persona]
            first = persona.next_session_start(now, _offset_of(local), rng)
            save_rng(user, rng)
            if math.isfinite(first) and (user.life is None or first < user.day_end):
                self._push(first, _SESSION, user)

    async def reconcile(self) -> int:
        """Bring users' memory in line with the target after a crash.

        Users with an id on the target re-read the posts they own; users without
        one try to log in (their sign-up may have reached the target just before
        the crash). Returns the number of users whose memory changed.
        """
        changed = 0
        semaphore = asyncio.Semaphore(self.scenario.target.concurrency)

        async def one(user: SimUser) -> None:
            nonlocal changed
            async with semaphore:
                before = (user.remote_id, sorted(user.own_posts or ()))
                await self._reconcile_user(user)
                if (user.remote_id, sorted(user.own_posts or ())) != before:
                    changed += 1
                    self._saved(user)

        await asyncio.gather(*(one(u) for u in list(self._users.values())))
        return changed

    async def _reconcile_user(self, user: SimUser) -> None:
        now = self._clock.now()
        iso = datetime.fromtimestamp(now, user.tz).isoformat(timespec="milliseconds")
        if user.remote_id is None:
            login = self._signup_requests(user, now, iso)[-1]
            outcome = await self._target.send(login)
            if not outcome.ok:
                return
            user.token = outcome.token
            user.remote_id = outcome.remote_id
        if user.remote_id is None or self.scenario.api is not None:
            return  # an api section's memory is the target's own; it cannot be re-read
        owned: list[int] = []
        offset, limit = 0, 100
        while True:
            request = ActionRequest(
                "list_own_posts",
                user.user_id,
                now,
                iso,
                user.token,
                offset=offset,
                limit=limit,
                remote_user_id=user.remote_id,
            )
            outcome = await self._target.send(request)
            if not outcome.ok:
                return  # keep what we knew; the target cannot say
            page = outcome.feed_ids or ()
            owned.extend(pid for pid, author in page if author == user.remote_id)
            if len(page) < limit:
                break
            offset += limit
        user.own_posts = owned or None
