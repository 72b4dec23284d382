"""Analytics events of a generated dataset: ``generate --analytics KIND``.

Per chunk of users (:class:`ChunkAnalytics`, inside :func:`~sim_engine.runs.generate.run_chunk`):
each user is identified once (at its sign-up), then each planned day's events
are mapped as the run's analytics sink maps its actions
(:class:`~sim_engine.model.analytics.AnalyticsMapper`, the scenario's ``analytics:``
section) and

* ``posthog-file``, ``segment-file``, ``mixpanel-file``: written column-wise
  (:class:`~sim_engine.model.analytics_columns.ColumnMapping`,
  :func:`~sim_engine.sinks.analytics.columns.vendor_lines`) to
  ``OUT/analytics-VENDOR/part-CCCCC.jsonl`` (Mixpanel's profiles to
  ``OUT/analytics-mixpanel-profiles/``), the lines the run's batch files hold;
  a part is written under a temporary name and renamed when the chunk is done,
  so a resumed dataset rewrites only the chunks that were not complete;
* ``posthog``, ``segment``, ``mixpanel``: sent through the vendor's SDK
  (:mod:`sim_engine.sinks.analytics.live`), one client per chunk, flushed before
  the chunk counts as done; the SDK's queue sets the pace (as fast as the host
  takes events). A resumed dataset sends its incomplete chunks again; the events'
  ids (``uuid``, ``messageId``, ``$insert_id``) are the same, so the vendor
  deduplicates them.

What a generated action says: it happened (``ok`` true), nothing was sent, so
``status`` is 0, ``latency_ms`` 0.0, ``post_id`` and ``endpoint`` null;
``session_id`` is the dataset's session id and ``state`` the routine state. Times
are the dataset's milliseconds (``ts_utc``): ``sim_ts`` is ``ts_utc`` in epoch
seconds, ``timestamp`` the same instant with the user's UTC offset. A property
drawn by a ``{{generator}}`` is drawn from a generator seeded by the run seed and
the event id, so it does not depend on the chunks either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sim_engine.datasets.build import Vocab, users_table
from sim_engine.model.analytics import AnalyticsMapper, AnalyticsUser
from sim_engine.model.analytics_columns import (
    SECONDS_TEXT,
    ActionColumns,
    ColumnMapping,
    Property,
    iso_millis,
    uuid_text,
)
from sim_engine.model.plan.events import DayPlan, event_names
from sim_engine.model.plan.population import Population
from sim_engine.model.plan.tables import ROUTINE_CODES
from sim_engine.model.records import ActionRecord
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.runs.analytics import AnalyticsOptions, live_writer
from sim_engine.sinks.analytics import FILE_FORMATS, AnalyticsWriter, json_line
from sim_engine.sinks.analytics.columns import EventText, vendor_lines, write_lines

__all__ = [
    "ACTION_FIELDS",
    "AnalyticsJob",
    "ChunkAnalytics",
    "analytics_dirs",
    "analytics_files",
    "check_mapping",
    "planned_actions",
]

ACTION_FIELDS: dict[str, Any] = {"ok": True, "status": 0, "latency_ms": 0.0, "post_id": None,
                                 "endpoint": None}  # fmt: skip
"""The action fields of a generated event that are the same for every event."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def analytics_dirs(vendor: str) -> tuple[str, ...]:
    """The dataset folders a vendor's batch files go to (events first)."""
    events, _shape, people, _identify = FILE_FORMATS[vendor]
    return tuple(name.removesuffix(".jsonl") for name in (events, people) if name)


def analytics_files(
    options: AnalyticsOptions | None, chunks: Iterable[dict[str, Any]]
) -> dict[str, list[str]]:
    """The batch files of ``--analytics VENDOR-file`` the complete chunks wrote, by folder
    (``chunks``: the manifest's, each listing its ``files``); empty for a live sink."""
    if options is None or options.live:
        return {}
    listed = [f for chunk in chunks for f in chunk["files"]]
    return {
        name: sorted(f for f in listed if f.startswith(name + "/"))
        for name in analytics_dirs(options.vendor)
    }


def check_mapping(scenario: Scenario) -> None:
    """Check the analytics mapping names every event the planner can draw.

    Raises:
        ScenarioError: one line naming the first action the mapping cannot name.
    """
    try:
        ColumnMapping(scenario.analytics_mapping(), event_names(scenario))
    except KeyError as exc:
        raise ScenarioError(f"{scenario.name}: analytics: action {exc} has no event") from None


@dataclass(frozen=True)
class AnalyticsJob:
    """A dataset's analytics output, shipped with each chunk (picklable).

    Attributes:
        options: the checked ``--analytics`` options (the key never shows in ``repr``).
        root: the dataset directory (files go under it, never in DuckDB's staging).
    """

    options: AnalyticsOptions
    root: Path


_SLICE = 500_000  # events per Arrow string join (a column stays well under 2 GB)
_ROUTINE_JSON = pa.array([_dumps(name) for name in ROUTINE_CODES])


def planned_actions(
    plan: DayPlan,
    pop: Population,
    names: tuple[str, ...],
    users: list[AnalyticsUser],
    rows: npt.NDArray[np.int64] | None = None,
) -> Iterator[tuple[ActionRecord, AnalyticsUser]]:
    """A planned day's events (``rows`` of them; default all) as the action records a
    run would have written, with their users (``users``: the chunk's, by index)."""
    index = np.arange(plan.events) if rows is None else rows
    ms = np.round(plan.ts[index] * 1000.0).astype(np.int64)
    for ts, offset, user, action, routine, session in zip(
        (ms / 1000.0).tolist(),
        plan.offset[index].tolist(),
        (plan.user[index] - pop.first).tolist(),
        plan.action[index].tolist(),
        plan.routine[index].tolist(),
        plan.session[index].tolist(),
        strict=True,
    ):
        who = users[user]
        when = datetime.fromtimestamp(ts, timezone(timedelta(seconds=offset)))
        record = ActionRecord(
            sim_time=when.isoformat(timespec="milliseconds"),
            sim_ts=ts,
            user_id=who.user_id,
            persona=who.persona,
            state=ROUTINE_CODES[routine],
            action=names[action],
            session_id=session,
            **ACTION_FIELDS,
        )
        yield record, who


def _users(pop: Population, scenario: Scenario, vocab: Vocab) -> list[AnalyticsUser]:
    """The chunk's users as the mapper sees them (from the dataset's ``users`` rows)."""
    rows = users_table(pop, scenario, vocab).to_pydict()
    ms = np.round(pop.created_ts * 1000.0).astype(np.int64).tolist()
    users = []
    for i, uid in enumerate(rows["user_id"]):
        zone = rows["timezone"][i]
        when = datetime.fromtimestamp(ms[i] / 1000, ZoneInfo(zone))
        users.append(
            AnalyticsUser(
                user_id=uid,
                persona=rows["persona"][i],
                segment=rows["segment"][i],
                timezone=zone,
                signup_time=when.isoformat(timespec="milliseconds"),
                signup_ts=ms[i] / 1000,
                email=rows["email"][i],
                name=rows["name"][i],
            )
        )
    return users


def _offset_text(seconds: int) -> str:
    return datetime.fromtimestamp(0, timezone(timedelta(seconds=seconds))).isoformat()[19:]


_FRACTIONS = pa.array(SECONDS_TEXT)


def _keys(
    did: pa.Array,
    ms: npt.NDArray[np.int64],
    names: pa.Array,
    action: npt.NDArray[np.int64],
    session: npt.NDArray[np.int64],
) -> list[bytes]:
    """Each event's UUID key, ``f"{distinct_id}|{sim_ts!r}|{action}|{session_id}"``
    (as the mapper builds it), as UTF-8, built column-wise."""
    seconds = pc.cast(pa.array(ms // 1000), pa.string())
    fraction = pc.take(_FRACTIONS, pa.array(ms % 1000))
    act = pc.take(names, pa.array(action))
    sid = pc.cast(pa.array(session), pa.string())
    joined = pc.binary_join_element_wise(did, "|", seconds, ".", fraction, "|", act, "|", sid, "")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = np.frombuffer(joined.buffers()[1], np.int32)[joined.offset :]
    data = joined.buffers()[2].to_pybytes()
    bounds = offsets[: len(joined) + 1].tolist()
    return [data[lo:hi] for lo, hi in pairwise(bounds)]


def _text(rows: npt.NDArray[np.uint8]) -> pa.Array:
    """Fixed-width ASCII rows as an Arrow string array (no copy per row)."""
    n, width = rows.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(rows.tobytes()))


def _timestamps(ms: npt.NDArray[np.int64], offset: npt.NDArray[np.int32]) -> pa.Array:
    """ISO 8601 at the user's offset, to the millisecond, as JSON strings."""
    text = _text(iso_millis(ms + offset.astype(np.int64) * 1000))
    kinds, codes = np.unique(offset, return_inverse=True)
    suffix = pc.take(pa.array([_offset_text(int(k)) + '"' for k in kinds]), pa.array(codes))
    return pc.binary_join_element_wise('"', text, suffix, "")


class ChunkAnalytics:
    """The analytics output of one chunk (see the module docstring).

    Args:
        job: what to write or send.
        scenario: the scenario (its ``analytics_mapping()`` covers ``vocab.events``).
        pop: the chunk's users.
        vocab: the dataset's vocabularies (event names by action code).
        index: the chunk's number (part file names).

    Raises:
        OSError: a part file cannot be opened.
        AnalyticsSetupError: a live sink's SDK is missing.
    """

    def __init__(
        self, job: AnalyticsJob, scenario: Scenario, pop: Population, vocab: Vocab, index: int
    ) -> None:
        spec = scenario.analytics_mapping()
        self.job, self.pop, self.seed = job, pop, scenario.seed
        self.names = tuple(vocab.events)
        self.mapper = AnalyticsMapper(spec, seed=scenario.seed)
        self.columns = ColumnMapping(spec, self.names)
        self.users = _users(pop, scenario, vocab)
        self.dids = [self.mapper.distinct_id(u) for u in self.users]
        self._did_json = pa.array([_dumps(d) for d in self.dids])
        self._did_plain = pa.array(self.dids, pa.string())
        self._action_text = pa.array(self.names, pa.string())
        self._user_json = {
            field: pa.array([_dumps(u.context()[field]) for u in self.users])
            for name, field in self.columns.lookups()
            if name == "user"
        }
        self._files: dict[str, Path] = {}
        self._handles: dict[str, IO[bytes]] = {}
        self.writer: AnalyticsWriter | None = None
        if job.options.live:
            self.writer = live_writer(job.options)
        else:
            for folder in analytics_dirs(job.options.vendor):
                rel = f"{folder}/part-{index:05d}.jsonl"
                self._files[rel] = job.root / rel
                (job.root / folder).mkdir(parents=True, exist_ok=True)
                self._handles[rel] = open(job.root / (rel + ".tmp"), "wb")  # noqa: SIM115
        self._identify()

    def _identify(self) -> None:
        vendor = self.job.options.vendor
        _events, _shape, _people, shape = FILE_FORMATS[vendor]
        handle = list(self._handles.values())[-1] if self._handles else None
        for user in self.users:
            assert user.signup_time is not None and user.signup_ts is not None
            identity = self.mapper.identify(user, user.signup_time, user.signup_ts)
            if identity is None:
                continue
            if self.writer is not None:
                self.writer.identify(identity)
            elif handle is not None:
                handle.write((json_line(shape(identity)) + "\n").encode())

    def day(self, plan: DayPlan) -> None:
        """Map and write (or send) a planned day's events, in event id order."""
        if self.writer is not None:
            for row, (record, user) in enumerate(
                planned_actions(plan, self.pop, self.names, self.users)
            ):
                event = self._event(record, user, plan, row)
                if event is not None:
                    self.writer.track(event)
            return
        handle = next(iter(self._handles.values()))
        for lo in range(0, plan.events, _SLICE):
            write_lines(handle, self._lines(plan, np.arange(lo, min(lo + _SLICE, plan.events))))

    def _event(
        self, record: ActionRecord, user: AnalyticsUser, plan: DayPlan, row: int
    ) -> dict[str, Any] | None:
        """The mapper's event; a rendered action draws from a generator of its own."""
        if not self.columns.actions[int(plan.action[row])].columnar:
            self.mapper.reseed((self.seed << 64) | int(plan.event_id[row]))
        return self.mapper.event(record, user)

    def _lines(self, plan: DayPlan, rows: npt.NDArray[np.int64]) -> pa.Array:
        """The vendor lines of ``rows`` (indices into the day), skipped actions left out."""
        acts = self.columns.actions
        action = plan.action[rows].astype(np.int64)
        sends = np.asarray([a.sends for a in acts])[action]
        columnar = np.asarray([a.columnar for a in acts])[action]
        fast, slow = rows[sends & columnar], rows[sends & ~columnar]
        lines = [vendor_lines(self.job.options.vendor, self._text(plan, fast))]
        if slow.size:
            _events, shape, _people, _identify = FILE_FORMATS[self.job.options.vendor]
            slow_lines = []
            for row, (record, user) in zip(
                slow.tolist(),
                planned_actions(plan, self.pop, self.names, self.users, slow),
                strict=True,
            ):
                event = self._event(record, user, plan, row)
                assert event is not None  # it sends (not skipped, and planned actions succeed)
                slow_lines.append(json_line(shape(event)))
            lines.append(pa.array(slow_lines, pa.string()))
        order = np.argsort(np.concatenate([fast, slow]), kind="stable")
        return pc.take(pa.concat_arrays(lines), pa.array(order))

    def _text(self, plan: DayPlan, rows: npt.NDArray[np.int64]) -> EventText:
        """The JSON text columns of columnar events."""
        acts = self.columns.actions
        action = plan.action[rows].astype(np.int64)
        local = plan.user[rows] - self.pop.first
        ms = np.round(plan.ts[rows] * 1000.0).astype(np.int64)
        names = pa.array([_dumps(a.event or "") for a in acts])
        page = pa.array(np.asarray([a.kind == "page" for a in acts])[action])
        did_text = pc.take(self._did_plain, pa.array(local))
        uuids = _text(uuid_text(_keys(did_text, ms, self._action_text, action, plan.session[rows])))
        return EventText(
            event=pc.take(names, pa.array(action)),
            page=page,
            distinct_id=pc.take(self._did_json, pa.array(local)),
            timestamp=_timestamps(ms, plan.offset[rows]),
            time_ms=pc.cast(pa.array(ms), pa.string()),
            uuid=pc.binary_join_element_wise('"', uuids, '"', ""),
            properties=self._properties(plan, rows, action),
        )

    def _properties(
        self, plan: DayPlan, rows: npt.NDArray[np.int64], action: npt.NDArray[np.int64]
    ) -> pa.Array:
        """Each event's properties text, built per action (its properties' layout)."""
        order = np.argsort(action, kind="stable")
        cuts = np.flatnonzero(np.diff(action[order])) + 1
        parts = [
            self._group(self.columns.actions[int(action[g[0]])], plan, rows[g])
            for g in np.split(order, cuts)
            if g.size
        ]
        if not parts:
            return pa.array([], pa.string())
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        return pc.take(pa.concat_arrays(parts), pa.array(inverse))

    def _group(self, act: ActionColumns, plan: DayPlan, rows: npt.NDArray[np.int64]) -> pa.Array:
        pieces: list[Any] = []
        text = ""
        for i, prop in enumerate(act.properties):
            text += ("," if i else "") + _dumps(prop.key) + ":"
            value = self._value(prop, act, plan, rows)
            if isinstance(value, str):
                text += value
            else:
                pieces += [text, value]
                text = ""
        if len(pieces) == 0:
            return pa.array([text] * rows.size, pa.string())
        return pc.binary_join_element_wise(*pieces, text, "")

    def _value(
        self, prop: Property, act: ActionColumns, plan: DayPlan, rows: npt.NDArray[np.int64]
    ) -> str | pa.Array:
        """A property's JSON text: one string for all rows, or one per row."""
        if prop.lookup is None:
            return _dumps(prop.value)
        name, field = prop.lookup
        if name == "user":
            return pc.take(self._user_json[field], pa.array(plan.user[rows] - self.pop.first))
        if field == "session_id":
            return pc.cast(pa.array(plan.session[rows]), pa.string())
        if field == "state":
            return pc.take(_ROUTINE_JSON, pa.array(plan.routine[rows].astype(np.int64)))
        return _dumps(act.action if field == "name" else ACTION_FIELDS[field])

    def close(self) -> list[str]:
        """Flush (files renamed into place, or the SDK's queue sent); the files written."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for rel, handle in self._handles.items():
            handle.close()
            os.replace(self._files[rel].with_name(self._files[rel].name + ".tmp"), self._files[rel])
        self._handles = {}
        return list(self._files)
