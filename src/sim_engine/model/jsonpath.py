"""JSON paths of an ``api`` section: ``extract`` rules, ``token_path``, ``user_id_path``.

Dotted keys, ``[N]`` indexes (negative from the end) and ``[*]`` for every
element of a list (or every value of an object): ``items[*]``, ``[*]``,
``data.user``, ``items[0].id``; ``""`` is the whole document. Pure functions;
:mod:`sim_engine.model.templates` re-exports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeAlias

__all__ = ["TemplateError", "extract", "field", "find", "finder", "is_plain_key", "path_problem"]


class TemplateError(ValueError):
    """A template cannot be rendered: unknown generator, bad arguments, a missing
    placeholder value, or a malformed JSON path. The message says which.

    Defined here (the lowest module that raises it) and re-exported by
    :mod:`sim_engine.model.templates`, its documented home.
    """


_STEP_RE = re.compile(r"\[\s*(\*|-?\d+)\s*\]|([^.\[\]]+)")
_Step: TypeAlias = "tuple[str, Any]"  # ("key", str) | ("index", int) | ("all", None)


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    pos = 0
    while pos < len(path):
        if path[pos] == ".":
            pos += 1
            if not steps or pos == len(path) or path[pos] in ".[]":
                raise TemplateError(f"path {path!r}: a '.' must join two steps (at {pos - 1})")
            continue
        m = _STEP_RE.match(path, pos)
        if m is None:
            raise TemplateError(f"path {path!r}: unexpected {path[pos]!r} at {pos}")
        if m.group(1) is None:
            steps.append(("key", m.group(2)))
        elif m.group(1) == "*":
            steps.append(("all", None))
        else:
            steps.append(("index", int(m.group(1))))
        pos = m.end()
    return tuple(steps)


def path_problem(path: str) -> str | None:
    """Return why ``path`` is not a valid JSON path, or None."""
    try:
        _steps(path)
    except TemplateError as exc:
        return str(exc)
    return None


def find(document: Any, path: str) -> list[Any] | None:
    """Return the values at ``path`` in ``document``, or None when the path is missing.

    A step that matches nothing in a non-empty set of values makes the path
    missing; ``[*]`` over an empty list gives ``[]`` (present, but empty).
    Elements of a ``[*]`` that lack a later key are left out as long as some have it.

    Raises:
        TemplateError: the path is malformed.
    """
    return _walk([document], _steps(path))


def _walk(current: list[Any], steps: tuple[_Step, ...]) -> list[Any] | None:
    """Take ``steps`` from every value of ``current`` (see :func:`find`)."""
    for kind, arg in steps:
        found: list[Any] = []
        matched = False
        for value in current:
            if kind == "key":
                if isinstance(value, Mapping) and arg in value:
                    found.append(value[arg])
                    matched = True
            elif kind == "index":
                if isinstance(value, list) and -len(value) <= arg < len(value):
                    found.append(value[arg])
                    matched = True
            elif isinstance(value, list):
                found.extend(value)
                matched = True
            elif isinstance(value, Mapping):
                found.extend(value.values())
                matched = True
        if current and not matched:
            return None
        current = found
    return current


Finder: TypeAlias = Callable[[Any], list[Any] | None]
"""``find`` with its path compiled in: document -> values, or None when the path is missing."""


@lru_cache(maxsize=1024)
def finder(path: str) -> Finder:
    """Return ``lambda document: find(document, path)``, the path parsed once: its steps
    up to the first ``[*]`` walk one value (no list of values built per step).

    Raises:
        TemplateError: the path is malformed.
    """
    steps = _steps(path)
    cut = next((i for i, (kind, _) in enumerate(steps) if kind == "all"), len(steps))
    head, tail = steps[:cut], steps[cut:]
    every = tail == (("all", None),)

    def run(document: Any) -> list[Any] | None:
        value = document
        for kind, arg in head:  # one value until the first [*]
            if kind == "key":
                if not ((type(value) is dict or isinstance(value, Mapping)) and arg in value):
                    return None
            elif not (isinstance(value, list) and -len(value) <= arg < len(value)):
                return None
            value = value[arg]
        if not tail:
            return [value]
        if every:  # a last [*]: the one value's elements
            if isinstance(value, list):
                return list(value)
            return list(value.values()) if isinstance(value, Mapping) else None
        return _walk([value], tail)

    return run


def extract(document: Any, path: str) -> list[Any]:
    """Return the values at ``path`` (``[]`` when missing: the caller decides if that fails).

    A path without ``[*]`` gives at most one value; ``""`` gives ``[document]``.

    Raises:
        TemplateError: the path is malformed.
    """
    found = find(document, path)
    return found if found is not None else []


_MISSING: Any = object()
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@lru_cache(maxsize=1024)
def is_plain_key(path: str) -> bool:
    """True when ``path`` is one key (no dots, no brackets): looked up directly."""
    return _PLAIN_KEY.fullmatch(path) is not None


def field(item: Any, dotted: str, default: Any = _MISSING) -> Any:
    """Return the value at a JSON path inside ``item`` (``""``: the item itself).

    A path with ``[*]`` returns the list of its values.

    Raises:
        KeyError: the path is missing and no ``default`` was given (the key is ``dotted``).
        TemplateError: the path is malformed.
    """
    if is_plain_key(dotted) and (type(item) is dict or isinstance(item, Mapping)):
        # the common case (``id``, ``author_id``): one key, no path to walk
        if dotted in item:
            return item[dotted]
        if default is _MISSING:
            raise KeyError(dotted)
        return default
    found = find(item, dotted)
    if found is None:
        if default is _MISSING:
            raise KeyError(dotted)
        return default
    if any(kind == "all" for kind, _ in _steps(dotted)):
        return found
    return found[0]
