"""Requests and auth of an ``api`` section: :class:`RequestTemplate` and :class:`AuthSpec`.

Re-exported by :mod:`sim_engine.model.api_spec` (the section's schema); see
``docs/own-api.md`` section 3 for auth.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim_engine.model.bounds import MAX_DURATION_S
from sim_engine.model.templates import path_problem

__all__ = ["AuthSpec", "Frozen", "HttpMethod", "OAuth2Spec", "RequestTemplate"]


class Frozen(BaseModel):
    """Base of the section's models: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class RequestTemplate(Frozen):
    """One HTTP request, with placeholders filled at run time.

    Attributes:
        method: HTTP method.
        path: path, may hold placeholders (``/posts/{post.id}``).
        query: query parameters (values may hold placeholders and generators).
        body: JSON body template (None: no body).
        form: form fields, sent as ``application/x-www-form-urlencoded`` (an OAuth2
            token request); None: no form. Not with ``body``.
        headers: extra headers.
        expect: statuses that count as success.
    """

    method: HttpMethod = "GET"
    path: str = Field(min_length=1)
    query: dict[str, Any] = {}
    body: Any = None
    form: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    expect: tuple[int, ...] = (200, 201, 204)

    @field_validator("path")
    @classmethod
    def _starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path must start with '/', got {value!r}")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_body(self) -> RequestTemplate:
        if self.form is not None and self.body is not None:
            raise ValueError("give body (JSON) or form, not both")
        return self

    def template_parts(self) -> list[Any]:
        """The parts that may hold placeholders (path, query, body, form, headers)."""
        return [self.path, self.query, self.body, self.form, self.headers]


class OAuth2Spec(Frozen):
    """The OAuth2 password flow (RFC 6749 section 4.3), written as the log-in and refresh it means.

    Attributes:
        token_url: the token endpoint's path (``/oauth/token``).
        client_id: sent as ``client_id`` when given.
        client_secret: sent as ``client_secret`` when given (it is in the scenario file).
        scope: sent as ``scope`` when given (space-separated).
    """

    token_url: str = Field(min_length=1)
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None

    def requests(self) -> dict[str, Any]:
        """The ``login`` and ``refresh`` requests and the token paths this flow stands for."""
        extra = {
            k: v
            for k, v in (
                ("client_id", self.client_id),
                ("client_secret", self.client_secret),
                ("scope", self.scope),
            )
            if v is not None
        }
        login = {"grant_type": "password", "username": "{user.username}",
                 "password": "{user.password}", **extra}  # fmt: skip
        refresh = {"grant_type": "refresh_token", "refresh_token": "{user.refresh_token}", **extra}
        return {
            "login": {"method": "POST", "path": self.token_url, "form": login, "expect": [200]},
            "refresh": {"method": "POST", "path": self.token_url, "form": refresh, "expect": [200]},
            "token_path": "access_token",
            "refresh_token_path": "refresh_token",
            "expires_in_path": "expires_in",
        }


class AuthSpec(Frozen):
    """How a user signs up and logs in, and how the token is sent.

    Attributes:
        signup: the sign-up request (None: users are not created through the API).
        login: the log-in request (None: no token; e.g. HTTP Basic or an API key).
        token_path: dotted path of the token in the log-in answer.
        user_id_path: dotted path of the user's id in the sign-up answer (or in the
            log-in answer when there is no sign-up).
        login_user_id_path: dotted path of the user's id in the log-in answer, read when
            the id is not known yet (a user that already existed: sign-up gave 409);
            default: ``user_id_path``.
        scheme: (default: ``bearer`` with a login request, else ``none``)
            ``bearer`` (``Authorization: Bearer T``), ``token``
            (``Authorization: Token T``), ``header`` (``HEADER: T``), ``basic``
            (HTTP Basic with the user's username and password), ``api_key``
            (``HEADER: api_key``), ``none``.
        prefix: the word before the token in ``Authorization`` under ``bearer`` and
            ``token`` (default ``Bearer`` / ``Token``; e.g. ``JWT``).
        header: header name for ``header`` and ``api_key``.
        api_key: the key for ``api_key``.
        refresh: a request that renews the token (default: log in again).
        refresh_token_path: dotted path of a refresh token in the log-in and refresh
            answers (None: none); templates read it as ``{user.refresh_token}``, and
            ``refresh`` is then sent without the (expired) access token.
        expires_in_path: dotted path of the token's lifetime in wall seconds in the
            log-in and refresh answers (OAuth2 ``expires_in``); the token is renewed
            before it runs out. Overrides ``token_ttl_s`` for that token.
        token_ttl_s: renew the token after this many wall seconds (None: only on 401).
        oauth2: the OAuth2 password flow: fills ``login``, ``refresh`` (form bodies
            to ``token_url``), ``token_path: access_token``, ``refresh_token_path:
            refresh_token`` and ``expires_in_path: expires_in`` where not given.
    """

    signup: RequestTemplate | None = None
    login: RequestTemplate | None = None
    token_path: str = "token"
    user_id_path: str | None = "id"
    login_user_id_path: str | None = None
    scheme: Literal["bearer", "token", "header", "basic", "api_key", "none"] | None = None
    prefix: str | None = Field(None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
    header: str = "Authorization"
    api_key: str | None = None
    refresh: RequestTemplate | None = None
    refresh_token_path: str | None = None
    expires_in_path: str | None = None
    token_ttl_s: float | None = Field(None, gt=0, le=MAX_DURATION_S)
    oauth2: OAuth2Spec | None = None

    @model_validator(mode="before")
    @classmethod
    def _oauth2(cls, data: Any) -> Any:
        """Expand ``oauth2`` into the requests and paths it stands for (given keys win)."""
        if not isinstance(data, dict) or not isinstance(data.get("oauth2"), dict):
            return data
        flow = OAuth2Spec.model_validate(data["oauth2"])
        return {**flow.requests(), **data}

    @property
    def effective_scheme(self) -> str:
        """The scheme in force: as given, else ``bearer`` with a login request, else ``none``."""
        if self.scheme is not None:
            return self.scheme
        return "bearer" if self.login is not None else "none"

    def token_prefix(self) -> str:
        """The word before the token in ``Authorization`` (``bearer`` and ``token`` schemes)."""
        if self.prefix is not None:
            return self.prefix
        return "Token" if self.effective_scheme == "token" else "Bearer"

    @model_validator(mode="after")
    def _consistent(self) -> AuthSpec:
        scheme = self.effective_scheme
        if scheme == "api_key" and not self.api_key:
            raise ValueError("scheme api_key needs api_key")
        if scheme in ("bearer", "token", "header") and self.login is None:
            raise ValueError(f"scheme {scheme} needs a login request")
        if self.prefix is not None and scheme not in ("bearer", "token"):
            raise ValueError(f"prefix is for schemes bearer and token, not {scheme}")
        for name in (
            "token_path",
            "user_id_path",
            "login_user_id_path",
            "refresh_token_path",
            "expires_in_path",
        ):
            path = getattr(self, name)
            problem = path_problem(path) if path is not None else None
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        return self
