"""The declarative target: any HTTP API described by a scenario's ``api`` section.

:class:`DeclarativeTarget` turns the engine's :class:`~sim_engine.model.records.ActionRequest`
into the section's requests (``sign_up`` / ``log_in`` from ``api.auth``, any
other name from ``api.actions``) and keeps, for each simulated user, what the
API told it:

* identity (from the engine's sign-up / log-in payload), id on the target, token;
* memory: ``memory.KEY`` -> the newest items (dicts of fields) extracted from
  answers, bounded by ``api.memory[KEY]``; shared ``pool.KEY`` lists likewise
  (``api.pools``).

Actions pick items from memory or pools (``pick``, ``pick_strategy``), fill
their templates (:mod:`sim_engine.model.templates`), send, and on success keep what
their ``extract`` rules take from the answer and ``forget`` the item they
removed. The engine asks :meth:`DeclarativeTarget.resolve` whether an action is
possible for a user (else its fallback) and :meth:`DeclarativeTarget.has` for
workflow ``requires`` and session affinity; workflows and affinity themselves
are the engine's.

Nothing here raises for a failed call: a refused connection, a status the
action does not expect, an answer that is not JSON or lacks a field the action
extracts, a template that cannot be filled -- each is an :class:`Outcome` with
``ok=False`` and a one-line ``error`` (with a body excerpt for bad answers).

Picks: ``random`` draws uniformly; ``latest`` takes the newest item;
``popular`` draws with weight 1 + the times each item was picked so far (by
any action, from that list): preferential attachment, so the most picked items
are the likeliest and popularity grows heavy-tailed, as on real feeds, without
locking onto the first item ever picked. One generator, seeded from ``seed``,
draws picks, generated content and deliberate errors: a run is deterministic
for a seed and an order of events.

Deliberate errors (``api.errors``): with probability ``share`` an action is
replaced by one of the ``kinds`` that applies to it -- ``wrong_password`` (a
log-in with a wrong password; with HTTP Basic and no log-in, the action with a
wrong password), ``invalid_payload`` (the action's body, every field of the
wrong type), ``unknown_id`` (the picked items' ids replaced by numbers from
2,000,000,000 up, which no API has handed out). A 4xx answer is the rejection
wanted: ``intended=True``, ``error="intended: KIND"``. A 2xx or 3xx answer means
the API took it: ``ok=False``, ``intended=False``, ``error="intended error was
accepted: KIND"`` (a real finding); a 5xx or no answer is a real failure too.
``delete_account`` (the engine's clean-up of churned users) is never replaced.

Forgetting (``forget``): on success the picked item leaves the list it came
from, and its ``id`` is remembered as deleted (the last 10,000 ids) for every
list holding the *same kind of item*, in every user's memory and in the pools.
Lists are of one kind when actions put their items' ``id`` in the same place of
a path: ``/posts/{post.id}`` (update, picked from ``memory.own_posts``) and
``/posts/{post.id}/comments`` (comment, picked from ``pool.recent_posts``) make
both lists hold posts; a comments list used as ``/comments/{c.id}`` is another
kind, so deleting post 5 leaves comment 5 alone. A deleted id is dropped from
those lists lazily (when they are next read) and is not taken back from a later
``GET`` answer (a list read just before the delete); an answer to any other
method (a create) brings it back, for APIs that reuse ids. Independently, a
404 or 410 answer drops the items an action picked from where it picked them.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections.abc import Callable, Hashable
from typing import Any

from sim_engine.model.api_spec import ActionSpec, ApiSpec, RequestTemplate, placeholders
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import (
    ContentPool,
    TemplateError,
    field,
    find,
    format_value,
    render,
    render_path,
    render_query,
)
from sim_engine.targets.transport import Response, Transport

__all__ = ["DeclarativeTarget"]

_FORGOTTEN_MAX = 10_000
"""Deleted ids remembered (oldest dropped first)."""

_UNKNOWN_ID_BASE = 2_000_000_000
"""Ids used by the ``unknown_id`` error: this plus up to a million (never handed out)."""

_EXCERPT_BYTES = 120
_IDENTITY_FIELDS = ("username", "email", "name", "password")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN_SCHEMES = frozenset({"bearer", "token", "header"})


class _Items:
    """A bounded list of items (dicts of fields), oldest first, with how often each was picked.

    Items are keyed by their ``id`` field when they have one (a newer copy
    replaces an older one and becomes the newest), else by their whole content.
    """

    __slots__ = ("bound", "forget_seen", "group", "items", "picks")

    def __init__(self, bound: int, group: int) -> None:
        self.bound = max(0, bound)
        self.group = group
        self.items: dict[Hashable, dict[str, Any]] = {}
        self.picks: dict[Hashable, int] = {}
        self.forget_seen = 0  # the target's forget generation last applied here

    def add(self, item: dict[str, Any]) -> None:
        key = _item_key(item)
        self.items.pop(key, None)
        self.items[key] = item
        while len(self.items) > self.bound:
            oldest = next(iter(self.items))
            del self.items[oldest]
            self.picks.pop(oldest, None)

    def discard(self, key: Hashable) -> None:
        self.items.pop(key, None)
        self.picks.pop(key, None)


class _User:
    """What the target knows about one simulated user."""

    __slots__ = ("identity", "memory", "remote_id", "token", "token_at")

    def __init__(self) -> None:
        self.identity: dict[str, Any] = {}
        self.remote_id: Any = None
        self.token: str | None = None
        self.token_at = 0.0  # wall seconds (the target's clock) when the token was obtained
        self.memory: dict[str, _Items] | None = None


class DeclarativeTarget:
    """Performs a scenario's ``api`` section over a transport (see the module docstring).

    Args:
        transport: where requests go (usually a
            :class:`~sim_engine.targets.resilient.ResilientTransport`).
        api: the scenario's validated ``api`` section.
        seed: seeds the target's generator (picks, generated content, error
            simulation): runs are deterministic for a seed and an order of events.
        memory_limit: bound of a memory or pool key the section does not declare
            (validated sections declare all of theirs).
        now: wall clock in seconds, for ``auth.token_ttl_s`` (a fake in tests).

    Attributes:
        transport: the transport (the dashboard and exporter read its ``statistics()``).
        api: the ``api`` section.
    """

    def __init__(
        self,
        transport: Transport,
        api: ApiSpec,
        seed: int = 0,
        memory_limit: int = 50,
        *,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.api = api
        self._rng = random.Random(f"sim-engine:declarative:{seed}")
        self._content = ContentPool(seed)
        self._now = now
        self._memory_limit = memory_limit
        self._users: dict[int, _User] = {}
        self._groups = _kind_groups(api)
        self._pools = {
            f"pool.{name}": _Items(bound, self._group(f"pool.{name}"))
            for name, bound in api.pools.items()
        }
        self._forgotten: dict[tuple[int, Hashable], None] = {}  # ordered set, oldest first
        self._forget_generation = 0
        self._error_kinds = {name: _error_kinds(api, a) for name, a in api.actions.items()}
        self._intended: dict[str, int] = {}
        self._accepted = 0
        self._renewals = 0
        self._bad_answers = 0

    # -- the Target protocol -------------------------------------------------------------------

    async def send(self, request: ActionRequest) -> Outcome:
        """Perform one action; every failure is an outcome (see the module docstring).

        ``sign_up`` and ``log_in`` use ``api.auth``; any other name must be one of
        ``api.actions`` (an unknown name is a skipped, failed outcome).
        """
        if request.action == "sign_up":
            return await self._sign_up(request)
        if request.action == "log_in":
            return await self._log_in(request)
        action = self.api.actions.get(request.action)
        if action is None:
            error = f"unknown action {request.action!r}: not in the api section"
            return Outcome(0, False, 0.0, error=error, skipped=True)
        return await self._act(request, action)

    async def aclose(self) -> None:
        """Close the transport."""
        await self.transport.aclose()

    # -- what the engine asks ------------------------------------------------------------------

    def has(self, user_id: int, key: str) -> bool:
        """Return True when ``memory.KEY`` (this user's) or ``pool.KEY`` holds an item."""
        items = self._list(self._users.get(user_id), key, create=False)
        return items is not None and bool(self._fresh(items).items)

    def resolve(self, action_name: str, user_id: int) -> str | None:
        """Return the action to take for ``action_name`` now, or None when nothing is possible.

        An action is possible when every list it picks from and every key it
        ``requires`` holds an item and its ``max_open`` key holds fewer than
        ``limit`` items. Otherwise its ``fallback`` is tried (and that one's, never
        twice the same), then ``api.fallback``. A name that is not an action (a
        workflow) is returned unchanged: the engine expands workflows.
        """
        user = self._users.get(user_id)
        tried: set[str] = set()
        chain: list[str | None] = [action_name, self.api.fallback]
        while chain:
            name = chain.pop(0)
            while name is not None and name not in tried:
                tried.add(name)
                action = self.api.actions.get(name)
                if action is None:  # a workflow: the engine expands it (never as a fallback)
                    if name == action_name:
                        return name
                    break
                if self._blocked(user, action) is None:
                    return name
                name = action.fallback
        return None

    def forget_user(self, user_id: int) -> None:
        """Drop everything kept for a user (deleted from the target, or gone)."""
        self._users.pop(user_id, None)

    def memory(self, user_id: int) -> dict[str, list[dict[str, Any]]] | None:
        """Return a copy of a user's memory: ``memory.KEY`` -> items, oldest first
        (None for a user the target does not know). Plugins read it as ``ctx.memory``."""
        user = self._users.get(user_id)
        if user is None or user.memory is None:
            return None
        return {
            f"memory.{key}" if not key.startswith("memory.") else key: [
                dict(item) for item in items.items.values()
            ]
            for key, items in user.memory.items()
        }

    def statistics(self) -> dict[str, Any]:
        """Return the transport's statistics (if it has any) and the target's own counters.

        Own keys: ``intended_errors`` (deliberate errors the API rejected or not),
        ``intended_by_kind``, ``intended_accepted`` (deliberate errors the API took:
        real findings), ``token_renewals``, ``bad_answers`` (non-JSON or missing
        fields), ``users_tracked``.
        """
        stats: dict[str, Any] = {}
        read = getattr(self.transport, "statistics", None)
        if callable(read):
            inner = read()
            if isinstance(inner, dict):
                stats.update(inner)
        stats.update(
            {
                "intended_errors": sum(self._intended.values()),
                "intended_by_kind": dict(self._intended),
                "intended_accepted": self._accepted,
                "token_renewals": self._renewals,
                "bad_answers": self._bad_answers,
                "users_tracked": len(self._users),
            }
        )
        return stats

    # -- sign-up and log-in --------------------------------------------------------------------

    async def _sign_up(self, request: ActionRequest) -> Outcome:
        user = self._user(request.user_id)
        _remember_identity(user, request)
        template = self.api.auth.signup
        if template is None:
            return Outcome(200, True, 0.0, remote_id=None)
        endpoint = _endpoint(template)
        try:
            method, path, body, headers = self._build(template, self._context(user, request, {}))
        except TemplateError as exc:
            return _unbuildable(exc, endpoint)
        headers = {**self._base_headers(request), **self._key_header(), **headers}
        resp = await self.transport.request(method, path, body, headers)
        failed = _failed(resp, template.expect, endpoint)
        if failed is not None:
            return failed
        id_path = self.api.auth.user_id_path
        remote_id = None
        if id_path is not None:
            doc, bad = self._json(resp, endpoint)
            if bad is not None:
                return bad
            try:
                remote_id = field(doc, id_path)
            except (KeyError, TemplateError):
                return self._bad(resp, f"missing field {id_path!r}", endpoint)
            user.remote_id = remote_id
        return Outcome(
            resp.status,
            True,
            resp.latency_ms,
            remote_id=remote_id,
            endpoint=endpoint,
            skipped=resp.skipped,
            retries=resp.retries,
        )

    async def _log_in(self, request: ActionRequest) -> Outcome:
        user = self._user(request.user_id)
        _remember_identity(user, request)
        if request.remote_user_id is not None and user.remote_id is None:
            user.remote_id = request.remote_user_id
        if self.api.auth.login is None:
            user.token = ""
            user.token_at = self._now()
            return Outcome(200, True, 0.0, token="", remote_id=user.remote_id)
        return await self._token_call(user, request, self.api.auth.login, authed=False)

    async def _token_call(
        self, user: _User, request: ActionRequest, template: RequestTemplate, authed: bool
    ) -> Outcome:
        """Send a log-in (or refresh) request; on success keep the token (and the user's id)."""
        auth = self.api.auth
        endpoint = _endpoint(template)
        try:
            method, path, body, headers = self._build(template, self._context(user, request, {}))
        except TemplateError as exc:
            return _unbuildable(exc, endpoint)
        auth_headers = self._auth_headers(user, request) if authed else self._key_header()
        headers = {**self._base_headers(request), **auth_headers, **headers}
        resp = await self.transport.request(method, path, body, headers)
        failed = _failed(resp, template.expect, endpoint)
        if failed is not None:
            return failed
        doc, bad = self._json(resp, endpoint)
        if bad is not None:
            return bad
        try:
            token = field(doc, auth.token_path)
        except (KeyError, TemplateError):
            return self._bad(resp, f"missing field {auth.token_path!r}", endpoint)
        if token is None or isinstance(token, (dict, list)):
            return self._bad(resp, f"no token at {auth.token_path!r}", endpoint)
        id_path = auth.login_user_id_path or auth.user_id_path
        if user.remote_id is None and id_path is not None:
            user.remote_id = field(doc, id_path, None) if _valid_path(id_path) else None
        user.token = format_value(token)
        user.token_at = self._now()
        return Outcome(
            resp.status,
            True,
            resp.latency_ms,
            token=user.token,
            remote_id=user.remote_id,
            endpoint=endpoint,
            skipped=resp.skipped,
            retries=resp.retries,
        )

    async def _renew(self, user: _User, request: ActionRequest) -> bool:
        """Renew the user's token: ``auth.refresh`` if given, else (or if it fails) log in."""
        auth = self.api.auth
        if auth.refresh is None and auth.login is None:
            return False
        self._renewals += 1
        if auth.refresh is not None:
            outcome = await self._token_call(user, request, auth.refresh, authed=True)
            if outcome.ok:
                return True
        if auth.login is not None:
            outcome = await self._token_call(user, request, auth.login, authed=False)
            if outcome.ok:
                return True
        user.token = None
        return False

    # -- actions -------------------------------------------------------------------------------

    async def _act(self, request: ActionRequest, action: ActionSpec) -> Outcome:
        user = self._user(request.user_id)
        endpoint = _endpoint(action)
        kind = self._draw_error(request.action)
        if kind == "wrong_password" and self.api.auth.login is not None:
            return await self._wrong_password(user, request)
        blocked = self._blocked(user, action)
        if blocked is not None:
            return Outcome(0, False, 0.0, error=f"not possible: {blocked}", endpoint=endpoint,
                           skipped=True)  # fmt: skip
        picks = self._pick(user, action)
        if kind is not None:
            return await self._simulated_error(kind, user, request, action, picks)
        post_id = _first_id(picks)
        try:
            method, path, body, headers = self._build(action, self._context(user, request, picks))
        except TemplateError as exc:
            return _unbuildable(exc, endpoint, post_id)
        resp, retried = await self._send_authed(user, request, method, path, body, headers)
        failed = _failed(resp, action.expect, endpoint, post_id, retried)
        if failed is not None:
            if resp.status in (404, 410):
                self._drop_picks(user, action, picks)  # gone: no use picking them again
            return failed
        if action.extract:
            bad = self._keep(user, action, resp, endpoint, post_id, method)
            if bad is not None:
                return bad
        if action.forget is not None:
            self._forget(user, action, picks[action.forget])
        return Outcome(
            resp.status,
            True,
            resp.latency_ms,
            post_id=post_id,
            endpoint=endpoint,
            skipped=resp.skipped,
            retries=resp.retries + retried,
        )

    async def _send_authed(
        self,
        user: _User,
        request: ActionRequest,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
    ) -> tuple[Response, int]:
        """Send with the user's credentials; renew the token once (expired, or on a 401).

        Returns the response and 1 when the request was sent again after a renewal, else 0.
        """
        auth = self.api.auth
        scheme = auth.effective_scheme
        renewed = False
        if scheme in _TOKEN_SCHEMES and auth.token_ttl_s is not None:
            token = user.token if user.token is not None else request.token
            if not token or self._now() - user.token_at >= auth.token_ttl_s:
                renewed = True
                await self._renew(user, request)

        def all_headers() -> dict[str, str]:
            return {**self._base_headers(request), **self._auth_headers(user, request), **headers}

        resp = await self.transport.request(method, path, body, all_headers())
        if resp.status != 401 or scheme == "none" or renewed:
            return resp, 0
        if not await self._renew(user, request):
            return resp, 0
        return await self.transport.request(method, path, body, all_headers()), 1

    def _build(
        self, template: RequestTemplate, context: dict[str, dict[str, Any]]
    ) -> tuple[str, str, Any, dict[str, str]]:
        """Render a request template: method, path with query, JSON body, extra headers."""
        rng, pool = self._rng, self._content
        path = render_path(template.path, context, rng, pool)
        query = render_query(template.query, context, rng, pool)
        if query:
            path += ("&" if "?" in path else "?") + query
        body = render(template.body, context, rng, pool) if template.body is not None else None
        headers = {
            str(k): format_value(v)
            for k, v in render(dict(template.headers), context, rng, pool).items()
        }
        return template.method, path, body, headers

    def _context(
        self, user: _User, request: ActionRequest, picks: dict[str, tuple[str, dict[str, Any]]]
    ) -> dict[str, dict[str, Any]]:
        fields = {k: v for k in _IDENTITY_FIELDS if (v := user.identity.get(k)) is not None}
        remote_id = request.remote_user_id if request.remote_user_id is not None else user.remote_id
        if remote_id is not None:
            fields["id"] = remote_id
        context = {"user": fields}
        for name, (_, item) in picks.items():
            context[name] = item
        return context

    def _keep(
        self,
        user: _User,
        action: ActionSpec,
        resp: Response,
        endpoint: str,
        post_id: Any,
        method: str,
    ) -> Outcome | None:
        """Apply the action's ``extract`` rules (all or nothing); return a bad-answer outcome."""
        doc, bad = self._json(resp, endpoint, post_id)
        if bad is not None:
            return bad
        found: list[tuple[str, list[dict[str, Any]]]] = []
        for rule in action.extract:
            try:
                values = find(doc, rule.path)
                if values is None:
                    raise KeyError(rule.path)
                items = [
                    {name: field(value, path) for name, path in rule.fields.items()}
                    for value in values
                ]
            except KeyError as exc:
                return self._bad(resp, f"missing field {exc}", endpoint, post_id)
            except TemplateError as exc:
                return self._bad(resp, str(exc), endpoint, post_id)
            found.append((rule.to, items))
        fresh = method not in _SAFE_METHODS  # a create or change: the API vouches for it now
        for key, items in found:
            target = self._list(user, key, create=True)
            assert target is not None
            self._fresh(target)
            for item in items:
                mark = (target.group, item.get("id"))
                if "id" in item and _hashable(item["id"]) and mark in self._forgotten:
                    if not fresh:
                        continue  # a list read just before the delete
                    del self._forgotten[mark]
                target.add(item)
        return None

    # -- memory --------------------------------------------------------------------------------

    def _user(self, user_id: int) -> _User:
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User()
        return user

    def _group(self, key: str) -> int:
        group = self._groups.get(key)
        if group is None:  # a key the section does not declare: a kind of its own
            group = self._groups[key] = len(self._groups)
        return group

    def _list(self, user: _User | None, key: str, create: bool) -> _Items | None:
        """Return the list behind ``memory.KEY`` (the user's) or ``pool.KEY``."""
        if key.startswith("pool."):
            items = self._pools.get(key)
            if items is None and create:
                items = self._pools[key] = _Items(self._memory_limit, self._group(key))
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
            name = key.split(".", 1)[1]
            bound = self.api.memory.get(name, self._memory_limit)
            items = memory[key] = _Items(bound, self._group(key))
        return items

    def _fresh(self, items: _Items) -> _Items:
        """Drop deleted ids from a list (once per forget since it was last read)."""
        if items.forget_seen != self._forget_generation:
            items.forget_seen = self._forget_generation
            gone = [
                key
                for key in items.items
                if isinstance(key, tuple)
                and key[0] == "id"
                and (items.group, key[1]) in self._forgotten
            ]
            for key in gone:
                items.discard(key)
        return items

    def _size(self, user: _User | None, key: str) -> int:
        items = self._list(user, key, create=False)
        return len(self._fresh(items).items) if items is not None else 0

    def _blocked(self, user: _User | None, action: ActionSpec) -> str | None:
        """Return why the action is not possible now (an empty list, ``max_open``), or None."""
        for key in (*action.pick.values(), *action.requires):
            if self._size(user, key) == 0:
                return f"{key} is empty"
        guard = action.max_open
        if guard is not None and self._size(user, guard.key) >= guard.limit:
            return f"{guard.key} holds {guard.limit} or more (max_open)"
        return None

    def _pick(self, user: _User, action: ActionSpec) -> dict[str, tuple[str, dict[str, Any]]]:
        """Pick one item per ``pick`` entry (lists are known to be non-empty)."""
        picks: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, key in action.pick.items():
            items = self._list(user, key, create=False)
            assert items is not None and items.items
            keys = list(items.items)
            if action.pick_strategy == "latest":
                chosen = keys[-1]
            elif action.pick_strategy == "popular":
                weights = [1 + items.picks.get(k, 0) for k in keys]
                chosen = self._rng.choices(keys, weights)[0]
            else:
                chosen = keys[self._rng.randrange(len(keys))]
            items.picks[chosen] = items.picks.get(chosen, 0) + 1
            picks[name] = (key, items.items[chosen])
        return picks

    def _forget(self, user: _User, action: ActionSpec, pick: tuple[str, dict[str, Any]]) -> None:
        key, item = pick
        items = self._list(user, key, create=False)
        if items is not None:
            items.discard(_item_key(item))
        if "id" in item and _hashable(item["id"]):
            mark = (self._group(key), item["id"])
            self._forgotten.pop(mark, None)
            self._forgotten[mark] = None
            while len(self._forgotten) > _FORGOTTEN_MAX:
                del self._forgotten[next(iter(self._forgotten))]
            self._forget_generation += 1

    def _drop_picks(
        self, user: _User, action: ActionSpec, picks: dict[str, tuple[str, dict[str, Any]]]
    ) -> None:
        for key, item in picks.values():
            items = self._list(user, key, create=False)
            if items is not None:
                items.discard(_item_key(item))

    # -- error simulation ----------------------------------------------------------------------

    def _draw_error(self, action_name: str) -> str | None:
        """Draw whether this action becomes a deliberate error, and which (None: it does not)."""
        errors = self.api.errors
        if errors.share <= 0 or action_name == "delete_account":
            return None
        kinds = self._error_kinds.get(action_name)
        if not kinds or self._rng.random() >= errors.share:
            return None
        return kinds[self._rng.randrange(len(kinds))]

    async def _wrong_password(self, user: _User, request: ActionRequest) -> Outcome:
        template = self.api.auth.login
        assert template is not None
        endpoint = _endpoint(template)
        context = self._context(user, request, {})
        context["user"]["password"] = f"wrong-{self._rng.getrandbits(48):012x}"
        self._intended["wrong_password"] = self._intended.get("wrong_password", 0) + 1
        try:
            method, path, body, headers = self._build(template, context)
        except TemplateError as exc:
            return _unbuildable(exc, endpoint)
        headers = {**self._base_headers(request), **self._key_header(), **headers}
        resp = await self.transport.request(method, path, body, headers)
        return self._judge("wrong_password", resp, endpoint, None)

    async def _simulated_error(
        self,
        kind: str,
        user: _User,
        request: ActionRequest,
        action: ActionSpec,
        picks: dict[str, tuple[str, dict[str, Any]]],
    ) -> Outcome:
        """Send the action made wrong on purpose (``invalid_payload``, ``unknown_id``, or a
        wrong HTTP Basic password) and judge the answer."""
        self._intended[kind] = self._intended.get(kind, 0) + 1
        endpoint = _endpoint(action)
        if kind == "unknown_id":
            picks = {name: (key, self._unknown(item)) for name, (key, item) in picks.items()}
        post_id = _first_id(picks)
        context = self._context(user, request, picks)
        try:
            method, path, body, headers = self._build(action, context)
        except TemplateError as exc:
            return _unbuildable(exc, endpoint, post_id)
        if kind == "invalid_payload":
            body = _invalid(body)
        if kind == "wrong_password":  # HTTP Basic without a log-in request
            wrong = f"{user.identity.get('username', '')}:wrong-{self._rng.getrandbits(48):012x}"
            auth = {"Authorization": "Basic " + base64.b64encode(wrong.encode()).decode()}
            headers = {**self._base_headers(request), **auth, **headers}
            resp = await self.transport.request(method, path, body, headers)
        else:
            resp, _ = await self._send_authed(user, request, method, path, body, headers)
        return self._judge(kind, resp, endpoint, post_id)

    def _unknown(self, item: dict[str, Any]) -> dict[str, Any]:
        """A copy of a picked item whose fields name nothing on the target."""
        number = _UNKNOWN_ID_BASE + self._rng.randrange(1_000_000)
        out: dict[str, Any] = {}
        for name, value in item.items():
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                out[name] = value
            elif isinstance(value, int):
                out[name] = number
            else:
                out[name] = f"unknown-{number}"
        return out

    def _judge(self, kind: str, resp: Response, endpoint: str, post_id: Any) -> Outcome:
        """A 4xx is the expected rejection (intended); a 2xx/3xx is a finding; else a failure."""
        common: dict[str, Any] = {
            "post_id": post_id,
            "endpoint": endpoint,
            "skipped": resp.skipped,
            "retries": resp.retries,
        }
        status = resp.status
        if 400 <= status < 500:
            return Outcome(status, False, resp.latency_ms, error=f"intended: {kind}",
                           intended=True, **common)  # fmt: skip
        if status == 0:
            error = f"{resp.error or 'no response'} (intended: {kind})"
        elif status < 400:
            self._accepted += 1
            error = f"intended error was accepted: {kind}"
        else:
            error = f"HTTP {status} on intended {kind}: {_excerpt(resp.body)}"
        return Outcome(status, False, resp.latency_ms, error=error, **common)

    # -- helpers -------------------------------------------------------------------------------

    def _base_headers(self, request: ActionRequest) -> dict[str, str]:
        return {"X-Sim-Time": request.sim_time_iso}

    def _key_header(self) -> dict[str, str]:
        auth = self.api.auth
        if auth.effective_scheme == "api_key" and auth.api_key:
            return {auth.header: auth.api_key}
        return {}

    def _auth_headers(self, user: _User, request: ActionRequest) -> dict[str, str]:
        auth = self.api.auth
        scheme = auth.effective_scheme
        if scheme == "none":
            return {}
        if scheme == "api_key":
            return self._key_header()
        if scheme == "basic":
            username = user.identity.get("username")
            password = user.identity.get("password")
            if username is None or password is None:
                return {}
            pair = f"{username}:{password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        token = user.token if user.token is not None else request.token
        if not token:
            return {}
        if scheme == "bearer":
            return {"Authorization": f"Bearer {token}"}
        if scheme == "token":
            return {"Authorization": f"Token {token}"}
        return {auth.header: token}

    def _json(
        self, resp: Response, endpoint: str, post_id: Any = None
    ) -> tuple[Any, Outcome | None]:
        try:
            return json.loads(resp.body), None
        except ValueError:
            return None, self._bad(resp, "not JSON", endpoint, post_id)

    def _bad(self, resp: Response, reason: str, endpoint: str, post_id: Any = None) -> Outcome:
        self._bad_answers += 1
        return Outcome(
            resp.status,
            False,
            resp.latency_ms,
            error=f"bad answer ({reason}): {_excerpt(resp.body)}",
            post_id=post_id,
            endpoint=endpoint,
            skipped=resp.skipped,
            retries=resp.retries,
        )


# -- module helpers ------------------------------------------------------------------------------


def _remember_identity(user: _User, request: ActionRequest) -> None:
    """Keep the identity fields templates may use from a sign-up or log-in payload."""
    for key, value in (request.payload or {}).items():
        if key in _IDENTITY_FIELDS and value is not None:
            user.identity[key] = value


def _endpoint(template: RequestTemplate) -> str:
    return f"{template.method} {template.path}"


def _excerpt(body: bytes) -> str:
    if not body:
        return "(empty body)"
    text = body[:_EXCERPT_BYTES].decode("utf-8", "replace").replace("\n", " ")
    return text + ("…" if len(body) > _EXCERPT_BYTES else "")


def _failed(
    resp: Response, expect: tuple[int, ...], endpoint: str, post_id: Any = None, retried: int = 0
) -> Outcome | None:
    """The outcome of a response that is not a success (no answer, unexpected status), or None."""
    if resp.status == 0:
        error = resp.error or "no response"
    elif resp.status not in expect:
        error = f"HTTP {resp.status}: {_excerpt(resp.body)}"
    else:
        return None
    return Outcome(
        resp.status,
        False,
        resp.latency_ms,
        error=error,
        post_id=post_id,
        endpoint=endpoint,
        skipped=resp.skipped,
        retries=resp.retries + retried,
    )


def _unbuildable(exc: TemplateError, endpoint: str, post_id: Any = None) -> Outcome:
    return Outcome(0, False, 0.0, error=f"cannot build the request: {exc}", post_id=post_id,
                   endpoint=endpoint, skipped=True)  # fmt: skip


def _first_id(picks: dict[str, tuple[str, dict[str, Any]]]) -> Any:
    """The ``id`` of the first picked item (what the records show as touched), or None."""
    for _, item in picks.values():
        return item.get("id")
    return None


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _item_key(item: dict[str, Any]) -> Hashable:
    value = item.get("id")
    if value is not None and _hashable(value):
        return ("id", value)
    return ("content", json.dumps(item, sort_keys=True, default=str))


def _valid_path(path: str) -> bool:
    try:
        find(None, path)
    except TemplateError:
        return False
    return True


def _invalid(body: Any) -> Any:
    """The body with every field of the wrong type (an empty object or list becomes the other)."""
    if isinstance(body, dict):
        return {k: _wrong_type(v) for k, v in body.items()} if body else []
    if isinstance(body, list):
        return [_wrong_type(v) for v in body] if body else {}
    return _wrong_type(body)


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "not-a-boolean"
    if isinstance(value, (int, float)):
        return "not-a-number"
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return "not-a-list"
    if isinstance(value, dict):
        return "not-an-object"
    return 12345


def _error_kinds(api: ApiSpec, action: ActionSpec) -> list[str]:
    """The error kinds that make sense for an action (in the order ``api.errors.kinds`` lists)."""
    kinds: list[str] = []
    for kind in api.errors.kinds:
        if kind == "wrong_password":
            ok = api.auth.login is not None or api.auth.effective_scheme == "basic"
        elif kind == "invalid_payload":
            ok = action.body is not None
        else:
            ok = any(name in action.pick for name, _ in placeholders(action.path))
        if ok and kind not in kinds:
            kinds.append(kind)
    return kinds


_PLACEHOLDER_RE = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\.([A-Za-z_]\w*)\}(?!\})")


def _kind_groups(api: ApiSpec) -> dict[str, int]:
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
