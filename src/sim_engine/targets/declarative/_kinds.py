"""Items and kinds of items of a declarative target's lists.

:func:`item_key` keys an item by its ``id`` (else its content); :func:`kind_groups`
groups the ``memory.KEY`` / ``pool.KEY`` lists holding the same kind of item (see the
package docstring, "Forgetting").
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from typing import Any

from sim_engine.model.api_spec import ApiSpec

__all__ = ["hashable", "item_key", "kind_groups"]


def hashable(value: Any) -> bool:
    """Return True when ``value`` can key a dict."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def item_key(item: dict[str, Any]) -> Hashable:
    """Return an item's key: ``("id", ID)`` when it has a hashable id, else its content."""
    value = item.get("id")
    if value is not None and hashable(value):
        return ("id", value)
    return ("content", json.dumps(item, sort_keys=True, default=str))


_PLACEHOLDER_RE = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\.([A-Za-z_]\w*)\}(?!\})")


def kind_groups(api: ApiSpec) -> dict[str, int]:
    """Group memory and pool keys that hold the same kind of item.

    An action whose path holds ``{NAME.id}`` for an item picked from KEY says
    what KEY's ids are: the path up to that placeholder, other placeholders
    blurred (``/posts/{post.id}`` and ``/posts/{post.id}/comments`` both give
    ``/posts/{}``). Keys whose ids fill the same shape are of one kind.

    Returns:
        key -> group number (connected components; a key alone is its own group).
    """
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    by_shape: dict[str, str] = {}
    for action in api.actions.values():
        for name, key in action.pick.items():
            for m in _PLACEHOLDER_RE.finditer(action.path):
                if m.group(1) != name or m.group(2) != "id":
                    continue
                prefix = _PLACEHOLDER_RE.sub(_blur, action.path[: m.start()])
                other = by_shape.setdefault(prefix + "{}", key)
                parent[root(key)] = root(other)
                break
    keys = {*(f"memory.{k}" for k in api.memory), *(f"pool.{k}" for k in api.pools), *parent}
    roots = sorted({root(k) for k in keys})
    number = {r: i for i, r in enumerate(roots)}
    return {key: number[root(key)] for key in keys}


def _blur(m: re.Match[str]) -> str:
    return m.group(0) if m.group(1) == "user" else "{*}"
