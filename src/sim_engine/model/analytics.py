"""Action records into analytics events: the pure mapper every analytics writer uses.

:class:`AnalyticsMapper` turns an :class:`~sim_engine.model.records.ActionRecord`
and what is known of its user (:class:`AnalyticsUser`) into a vendor-neutral event
dict, and a user into an identify dict, following the scenario's ``analytics:``
section (:class:`~sim_engine.model.analytics_spec.AnalyticsSpec`). The vendor
formats (PostHog, Segment, Mixpanel) are shaped from these dicts by the writers in
``sim_engine.sinks.analytics``. Pure and deterministic: the same records, seed and
order give the same events, ids included (an event's ``uuid`` is a UUID 5 of its
user, simulated time, action and session, so a re-import deduplicates).

Event dict::

    {"event": "post_viewed", "kind": "track", "distinct_id": "user-7",
     "timestamp": "2026-01-05T09:14:03.250+01:00",   # simulated, the user's offset
     "sim_ts": 1767600843.25,                        # the same, simulated epoch s
     "uuid": "4f0c...", "properties": {"post_id": 3, "is_synthetic": True, ...}}

Identify dict::

    {"distinct_id": "user-7", "timestamp": <sign-up time, ISO 8601 with offset>,
     "sim_ts": ..., "uuid": ..., "traits": {"persona": "lurker", ..., "is_synthetic": True}}
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim_engine.model.analytics_spec import AnalyticsSpec
from sim_engine.model.records import ActionRecord, UserRecord
from sim_engine.model.templates import ContentPool, TemplateError, render

__all__ = [
    "CONST",
    "EVENT_NAMESPACE",
    "LOOKUP",
    "RENDER",
    "AnalyticsError",
    "AnalyticsMapper",
    "AnalyticsUser",
    "compile_mapping",
    "event_uuid",
]

EVENT_NAMESPACE = uuid.UUID("5b1c7a52-0d3e-4f8e-9a51-6b2f3f0c9d11")
"""UUID 5 namespace of event ids (sim-engine's own, fixed)."""


def event_uuid(key: str) -> str:
    """``str(uuid.uuid5(EVENT_NAMESPACE, key))``, computed directly (a third of the cost)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + key.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes

_ONE_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\.([A-Za-z_]\w*)\}")

CONST, LOOKUP, RENDER = 0, 1, 2
"""How a compiled property is filled: a constant, one ``{name.field}`` looked up, rendered."""

_Part = tuple[str, int, Any]
"""A compiled property: its name, how to fill it, and the constant / (name, field) /
template to fill it from."""


def compile_mapping(template: Any) -> tuple[_Part, ...] | None:
    """Compile a mapping of templates so the common cases skip the renderer.

    Returns:
        One ``(key, how, value)`` per entry, in order: ``CONST`` and the value for a
        value without ``{``, ``LOOKUP`` and ``(name, field)`` for a value that is
        exactly one ``{name.field}``, ``RENDER`` and the template otherwise; None
        when ``template`` is not a mapping or a key is itself a template (the whole
        mapping is rendered then).
    """
    if not isinstance(template, Mapping):
        return None
    parts: list[_Part] = []
    for key, value in template.items():
        if "{" in str(key):
            return None
        if not isinstance(value, (str, Mapping, list, tuple)) or (
            isinstance(value, str) and "{" not in value
        ):
            parts.append((str(key), CONST, value))
            continue
        match = _ONE_PLACEHOLDER.fullmatch(value) if isinstance(value, str) else None
        if match is not None:
            parts.append((str(key), LOOKUP, (match.group(1), match.group(2))))
        else:
            parts.append((str(key), RENDER, value))
    return tuple(parts)


class AnalyticsError(ValueError):
    """An event could not be rendered (a template names a field the context lacks)."""


@dataclass(frozen=True, slots=True)
class AnalyticsUser:
    """What an analytics event may say about its user.

    Attributes:
        user_id: the engine's id.
        persona: persona name.
        segment: the lifecycle segment (``Premium``...), None when unknown.
        timezone: IANA time zone name, None when unknown.
        signup_time: sign-up, ISO 8601 simulated time with the user's offset (None: unknown).
        signup_ts: the same in simulated epoch seconds (None: unknown).
        email, name: identity (synthetic), None when unknown.
    """

    user_id: int
    persona: str
    segment: str | None = None
    timezone: str | None = None
    signup_time: str | None = None
    signup_ts: float | None = None
    email: str | None = None
    name: str | None = None

    @classmethod
    def from_record(cls, record: UserRecord) -> AnalyticsUser:
        """The user a ``users.jsonl`` record describes."""
        return cls(
            user_id=record.user_id,
            persona=record.persona,
            segment=record.segment,
            timezone=record.timezone,
            signup_time=record.sim_time,
            signup_ts=record.sim_ts,
            email=record.email,
            name=record.name,
        )

    def context(self) -> dict[str, Any]:
        """The ``user`` fields templates may name."""
        return {
            "id": self.user_id,
            "persona": self.persona,
            "segment": self.segment,
            "timezone": self.timezone,
            "signup_time": self.signup_time,
            "email": self.email,
            "name": self.name,
        }


def _action_context(record: ActionRecord) -> dict[str, Any]:
    return {
        "name": record.action,
        "ok": record.ok,
        "status": record.status,
        "post_id": record.post_id,
        "session_id": record.session_id,
        "state": record.state,
        "endpoint": record.endpoint,
        "latency_ms": record.latency_ms,
    }


class AnalyticsMapper:
    """Maps action records and users to analytics events (see the module docstring).

    Args:
        spec: the mapping (``Scenario.analytics_mapping()``).
        seed: seeds the generator that fills ``{{...}}`` generators in properties.
        pool: generated content (default: a pool filled from ``seed``).
    """

    def __init__(self, spec: AnalyticsSpec, seed: int = 0, pool: ContentPool | None = None) -> None:
        self.spec = spec
        self._rng = random.Random(seed)
        self._pool = pool if pool is not None else ContentPool(seed, size=50)
        self._compiled: dict[int, tuple[_Part, ...] | None] = {}
        self._users: dict[AnalyticsUser, tuple[dict[str, Any], str]] = {}
        self._fixed_id = "{{" not in spec.distinct_id  # no generator: one id per user

    def _render(self, template: Any, context: dict[str, dict[str, Any]], where: str) -> Any:
        try:
            return render(template, context, self._rng, self._pool)
        except TemplateError as exc:
            raise AnalyticsError(f"analytics.{where}: {exc}") from None

    def _fill(
        self, template: dict[str, Any], context: dict[str, dict[str, Any]], where: str
    ) -> Any:
        """Render a mapping of templates (as :func:`render` does, faster for the common cases)."""
        key = id(template)
        if key not in self._compiled:
            self._compiled[key] = compile_mapping(template)
        parts = self._compiled[key]
        if parts is None:
            return self._render(template, context, where)
        out: dict[str, Any] = {}
        for name, how, value in parts:
            if how == CONST:
                out[name] = value
            elif how == LOOKUP:
                try:
                    out[name] = context[value[0]][value[1]]
                except KeyError:
                    out[name] = self._render(f"{{{value[0]}.{value[1]}}}", context, where)
            else:
                out[name] = self._render(value, context, where)
        return out

    def _user(self, user: AnalyticsUser) -> tuple[dict[str, Any], str]:
        """The user's template fields and distinct id (kept per user)."""
        known = self._users.get(user)
        if known is not None:
            return known
        context = user.context()
        did = str(self._render(self.spec.distinct_id, {"user": context}, "distinct_id"))
        if self._fixed_id:
            self._users[user] = (context, did)
        return context, did

    def reseed(self, seed: int) -> None:
        """Seed anew the generator that fills ``{{...}}`` generators (``generate`` seeds
        it per event, so a dataset's values do not depend on its chunks)."""
        self._rng.seed(seed)

    def distinct_id(self, user: AnalyticsUser) -> str:
        """The user's distinct id (``spec.distinct_id`` rendered, as text).

        Raises:
            AnalyticsError: the template names an unknown field.
        """
        return self._user(user)[1]

    def event(self, record: ActionRecord, user: AnalyticsUser) -> dict[str, Any] | None:
        """Return the event an action becomes (shape in the module docstring), or None
        when it sends none (a skipped action; a failed one unless ``spec.failed``; a
        browser flow's steps after its first, so that a flow is one event like a call).

        Raises:
            KeyError: the action is not named by the mapping (validation prevents it).
            AnalyticsError: a template names a field the context lacks.
        """
        if not record.ok and not self.spec.failed:
            return None
        if record.page is not None and record.page.get("index", 0) != 0:
            return None  # a browser flow is one action: its first step carries the event
        spec = self.spec.event_for(record.action)
        if spec is None:
            return None
        user_context, distinct_id = self._user(user)
        context = {"action": _action_context(record), "user": user_context}
        name = spec.event
        if "{" in name:
            name = str(self._render(name, context, f"events.{record.action}.event"))
        properties = self._fill(self.spec.common, context, "common")
        properties.update(self._fill(spec.properties, context, f"events.{record.action}"))
        if self.spec.synthetic_property is not None:
            properties[self.spec.synthetic_property] = True
        key = f"{distinct_id}|{record.sim_ts!r}|{record.action}|{record.session_id}"
        return {
            "event": name,
            "kind": spec.kind,
            "distinct_id": distinct_id,
            "timestamp": record.sim_time,
            "sim_ts": record.sim_ts,
            "uuid": event_uuid(key),
            "properties": properties,
        }

    def identify(self, user: AnalyticsUser, when: str, when_ts: float) -> dict[str, Any] | None:
        """Return the identify call for a user (shape in the module docstring), at
        ``when`` (ISO 8601 simulated time with the user's offset; ``when_ts`` the same
        in simulated epoch seconds), or None when ``identify.enabled`` is false.

        Raises:
            AnalyticsError: a trait template names a field the context lacks.
        """
        if not self.spec.identify.enabled:
            return None
        user_context, distinct_id = self._user(user)
        traits = self._fill(self.spec.identify.traits, {"user": user_context}, "traits")
        if self.spec.synthetic_property is not None:
            traits[self.spec.synthetic_property] = True
        return {
            "distinct_id": distinct_id,
            "timestamp": when,
            "sim_ts": when_ts,
            "uuid": event_uuid(f"{distinct_id}|identify|{when_ts!r}"),
            "traits": traits,
        }
