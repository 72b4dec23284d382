"""The run keeps, in ``state.db``, every resource it creates on the target (for cleanup).

:func:`keep_created` wires the run's declarative target to its state store: each
answer to a creating action is written at once (see
:mod:`sim_engine.targets.declarative._created`), and the run secret is saved
before anything is sent, so ``sim-engine cleanup`` can log the creators in even
after a crash before the first checkpoint. Requests that may create something
are written ahead to the run's journal (``dispatched.log``) and marked answered
there; those a kill left unanswered are creations *in doubt*, which
:func:`record_unanswered` moves into ``state.db`` (on resume, and by cleanup).
"""

from __future__ import annotations

import secrets
from collections import Counter
from pathlib import Path
from typing import Any

from sim_engine.engine.journal import DispatchJournal, Unanswered, read_unanswered
from sim_engine.engine.store import SqliteStore
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.records import Target
from sim_engine.runs.cleanup_report import requests_text
from sim_engine.targets.browser import BrowserTarget
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.declarative._created import match_call
from sim_engine.targets.plugin import PluginTarget

__all__ = ["IN_DOUBT_KIND", "in_doubt_lines", "keep_created", "record_unanswered"]

IN_DOUBT_KIND = "in doubt: "
"""Prefix of the ``created`` kinds of creations in doubt (``in doubt: create_post``)."""


def keep_created(
    target: Target,
    store: SqliteStore,
    secret: str | None,
    fresh: bool,
    restart: bool,
    journal: DispatchJournal | None = None,
) -> str:
    """Record what ``target`` creates in ``store``; save and return the run secret.

    Args:
        target: the run's target (a plugin wrapper's inner target counts).
        store: the run's state.
        secret: the run secret when it is fixed (in-process runs), else None for a new one.
        fresh: the run starts from nothing (no checkpoint to resume from): the secret
            is saved now; a resumed run's secret is its checkpoint's.
        restart: the run starts again from nothing (a resume before the first
            checkpoint): the resources recorded so far lose their owners, whose
            state is gone (cleanup reports them as staying).
        journal: the run's write-ahead journal, opened but not yet written to: the
            creations a killed run left in doubt there go to ``store`` first (a
            resume), then the target writes ahead each request that may create.

    Returns:
        the run secret to give the simulation (a resumed run's own replaces it).
    """
    inner = _declarative(target)
    if inner is not None:
        inner.created_log = store
        if journal is not None:
            if not fresh or restart:
                record_unanswered(store, journal.path, inner.api)
            inner.send_log = journal
    if restart:
        store.orphan_created()
    secret = secret or secrets.token_hex(16)
    if fresh:
        store.set_meta("secret", secret)
    return secret


def _declarative(target: Target) -> DeclarativeTarget | None:
    """The declarative target under ``target``'s wrappers (plugin actions, the browser
    tier: a browser run's API actions and page flows record through it), or None."""
    inner: Any = target
    for _ in range(4):
        if isinstance(inner, DeclarativeTarget):
            return inner
        if not isinstance(inner, (PluginTarget, BrowserTarget)):
            return None
        inner = inner.inner
    return None


def record_unanswered(store: SqliteStore, journal: Path, api: ApiSpec) -> list[Unanswered]:
    """Move the creations in doubt of the journal at ``journal`` into ``store``'s
    ``created`` table (idempotent: each is kept once, however often this runs).

    Each is kept under the kind ``in doubt: ACTION`` with ``data["in_doubt"]``
    (``{"method", "path"}``); one that named its resource (a ``PUT``) whose path a
    ``DELETE`` action of ``api`` fills gets that action as its delete handle, so
    cleanup can delete it (a 404 then says it was never made); the others have none.

    Returns:
        the creations in doubt found (oldest first).
    """
    found = read_unanswered(journal)
    for sent in found:
        handle: dict[str, Any] | None = None
        why = "sent with no answer: whether it was made, and its id, are unknown"
        if sent.named:
            deleter = match_call(api, "DELETE", sent.path)
            if deleter is not None and set(deleter[1]) == set(api.actions[deleter[0]].pick):
                picks = {name: item for name, (_, item) in deleter[1].items()}
                handle, why = {"action": deleter[0], "picks": picks}, ""
            else:
                why = f"sent with no answer, and no DELETE action of the api is {sent.path}"
        doubt = {"method": sent.method, "path": sent.path, "key": sent.key}
        data = {"action": sent.action, "sim_time": sent.sim_t, "item": {}, "delete": handle,
                "why": why, "in_doubt": doubt}  # fmt: skip
        key = f"{sent.user_id}@{sent.sim_t!r} {sent.method} {sent.path}"
        store.save_created(sent.user_id, IN_DOUBT_KIND + sent.action, key, data)
    return found


def in_doubt_lines(found: list[Unanswered]) -> list[str]:
    """One line per action of creations in doubt: ``3 create_post (POST /posts)``,
    with up to three of their paths."""
    paths: dict[str, Counter[str]] = {}
    for sent in found:
        paths.setdefault(sent.action, Counter())[f"{sent.method} {sent.path}"] += 1
    return [f"{seen.total()} {action} ({requests_text(seen)})" for action, seen in paths.items()]
