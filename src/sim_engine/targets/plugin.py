"""Plugins at run time, and the ``sim_engine.plugins`` namespace plugin authors import.

:class:`PluginContext` (what a plugin action gets), :class:`PluginTarget` (runs
plugin actions, passes every other action to the scenario's target),
:func:`plugin_runtime` (what the runner and the load test call) and
:func:`make_target` (a ``target.binding`` registered by a plugin) need a
:class:`~sim_engine.targets.transport.Transport`, so they live here, above
:mod:`sim_engine.api.plugins` (the decorators and the registry), whose public names
this module re-exports: ``from sim_engine import plugins`` gives this module, so
``plugins.action``, ``plugins.PluginContext`` and ``plugins.load_plugins`` all work.

Which registry a run uses: the one passed in; else the one the scenario was
validated with (``scenario.registry``, set by ``load_scenario_with_plugins``);
else a new one built from ``scenario.plugins`` (see :func:`registry_for`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sim_engine.api.plugins import (
    ENTRY_POINT_GROUP,
    RESERVED_ACTIONS,
    ActionFunc,
    PluginAction,
    PluginError,
    PluginRegistry,
    action,
    generator,
    hook,
    load_entry_points,
    load_plugins,
    load_scenario_with_plugins,
    on_session_end,
    on_session_start,
    persona,
    target,
    validate_with_plugins,
    workflow,
)
from sim_engine.api.plugins.registry import one_line
from sim_engine.engine.capabilities import ActionResolver, MemoryKeeper, UserForgetter
from sim_engine.model.builtin import social_api
from sim_engine.model.records import ActionRequest, Outcome, Target
from sim_engine.targets.forwarding import ForwardsCreations

if TYPE_CHECKING:
    from sim_engine.model.population import SimUser
    from sim_engine.model.scenario import Scenario
    from sim_engine.targets.transport import Response, Transport

__all__ = [
    "ENTRY_POINT_GROUP",
    "NOT_POSSIBLE",
    "RESERVED_ACTIONS",
    "ActionFunc",
    "AuthedCaller",
    "PluginAction",
    "PluginContext",
    "PluginError",
    "PluginRegistry",
    "PluginTarget",
    "PluginView",
    "action",
    "generator",
    "hook",
    "load_entry_points",
    "load_plugins",
    "load_scenario_with_plugins",
    "make_target",
    "on_session_end",
    "on_session_start",
    "persona",
    "plugin_runtime",
    "registry_for",
    "target",
    "validate_with_plugins",
    "workflow",
]

_OUTCOME_FIELDS = frozenset(f.name for f in dataclasses.fields(Outcome))


NOT_POSSIBLE: Any = object()
"""What a plugin action returns when it finds it cannot act now: nothing is recorded
and the user thinks and carries on (declare ``possible=`` to let the engine take
another action instead)."""


@runtime_checkable
class AuthedCaller(Protocol):
    """A target that sends requests as a user under the scenario's auth (the declarative
    target): what :meth:`PluginContext.call` goes through when the run has one."""

    async def call_as(
        self,
        request: ActionRequest,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request as ``request``'s user, with its credentials."""
        ...

    def request_headers(self, request: ActionRequest) -> dict[str, str]:
        """``X-Sim-Time`` and the user's credentials under the scenario's auth."""
        ...


@dataclass(frozen=True)
class PluginView:
    """What a plugin action's guard (``possible=``) sees.

    Attributes:
        user_id: the engine's id for the user.
        user: the :class:`~sim_engine.model.population.SimUser`, None before its
            first session.
        memory: the user's memory (see :attr:`PluginContext.memory`), or None.
        state: the user's plugin state (see :attr:`PluginContext.state`); read it only.
    """

    user_id: int
    user: SimUser | None
    memory: dict[str, list[dict[str, Any]]] | None
    state: dict[str, Any]


@dataclass
class PluginContext:
    """What a plugin action gets.

    Attributes:
        action: the action's name.
        request: the engine's request (user id, simulated time, token).
        user: the user (a :class:`~sim_engine.model.population.SimUser`: ``name``,
            ``email``, ``username``, ``remote_id``, ``tag``...), or None when
            the target has not seen its session start. Read-only, please.
        transport: the run's transport (rate limits, retries, breakers,
            synthetic headers); prefer :meth:`call`, which adds the user's credentials.
        memory: in an ``api`` scenario, a copy of the user's memory lists:
            ``{"memory.KEY": [item, ...]}``, oldest first, each item a dict of the
            fields its ``extract`` rule kept (``{"id": 7, "author": "ann"}``); None
            for a user the target does not know yet, or without an ``api`` target.
            Changing it changes nothing.
        rng: a generator for this call, seeded from the run seed, the user, the
            action and the simulated time (reproducible).
        state: the user's plugin state: a dict the plugin's actions may read and
            change, shared by every plugin action of the run for this user, saved
            with the user at each checkpoint and given back on ``run --resume``
            (keep it JSON-ready: strings, numbers, booleans, None, lists, dicts).
    """

    action: str
    request: ActionRequest
    user: SimUser | None
    transport: Transport
    memory: Any
    rng: random.Random
    state: dict[str, Any] = field(default_factory=dict)
    caller: AuthedCaller | None = field(default=None, repr=False)

    @property
    def user_id(self) -> int:
        """The engine's id for the user."""
        return self.request.user_id

    @property
    def token(self) -> str | None:
        """The user's auth token (None before log-in)."""
        return self.request.token

    @property
    def sim_time(self) -> float:
        """Simulated epoch seconds of the action."""
        return self.request.sim_time

    @property
    def sim_time_iso(self) -> str:
        """The simulated time, ISO 8601 with the user's local offset."""
        return self.request.sim_time_iso

    def auth_headers(self) -> dict[str, str]:
        """``X-Sim-Time`` and the user's credentials as the scenario's ``api.auth`` sends
        them (``Bearer``, another prefix, ``Token``, HTTP Basic, an API key header, or
        none); without an ``api`` target, ``Authorization: Bearer TOKEN`` when there is
        a token."""
        if self.caller is not None:
            return self.caller.request_headers(self.request)
        headers = {"X-Sim-Time": self.sim_time_iso}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request as the user through the run's transport, with
        :meth:`auth_headers` (``headers`` added last, and win). In an ``api`` scenario
        the token is renewed as for any action (expired, or on a 401: then the request
        is sent once more).

        Returns:
            a :class:`~sim_engine.targets.transport.Response`: ``status`` (int, 0 when
            no answer came), ``body`` (bytes: ``json.loads(resp.body)`` for JSON),
            ``latency_ms`` (wall milliseconds), ``error`` (why status is 0),
            ``skipped`` (not sent: circuit open), ``retries``, ``headers`` (back-off
            hints). Never raises for network trouble.
        """
        if self.caller is not None:
            return await self.caller.call_as(self.request, method, path, json, headers)
        merged = {**self.auth_headers(), **(headers or {})}
        return await self.transport.request(method, path, json, merged)


class PluginTarget(ForwardsCreations):
    """Runs plugin actions; passes every other action to the wrapped target.

    Also a session hook (pass it in the simulation's ``hooks``): it learns each
    user when its session starts, to give plugin actions the user's identity.
    Attributes it lacks (``has``, ``forget_user``, ``transport``...) are the
    wrapped target's.

    Args:
        inner: the scenario's target (social API or declarative).
        transport: the run's transport, for :attr:`PluginContext.transport`.
        registry: where plugin actions are looked up.
        seed: the run seed (for :attr:`PluginContext.rng`).
    """

    def __init__(
        self,
        inner: Target,
        transport: Transport,
        registry: PluginRegistry,
        seed: int = 0,
    ) -> None:
        self.inner = inner
        self._transport = transport
        self._registry = registry
        self._seed = seed
        self._users: dict[int, SimUser] = {}
        self._states: dict[int, dict[str, Any]] = {}  # user -> plugin state
        # the wrapped target's optional capabilities, checked once
        self._resolver = inner if isinstance(inner, ActionResolver) else None
        self._forgetter = inner if isinstance(inner, UserForgetter) else None
        self._keeper = inner if isinstance(inner, MemoryKeeper) else None
        self._caller = inner if isinstance(inner, AuthedCaller) else None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- session hook ---------------------------------------------------------------------

    def on_session_start(self, user: SimUser, sim_t: float) -> None:
        """Remember the user (its identity goes to plugin actions)."""
        self._users[user.user_id] = user

    def on_session_end(self, user: SimUser, sim_t: float) -> None:
        """Nothing: the user is kept until :meth:`forget_user`."""

    def forget_user(self, user_id: int) -> None:
        """Forget a user (deleted from the target); the wrapped target forgets it too."""
        self._users.pop(user_id, None)
        self._states.pop(user_id, None)
        if self._forgetter is not None:
            self._forgetter.forget_user(user_id)

    # -- saving (MemoryKeeper) ------------------------------------------------------------

    def export_memory(self, user_id: int) -> dict[str, Any] | None:
        """Return what the wrapped target keeps for the user (its own
        ``export_memory``) plus the user's plugin state under ``"plugins"`` (when not
        empty), to save with the user; None when there is nothing."""
        data = self._keeper.export_memory(user_id) if self._keeper is not None else None
        state = self._states.get(user_id)
        if state:
            data = {**(data or {}), "plugins": json.loads(json.dumps(state))}
        return data

    def restore_memory(
        self, user_id: int, data: dict[str, Any], *, password: str | None = None
    ) -> None:
        """Take back what :meth:`export_memory` returned: the plugin state, and the rest
        to the wrapped target.

        Raises:
            ValueError: ``data`` (or its ``"plugins"`` part) is not an exported memory.
        """
        if not isinstance(data, dict):
            raise ValueError("a saved memory must be an object")
        rest = {k: v for k, v in data.items() if k != "plugins"}
        state = data.get("plugins")
        if state is not None:
            if not isinstance(state, dict):
                raise ValueError("a saved plugin state must be an object")
            self._states[user_id] = dict(state)
        if rest and self._keeper is not None:
            self._keeper.restore_memory(user_id, rest, password=password)

    # -- Target ---------------------------------------------------------------------------

    def resolve(self, name: str, user_id: int) -> str | None:
        """Return the action to take for ``name`` now, or None when nothing is possible.

        A plugin action is possible when it has no guard or its guard says so; else its
        ``fallback`` is resolved in its place (never twice the same). Other names are
        the wrapped target's to resolve.
        """
        tried: set[str] = set()
        current: str | None = name
        while current is not None and current not in tried:
            tried.add(current)
            spec = self._registry.actions.get(current)
            if spec is None:
                if self._resolver is None:
                    return current
                return self._resolver.resolve(current, user_id)
            if spec.possible is None or spec.possible(self._view(user_id)):
                return current
            current = spec.fallback
        return None

    def _view(self, user_id: int) -> PluginView:
        state = self._states.setdefault(user_id, {})
        return PluginView(user_id, self._users.get(user_id), self._memory(user_id), state)

    async def send(self, request: ActionRequest) -> Outcome:
        """Run a plugin action, or send the request to the wrapped target. Never raises."""
        spec = self._registry.actions.get(request.action)
        if spec is None:
            return await self.inner.send(request)
        ctx = PluginContext(
            action=request.action,
            request=request,
            user=self._users.get(request.user_id),
            transport=self._transport,
            memory=self._memory(request.user_id),
            rng=random.Random(_mix(self._seed, request.user_id, request.action, request.sim_time)),
            state=self._states.setdefault(request.user_id, {}),
            caller=self._caller,
        )
        started = time.perf_counter()
        try:
            result = await spec.func(ctx)
        except Exception as exc:  # a plugin's bug is a failed action, not a crashed run
            latency = (time.perf_counter() - started) * 1000.0
            error = f"plugin action {spec.name} raised {one_line(exc)}"[:300]
            return Outcome(0, False, latency, error=error, endpoint=spec.endpoint)
        latency = (time.perf_counter() - started) * 1000.0
        return _to_outcome(spec, result, latency)

    async def aclose(self) -> None:
        """Close the wrapped target."""
        await self.inner.aclose()

    def _memory(self, user_id: int) -> Any:
        memory = getattr(self.inner, "memory", None)
        if memory is None:
            return None
        return memory(user_id) if callable(memory) else None


def _mix(*parts: Any) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _to_outcome(spec: PluginAction, result: Any, latency_ms: float) -> Outcome:
    if result is NOT_POSSIBLE:  # nothing done: ok and skipped, which is not recorded
        return Outcome(0, True, latency_ms, error="not possible", endpoint=spec.endpoint,
                       skipped=True)  # fmt: skip
    if result is None:
        return Outcome(200, True, latency_ms, endpoint=spec.endpoint)
    if isinstance(result, Outcome):
        if result.endpoint is None:
            return dataclasses.replace(result, endpoint=spec.endpoint)
        return result
    if isinstance(result, Mapping):
        unknown = sorted(str(k) for k in result if k not in _OUTCOME_FIELDS)
        if unknown:
            error = f"plugin action {spec.name} returned unknown fields {', '.join(unknown)}"
            return Outcome(0, False, latency_ms, error=error, endpoint=spec.endpoint)
        fields = dict(result)
        status = int(fields.pop("status", 200))
        ok = bool(fields.pop("ok", 200 <= status < 400))
        latency = float(fields.pop("latency_ms", latency_ms))
        fields.setdefault("endpoint", spec.endpoint)
        try:
            return Outcome(status, ok, latency, **fields)
        except TypeError as exc:
            error = f"plugin action {spec.name} returned a bad outcome: {exc}"
            return Outcome(0, False, latency_ms, error=error, endpoint=spec.endpoint)
    error = f"plugin action {spec.name} returned {type(result).__name__}, not Outcome or dict"
    return Outcome(0, False, latency_ms, error=error, endpoint=spec.endpoint)


def registry_for(scenario: Scenario, registry: PluginRegistry | None = None) -> PluginRegistry:
    """The registry a run of ``scenario`` uses.

    ``registry`` when given; else the one the scenario was validated with
    (``scenario.registry``); else a new one built from ``scenario.plugins`` and
    the entry points.

    Raises:
        PluginError: a plugin module or entry point failed to load.
    """
    if registry is not None:
        return registry
    if isinstance(scenario.registry, PluginRegistry):
        return scenario.registry
    return load_plugins(scenario.plugins)


def plugin_runtime(
    scenario: Scenario,
    inner: Target,
    transport: Transport,
    registry: PluginRegistry | None = None,
) -> tuple[Target, list[Any]]:
    """Set plugins up for a run: the target to use and the session hooks to pass.

    Args:
        scenario: the validated scenario.
        inner: the scenario's own target (social API, declarative ``api``, plugin binding).
        transport: the run's transport (given to plugin actions).
        registry: the plugins (default: :func:`registry_for` the scenario).

    Returns:
        With plugin actions registered, ``inner`` wrapped in a :class:`PluginTarget`
        (itself the first hook) and the hooks; otherwise ``inner`` as is and the hooks.

    Raises:
        PluginError: a plugin module or entry point failed to load; a plugin action's
            ``fallback`` names no action of the scenario or the plugins.
    """
    registry = registry_for(scenario, registry)
    hooks = list(registry.hooks)
    if not registry.actions:
        return inner, hooks
    api = scenario.api if scenario.api is not None else social_api()
    for spec in registry.actions.values():
        if spec.fallback is not None and spec.fallback not in {*registry.actions, *api.actions}:
            raise PluginError(f"action {spec.name!r}: fallback {spec.fallback!r} is no action")
    wrapped = PluginTarget(inner, transport, registry, seed=scenario.seed)
    return wrapped, [wrapped, *hooks]


def make_target(
    name: str,
    transport: Transport,
    scenario: Scenario,
    registry: PluginRegistry | None = None,
) -> Target:
    """Build the target a plugin registered under ``name`` (``target.binding``).

    Args:
        name: the ``@plugins.target`` name.
        transport: the run's transport.
        scenario: the scenario (given to the factory).
        registry: where to look (default: :func:`registry_for` the scenario).

    Raises:
        PluginError: no such target, or its factory failed.
    """
    registry = registry_for(scenario, registry)
    factory = registry.targets.get(name)
    if factory is None:
        known = ", ".join(sorted(registry.targets)) or "none"
        raise PluginError(f"no plugin target {name!r} (registered: {known})")
    try:
        made: Target = factory(transport, scenario)
    except Exception as exc:
        raise PluginError(f"target {name!r} factory failed: {one_line(exc)}") from None
    return made
