"""The plugin registry: an explicit value built from tagged objects, passed to whoever needs it.

There is no process-wide registry. :func:`~sim_engine.api.plugins.loading.load_plugins`
builds a new :class:`PluginRegistry` from the plugin modules a scenario names;
scenario validation asks it the three questions of
:class:`~sim_engine.model.plugin_spec.PluginCatalog`, and the run wraps its target
with the registry's actions and calls its hooks. Part of :mod:`sim_engine.api.plugins`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from sim_engine.api.plugins.decorators import PluginError, PluginTag, _qualname, tags_of

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sim_engine.model.api_spec import WorkflowSpec
    from sim_engine.model.plugin_spec import SpecKind
    from sim_engine.model.scenario import PersonaSpec

__all__ = ["ActionFunc", "PluginAction", "PluginRegistry", "one_line"]

ActionFunc = Callable[..., Awaitable[Any]]
"""A plugin action: ``async def f(ctx: PluginContext) -> Outcome | dict | None``."""

_M = TypeVar("_M", bound="BaseModel")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (for one-line error messages)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass(frozen=True)
class PluginAction:
    """A registered action.

    Attributes:
        name: action name, as persona matrices use it.
        func: the coroutine function run for it.
        endpoint: what records show as its endpoint (default ``plugin NAME``).
        possible: its guard ``f(view) -> bool`` (None: always possible).
        fallback: the action to take when the guard says no (None: none).
    """

    name: str
    func: ActionFunc
    endpoint: str
    possible: Callable[[Any], Any] | None = None
    fallback: str | None = None


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


class PluginRegistry:
    """What a set of plugin modules offers; built by ``load_plugins`` (or by hand with :meth:`add`).

    Satisfies :class:`~sim_engine.model.plugin_spec.PluginCatalog`, so it can be
    passed to scenario validation (``validate_scenario(data, registry=...)``) and
    to the template functions. Registries are independent: what one holds, no
    other sees.

    Attributes:
        actions: name -> :class:`PluginAction`.
        workflows: name -> factory of a ``WorkflowSpec`` (or mapping).
        personas: name -> factory of a ``PersonaSpec`` (or mapping).
        generators: name -> ``f(rng, *args) -> value``.
        targets: name -> ``f(transport, scenario) -> Target``.
        hooks: objects with ``on_session_start(user, sim_t)`` and ``on_session_end(user, sim_t)``.
        modules: plugin modules scanned, in order.
    """

    def __init__(self) -> None:
        self.actions: dict[str, PluginAction] = {}
        self.workflows: dict[str, Callable[[], Any]] = {}
        self.personas: dict[str, Callable[[], Any]] = {}
        self.generators: dict[str, Callable[..., Any]] = {}
        self.targets: dict[str, Callable[..., Any]] = {}
        self.hooks: list[Any] = []
        self.modules: list[str] = []
        self._added: dict[int, Any] = {}  # id -> object: each object registers once

    @classmethod
    def from_objects(cls, *objects: Any) -> PluginRegistry:
        """Build a registry from decorated objects (functions, classes, hook objects).

        Raises:
            PluginError: an object carries no plugin decorator, or a name clash.
        """
        registry = cls()
        for obj in objects:
            registry.add(obj)
        return registry

    def __repr__(self) -> str:
        return (
            f"PluginRegistry(modules={self.modules}, actions={sorted(self.actions)}, "
            f"hooks={len(self.hooks)})"
        )

    # -- building -----------------------------------------------------------------------------

    def add(self, obj: Any) -> None:
        """Register what the plugin decorators on ``obj`` asked for (once per object).

        Raises:
            PluginError: ``obj`` carries no plugin decorator; a name is registered
                already by another function; a hook class cannot be instantiated.
        """
        tags = tags_of(obj)
        if not tags:
            raise PluginError(f"{obj!r} is not a plugin (no @plugins decorator)")
        if id(obj) in self._added:
            return
        self._added[id(obj)] = obj
        for tag in tags:
            self._register(tag, obj)

    def add_module(self, module: ModuleType) -> None:
        """Register every tagged object among a module's attributes (in definition order).

        Raises:
            PluginError: as :meth:`add`.
        """
        for value in list(vars(module).values()):
            if tags_of(value):
                self.add(value)
        if module.__name__ not in self.modules:
            self.modules.append(module.__name__)

    def _register(self, tag: PluginTag, obj: Any) -> None:
        if tag.kind == "action":
            assert tag.name is not None
            endpoint = tag.endpoint or f"plugin {tag.name}"
            spec = PluginAction(tag.name, obj, endpoint, tag.possible, tag.fallback)
            self._put("action", self.actions, tag.name, spec, obj)
        elif tag.kind in ("workflow", "persona", "generator", "target"):
            assert tag.name is not None
            table: dict[str, Any] = getattr(self, f"{tag.kind}s")
            self._put(tag.kind, table, tag.name, obj, obj)
        elif tag.kind == "hook":
            self.hooks.append(_hook_of(obj))
        elif tag.kind == "session_start":
            self.hooks.append(_FunctionHook(start=obj))
        else:
            self.hooks.append(_FunctionHook(end=obj))

    @staticmethod
    def _put(kind: str, table: dict[str, Any], name: str, value: Any, func: Any) -> None:
        old = table.get(name)
        if old is not None:
            old_func = old.func if isinstance(old, PluginAction) else old
            if _qualname(old_func) != _qualname(func):
                raise PluginError(f"{kind} {name!r} is already registered by {_qualname(old_func)}")
        table[name] = value

    # -- PluginCatalog (what scenario validation and templates ask) ------------------------

    def action_names(self) -> frozenset[str]:
        """Return the names of the plugin actions."""
        return frozenset(self.actions)

    def generator(self, name: str) -> Callable[..., Any] | None:
        """Return the template generator ``f(rng, *args: str) -> value`` named ``name``, or None."""
        return self.generators.get(name)

    def spec_data(self, kind: SpecKind, name: str) -> dict[str, Any] | None:
        """Return a plugin persona or workflow as data (its factory called), or None if unknown.

        Raises:
            PluginError: the factory failed or returned something that is not a spec.
        """
        factory = (self.personas if kind == "persona" else self.workflows).get(name)
        return None if factory is None else _dump(kind, name, factory)

    # -- building registered specs ------------------------------------------------------------

    def make_workflow(self, name: str) -> WorkflowSpec:
        """Build a registered plugin workflow (validated).

        Raises:
            PluginError: unknown name, or the factory failed or returned an invalid spec.
        """
        from sim_engine.model.api_spec import WorkflowSpec

        return _make_spec("workflow", self.workflows, name, WorkflowSpec)

    def make_persona(self, name: str) -> PersonaSpec:
        """Build a registered plugin persona (validated).

        Raises:
            PluginError: unknown name, or the factory failed or returned an invalid spec.
        """
        from sim_engine.model.scenario import PersonaSpec

        return _make_spec("persona", self.personas, name, PersonaSpec)


def _hook_of(obj: Any) -> _FunctionHook:
    """The hook a ``@hook`` object or class gives (a class is instantiated here)."""
    try:
        instance = obj() if inspect.isclass(obj) else obj
    except Exception as exc:
        raise PluginError(f"hook {obj!r} could not be created: {one_line(exc)}") from None
    return _FunctionHook(
        getattr(instance, "on_session_start", None), getattr(instance, "on_session_end", None)
    )


def _dump(kind: str, name: str, factory: Callable[[], Any]) -> dict[str, Any]:
    try:
        made = factory()
    except Exception as exc:
        raise PluginError(f"{kind} {name!r} factory failed: {one_line(exc)}") from None
    if hasattr(made, "model_dump"):
        dumped: dict[str, Any] = made.model_dump(mode="json", exclude_unset=False)
        return dumped
    if isinstance(made, Mapping):
        return dict(made)
    raise PluginError(f"{kind} {name!r} factory returned {type(made).__name__}, not a spec")


def _make_spec(kind: str, table: dict[str, Any], name: str, model: type[_M]) -> _M:
    """Call a registered factory and validate what it returns as ``model``."""
    from pydantic import ValidationError

    if name not in table:
        raise PluginError(f"no plugin {kind} {name!r}")
    try:
        return model.model_validate(_dump(kind, name, table[name]))
    except ValidationError as exc:
        raise PluginError(f"{kind} {name!r}: {one_line(exc)}") from None
