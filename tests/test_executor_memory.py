"""The executor marks a user changed whenever its answer changes what ``state.db`` keeps.

A log-in that follows a sign-up changes only the token (the sign-up gave the
remote id): a checkpoint taken between the two, then a stop, must still save the
token, or the resumed run logs the user in again without a 401 (seen once in CI
as ``test_resume_api`` failing for one user in 30).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sim_engine.engine.executor import Executor
from sim_engine.engine.ledger import Ledger
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
