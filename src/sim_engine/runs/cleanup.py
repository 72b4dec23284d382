"""``sim-engine cleanup DIR``: delete through the API everything a run created.

Reads the run's ``state.db``: every user the run signed up, with the memory the
target kept of it (the ids it created). Nothing the run did not create is
touched: every id comes from the state file or from what the API says the user
owns. Deleted users are removed from the state, so a second cleanup finds
nothing to do. Founders (seed 001's bootstrap accounts, which may predate the
run) are kept; what they created in the run is deleted.

One path for every API, through its description (the scenario's ``api``
section, or the demo API's built-in one). For each user the run signed up:

1. log in through ``auth`` (the password derives from the run secret kept in
   the state); ``list_own_posts``, when the API has it, also catches what the
   user created after the last checkpoint;
2. delete every item the user holds in a memory list that a deleting action
   (``method: DELETE`` with ``forget`` of an item picked from that list) can delete;
3. delete the user with ``delete_account`` (founders are kept).

A description without ``delete_account`` cannot say how to delete what the run
created: cleanup refuses (:class:`CleanupError`), deleting nothing and claiming
nothing. A dry run sends nothing: it counts from the saved memories.
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
from sim_engine.engine.simulation import effective_api
from sim_engine.engine.store import SqliteStore, StateError
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.model.settings_spec import SafetySpec
from sim_engine.runs.runstate import DEMO, SafetyError, check_target_allowed, load_resume
from sim_engine.targets.declarative import DeclarativeTarget
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
        posts: items deleted (or that would be) before their users: posts on the
            demo API, whatever the deleting actions delete on another API.
        missing: users or items already gone from the target.
        failed: deletions the target refused.
        noun: what ``posts`` counts, for the summary (``posts``, ``notes``...).
    """

    users: int = 0
    posts: int = 0
    missing: int = 0
    failed: int = 0
    noun: str = "posts"

    def summary(self, dry_run: bool) -> str:
        """Return the one-line summary ``sim-engine cleanup`` prints."""
        verb = "would delete" if dry_run else "deleted"
        return (
            f"{verb} {self.posts} {self.noun} and {self.users} users"
            + (f" ({self.missing} already gone)" if self.missing else "")
            + (f"; {self.failed} failed" if self.failed else "")
        )


_NO_DELETE_ACCOUNT = (
    "{run_dir}: cannot clean up: the run's API description has no delete_account action, "
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
            a corrupt state (exit code 2), a refused host (2), an API description
            without a ``delete_account`` action (2), an unreachable target (1).
    """
    try:
        info = load_resume(run_dir)
    except (StateError, ScenarioError) as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    try:
        api = effective_api(info.scenario)
        if "delete_account" not in api.actions:
            raise CleanupError(_NO_DELETE_ACCOUNT.format(run_dir=run_dir), exit_code=2)
        target = target_url or str(info.run["target"])
        check_target_allowed(target, info.scenario.safety.allow_hosts)
        noun = _noun(_deleters(api))
        if info.engine_state is None:  # stopped before its first checkpoint: nothing was sent
            return CleanupReport(noun=noun)
        secret = str(info.engine_state["secret"])
        run = _Run(info.users, info.store, secret, info.scenario)
        if dry_run:
            return _count(api, run, noun)
        with _transport(target, run_dir, info.scenario.safety) as transport:
            return asyncio.run(_cleanup(transport, api, run, noun))
    except SafetyError as exc:
        raise CleanupError(str(exc), exit_code=2) from None
    finally:
        info.store.close()


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


@dataclass
class _Run:
    """What cleanup reads from a run's state: its users and how to log them in."""

    users: list[SimUser]
    store: SqliteStore
    secret: str
    scenario: Scenario

    def joined(self) -> list[SimUser]:
        """The users the run signed up (an id on the target, or a sign-up answered)."""
        return [u for u in self.users if u.remote_id is not None or u.joined]


def _deleters(api: ApiSpec) -> dict[str, str]:
    """``memory.KEY`` -> the action that deletes one item of it (``forget`` of a pick)."""
    found: dict[str, str] = {}
    for name, action in api.actions.items():
        key = action.pick.get(action.forget) if action.forget is not None else None
        if key is not None and key.startswith("memory.") and action.method == "DELETE":
            found.setdefault(key, name)
    return found


def _noun(deleters: dict[str, str]) -> str:
    """What the deleted items are called: the last word of the first list (``posts``)."""
    for key in deleters:
        return key.removeprefix("memory.").split("_")[-1]
    return "items"


def _saved_items(user: SimUser, key: str) -> int:
    """How many items of ``key`` the user's saved memory holds."""
    memory = (user.memory or {}).get("memory") or {}
    entry = memory.get(key) if isinstance(memory, dict) else None
    items = entry.get("items") if isinstance(entry, dict) else None
    return len(items) if isinstance(items, list) else 0


def _count(api: ApiSpec, run: _Run, noun: str) -> CleanupReport:
    """A dry run: count what would be deleted from the saved memories; send nothing."""
    report = CleanupReport(noun=noun)
    deleters = _deleters(api)
    for user in run.joined():
        report.posts += sum(_saved_items(user, key) for key in deleters)
        report.users += not user.founder
    return report


async def _cleanup(transport: Transport, api: ApiSpec, run: _Run, noun: str) -> CleanupReport:
    """Items first, users last (see the module docstring)."""
    await _check(transport)
    target = DeclarativeTarget(
        transport, api, seed=run.scenario.seed, registry=run.scenario.registry
    )
    report = CleanupReport(noun=noun)
    try:
        tokens: dict[int, str] = {}
        for user in run.joined():
            token = await _log_in(target, user, run, report)
            if token is not None:
                tokens[user.user_id] = token
                await _delete_items(target, api, user, token, report)
        for user in run.joined():
            if not user.founder and user.user_id in tokens:
                await _delete_account(target, user, tokens[user.user_id], run, report)
    finally:
        await target.aclose()
    return report


async def _log_in(
    target: DeclarativeTarget, user: SimUser, run: _Run, report: CleanupReport
) -> str | None:
    """Log the user in (401, 403, 404: already gone); return its token ("" for none)."""
    password = user_password(user, run.secret, run.scenario)
    if user.memory is not None:
        with contextlib.suppress(ValueError):
            target.restore_memory(user.user_id, user.memory, password=password)
    now = dt.datetime.now(dt.timezone.utc)
    login = signup_requests(user, password, now.timestamp(), now.isoformat())[-1]
    outcome = await target.send(login)
    if not outcome.ok:
        if outcome.status in (401, 403, 404):
            report.missing += 1  # gone (or its password changed): nothing of ours left
        else:
            report.failed += 1
        return None
    if user.remote_id is None:
        user.remote_id = outcome.remote_id
    return outcome.token or ""


async def _delete_items(
    target: DeclarativeTarget, api: ApiSpec, user: SimUser, token: str, report: CleanupReport
) -> None:
    """Delete every item the user holds that a deleting action can delete."""
    if "list_own_posts" in api.actions:  # what it created after the last checkpoint too
        await target.send(_request("list_own_posts", user, token=token or None))
    for key, action in _deleters(api).items():
        for _ in range(len((target.memory(user.user_id) or {}).get(key, ()))):
            if not target.has(user.user_id, key):
                break
            outcome = await target.send(_request(action, user, token=token or None))
            if outcome.ok:
                report.posts += 1
            elif outcome.status in (404, 410):
                report.missing += 1  # already gone: the target forgets it
            else:
                report.failed += 1
                break


async def _delete_account(
    target: DeclarativeTarget, user: SimUser, token: str, run: _Run, report: CleanupReport
) -> None:
    """``delete_account`` (404, 410: already gone); a user deleted or gone leaves the state."""
    outcome = await target.send(
        _request("delete_account", user, token=token or None, remote_user_id=user.remote_id)
    )
    if outcome.ok or outcome.status in (404, 410):
        report.users += outcome.ok
        report.missing += not outcome.ok
        run.store.remove_user(user.user_id)
    else:
        report.failed += 1
