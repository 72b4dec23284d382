"""Plugins: custom behaviour in Python without touching the core (seed 000's SimulationPlugin).

A plugin is an ordinary Python module whose functions and classes carry the
decorators of this package::

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

What can be declared:

* ``@action(name, possible=None, fallback=None)``: an ``async def f(ctx) ->
  Outcome | dict | None`` usable in persona weight matrices like any other action;
  run by :class:`~sim_engine.targets.plugin.PluginTarget`; ``possible(view)`` says
  when it is not possible (then ``fallback`` is taken, as for a YAML guard).
* ``@workflow(name)``: a factory returning a :class:`~sim_engine.model.api_spec.WorkflowSpec`
  (or its mapping); joins the ``api`` section of a scenario that refers to it.
* ``@persona(name)``: a factory returning a :class:`~sim_engine.model.scenario.PersonaSpec`
  (or its mapping); joins a scenario whose ``population.personas`` names it.
* ``@generator(name)``: a template generator ``f(rng, *args) -> value`` for
  ``{{name:arg1:arg2}}`` placeholders (args are strings).
* ``@target(name)``: a factory ``f(transport, scenario) -> Target``.
* ``@hook`` (a class, instantiated without arguments, or an object) and
  ``@on_session_start`` / ``@on_session_end`` (plain functions): called with
  ``(user, sim_t)`` when a user's session starts and ends. Hooks run inline in
  the engine's loop: they must be synchronous and quick, and an exception they
  raise stops the run (it is a programming error).

The decorators only tag what they decorate: nothing is registered globally.
:func:`load_plugins` imports modules and builds a new :class:`PluginRegistry`
from the tagged objects among their attributes (plus the entry points of the
group :data:`ENTRY_POINT_GROUP`); the registry is then passed explicitly to
scenario validation (``validate_scenario(data, registry=...)``) and to the run.
:func:`load_scenario_with_plugins` reads a scenario file, builds the registry
from its ``plugins:`` list and validates the scenario with it.

Modules: :mod:`.decorators` (the tags), :mod:`.registry` (:class:`PluginRegistry`),
:mod:`.loading` (discovery). The run-time side (:class:`~sim_engine.targets.plugin.PluginContext`,
:class:`~sim_engine.targets.plugin.PluginTarget`, ``plugin_runtime``,
``make_target``) needs a transport and lives in :mod:`sim_engine.targets.plugin`,
which re-exports this package's names as ``sim_engine.plugins``.
"""

from sim_engine.api.plugins.decorators import (
    RESERVED_ACTIONS,
    TAG_ATTR,
    PluginError,
    PluginTag,
    action,
    generator,
    hook,
    on_session_end,
    on_session_start,
    persona,
    tags_of,
    target,
    workflow,
)
from sim_engine.api.plugins.loading import (
    ENTRY_POINT_GROUP,
    add_module_by_name,
    load_entry_points,
    load_plugins,
    load_scenario_with_plugins,
    scenario_registry,
    validate_with_plugins,
)
from sim_engine.api.plugins.registry import ActionFunc, PluginAction, PluginRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "RESERVED_ACTIONS",
    "TAG_ATTR",
    "ActionFunc",
    "PluginAction",
    "PluginError",
    "PluginRegistry",
    "PluginTag",
    "action",
    "add_module_by_name",
    "generator",
    "hook",
    "load_entry_points",
    "load_plugins",
    "load_scenario_with_plugins",
    "on_session_end",
    "on_session_start",
    "persona",
    "scenario_registry",
    "tags_of",
    "target",
    "validate_with_plugins",
    "workflow",
]
