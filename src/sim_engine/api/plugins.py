"""Plugins: custom behaviour in Python without touching the core (seed 000's SimulationPlugin).

A plugin is an ordinary Python module that registers things with decorators
when it is imported::

    from sim_engine import plugins

    @plugins.action("check_health")
    async def check_health(ctx: plugins.PluginContext) -> dict:
        resp = await ctx.call("GET", "/health")
        return {"status": resp.status, "ok": resp.status == 200}

    @plugins.generator("shout")
    def shout(rng, word="hey"):
        return word.upper()

    @plugins.hook
    class SessionCounter:
        def on_session_start(self, user, sim_t): ...
        def on_session_end(self, user, sim_t): ...

What can be registered:

* ``@action(name)``: an ``async def f(ctx) -> Outcome | dict | None`` usable
  in persona weight matrices like any other action; run by :class:`PluginTarget`.
* ``@workflow(name)``: a factory returning an :class:`~sim_engine.model.api_spec.WorkflowSpec`
  (or its mapping); joins the ``api`` section of a scenario that refers to it.
* ``@persona(name)``: a factory returning a :class:`~sim_engine.model.scenario.PersonaSpec`
  (or its mapping); joins a scenario whose ``population.personas`` names it.
* ``@generator(name)``: a template generator ``f(rng, *args) -> value`` for
  ``{{name:arg1:arg2}}`` placeholders (args are strings); read by the template
  engine through :func:`registered_generators`.
* ``@target(name)``: a factory ``f(transport, scenario) -> Target``.
* ``@hook`` (a class, instantiated without arguments, or an object) and
  ``@on_session_start`` / ``@on_session_end`` (plain functions): called with
  ``(user, sim_t)`` when a user's session starts and ends. Hooks run inline in
  the engine's loop: they must be synchronous and quick, and an exception they
  raise stops the run (it is a programming error).

Discovery: the modules a scenario lists under ``plugins:`` are imported when
the scenario is validated (so persona matrices may name plugin actions), and
entry points of the group ``sim_engine.api.plugins`` (:data:`ENTRY_POINT_GROUP`)
are loaded once per process. The registry is process-wide.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sim_engine.model.records import ActionRequest, Outcome, Target

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sim_engine.model.api_spec import WorkflowSpec
    from sim_engine.model.population import SimUser
    from sim_engine.model.scenario import PersonaSpec, Scenario
    from sim_engine.targets.transport import Response, Transport

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "RESERVED_ACTIONS",
    "ActionFunc",
    "PluginAction",
    "PluginContext",
    "PluginError",
    "PluginRegistry",
    "PluginTarget",
    "action",
    "generator",
    "hook",
    "load_entry_points",
    "load_plugins",
    "make_persona",
    "make_target",
    "make_workflow",
    "on_session_end",
    "on_session_start",
    "persona",
    "plugin_runtime",
    "prepare_scenario_data",
    "registered_action_names",
    "registered_generators",
    "target",
    "workflow",
]

ENTRY_POINT_GROUP = "sim_engine.plugins"
"""Entry-point group scanned for plugins (a module, or a callable given the registry)."""

RESERVED_ACTIONS = frozenset(
    {
        "browse_feed",
        "read_post",
        "create_post",
        "update_post",
        "delete_post",
        "sign_up",
        "log_in",
        "delete_account",
        "list_own_posts",
    }
)
"""Names a plugin action may not take: the built-in social API's and the engine's own."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_OUTCOME_FIELDS = frozenset(f.name for f in dataclasses.fields(Outcome))

ActionFunc = Callable[["PluginContext"], Awaitable[Any]]
"""A plugin action: ``async def f(ctx: PluginContext) -> Outcome | dict | None``."""

_F = TypeVar("_F", bound=Callable[..., Any])
_M = TypeVar("_M", bound="BaseModel")


class PluginError(ValueError):
    """A plugin cannot be loaded or registers something invalid; ``str()`` is one line."""


# -- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginAction:
    """A registered action.

    Attributes:
        name: action name, as persona matrices use it.
        func: the coroutine function run for it.
        endpoint: what records show as its endpoint (default ``plugin NAME``).
    """

    name: str
    func: ActionFunc
    endpoint: str


class _FunctionHook:
    """Adapts plain functions to the hook protocol (both methods always present)."""

    def __init__(
        self,
        start: Callable[[Any, float], Any] | None = None,
        end: Callable[[Any, float], Any] | None = None,
    ) -> None:
        self.start = start
        self.end = end

    def on_session_start(self, user: Any, sim_t: float) -> None:
        if self.start is not None:
            self.start(user, sim_t)

    def on_session_end(self, user: Any, sim_t: float) -> None:
        if self.end is not None:
            self.end(user, sim_t)

    def __repr__(self) -> str:
        return f"_FunctionHook(start={self.start!r}, end={self.end!r})"


@dataclass
class PluginRegistry:
    """Everything plugins registered (one per process: :data:`REGISTRY`).

    Attributes:
        actions: name -> :class:`PluginAction`.
        workflows: name -> factory of a ``WorkflowSpec`` (or mapping).
        personas: name -> factory of a ``PersonaSpec`` (or mapping).
        generators: name -> ``f(rng, *args) -> value``.
        targets: name -> ``f(transport, scenario) -> Target``.
        hooks: objects with ``on_session_start(user, sim_t)`` and ``on_session_end(user, sim_t)``.
        modules: plugin modules imported so far, in order.
    """

    actions: dict[str, PluginAction] = field(default_factory=dict)
    workflows: dict[str, Callable[[], Any]] = field(default_factory=dict)
    personas: dict[str, Callable[[], Any]] = field(default_factory=dict)
    generators: dict[str, Callable[..., Any]] = field(default_factory=dict)
    targets: dict[str, Callable[..., Any]] = field(default_factory=dict)
    hooks: list[Any] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    entry_points_loaded: bool = False

    def snapshot(self) -> PluginRegistry:
        """Return a copy (for tests: :meth:`restore` it afterwards)."""
        return PluginRegistry(
            dict(self.actions),
            dict(self.workflows),
            dict(self.personas),
            dict(self.generators),
            dict(self.targets),
            list(self.hooks),
            list(self.modules),
            self.entry_points_loaded,
        )

    def restore(self, saved: PluginRegistry) -> None:
        """Put back what :meth:`snapshot` returned."""
        for f in dataclasses.fields(self):
            value = getattr(saved, f.name)
            setattr(self, f.name, value.copy() if isinstance(value, (dict, list)) else value)

    def clear(self) -> None:
        """Forget every registration (entry points will be loaded again)."""
        self.restore(PluginRegistry())

    def _put(self, kind: str, table: dict[str, Any], name: str, value: Any, func: Any) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(f"{kind} name {name!r} is not an identifier")
        old = table.get(name)
        if old is not None:
            old_func = old.func if isinstance(old, PluginAction) else old
            if _qualname(old_func) != _qualname(func):
                raise PluginError(f"{kind} {name!r} is already registered by {_qualname(old_func)}")
        table[name] = value


REGISTRY = PluginRegistry()
"""The process-wide registry the decorators fill."""


def _qualname(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


# -- decorators --------------------------------------------------------------------------------


def action(name: str, *, endpoint: str | None = None) -> Callable[[_F], _F]:
    """Register ``async def f(ctx) -> Outcome | dict | None`` as the action ``name``.

    The function gets a :class:`PluginContext`. It returns an :class:`Outcome`,
    a mapping of ``Outcome`` fields (``status`` defaults to 200, ``ok`` to
    ``200 <= status < 400``, ``latency_ms`` to the wall time the call took), or
    None (success, status 200). An exception it raises becomes a failed outcome
    (status 0) naming it: a plugin never crashes a run.

    Args:
        name: the action's name (an identifier, not a built-in action's name).
        endpoint: shown as the record's ``endpoint`` (default ``plugin NAME``).

    Raises:
        PluginError: bad or reserved name, not a coroutine function, or the
            name is registered by another function.
    """

    def register(func: _F) -> _F:
        if name in RESERVED_ACTIONS:
            raise PluginError(f"action {name!r} is built in: choose another name")
        if not inspect.iscoroutinefunction(func):
            raise PluginError(f"action {name!r} must be an async function (async def)")
        spec = PluginAction(name, func, endpoint or f"plugin {name}")
        REGISTRY._put("action", REGISTRY.actions, name, spec, func)
        return func

    return register


def _registrar(kind: str, table: str, name: str) -> Callable[[_F], _F]:
    """A decorator registering its function under ``name`` in ``REGISTRY.<table>``."""

    def register(func: _F) -> _F:
        REGISTRY._put(kind, getattr(REGISTRY, table), name, func, func)
        return func

    return register


def workflow(name: str) -> Callable[[_F], _F]:
    """Register a factory ``() -> WorkflowSpec | Mapping`` as the workflow ``name``.

    The workflow joins the ``api`` section of any scenario whose personas or
    workflows name it (and is validated there). Plugin workflows run only in
    scenarios with an ``api`` section.

    Raises:
        PluginError: bad name, or the name is registered by another function.
    """

    return _registrar("workflow", "workflows", name)


def persona(name: str) -> Callable[[_F], _F]:
    """Register a factory ``() -> PersonaSpec | Mapping`` as the persona ``name``.

    The persona joins a scenario whose ``population.personas`` share map names
    it (and whose ``personas`` section does not define it already).

    Raises:
        PluginError: bad name, or the name is registered by another function.
    """

    return _registrar("persona", "personas", name)


def generator(name: str) -> Callable[[_F], _F]:
    """Register ``f(rng: random.Random, *args: str) -> value`` for ``{{name:arg:...}}``.

    Raises:
        PluginError: bad name, or the name is registered by another function.
    """

    return _registrar("generator", "generators", name)


def target(name: str) -> Callable[[_F], _F]:
    """Register a factory ``f(transport, scenario) -> Target`` under ``name``.

    Raises:
        PluginError: bad name, or the name is registered by another function.
    """

    return _registrar("target", "targets", name)


def hook(obj: Any) -> Any:
    """Register a session hook: a class (instantiated with no arguments) or an object.

    It may define ``on_session_start(user, sim_t)`` and/or
    ``on_session_end(user, sim_t)`` (synchronous; ``user`` is a
    :class:`~sim_engine.model.population.SimUser`, ``sim_t`` simulated epoch seconds).
    Returns ``obj`` unchanged, so it works as a class decorator.

    Raises:
        PluginError: neither method is defined, or one is a coroutine function.
    """
    instance = obj() if inspect.isclass(obj) else obj
    start = getattr(instance, "on_session_start", None)
    end = getattr(instance, "on_session_end", None)
    if start is None and end is None:
        raise PluginError(f"hook {obj!r} has neither on_session_start nor on_session_end")
    for method in (start, end):
        if method is not None and inspect.iscoroutinefunction(method):
            raise PluginError(f"hook {obj!r}: session hooks must be synchronous")
    REGISTRY.hooks.append(_FunctionHook(start, end))
    return obj


def on_session_start(func: _F) -> _F:
    """Register ``func(user, sim_t)``, called when a user's session starts (synchronous).

    Raises:
        PluginError: ``func`` is a coroutine function.
    """
    if inspect.iscoroutinefunction(func):
        raise PluginError(f"{_qualname(func)}: session hooks must be synchronous")
    REGISTRY.hooks.append(_FunctionHook(start=func))
    return func


def on_session_end(func: _F) -> _F:
    """Register ``func(user, sim_t)``, called when a user's session ends (synchronous).

    Raises:
        PluginError: ``func`` is a coroutine function.
    """
    if inspect.iscoroutinefunction(func):
        raise PluginError(f"{_qualname(func)}: session hooks must be synchronous")
    REGISTRY.hooks.append(_FunctionHook(end=func))
    return func


# -- lookups -------------------------------------------------------------------------------------


def registered_generators() -> dict[str, Callable[..., Any]]:
    """Return the plugin template generators: name -> ``f(rng, *args: str) -> value``.

    The template engine looks names up here after its built-in generators.
    """
    return dict(REGISTRY.generators)


def registered_action_names() -> set[str]:
    """Return the names of the registered plugin actions."""
    return set(REGISTRY.actions)


# -- discovery -----------------------------------------------------------------------------------


def load_plugins(modules: Iterable[str]) -> list[str]:
    """Import plugin modules by name (already imported ones are not imported again).

    Returns the names imported by this call.

    Raises:
        PluginError: a name is not a dotted module name, the module is not found,
            or importing it failed (the message names the module and the error).
    """
    imported = []
    for name in modules:
        if not isinstance(name, str) or not _MODULE_RE.match(name):
            raise PluginError(f"plugin {name!r} is not a module name (like my_pkg.plugin)")
        if name in REGISTRY.modules:
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise PluginError(
                    f"cannot import plugin module {name!r}: no such module "
                    "(is its directory on PYTHONPATH?)"
                ) from None
            raise PluginError(
                f"plugin module {name!r} failed to import: {_one_line(exc)}"
            ) from None
        except PluginError as exc:
            raise PluginError(f"plugin module {name!r}: {exc}") from None
        except Exception as exc:  # a plugin's own bug: report it, one line
            raise PluginError(
                f"plugin module {name!r} failed to import: {_one_line(exc)}"
            ) from None
        REGISTRY.modules.append(name)
        imported.append(name)
    return imported


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> int:
    """Load the plugins installed under an entry-point group (once per process).

    An entry point may name a module (importing it registers its plugins) or a
    callable, which is called with :data:`REGISTRY`. Returns how many were loaded.

    Raises:
        PluginError: an entry point failed to load.
    """
    if REGISTRY.entry_points_loaded and group == ENTRY_POINT_GROUP:
        return 0
    from importlib.metadata import entry_points

    loaded = 0
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            if callable(obj) and not inspect.ismodule(obj):
                obj(REGISTRY)
        except PluginError as exc:
            raise PluginError(f"plugin entry point {ep.name!r}: {exc}") from None
        except Exception as exc:
            raise PluginError(
                f"plugin entry point {ep.name!r} ({ep.value}) failed: {_one_line(exc)}"
            ) from None
        loaded += 1
    if group == ENTRY_POINT_GROUP:
        REGISTRY.entry_points_loaded = True
    return loaded


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def prepare_scenario_data(data: Any) -> Any:
    """Load plugins before a scenario is validated, and add what it takes from them.

    Called by the scenario model on its raw mapping: imports the modules under
    ``plugins`` and the ``sim_engine.api.plugins`` entry points, then adds to the
    mapping the plugin personas ``population.personas`` names (when ``personas``
    lacks them) and, in an ``api`` section, the plugin workflows its personas or
    workflows name (transitively). Returns the mapping (a copy when changed);
    anything that is not a mapping is returned as is for validation to reject.

    Raises:
        ValueError: a message starting ``plugins: `` (loading failed, a factory
            failed, or a plugin action shadows an ``api`` action).
    """
    if not isinstance(data, Mapping):
        return data
    modules = data.get("plugins") or ()
    try:
        load_entry_points()
        if isinstance(modules, (list, tuple)) and all(isinstance(m, str) for m in modules):
            load_plugins(modules)
        out = dict(data)
        _add_personas(out)
        _add_workflows(out)
    except PluginError as exc:
        raise ValueError(f"plugins: {exc}") from None
    return out


def _dump(kind: str, name: str, factory: Callable[[], Any]) -> Any:
    try:
        made = factory()
    except Exception as exc:
        raise PluginError(f"{kind} {name!r} factory failed: {_one_line(exc)}") from None
    if hasattr(made, "model_dump"):
        return made.model_dump(mode="json", exclude_unset=False)
    if isinstance(made, Mapping):
        return dict(made)
    raise PluginError(f"{kind} {name!r} factory returned {type(made).__name__}, not a spec")


def _add_personas(data: dict[str, Any]) -> None:
    population = data.get("population")
    personas = data.get("personas")
    if not isinstance(population, Mapping) or not isinstance(personas, Mapping):
        return
    shares = population.get("personas")
    if not isinstance(shares, Mapping):
        return
    missing = [n for n in shares if n not in personas and n in REGISTRY.personas]
    if missing:
        data["personas"] = {
            **personas,
            **{n: _dump("persona", n, REGISTRY.personas[n]) for n in missing},
        }


def _referenced(personas: Any, workflows: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(personas, Mapping):
        for spec in personas.values():
            actions = spec.get("actions") if isinstance(spec, Mapping) else None
            if isinstance(actions, Mapping):
                for weights in actions.values():
                    if isinstance(weights, Mapping):
                        names.update(str(n) for n in weights)
    if isinstance(workflows, Mapping):
        for wf in workflows.values():
            names.update(_step_names(wf))
    return names


def _step_names(workflow_data: Any) -> set[str]:
    names: set[str] = set()
    steps = workflow_data.get("steps") if isinstance(workflow_data, Mapping) else None
    for step in steps if isinstance(steps, (list, tuple)) else ():
        if isinstance(step, Mapping):
            if isinstance(step.get("action"), str):
                names.add(step["action"])
            if isinstance(step.get("one_of"), Mapping):
                names.update(str(n) for n in step["one_of"])
    return names


def _add_workflows(data: dict[str, Any]) -> None:
    api = data.get("api")
    if not isinstance(api, Mapping):
        return
    actions = api.get("actions")
    if isinstance(actions, Mapping):
        for name in actions:
            if name in REGISTRY.actions:
                raise PluginError(f"plugin action {name!r} has the name of api.actions.{name}")
    raw = api.get("workflows")
    if raw is not None and not isinstance(raw, Mapping):
        return  # not a mapping: validation says so
    workflows = dict(raw or {})
    own = set(actions) if isinstance(actions, Mapping) else set()
    todo = _referenced(data.get("personas"), workflows)
    added = False
    while todo:
        name = todo.pop()
        if name in workflows or name in own or name not in REGISTRY.workflows:
            continue
        workflows[name] = _dump("workflow", name, REGISTRY.workflows[name])
        todo |= _step_names(workflows[name])
        added = True
    if added:
        data["api"] = {**api, "workflows": workflows}


# -- run time ------------------------------------------------------------------------------------


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
            synthetic headers); prefer :meth:`call`.
        memory: the user's memory in an ``api`` scenario when the target exposes
            it (``memory(user_id)``), else None.
        rng: a generator for this call, seeded from the run seed, the user, the
            action and the simulated time (reproducible).
    """

    action: str
    request: ActionRequest
    user: SimUser | None
    transport: Transport
    memory: Any
    rng: random.Random

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
        """``X-Sim-Time`` and, with a token, ``Authorization: Bearer TOKEN``."""
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
        """Send one request through the run's transport with :meth:`auth_headers`.

        Never raises for network trouble: a failed call is a status-0 response.
        """
        merged = {**self.auth_headers(), **(headers or {})}
        return await self.transport.request(method, path, json, merged)


class PluginTarget:
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
        registry: PluginRegistry = REGISTRY,
        seed: int = 0,
    ) -> None:
        self.inner = inner
        self._transport = transport
        self._registry = registry
        self._seed = seed
        self._users: dict[int, SimUser] = {}

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
        forget = getattr(self.inner, "forget_user", None)
        if forget is not None:
            forget(user_id)

    # -- Target ---------------------------------------------------------------------------

    def resolve(self, name: str, user_id: int) -> str | None:
        """Plugin actions are always possible; other names are the wrapped target's to resolve."""
        if name in self._registry.actions:
            return name
        resolve = getattr(self.inner, "resolve", None)
        return resolve(name, user_id) if resolve is not None else name

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
        )
        started = time.perf_counter()
        try:
            result = await spec.func(ctx)
        except Exception as exc:  # a plugin's bug is a failed action, not a crashed run
            latency = (time.perf_counter() - started) * 1000.0
            error = f"plugin action {spec.name} raised {_one_line(exc)}"[:300]
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


def plugin_runtime(
    scenario: Scenario, inner: Target, transport: Transport, registry: PluginRegistry = REGISTRY
) -> tuple[Target, list[Any]]:
    """Set plugins up for a run: the target to use and the session hooks to pass.

    Imports the scenario's plugin modules and the entry points (a no-op when the
    scenario's validation did it already). With plugin actions registered, the
    target is ``inner`` wrapped in a :class:`PluginTarget` (itself one of the
    hooks); otherwise ``inner`` as is.

    Raises:
        PluginError: a plugin module or entry point failed to load.
    """
    load_entry_points()
    load_plugins(scenario.plugins)
    hooks = list(registry.hooks)
    if not registry.actions:
        return inner, hooks
    wrapped = PluginTarget(inner, transport, registry, seed=scenario.seed)
    return wrapped, [wrapped, *hooks]


def make_workflow(name: str) -> WorkflowSpec:
    """Build a registered plugin workflow (validated).

    Raises:
        PluginError: unknown name, or the factory failed or returned an invalid spec.
    """
    from sim_engine.model.api_spec import WorkflowSpec

    return _make_spec("workflow", REGISTRY.workflows, name, WorkflowSpec)


def make_persona(name: str) -> PersonaSpec:
    """Build a registered plugin persona (validated).

    Raises:
        PluginError: unknown name, or the factory failed or returned an invalid spec.
    """
    from sim_engine.model.scenario import PersonaSpec

    return _make_spec("persona", REGISTRY.personas, name, PersonaSpec)


def _make_spec(kind: str, table: dict[str, Any], name: str, model: type[_M]) -> _M:
    """Call a registered factory and validate what it returns as ``model``."""
    from pydantic import ValidationError

    if name not in table:
        raise PluginError(f"no plugin {kind} {name!r}")
    try:
        return model.model_validate(_dump(kind, name, table[name]))
    except ValidationError as exc:
        raise PluginError(f"{kind} {name!r}: {_one_line(exc)}") from None


def make_target(name: str, transport: Transport, scenario: Scenario) -> Target:
    """Build the target a plugin registered under ``name``.

    Raises:
        PluginError: no such target, or its factory failed.
    """
    factory = REGISTRY.targets.get(name)
    if factory is None:
        known = ", ".join(sorted(REGISTRY.targets)) or "none"
        raise PluginError(f"no plugin target {name!r} (registered: {known})")
    try:
        made: Target = factory(transport, scenario)
    except Exception as exc:
        raise PluginError(f"target {name!r} factory failed: {_one_line(exc)}") from None
    return made
