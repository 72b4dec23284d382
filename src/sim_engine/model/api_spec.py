"""The ``api`` section of a scenario: any HTTP API described declaratively.

When a scenario has an ``api`` section, users act on that API instead of the
built-in social API: persona weight matrices name the section's actions and
workflows. Everything is checked when the scenario is validated -- a template
naming unknown memory, an unknown action, a workflow cycle -- with the field
path, never mid-run.

Shape (see ``docs/own-api.md``)::

    api:
      auth:
        signup: {method: POST, path: /users, body: {username: "{user.username}", ...}}
        login: {method: POST, path: /auth/login, body: {...}}
        token_path: token            # where the token is in the login answer
        user_id_path: id             # where the user's id is in the sign-up answer
        scheme: bearer               # bearer | token | header | basic | api_key | none
      memory: {seen_posts: 20, own_posts: 200}       # per-user lists (and their bound)
      pools: {posts: 500}                             # lists shared by all users
      actions:
        browse_feed:
          method: GET
          path: /posts
          query: {_limit: 20}
          extract: [{path: "[*]", to: memory.seen_posts, fields: {id: id, author: userId}}]
        read_post:
          method: GET
          path: /posts/{post.id}
          pick: {post: memory.seen_posts}
        create_post:
          method: POST
          path: /posts
          body: {title: "{{sentence}}", body: "{{paragraph}}", userId: "{user.id}"}
          extract: [{path: "", to: memory.own_posts, fields: {id: id}}]
      workflows:
        help_exchange:
          steps:
            - {action: browse_requests, think_s: [10, 30]}
            - {action: offer_help, probability: 0.4, requires: [memory.seen_requests]}

Placeholders: ``{user.id}``, ``{user.username}``, ``{user.email}``,
``{user.name}``, ``{user.password}``, ``{user.avatar_url}`` and ``{user.tag}``
(null when the user has none), and ``{NAME.FIELD}`` for an item picked
as ``NAME``. Generators: ``{{sentence}}``, ``{{paragraph}}``, ``{{words:N}}``,
``{{title}}``, ``{{name}}``, ``{{first_name}}``, ``{{last_name}}``,
``{{email}}``, ``{{username}}``, ``{{int:A:B}}``, ``{{float:A:B}}``,
``{{choice:a|b|c}}``, ``{{bool}}``, ``{{date}}``, ``{{datetime}}``, ``{{uuid}}``,
``{{url}}``, ``{{phone}}``, ``{{city}}``, ``{{color}}``, ``{{word}}``, ``{{tag}}``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sim_engine.model.bounds import MAX_DURATION_S, MAX_USERS
from sim_engine.model.cleanup_spec import CleanupSpec, check_cleanup
from sim_engine.model.plugin_spec import PluginCatalog, catalog_of
from sim_engine.model.templates import path_problem, template_problem
from sim_engine.model.workflow_spec import (
    MEMORY_KEY_RE,
    AffinitySpec,
    WorkflowSpec,
    WorkflowStep,
    check_workflows,
)

__all__ = [
    "GENERATORS",
    "USER_FIELDS",
    "ActionSpec",
    "AffinitySpec",
    "ApiSpec",
    "AuthSpec",
    "ErrorSimulationSpec",
    "ExtractSpec",
    "MaxOpenSpec",
    "PageSpec",
    "RequestTemplate",
    "WorkflowSpec",
    "WorkflowStep",
    "placeholders",
]

USER_FIELDS = ("id", "username", "email", "name", "password", "avatar_url", "tag")
"""Fields of ``{user.FIELD}`` placeholders."""

GENERATORS = (
    "sentence", "paragraph", "words", "title", "name", "first_name", "last_name", "email",
    "username", "int", "float", "choice", "bool", "date", "datetime", "uuid", "url", "phone",
    "city", "color", "word", "tag",
)  # fmt: skip
"""Names of ``{{generator}}`` placeholders in templates."""

_PLACEHOLDER_RE = re.compile(r"(?<!\{)\{([A-Za-z_][\w]*)\.([A-Za-z_][\w]*)\}(?!\})")
_GENERATOR_RE = re.compile(r"\{\{\s*([a-z_]+)(?::([^}]*))?\s*\}\}")


def placeholders(template: Any) -> list[tuple[str, str]]:
    """Return every ``{name.field}`` placeholder in a template (strings, lists, dicts)."""
    found: list[tuple[str, str]] = []
    if isinstance(template, str):
        found.extend((m.group(1), m.group(2)) for m in _PLACEHOLDER_RE.finditer(template))
    elif isinstance(template, dict):
        for key, value in template.items():
            found.extend(placeholders(key))
            found.extend(placeholders(value))
    elif isinstance(template, list):
        for value in template:
            found.extend(placeholders(value))
    return found


def generators(template: Any) -> list[str]:
    """Return every ``{{generator}}`` name used in a template."""
    if isinstance(template, str):
        return [m.group(1) for m in _GENERATOR_RE.finditer(template)]
    if isinstance(template, dict):
        return [g for k, v in template.items() for g in generators(k) + generators(v)]
    if isinstance(template, list):
        return [g for v in template for g in generators(v)]
    return []


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class RequestTemplate(_Frozen):
    """One HTTP request, with placeholders filled at run time.

    Attributes:
        method: HTTP method.
        path: path, may hold placeholders (``/posts/{post.id}``).
        query: query parameters (values may hold placeholders and generators).
        body: JSON body template (None: no body).
        headers: extra headers.
        expect: statuses that count as success.
    """

    method: HttpMethod = "GET"
    path: str = Field(min_length=1)
    query: dict[str, Any] = {}
    body: Any = None
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

    def template_parts(self) -> list[Any]:
        """The parts that may hold placeholders (path, query, body, headers)."""
        return [self.path, self.query, self.body, self.headers]


class ExtractSpec(_Frozen):
    """Take values from a JSON answer into the user's memory or a shared pool.

    Attributes:
        path: where in the answer: dotted keys, ``[N]`` indexes and ``[*]`` for
            every element (``items[*]``, ``data.user``; ``""`` is the whole answer).
        to: ``memory.KEY`` (this user's list) or ``pool.KEY`` (shared by all users).
        fields: name -> dotted path inside each extracted element (default
            ``{"id": "id"}``); the stored item is a dict of these fields.
        replace: the answer is the whole list (a listing of everything the user
            holds, e.g. on reconcile after a crash): it replaces the list's items
            instead of adding to them.
    """

    path: str = ""
    to: str
    fields: dict[str, str] = {"id": "id"}
    replace: bool = False

    @field_validator("to")
    @classmethod
    def _key(cls, value: str) -> str:
        if not MEMORY_KEY_RE.match(value):
            raise ValueError(f"'to' must be memory.NAME or pool.NAME, got {value!r}")
        return value


class MaxOpenSpec(_Frozen):
    """A guard: at most ``limit`` items in ``key`` (seed 001: at most 2 open requests)."""

    key: str
    limit: int = Field(ge=0, le=MAX_USERS)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not MEMORY_KEY_RE.match(value):
            raise ValueError(f"key must be memory.NAME or pool.NAME, got {value!r}")
        return value


class PageSpec(_Frozen):
    """Paging through a listing within a session (a feed read page after page).

    Attributes:
        param: the query parameter that carries the offset (``offset``).
        size: how far each call moves the offset (the page size, >= 1).

    Each call of the action in a session asks for the next page (offset 0,
    ``size``, 2 x ``size``...); an answer whose first ``extract`` rule finds
    nothing, or the end of the session, starts again at 0.
    """

    param: str = "offset"
    size: int = Field(20, ge=1, le=MAX_USERS)


class ActionSpec(RequestTemplate):
    """An action: a request template plus what it reads from and writes to memory.

    Attributes:
        pick: name -> ``memory.KEY`` / ``pool.KEY`` to pick an item from (random);
            ``{name.field}`` placeholders then refer to it.
        pick_strategy: ``random``, ``latest`` or ``popular`` (most picked so far).
        requires: memory or pool keys that must be non-empty (besides the picks).
        max_open: at most this many items in a key, else the action is not possible.
        extract: what to keep from a successful answer.
        forget: on success, remove the item picked under this name from where it came
            (e.g. a delete).
        fallback: action to take instead when this one is not possible (default:
            the scenario's ``api.fallback``).
        page: page through a listing within a session (see :class:`PageSpec`).
    """

    pick: dict[str, str] = {}
    pick_strategy: Literal["random", "latest", "popular"] = "random"
    requires: tuple[str, ...] = ()
    max_open: MaxOpenSpec | None = None
    extract: tuple[ExtractSpec, ...] = ()
    forget: str | None = None
    fallback: str | None = None
    page: PageSpec | None = None

    @model_validator(mode="after")
    def _page_param_free(self) -> ActionSpec:
        if self.page is not None and self.page.param in self.query:
            raise ValueError(f"page.param {self.page.param!r} is also in query: keep one")
        return self

    @field_validator("pick")
    @classmethod
    def _pick_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for name, key in value.items():
            if name == "user":
                raise ValueError("'user' is reserved: pick under another name")
            if not MEMORY_KEY_RE.match(key):
                raise ValueError(f"pick {name!r} must come from memory.NAME or pool.NAME")
        return value

    @field_validator("requires")
    @classmethod
    def _requires_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if not MEMORY_KEY_RE.match(key):
                raise ValueError(f"requires must name memory.NAME or pool.NAME, got {key!r}")
        return value


class AuthSpec(_Frozen):
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
            ``token`` (``JWT``...; None: ``Bearer`` and ``Token``).
        header: header name for ``header`` and ``api_key``.
        api_key: the key for ``api_key``.
        refresh: a request that renews the token (default: log in again).
        token_ttl_s: renew the token after this many wall seconds (None: only on 401).
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
    token_ttl_s: float | None = Field(None, gt=0, le=MAX_DURATION_S)

    @property
    def effective_scheme(self) -> str:
        """The scheme in force: as given, else ``bearer`` with a login request, else ``none``."""
        if self.scheme is not None:
            return self.scheme
        return "bearer" if self.login is not None else "none"

    @model_validator(mode="after")
    def _consistent(self) -> AuthSpec:
        scheme = self.effective_scheme
        if scheme == "api_key" and not self.api_key:
            raise ValueError("scheme api_key needs api_key")
        if scheme in ("bearer", "token", "header") and self.login is None:
            raise ValueError(f"scheme {scheme} needs a login request")
        for name in ("token_path", "user_id_path", "login_user_id_path"):
            path = getattr(self, name)
            problem = path_problem(path) if path is not None else None
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        return self


class ErrorSimulationSpec(_Frozen):
    """Deliberately invalid calls (seed 004), recorded as intended errors.

    Attributes:
        share: share of actions replaced by a deliberate error.
        kinds: which errors: a log-in with a wrong password, an action with an
            invalid payload, an action on an unknown id.
    """

    share: float = Field(0.0, ge=0, le=1)
    kinds: tuple[Literal["wrong_password", "invalid_payload", "unknown_id"], ...] = (
        "wrong_password",
        "invalid_payload",
        "unknown_id",
    )


class ApiSpec(_Frozen):
    """A declarative description of an HTTP API (see the module docstring).

    Attributes:
        auth: sign-up, log-in and token scheme.
        memory: per-user memory keys and how many items each keeps (newest kept).
        pools: shared pools and how many items each keeps.
        actions: name -> action.
        workflows: name -> workflow.
        fallback: action taken when the drawn one is not possible (None: skip it).
        affinity: session-affinity modifiers applied to every persona.
        errors: deliberate error simulation.
        cleanup: how ``sim-engine cleanup`` deletes what a run created
            (:mod:`sim_engine.model.cleanup_spec`).
    """

    auth: AuthSpec = AuthSpec()
    memory: dict[str, int] = {}
    pools: dict[str, int] = {}
    actions: dict[str, ActionSpec] = Field(min_length=1)
    workflows: dict[str, WorkflowSpec] = {}
    fallback: str | None = None
    affinity: tuple[AffinitySpec, ...] = ()
    errors: ErrorSimulationSpec = ErrorSimulationSpec()
    cleanup: CleanupSpec = CleanupSpec()

    def names(self) -> set[str]:
        """Every action and workflow name."""
        return set(self.actions) | set(self.workflows)

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> ApiSpec:
        catalog = catalog_of(info)
        for name in self.workflows:
            if name in self.actions:
                raise ValueError(f"workflows.{name}: a workflow cannot share an action's name")
        keys = self._memory_keys()
        for name, action in self.actions.items():
            _check_action(f"actions.{name}", action, keys, self.names(), catalog)
            if action.fallback in self.workflows:
                raise ValueError(
                    f"actions.{name}.fallback: {action.fallback!r} is a workflow; "
                    "a fallback must be an action"
                )
        for where, template in (
            ("auth.signup", self.auth.signup),
            ("auth.login", self.auth.login),
            ("auth.refresh", self.auth.refresh),
        ):
            if template is not None:
                _check_template(where, template.template_parts(), {}, catalog)
        plugin_actions = set(catalog.action_names()) if catalog is not None else set()
        check_workflows(self.workflows, self.names() | plugin_actions, keys)
        if self.fallback is not None and self.fallback not in self.actions:
            raise ValueError(f"fallback: unknown action {self.fallback!r}")
        for i, affinity in enumerate(self.affinity):
            if affinity.when not in keys:
                raise ValueError(f"affinity.{i}.when: unknown memory {affinity.when!r}")
            if affinity.action not in self.names():
                raise ValueError(f"affinity.{i}.action: unknown action {affinity.action!r}")
        check_cleanup(self.cleanup, self.actions, keys)
        return self

    def _memory_keys(self) -> set[str]:
        """The declared ``memory.KEY`` and ``pool.KEY`` names (each keeping at least 1 item)."""
        for section, bounds in (("memory", self.memory), ("pools", self.pools)):
            for name, bound in bounds.items():
                if bound < 1:
                    raise ValueError(f"{section}.{name}: keeps at least 1 item, got {bound}")
        return {f"memory.{k}" for k in self.memory} | {f"pool.{k}" for k in self.pools}


def _check_template(
    where: str, parts: list[Any], picks: dict[str, str], catalog: PluginCatalog | None
) -> None:
    for name, field in placeholders(parts):
        if name == "user":
            if field not in USER_FIELDS:
                raise ValueError(f"{where}: unknown user field {{user.{field}}}")
        elif name not in picks:
            raise ValueError(f"{where}: {{{name}.{field}}} names unknown memory {name!r}")
    for gen in generators(parts):
        if gen not in GENERATORS and (catalog is None or catalog.generator(gen) is None):
            raise ValueError(f"{where}: unknown generator {{{{{gen}}}}}")
    # generator arguments: {{int:A:B}}, {{words:N}}, ...
    problem = template_problem(parts, registry=catalog)
    if problem is not None:
        raise ValueError(f"{where}: {problem}")


def _check_action(
    where: str, action: ActionSpec, keys: set[str], names: set[str], catalog: PluginCatalog | None
) -> None:
    for name, key in action.pick.items():
        if key not in keys:
            raise ValueError(f"{where}.pick.{name}: unknown memory {key!r} (declare it)")
    for key in action.requires:
        if key not in keys:
            raise ValueError(f"{where}.requires: unknown memory {key!r}")
    if action.max_open is not None and action.max_open.key not in keys:
        raise ValueError(f"{where}.max_open.key: unknown memory {action.max_open.key!r}")
    for i, rule in enumerate(action.extract):
        if rule.to not in keys:
            raise ValueError(f"{where}.extract.{i}.to: unknown memory {rule.to!r} (declare it)")
        for path in (rule.path, *rule.fields.values()):
            problem = path_problem(path)
            if problem is not None:
                raise ValueError(f"{where}.extract.{i}: {problem}")
    if action.forget is not None and action.forget not in action.pick:
        raise ValueError(f"{where}.forget: {action.forget!r} is not picked by this action")
    if action.fallback is not None and action.fallback not in names:
        raise ValueError(f"{where}.fallback: unknown action {action.fallback!r}")
    _check_template(where, action.template_parts(), action.pick, catalog)
