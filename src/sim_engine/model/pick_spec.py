"""Filters on picked items: an action's ``where`` (which remembered items it may pick).

Shape (see ``docs/own-api.md`` section 4)::

    follow_author:
      method: POST
      path: /profiles/{author.username}/follow
      pick: {author: memory.seen_authors}
      where:
        author:                                      # a pick name
          username:                                  # a dotted path inside the item
            ne: "{user.username}"                    # not mine
            not_in: memory.following.username        # not already followed
          state: open                                # shorthand for {eq: open}

Each condition compares one field of a candidate item (missing: null) with

* ``eq`` / ``ne``: a value, or a template of the acting user's fields
  (``{user.id}``, ``{user.username}``...; a string that is exactly one placeholder
  keeps the value's type);
* ``in`` / ``not_in``: a list of such values, or ``memory.KEY.FIELD`` /
  ``pool.KEY.FIELD``: the values of FIELD (dotted) over the items that list holds
  now (the user's own list for ``memory.``).

Values compare as the text they would be sent as (``7`` equals ``"7"``, ``false``
equals ``"false"``, null equals ``""``), so a YAML ``state: open`` matches the
JSON string and ``author: "{user.id}"`` matches an id given as a number or a
string. An item passes when every condition on it holds; an action is possible
only when each pick has at least one item that passes (else its fallback).

Weights and preferences (the interaction web of seed 002: trend-aware users,
reputation, reading more from those one follows)::

    read_post:
      pick: {post: memory.seen_posts}
      weight: {post: [popularity, author_posts]}     # product of (1 + term) per item
      prefer:
        post: {share: 0.6, where: {author: {in: memory.following.id}}}

``weight`` terms are ``popularity`` (how often any user picked the item so far,
counted by the target for each kind of item) or a dotted field of the item (a
count the API gives, such as ``view_count``; missing or not a number counts 0);
an item's weight is the product of ``1 + term``. ``prefer``: with probability
``share`` the pick takes only items passing ``where`` (when any does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from sim_engine.model.jsonpath import field, path_problem

__all__ = [
    "LIST_REF_RE",
    "POPULARITY",
    "Condition",
    "PreferSpec",
    "check_social",
    "check_where",
    "list_refs",
    "matcher",
    "text",
]

LIST_REF_RE = re.compile(r"^(?P<key>(?:memory|pool)\.[A-Za-z_]\w*)\.(?P<field>[A-Za-z_][\w.]*)$")
"""``memory.KEY.FIELD`` / ``pool.KEY.FIELD``: the values of a field over a list's items."""

_USER_RE = re.compile(r"\{user\.([A-Za-z_]\w*)\}")
_PLACEHOLDER_RE = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\.([A-Za-z_]\w*)\}(?!\})")
_OPS = ("eq", "ne", "in", "not_in")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # one key: looked up directly


class Condition(BaseModel):
    """One field's condition (see the module docstring); at least one operator is given.

    Attributes:
        eq: the field equals this (a value or a ``{user.FIELD}`` template).
        ne: the field differs from this.
        in_: (``in``) the field is one of these values, or of ``memory.KEY.FIELD``.
        not_in: the field is none of these values, nor of ``memory.KEY.FIELD``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    eq: Any = None
    ne: Any = None
    in_: list[Any] | str | None = Field(None, alias="in")
    not_in: list[Any] | str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """A scalar (or a mapping without any operator) means ``{eq: value}``."""
        if isinstance(value, Mapping) and value and set(value) <= {*_OPS, "in_"}:
            return value
        if isinstance(value, (Mapping, list)):
            raise ValueError(f"a condition is a value or a mapping of {', '.join(_OPS)}")
        return {"eq": value}

    @model_serializer
    def _given(self) -> dict[str, Any]:
        """Only the operators given (``eq: null`` differs from no ``eq``), by their YAML names."""
        return {name.rstrip("_"): getattr(self, name) for name in self.model_fields_set}

    @model_validator(mode="after")
    def _refs(self) -> Condition:
        for name in ("in_", "not_in"):
            value = getattr(self, name)
            if isinstance(value, str) and not LIST_REF_RE.match(value):
                raise ValueError(
                    f"{name.rstrip('_')}: a list of values or memory.KEY.FIELD, got {value!r}"
                )
        return self


Where = dict[str, dict[str, Condition]]
"""pick name -> field path -> condition."""

POPULARITY = "popularity"
"""A ``weight`` term: how often any user picked the item so far (the engine's count)."""


class PreferSpec(BaseModel):
    """A relationship preference of one pick (``prefer: {post: {share: 0.6, where: ...}}``).

    With probability ``share`` the pick takes only items passing ``where`` (when
    any does; else any item), so that such items (posts by authors the user
    follows) get that share of the picks whatever their number.

    Attributes:
        share: probability, per pick, of choosing among the preferred items (0-1).
        where: field path -> :class:`Condition` (as an action's ``where``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(ge=0, le=1)
    where: dict[str, Condition] = Field(min_length=1)


def check_social(
    weight: Mapping[str, tuple[str, ...]],
    prefer: Mapping[str, PreferSpec],
    picks: Mapping[str, str],
    user_fields: tuple[str, ...],
) -> str | None:
    """Return why an action's ``weight`` or ``prefer`` is wrong (names no pick, a term that
    is neither ``popularity`` nor a field path, a bad ``prefer.where``), or None."""
    for name, terms in weight.items():
        if name not in picks:
            return f"weight.{name}: {name!r} is not picked by this action"
        if not terms:
            return f"weight.{name}: give {POPULARITY} or a field of the item"
        for term in terms:
            problem = None if term == POPULARITY else path_problem(term)
            if problem is not None:
                return f"weight.{name}: {term!r}: {problem}"
    problem = check_where({n: p.where for n, p in prefer.items()}, picks, user_fields)
    if problem is None:
        return None
    name, _, rest = problem.removeprefix("where.").partition(":")
    pick, dot, path = name.partition(".")
    return f"prefer.{pick}.where{dot}{path}:{rest}"


def list_refs(where: Where) -> list[str]:
    """Return the ``memory.KEY`` / ``pool.KEY`` lists that ``in`` / ``not_in`` conditions read."""
    refs: list[str] = []
    for conditions in where.values():
        for cond in conditions.values():
            for value in (cond.in_, cond.not_in):
                if isinstance(value, str):
                    m = LIST_REF_RE.match(value)
                    assert m is not None
                    refs.append(m.group("key"))
    return refs


def check_where(where: Where, picks: Mapping[str, str], user_fields: tuple[str, ...]) -> str | None:
    """Return why an action's ``where`` is wrong (names no pick, a bad path, a placeholder
    other than ``{user.FIELD}``), or None. Declared lists are checked by the caller."""
    for name, conditions in where.items():
        if name not in picks:
            return f"where.{name}: {name!r} is not picked by this action"
        for path, cond in conditions.items():
            problem = path_problem(path)
            if problem is not None:
                return f"where.{name}.{path}: {problem}"
            for value in _values(cond):
                for pname, pfield in _PLACEHOLDER_RE.findall(value):
                    if pname != "user" or pfield not in user_fields:
                        return (
                            f"where.{name}.{path}: only {{user.FIELD}} may be used, "
                            f"got {{{pname}.{pfield}}}"
                        )
    return None


def _values(cond: Condition) -> list[str]:
    out = [v for v in (cond.eq, cond.ne) if isinstance(v, str)]
    for value in (cond.in_, cond.not_in):
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def text(value: Any) -> str:
    """The text a value is sent as (strings as is, ``true``/``false``, null ``""``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _fill(value: Any, user: Mapping[str, Any]) -> Any:
    """Fill ``{user.FIELD}`` in a condition's value (exactly one placeholder keeps the type)."""
    if not isinstance(value, str) or "{user." not in value:
        return value
    whole = _USER_RE.fullmatch(value)
    if whole is not None:
        return user.get(whole.group(1))
    return _USER_RE.sub(lambda m: text(user.get(m.group(1))), value)


def matcher(
    conditions: Mapping[str, Condition],
    user: Mapping[str, Any],
    values_of: Callable[[str, str], set[str]],
) -> Callable[[Mapping[str, Any]], bool]:
    """Return a test of items against ``conditions``: True when an item passes them all.

    The values the conditions compare with are worked out once, here, so testing a
    list of items costs one lookup and one comparison per condition and item.

    Args:
        conditions: field path -> condition.
        user: the acting user's fields (``id``, ``username``...) for ``{user.FIELD}``.
        values_of: ``(KEY, FIELD) -> texts`` of a list's items, for ``memory.KEY.FIELD``.
    """
    checks: list[tuple[str, bool, list[tuple[bool, frozenset[str]]]]] = []
    for path, cond in conditions.items():
        tests: list[tuple[bool, frozenset[str]]] = []  # (wanted among, texts)
        given = cond.model_fields_set
        if "eq" in given:
            tests.append((True, frozenset({text(_fill(cond.eq, user))})))
        if "ne" in given:
            tests.append((False, frozenset({text(_fill(cond.ne, user))})))
        for wanted, value in ((True, cond.in_), (False, cond.not_in)):
            if isinstance(value, str):
                m = LIST_REF_RE.match(value)
                assert m is not None
                tests.append((wanted, frozenset(values_of(m.group("key"), m.group("field")))))
            elif value is not None:
                tests.append((wanted, frozenset(text(_fill(v, user)) for v in value)))
        checks.append((path, _PLAIN.fullmatch(path) is not None, tests))

    def passes(item: Mapping[str, Any]) -> bool:
        for path, plain, tests in checks:
            got = text(item.get(path) if plain else field(item, path, None))
            for wanted, texts in tests:
                if (got in texts) != wanted:
                    return False
        return True

    return passes
