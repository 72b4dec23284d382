"""The scenario's ``analytics:`` section: which analytics event each action becomes.

An action record (``browse_feed`` by user 7 at 09:14 local time) becomes an
analytics event (``feed_viewed``, distinct id ``user-7``, timestamp in simulated
time, properties) when a run or a generated dataset is sent to PostHog, Segment
or Mixpanel. The section says, per action name, the event's name and its
properties as templates (:mod:`sim_engine.model.templates`: ``{action.post_id}``,
``{user.persona}``, ``{{int:1:5}}``); every event carries ``is_synthetic: true``
unless ``synthetic_property`` says otherwise; each user is identified once, with
traits (persona, segment, time zone, sign-up time).

Without a section the default mapping below is used: the demo social API's actions
(:data:`DEFAULT_EVENTS`). A mapping must name every action a run can record (the
``api`` section's actions, or the demo API's, plus ``sign_up``, ``log_in`` and plugin
actions): each is in ``events``, in ``skip``, or covered by ``other``; else
validation fails with one line naming the first action left out
(:meth:`AnalyticsSpec.check_covers`). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim_engine.model.templates import template_problem

__all__ = [
    "ACTION_FIELDS",
    "DEFAULT_EVENTS",
    "DEFAULT_SKIP",
    "DEFAULT_TRAITS",
    "USER_FIELDS",
    "AnalyticsSpec",
    "EventSpec",
    "IdentifySpec",
]

_EVENT_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_PROPERTY = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


ACTION_FIELDS = frozenset(
    {"name", "ok", "status", "post_id", "session_id", "state", "endpoint", "latency_ms"}
)
"""The ``{action.FIELD}`` placeholders an event's name and properties may use."""
USER_FIELDS = frozenset({"id", "persona", "segment", "timezone", "signup_time", "email", "name"})
"""The ``{user.FIELD}`` placeholders events, traits and the distinct id may use."""

_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\.([A-Za-z_]\w*)\}(?!\})")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in (*value.keys(), *value.values()) for s in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def _check_template(value: Any, action: bool = True) -> Any:
    """Generators must exist; placeholders must name ``action`` or ``user`` fields."""
    problem = template_problem(value)
    if problem is not None:
        raise ValueError(problem)
    for text in _strings(value):
        for name, key in _PLACEHOLDER.findall(text):
            fields = {"user": USER_FIELDS, "action": ACTION_FIELDS if action else frozenset()}
            if key not in fields.get(name, frozenset()):
                known = ", ".join(f"{{{n}.{f}}}" for n in fields for f in sorted(fields[n]))
                raise ValueError(f"unknown placeholder {{{name}.{key}}} (known: {known})")
    return value


class EventSpec(_Frozen):
    """One action's analytics event.

    Attributes:
        event: the event's name; a template (``"{action.name}"`` names an event
            after its action), one line, at most 200 characters once rendered.
        properties: property name -> template, rendered with ``action`` (``name``,
            ``ok``, ``status``, ``post_id``, ``session_id``, ``state``, ``endpoint``,
            ``latency_ms``) and ``user`` (``id``, ``persona``, ``segment``,
            ``timezone``, ``signup_time``, ``email``, ``name``) and any generator
            (``{{int:1:5}}``).
        kind: ``track`` (an event) or ``page`` (a page view: Segment's ``page`` call
            named ``event``; PostHog and Mixpanel get an event of that name).
    """

    event: str
    kind: Literal["track", "page"] = "track"
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("event")
    @classmethod
    def _event_name(cls, value: str) -> str:
        if not _EVENT_NAME.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not an event name (1-200 chars, one line)")
        return _check_template(value)  # type: ignore[no-any-return]

    @field_validator("properties")
    @classmethod
    def _property_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _PROPERTY.fullmatch(key):
                raise ValueError(f"property name {key[:60]!r} is not 1-200 chars on one line")
        return _check_template(value)  # type: ignore[no-any-return]


DEFAULT_TRAITS: dict[str, str] = {
    "persona": "{user.persona}",
    "segment": "{user.segment}",
    "timezone": "{user.timezone}",
    "signed_up_at": "{user.signup_time}",
    "name": "{user.name}",
    "email": "{user.email}",
}
"""The traits every user is identified with by default."""


class IdentifySpec(_Frozen):
    """How users are identified (one ``identify`` per user, at its sign-up time).

    Attributes:
        enabled: send identify calls (Segment ``identify``, PostHog ``$identify``
            with ``$set``, Mixpanel ``$set`` profile updates).
        traits: trait name -> template, rendered with ``user`` (see :class:`EventSpec`).
    """

    enabled: bool = True
    traits: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_TRAITS))

    @field_validator("traits")
    @classmethod
    def _templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_template(value, action=False)  # type: ignore[no-any-return]


DEFAULT_EVENTS: dict[str, EventSpec] = {
    "sign_up": EventSpec(event="user_signed_up"),
    "log_in": EventSpec(event="user_logged_in"),
    "browse_feed": EventSpec(event="feed_viewed", kind="page"),
    "read_post": EventSpec(event="post_viewed", properties={"post_id": "{action.post_id}"}),
    "create_post": EventSpec(event="post_created", properties={"post_id": "{action.post_id}"}),
    "update_post": EventSpec(event="post_edited", properties={"post_id": "{action.post_id}"}),
    "delete_post": EventSpec(event="post_deleted", properties={"post_id": "{action.post_id}"}),
    "delete_account": EventSpec(event="account_deleted"),
    "browse_trending": EventSpec(event="trending_viewed", kind="page"),
    "comment": EventSpec(event="comment_created", properties={"post_id": "{action.post_id}"}),
    "react": EventSpec(event="post_reacted", properties={"post_id": "{action.post_id}"}),
    "follow_author": EventSpec(event="user_followed"),
    "check_followers": EventSpec(event="followers_viewed", kind="page"),
    "follow_back": EventSpec(event="user_followed", properties={"back": True}),
}
"""The demo social API's actions as analytics events (the default mapping)."""

DEFAULT_SKIP: tuple[str, ...] = ("list_own_posts", "unfollow", "delete_comment", "unreact")
"""Demo API actions that are bookkeeping, not product use (reconcile after a crash, the
deletes only ``sim-engine cleanup`` sends)."""

DEFAULT_COMMON: dict[str, Any] = {
    "persona": "{user.persona}",
    "routine_state": "{action.state}",
    "session_id": "{action.session_id}",
}
"""Properties every event carries by default (besides ``is_synthetic``)."""


class AnalyticsSpec(_Frozen):
    """The ``analytics:`` section (see the module docstring and ``docs/analytics.md``).

    Attributes:
        events: action name -> its event (default: :data:`DEFAULT_EVENTS`).
        skip: action names that send no event.
        other: the event of an action neither in ``events`` nor in ``skip`` (None:
            every action must be named, and validation says which is not).
        common: properties every event carries (templates, as in :class:`EventSpec`;
            an event's own properties win over them).
        synthetic_property: the property set to ``true`` on every event and trait
            set (None: none; default ``is_synthetic``, as seed 003 filters on).
        distinct_id: the user's id in the analytics tool, a template over ``user``
            (default ``user-{user.id}``; add a run-specific part, such as
            ``{user.email}``, to keep runs apart in one project).
        failed: also send the actions that failed (default: only what succeeded,
            since a failed action did not happen in the product).
        identify: users' traits (see :class:`IdentifySpec`).
    """

    events: dict[str, EventSpec] = Field(default_factory=lambda: dict(DEFAULT_EVENTS))
    skip: tuple[str, ...] = DEFAULT_SKIP
    other: EventSpec | None = None
    common: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_COMMON))
    synthetic_property: str | None = "is_synthetic"
    distinct_id: str = "user-{user.id}"
    failed: bool = False
    identify: IdentifySpec = IdentifySpec()

    @field_validator("common")
    @classmethod
    def _common_templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_template(value)  # type: ignore[no-any-return]

    @field_validator("distinct_id")
    @classmethod
    def _distinct_id(cls, value: str) -> str:
        if not _EVENT_NAME.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not a one-line template")
        return _check_template(value, action=False)  # type: ignore[no-any-return]

    @field_validator("synthetic_property")
    @classmethod
    def _synthetic(cls, value: str | None) -> str | None:
        if value is not None and not _PROPERTY.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not a property name (1-200 chars, one line)")
        return value

    @model_validator(mode="after")
    def _skip_or_map(self) -> AnalyticsSpec:
        for name in self.skip:
            if name in self.events:
                raise ValueError(f"skip: {name!r} is also in analytics.events (choose one)")
        return self

    def event_for(self, action: str) -> EventSpec | None:
        """Return the event an action becomes, or None when it sends none (skipped).

        Raises:
            KeyError: the action is not named and there is no ``other`` (validation
                with :meth:`check_covers` rules this out for a scenario's actions).
        """
        spec = self.events.get(action)
        if spec is not None:
            return spec
        if action in self.skip:
            return None
        if self.other is not None:
            return self.other
        raise KeyError(action)

    def uncovered(self, actions: Iterable[str]) -> list[str]:
        """Return the action names (sorted) the mapping cannot name."""
        if self.other is not None:
            return []
        return sorted(a for a in set(actions) if a not in self.events and a not in self.skip)

    def check_covers(self, actions: Iterable[str]) -> None:
        """Check that every action a run can record has an event or is skipped.

        Raises:
            ValueError: one line naming the first action left out and how to fix it.
        """
        missing = self.uncovered(actions)
        if missing:
            rest = missing[1:]
            more = f" (and {len(rest)} more: {', '.join(rest[:3])})" if rest else ""
            raise ValueError(
                f"analytics: action {missing[0]!r} has no event{more}; name it under "
                f"analytics.events, list it under analytics.skip, or set analytics.other"
            )
