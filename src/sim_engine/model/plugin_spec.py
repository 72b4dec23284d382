"""What the behaviour model needs from plugins, and how plugin specs join a scenario.

The model never imports plugin code nor the plugin registry
(:mod:`sim_engine.api.plugins`). Whoever validates a scenario builds a registry
first (from the scenario's ``plugins:`` list and the installed entry points) and
passes it in; validation only asks it the three questions of
:class:`PluginCatalog`. Without a registry (``None``) a scenario sees no plugin:
its persona matrices and templates may name only built-in actions and generators.

The registry reaches the pydantic validators through the validation context::

    Scenario.model_validate(data, context={"registry": registry})

(:func:`sim_engine.model.scenario.validate_scenario` does this for you).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import ValidationInfo

__all__ = ["CONTEXT_KEY", "PluginCatalog", "catalog_of", "merge_plugin_specs"]

CONTEXT_KEY = "registry"
"""Key of the registry in a pydantic validation context."""

SpecKind = Literal["persona", "workflow"]


@runtime_checkable
class PluginCatalog(Protocol):
    """The read-only view of a plugin registry that scenario validation and templates use.

    :class:`sim_engine.api.plugins.PluginRegistry` satisfies it; so can a test double.
    """

    def action_names(self) -> AbstractSet[str]:
        """Return the names of the plugin actions (valid in persona matrices and workflows)."""
        ...

    def generator(self, name: str) -> Callable[..., Any] | None:
        """Return the template generator ``f(rng, *args: str) -> value`` named ``name``, or None."""
        ...

    def spec_data(self, kind: SpecKind, name: str) -> dict[str, Any] | None:
        """Return a plugin persona or workflow as plain data (a mapping to validate), or None.

        Raises:
            ValueError: the plugin's factory failed or returned something that is not a spec.
        """
        ...


def catalog_of(info: ValidationInfo) -> PluginCatalog | None:
    """Return the registry passed in a validation context (``context={"registry": ...}``).

    Returns None when there is no context or no registry in it.

    Raises:
        TypeError: the context's registry does not have :class:`PluginCatalog`'s methods.
    """
    context = info.context
    registry = context.get(CONTEXT_KEY) if isinstance(context, Mapping) else None
    if registry is None:
        return None
    if not isinstance(registry, PluginCatalog):
        raise TypeError(f"context[{CONTEXT_KEY!r}] is not a plugin registry: {registry!r}")
    return registry


def merge_plugin_specs(data: Any, catalog: PluginCatalog | None) -> Any:
    """Add to a raw scenario mapping the plugin personas and workflows it names.

    A plugin persona joins when ``population.personas`` names it and ``personas``
    lacks it; in an ``api`` section, a plugin workflow joins when a persona matrix
    or a workflow names it (transitively). Pure: ``data`` is not changed (a copy is
    returned when something is added); anything that is not a mapping, or a None
    catalog, gives ``data`` back as is.

    Raises:
        ValueError: a message starting ``plugins: ``: a plugin factory failed, or a
            plugin action has the name of an ``api.actions`` entry.
    """
    if catalog is None or not isinstance(data, Mapping):
        return data
    out = dict(data)
    try:
        _add_personas(out, catalog)
        _add_workflows(out, catalog)
    except ValueError as exc:
        raise ValueError(f"plugins: {exc}") from None
    return out


def _add_personas(data: dict[str, Any], catalog: PluginCatalog) -> None:
    population = data.get("population")
    personas = data.get("personas")
    if not isinstance(population, Mapping) or not isinstance(personas, Mapping):
        return
    shares = population.get("personas")
    if not isinstance(shares, Mapping):
        return
    added: dict[str, Any] = {}
    for name in shares:
        if name not in personas:
            spec = catalog.spec_data("persona", str(name))
            if spec is not None:
                added[name] = spec
    if added:
        data["personas"] = {**personas, **added}


def _referenced(personas: Any, workflows: Any) -> set[str]:
    """Action names the persona matrices and the workflows' steps use."""
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


def _add_workflows(data: dict[str, Any], catalog: PluginCatalog) -> None:
    api = data.get("api")
    if not isinstance(api, Mapping):
        return
    actions = api.get("actions")
    plugin_actions = catalog.action_names()
    if isinstance(actions, Mapping):
        for name in actions:
            if name in plugin_actions:
                raise ValueError(f"plugin action {name!r} has the name of api.actions.{name}")
    raw = api.get("workflows")
    if raw is not None and not isinstance(raw, Mapping):
        return  # not a mapping: validation says so
    workflows = dict(raw or {})
    own = set(actions) if isinstance(actions, Mapping) else set()
    todo = _referenced(data.get("personas"), workflows)
    added = False
    while todo:
        name = todo.pop()
        if name in workflows or name in own:
            continue
        spec = catalog.spec_data("workflow", name)
        if spec is None:
            continue
        workflows[name] = spec
        todo |= _step_names(spec)
        added = True
    if added:
        data["api"] = {**api, "workflows": workflows}
