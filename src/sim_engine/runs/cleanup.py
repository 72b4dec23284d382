"""``sim-engine cleanup DIR``: delete through the API everything a run created.

Reads the run's ``state.db``: every user the run signed up, and the posts each
created. Nothing the run did not create is touched: every id comes from the
state file. Deleted users are removed from the state, so a second cleanup finds
nothing to do. Founders (seed 001's bootstrap accounts, which may predate the
run) are kept.

Two paths, by the run's scenario:

* the built-in demo social API (no ``api`` section): for each user it logs in
  again (the password derives from the run secret kept in the state), lists the
  posts the target says the user wrote, and deletes them; users are deleted
  last. Only the posts the run recorded for a founder are deleted.
* an ``api`` section: for each user it logs in through the section's ``auth``
  and calls its ``delete_account`` action, which must delete the user with all
  it created. A section without ``delete_account`` cannot say how to delete what
  the run created: cleanup refuses (:class:`CleanupError`), deleting nothing and
  claiming nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_engine.api.binding import signup_requests, user_password
from sim_engine.engine.store import SqliteStore, StateError
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.runs.runstate import DEMO, SafetyError, check_target_allowed, load_resume
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.social import SocialApiTarget
from sim_engine.targets.transport import TargetUnreachableError, Transport

__all__ = ["CleanupError", "CleanupReport", "cleanup_run"]


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
class CleanupReport:
    """Counts of a cleanup.

    Attributes:
        users: users deleted (or that would be, in a dry run).
        posts: posts deleted (or that would be); not counted through an ``api``
            section, whose ``delete_account`` deletes a user with all it created.
        missing: users or posts already gone from the target.
        failed: deletions the target refused.
        posts_counted: False when posts went with their users (an ``api`` section).
    """

    users: int = 0
    posts: int = 0
    missing: int = 0
    failed: int = 0
    posts_counted: bool = True

    def summary(self, dry_run: bool) -> str:
        """Return the one-line summary ``sim-engine cleanup`` prints."""
        verb = "would delete" if dry_run else "deleted"
        if self.posts_counted:
            what = f"{self.posts} posts and {self.users} users"
        else:
            what = f"{self.users} users with all they created (the api section's delete_account)"
        return (
            f"{verb} {what}"
            + (f" ({self.missing} already gone)" if self.missing else "")
            + (f"; {self.failed} failed" if self.failed else "")
        )


_NO_DELETE_ACCOUNT = (
    "{run_dir}: cannot clean up: the scenario's api section has no delete_account action, "
    "so it cannot say how to delete what the run created (nothing was deleted; "
    "see docs/own-api.md)"
)


def cleanup_run(
    run_dir: Path, target_url: str | None = None, dry_run: bool = False
) -> CleanupReport:
    """Delete what the run in ``run_dir`` created, through the API.

    Args:
        run_dir: the run directory (holds ``state.db``).
        target_url: base URL; default the run's own target (its demo server or
            in-process demo database is reopened from ``run_dir/demo.db``).
        dry_run: only count.

    Raises:
        CleanupError: one line saying why nothing could be done: no run here or
            a corrupt state (exit code 2), a refused host (2), an ``api`` section
            without a ``delete_account`` action (2), an unreachable target (1).
    """
    try:
        info = load_resume(run_dir)
    except (StateError, ScenarioError) as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    try:
        api = info.scenario.api
        if api is not None and "delete_account" not in api.actions:
            raise CleanupError(_NO_DELETE_ACCOUNT.format(run_dir=run_dir), exit_code=2)
        target = target_url or str(info.run["target"])
        check_target_allowed(target, info.scenario.safety.allow_hosts)
        if info.engine_state is None:  # stopped before its first checkpoint: nothing was sent
            return CleanupReport(posts_counted=api is None)
        secret = str(info.engine_state["secret"])
        with _transport(target, run_dir, info.scenario.safety.synthetic_header) as transport:
            if api is not None:
                run = _Run(info.users, info.store, secret, info.scenario, dry_run)
                return asyncio.run(_cleanup_api(transport, api, run))
            return asyncio.run(
                _cleanup(transport, info.users, info.store, secret, info.scenario, dry_run)
            )
    except SafetyError as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    finally:
        info.store.close()


@contextlib.contextmanager
def _transport(target: str, run_dir: Path, synthetic_header: str) -> Iterator[Any]:
    headers = {synthetic_header: "true", "User-Agent": "sim-engine-cleanup"}
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
            yield _http(server.base_url, headers)
        return
    yield _http(target, headers)


def _http(url: str, headers: dict[str, str]) -> Transport:
    from sim_engine.targets.http import AiohttpTransport

    return AiohttpTransport(url, concurrency=8, timeout_s=10.0, headers=headers)


async def _cleanup(
    transport: Transport,
    users: list[SimUser],
    store: SqliteStore,
    secret: str,
    scenario: Scenario,
    dry_run: bool,
) -> CleanupReport:
    await _check(transport)
    api = SocialApiTarget(transport)
    report = CleanupReport()
    try:
        joined = [u for u in users if u.remote_id is not None]
        for user in joined:  # posts first
            await _delete_posts(api, user, secret, scenario, dry_run, report, store)
        for user in joined:  # users last
            if user.founder:
                continue
            await _delete_user(api, user, dry_run, report, store)
    finally:
        await api.aclose()
    return report


async def _check(transport: Transport) -> None:
    """Check the target answers (else close the transport and raise CleanupError)."""
    try:
        await transport.check()
    except TargetUnreachableError as exc:
        await transport.aclose()
        raise CleanupError(str(exc)) from None


def _request(action: str, user: SimUser, **fields: Any) -> ActionRequest:
    now = dt.datetime.now(dt.timezone.utc)
    return ActionRequest(action, user.user_id, now.timestamp(), now.isoformat(), **fields)


async def _delete_posts(
    api: SocialApiTarget,
    user: SimUser,
    secret: str,
    scenario: Scenario,
    dry_run: bool,
    report: CleanupReport,
    store: SqliteStore,
) -> None:
    login = await api.send(
        _request(
            "log_in",
            user,
            payload={"username": user.username, "password": user_password(user, secret, scenario)},
        )
    )
    if not login.ok:
        report.missing += 1  # the user is gone (or its password changed): nothing of ours left
        user.token = None
        return
    user.token = login.token
    posts = set(user.own_posts or ())
    offset = 0
    while not user.founder:  # the target's own list catches posts made just before a crash
        listing = await api.send(
            _request(
                "list_own_posts", user, limit=100, offset=offset, remote_user_id=user.remote_id
            )
        )
        page = listing.feed_ids or ()
        posts.update(pid for pid, author in page if author == user.remote_id)
        if len(page) < 100:
            break
        offset += 100
    for post_id in sorted(posts):
        if dry_run:
            report.posts += 1
            continue
        outcome = await api.send(_request("delete_post", user, token=user.token, post_id=post_id))
        if outcome.ok:
            report.posts += 1
        elif outcome.status == 404:
            report.missing += 1
        else:
            report.failed += 1
            continue
        if user.own_posts and post_id in user.own_posts:
            user.own_posts.remove(post_id)
    if not dry_run:
        store.save_user(user)


async def _delete_user(
    api: SocialApiTarget, user: SimUser, dry_run: bool, report: CleanupReport, store: SqliteStore
) -> None:
    if dry_run:
        report.users += 1
        return
    if user.token is None:
        return
    outcome = await api.send(
        _request("delete_account", user, token=user.token, remote_user_id=user.remote_id)
    )
    if outcome.ok or outcome.status == 404:
        report.users += outcome.ok
        report.missing += outcome.status == 404
        store.remove_user(user.user_id)
    else:
        report.failed += 1


# -- through an api section -----------------------------------------------------------------------


@dataclass
class _Run:
    """What cleanup reads from a run's state: its users and how to log them in."""

    users: list[SimUser]
    store: SqliteStore
    secret: str
    scenario: Scenario
    dry_run: bool


async def _cleanup_api(transport: Transport, api: ApiSpec, run: _Run) -> CleanupReport:
    """Log each user of the run in through ``api.auth`` and call ``delete_account``.

    Users the run never saw join (no id on the target, no sign-up answered) are
    skipped, founders kept. A dry run sends nothing.
    """
    await _check(transport)
    target = DeclarativeTarget(transport, api, seed=run.scenario.seed)
    report = CleanupReport(posts_counted=False)
    try:
        for user in run.users:
            if user.founder or (user.remote_id is None and not user.joined):
                continue
            if run.dry_run:
                report.users += 1
                continue
            await _delete_account(target, user, run, report)
    finally:
        await target.aclose()
    return report


async def _delete_account(
    target: DeclarativeTarget, user: SimUser, run: _Run, report: CleanupReport
) -> None:
    """One user: log in (401, 403, 404: already gone), then ``delete_account``
    (404, 410: already gone). A user deleted or gone leaves the state."""
    now = dt.datetime.now(dt.timezone.utc)
    password = user_password(user, run.secret, run.scenario)
    login = signup_requests(user, password, now.timestamp(), now.isoformat(), True)[-1]
    outcome = await target.send(login)
    if not outcome.ok:
        if outcome.status in (401, 403, 404):
            report.missing += 1  # gone (or its password changed): nothing of ours left
        else:
            report.failed += 1
        return
    remote_id = user.remote_id if user.remote_id is not None else outcome.remote_id
    outcome = await target.send(
        _request("delete_account", user, token=outcome.token, remote_user_id=remote_id)
    )
    if outcome.ok or outcome.status in (404, 410):
        report.users += outcome.ok
        report.missing += not outcome.ok
        run.store.remove_user(user.user_id)
    else:
        report.failed += 1
