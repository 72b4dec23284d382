"""The state and request building every part of the declarative target shares."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from sim_engine.model.api_spec import ActionSpec, ApiSpec, RequestTemplate
from sim_engine.model.plugin_spec import PluginCatalog
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import (
    ContentPool,
    format_value,
    is_literal,
    render,
    render_path,
    render_query,
)
from sim_engine.targets.declarative._answers import error_kinds, excerpt
from sim_engine.targets.declarative._memory import (
    IDENTITY_FIELDS,
    OPTIONAL_IDENTITY,
    Memory,
    UserState,
)
from sim_engine.targets.declarative._plan import ActionPlan
from sim_engine.targets.transport import Form, Response, Transport

__all__ = ["SendLog", "TargetBase", "settled"]

_Literal = tuple[str, str, Any, dict[str, str]] | tuple[()]
"""A request with nothing to fill: method, path with query, None (no body), headers; or ``()``."""


class SendLog(Protocol):
    """Where requests that may create something are written before they go out, and
    their answers noted (:class:`~sim_engine.engine.journal.DispatchJournal`)."""

    def sending(
        self, user_id: int, sim_t: float, action: str, method: str, path: str, named: bool
    ) -> bytes:
        """Record a request about to go out; return its key."""
        ...

    def answered(self, key: bytes) -> None:
        """Its answer arrived, and what it created is recorded."""
        ...


def settled(resp: Response) -> bool:
    """Whether an answer settles what a request created: any status, or no answer because
    nothing was sent (circuit open) or nothing connected; a timeout or a cut connection
    leaves the request in doubt (the target may have made it: Kinto's slow sign-ups and
    creates went on after the client gave up)."""
    return resp.status != 0 or resp.skipped or (resp.error or "").startswith("Cannot connect")


class TargetBase:
    """The declarative target's state, request building and answer reading.

    Args:
        transport: where requests go (usually a
            :class:`~sim_engine.targets.resilient.ResilientTransport`).
        api: the scenario's validated ``api`` section.
        seed: seeds the target's generator (picks, generated content, error
            simulation): runs are deterministic for a seed and an order of events.
        memory_limit: bound of a memory or pool key the section does not declare
            (validated sections declare all of theirs).
        now: a clock in seconds, for ``auth.token_ttl_s`` (a fake in tests).

    Attributes:
        transport: the transport (the dashboard and exporter read its ``statistics()``).
        api: the ``api`` section.
        send_log: where requests that may create something are written ahead (None:
            nowhere; the run sets its journal, see :mod:`sim_engine.engine.journal`).
    """

    send_log: SendLog | None = None

    def __init__(
        self,
        transport: Transport,
        api: ApiSpec,
        seed: int = 0,
        memory_limit: int = 50,
        *,
        now: Callable[[], float] = time.monotonic,
        registry: PluginCatalog | None = None,
    ) -> None:
        self.transport = transport
        self.api = api
        self._rng = random.Random(f"sim-engine:declarative:{seed}")
        self._content = ContentPool(seed, registry=registry)
        self._now = now
        self._memory = Memory(api, memory_limit, self._rng)
        self._error_kinds = {name: error_kinds(api, a) for name, a in api.actions.items()}
        self._intended: dict[str, int] = {}
        self._accepted = 0
        self._renewals = 0
        self._bad_answers = 0
        # id(template) -> the template and its request when it has nothing to fill, else ()
        self._literal: dict[int, tuple[RequestTemplate, _Literal]] = {}
        self._plans: dict[int, ActionPlan] = {}  # id(action) -> its plan (which keeps it)

    def _build(
        self, template: RequestTemplate, context: dict[str, dict[str, Any]]
    ) -> tuple[str, str, Any, dict[str, str]]:
        """Render a request template: method, path with query, body (JSON, or a
        :class:`~sim_engine.targets.transport.Form`), extra headers.

        Raises:
            TemplateError: the template cannot be filled.
        """
        literal = self._literal_of(template)
        if literal:
            return literal
        rng, pool = self._rng, self._content
        path = render_path(template.path, context, rng, pool)
        query = render_query(template.query, context, rng, pool)
        if query:
            path += ("&" if "?" in path else "?") + query
        body: Any = None
        if template.form is not None:
            form = render(dict(template.form), context, rng, pool)
            body = Form({str(k): format_value(v) for k, v in form.items()})
        elif template.body is not None:
            body = render(template.body, context, rng, pool)
        headers = {
            str(k): format_value(v)
            for k, v in render(dict(template.headers), context, rng, pool).items()
        }
        return template.method, path, body, headers

    def _literal_of(self, template: RequestTemplate) -> _Literal:
        """The template's request when it has nothing to fill (rendered once), else ``()``."""
        entry = self._literal.get(id(template))
        if entry is None or entry[0] is not template:  # never another object's, reusing its id
            entry = self._literal[id(template)] = (template, _literal_request(template))
        return entry[1]

    def _plan_of(self, action: ActionSpec) -> ActionPlan:
        """The action's :class:`~sim_engine.targets.declarative._plan.ActionPlan` (worked
        out once per action object)."""
        plan = self._plans.get(id(action))
        if plan is None or plan.action is not action:  # never another object's
            plan = self._plans[id(action)] = ActionPlan.of(action, self._literal_of(action))
        return plan

    def _context(
        self,
        user: UserState,
        request: ActionRequest,
        picks: dict[str, tuple[str, dict[str, Any]]],
    ) -> dict[str, dict[str, Any]]:
        """The placeholders' values: ``user`` (identity and id) and each picked item."""
        fields = {k: v for k in IDENTITY_FIELDS if (v := user.identity.get(k)) is not None}
        for key in OPTIONAL_IDENTITY:
            fields.setdefault(key, None)
        fields["refresh_token"] = user.refresh_token
        remote_id = request.remote_user_id if request.remote_user_id is not None else user.remote_id
        if remote_id is not None:
            fields["id"] = remote_id
        context = {"user": fields}
        for name, (_, item) in picks.items():
            context[name] = item
        return context

    def _base_headers(self, request: ActionRequest) -> dict[str, str]:
        return {"X-Sim-Time": request.sim_time_iso}

    def _key_header(self) -> dict[str, str]:
        auth = self.api.auth
        if auth.effective_scheme == "api_key" and auth.api_key:
            return {auth.header: auth.api_key}
        return {}

    def _json(self, resp: Response, where: str, post_id: Any = None) -> tuple[Any, Outcome | None]:
        """The answer's JSON document, or a bad-answer outcome when it is not JSON."""
        try:
            return orjson.loads(resp.body), None  # 5x faster than json
        except ValueError:
            pass
        try:  # what orjson refuses but json reads: NaN, integers over 64 bits, UTF-16
            return json.loads(resp.body), None
        except ValueError:
            return None, self._bad(resp, "not JSON", where, post_id)

    def _bad(self, resp: Response, reason: str, where: str, post_id: Any = None) -> Outcome:
        """Count and return a bad-answer outcome (non-JSON, a field missing)."""
        self._bad_answers += 1
        return Outcome(
            resp.status,
            False,
            resp.latency_ms,
            error=f"bad answer ({reason}): {excerpt(resp.body)}",
            post_id=post_id,
            endpoint=where,
            skipped=resp.skipped,
            retries=resp.retries,
        )


def _literal_request(template: RequestTemplate) -> _Literal:
    """The request of a template with no body and nothing to fill (a listing's ``GET``),
    rendered once: method, path with query, None, headers; else ``()``."""
    if template.body is not None or template.form is not None:
        return ()
    parts = (template.path, dict(template.query), dict(template.headers))
    if not all(is_literal(part) for part in parts):
        return ()
    query = render_query(template.query, {}, random.Random(0))
    path = template.path + (("&" if "?" in template.path else "?") + query if query else "")
    headers = {str(k): format_value(v) for k, v in template.headers.items()}
    return template.method, path, None, headers
