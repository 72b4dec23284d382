"""Building plugin registries: from module names, entry points, or a scenario's ``plugins:``.

Each call builds a NEW :class:`~sim_engine.api.plugins.registry.PluginRegistry`
(importing a module twice is free: Python caches it). Part of
:mod:`sim_engine.api.plugins`.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sim_engine.api.plugins.decorators import PluginError, tags_of
from sim_engine.api.plugins.registry import PluginRegistry, one_line
from sim_engine.model.scenario import (
    Scenario,
    ScenarioError,
    read_scenario_data,
    validate_scenario,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "load_entry_points",
    "load_plugins",
    "load_scenario_with_plugins",
    "scenario_registry",
    "validate_with_plugins",
]

ENTRY_POINT_GROUP = "sim_engine.plugins"
"""Entry-point group scanned for plugins (a module, a decorated object, or a callable
given the registry)."""

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def load_plugins(modules: Iterable[str] = (), *, entry_points: bool = True) -> PluginRegistry:
    """Build a new registry from plugin modules (imported, then scanned for decorated objects).

    Args:
        modules: dotted module names (a scenario's ``plugins:`` list).
        entry_points: also load the installed plugins of the entry-point group
            :data:`ENTRY_POINT_GROUP` (first, as before the scenario's own).

    Returns:
        A registry holding what those modules and entry points offer, and nothing else.

    Raises:
        PluginError: a name is not a dotted module name, the module is not found,
            importing it failed, or what it offers clashes (one line naming the
            module and the error).
    """
    registry = PluginRegistry()
    if entry_points:
        load_entry_points(registry)
    for name in modules:
        add_module_by_name(registry, name)
    return registry


def add_module_by_name(registry: PluginRegistry, name: str) -> None:
    """Import the module ``name`` and add its decorated objects to ``registry``.

    Raises:
        PluginError: as :func:`load_plugins`.
    """
    if not isinstance(name, str) or not _MODULE_RE.match(name):
        raise PluginError(f"plugin {name!r} is not a module name (like my_pkg.plugin)")
    if name in registry.modules:
        return
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise PluginError(
                f"cannot import plugin module {name!r}: no such module "
                "(is its directory on PYTHONPATH?)"
            ) from None
        raise PluginError(f"plugin module {name!r} failed to import: {one_line(exc)}") from None
    except PluginError as exc:
        raise PluginError(f"plugin module {name!r}: {exc}") from None
    except Exception as exc:  # a plugin's own bug: report it, one line
        raise PluginError(f"plugin module {name!r} failed to import: {one_line(exc)}") from None
    try:
        registry.add_module(module)
    except PluginError as exc:
        raise PluginError(f"plugin module {name!r}: {exc}") from None


def load_entry_points(registry: PluginRegistry, group: str = ENTRY_POINT_GROUP) -> int:
    """Add the plugins installed under an entry-point group to ``registry``.

    An entry point may name a module (its decorated objects are added), a decorated
    object (added), or another callable, which is called with the registry (it may
    call ``registry.add(obj)`` / ``registry.add_module(module)``). Returns how many
    entry points were loaded.

    Raises:
        PluginError: an entry point failed to load.
    """
    from importlib.metadata import entry_points

    loaded = 0
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            if inspect.ismodule(obj):
                registry.add_module(obj)
            elif tags_of(obj):
                registry.add(obj)
            elif callable(obj):
                obj(registry)
        except PluginError as exc:
            raise PluginError(f"plugin entry point {ep.name!r}: {exc}") from None
        except Exception as exc:
            raise PluginError(
                f"plugin entry point {ep.name!r} ({ep.value}) failed: {one_line(exc)}"
            ) from None
        loaded += 1
    return loaded


def scenario_registry(data: Any, *, entry_points: bool = True) -> PluginRegistry:
    """Build the registry for a raw scenario mapping: its ``plugins:`` modules (+ entry points).

    A missing or malformed ``plugins`` value (not a list of strings) loads no
    module: validation reports it.

    Raises:
        PluginError: as :func:`load_plugins`.
    """
    modules = data.get("plugins") if isinstance(data, Mapping) else None
    if not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) for m in modules):
        modules = ()
    return load_plugins(modules, entry_points=entry_points)


def validate_with_plugins(data: Any, source: str = "<scenario>") -> tuple[Scenario, PluginRegistry]:
    """Build the registry a raw scenario mapping names, then validate the scenario with it.

    Returns:
        The scenario (which keeps the registry: ``scenario.registry``) and the registry.

    Raises:
        ScenarioError: one line naming ``source``: ``SOURCE: plugins: ...`` when a
            plugin failed to load, else the first bad field path.
    """
    try:
        registry = scenario_registry(data)
    except PluginError as exc:
        raise ScenarioError(f"{source}: plugins: {exc}") from None
    return validate_scenario(data, source, registry=registry), registry


def load_scenario_with_plugins(path: str | Path) -> tuple[Scenario, PluginRegistry]:
    """Read a scenario file, load the plugins it names, and validate it with them.

    What ``sim-engine validate``, ``run`` and ``load`` do. See
    :func:`~sim_engine.model.scenario.load_scenario` for the pure variant.

    Raises:
        ScenarioError: unreadable file, YAML error, plugin failure or invalid field
            (one line naming the file).
    """
    return validate_with_plugins(read_scenario_data(path), source=str(path))
