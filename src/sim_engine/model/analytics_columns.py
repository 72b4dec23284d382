"""The analytics mapping compiled per action for columns of planned events.

``sim-engine generate`` plans events as columns (an action index per row, the
user, the time, the session, the routine state), not as records.
:class:`ColumnMapping` compiles the scenario's ``analytics:`` section
(:class:`~sim_engine.model.analytics_spec.AnalyticsSpec`) once per action of the
event vocabulary, so a writer can fill a whole day's events column by column: per
action the event's name and kind, and each property as a constant or as one
field looked up per row (``{user.persona}``, ``{action.session_id}``...), in the
order :class:`~sim_engine.model.analytics.AnalyticsMapper` gives them (``common``
first, the event's own properties over them, the synthetic flag last).

An action whose name or properties need more than that (a ``{{generator}}``, text
around a placeholder, a templated key) is left to the mapper, event by event
(:attr:`ActionColumns.columnar` is False). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sim_engine.model.analytics import EVENT_NAMESPACE, LOOKUP, RENDER, compile_mapping
from sim_engine.model.analytics_spec import AnalyticsSpec

__all__ = ["SECONDS_TEXT", "ActionColumns", "ColumnMapping", "Property", "iso_millis", "uuid_text"]


@dataclass(frozen=True)
class Property:
    """One property of a columnar event.

    Attributes:
        key: the property's name.
        lookup: ``(name, field)`` the value is read from per row (``("user",
            "persona")``, ``("action", "session_id")``), or None for a constant.
        value: the constant (when ``lookup`` is None).
    """

    key: str
    lookup: tuple[str, str] | None
    value: Any = None


@dataclass(frozen=True)
class ActionColumns:
    """What one action of the vocabulary becomes.

    Attributes:
        action: the action's name.
        sends: False when the action sends no event (``skip``).
        columnar: True when :attr:`event` and :attr:`properties` say it all; False
            when the mapper must render each event (generators, mixed templates).
        event: the event's name (``"{action.name}"`` resolved); None unless columnar.
        kind: ``track`` or ``page``.
        properties: the properties in the mapper's order (empty unless columnar).
    """

    action: str
    sends: bool
    columnar: bool
    event: str | None = None
    kind: str = "track"
    properties: tuple[Property, ...] = ()


def _event_name(template: str, action: str) -> str | None:
    """The name without per-row rendering: plain text, or ``{action.name}`` in it."""
    name = template.replace("{action.name}", action)
    return None if "{" in name else name


def _properties(spec: AnalyticsSpec, own: dict[str, Any]) -> tuple[Property, ...] | None:
    merged: dict[str, Property] = {}
    for template in (spec.common, own):
        parts = compile_mapping(template)
        if parts is None:
            return None
        for key, how, value in parts:
            if how == RENDER:
                return None
            merged[key] = Property(key, tuple(value) if how == LOOKUP else None, value)
    if spec.synthetic_property is not None:
        merged[spec.synthetic_property] = Property(spec.synthetic_property, None, True)
    return tuple(merged.values())


def _compile_action(spec: AnalyticsSpec, action: str) -> ActionColumns:
    event = spec.event_for(action)
    if event is None:
        return ActionColumns(action, sends=False, columnar=True)
    name = _event_name(event.event, action)
    properties = _properties(spec, event.properties)
    if name is None or properties is None:
        return ActionColumns(action, sends=True, columnar=False, kind=event.kind)
    return ActionColumns(action, True, True, name, event.kind, properties)


class ColumnMapping:
    """The mapping compiled for an event vocabulary (action names by index).

    Args:
        spec: the mapping (``Scenario.analytics_mapping()``, checked to cover ``names``).
        names: the event vocabulary (``PlanModel.names``): row action codes index it.

    Attributes:
        actions: one :class:`ActionColumns` per name, by index.

    Raises:
        KeyError: a name the mapping does not cover (``analytics_mapping`` rules it out).
    """

    def __init__(self, spec: AnalyticsSpec, names: Sequence[str]) -> None:
        self.spec = spec
        self.actions = tuple(_compile_action(spec, name) for name in names)

    def lookups(self) -> set[tuple[str, str]]:
        """Every ``(name, field)`` some columnar property reads per row."""
        return {p.lookup for a in self.actions for p in a.properties if p.lookup is not None}


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_COLUMNS = np.asarray([i for i in range(36) if i not in (8, 13, 18, 23)])
_DIGITS = np.uint8(ord("0"))


def uuid_text(keys: Sequence[bytes]) -> npt.NDArray[np.uint8]:
    """The UUID 5s of ``keys`` (UTF-8) in :data:`EVENT_NAMESPACE`, as ``event_uuid``
    gives them, as ASCII: an ``(n, 36)`` array of bytes, one row per key. One SHA-1
    per key in Python; the version bits and the hex text are set column-wise."""
    base = hashlib.sha1(EVENT_NAMESPACE.bytes)
    digests = bytearray()
    for key in keys:
        h = base.copy()
        h.update(key)
        digests += h.digest()[:16]
    raw = np.frombuffer(bytes(digests), np.uint8).reshape(-1, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = np.full((len(raw), 36), ord("-"), np.uint8)
    text[:, _UUID_COLUMNS] = np.stack([_HEX[raw >> 4], _HEX[raw & 15]], axis=2).reshape(-1, 32)
    return text


SECONDS_TEXT = tuple(f"{i:03d}".rstrip("0") or "0" for i in range(1000))
"""``repr(ms / 1000)`` after the point, by ``ms % 1000`` (``repr`` of a whole number of
milliseconds since the epoch is ``f"{ms // 1000}.{SECONDS_TEXT[ms % 1000]}"``)."""


def iso_millis(ms: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """``YYYY-MM-DDTHH:MM:SS.mmm`` of epoch milliseconds (years 1000 to 9999, no zone),
    as datetime's ``isoformat(timespec="milliseconds")`` writes them: an ``(n, 23)``
    array of ASCII bytes."""
    days = ms // 86_400_000
    rem = ms - days * 86_400_000
    date = days.astype("datetime64[D]")
    month = date.astype("datetime64[M]")
    fields = (
        (date.astype("datetime64[Y]").astype(np.int64) + 1970, 4, "-"),
        (month.astype(np.int64) % 12 + 1, 2, "-"),
        ((date - month).astype(np.int64) + 1, 2, "T"),
        (rem // 3_600_000, 2, ":"),
        (rem // 60_000 % 60, 2, ":"),
        (rem // 1000 % 60, 2, "."),
        (rem % 1000, 3, ""),
    )
    out = np.empty((len(ms), 23), np.uint8)
    col = 0
    for value, width, sep in fields:
        for k in range(width):
            out[:, col + width - 1 - k] = _DIGITS + (value // 10**k % 10).astype(np.uint8)
        col += width
        if sep:
            out[:, col] = ord(sep)
            col += 1
    return out
