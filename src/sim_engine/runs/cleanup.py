"""``sim-engine cleanup DIR``: delete through the API everything a run created.

Reads the run's ``state.db``: every user the run signed up, and the posts each
created. For each user it logs in again (the password derives from the run
secret kept in the state), lists the posts the target says the user wrote, and
deletes them; users are deleted last. Founders (seed 001's bootstrap accounts,
which may predate the run) are kept: only the posts the run recorded for them
are deleted. Nothing the run did not create is touched: every id comes from the
state file. Deleted users are removed from the state, so a second cleanup finds
nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_engine.engine.simulation import user_password
from sim_engine.engine.store import SqliteStore, StateError
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.runs.runstate import DEMO, SafetyError, check_target_allowed, load_resume
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
        posts: posts deleted (or that would be).
        missing: users or posts already gone from the target.
        failed: deletions the target refused.
    """

    users: int = 0
    posts: int = 0
    missing: int = 0
    failed: int = 0


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
        CleanupError: one line saying why nothing could be done.
    """
    try:
        info = load_resume(run_dir)
    except (StateError, ScenarioError) as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    try:
        target = target_url or str(info.run["target"])
        check_target_allowed(target, info.scenario.safety.allow_hosts)
        if info.engine_state is None:
            return CleanupReport()  # stopped before its first checkpoint: nothing was sent
        secret = str(info.engine_state["secret"])
        with _transport(target, run_dir, info.scenario.safety.synthetic_header) as transport:
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
    try:
        await transport.check()
    except TargetUnreachableError as exc:
        await transport.aclose()
        raise CleanupError(str(exc)) from None
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
