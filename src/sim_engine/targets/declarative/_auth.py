"""Sign-up, log-in, token renewal and authenticated sends of the declarative target."""

from __future__ import annotations

import base64
from functools import cached_property
from typing import Any

from sim_engine.model.api_spec import RequestTemplate
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import TemplateError, field, format_value
from sim_engine.targets.declarative._answers import (
    endpoint,
    failed,
    remember_identity,
    unbuildable,
    valid_path,
)
from sim_engine.targets.declarative._base import TargetBase, settled
from sim_engine.targets.declarative._memory import UserState
from sim_engine.targets.transport import Response

__all__ = ["TOKEN_SCHEMES", "AuthMixin"]

TOKEN_SCHEMES = frozenset({"bearer", "token", "header"})
"""Schemes that send a token obtained by logging in."""


class AuthMixin(TargetBase):
    """``api.auth``: signing up, logging in, renewing tokens, sending with credentials."""

    async def _sign_up(self, request: ActionRequest) -> Outcome:
        user = self._memory.user(request.user_id)
        remember_identity(user, request)
        template = self.api.auth.signup
        if template is None:  # nothing to send: ``skipped``, and not recorded
            return Outcome(200, True, 0.0, remote_id=None, skipped=True)
        where = endpoint(template)
        try:
            method, path, body, headers = self._build(template, self._context(user, request, {}))
        except TemplateError as exc:
            return unbuildable(exc, where)
        headers = {**self._base_headers(request), **self._key_header(), **headers}
        log = self.send_log  # an account made with no answer is in doubt (see _created)
        key = log.sending(request.user_id, request.sim_time, "sign_up", method, path, False) \
            if log is not None else None  # fmt: skip
        resp = await self.transport.request(method, path, body, headers)
        if log is not None and key is not None and settled(resp):
            log.answered(key)
        bad = failed(resp, template.expect, where)
        if bad is not None:
            return bad
        id_path = self.api.auth.user_id_path
        remote_id = None
        if id_path is not None:
            doc, bad = self._json(resp, where)
            if bad is not None:
                return bad
            try:
                remote_id = field(doc, id_path)
            except (KeyError, TemplateError):
                return self._bad(resp, f"missing field {id_path!r}", where)
            user.remote_id = remote_id
        return Outcome(
            resp.status,
            True,
            resp.latency_ms,
            remote_id=remote_id,
            endpoint=where,
            skipped=resp.skipped,
            retries=resp.retries,
        )

    async def _log_in(self, request: ActionRequest) -> Outcome:
        user = self._memory.user(request.user_id)
        remember_identity(user, request)
        if request.remote_user_id is not None and user.remote_id is None:
            user.remote_id = request.remote_user_id
        if self.api.auth.login is None:
            user.token = ""
            user.token_at = self._now()
            user.token_sim = request.sim_time
            return Outcome(200, True, 0.0, token="", remote_id=user.remote_id, skipped=True)
        return await self._token_call(user, request, self.api.auth.login, authed=False)

    async def _token_call(
        self, user: UserState, request: ActionRequest, template: RequestTemplate, authed: bool
    ) -> Outcome:
        """Send a log-in (or refresh) request; on success keep the token (and the user's id)."""
        auth = self.api.auth
        where = endpoint(template)
        try:
            method, path, body, headers = self._build(template, self._context(user, request, {}))
        except TemplateError as exc:
            return unbuildable(exc, where)
        auth_headers = self._auth_headers(user, request) if authed else self._key_header()
        headers = {**self._base_headers(request), **auth_headers, **headers}
        resp = await self.transport.request(method, path, body, headers)
        bad = failed(resp, template.expect, where)
        if bad is not None:
            return bad
        doc, bad = self._json(resp, where)
        if bad is not None:
            return bad
        try:
            token = field(doc, auth.token_path)
        except (KeyError, TemplateError):
            return self._bad(resp, f"missing field {auth.token_path!r}", where)
        if token is None or isinstance(token, (dict, list)):
            return self._bad(resp, f"no token at {auth.token_path!r}", where)
        id_path = auth.login_user_id_path or auth.user_id_path
        if user.remote_id is None and id_path is not None:
            user.remote_id = field(doc, id_path, None) if valid_path(id_path) else None
        self._keep_token(user, request, token, doc)
        return Outcome(
            resp.status,
            True,
            resp.latency_ms,
            token=user.token,
            remote_id=user.remote_id,
            endpoint=where,
            skipped=resp.skipped,
            retries=resp.retries,
        )

    def _keep_token(self, user: UserState, request: ActionRequest, token: Any, doc: Any) -> None:
        """Keep a new token, with the refresh token and lifetime the answer gives (if any)."""
        auth = self.api.auth
        user.token = format_value(token)
        user.token_at = self._now()
        user.token_sim = request.sim_time
        if auth.refresh_token_path is not None:
            refresh = field(doc, auth.refresh_token_path, None)
            if isinstance(refresh, (str, int)) and refresh != "":
                user.refresh_token = format_value(refresh)  # else: the old one still holds
        user.token_ttl = None
        if auth.expires_in_path is not None:
            lifetime = field(doc, auth.expires_in_path, None)
            if isinstance(lifetime, (int, float, str)) and not isinstance(lifetime, bool):
                try:
                    seconds = float(lifetime)
                except ValueError:
                    seconds = 0.0
                user.token_ttl = seconds if 0 < seconds < float("inf") else None

    def token_ttl(self, user: UserState) -> float | None:
        """The wall seconds the user's token lives: from its answer, else ``auth.token_ttl_s``."""
        return user.token_ttl if user.token_ttl is not None else self.api.auth.token_ttl_s

    async def _renew(self, user: UserState, request: ActionRequest) -> bool:
        """Renew the user's token: ``auth.refresh`` if given (with a refresh token, when
        the section uses them), else (or if it fails) log in."""
        auth = self.api.auth
        if auth.refresh is None and auth.login is None:
            return False
        self._renewals += 1
        uses_refresh_token = auth.refresh_token_path is not None
        if auth.refresh is not None and (user.refresh_token or not uses_refresh_token):
            # a refresh token stands for the user: the expired access token is not sent
            authed = not uses_refresh_token
            outcome = await self._token_call(user, request, auth.refresh, authed=authed)
            if outcome.ok:
                return True
            user.refresh_token = None
        if auth.login is not None:
            outcome = await self._token_call(user, request, auth.login, authed=False)
            if outcome.ok:
                return True
        user.token = None
        return False

    async def _send_authed(
        self,
        user: UserState,
        request: ActionRequest,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
    ) -> tuple[Response, int]:
        """Send with the user's credentials; renew the token once (expired, or on a 401).

        Returns the response and 1 when the request was sent again after a renewal, else 0.
        """
        scheme = self._scheme
        renewed = False
        if scheme in TOKEN_SCHEMES:
            ttl = self.token_ttl(user)
            token = user.token if user.token is not None else request.token
            if ttl is not None and (not token or self._now() - user.token_at >= ttl):
                renewed = True
                await self._renew(user, request)
        sent = self._all_headers(user, request, headers)
        resp = await self.transport.request(method, path, body, sent)
        if resp.status != 401 or scheme == "none" or renewed:
            return resp, 0
        if not await self._renew(user, request):
            return resp, 0
        sent = self._all_headers(user, request, headers)
        return await self.transport.request(method, path, body, sent), 1

    def _all_headers(
        self, user: UserState, request: ActionRequest, headers: dict[str, str]
    ) -> dict[str, str]:
        """``X-Sim-Time``, the user's credentials, then ``headers`` (which win)."""
        sent = self._base_headers(request)
        sent.update(self._auth_headers(user, request))
        if headers:
            sent.update(headers)
        return sent

    def _auth_headers(self, user: UserState, request: ActionRequest) -> dict[str, str]:
        """The headers that carry the user's credentials under ``auth.scheme``."""
        scheme = self._scheme
        if scheme in ("bearer", "token"):
            token = user.token if user.token is not None else request.token
            return {"Authorization": f"{self._token_prefix} {token}"} if token else {}
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
        return {self.api.auth.header: token} if token else {}

    @cached_property
    def _scheme(self) -> str:
        """``api.auth.effective_scheme`` (the section is frozen)."""
        return self.api.auth.effective_scheme

    @cached_property
    def _token_prefix(self) -> str:
        return self.api.auth.token_prefix()
