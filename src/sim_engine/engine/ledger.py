"""The ledger of a run: its users, counters and records, and write-through to the store.

Every collaborator of the engine that creates, changes or removes a user, or
emits a record, goes through the one :class:`Ledger` it was given: users are
written through to the :class:`~sim_engine.model.records.Store` at every
event that must not be forgotten, and marked dirty for the next checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim_engine.engine.capabilities import Journal, MemoryKeeper, UserForgetter
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser
from sim_engine.model.records import Sink, Store

__all__ = ["Ledger"]


class Ledger:
    """Users by engine id, run counters, record emission and persistence.

    Args:
        personas: the compiled personas, by index.
        sinks: receivers of every record.
        store: where users are saved as they change (None: nowhere).
        forgetter: the target, when it keeps per-user state to drop (checked once).
        keeper: the target, when its per-user memory is saved with the user.
        journal: where dispatched actions are written ahead (None: nowhere).

    Attributes:
        users: the users by engine id.
        signed_up, actions, failed: run counters.
        dirty: ids of users changed since the last checkpoint.
    """

    def __init__(
        self,
        personas: list[CompiledPersona],
        sinks: Sequence[Sink],
        store: Store | None,
        forgetter: UserForgetter | None,
        keeper: MemoryKeeper | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.users: dict[int, SimUser] = {}
        self.signed_up = 0
        self.actions = 0
        self.failed = 0
        self.dirty: set[int] = set()
        self.store = store
        self._personas = personas
        self._sinks = list(sinks)
        self._forgetter = forgetter
        self.keeper = keeper
        self.journal = journal

    def emit(self, record: Any) -> None:
        """Hand a record to every sink."""
        for sink in self._sinks:
            sink.emit(record)

    def add(self, user: SimUser) -> None:
        """Admit a user to the run and save it."""
        self.users[user.user_id] = user
        self.saved(user)

    def saved(self, user: SimUser) -> None:
        """Write a user through to the store (an event that must not be forgotten)."""
        self.dirty.add(user.user_id)
        if self.store is not None:
            self.refresh(user)
            self.store.save_user(user)

    def touch(self, user: SimUser) -> None:
        """Mark a user changed: the next checkpoint saves it (its memory included)."""
        self.dirty.add(user.user_id)

    def refresh(self, user: SimUser) -> None:
        """Copy the target's memory of the user onto it, ready to be saved."""
        if self.keeper is not None:
            user.memory = self.keeper.export_memory(user.user_id)

    def remove(self, user: SimUser) -> None:
        """Take a user out of the run, the target's memory and the store."""
        self.users.pop(user.user_id, None)
        if self._forgetter is not None:
            self._forgetter.forget_user(user.user_id)
        if self.store is not None:
            self.store.remove_user(user.user_id)

    def persona_name(self, user: SimUser) -> str:
        """Return the name of the user's persona."""
        return self._personas[user.persona].name
