"""``sim-engine cleanup DIR``: delete through the API everything a run created.

The run wrote every resource it created to ``state.db`` when the creating
action's answer arrived, with its delete handle (the deleting action and the
items it picks: :mod:`sim_engine.targets.declarative._created`), and removed
those the run itself deleted. Cleanup reads that table and the run's users and
goes through the API description (the scenario's ``api`` section, or the demo
API's built-in one):

1. every recorded resource, newest first (a child -- a comment -- is always
   created after its parent -- the post --, so children go before parents),
   sent by its handle as its creator (logged in through ``auth``, the password
   derived from the run secret kept in the state);
2. every user the run signed up, by ``delete_account`` (founders are kept; a
   user whose resources could not all be deleted is kept too, so they still can
   be), which also takes the resources of ``api.cleanup.with_account`` kinds.

Nothing the run did not create is touched: every id comes from the state.
Deleted resources and users leave the state, so a second cleanup finds nothing
to do. What the description cannot delete (no deleting action for its kind, no
``delete_account``), what a creator who cannot log in any more holds, and what
the target refuses to delete stays: the report says what and why, and the
command exits non-zero. A dry run sends nothing: it counts from the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim_engine.api.binding import signup_requests, user_password
from sim_engine.engine.journal import JOURNAL_NAME, mark_answered
from sim_engine.engine.simulation import effective_api
from sim_engine.engine.store import NO_OWNER, SqliteStore, StateError
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.model.settings_spec import SafetySpec
from sim_engine.runs.cleanup_report import CleanupReport, Tally
from sim_engine.runs.created import record_unanswered
from sim_engine.runs.runstate import DEMO, SafetyError, check_target_allowed, load_resume
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.transport import TargetUnreachableError, Transport

__all__ = ["CleanupError", "CleanupReport", "Tally", "cleanup_run"]


class CleanupError(RuntimeError):
    """Cleanup could not start (one-line message).

    Attributes:
        exit_code: 2 for bad input (no run here, corrupt state, refused host),
            1 for a runtime failure (unreachable target).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class _Row:
    """One recorded resource: state row, creator, kind, id and how to delete it."""

    seq: int
    owner: int
    kind: str
    item_id: str
    handle: dict[str, Any] | None
    why: str
    sent: tuple[str, str] | None = None  # in doubt: (its action, "METHOD path")
    key: str = ""  # in doubt: its key in the journal


@dataclass
class _Work:
    """What a cleanup sends: resources by their handles (newest first), then accounts.

    Attributes:
        rows: resources to delete, newest first.
        accounts: users whose account to delete (with the kinds that go with it).
        with_account: user id -> resources that go with its account, per kind.
        users: the run's users by engine id.
    """

    rows: list[_Row] = field(default_factory=list)
    accounts: list[SimUser] = field(default_factory=list)
    with_account: dict[int, list[_Row]] = field(default_factory=dict)
    users: dict[int, SimUser] = field(default_factory=dict)


def cleanup_run(
    run_dir: Path, target_url: str | None = None, dry_run: bool = False
) -> CleanupReport:
    """Delete what the run in ``run_dir`` created, through the API.

    Args:
        run_dir: the run directory (holds ``state.db``).
        target_url: base URL; default the run's own target (its demo server or
            in-process demo database is reopened from ``run_dir/demo.db``).
        dry_run: only count, send nothing.

    Returns:
        the report; ``report.complete`` is False when something the run created
        stays on the target (the command then exits 1).

    Raises:
        CleanupError: one line saying why nothing could be done: no run here or
            a corrupt state (exit code 2), a refused host (2), an unreachable
            target (1).
    """
    try:
        info = load_resume(run_dir)
    except (StateError, ScenarioError) as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    try:
        api = effective_api(info.scenario)
        target = target_url or str(info.run["target"])
        check_target_allowed(target, info.scenario.safety.allow_hosts)
        secret = info.store.get_meta("secret")
        if info.engine_state is not None:
            secret = info.engine_state["secret"]
        record_unanswered(info.store, run_dir / JOURNAL_NAME, api)  # creations in doubt
        report = CleanupReport()
        work = _plan(api, info.store, report)
        if dry_run or not (work.rows or work.accounts):
            return _dry(work, report)
        if not isinstance(secret, str):
            raise CleanupError(f"{run_dir}: no run secret saved: cannot log the users in")
        run = _Run(info.store, secret, info.scenario, api, run_dir / JOURNAL_NAME)
        with _transport(target, run_dir, info.scenario.safety) as transport:
            return asyncio.run(_cleanup(transport, run, work, report))
    except (SafetyError, StateError) as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    finally:
        info.store.close()


def _plan(api: ApiSpec, store: SqliteStore, report: CleanupReport) -> _Work:
    """Sort the recorded resources and the users into what to send and what stays."""
    work = _Work(users={u.user_id: u for u in store.saved_users()})
    members = {  # the accounts the run signed up (none without a sign-up)
        i
        for i, u in work.users.items()
        if api.auth.signup is not None and not u.founder and (u.remote_id is not None or u.joined)
    }
    can_delete_account = "delete_account" in api.actions
    with_account = {k.removeprefix("memory.") for k in api.cleanup.with_account}
    for seq, owner, kind, item_id, data in reversed(store.created()):
        handle = data.get("delete")
        row = _Row(seq, owner, kind, item_id, handle, str(data.get("why") or ""))
        if isinstance(data.get("in_doubt"), dict):
            _plan_unanswered(work, row, data, report)
            continue
        report.tally(kind)
        goes = kind in with_account and can_delete_account
        if owner == NO_OWNER or (owner not in work.users and not goes):
            why = "its creator's state is gone" if owner == NO_OWNER else (
                "its creator's account was deleted during the run")  # fmt: skip
            report.stay(kind, why)
        elif owner not in work.users:
            report.tally(kind).with_account += 1  # deleted with the account during the run
            store.remove_created(kind, item_id)
        elif goes and owner in members and handle is None:
            work.with_account.setdefault(owner, []).append(row)
        elif handle is None:
            report.stay(kind, row.why)
        else:
            work.rows.append(row)
    work.accounts = [work.users[i] for i in sorted(members)]
    if work.accounts and not can_delete_account:
        report.stay("users", "the api section has no delete_account action", len(work.accounts))
        work.accounts = []
        for rows in work.with_account.values():
            for row in rows:
                report.stay(row.kind, row.why)
        work.with_account.clear()
    return work


def _plan_unanswered(work: _Work, row: _Row, data: dict[str, Any], report: CleanupReport) -> None:
    """A creation in doubt: deleted by the path it named (its handle) when its creator can
    log in, else reported as staying in doubt."""
    sent = data["in_doubt"]
    row.sent = (str(data.get("action")), f"{sent.get('method')} {sent.get('path')}")
    row.key = str(sent.get("key", ""))
    if row.handle is not None and row.owner in work.users:
        work.rows.append(row)
    else:
        report.unsure(*row.sent)


def _dry(work: _Work, report: CleanupReport) -> CleanupReport:
    """Count what would be deleted (and what would go with the accounts); send nothing."""
    for row in work.rows:
        if row.sent is not None:
            report.unsure(*row.sent, fixable=True)
            continue
        report.tally(row.kind).deleted += 1
    for rows in work.with_account.values():
        for row in rows:
            report.tally(row.kind).with_account += 1
    report.users.deleted += len(work.accounts)
    return report


@contextlib.contextmanager
def _transport(target: str, run_dir: Path, safety: SafetySpec) -> Iterator[Any]:
    headers = {safety.synthetic_header: "true", "User-Agent": "sim-engine-cleanup"}
    if target == "inprocess":
        from sim_engine.demo import create_app
        from sim_engine.targets.inprocess import AsgiTransport

        yield AsgiTransport(create_app(str(run_dir / "demo.db")), headers=headers)
        return
    if target == DEMO:
        from sim_engine.demo.launcher import DemoServer

        if not (run_dir / "demo.db").exists():
            raise CleanupError(f"{run_dir}: the run's demo database (demo.db) is gone")
        with DemoServer(db_path=str(run_dir / "demo.db")) as server:
            yield _http(server.base_url, headers, safety.allow_hosts)
        return
    yield _http(target, headers, safety.allow_hosts)


def _http(url: str, headers: dict[str, str], allow_hosts: tuple[str, ...]) -> Transport:
    from sim_engine.targets.http import AiohttpTransport

    return AiohttpTransport(
        url, concurrency=8, timeout_s=10.0, headers=headers, allow_hosts=allow_hosts
    )


def _request(action: str, user: SimUser, **fields: Any) -> ActionRequest:
    now = dt.datetime.now(dt.timezone.utc)
    return ActionRequest(action, user.user_id, now.timestamp(), now.isoformat(), **fields)


@dataclass
class _Run:
    """What cleanup needs to act as the run's users: the state, the secret, the API."""

    store: SqliteStore
    secret: str
    scenario: Scenario
    api: ApiSpec
    journal: Path  # the run's journal (creations in doubt)
    tokens: dict[int, str | None] = field(default_factory=dict)  # None: cannot log in
    gone: list[_Row] = field(default_factory=list)  # their delete answered 404 or 410
    gone_users: list[int] = field(default_factory=list)  # likewise
    settled: list[str] = field(default_factory=list)  # journal keys of creations in doubt


async def _cleanup(
    transport: Transport, run: _Run, work: _Work, report: CleanupReport
) -> CleanupReport:
    """Resources newest first, then accounts (see the module docstring)."""
    try:
        await transport.check()
    except TargetUnreachableError as exc:
        await transport.aclose()
        raise CleanupError(str(exc)) from None
    target = DeclarativeTarget(
        transport, run.api, seed=run.scenario.seed, registry=run.scenario.registry
    )
    kept: set[int] = set()  # users holding a resource that stays
    try:
        for row in work.rows:
            if not await _delete_row(target, run, work.users[row.owner], row, report):
                kept.add(row.owner)
        for user in work.accounts:
            rows = work.with_account.get(user.user_id, [])
            if user.user_id in kept:
                report.stay("users", "kept: some of what they created could not be deleted")
                for row in rows:
                    report.stay(row.kind, "its creator's account was kept")
            else:
                await _delete_account(target, user, rows, run, report)
    finally:
        await target.aclose()
    doubted = set(report.doubted())
    for row in run.gone:
        if row.kind not in doubted:
            run.store.remove_created(row.kind, row.item_id)
    for user_id in run.gone_users if "users" not in doubted else ():
        run.store.remove_user(user_id)
    mark_answered(run.journal, run.settled)  # settled: not in doubt any more
    return report


async def _token(target: DeclarativeTarget, user: SimUser, run: _Run) -> str | None:
    """Log ``user`` in once; return its token ("" without a token scheme), None on failure."""
    if user.user_id in run.tokens:
        return run.tokens[user.user_id]
    password = user_password(user, run.secret, run.scenario)
    if user.memory is not None:
        with contextlib.suppress(ValueError):
            target.restore_memory(user.user_id, user.memory, password=password)
    now = dt.datetime.now(dt.timezone.utc)
    login = signup_requests(user, password, now.timestamp(), now.isoformat())[-1]
    outcome = await target.send(login)
    token = (outcome.token or "") if outcome.ok else None
    if outcome.ok and user.remote_id is None:
        user.remote_id = outcome.remote_id
    run.tokens[user.user_id] = token
    return token


async def _delete_row(
    target: DeclarativeTarget, run: _Run, user: SimUser, row: _Row, report: CleanupReport
) -> bool:
    """Delete one resource by its handle; return False when it stays."""
    token = await _token(target, user, run)
    if token is None:
        if row.sent is not None:
            report.unsure(*row.sent)
        else:
            report.stay(row.kind, "its creator could not log in")
        return False
    assert row.handle is not None
    request = _request(str(row.handle.get("action")), user, token=token or None)
    outcome = await target.delete_created(request, row.handle)
    if row.sent is not None:  # in doubt: deleted, or never made (404, 410)
        if not (outcome.ok or outcome.status in (404, 410)):
            report.unsure(*row.sent)
            return False
        report.settled["deleted" if outcome.ok else "never made"] += 1
        run.store.remove_created(row.kind, row.item_id)
        run.settled.append(row.key)
        return True
    tally = report.tally(row.kind)
    if outcome.ok or outcome.status in (404, 410):
        tally.deleted += outcome.ok
        tally.gone += not outcome.ok
        if outcome.ok:
            run.store.remove_created(row.kind, row.item_id)
        else:  # left in the state while its kind is in doubt (see CleanupReport.doubts)
            run.gone.append(row)
        return True
    tally.failed += 1
    report.stay(row.kind, f"the target refused to delete it ({outcome.status or outcome.error})")
    return False


async def _delete_account(
    target: DeclarativeTarget, user: SimUser, rows: list[_Row], run: _Run, report: CleanupReport
) -> None:
    """``delete_account`` (404, 410: already gone); a deleted user leaves the state with
    the resources that go with its account."""
    token = await _token(target, user, run)
    if token is None:
        report.stay("users", "could not log in")
        for row in rows:
            report.stay(row.kind, "its creator could not log in")
        return
    outcome = await target.send(
        _request("delete_account", user, token=token or None, remote_user_id=user.remote_id)
    )
    if not (outcome.ok or outcome.status in (404, 410)):
        report.users.failed += 1
        why = f"the target refused to delete them ({outcome.status or outcome.error})"
        report.stay("users", why)
        for row in rows:
            report.stay(row.kind, "its creator's account was kept")
        return
    report.users.deleted += outcome.ok
    report.users.gone += not outcome.ok
    for row in rows:
        report.tally(row.kind).with_account += 1
        run.store.remove_created(row.kind, row.item_id)
    if outcome.ok:
        run.store.remove_user(user.user_id)
    else:  # left in the state while users are in doubt (see CleanupReport.doubts)
        run.gone_users.append(user.user_id)
