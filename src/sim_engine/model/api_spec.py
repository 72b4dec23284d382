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
``{user.name}``, ``{user.password}``, ``{user.avatar_url}``, ``{user.tag}`` and
``{user.refresh_token}`` (null when the user has none), and ``{NAME.FIELD}`` for an
item picked as ``NAME`` (which ``where`` filters: :mod:`sim_engine.model.pick_spec`).
Generators: ``{{sentence}}``, ``{{paragraph}}``, ``{{words:N}}``,
``{{title}}``, ``{{name}}``, ``{{first_name}}``, ``{{last_name}}``,
``{{email}}``, ``{{username}}``, ``{{int:A:B}}``, ``{{float:A:B}}``,
``{{choice:a|b|c}}``, ``{{bool}}``, ``{{date}}``, ``{{datetime}}``, ``{{uuid}}``,
``{{url}}``, ``{{phone}}``, ``{{city}}``, ``{{color}}``, ``{{word}}``, ``{{tag}}``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sim_engine.model.bounds import MAX_USERS
from sim_engine.model.cleanup_spec import CleanupSpec, check_cleanup
from sim_engine.model.pick_spec import Condition, PreferSpec, check_social, check_where, list_refs
from sim_engine.model.plugin_spec import PluginCatalog, catalog_of
from sim_engine.model.request_spec import AuthSpec, OAuth2Spec, RequestTemplate
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
    "Condition",
    "ErrorSimulationSpec",
    "ExtractSpec",
    "MaxOpenSpec",
    "OAuth2Spec",
    "PageSpec",
    "RequestTemplate",
    "WorkflowSpec",
    "WorkflowStep",
    "placeholders",
]

USER_FIELDS = (
    "id", "username", "email", "name", "password", "avatar_url", "tag", "refresh_token",
)  # fmt: skip
"""Fields of ``{user.FIELD}`` placeholders (``refresh_token``: ``auth.refresh_token_path``)."""

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


class ExtractSpec(_Frozen):
    """Take values from a JSON answer into the user's memory or a shared pool.

    Attributes:
        path: where in the answer: dotted keys, ``[N]`` indexes and ``[*]`` for
            every element (``items[*]``, ``data.user``; ``""`` is the whole answer).
        to: ``memory.KEY`` (this user's list) or ``pool.KEY`` (shared by all users).
        fields: name -> dotted path inside each extracted element (default
            ``{"id": "id"}``); the stored item is a dict of these fields.
        copy: name -> ``PICK.FIELD`` (a field, dotted, of the item the action picked
            under PICK) or ``user.FIELD``: copied into every stored item (a comment
            keeps the slug of the article it was made on).
        replace: the answer is the whole list (a listing of everything the user
            holds, e.g. on reconcile after a crash): it replaces the list's items
            instead of adding to them.
        optional: an answer where ``path`` finds nothing, or an element lacking a
            field, keeps nothing for this rule instead of failing the action.

    Rules apply to 2xx answers with a body; any other expected answer (a 404 listed
    in ``expect``, a 204) keeps nothing and is still a success.
    """

    path: str = ""
    to: str
    fields: dict[str, str] = {"id": "id"}
    copy_: dict[str, str] = Field({}, alias="copy")
    replace: bool = False
    optional: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              populate_by_name=True)  # fmt: skip

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
        where: pick name -> field path -> :class:`Condition`: which items a pick may
            take (``author: {ne: "{user.username}"}``; see :mod:`sim_engine.model.pick_spec`).
        weight: pick name -> terms (``popularity`` or a field of the item): the pick
            draws items with weight the product of ``1 + term`` (a single term may be
            given as a string); replaces ``pick_strategy`` for that pick.
        prefer: pick name -> :class:`PreferSpec`: a share of picks among the items
            passing its ``where`` (posts by followed authors).
        extract: what to keep from a successful answer.
        forget: on success, remove the item picked under this name from where it came
            (e.g. a delete).
        fallback: action to take instead when this one is not possible (default:
            the scenario's ``api.fallback``).
        page: page through a listing within a session (see :class:`PageSpec`).
    """

    pick: dict[str, str] = Field(default_factory=dict)
    pick_strategy: Literal["random", "latest", "popular"] = "random"
    where: dict[str, dict[str, Condition]] = Field(default_factory=dict)
    weight: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    prefer: dict[str, PreferSpec] = Field(default_factory=dict)
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

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_terms(cls, value: Any) -> Any:
        """``weight: {post: popularity}`` is ``weight: {post: [popularity]}``."""
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("requires")
    @classmethod
    def _requires_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if not MEMORY_KEY_RE.match(key):
                raise ValueError(f"requires must name memory.NAME or pool.NAME, got {key!r}")
        return value


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
        _check_extract(f"{where}.extract.{i}", rule, action, keys)
    _check_where(where, action, keys)
    if action.forget is not None and action.forget not in action.pick:
        raise ValueError(f"{where}.forget: {action.forget!r} is not picked by this action")
    if action.fallback is not None and action.fallback not in names:
        raise ValueError(f"{where}.fallback: unknown action {action.fallback!r}")
    _check_template(where, action.template_parts(), action.pick, catalog)


def _check_extract(where: str, rule: ExtractSpec, action: ActionSpec, keys: set[str]) -> None:
    if rule.to not in keys:
        raise ValueError(f"{where}.to: unknown memory {rule.to!r} (declare it)")
    for path in (rule.path, *rule.fields.values()):
        problem = path_problem(path)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
    for name, source in rule.copy_.items():
        problem = _copy_problem(source, action.pick)
        if problem is not None:
            raise ValueError(f"{where}.copy.{name}: {problem}")


def _check_where(where: str, action: ActionSpec, keys: set[str]) -> None:
    problem = check_where(action.where, action.pick, USER_FIELDS)
    if problem is None:
        problem = check_social(action.weight, action.prefer, action.pick, USER_FIELDS)
    if problem is not None:
        raise ValueError(f"{where}.{problem}")
    for key in list_refs(action.where):
        if key not in keys:
            raise ValueError(f"{where}.where: unknown memory {key!r} (declare it)")
    for key in list_refs({n: p.where for n, p in action.prefer.items()}):
        if key not in keys:
            raise ValueError(f"{where}.prefer: unknown memory {key!r} (declare it)")


def _copy_problem(source: str, picks: dict[str, str]) -> str | None:
    """Why an ``extract.copy`` source is wrong (not ``PICK.FIELD`` / ``user.FIELD``), or None."""
    name, _, path = source.partition(".")
    if name == "user":
        return None if path in USER_FIELDS else f"unknown user field {source!r}"
    if name not in picks:
        return f"{source!r}: copy from PICK.FIELD (an item this action picks) or user.FIELD"
    return path_problem(path) if path else f"{source!r} names no field"
