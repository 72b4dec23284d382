"""Crash safety of a run: checkpoints, restore and reconcile.

A run with a :class:`~sim_engine.model.records.Store` writes each user through
at every event that must not be forgotten (the :class:`~sim_engine.engine.ledger.Ledger`
does) and checkpoints the engine's own state with every changed user in one
transaction. After a crash, :meth:`Persistence.restore` takes the users and
the state back and plans each user's next day and session from the current
simulated time; :meth:`Persistence.reconcile` then brings the users' memory in
line with what the target actually holds (see ``docs/safety.md``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sim_engine.api.binding import run_tag
from sim_engine.engine.clock import Clock
from sim_engine.engine.daycycle import DayCycle
from sim_engine.engine.events import DAY, NEXT, SESSION, local_iso, next_midnight, offset_of
from sim_engine.engine.growth import Growth
from sim_engine.engine.journal import Progress
from sim_engine.engine.ledger import Ledger
from sim_engine.engine.scheduler import Scheduler
from sim_engine.engine.sessions import Sessions
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser, rng_from_json, rng_to_json, save_rng, user_rng
from sim_engine.model.records import ActionRequest, Target

__all__ = ["Persistence"]


class Persistence:
    """Exports, checkpoints, restores and reconciles the state of a run.

    Args:
        clock: the run's clock.
        ledger, growth, days, sessions, scheduler: the run's collaborators.
        personas: the compiled personas, by index.
        target: the target (reconcile asks it).
        span: ``(start_s, end_s)`` of the run in simulated epoch seconds.
        concurrency: at most this many reconcile requests at once.
        reread: the API lists what a user owns (its ``list_own_posts`` action): users
            send it on reconcile, and the target takes the answer into memory.
    """

    def __init__(
        self,
        clock: Clock,
        ledger: Ledger,
        growth: Growth,
        days: DayCycle,
        sessions: Sessions,
        scheduler: Scheduler,
        personas: list[CompiledPersona],
        target: Target,
        span: tuple[float, float],
        concurrency: int,
        reread: bool,
    ) -> None:
        self._clock = clock
        self._ledger = ledger
        self._growth = growth
        self._days = days
        self._sessions = sessions
        self._scheduler = scheduler
        self._personas = personas
        self._target = target
        self._start_s, self._end_s = span
        self._concurrency = concurrency
        self._reread = reread
        self._ahead: dict[int, float] = {}

    def export_state(self) -> dict[str, Any]:
        """Return the engine's own state (not the users) as JSON-ready data."""
        ledger = self._ledger
        return {
            "sim_now": self._clock.now(),
            "start_s": self._start_s,
            "end_s": self._end_s if math.isfinite(self._end_s) else None,
            "day_start_s": self._days.day_start_s,
            "arrivals_today": self._growth.arrivals_today,
            "secret": self._sessions.secret,
            "factory": self._growth.factory.export_state(),
            "growth_rng": rng_to_json(self._growth.rng),
            "counters": {
                "signed_up": ledger.signed_up,
                "actions": ledger.actions,
                "failed": ledger.failed,
            },
            # Users a resumed run found ahead of the clock (their last action was sent
            # after the checkpoint it resumed from): still ahead, they stay so.
            "ahead": {str(k): t for k, t in self._ahead.items() if t > self._clock.now()},
        }

    def checkpoint(self) -> int:
        """Save the engine's state and every user changed since the last checkpoint
        (acted, signed up, or had its day decided: the cost follows the changes,
        not the population).

        Returns the number of users saved (0 without a store).
        """
        store = self._ledger.store
        if store is None:
            return 0
        users, dirty = self._ledger.users, self._ledger.dirty
        changed = [users[uid] for uid in sorted(dirty) if uid in users]
        for user in changed:
            self._ledger.refresh(user)
        store.checkpoint(self.export_state(), changed)
        self._ledger.dirty.clear()
        if self._ledger.journal is not None:
            self._ledger.journal.reset()  # what it recorded is in the checkpoint now
        return len(changed)

    def restore(
        self,
        state: dict[str, Any],
        users: Sequence[SimUser],
        progress: dict[int, Progress] | None = None,
    ) -> None:
        """Take back a crashed run's users and state (before the run starts).

        ``progress`` (from the write-ahead journal, :func:`~sim_engine.engine.journal.
        read_journal`) holds each user's last action sent after the checkpoint: what
        was sent is not sent again. A user it shows in a session goes on with that
        session (its next step, its actions left); every other user gets its next
        local midnight and next session planned from the current simulated time, or
        from its last action when that came later. Sign-ups go on after the last
        user created. A target that keeps memories gets each user's back, token
        included: a user whose token is still valid sends no log-in. The social
        API's tokens are not kept: each logs in again at its next session.

        Raises:
            KeyError, ValueError: ``state`` is not an exported state.
        """
        self._sessions.secret = str(state["secret"])
        self._growth.factory.run_tag = run_tag(self._sessions.secret)
        self._days.day_start_s = float(state["day_start_s"])
        self._growth.arrivals_today = int(state["arrivals_today"])
        # Users created after the checkpoint were written through: ids go on after them.
        next_id = max([int(state["factory"]["next_id"]), *(u.user_id + 1 for u in users)])
        self._growth.factory.restore_state({**state["factory"], "next_id": next_id})
        rng_from_json(self._growth.rng, state["growth_rng"])
        counters = state.get("counters", {})
        self._ledger.signed_up = int(counters.get("signed_up", 0))
        self._ledger.actions = int(counters.get("actions", 0))
        self._ledger.failed = int(counters.get("failed", 0))
        now = self._clock.now()
        progress = progress or {}
        self._ahead = {int(k): float(t) for k, t in state.get("ahead", {}).items()}
        for user_id, done in progress.items():
            self._ahead[user_id] = max(done.sim_t, self._ahead.get(user_id, done.sim_t))
        self._growth.resume_after(now, [u.created_ts for u in users])
        for user in users:
            self._ledger.users[user.user_id] = user
            self._remember(user)
            self._replan(
                user, max(now, self._ahead.get(user.user_id, now)), progress.get(user.user_id)
            )

    def _remember(self, user: SimUser) -> None:
        """Give the target back what it kept for the user, and the user its token."""
        keeper, memory = self._ledger.keeper, user.memory
        if keeper is None or memory is None:
            return
        keeper.restore_memory(user.user_id, memory, password=self._sessions.password(user))
        token = memory.get("token")
        user.token = str(token) if token else None

    def _replan(self, user: SimUser, now: float, done: Progress | None) -> None:
        """Plan the user's next midnight and its session from ``now`` (its own restart
        time): the session it was in (``done``: its last action), or a new one."""
        rng = user_rng(user)
        local = datetime.fromtimestamp(now, user.tz)
        if user.life is not None:
            user.day_end = next_midnight(local)
            self._scheduler.push(user.day_end, DAY, user)
            if not user.life.active_today:
                save_rng(user, rng)
                return
        if done is not None and done.left > 0 and user.token is not None:
            self._sessions.set_left(user, done.left)
            self._scheduler.push(max(now, done.next_s), NEXT, user)
            return
        persona = self._personas[user.persona]
        first = persona.next_session_start(now, offset_of(local), rng, user.activity)
        save_rng(user, rng)
        if math.isfinite(first) and (user.life is None or first < user.day_end):
            self._scheduler.push(first, SESSION, user)

    async def reconcile(self) -> int:
        """Bring users' memory in line with the target after a crash.

        Users without an id on the target try to log in (their sign-up may have
        reached the target just before the crash); users with one ask the API
        what they own (``list_own_posts``, when the API has it), which catches
        what they created after the last checkpoint. Returns the number of
        users whose memory changed.
        """
        changed = 0
        semaphore = asyncio.Semaphore(self._concurrency)

        async def one(user: SimUser) -> None:
            nonlocal changed
            async with semaphore:
                before = (user.remote_id, self._memory(user))
                await self._reconcile_user(user)
                if (user.remote_id, self._memory(user)) != before:
                    changed += 1
                    self._ledger.saved(user)

        await asyncio.gather(*(one(u) for u in list(self._ledger.users.values())))
        return changed

    def _memory(self, user: SimUser) -> object:
        keeper = self._ledger.keeper
        return keeper.export_memory(user.user_id) if keeper is not None else None

    async def _reconcile_user(self, user: SimUser) -> None:
        now = self._clock.now()
        if user.remote_id is None:
            login = self._sessions.signup_requests(user, now)[-1]
            outcome = await self._target.send(login)
            if not outcome.ok:
                return
            user.token = outcome.token
            user.remote_id = outcome.remote_id
        if user.remote_id is not None and self._reread:
            iso = local_iso(user, now)
            request = ActionRequest(
                "list_own_posts", user.user_id, now, iso, user.token, remote_user_id=user.remote_id
            )
            await self._target.send(request)
