"""The :class:`DeclarativeTarget` itself: the Target protocol and what the engine asks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from sim_engine.model.api_spec import ActionSpec
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import TemplateError, field
from sim_engine.targets.declarative._answers import (
    created_id,
    endpoint,
    failed,
    first_id,
    unbuildable,
)
from sim_engine.targets.declarative._auth import TOKEN_SCHEMES
from sim_engine.targets.declarative._base import settled
from sim_engine.targets.declarative._created import CreatedMixin, Picks, match_call
from sim_engine.targets.declarative._errors import ErrorsMixin
from sim_engine.targets.declarative._memory import UserState
from sim_engine.targets.declarative._plan import ActionPlan
from sim_engine.targets.transport import Response

__all__ = ["DeclarativeTarget"]


class DeclarativeTarget(ErrorsMixin, CreatedMixin):
    """Performs a scenario's ``api`` section over a transport (see the package docstring).

    Args:
        transport: where requests go (usually a
            :class:`~sim_engine.targets.resilient.ResilientTransport`).
        api: the scenario's validated ``api`` section.
        seed: seeds the target's generator (picks, generated content, error
            simulation): runs are deterministic for a seed and an order of events.
        memory_limit: bound of a memory or pool key the section does not declare
            (validated sections declare all of theirs).
        now: a clock in seconds (default :func:`time.monotonic`), for
            ``auth.token_ttl_s`` and the token age saved with a user (a fake in tests).
        registry: the plugins' generators templates may call (None: built-ins only).

    Attributes:
        transport: the transport (the dashboard and exporter read its ``statistics()``).
        api: the ``api`` section.
        created_log: where each resource an action creates is written with its delete
            handle when the answer arrives (None: not recorded; the run sets its
            ``state.db``; see :mod:`sim_engine.targets.declarative._created`).
    """

    # -- the Target protocol -------------------------------------------------------------------

    async def send(self, request: ActionRequest) -> Outcome:
        """Perform one action; every failure is an outcome (see the package docstring).

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
        return self._memory.size(self._memory.users.get(user_id), key) > 0

    def resolve(self, action_name: str, user_id: int) -> str | None:
        """Return the action to take for ``action_name`` now, or None when nothing is possible.

        An action is possible when every list it picks from and every key it
        ``requires`` holds an item and its ``max_open`` key holds fewer than
        ``limit`` items. Otherwise its ``fallback`` is tried (and that one's, never
        twice the same), then ``api.fallback``. A name that is not an action (a
        workflow) is returned unchanged: the engine expands workflows.
        """
        first = self.api.actions.get(action_name)
        if first is None or self._plan_of(first).free:  # a workflow, or nothing can block it
            return action_name
        user = self._memory.users.get(user_id)
        tried: set[str] = set()
        chain: list[str | None] = [action_name, self.api.fallback]
        while chain:
            name = chain.pop(0)
            while name is not None and name not in tried:
                tried.add(name)
                action = self.api.actions.get(name)
                if action is None:  # a workflow is never a fallback
                    break
                if self._memory.blocked(user, action) is None:
                    return name
                name = action.fallback
        return None

    def forget_user(self, user_id: int) -> None:
        """Drop everything kept for a user (deleted from the target, or gone)."""
        self._memory.users.pop(user_id, None)

    def memory(self, user_id: int) -> dict[str, list[dict[str, Any]]] | None:
        """Return a copy of a user's memory: ``memory.KEY`` -> items, oldest first
        (None for a user the target does not know). Plugins read it as ``ctx.memory``."""
        return self._memory.view(user_id)

    def export_memory(self, user_id: int) -> dict[str, Any] | None:
        """Return what the target keeps for a user, JSON-ready, to save with the user.

        Keys: ``identity`` (username, email, name; never the password),
        ``remote_id``, ``token``, ``token_age_s`` (seconds of the target's clock
        since the token was obtained, as of now), ``token_sim_time`` (simulated
        epoch seconds of the log-in that obtained it), ``memory`` (``memory.KEY``
        -> ``{"items": [...], "picks": [...]}``, oldest first). ``token`` is None
        when the user has none, and under ``auth.scheme: basic`` (every request
        needs the password, which is not saved: the user logs in again, which
        sends nothing). :meth:`restore_memory` takes the dict back exactly.

        Returns:
            the dict, or None for a user the target does not know.
        """
        keep_token = self.api.auth.effective_scheme != "basic"
        return self._memory.export_user(user_id, self._now(), keep_token)

    def restore_memory(
        self, user_id: int, data: dict[str, Any], *, password: str | None = None
    ) -> None:
        """Put back what :meth:`export_memory` returned (a resumed run).

        The user keeps its token: with ``auth.token_ttl_s`` it is renewed once
        ``token_age_s`` plus the time since the restore reaches the TTL; without,
        only when the API answers 401. A user restored with a token therefore sends
        no log-in before its next action. Renewing logs in with the user's
        identity, whose password is not saved: pass it as ``password`` (the engine
        derives it from the run secret). Deleted-item marks and shared pools are
        not per user and are not restored.

        Args:
            user_id: the engine's id for the user.
            data: the dict :meth:`export_memory` returned (after a JSON round trip).
            password: the user's password, for templates and renewals (``{user.password}``).

        Raises:
            ValueError: ``data`` is not a dict :meth:`export_memory` returned.
        """
        try:
            self._memory.restore_user(user_id, data, self._now())
        except (TypeError, KeyError) as exc:
            raise ValueError(f"not a saved memory: {exc}") from None
        if password is not None:
            self._memory.users[user_id].identity["password"] = password

    async def call_as(
        self,
        request: ActionRequest,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request as ``request``'s user under ``api.auth`` (what plugins'
        ``ctx.call`` does): ``X-Sim-Time`` and the scheme's credentials added, the token
        renewed when expired or on a 401 (then sent once more); ``headers`` win.

        What the request creates or deletes is recorded for ``sim-engine cleanup`` as
        the action of the section it matches would record it (see :meth:`_record_call`).

        Returns:
            the response (status 0 when none arrived); never raises for network trouble.
        """
        user = self._memory.user(request.user_id)
        method = method.upper()
        log = self.send_log if method in ("POST", "PUT") else None
        key = None
        if log is not None:
            matched = match_call(self.api, method, path)
            name = matched[0] if matched is not None else "ctx.call"
            key = log.sending(
                request.user_id, request.sim_time, name, method, path, method == "PUT"
            )
        resp, _ = await self._send_authed(user, request, method, path, body, dict(headers or {}))
        if self.created_log is not None and method in ("POST", "PUT", "DELETE"):
            self._record_call(user, request, method, path, resp)
        if log is not None and key is not None and settled(resp):
            log.answered(key)
        return resp

    def _record_call(
        self, user: UserState, request: ActionRequest, method: str, path: str, resp: Response
    ) -> None:
        """A plugin's request was answered: record what it created, with the delete handle
        of the ``api`` action whose method and path it matches (:func:`match_call`: the
        items in its path are that action's picks, its ``extract`` finds the new item), or
        forget what it deleted. A ``POST`` or ``PUT`` answered ``201 Created`` that matches
        no action, or whose answer does not fit the action's ``extract``, is recorded
        without a handle: cleanup reports it as staying."""
        matched = match_call(self.api, method, path)
        if matched is None:
            if method != "DELETE" and resp.status == 201:
                kind = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or path
                why = f"no action of the api section is {method} {path.split('?', 1)[0]}"
                self._record_stray(request, kind, resp, why)
            return
        name, picks = matched
        action = self.api.actions[name]
        if method == "DELETE":
            done = 200 <= resp.status < 300 or resp.status in (404, 410)
            if done and action.forget is not None and action.forget in picks:
                self._forget_deleted(picks, action.forget)
            return
        if not 200 <= resp.status < 300:
            return
        as_action = dataclasses.replace(request, action=name)
        found: list[tuple[str, list[dict[str, Any]]]] | Outcome = []
        if action.extract and resp.status != 204:
            context = self._context(user, as_action, picks)
            found = self._extract(self._plan_of(action), resp, endpoint(action), None, context)
        if isinstance(found, Outcome):
            if resp.status == 201:
                self._record_stray(as_action, name, resp, f"its answer did not fit {name}")
            return
        self._record_created(as_action, resp, found, picks)

    def adopt_answer(self, request: ActionRequest, answer: dict[str, Any]) -> Outcome:
        """Keep ``answer`` as the API's answer to ``request``'s action, though the action
        was done another way (a browser flow: ``{"id": 42}`` for the post its page
        created): the action's ``extract`` rules put it in the user's memory (later
        actions can pick it: edit, delete) and the resource it created is recorded for
        ``sim-engine cleanup``, as :meth:`send` would have done. Nothing is sent.

        Returns:
            the outcome that answer gives: ok, or a failed one naming what is missing
            (an unknown action, a field an ``extract`` rule needs).
        """
        action = self.api.actions.get(request.action)
        if action is None:
            error = f"unknown action {request.action!r}: not in the api section"
            return Outcome(0, False, 0.0, error=error, skipped=True)
        status = next((c for c in action.expect if 200 <= c < 300 and c != 204), 200)
        user = self._memory.user(request.user_id)
        context = self._context(user, request, {})
        resp = Response(status, json.dumps(answer, default=str).encode(), 0.0)
        return self._settle(request, self._plan_of(action), user, {}, context, resp, 0)

    def request_headers(self, request: ActionRequest) -> dict[str, str]:
        """``X-Sim-Time`` and ``request``'s user's credentials under ``api.auth``."""
        user = self._memory.users.get(request.user_id) or UserState()
        return {**self._base_headers(request), **self._auth_headers(user, request)}

    def end_session(self, user_id: int) -> None:
        """The user's session is over: its listings start again at their first page."""
        user = self._memory.users.get(user_id)
        if user is not None:
            user.pages.clear()

    def token_valid(self, user_id: int) -> bool:
        """Return True when the user holds a token that ``auth.token_ttl_s`` has not expired
        (the API may still refuse it: a 401 renews it). Always True without a token scheme."""
        auth = self.api.auth
        if auth.effective_scheme not in TOKEN_SCHEMES:
            return True
        user = self._memory.users.get(user_id)
        if user is None or not user.token:
            return False
        ttl = self.token_ttl(user)
        return ttl is None or self._now() - user.token_at < ttl

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
                "users_tracked": len(self._memory.users),
            }
        )
        return stats

    # -- actions -------------------------------------------------------------------------------

    async def _act(self, request: ActionRequest, action: ActionSpec) -> Outcome:
        memory = self._memory
        user = memory.user(request.user_id)
        plan = self._plan_of(action)
        kind = self._draw_error(request.action)
        if kind == "wrong_password" and self.api.auth.login is not None:
            return await self._wrong_password(user, request)
        picks: Picks = {}
        if not plan.free:
            blocked = memory.blocked(user, action)
            if blocked is not None:
                return Outcome(0, False, 0.0, error=f"not possible: {blocked}",
                               endpoint=plan.where, skipped=True)  # fmt: skip
            picks = memory.pick(user, action)
        if kind is not None:
            return await self._simulated_error(kind, user, request, action, picks)
        return await self._send_planned(request, plan, user, picks)

    async def _act_picked(
        self,
        request: ActionRequest,
        action: ActionSpec,
        user: UserState,
        picks: Picks,
    ) -> Outcome:
        """Send an action whose items are picked (name -> (key, item)) and judge the answer."""
        return await self._send_planned(request, self._plan_of(action), user, picks)

    async def _send_planned(
        self, request: ActionRequest, plan: ActionPlan, user: UserState, picks: Picks
    ) -> Outcome:
        """:meth:`_act_picked` with the action's plan at hand."""
        action = plan.action
        post_id = first_id(picks) if picks else None
        context = self._context(user, request, picks) if plan.fills else {}
        if plan.literal:
            method, path, body, headers = plan.literal
        else:
            try:
                method, path, body, headers = self._build(action, context)
            except TemplateError as exc:
                return unbuildable(exc, plan.where, post_id)
        if action.page is not None:  # the next page of a listing (this session)
            offset = user.pages.get(request.action, 0)
            path += f"{'&' if '?' in path else '?'}{action.page.param}={offset}"
        key = self._sending(request, action, method, path) if self.send_log is not None else None
        resp, retried = await self._send_authed(user, request, method, path, body, headers)
        outcome = self._settle(request, plan, user, picks, context, resp, retried)
        if key is not None and self.send_log is not None and settled(resp):
            self.send_log.answered(key)  # what it created is recorded
        return outcome

    def _settle(
        self,
        request: ActionRequest,
        plan: ActionPlan,
        user: UserState,
        picks: Picks,
        context: dict[str, dict[str, Any]],
        resp: Response,
        retried: int,
    ) -> Outcome:
        """Judge an action's answer and take what it says into memory.

        A 404 or 410 drops the picked items (listed in ``expect`` or not); ``extract``
        rules apply to 2xx answers but 204, so any other expected status is a success
        that keeps nothing; ``forget`` applies to every expected status.
        """
        action, where, status = plan.action, plan.where, resp.status
        post_id = first_id(picks) if picks else None
        if status in (404, 410):  # gone: no use picking them again
            self._memory.drop_picks(user, picks)
        bad = failed(resp, action.expect, where, post_id, retried)
        if bad is not None:
            return bad
        found: list[tuple[str, list[dict[str, Any]]]] | Outcome = []
        extracted = bool(plan.rules) and 200 <= status < 300 and status != 204
        if extracted:
            found = self._extract(plan, resp, where, post_id, context)
            if isinstance(found, Outcome):
                return found
            # a create or change: the API vouches for the items now; a listing of
            # everything the user holds (``replace``) replaces its list
            self._memory.keep(user, found, vouched=plan.vouched, replace=plan.replace)
            if action.page is not None:
                _turn_page(user, request.action, action.page.size, found)
            if post_id is None and plan.whole:
                post_id = _answer_id(plan, found)
        if post_id is None and plan.creates and 200 <= status < 300:
            post_id = created_id(resp.body)
        if self.created_log is not None and (extracted or not plan.rules):
            self._record_created(request, resp, found, picks)  # an expected 4xx created nothing
        if action.forget is not None:
            self._forget(user, picks, action.forget)
        # positional: half the cost of keywords (the order is checked by a test): status,
        # ok, latency, error, post_id, feed_ids, view_count, token, remote_id, endpoint...
        retries = resp.retries + retried
        return Outcome(
            status, True, resp.latency_ms, None, post_id, None, None, None, None, where,
            resp.skipped, retries,
        )  # fmt: skip

    def _extract(
        self,
        plan: ActionPlan,
        resp: Response,
        where: str,
        post_id: Any,
        context: dict[str, dict[str, Any]],
    ) -> list[tuple[str, list[dict[str, Any]]]] | Outcome:
        """Apply the action's ``extract`` rules to the answer (all or nothing, but for
        ``optional`` rules), each stored item completed by the rule's ``copy``.

        Returns:
            (key, items) per rule, or a bad-answer outcome (not JSON, a field missing).
        """
        doc, bad = self._json(resp, where, post_id)
        if bad is not None:
            return bad
        found: list[tuple[str, list[dict[str, Any]]]] = []
        for rule in plan.rules:
            try:
                items = rule.items(doc)
            except KeyError as exc:
                if rule.optional:
                    found.append((rule.to, []))
                    continue
                return self._bad(resp, f"missing field {exc}", where, post_id)
            except TemplateError as exc:
                return self._bad(resp, str(exc), where, post_id)
            if rule.copy:  # PICK.FIELD / user.FIELD (a plugin's request may lack a pick)
                copied = {
                    name: field(context.get(whose, {}), dotted, None)
                    for name, whose, dotted in rule.copy
                }
                items = [{**item, **copied} for item in items]
            found.append((rule.to, items))
        return found


def _turn_page(
    user: UserState, name: str, size: int, found: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    """After a page of a listing (``size`` items a page): the next one, or (nothing found)
    the first again."""
    if found and found[0][1]:
        user.pages[name] = user.pages.get(name, 0) + size
    else:
        user.pages.pop(name, None)


def _answer_id(plan: ActionPlan, found: list[tuple[str, list[dict[str, Any]]]]) -> Any:
    """The ``id`` of the item an answer is (an ``extract`` rule on the whole answer, e.g. the
    post a create made), for the records; None when there is none."""
    for index in plan.whole:
        items = found[index][1]
        if len(items) == 1 and items[0].get("id") is not None:
            return items[0]["id"]
    return None
