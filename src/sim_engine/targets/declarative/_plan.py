"""What the declarative target works out once per action instead of at every request.

An :class:`ActionPlan` holds what an :class:`~sim_engine.model.api_spec.ActionSpec`
(a frozen model) says that the hot path would otherwise recompute per request: its
endpoint, whether anything can make it impossible, whether its request has anything
to fill, and each ``extract`` rule compiled (:class:`RulePlan`: the JSON path parsed
once, each item built by plain key lookups when its fields are plain keys). The
target keeps one plan per action object (``TargetBase._plan_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim_engine.model.api_spec import ActionSpec, ExtractSpec
from sim_engine.model.jsonpath import Finder, TemplateError, field, find, finder, is_plain_key
from sim_engine.targets.declarative._answers import endpoint

__all__ = ["ActionPlan", "RulePlan"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CREATES = frozenset({"POST", "PUT"})


def _finder_of(path: str) -> Finder:
    """``path`` compiled; a malformed one raises its TemplateError when used, as ``find`` does."""
    try:
        return finder(path)
    except TemplateError:

        def malformed(document: Any) -> list[Any] | None:
            return find(document, path)  # raises the TemplateError

        return malformed


def _row(value: Any, fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The item an element gives: ``{name: field(value, dotted)}`` over ``fields``.

    Raises:
        KeyError: the element lacks a field (the key is its path).
    """
    return {name: field(value, dotted) for name, dotted in fields}


@dataclass(frozen=True, slots=True)
class RulePlan:
    """One ``extract`` rule, compiled.

    Attributes:
        to: the key its items go to.
        optional: finding nothing keeps nothing instead of failing the action.
        find: the rule's path compiled (:func:`~sim_engine.model.jsonpath.finder`).
        fields: ``(name, dotted path)`` per field of an item.
        copy: ``(name, whose, dotted)`` per ``copy`` entry (``post.slug`` -> ``post``, ``slug``).
        path: the rule's path (the ``KeyError`` when it finds nothing names it).
        plain: :attr:`fields` when every path is one plain key (a dict element's item is
            then built by direct lookups), else None.
    """

    to: str
    optional: bool
    find: Finder
    fields: tuple[tuple[str, str], ...]
    copy: tuple[tuple[str, str, str], ...]
    path: str
    plain: tuple[tuple[str, str], ...] | None

    @classmethod
    def of(cls, rule: ExtractSpec) -> RulePlan:
        """Compile ``rule``."""
        copy = tuple((name, *_split(source)) for name, source in rule.copy_.items())
        pairs = tuple(rule.fields.items())
        plain = pairs if all(is_plain_key(dotted) for _, dotted in pairs) else None
        return cls(rule.to, rule.optional, _finder_of(rule.path), pairs, copy, rule.path, plain)

    def items(self, doc: Any) -> list[dict[str, Any]]:
        """The items the rule takes from an answer (before ``copy``).

        Raises:
            KeyError: the path finds nothing, or an element lacks a field.
            TemplateError: a path is malformed.
        """
        values = self.find(doc)
        if values is None:
            raise KeyError(self.path)
        pairs, plain = self.fields, self.plain
        if plain is None:
            return [_row(value, pairs) for value in values]
        return [  # what ``_row`` gives, without a call per element (a quarter faster)
            {name: value[key] for name, key in plain} if type(value) is dict else _row(value, pairs)
            for value in values
        ]


def _split(source: str) -> tuple[str, str]:
    whose, _, dotted = source.partition(".")
    return whose, dotted


@dataclass(frozen=True, slots=True)
class ActionPlan:
    """What one action says, worked out once (see the module docstring).

    Attributes:
        action: the action (kept: the plan is found by its id).
        where: ``METHOD /path`` (records and metrics).
        free: it picks nothing, requires nothing, has no ``where`` nor ``max_open``:
            always possible (``Memory.blocked`` would return None).
        fills: it needs its placeholders' values (a template to fill, or a ``copy``).
        literal: its request when it has nothing to fill, else ``()``.
        rules: its ``extract`` rules, compiled.
        replace: the keys whose list an answer replaces (``replace`` rules).
        vouched: not a read (``GET``, ``HEAD``, ``OPTIONS``): the API vouches for its items.
        creates: a ``POST`` or ``PUT`` (its answer may carry the new item's id).
        whole: indexes of the rules on the whole answer (``path: ""``).
    """

    action: ActionSpec
    where: str
    free: bool
    fills: bool
    literal: tuple[Any, ...]
    rules: tuple[RulePlan, ...]
    replace: frozenset[str]
    vouched: bool
    creates: bool
    whole: tuple[int, ...]

    @classmethod
    def of(cls, action: ActionSpec, literal: tuple[Any, ...]) -> ActionPlan:
        """Work out ``action``'s plan; ``literal``: its request as ``TargetBase._literal_of``
        gives it."""
        free = not (action.pick or action.requires or action.where) and action.max_open is None
        return cls(
            action=action,
            where=endpoint(action),
            free=free,
            fills=not literal or any(rule.copy_ for rule in action.extract),
            literal=literal,
            rules=tuple(RulePlan.of(rule) for rule in action.extract),
            replace=frozenset(rule.to for rule in action.extract if rule.replace),
            vouched=action.method not in _SAFE_METHODS,
            creates=action.method in _CREATES,
            whole=tuple(i for i, rule in enumerate(action.extract) if rule.path == ""),
        )
