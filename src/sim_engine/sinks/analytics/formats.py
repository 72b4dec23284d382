"""Vendor shapes of the mapper's events: PostHog, Segment, Mixpanel. Pure functions.

Each takes the vendor-neutral dicts of :class:`~sim_engine.model.analytics.AnalyticsMapper`
(an event or an identify) and returns one JSON-ready message as the vendor's batch
import expects it:

* PostHog, batch import (``POST /batch/``, one event per line in a file): ``event``,
  ``distinct_id``, ``properties``, ``timestamp`` (ISO 8601), ``uuid``; an identify is
  a ``$set`` event whose ``properties.$set`` holds the traits.
* Segment, the tracking spec (track, page and identify calls): ``type``, ``userId``,
  ``event`` (track) or ``name`` (page), ``properties`` / ``traits``, ``timestamp``
  (ISO 8601 with the user's offset), ``messageId``.
* Mixpanel, the import API (``POST /import``): ``event`` and ``properties`` holding
  ``time`` (milliseconds since the epoch, UTC), ``distinct_id`` and ``$insert_id``;
  an identify is an Engage profile update (``$distinct_id``, ``$set``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "mixpanel_event",
    "mixpanel_profile",
    "mixpanel_time_ms",
    "posthog_event",
    "posthog_identify",
    "segment_event",
    "segment_identify",
]


def posthog_event(event: dict[str, Any]) -> dict[str, Any]:
    """A PostHog capture message for one event."""
    return {
        "event": event["event"],
        "distinct_id": event["distinct_id"],
        "properties": dict(event["properties"]),
        "timestamp": event["timestamp"],
        "uuid": event["uuid"],
    }


def posthog_identify(identity: dict[str, Any]) -> dict[str, Any]:
    """A PostHog ``$set`` message setting the user's traits on its person."""
    return {
        "event": "$set",
        "distinct_id": identity["distinct_id"],
        "properties": {"$set": dict(identity["traits"])},
        "timestamp": identity["timestamp"],
        "uuid": identity["uuid"],
    }


def segment_event(event: dict[str, Any]) -> dict[str, Any]:
    """A Segment ``track`` call, or a ``page`` call for an event of kind ``page``."""
    message: dict[str, Any] = {"type": "track" if event["kind"] == "track" else "page"}
    message["userId"] = event["distinct_id"]
    message["event" if event["kind"] == "track" else "name"] = event["event"]
    message["properties"] = dict(event["properties"])
    message["timestamp"] = event["timestamp"]
    message["messageId"] = event["uuid"]
    return message


def segment_identify(identity: dict[str, Any]) -> dict[str, Any]:
    """A Segment ``identify`` call."""
    return {
        "type": "identify",
        "userId": identity["distinct_id"],
        "traits": dict(identity["traits"]),
        "timestamp": identity["timestamp"],
        "messageId": identity["uuid"],
    }


def mixpanel_time_ms(sim_ts: float) -> int:
    """Mixpanel's ``time``: milliseconds since the epoch (UTC), from simulated epoch seconds."""
    return round(sim_ts * 1000)


def mixpanel_event(event: dict[str, Any]) -> dict[str, Any]:
    """A Mixpanel import event (the event's own properties after the required three)."""
    properties: dict[str, Any] = {
        "time": mixpanel_time_ms(event["sim_ts"]),
        "distinct_id": event["distinct_id"],
        "$insert_id": event["uuid"],
    }
    properties.update(event["properties"])
    return {"event": event["event"], "properties": properties}


def mixpanel_profile(identity: dict[str, Any]) -> dict[str, Any]:
    """A Mixpanel Engage ``$set`` update (without ``$token``: the importer adds its own)."""
    return {
        "$distinct_id": identity["distinct_id"],
        "$set": dict(identity["traits"]),
        "$ignore_time": True,
    }
