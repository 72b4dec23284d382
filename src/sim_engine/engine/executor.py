"""The executor: sends requests to the target and feeds the answers back.

Each dispatched step runs as an asyncio task under the concurrency cap; the
executor keeps the in-flight set and the simulated times of in-flight actions
(the run loop's causality lookahead reads the oldest), applies each answer to
the user's memory, emits an :class:`~sim_engine.model.records.ActionRecord`,
and hands the user back to :class:`~sim_engine.engine.sessions.Sessions` for
its next step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from sim_engine.engine.capabilities import Binder, Paced
from sim_engine.engine.clock import Clock
from sim_engine.engine.events import local_iso
from sim_engine.engine.ledger import Ledger
from sim_engine.engine.sessions import Dispatch, Sessions
from sim_engine.engine.stall import StallMeter
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRecord, ActionRequest, Outcome, Target, UserRecord
from sim_engine.model.redact import is_secret_key, mask_known, redact_text

__all__ = ["Executor", "masked_error"]

_SIGNUP_ATTEMPTS = 3


class Executor:
    """Runs dispatched steps as tasks and applies their answers.

    Args:
        target: what the actions run against.
        clock: the run's clock (answers on a live clock schedule from its now).
        ledger: users, counters, records and persistence of the run.
        sessions: plans each user's next step after an answer.
        binder: feeds answers into the user's memory.
        on_change: called whenever an action finishes (wakes the run loop).
    """

    def __init__(
        self,
        target: Target,
        clock: Clock,
        ledger: Ledger,
        sessions: Sessions,
        binder: Binder,
        on_change: Callable[[], None],
    ) -> None:
        self._target = target
        self._clock = clock
        self._ledger = ledger
        self._sessions = sessions
        self._binder = binder
        self._on_change = on_change
        self.inflight: dict[int, asyncio.Task[None]] = {}  # by serial number
        # (sim_t, wall start) of each action in flight, oldest first, by serial number
        self.inflight_times: dict[int, tuple[float, float]] = {}
        self._serial = 0
        self.error: BaseException | None = None
        self.idle = 0  # steps with nothing possible (the user just thought)
        self._signup_failures: dict[int, int] = {}
        self._acting: dict[int, int] = {}  # user id -> serial of its action in flight
        self.stall = StallMeter()  # when an action counts as waiting on the wall clock
        if isinstance(target, Paced):
            target.pace(clock, self._think_s)

    def _think_s(self, user_id: int, rng: random.Random) -> float:
        """A think time (simulated seconds) of user ``user_id``'s persona, drawn with
        ``rng`` as between its actions; 0 for a user no longer in the run."""
        user = self._ledger.users.get(user_id)
        return 0.0 if user is None else self._sessions.think_s(user, rng)

    def dispatch(self, step: Dispatch) -> None:
        """Send the step's requests in a task; with none, go straight to the next step."""
        if not step.requests:
            self.idle += 1
            self._sessions.follow_up(step.user, self._base(step.sim_t), step.think_s)
            return
        step.user.pending = True
        journal = self._ledger.journal
        if journal is not None:  # written ahead: a resumed run does not send it again
            user = step.user
            journal.dispatched(
                user.user_id, step.sim_t, step.sim_t + step.think_s, user.session_left
            )
        uid = step.user.user_id
        key = self._enter(step.sim_t, uid)
        self.inflight[key] = asyncio.get_running_loop().create_task(self._perform(key, step))

    def spawn(self, sim_t: float, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as an in-flight action dispatched at ``sim_t`` (the churn clean-up's:
        no user's own step)."""
        key = self._enter(sim_t, None)
        self.inflight[key] = asyncio.get_running_loop().create_task(self._timed(key, coro))

    def _enter(self, sim_t: float, user_id: int | None) -> int:
        """Put an action in the in-flight tables (its task added by the caller); its key."""
        self._serial += 1
        key = self._serial
        self.inflight_times[key] = (sim_t, asyncio.get_running_loop().time())
        if user_id is not None:
            self._acting[user_id] = key
        return key

    async def settled(self, user_id: int) -> None:
        """Wait until the user's action in flight, if any, has its answer applied (the
        churn clean-up must see a creation answered after the user churned)."""
        key = self._acting.get(user_id)
        task = self.inflight.get(key) if key is not None else None
        if task is not None:
            await asyncio.wait([task])

    def prompt_floor(self) -> tuple[float | None, float]:
        """The oldest in-flight action still answering promptly: its simulated time (None:
        none) and the seconds until it counts as stalled (see :class:`StallMeter`)."""
        now = asyncio.get_running_loop().time()
        threshold = self.stall.threshold_s
        for sim_t, started in self.inflight_times.values():
            left = threshold - (now - started)
            if left > 0:
                return sim_t, left
        return None, threshold

    async def drain(self, grace_s: float | None = None) -> None:
        """Wait for every in-flight action to finish; after ``grace_s`` wall seconds (None:
        no limit) cancel those still waiting (behind a target's ``Backoff`` gate, say):
        a stopped run ends within the grace, and a cancelled action leaves no record."""
        if not self.inflight:
            return
        _, pending = await asyncio.wait(list(self.inflight.values()), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for key, task in list(self.inflight.items()):  # cancelled before it ever ran
            if task.done():
                self.inflight.pop(key)
                self.inflight_times.pop(key, None)

    async def _timed(self, key: int, coro: Coroutine[Any, Any, None]) -> None:
        """Run an action, then take it out of the in-flight tables and wake the run loop; a
        programming error is kept in :attr:`error` (surfaced from the run)."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failed(exc)
        finally:
            self._leave(key, None)

    def _failed(self, exc: BaseException) -> None:
        """Keep a programming error (surfaced from the run); re-raise what stops the loop."""
        self.error = self.error or exc
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: the loop stops as well

    def _leave(self, key: int, user_id: int | None) -> None:
        """Take an ended action out of the in-flight tables and wake the run loop."""
        started = self.inflight_times.pop(key)[1]
        del self.inflight[key]
        if self._clock.jumps:  # the stall threshold only matters on a jumping clock
            self.stall.observe(asyncio.get_running_loop().time() - started)
        if user_id is not None and self._acting.get(user_id) == key:
            del self._acting[user_id]
        self._on_change()

    def _base(self, sim_t: float, stalled: bool = False) -> float:
        """Where the user's next step counts from: the dispatch time on a jumping clock
        (latency takes no simulated time), unless the answer stalled while the clock
        went on (then from now: the user's own steps stay in order); now on a live one."""
        if self._clock.jumps and not stalled:
            return sim_t
        return max(sim_t, self._clock.now())

    async def _perform(self, key: int, step: Dispatch) -> None:
        """The task of a dispatched step (in-flight as ``key``): send its requests, feed the
        answers back, plan the user's next step; then leave the in-flight tables (as
        :meth:`_timed` does for other actions, one coroutine less per request)."""
        user = step.user
        try:
            ok = True
            elapsed_s = 0.0  # simulated seconds the actions spanned (a browser flow's steps)
            started = asyncio.get_running_loop().time()
            for request in step.requests:
                outcome = await self._target.send(request)
                elapsed_s += outcome.sim_elapsed_s
                self.apply(user, request, outcome)
                if not (outcome.ok and outcome.skipped):
                    # nothing was done (a sign-up or log-in that needed no request: auth
                    # none, HTTP Basic, an API key; a plugin action not possible now): no
                    # action to record
                    self.record(user, step.persona, step.state, request, outcome)
                if not outcome.ok and not (request.action == "sign_up" and outcome.status == 409):
                    # A user that already exists (a founder, seed 001's bootstrap, or a
                    # sign-up the target took just before a crash) just logs in.
                    ok = False
                    break
            if step.requests[0].action in ("sign_up", "log_in"):
                self._after_signup(user, ok)
            stalled = asyncio.get_running_loop().time() - started >= self.stall.threshold_s
            base = self._base(step.sim_t + elapsed_s, stalled)
            self._sessions.follow_up(user, base, step.think_s)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failed(exc)
        finally:
            self._leave(key, user.user_id)

    def _after_signup(self, user: SimUser, ok: bool) -> None:
        if ok:
            self._signup_failures.pop(user.user_id, None)
            return
        failures = self._signup_failures.get(user.user_id, 0) + 1
        self._signup_failures[user.user_id] = failures
        self._sessions.set_left(user, 0)
        if failures >= _SIGNUP_ATTEMPTS and user.remote_id is None:
            self._ledger.remove(user)  # gives up on this user: never joined

    def apply(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> None:
        """Feed the answer back into the user's memory."""
        action = request.action
        if outcome.intended:
            return  # a deliberate error (error simulation) teaches the user nothing
        if action == "sign_up" and outcome.ok:
            self._joined(user, request, outcome)
        elif action == "log_in":
            user.token = outcome.token if outcome.ok else None
            if outcome.ok and user.remote_id is None:
                user.remote_id = outcome.remote_id
                self._ledger.saved(user)
            else:
                # the token changed: a checkpoint taken between a sign-up and its
                # log-in must not leave the user without it after --resume
                self._ledger.touch(user)
        elif self._binder.remember(user, request, outcome):
            self._ledger.saved(user)  # a post created or deleted: must not be forgotten
        else:
            self._ledger.touch(user)  # the target's memory may have changed
        if outcome.status == 401 and action not in ("log_in", "sign_up"):
            user.token = None  # re-login at the next session start

    def _joined(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> None:
        user.joined = True
        user.remote_id = outcome.remote_id
        self._ledger.signed_up += 1
        local = datetime.fromtimestamp(request.sim_time, user.tz)
        # the record first, then the state: a kill between the two leaves a user that
        # reconcile logs in again, never a saved user missing from users.jsonl
        self._ledger.emit(
            UserRecord(
                sim_time=request.sim_time_iso,
                sim_ts=request.sim_time,
                user_id=user.user_id,
                persona=self._ledger.persona_name(user),
                name=user.name,
                email=user.email,
                timezone=str(local.tzinfo),
                avatar=user.avatar or user.initials,
                tag=user.tag,
                remote_id=outcome.remote_id,
                segment=user.life.segment if user.life is not None else None,
            )
        )
        self._ledger.saved(user)

    def record(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        request: ActionRequest,
        outcome: Outcome,
    ) -> None:
        """Count the action and emit its record, its error (text the target may have
        sent: a body excerpt) passed through the redactor; a browser flow emits one
        record per step instead (:func:`page_records`)."""
        if outcome.pages:
            for record in page_records(user, persona.name, state, request, outcome):
                self._ledger.actions += 1
                if not record.ok:
                    self._ledger.failed += 1
                self._ledger.emit(record)
            return
        self._ledger.actions += 1
        if not outcome.ok and not outcome.intended:
            self._ledger.failed += 1
        error = outcome.error and masked_error(outcome.error, user, request, outcome)
        post_id = outcome.post_id if outcome.post_id is not None else request.post_id
        # positional: a third of the cost of keywords (the order is checked by a test)
        record = ActionRecord(
            request.sim_time_iso, request.sim_time, user.user_id, persona.name, state,
            request.action, outcome.status, outcome.ok, round(outcome.latency_ms, 3), post_id,
            user.session_id, error, outcome.endpoint, outcome.skipped, outcome.retries,
            outcome.intended,
        )  # fmt: skip
        self._ledger.emit(record)


def page_records(
    user: SimUser, persona: str, state: str, request: ActionRequest, outcome: Outcome
) -> list[ActionRecord]:
    """One :class:`ActionRecord` per step of a browser flow: the action's name, the step's
    simulated time (the dispatch's plus the think times before the step), status, success
    and wall latency, ``endpoint`` ``PAGE <step>``, and the step's measures in ``page``
    (``index``: its place in the flow, from 0; ``screenshot``: the PNG of a failed step
    under the output directory, or None; errors and messages passed through the
    redactor)."""
    records = []
    for index, step in enumerate(outcome.pages):
        error = step.error and masked_error(step.error, user, request, outcome)
        sim_ts = request.sim_time + step.sim_offset_s
        page = {
            "index": index,
            "step": step.step,
            "url": step.url,
            "ttfb_ms": step.ttfb_ms,
            "dcl_ms": step.dcl_ms,
            "load_ms": step.load_ms,
            "console_errors": [redact_text(m) for m in step.console_errors],
            "failed_requests": list(step.failed_requests),
            "screenshot": step.screenshot,
        }
        records.append(
            ActionRecord(
                sim_time=local_iso(user, sim_ts) if step.sim_offset_s else request.sim_time_iso,
                sim_ts=sim_ts,
                user_id=user.user_id,
                persona=persona,
                state=state,
                action=request.action,
                status=step.status,
                ok=step.ok,
                latency_ms=round(step.latency_ms, 3),
                session_id=user.session_id,
                error=error,
                endpoint=f"PAGE {step.step}",
                page=page,
            )
        )
    return records


def masked_error(error: str, user: SimUser, request: ActionRequest, outcome: Outcome) -> str:
    """Return ``error`` (text a target may have sent: a body excerpt) with the credentials
    it could echo masked: the user's tokens and the request's secret fields (password)
    by value, any other by pattern (:func:`~sim_engine.model.redact.redact_text`)."""
    known = [user.token, request.token, outcome.token]
    known += [
        v for k, v in (request.payload or {}).items() if isinstance(v, str) and is_secret_key(k)
    ]
    return redact_text(mask_known(error, known))
