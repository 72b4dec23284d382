"""The run keeps, in ``state.db``, every resource it creates on the target (for cleanup).

:func:`keep_created` wires the run's declarative target to its state store: each
answer to a creating action is written at once (see
:mod:`sim_engine.targets.declarative._created`), and the run secret is saved
before anything is sent, so ``sim-engine cleanup`` can log the creators in even
after a crash before the first checkpoint.
"""

from __future__ import annotations

import secrets

from sim_engine.engine.store import SqliteStore
from sim_engine.model.records import Target
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.plugin import PluginTarget

__all__ = ["keep_created"]


def keep_created(
    target: Target, store: SqliteStore, secret: str | None, fresh: bool, restart: bool
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

    Returns:
        the run secret to give the simulation (a resumed run's own replaces it).
    """
    inner = target.inner if isinstance(target, PluginTarget) else target
    if isinstance(inner, DeclarativeTarget):
        inner.created_log = store
    if restart:
        store.orphan_created()
    secret = secret or secrets.token_hex(16)
    if fresh:
        store.set_meta("secret", secret)
    return secret
