"""Declared seams of the engine: optional target capabilities, session hooks, binders.

A :class:`~sim_engine.model.records.Target` only has to ``send`` and
``aclose``. What else a target can do is declared here as small protocols and
checked once with ``isinstance`` when the engine is built, never looked up
with ``getattr`` on the hot path.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sim_engine.engine.clock import Clock
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest, Outcome

__all__ = [
    "ActionResolver",
    "Binder",
    "Creation",
    "CreationCleaner",
    "Journal",
    "MemoryKeeper",
    "Paced",
    "Planned",
    "Routine",
    "SessionAware",
    "SessionHook",
    "SessionPolicy",
    "SessionShape",
    "UserForgetter",
]


@runtime_checkable
class ActionResolver(Protocol):
    """A target that knows, per user, what is possible now (an ``api`` section's target)."""

    def resolve(self, action_name: str, user_id: int) -> str | None:
        """Return the action to send for ``action_name`` (itself or a fallback), or None."""
        ...

    def has(self, user_id: int, key: str) -> bool:
        """Return True when the user's memory ``key`` (``memory.x``, ``pool.y``) is non-empty."""
        ...


@runtime_checkable
class UserForgetter(Protocol):
    """A target that keeps per-user state and must drop it when a user leaves the run."""

    def forget_user(self, user_id: int) -> None:
        """Drop everything kept for ``user_id``."""
        ...


@runtime_checkable
class MemoryKeeper(Protocol):
    """A target whose per-user memory (token, ids, picks) is saved with the user."""

    def export_memory(self, user_id: int) -> dict[str, Any] | None:
        """Return the user's memory as JSON-ready data (None: nothing kept)."""
        ...

    def restore_memory(
        self, user_id: int, data: dict[str, Any], *, password: str | None = None
    ) -> None:
        """Take back a memory exported by :meth:`export_memory` (``password``: for renewals).

        Raises:
            ValueError: ``data`` is not an exported memory.
        """
        ...


@dataclass(frozen=True, slots=True)
class Creation:
    """A resource the run recorded as created by a user (``state.db``), with its delete handle.

    Attributes:
        kind: its kind (``own_posts``).
        item_id: its id as JSON text.
        action: the action that deletes it.
        handle: how to delete it: ``{"action": NAME, "picks": {name: item}}``.
    """

    kind: str
    item_id: str
    action: str
    handle: dict[str, Any]


@runtime_checkable
class CreationCleaner(Protocol):
    """A target that records what users create and deletes it by its delete handle: a
    churned user's clean-up deletes what it created before its account (as ``sim-engine
    cleanup`` would, but while the user can still log in)."""

    def creations(self, user_id: int) -> list[Creation]:
        """Return what ``user_id`` created that must go before its account, newest first
        (children before parents): those with a delete handle, not in doubt, of no kind
        ``api.cleanup.with_account`` says goes with the account."""
        ...

    async def delete_creation(self, request: ActionRequest, creation: Creation) -> Outcome:
        """Send ``creation``'s delete handle as ``request`` (its action, the creator's
        token); once deleted or gone (2xx, 404, 410) it is no longer recorded."""
        ...


class Journal(Protocol):
    """A write-ahead record of dispatched actions (crash safety; see ``engine/journal.py``)."""

    def dispatched(self, user_id: int, sim_t: float, next_s: float, left: int) -> None:
        """Record, before its request goes out, that ``user_id`` acts at ``sim_t``, its
        next step due at ``next_s`` (simulated epoch seconds), ``left`` actions left."""
        ...

    def reset(self) -> None:
        """Forget what was recorded (a checkpoint has saved it)."""
        ...


@runtime_checkable
class SessionAware(Protocol):
    """A target that keeps per-session state (a listing's page) and must hear a session end."""

    def end_session(self, user_id: int) -> None:
        """The user's session is over."""
        ...


@runtime_checkable
class Paced(Protocol):
    """A target whose actions span simulated time of their own: a browser flow's steps,
    with the acting user's think times between them (``targets/browser``).

    The engine calls :meth:`pace` once, when it is built; the target then reports the
    simulated seconds an action spanned as ``Outcome.sim_elapsed_s``.
    """

    def pace(self, clock: Clock, think_s: Callable[[int, random.Random], float]) -> None:
        """Take the run's clock and ``think_s(user_id, rng)``: a think time (simulated
        seconds) drawn with ``rng`` from the persona of user ``user_id``, as between
        its actions (0 for a user no longer in the run)."""
        ...


@runtime_checkable
class SessionHook(Protocol):
    """Told when a user's session starts and ends (plugins, seed 000's SimulationPlugin)."""

    def on_session_start(self, user: SimUser, sim_t: float) -> None:
        """A session of ``user`` starts at ``sim_t`` (simulated epoch seconds)."""
        ...

    def on_session_end(self, user: SimUser, sim_t: float) -> None:
        """The session of ``user`` that the hook saw start ends at ``sim_t``."""
        ...


@dataclass(slots=True)  # read-only by convention: frozen costs 8x to build
class Planned:
    """What a binder made of one step of a session.

    Attributes:
        request: the request to send, or None when nothing is possible now.
        think_s: a workflow step's own think time (simulated seconds), or None
            for the persona's.
        drew: True when the step consumed one of the session's persona draws
            (workflow steps after the first do not).
        more: True when workflow steps are left for the user.
    """

    request: ActionRequest | None
    think_s: float | None = None
    drew: bool = True
    more: bool = False


class Binder(Protocol):
    """Turns a planned step into a request from the user's memory, and answers into memory."""

    def plan(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        sim_t: float,
        rng: random.Random,
    ) -> Planned:
        """Plan the user's next step in its session at ``sim_t`` in routine ``state``."""
        ...

    def remember(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> bool:
        """Feed an answer back into memory; True when it must be saved at once."""
        ...

    def drop(self, user_id: int) -> None:
        """The user's session is over: forget its unfinished workflow steps."""
        ...


class Routine(Protocol):
    """When users act: the routine state at a time, and when the next session starts."""

    def state(self, persona: CompiledPersona, sim_t: float, offset_s: float) -> str:
        """Return the routine state (``sleeping`` never acts) at ``sim_t`` (UTC offset given)."""
        ...

    def next_start(
        self,
        persona: CompiledPersona,
        user: SimUser,
        sim_t: float,
        offset_s: float,
        rng: random.Random,
        ended: bool = False,
    ) -> float:
        """Return the user's next session start after ``sim_t`` (``inf``: none);
        ``ended``: a session of the user just ended at ``sim_t``."""
        ...


class SessionShape(Protocol):
    """How long sessions are, and the think time between their actions."""

    def length(self, persona: CompiledPersona, user: SimUser, rng: random.Random) -> int:
        """Return the number of actions of a session that starts now."""
        ...

    def think_s(
        self, persona: CompiledPersona, rng: random.Random, step_s: float | None = None
    ) -> float:
        """Return a think time in simulated seconds (``step_s``: a workflow step's own)."""
        ...


class SessionPolicy(Routine, SessionShape, Protocol):
    """Both halves of how sessions are planned (the persona model, or a load test's)."""
