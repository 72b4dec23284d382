"""How a declarative target chooses among the items a pick may take.

An action's ``weight`` (:mod:`sim_engine.model.pick_spec`) draws items with weight
the product of ``1 + term`` over its terms: ``popularity`` is how often any user
picked the item so far (:class:`Popularity`, kept per kind of item, so a post read
from one user's feed page and from another's trending list counts once), a field
is a number the API gave with the item (``view_count``). Without ``weight`` the
action's ``pick_strategy`` chooses: ``random`` (uniform), ``latest`` (the newest)
or ``popular`` (1 + the times the item was picked from that list).

Drawing with weight ``1 + picks so far`` is preferential attachment (Barabási &
Albert 1999; Simon 1955 for word and city sizes): items that arrive over time and
are picked in proportion to how often they were picked end up with heavy-tailed
counts, as views per post are on real sites.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

from sim_engine.model.api_spec import ActionSpec
from sim_engine.model.jsonpath import field
from sim_engine.model.pick_spec import POPULARITY

__all__ = ["POPULARITY_MAX", "Popularity", "choose", "weight_of"]

POPULARITY_MAX = 100_000
"""Items whose popularity is kept (the least recently picked are dropped first)."""


class _Held(Protocol):
    """A list of items, as ``_memory.Items`` holds them."""

    group: int
    items: dict[Hashable, dict[str, Any]]
    picks: dict[Hashable, int]


class Popularity:
    """How often any user picked each item so far, per kind of item.

    Counts live in the target's memory only (like the pools, they are not saved
    with a resumed run: they build up again as users pick).

    Args:
        bound: most items counted; past it the least recently picked is dropped.
    """

    __slots__ = ("bound", "counts")

    def __init__(self, bound: int = POPULARITY_MAX) -> None:
        self.bound = max(1, bound)
        self.counts: dict[tuple[int, Hashable], int] = {}

    def get(self, group: int, key: Hashable) -> int:
        """Return the picks counted for the item ``key`` (see ``item_key``) of kind ``group``."""
        return self.counts.get((group, key), 0)

    def add(self, group: int, key: Hashable) -> None:
        """Count one pick of an item (it becomes the most recently picked)."""
        mark = (group, key)
        self.counts[mark] = self.counts.pop(mark, 0) + 1
        if len(self.counts) > self.bound:
            del self.counts[next(iter(self.counts))]

    def drop(self, group: int, key: Hashable) -> None:
        """Forget a deleted item's count."""
        self.counts.pop((group, key), None)


def _number(value: Any) -> float:
    """A term's value: a finite non-negative number (a numeric string counts), else 0."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0.0
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return max(0.0, float(value))


def weight_of(item: dict[str, Any], terms: Sequence[str], popularity: int) -> float:
    """Return an item's weight: the product of ``1 + term`` over ``terms``.

    Args:
        item: the item's fields.
        terms: ``popularity`` or dotted field paths of the item.
        popularity: the item's :class:`Popularity` count (for the ``popularity`` term).
    """
    weight = 1.0
    for term in terms:
        value = popularity if term == POPULARITY else _number(field(item, term, None))
        weight *= 1.0 + value
    return weight if math.isfinite(weight) else 1e300


def choose(
    action: ActionSpec,
    name: str,
    held: _Held,
    keys: list[Hashable],
    rng: random.Random,
    popularity: Popularity,
) -> Hashable:
    """Return the key of the item pick ``name`` takes among ``keys`` (non-empty).

    Args:
        action: the action (its ``weight`` for ``name``, else its ``pick_strategy``).
        name: the pick's name.
        held: the list the keys are from.
        keys: the candidates' keys (oldest first).
        rng: the target's generator.
        popularity: the picks counted per item.
    """
    terms = action.weight.get(name)
    if terms:
        group = held.group
        weights = [weight_of(held.items[k], terms, popularity.get(group, k)) for k in keys]
        return rng.choices(keys, weights)[0]
    if action.pick_strategy == "latest":
        return keys[-1]
    if action.pick_strategy == "popular":
        return rng.choices(keys, [1 + held.picks.get(k, 0) for k in keys])[0]
    return keys[rng.randrange(len(keys))]
