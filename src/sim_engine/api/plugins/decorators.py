"""The plugin decorators: they tag what they decorate, and register nothing.

``@plugins.action("name")`` (and the others) check their argument, attach a
:class:`PluginTag` to the decorated object under :data:`TAG_ATTR` and return the
object unchanged. Nothing global changes: a :class:`~sim_engine.api.plugins.registry.PluginRegistry`
is built later, by scanning the attributes of the plugin modules a scenario names
(:func:`~sim_engine.api.plugins.loading.load_plugins`). Part of
:mod:`sim_engine.api.plugins` (which re-exports every name).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = [
    "RESERVED_ACTIONS",
    "TAG_ATTR",
    "PluginError",
    "PluginTag",
    "action",
    "generator",
    "hook",
    "on_session_end",
    "on_session_start",
    "persona",
    "tags_of",
    "target",
    "workflow",
]

TAG_ATTR = "__sim_engine_plugin__"
"""Attribute holding the :class:`PluginTag` s of a decorated object (a tuple)."""

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
        "browse_trending",
        "comment",
        "react",
        "follow_author",
        "check_followers",
        "follow_back",
        "unfollow",
        "delete_comment",
        "unreact",
    }
)
"""Names a plugin action may not take: the built-in social API's and the engine's own."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_F = TypeVar("_F", bound=Callable[..., Any])

TagKind = Literal[
    "action", "workflow", "persona", "generator", "target", "hook", "session_start", "session_end"
]


class PluginError(ValueError):
    """A plugin cannot be loaded or registers something invalid; ``str()`` is one line."""


@dataclass(frozen=True)
class PluginTag:
    """What one decorator asked for.

    Attributes:
        kind: ``action``, ``workflow``, ``persona``, ``generator``, ``target``,
            ``hook`` (an object or class with session methods), ``session_start``
            or ``session_end`` (a plain function).
        name: the registered name (None for hooks).
        endpoint: an action's record endpoint (None: ``plugin NAME``).
        possible: an action's guard ``f(view) -> bool`` (None: always possible).
        fallback: the action taken instead when the guard says no (None: none).
    """

    kind: TagKind
    name: str | None = None
    endpoint: str | None = None
    possible: Callable[[Any], Any] | None = None
    fallback: str | None = None


def tags_of(obj: Any) -> tuple[PluginTag, ...]:
    """Return the tags the plugin decorators put on ``obj`` itself (not inherited ones).

    Anything else (an untagged function, a number, a module) gives ``()``.
    """
    try:
        own = obj.__dict__
        tags = own.get(TAG_ATTR) if hasattr(own, "get") else None
    except Exception:  # an exotic module attribute (a lazy proxy...): not a plugin
        return ()
    if isinstance(tags, tuple) and all(isinstance(t, PluginTag) for t in tags):
        return tags
    return ()


def _tag(obj: Any, tag: PluginTag) -> None:
    """Add ``tag`` to the object's tags (a function may carry several)."""
    try:
        setattr(obj, TAG_ATTR, (*tags_of(obj), tag))
    except (AttributeError, TypeError):
        raise PluginError(f"{obj!r} cannot be a plugin: it takes no attributes") from None


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PluginError(f"{kind} name {name!r} is not an identifier")


def _qualname(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def action(
    name: str,
    *,
    endpoint: str | None = None,
    possible: Callable[[Any], Any] | None = None,
    fallback: str | None = None,
) -> Callable[[_F], _F]:
    """Mark ``async def f(ctx) -> Outcome | dict | None`` as the plugin action ``name``.

    The function gets a :class:`~sim_engine.targets.plugin.PluginContext`. It returns
    an ``Outcome``, a mapping of ``Outcome`` fields (``status`` defaults to 200,
    ``ok`` to ``200 <= status < 400``, ``latency_ms`` to the wall time the call
    took), or None (success, status 200). An exception it raises becomes a failed
    outcome (status 0) naming it: a plugin never crashes a run.

    "Not possible now" is said like a YAML action's guard: ``possible(view)`` is
    asked whenever the engine draws the action for a user (``view`` is a
    :class:`~sim_engine.targets.plugin.PluginView`: ``user_id``, ``user``,
    ``memory``, ``state``); when it returns a false value, ``fallback`` is taken
    instead (itself resolved: a YAML action's own guards, another plugin's guard),
    else the user just thinks and carries on. It must be synchronous and quick
    (no I/O); an exception it raises stops the run (a programming error). The action may also return
    :data:`~sim_engine.targets.plugin.NOT_POSSIBLE` once it has looked: nothing is
    recorded and the user thinks and carries on.

    Args:
        name: the action's name (an identifier, not a built-in action's name).
        endpoint: shown as the record's ``endpoint`` (default ``plugin NAME``).
        possible: the guard ``f(view) -> bool`` (None: always possible).
        fallback: the action (plugin or ``api``) to take when the guard says no.

    Raises:
        PluginError: bad or reserved name, bad fallback name, a guard that is not a
            plain callable, or not a coroutine function.
    """
    _check_name("action", name)
    if name in RESERVED_ACTIONS:
        raise PluginError(f"action {name!r} is built in: choose another name")
    if fallback is not None:
        _check_name("fallback", fallback)
    if possible is not None and (not callable(possible) or inspect.iscoroutinefunction(possible)):
        raise PluginError(f"action {name!r}: possible must be a synchronous function")

    def tag(func: _F) -> _F:
        if not inspect.iscoroutinefunction(func):
            raise PluginError(f"action {name!r} must be an async function (async def)")
        _tag(func, PluginTag("action", name, endpoint, possible, fallback))
        return func

    return tag


def _tagger(kind: TagKind, name: str) -> Callable[[_F], _F]:
    """A decorator tagging its function as the ``kind`` named ``name``."""
    _check_name(kind, name)

    def tag(func: _F) -> _F:
        _tag(func, PluginTag(kind, name))
        return func

    return tag


def workflow(name: str) -> Callable[[_F], _F]:
    """Mark a factory ``() -> WorkflowSpec | Mapping`` as the plugin workflow ``name``.

    The workflow joins the ``api`` section of any scenario whose personas or
    workflows name it (and is validated there). Plugin workflows run only in
    scenarios with an ``api`` section.

    Raises:
        PluginError: the name is not an identifier.
    """
    return _tagger("workflow", name)


def persona(name: str) -> Callable[[_F], _F]:
    """Mark a factory ``() -> PersonaSpec | Mapping`` as the plugin persona ``name``.

    The persona joins a scenario whose ``population.personas`` share map names
    it (and whose ``personas`` section does not define it already).

    Raises:
        PluginError: the name is not an identifier.
    """
    return _tagger("persona", name)


def generator(name: str) -> Callable[[_F], _F]:
    """Mark ``f(rng: random.Random, *args: str) -> value`` as the generator ``{{name:arg:...}}``.

    Raises:
        PluginError: the name is not an identifier.
    """
    return _tagger("generator", name)


def target(name: str) -> Callable[[_F], _F]:
    """Mark a factory ``f(transport, scenario) -> Target`` as the plugin target ``name``.

    Raises:
        PluginError: the name is not an identifier.
    """
    return _tagger("target", name)


def hook(obj: Any) -> Any:
    """Mark a session hook: a class (instantiated without arguments by each registry) or an object.

    It may define ``on_session_start(user, sim_t)`` and/or
    ``on_session_end(user, sim_t)`` (synchronous; ``user`` is a
    :class:`~sim_engine.model.population.SimUser`, ``sim_t`` simulated epoch seconds).
    Returns ``obj`` unchanged, so it works as a class decorator. An object must be
    bound to a name in its module (``counter = plugins.hook(Counter())``) to be found.

    Raises:
        PluginError: neither method is defined, one is a coroutine function, or
            ``obj`` takes no attributes.
    """
    start = getattr(obj, "on_session_start", None)
    end = getattr(obj, "on_session_end", None)
    if start is None and end is None:
        raise PluginError(f"hook {obj!r} has neither on_session_start nor on_session_end")
    for method in (start, end):
        if method is not None and inspect.iscoroutinefunction(method):
            raise PluginError(f"hook {obj!r}: session hooks must be synchronous")
    _tag(obj, PluginTag("hook"))
    return obj


def on_session_start(func: _F) -> _F:
    """Mark ``func(user, sim_t)`` to be called when a user's session starts (synchronous).

    Raises:
        PluginError: ``func`` is a coroutine function.
    """
    if inspect.iscoroutinefunction(func):
        raise PluginError(f"{_qualname(func)}: session hooks must be synchronous")
    _tag(func, PluginTag("session_start"))
    return func


def on_session_end(func: _F) -> _F:
    """Mark ``func(user, sim_t)`` to be called when a user's session ends (synchronous).

    Raises:
        PluginError: ``func`` is a coroutine function.
    """
    if inspect.iscoroutinefunction(func):
        raise PluginError(f"{_qualname(func)}: session hooks must be synchronous")
    _tag(func, PluginTag("session_end"))
    return func
