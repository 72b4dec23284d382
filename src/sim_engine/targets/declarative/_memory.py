"""What a declarative target keeps: each user's memory lists, the shared pools, deleted ids.

:class:`Memory` holds, per simulated user, a :class:`UserState` (identity, id on
the target, token, ``memory.KEY`` lists) and the shared ``pool.KEY`` lists; it
picks items for an action, forgets deleted ones (lazily, by kind of item, see
the package docstring) and turns one user's state into a JSON-ready dict and
back (:meth:`Memory.export_user`, :meth:`Memory.restore_user`), so that a
resumed run keeps every user's memory and session.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from sim_engine.model.api_spec import ActionSpec, ApiSpec
from sim_engine.model.jsonpath import field
from sim_engine.model.pick_spec import Condition, matcher, text
from sim_engine.targets.declarative._kinds import hashable, item_key, kind_groups
from sim_engine.targets.declarative._picking import Popularity, choose

__all__ = ["Items", "Memory", "UserState", "hashable", "item_key", "kind_groups"]  # re-exported

FORGOTTEN_MAX = 10_000
"""Deleted ids remembered (oldest dropped first)."""

IDENTITY_FIELDS = ("username", "email", "name", "password", "avatar_url", "tag")
OPTIONAL_IDENTITY = ("avatar_url", "tag")  # None when the user has none
"""Identity fields templates may use (``{user.FIELD}``), kept from sign-up / log-in payloads."""

_SAVED_IDENTITY = ("username", "email", "name")
"""Identity fields saved with a user (never the password: it derives from the run secret)."""


class Items:
    """A bounded list of items (dicts of fields), oldest first, with how often each was picked.

    Items are keyed by their ``id`` field when they have one (a newer copy
    replaces an older one and becomes the newest), else by their whole content.

    Args:
        bound: most items kept (the oldest go first); negative counts as 0.
        group: the kind of item the list holds (see :func:`kind_groups`).
    """

    __slots__ = ("bound", "forget_seen", "group", "items", "picks")

    def __init__(self, bound: int, group: int) -> None:
        self.bound = max(0, bound)
        self.group = group
        self.items: dict[Hashable, dict[str, Any]] = {}
        self.picks: dict[Hashable, int] = {}
        self.forget_seen = 0  # the memory's forget generation last applied here

    def add(self, item: dict[str, Any]) -> None:
        """Add an item as the newest (replacing an older copy); drop the oldest over the bound."""
        self.add_all((item,))

    def add_all(self, items: Iterable[dict[str, Any]]) -> None:
        """:meth:`add` each item in turn (an ``id`` that is an int or a string keys its item
        as :func:`item_key` does, without asking whether it hashes)."""
        held, bound = self.items, self.bound
        for item in items:
            value = item.get("id")
            kind = type(value)
            key = ("id", value) if kind is int or kind is str else item_key(item)
            held.pop(key, None)
            held[key] = item
            while len(held) > bound:
                oldest = next(iter(held))
                del held[oldest]
                self.picks.pop(oldest, None)

    def discard(self, key: Hashable) -> None:
        """Remove the item under ``key`` (see :func:`item_key`), if held."""
        self.items.pop(key, None)
        self.picks.pop(key, None)

    def export(self) -> dict[str, list[Any]]:
        """Return ``{"items": [item, ...], "picks": [count, ...]}``, oldest first (JSON-ready
        when the items are: they come from JSON answers)."""
        keys = list(self.items)
        return {
            "items": [dict(self.items[k]) for k in keys],
            "picks": [self.picks.get(k, 0) for k in keys],
        }

    def restore(self, data: Any) -> None:
        """Add the items (and pick counts) of :meth:`export`'s dict.

        Raises:
            ValueError: ``data`` is not such a dict.
        """
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ValueError("a memory list must be {'items': [...], 'picks': [...]}")
        picks = data.get("picks")
        if picks is None:
            picks = [0] * len(data["items"])
        if not isinstance(picks, list) or len(picks) != len(data["items"]):
            raise ValueError("a memory list's 'picks' must count each of its items")
        for item, count in zip(data["items"], picks, strict=True):
            if not isinstance(item, dict) or not isinstance(count, int):
                raise ValueError("memory items are objects and pick counts integers")
            self.add(dict(item))
            key = item_key(item)
            if count and key in self.items:
                self.picks[key] = count


class UserState:
    """What the target knows about one simulated user.

    Attributes:
        identity: identity fields from the sign-up / log-in payloads.
        remote_id: the user's id on the target (None until known).
        token: the auth token (None: none yet, or renewal failed).
        token_at: the target's clock (seconds) when the token was obtained.
        token_sim: simulated epoch seconds of the request that obtained it.
        token_ttl: the token's lifetime in wall seconds from the answer that gave it
            (``auth.expires_in_path``); None: ``auth.token_ttl_s``.
        refresh_token: the refresh token (``auth.refresh_token_path``), None if none.
        memory: ``memory.KEY`` -> list (None until the first list is created).
        pages: action -> the offset of its next page in this session (``page``).
    """

    __slots__ = (
        "identity", "memory", "pages", "refresh_token", "remote_id", "token", "token_at",
        "token_sim", "token_ttl",
    )  # fmt: skip

    def __init__(self) -> None:
        self.identity: dict[str, Any] = {}
        self.remote_id: Any = None
        self.token: str | None = None
        self.token_at = 0.0
        self.token_sim: float | None = None
        self.token_ttl: float | None = None
        self.refresh_token: str | None = None
        self.memory: dict[str, Items] | None = None
        self.pages: dict[str, int] = {}


class Memory:
    """Every user's :class:`UserState`, the shared pools and the ids deleted lately.

    Args:
        api: the ``api`` section (memory and pool bounds, kinds of items).
        memory_limit: bound of a key the section does not declare.
        rng: the target's generator (draws picks).
    """

    def __init__(self, api: ApiSpec, memory_limit: int, rng: random.Random) -> None:
        self._api = api
        self._limit = memory_limit
        self._rng = rng
        self.users: dict[int, UserState] = {}
        self._groups = kind_groups(api)
        self.pools = {
            f"pool.{name}": Items(bound, self.group(f"pool.{name}"))
            for name, bound in api.pools.items()
        }
        self.forgotten: dict[tuple[int, Hashable], None] = {}  # ordered set, oldest first
        self._generation = 0
        self.popularity = Popularity()

    # -- users ---------------------------------------------------------------------------------

    def user(self, user_id: int) -> UserState:
        """Return the user's state, created empty when new."""
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = UserState()
        return user

    def group(self, key: str) -> int:
        """Return the kind of item ``key`` holds (a key the section does not declare: its own)."""
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = len(self._groups)
        return group

    def lookup(self, user: UserState | None, key: str, create: bool) -> Items | None:
        """Return the list behind ``memory.KEY`` (the user's) or ``pool.KEY``; None when it
        does not exist and ``create`` is False."""
        if key.startswith("pool."):
            items = self.pools.get(key)
            if items is None and create:
                items = self.pools[key] = Items(self._limit, self.group(key))
            return items
        if user is None:
            return None
        memory = user.memory
        if memory is None:
            if not create:
                return None
            memory = user.memory = {}
        items = memory.get(key)
        if items is None and create:
            bound = self._api.memory.get(key.split(".", 1)[1], self._limit)
            items = memory[key] = Items(bound, self.group(key))
        return items

    def fresh(self, items: Items) -> Items:
        """Drop deleted ids from a list (once per forget since it was last read); return it."""
        if items.forget_seen != self._generation:
            items.forget_seen = self._generation
            gone = [
                key
                for key in items.items
                if isinstance(key, tuple)
                and key[0] == "id"
                and (items.group, key[1]) in self.forgotten
            ]
            for key in gone:
                items.discard(key)
        return items

    def size(self, user: UserState | None, key: str) -> int:
        """Return how many live items ``key`` holds for the user."""
        items = self.lookup(user, key, create=False)
        return len(self.fresh(items).items) if items is not None else 0

    # -- actions -------------------------------------------------------------------------------

    def blocked(self, user: UserState | None, action: ActionSpec) -> str | None:
        """Return why the action is not possible now (an empty list, ``max_open``), or None."""
        for key in (*action.pick.values(), *action.requires):
            if self.size(user, key) == 0:
                return f"{key} is empty"
        for name in action.where:
            items = self.lookup(user, action.pick[name], create=False)
            if items is not None and not self.candidates(user, action, name, items, first=True):
                return f"no item of {action.pick[name]} passes where.{name}"
        guard = action.max_open
        if guard is not None and self.size(user, guard.key) >= guard.limit:
            return f"{guard.key} holds {guard.limit} or more (max_open)"
        return None

    def pick(self, user: UserState, action: ActionSpec) -> dict[str, tuple[str, dict[str, Any]]]:
        """Pick one item per ``pick`` entry (the lists are known to be non-empty): among
        those passing ``where``, with a share among those passing ``prefer`` (when any
        does), drawn by ``weight`` or ``pick_strategy`` (:mod:`._picking`). Every pick
        counts toward the item's popularity.

        Returns:
            name -> (key picked from, item).
        """
        picks: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, key in action.pick.items():
            items = self.lookup(user, key, create=False)
            assert items is not None and items.items
            keys = self.candidates(user, action, name, items)
            prefer = action.prefer.get(name)
            if prefer is not None and self._rng.random() < prefer.share:
                passes = self._matcher(user, prefer.where)
                keys = [k for k in keys if passes(items.items[k])] or keys
            chosen = choose(action, name, items, keys, self._rng, self.popularity)
            items.picks[chosen] = items.picks.get(chosen, 0) + 1
            self.popularity.add(items.group, chosen)
            picks[name] = (key, items.items[chosen])
        return picks

    def candidates(
        self,
        user: UserState | None,
        action: ActionSpec,
        name: str,
        items: Items,
        first: bool = False,
    ) -> list[Hashable]:
        """Return the keys of the (live) items of ``items`` that pick ``name`` may take: all,
        or those passing the action's ``where.NAME`` (see :mod:`sim_engine.model.pick_spec`);
        with ``first``, at most the first (enough to know whether the pick is possible)."""
        keys = list(self.fresh(items).items)
        conditions = action.where.get(name)
        if not conditions:
            return keys
        passes = self._matcher(user, conditions)
        if first:
            return next(([k] for k in keys if passes(items.items[k])), [])
        return [k for k in keys if passes(items.items[k])]

    def _matcher(
        self, user: UserState | None, conditions: Mapping[str, Condition]
    ) -> Callable[[Mapping[str, Any]], bool]:
        """A test of items against ``conditions`` for this user (its fields, its lists)."""
        fields: dict[str, Any] = dict(user.identity) if user is not None else {}
        fields["id"] = user.remote_id if user is not None else None
        seen: dict[tuple[str, str], set[str]] = {}

        def values_of(key: str, path: str) -> set[str]:
            if (key, path) not in seen:
                held = self.lookup(user, key, create=False)
                seen[(key, path)] = (
                    {text(field(i, path, None)) for i in self.fresh(held).items.values()}
                    if held is not None
                    else set()
                )
            return seen[(key, path)]

        return matcher(conditions, fields, values_of)

    def forget(self, user: UserState, pick: tuple[str, dict[str, Any]]) -> None:
        """An item was deleted: drop it from its list, and its id from every list of its kind."""
        key, item = pick
        items = self.lookup(user, key, create=False)
        if items is not None:
            items.discard(item_key(item))
        if "id" in item and hashable(item["id"]):
            mark = (self.group(key), item["id"])
            self.popularity.drop(mark[0], item_key(item))
            self.forgotten.pop(mark, None)
            self.forgotten[mark] = None
            while len(self.forgotten) > FORGOTTEN_MAX:
                del self.forgotten[next(iter(self.forgotten))]
            self._generation += 1

    def drop_picks(self, user: UserState, picks: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """The picked items are gone (404, 410): drop them from where they were picked."""
        for key, item in picks.values():
            items = self.lookup(user, key, create=False)
            if items is not None:
                items.discard(item_key(item))

    def clear(self, user: UserState, key: str) -> None:
        """Empty one of the user's lists (``memory.KEY``; a shared pool is left alone)."""
        if key.startswith("memory."):
            items = self.lookup(user, key, create=False)
            if items is not None:
                items.items.clear()
                items.picks.clear()

    def keep(
        self,
        user: UserState,
        found: list[tuple[str, list[dict[str, Any]]]],
        vouched: bool,
        replace: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Add extracted items to their lists.

        Args:
            user: the acting user.
            found: (key, items) per ``extract`` rule.
            vouched: the answer is to a create or change (not a read), so a deleted id
                in it is back (an API that reuses ids); else a deleted id is skipped
                (a list read just before the delete).
            replace: keys whose list the answer replaces (a listing of everything).
        """
        for key in replace:
            self.clear(user, key)
        forgotten = self.forgotten
        for key, items in found:
            target = self.lookup(user, key, create=True)
            assert target is not None
            self.fresh(target)
            if not forgotten:  # nothing deleted lately (the common case): keep them all
                target.add_all(items)
                continue
            for item in items:
                mark = (target.group, item.get("id"))
                if "id" in item and hashable(item["id"]) and mark in forgotten:
                    if not vouched:
                        continue
                    del forgotten[mark]
                target.add(item)

    # -- reading and saving --------------------------------------------------------------------

    def view(self, user_id: int) -> dict[str, list[dict[str, Any]]] | None:
        """Return a copy of a user's memory: ``memory.KEY`` -> items, oldest first, deleted
        ones left out (None for a user not known)."""
        user = self.users.get(user_id)
        if user is None or user.memory is None:
            return None
        return {
            key if key.startswith("memory.") else f"memory.{key}": [
                dict(item) for item in self.fresh(items).items.values()
            ]
            for key, items in user.memory.items()
        }

    def export_user(self, user_id: int, now: float, keep_token: bool) -> dict[str, Any] | None:
        """Return one user's state as a JSON-ready dict (None for a user not known).

        Keys: ``identity`` (username, email, name -- never the password),
        ``remote_id``, ``token`` (None unless ``keep_token``), ``token_age_s``
        (seconds of the target's clock since the token was obtained, rounded to
        the microsecond; None without a token), ``token_sim_time`` (simulated
        epoch seconds of the request that obtained it), ``token_ttl_s`` (its lifetime
        from the answer, None: the section's), ``refresh_token``, ``memory``
        (``memory.KEY`` -> :meth:`Items.export`). Deleted ids are dropped first.

        Args:
            user_id: the engine's id for the user.
            now: the target's clock, seconds.
            keep_token: save the token (False when requests need the password).
        """
        user = self.users.get(user_id)
        if user is None:
            return None
        token = user.token if keep_token else None
        return {
            "identity": {k: v for k in _SAVED_IDENTITY if (v := user.identity.get(k)) is not None},
            "remote_id": user.remote_id,
            "token": token,
            "token_age_s": round(now - user.token_at, 6) if token is not None else None,
            "token_sim_time": user.token_sim if token is not None else None,
            "token_ttl_s": user.token_ttl if token is not None else None,
            "refresh_token": user.refresh_token if keep_token else None,
            "memory": {
                key: self.fresh(items).export() for key, items in (user.memory or {}).items()
            },
        }

    def restore_user(self, user_id: int, data: Any, now: float) -> None:
        """Replace a user's state by one :meth:`export_user` returned.

        Args:
            user_id: the engine's id for the user.
            data: the exported dict.
            now: the target's clock, seconds (the token's age counts back from it).

        Raises:
            ValueError: ``data`` is not an exported user state.
        """
        if not isinstance(data, dict) or not isinstance(data.get("memory", {}), dict):
            raise ValueError("a saved memory must be an object with a 'memory' object")
        user = UserState()
        identity = data.get("identity") or {}
        if not isinstance(identity, dict):
            raise ValueError("a saved memory's 'identity' must be an object")
        user.identity = {k: v for k, v in identity.items() if k in IDENTITY_FIELDS}
        user.remote_id = data.get("remote_id")
        token = data.get("token")
        if token is not None:
            user.token = str(token)
            user.token_at = now - float(data.get("token_age_s") or 0.0)
            sim = data.get("token_sim_time")
            user.token_sim = float(sim) if sim is not None else None
            ttl = data.get("token_ttl_s")
            user.token_ttl = float(ttl) if ttl is not None else None
        refresh = data.get("refresh_token")
        user.refresh_token = str(refresh) if refresh is not None else None
        for key, saved in (data.get("memory") or {}).items():
            items = self.lookup(user, str(key), create=True)
            assert items is not None
            items.restore(saved)
        self.users[user_id] = user
