"""Deliberate errors of the declarative target (``api.errors``, seed 004)."""

from __future__ import annotations

import base64
from typing import Any

from sim_engine.model.api_spec import ActionSpec
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import TemplateError
from sim_engine.targets.declarative._answers import (
    endpoint,
    excerpt,
    first_id,
    invalid,
    unbuildable,
)
from sim_engine.targets.declarative._auth import AuthMixin
from sim_engine.targets.declarative._memory import UserState
from sim_engine.targets.transport import Response

__all__ = ["UNKNOWN_ID_BASE", "ErrorsMixin"]

UNKNOWN_ID_BASE = 2_000_000_000
"""Ids used by the ``unknown_id`` error: this plus up to a million (never handed out)."""


class ErrorsMixin(AuthMixin):
    """Drawing, sending and judging deliberately wrong calls."""

    def _draw_error(self, action_name: str) -> str | None:
        """Draw whether this action becomes a deliberate error, and which (None: it does not)."""
        errors = self.api.errors
        if errors.share <= 0 or action_name == "delete_account":
            return None
        kinds = self._error_kinds.get(action_name)
        if not kinds or self._rng.random() >= errors.share:
            return None
        return kinds[self._rng.randrange(len(kinds))]

    async def _wrong_password(self, user: UserState, request: ActionRequest) -> Outcome:
        """A log-in with a wrong password."""
        template = self.api.auth.login
        assert template is not None
        where = endpoint(template)
        context = self._context(user, request, {})
        context["user"]["password"] = f"wrong-{self._rng.getrandbits(48):012x}"
        self._intended["wrong_password"] = self._intended.get("wrong_password", 0) + 1
        try:
            method, path, body, headers = self._build(template, context)
        except TemplateError as exc:
            return unbuildable(exc, where)
        headers = {**self._base_headers(request), **self._key_header(), **headers}
        resp = await self.transport.request(method, path, body, headers)
        return self._judge("wrong_password", resp, where, None)

    async def _simulated_error(
        self,
        kind: str,
        user: UserState,
        request: ActionRequest,
        action: ActionSpec,
        picks: dict[str, tuple[str, dict[str, Any]]],
    ) -> Outcome:
        """Send the action made wrong on purpose (``invalid_payload``, ``unknown_id``, or a
        wrong HTTP Basic password) and judge the answer."""
        self._intended[kind] = self._intended.get(kind, 0) + 1
        where = endpoint(action)
        if kind == "unknown_id":
            picks = {name: (key, self._unknown(item)) for name, (key, item) in picks.items()}
        post_id = first_id(picks)
        context = self._context(user, request, picks)
        try:
            method, path, body, headers = self._build(action, context)
        except TemplateError as exc:
            return unbuildable(exc, where, post_id)
        if kind == "invalid_payload":
            body = invalid(body)
        if kind == "wrong_password":  # HTTP Basic without a log-in request
            wrong = f"{user.identity.get('username', '')}:wrong-{self._rng.getrandbits(48):012x}"
            auth = {"Authorization": "Basic " + base64.b64encode(wrong.encode()).decode()}
            headers = {**self._base_headers(request), **auth, **headers}
            resp = await self.transport.request(method, path, body, headers)
        else:
            resp, _ = await self._send_authed(user, request, method, path, body, headers)
        return self._judge(kind, resp, where, post_id)

    def _unknown(self, item: dict[str, Any]) -> dict[str, Any]:
        """A copy of a picked item whose fields name nothing on the target."""
        number = UNKNOWN_ID_BASE + self._rng.randrange(1_000_000)
        out: dict[str, Any] = {}
        for name, value in item.items():
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                out[name] = value
            elif isinstance(value, int):
                out[name] = number
            else:
                out[name] = f"unknown-{number}"
        return out

    def _judge(self, kind: str, resp: Response, where: str, post_id: Any) -> Outcome:
        """A 4xx is the expected rejection (intended); a 2xx/3xx is a finding; else a failure."""
        common: dict[str, Any] = {
            "post_id": post_id,
            "endpoint": where,
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
            error = f"HTTP {status} on intended {kind}: {excerpt(resp.body)}"
        return Outcome(status, False, resp.latency_ms, error=error, **common)
