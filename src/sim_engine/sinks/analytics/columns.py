"""Vendor batch-file lines assembled column-wise (pyarrow), for many events at once.

The same lines :class:`~sim_engine.sinks.analytics.files.FileWriter` writes one
event at a time (``json.dumps`` of :mod:`~sim_engine.sinks.analytics.formats`'
shapes, compact separators), built here from :class:`EventText`: each field
already JSON text, one row per event. No event goes through a Python dict; a
day of a million events is a few Arrow string joins. ``tests/test_generate_analytics.py``
checks the lines equal the per-event writer's, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EventText", "json_lines", "vendor_lines", "write_lines"]


@dataclass(frozen=True)
class EventText:
    """Events as JSON text columns (pyarrow string arrays of one length, no nulls).

    Attributes:
        event: the event's name, a JSON string (quoted).
        page: bool array: the event is of kind ``page``.
        distinct_id: the user's distinct id, a JSON string.
        timestamp: ISO 8601 simulated time with the user's offset, a JSON string.
        time_ms: Mixpanel's ``time`` (simulated epoch milliseconds, UTC), as digits.
        uuid: the event's id, a JSON string.
        properties: the properties object's members without the braces
            (``"persona":"lurker","is_synthetic":true``; may be empty).
    """

    event: pa.Array
    page: pa.Array
    distinct_id: pa.Array
    timestamp: pa.Array
    time_ms: pa.Array
    uuid: pa.Array
    properties: pa.Array


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def vendor_lines(vendor: str, text: EventText) -> pa.Array:
    """One line (without newline) per event in ``vendor``'s batch format.

    Args:
        vendor: ``posthog``, ``segment`` or ``mixpanel``.
        text: the events.

    Raises:
        KeyError: an unknown vendor.
    """
    t = text
    if vendor == "posthog":
        return _join(
            '{"event":', t.event, ',"distinct_id":', t.distinct_id, ',"properties":{',
            t.properties, '},"timestamp":', t.timestamp, ',"uuid":', t.uuid, "}",
        )  # fmt: skip
    if vendor == "segment":
        head = pc.if_else(t.page, '{"type":"page","userId":', '{"type":"track","userId":')
        name = pc.if_else(t.page, ',"name":', ',"event":')
        return _join(
            head, t.distinct_id, name, t.event, ',"properties":{', t.properties,
            '},"timestamp":', t.timestamp, ',"messageId":', t.uuid, "}",
        )  # fmt: skip
    if vendor == "mixpanel":
        # Properties named time, distinct_id or $insert_id repeat the key; a reader
        # keeps the last (the property), as the per-event shape's update does.
        comma = pc.if_else(pc.equal(pc.binary_length(t.properties), 0), "", ",")
        return _join(
            '{"event":', t.event, ',"properties":{"time":', t.time_ms, ',"distinct_id":',
            t.distinct_id, ',"$insert_id":', t.uuid, comma, t.properties, "}}",
        )  # fmt: skip
    raise KeyError(vendor)


def json_lines(lines: pa.Array) -> memoryview:
    """The lines as a file's bytes, each ending in a newline (empty for no lines)."""
    if len(lines) == 0:
        return memoryview(b"")
    joined = pc.binary_join_element_wise(lines, "\n", "")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    width = np.int64 if pa.types.is_large_string(joined.type) else np.int32
    offsets = np.frombuffer(joined.buffers()[1], dtype=width)
    lo, hi = int(offsets[joined.offset]), int(offsets[joined.offset + len(joined)])
    return memoryview(joined.buffers()[2])[lo:hi]


def write_lines(handle: IO[bytes], lines: pa.Array) -> None:
    """Append the lines to a binary file, a newline after each."""
    handle.write(json_lines(lines))
