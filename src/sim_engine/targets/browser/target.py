"""The browser tier as a target: a share of users act through page flows in Chromium.

:class:`BrowserTarget` wraps the run's target (the declarative target of the ``api``
section, or the demo API's built-in description). A user is a browser user when a hash
of the run seed and its id falls under ``browser.share``; a browser user's action that
``browser.actions`` maps to flows runs one of them (drawn by weight) in the user's own
browser context, every other action (sign-up, log-in, actions without a flow, every
action of the other users) goes to the wrapped target unchanged. So routines,
lifecycles and sessions drive browsers exactly as they drive API calls. The persona's
think times fall between flows, and -- once the engine paces the target
(:meth:`BrowserTarget.pace`) -- between the steps of a flow too
(:mod:`~sim_engine.targets.browser.pacing`).

A browser user's context opens at its first flow of a session (from the cookies and
localStorage it saved, its ``storage_state``) and closes when the session ends, saving
them again; :meth:`BrowserTarget.export_memory` adds them (under ``"browser"``) to what
the wrapped target saves in ``state.db``, so they survive ``--resume``. Without the
``session_cookie`` the ``login`` flow runs first, with the user's identity from its
sign-up (the password, never saved, comes back through ``restore_memory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sim_engine.engine.capabilities import ActionResolver, MemoryKeeper, SessionAware, UserForgetter
from sim_engine.engine.clock import Clock
from sim_engine.model.browser_spec import BrowserSpec, StepSpec
from sim_engine.model.records import ActionRequest, Outcome, PageStep, Target
from sim_engine.model.templates import ContentPool
from sim_engine.targets.browser.flows import FlowEnv, FlowResult, PageWatch, run_flow
from sim_engine.targets.browser.pacing import StepPacer, ThinkSource
from sim_engine.targets.browser.pool import BrowserPool, BrowserUnavailableError
from sim_engine.targets.browser.shots import Screenshots
from sim_engine.targets.forwarding import ForwardsCreations

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

__all__ = ["BrowserTarget", "uses_browser"]

_IDENTITY = ("username", "email", "name")


@runtime_checkable
class AnswerAdopter(Protocol):
    """A wrapped target that keeps an action's answer it did not fetch itself
    (:meth:`~sim_engine.targets.declarative.DeclarativeTarget.adopt_answer`)."""

    def adopt_answer(self, request: ActionRequest, answer: dict[str, Any]) -> Outcome:
        """Keep ``answer`` as the API's answer to ``request``'s action."""
        ...


def uses_browser(seed: int, user_id: int, share: float) -> bool:
    """True when user ``user_id`` of a run seeded ``seed`` is a browser user (a stable
    hash of both, uniform in [0, 1), below ``share``)."""
    digest = hashlib.blake2b(f"browser|{seed}|{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


@dataclass
class _User:
    """A browser user's state: identity, saved storage, extracted values, open page."""

    identity: dict[str, Any] = field(default_factory=dict)
    storage: dict[str, Any] | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    context: BrowserContext | None = None
    page: Page | None = None
    watch: PageWatch | None = None
    rng: random.Random | None = None
    used: int = 0


class BrowserTarget(ForwardsCreations):
    """The run's target with a browser tier (see the module docstring).

    Args:
        inner: the wrapped target (API calls).
        spec: the ``browser`` section.
        base_url: where the pages are (``spec.base_url`` wins when set).
        pool: the browser and its bounded contexts.
        seed: the run seed (tier choice, flow draws, generated values).
        registry: plugin generators for ``fill`` values.
        screenshots: where failed steps' screenshots go (None: none are taken).

    Attributes:
        inner: the wrapped target.
        flows_run: flows run so far; sessions: browser sessions (contexts) opened.
        evicted: contexts closed between two flows of a session to free a slot for
            another user (all ``max_contexts`` taken).
    """

    def __init__(
        self,
        inner: Target,
        spec: BrowserSpec,
        base_url: str,
        pool: BrowserPool,
        seed: int = 0,
        registry: Any = None,
        screenshots: Screenshots | None = None,
    ) -> None:
        self.inner = inner
        self.screenshots = screenshots
        self.spec = spec
        self.base_url = spec.base_url or base_url
        self.pool = pool
        self._seed = seed
        self._rng = random.Random(f"sim-engine:browser:{seed}")
        self._content = ContentPool(seed, registry=registry)
        self._users: dict[int, _User] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.flows_run = 0
        self.sessions = 0
        self.evicted = 0
        self._tick = 0
        self._idle = asyncio.Event()
        self._resolver = inner if isinstance(inner, ActionResolver) else None
        self._forgetter = inner if isinstance(inner, UserForgetter) else None
        self._keeper = inner if isinstance(inner, MemoryKeeper) else None
        self._aware = inner if isinstance(inner, SessionAware) else None
        self._clock: Clock | None = None
        self._think: ThinkSource | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def is_browser_user(self, user_id: int) -> bool:
        """True when the user acts through the browser (stable for the run)."""
        return uses_browser(self._seed, user_id, self.spec.share)

    def pace(self, clock: Clock, think_s: ThinkSource) -> None:
        """Think times between a flow's steps from now on: ``think_s(user_id, rng)``
        simulated seconds, waited on ``clock`` when it follows the wall clock
        (:class:`~sim_engine.engine.capabilities.Paced`; the engine calls it)."""
        self._clock, self._think = clock, think_s

    # -- capabilities passed through -------------------------------------------------------

    def resolve(self, action_name: str, user_id: int) -> str | None:
        """A browser user's flow action is always possible; the rest is the inner's call."""
        if action_name in self.spec.actions and self.is_browser_user(user_id):
            return action_name
        return (
            action_name if self._resolver is None else self._resolver.resolve(action_name, user_id)
        )

    def has(self, user_id: int, key: str) -> bool:
        """The wrapped target's answer (False without one)."""
        return self._resolver.has(user_id, key) if self._resolver is not None else False

    def forget_user(self, user_id: int) -> None:
        """Drop the user here (its context is closed) and in the wrapped target."""
        user = self._users.pop(user_id, None)
        if user is not None and user.context is not None:
            self._later(self.pool.close(user.context))
        if self._forgetter is not None:
            self._forgetter.forget_user(user_id)

    def end_session(self, user_id: int) -> None:
        """The session is over: save the user's storage and close its context (soon)."""
        if self._aware is not None:
            self._aware.end_session(user_id)
        user = self._users.get(user_id)
        if user is not None and user.context is not None:
            self._later(self._close(user))

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def settle(self) -> None:
        """Wait until the contexts of ended sessions are saved and closed."""
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    def export_memory(self, user_id: int) -> dict[str, Any] | None:
        """The wrapped target's memory plus, for a browser user, ``"browser"``: its
        identity (never the password), saved ``storage_state`` and extracted values."""
        data = self._keeper.export_memory(user_id) if self._keeper is not None else None
        user = self._users.get(user_id)
        if user is not None and (user.identity or user.storage or user.memory):
            identity = {k: v for k, v in user.identity.items() if k in _IDENTITY}
            mine = {"identity": identity, "storage": user.storage, "memory": dict(user.memory)}
            data = {**(data or {}), "browser": mine}
        return data

    def restore_memory(
        self, user_id: int, data: dict[str, Any], *, password: str | None = None
    ) -> None:
        """Take back :meth:`export_memory`'s dict (``"browser"`` here, the rest to the
        wrapped target).

        Raises:
            ValueError: ``data`` or its ``"browser"`` part is not an exported memory.
        """
        if not isinstance(data, dict):
            raise ValueError("a saved memory must be an object")
        mine = data.get("browser")
        if mine is not None:
            if not isinstance(mine, dict) or not isinstance(mine.get("identity"), dict):
                raise ValueError("a saved browser memory must hold an identity object")
            user = self._users.setdefault(user_id, _User())
            user.identity = {**mine["identity"], "password": password}
            user.storage = mine.get("storage")
            user.memory = dict(mine.get("memory") or {})
        rest = {k: v for k, v in data.items() if k != "browser"}
        if rest and self._keeper is not None:
            self._keeper.restore_memory(user_id, rest, password=password)

    # -- Target ----------------------------------------------------------------------------

    async def send(self, request: ActionRequest) -> Outcome:
        """Run a flow for a browser user's mapped action, else send to the wrapped target.
        Never raises for what the pages do."""
        payload = request.payload if request.action in ("sign_up", "log_in") else None
        if payload and self.is_browser_user(request.user_id):
            user = self._users.setdefault(request.user_id, _User())
            user.identity.update(
                {k: v for k, v in payload.items() if k in (*_IDENTITY, "password")}
            )
        weights = self.spec.actions.get(request.action)
        if weights is None or not self.is_browser_user(request.user_id):
            return await self.inner.send(request)
        names = list(weights)
        flow = self._rng.choices(names, [weights[n] for n in names])[0]
        user = self._users.setdefault(request.user_id, _User())
        async with user.lock:
            try:
                return await self._flow(user, request, flow)
            finally:
                self._tick += 1
                user.used = self._tick
                self._idle.set()  # a user waiting for a context may take this one

    async def _flow(self, user: _User, request: ActionRequest, flow: str) -> Outcome:
        try:
            page, watch = await self._page(user, request)
        except BrowserUnavailableError as exc:
            return Outcome(0, False, 0.0, error=str(exc), endpoint=f"FLOW {flow}")
        steps: list[PageStep] = []
        result = FlowResult()
        pacer = self._pacer(user, request)
        account = request.action in ("sign_up", "log_in")  # its flow signs in by itself
        if self.spec.login is not None and not account and await self._signed_out(user):
            login = self.spec.flows[self.spec.login]
            env = self._env(user, pacer, self.spec.login, request.user_id)
            result = await run_flow(page, watch, login, env)
            steps += result.steps
        post_id = None
        if result.ok:
            env = self._env(user, pacer, flow, request.user_id)
            result = await run_flow(page, watch, self.spec.flows[flow], env)
            steps += result.steps
            if result.ok and env.answer:
                post_id = self._adopt(request, env.answer, result, steps)
        self.flows_run += 1
        await self._save(user)
        last = steps[-1] if steps else None
        return Outcome(
            last.status if last is not None else 200,
            result.ok,
            sum(s.latency_ms for s in steps),
            error=result.error,
            post_id=post_id,
            endpoint=f"FLOW {flow}",
            pages=tuple(steps),
            sim_elapsed_s=pacer.offset_s,
        )

    def _adopt(
        self,
        request: ActionRequest,
        answer: dict[str, Any],
        result: FlowResult,
        steps: list[PageStep],
    ) -> Any:
        """Give the wrapped target the flow's ``answer.*`` values as the action's API
        answer (its memory, the run's record of what it created); return the id it
        names. A target that cannot take it, or an answer it refuses, fails the flow:
        the last step's record says why."""
        if isinstance(self.inner, AnswerAdopter):
            adopted = self.inner.adopt_answer(request, answer)
            error = None if adopted.ok else f"answer {answer}: {adopted.error}"
        else:
            adopted, error = None, "answer: the target keeps no memory of answers"
        if error is not None and steps:
            result.ok, result.error = False, error[:300]
            steps[-1] = dataclasses.replace(steps[-1], ok=False, error=result.error)
        return adopted.post_id if adopted is not None else None

    def _pacer(self, user: _User, request: ActionRequest) -> StepPacer:
        if user.rng is None:
            user.rng = random.Random(f"sim-engine:browser-think:{self._seed}:{request.user_id}")
        context = user.context

        async def stamp(iso: str) -> None:
            if context is not None:
                await context.set_extra_http_headers({**self.pool.headers, "X-Sim-Time": iso})

        return StepPacer(
            request.user_id,
            request.sim_time,
            request.sim_time_iso,
            self._think,
            user.rng,
            self._clock,
            stamp,
        )

    def _env(self, user: _User, pacer: StepPacer, flow: str, user_id: int) -> FlowEnv:
        fields = {k: user.identity.get(k) for k in (*_IDENTITY, "password")}
        shots = self.screenshots

        async def shoot(page: Page, index: int, step: StepSpec) -> str | None:
            assert shots is not None
            return await shots.take(page, user_id, flow, index, step.kind)

        return FlowEnv(
            self.base_url,
            {"user": fields},
            user.memory,
            self._rng,
            self._content,
            self.spec.step_timeout_s * 1000.0,
            pacer,
            shoot=None if shots is None else shoot,
        )

    async def _page(self, user: _User, request: ActionRequest) -> tuple[Page, PageWatch]:
        if user.context is None or user.page is None or user.watch is None:
            await self._make_room(user)
            user.context = await self.pool.open(user.storage)
            user.page = await user.context.new_page()
            user.watch = PageWatch(user.page)
            self.sessions += 1
        await user.context.set_extra_http_headers(
            {**self.pool.headers, "X-Sim-Time": request.sim_time_iso}
        )
        return user.page, user.watch

    async def _make_room(self, user: _User) -> None:
        """Wait until a context can open: while every slot is taken, close the context
        of the user idle longest (between two actions of its session: its storage is
        saved, its next flow opens it again), or wait for a flow to end. Without this
        a user waiting for a slot would wait for sessions that only the engine's
        event loop ends -- for ever at the end of a run."""
        while self.pool.full:
            idle = [
                u
                for u in self._users.values()
                if u is not user and u.context is not None and not u.lock.locked()
            ]
            if idle:
                await self._close(min(idle, key=lambda u: u.used))
                self.evicted += 1
                continue
            self._idle.clear()
            await self._idle.wait()

    async def _signed_out(self, user: _User) -> bool:
        name = self.spec.session_cookie
        if name is None or user.context is None:
            return False
        cookies = await user.context.cookies(self.base_url)
        return not any(c.get("name") == name for c in cookies)

    async def _save(self, user: _User) -> None:
        if user.context is not None:
            with contextlib.suppress(Exception):  # a broken context: keep the last state
                user.storage = dict(await user.context.storage_state())

    async def _close(self, user: _User) -> None:
        async with user.lock:
            context, user.context, user.page, user.watch = user.context, None, None, None
            if context is not None:
                with contextlib.suppress(Exception):
                    user.storage = dict(await context.storage_state())
                await self.pool.close(context)

    async def aclose(self) -> None:
        """Save and close every open context, close the browser, then the wrapped target."""
        for user in list(self._users.values()):
            if user.context is not None:
                await self._close(user)
        await self.settle()
        await self.pool.aclose()
        await self.inner.aclose()
