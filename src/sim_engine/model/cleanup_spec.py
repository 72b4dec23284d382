"""The ``api.cleanup`` section: how ``sim-engine cleanup`` deletes what a run created.

Without the section, cleanup reads the description as it stands: an item a
``POST`` action's answer *is* (an ``extract`` rule without ``[*]``) is a
resource the run created, and a ``DELETE`` action with ``forget`` of an item
picked from a list of the same kind deletes it. The section says it where the
actions alone cannot::

    api:
      cleanup:
        delete: {memory.own_comments: remove_comment}   # this list's items: this action
        with_account: [memory.notes]                    # gone with their owner's account

``delete`` maps a memory or pool key to the action that deletes one of its
items: a ``DELETE`` action with ``forget`` (checked when the scenario is
validated); the item goes in as the one it forgets, its other picks come from
what the creating action picked. ``with_account``
lists keys whose items the API deletes together with their owner's account
(``delete_account``): cleanup need not delete them one by one, and they do not
stay when the owner's account goes (during the run or at cleanup).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict

__all__ = ["CleanupSpec", "check_cleanup"]


class CleanupSpec(BaseModel):
    """How to delete what a run created (see the module docstring).

    Attributes:
        delete: ``memory.KEY`` / ``pool.KEY`` -> the action that deletes one of its items.
        with_account: keys whose items the API deletes with their owner's account.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delete: dict[str, str] = {}
    with_account: tuple[str, ...] = ()


class _Deleter(Protocol):
    """The fields of an action :func:`check_cleanup` reads."""

    @property
    def method(self) -> str: ...  # pragma: no cover - a protocol

    @property
    def forget(self) -> str | None: ...  # pragma: no cover - a protocol


def check_cleanup(spec: CleanupSpec, actions: Mapping[str, _Deleter], keys: set[str]) -> None:
    """Check ``api.cleanup`` against the section's actions and declared keys.

    Raises:
        ValueError: a key not declared, an unknown action, or an action that is not
            a ``DELETE`` with ``forget`` (the message names ``cleanup.delete.KEY``...).
    """
    for key, name in spec.delete.items():
        where = f"cleanup.delete.{key}"
        if key not in keys:
            raise ValueError(f"{where}: unknown memory {key!r} (declare it)")
        action = actions.get(name)
        if action is None:
            raise ValueError(f"{where}: unknown action {name!r}")
        if action.method != "DELETE" or action.forget is None:
            raise ValueError(
                f"{where}: {name!r} must be a DELETE action with forget of the item it deletes"
            )
    for i, key in enumerate(spec.with_account):
        if key not in keys:
            raise ValueError(f"cleanup.with_account.{i}: unknown memory {key!r} (declare it)")
