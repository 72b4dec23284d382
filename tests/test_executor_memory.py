"""The executor marks a user changed whenever its answer changes what ``state.db`` keeps.

A log-in that follows a sign-up changes only the token (the sign-up gave the
remote id): a checkpoint taken between the two, then a stop, must still save the
token, or the resumed run logs the user in again without a 401 (seen once in CI
as ``test_resume_api`` failing for one user in 30).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sim_engine.engine.executor import Executor
from sim_engine.engine.ledger import Ledger
from sim_engine.engine.sessions import Dispatch
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest, Outcome


def _executor(ledger: Ledger) -> Executor:
    # apply() reaches only the ledger for a log-in: the other collaborators stay unused
    return Executor(None, None, ledger, None, None, lambda: None)  # type: ignore[arg-type]


def test_a_log_in_after_the_sign_up_marks_the_user_for_the_next_checkpoint() -> None:
    ledger = Ledger([], [], None, None)
    user = SimUser(1, 0, 0.0, "Ann Lee", "ann@example.test", ZoneInfo("UTC"), 1)
    user.remote_id = 41  # from the sign-up, already saved
    ledger.dirty.clear()  # a checkpoint came between the sign-up and the log-in
    login = ActionRequest("log_in", 1, 0.0, "1970-01-01T00:00:00+00:00")
    _executor(ledger).apply(user, login, Outcome(200, True, 1.0, token="t-1", remote_id=41))
    assert user.token == "t-1"
    assert ledger.dirty == {1}


def test_a_refused_log_in_marks_the_user_too() -> None:
    ledger = Ledger([], [], None, None)
    user = SimUser(1, 0, 0.0, "Ann Lee", "ann@example.test", ZoneInfo("UTC"), 1)
    user.remote_id, user.token = 41, "old"
    login = ActionRequest("log_in", 1, 0.0, "1970-01-01T00:00:00+00:00")
    _executor(ledger).apply(user, login, Outcome(401, False, 1.0))
    assert user.token is None and ledger.dirty == {1}


class _Held:
    """A target whose answers wait until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def send(self, request: ActionRequest) -> Outcome:
        await self.release.wait()
        return Outcome(201, True, 1.0, post_id=7)

    async def aclose(self) -> None:
        """Nothing to close."""


class _Sessions:
    def follow_up(self, user: SimUser, base: float, think_s: float) -> None:
        user.pending = False


class _Binder:
    def remember(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> bool:
        return True


class _Clock:
    jumps = True


async def test_settled_waits_for_the_users_action_in_flight() -> None:
    """The churn clean-up waits for a creation in flight before it deletes what the user
    made (a creation answered after the account went would be left behind)."""
    ledger = Ledger([], [], None, None)
    target = _Held()
    fakes: Any = (_Clock(), _Sessions(), _Binder())  # only what dispatch() uses
    executor = Executor(target, fakes[0], ledger, fakes[1], fakes[2], lambda: None)
    user = SimUser(1, 0, 0.0, "Ann Lee", "ann@example.test", ZoneInfo("UTC"), 1)
    persona = SimpleNamespace(name="writer")
    create = ActionRequest("create_post", 1, 0.0, "1970-01-01T00:00:00+00:00")
    executor.dispatch(Dispatch(user, persona, "working", 0.0, [create], 5.0))  # type: ignore[arg-type]
    waiting = asyncio.ensure_future(executor.settled(1))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the answer has not come
    target.release.set()
    await asyncio.wait_for(waiting, 1.0)
    assert ledger.actions == 1 and ledger.dirty == {1}  # recorded and saved before
    await executor.settled(1)  # nothing in flight: returns at once
    await executor.settled(2)
