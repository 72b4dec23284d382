"""``generate --analytics``: the vendors' batch files of a generated dataset, and its
events sent live through an SDK.

The batch files are checked against the per-event path the run uses: the dataset's
own ``events`` and ``users`` tables are read back, each row becomes the action record
a run would have written (its time with the user's offset from ``zoneinfo``, not from
the planner), the :class:`AnalyticsMapper` maps it and the vendor shape and
``json.dumps`` make its line; the file must hold exactly those lines.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.dataset as ds
import pytest
import yaml

from helpers import assert_one_line_error, sim_engine
from sim_engine.model.analytics import AnalyticsMapper, AnalyticsUser
from sim_engine.model.records import ActionRecord
from sim_engine.model.scenario import Scenario, default_scenario, validate_scenario
from sim_engine.runs.analytics import AnalyticsOptions
from sim_engine.runs.generate import GenerateOptions, GenerateSummary, generate
from sim_engine.sinks.analytics import FILE_FORMATS, json_line
from test_analytics import docs_example, hogflix
from test_analytics_sdk import KEY, Recorder

START = date(2026, 3, 6)  # New York moves to summer time on 2026-03-08


def _generate(out: Path, kind: str, scenario: Scenario | None = None, **kw: Any) -> GenerateSummary:
    host = kw.pop("host", None)
    options = GenerateOptions(
        users=60, days=4, start=START, seed=5, out=out,
        analytics=AnalyticsOptions(kind, host, KEY if host else None), **kw,
    )  # fmt: skip
    summary = generate(scenario or default_scenario(), options)
    assert summary.complete and summary.events > 1000
    return summary


def _table(out: Path, name: str) -> list[dict[str, Any]]:
    single = out / f"{name}.parquet"
    source = ds.dataset(single) if single.exists() else ds.dataset(out / name, partitioning="hive")
    rows: list[dict[str, Any]] = source.to_table().to_pylist()
    return rows


def _lines(out: Path, folder: str) -> list[str]:
    return [
        line
        for part in sorted((out / folder).glob("part-*.jsonl"))
        for line in part.read_text(encoding="utf-8").splitlines()
    ]


def _iso(ms: int, zone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).isoformat(timespec="milliseconds")


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _users(out: Path) -> dict[int, AnalyticsUser]:
    """The dataset's users as the mapper sees them, their sign-up time from ``zoneinfo``."""
    users = {}
    for row in _table(out, "users"):
        signup = _ms(row["signup_utc"])
        users[row["user_id"]] = AnalyticsUser(
            row["user_id"], row["persona"], row["segment"], row["timezone"],
            _iso(signup, row["timezone"]), signup / 1000, row["email"], row["name"],
        )  # fmt: skip
    return users


def _expected(out: Path, users: dict[int, AnalyticsUser]) -> Iterator[ActionRecord]:
    """The dataset's events as a run's action records."""
    for row in _table(out, "events"):
        user, ms = users[row["user_id"]], _ms(row["ts_utc"])
        assert user.timezone is not None
        yield ActionRecord(
            sim_time=_iso(ms, user.timezone), sim_ts=ms / 1000, user_id=user.user_id,
            persona=user.persona, state=row["routine_state"], action=row["event"],
            status=0, ok=True, latency_ms=0.0, session_id=row["session_id"],
        )  # fmt: skip


@pytest.mark.parametrize("vendor", ["posthog", "segment", "mixpanel"])
def test_batch_files_hold_the_lines_the_mapper_gives_for_the_same_events(
    tmp_path: Path, vendor: str
) -> None:
    _generate(tmp_path, f"{vendor}-file", chunk_users=25)
    events_file, shape, people_file, identify_shape = FILE_FORMATS[vendor]
    mapper = AnalyticsMapper(default_scenario().analytics_mapping())
    users = _users(tmp_path)
    want = []
    for record in _expected(tmp_path, users):
        event = mapper.event(record, users[record.user_id])
        if event is not None:
            want.append(json_line(shape(event)))
    identities = {}
    for user in users.values():
        assert user.signup_time is not None and user.signup_ts is not None
        identity = mapper.identify(user, user.signup_time, user.signup_ts)
        identities[user.user_id] = json_line(identify_shape(identity or {}))
    got = _lines(tmp_path, events_file.removesuffix(".jsonl"))
    if people_file:
        got_ids = _lines(tmp_path, people_file.removesuffix(".jsonl"))
    else:  # identify lines share the file
        got_ids = [line for line in got if line in set(identities.values())]
        got = [line for line in got if line not in set(identities.values())]
    assert sorted(got) == sorted(want) and len(want) > 1000
    assert sorted(got_ids) == sorted(identities.values())
    got_events = got
    offsets = {json.loads(line).get("timestamp", "")[-6:] for line in got_events}
    if vendor != "mixpanel":
        assert {"-05:00", "-04:00", "+01:00"} <= offsets  # DST in New York on day 3


def test_events_in_the_files_name_users_and_mark_every_event_synthetic(tmp_path: Path) -> None:
    _generate(tmp_path, "segment-file")
    calls = [json.loads(line) for line in _lines(tmp_path, "analytics-segment")]
    kinds = {c["type"] for c in calls}
    assert kinds == {"identify", "track", "page"}
    users = {row["user_id"] for row in _table(tmp_path, "users")}
    assert {c["userId"] for c in calls} == {f"user-{u}" for u in users}
    assert all(c.get("properties", c.get("traits"))["is_synthetic"] is True for c in calls)
    names = {c.get("event") or c.get("name") for c in calls if c["type"] != "identify"}
    assert {"user_signed_up", "user_logged_in", "feed_viewed", "post_viewed"} <= names
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["tables"]["analytics-segment"] == ["analytics-segment/part-00000.jsonl"]


def test_generated_values_do_not_depend_on_chunks_or_workers(tmp_path: Path) -> None:
    """The seed 003 mapping draws ratings with a generator: per event, not per chunk."""
    scenario = validate_scenario(hogflix(docs_example()))
    one = _generate(tmp_path / "one", "posthog-file", scenario)
    _generate(tmp_path / "two", "posthog-file", scenario, chunk_users=20, workers=2)
    lines = sorted(_lines(tmp_path / "one", "analytics-posthog"))
    assert lines == sorted(_lines(tmp_path / "two", "analytics-posthog"))
    rated = [json.loads(x)["properties"] for x in lines if '"video_rated"' in x]
    assert rated and {p["rating"] for p in rated} == {1, 2, 3, 4, 5}
    assert {p["plan"] for p in rated} <= set(scenario.lifecycle.segments)
    assert one.events > 1000


def test_an_interrupted_dataset_resumes_with_the_same_analytics_lines(tmp_path: Path) -> None:
    _generate(tmp_path / "ref", "mixpanel-file", chunk_users=25)
    out, seen = tmp_path / "cut", []

    def stop(events: int, steps: int) -> None:
        seen.append(events)
        if len(seen) == 6:  # day 2 of the second chunk
            raise KeyboardInterrupt

    options: dict[str, Any] = {
        "users": 60, "days": 4, "start": START, "seed": 5, "chunk_users": 25,
        "analytics": AnalyticsOptions("mixpanel-file"),
    }  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        generate(default_scenario(), GenerateOptions(out=out, **options), stop)
    assert [p.name for p in (out / "analytics-mixpanel").iterdir() if p.suffix == ".jsonl"] == [
        "part-00000.jsonl"
    ]
    generate(default_scenario(), GenerateOptions(out=out, resume=True, **options))
    for folder in ("analytics-mixpanel", "analytics-mixpanel-profiles"):
        assert _lines(out, folder) == _lines(tmp_path / "ref", folder)


def _file_and_live(tmp_path: Path, vendor: str) -> Recorder:
    """The dataset's ``VENDOR-file`` batch files in ``tmp_path/file``, and the same dataset
    sent live through the vendor's SDK to a loopback recorder (returned, closed)."""
    _generate(tmp_path / "file", f"{vendor}-file")
    recorder = Recorder()
    try:
        _generate(tmp_path / "live", vendor, host=recorder.url)
    finally:
        recorder.close()
    return recorder


def test_the_live_sink_sends_what_the_batch_file_holds(tmp_path: Path) -> None:
    """PostHog's SDK against a loopback recorder: every event of the batch file, with
    its uuid, name, distinct id, properties, and its simulated time (in UTC)."""
    recorder = _file_and_live(tmp_path, "posthog")
    sent = [m for body in recorder.json_bodies("/batch/") for m in body["batch"]]
    assert {body["api_key"] for body in recorder.json_bodies("/batch/")} == {KEY}
    want = [json.loads(line) for line in _lines(tmp_path / "file", "analytics-posthog")]
    assert len(sent) == len(want) > 1000
    by_uuid = {m["uuid"]: m for m in sent}
    for line in want:
        got = by_uuid[line["uuid"]]
        assert got["event"] == line["event"] and got["distinct_id"] == line["distinct_id"]
        when = datetime.fromisoformat(got["timestamp"])
        assert when == datetime.fromisoformat(line["timestamp"])  # the same instant
        if line["event"] == "$set":  # the SDK sends traits beside the properties
            assert got["$set"] == line["properties"]["$set"]
        else:
            props = line["properties"]
            assert {k: got["properties"].get(k) for k in props} == props


def test_a_mapping_that_cannot_name_the_api_actions_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "hogflix.yaml"
    path.write_text(yaml.safe_dump(hogflix(None)))
    args = ["generate", "--scenario", str(path), "--users", "10", "--days", "1"]
    args += ["--start", "2026-01-01", "--out", str(tmp_path / "out"), "-q"]
    proc = sim_engine(*args, "--analytics", "posthog-file")
    assert "action 'add_to_watchlist' has no event" in assert_one_line_error(proc, 2)
    assert not (tmp_path / "out").exists()
    proc = sim_engine(*args)  # without --analytics, the dataset needs no mapping
    assert proc.returncode == 0, proc.stderr


def _size(paths: Iterator[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


DATASET_TABLES = {"events", "sessions", "users", "lifecycle_changes", "daily_metrics"}


def test_the_summary_counts_batch_files_apart_from_the_dataset(tmp_path: Path) -> None:
    """The batch files are listed in the manifest beside the tables, but their bytes are
    neither a table's nor in the dataset's bytes per event; a DuckDB file counts once."""
    out = tmp_path / "p"
    summary = _generate(out, "posthog-file")
    tables = _size(p for t in DATASET_TABLES for p in [out / f"{t}.parquet", *out.glob(f"{t}/*/*")])
    batch = _size((out / "analytics-posthog").iterdir())
    assert set(summary.bytes_by_table) == DATASET_TABLES
    assert summary.dataset_bytes == sum(summary.bytes_by_table.values()) == tables
    assert summary.bytes_by_analytics == {"analytics-posthog": batch} and batch > tables
    assert summary.events == len(_table(out, "events"))
    duck = _generate(tmp_path / "d", "segment-file", fmt="duckdb")
    assert duck.dataset_bytes == (tmp_path / "d" / "dataset.duckdb").stat().st_size
    assert duck.bytes_by_analytics == {
        "analytics-segment": _size((tmp_path / "d" / "analytics-segment").iterdir())
    }
    cli = tmp_path / "cli"
    proc = sim_engine(
        "generate", "--users", "60", "--days", "4", "--start", START.isoformat(), "--seed", "5",
        "--out", str(cli), "--analytics", "posthog-file", env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = dict(re.findall(r"│ ([a-z/_ ()-]+?) +│ +([0-9.,]+(?: MB)?) │", proc.stdout))
    events = int(rows["events"].replace(",", ""))
    tables = _size(p for t in DATASET_TABLES for p in [cli / f"{t}.parquet", *cli.glob(f"{t}/*/*")])
    assert rows["bytes/event (dataset tables)"] == f"{tables / events:.1f}", proc.stdout
    assert rows["analytics-posthog batch files"].endswith(" MB")
    assert not any("analytics" in name and "on disk" in name for name in rows)


def _in_dataset(when: datetime) -> None:
    """A simulated instant of the dataset (4 local days from START), not the wall clock."""
    first = datetime(2026, 3, 5, tzinfo=timezone.utc)  # the zones' earliest midnight, padded
    assert first <= when <= first + timedelta(days=6)


def test_segment_live_sends_what_the_batch_file_holds(tmp_path: Path) -> None:
    """Segment's SDK against a loopback recorder: every call of the batch file (identify,
    track, page), exactly, plus the SDK's context; times simulated, in the users' zones."""
    from segment.analytics.version import VERSION

    recorder = _file_and_live(tmp_path, "segment")
    bodies = recorder.json_bodies("/v1/batch")
    assert {body["writeKey"] for body in bodies} == {KEY}
    sent = {m["messageId"]: m for body in bodies for m in body["batch"]}
    want = [json.loads(line) for line in _lines(tmp_path / "file", "analytics-segment")]
    assert len(sent) == len(want) > 1000
    sdk = {
        "integrations": {},
        "anonymousId": None,
        "context": {"library": {"name": "analytics-python", "version": VERSION}},
    }
    for line in want:
        extra = {"category": None} if line["type"] == "page" else {}
        assert sent[line["messageId"]] == {**line, **sdk, **extra}
    for call in sent.values():
        assert call.get("properties", call.get("traits"))["is_synthetic"] is True
        _in_dataset(datetime.fromisoformat(call["timestamp"]))
    offsets = {m["timestamp"][-6:] for m in sent.values()}
    assert {"-05:00", "-04:00", "+01:00"} <= offsets  # the users' own zones, DST included


def test_mixpanel_live_sends_what_the_batch_files_hold(tmp_path: Path) -> None:
    """Mixpanel's SDK against a loopback recorder: every imported event is the batch
    file's line plus the token and the SDK's library fields; every profile update the
    profiles file's, at the user's simulated sign-up time."""
    from mixpanel import __version__ as version

    recorder = _file_and_live(tmp_path, "mixpanel")
    sent = {e["properties"]["$insert_id"]: e for e in recorder.form_data("/import")}
    want = [json.loads(line) for line in _lines(tmp_path / "file", "analytics-mixpanel")]
    assert len(sent) == len(want) > 1000
    sdk = {"token": KEY, "mp_lib": "python", "$lib_version": version}
    for line in want:
        got = sent[line["properties"]["$insert_id"]]
        assert got == {"event": line["event"], "properties": {**line["properties"], **sdk}}
        assert got["properties"]["is_synthetic"] is True
        _in_dataset(datetime.fromtimestamp(got["properties"]["time"] / 1000, timezone.utc))
    profiles = {p["$distinct_id"]: p for p in recorder.form_data("/engage")}
    signups = {f"user-{u['user_id']}": u["signup_utc"] for u in _table(tmp_path / "file", "users")}
    lines = _lines(tmp_path / "file", "analytics-mixpanel-profiles")
    assert len(profiles) == len(lines) == len(signups)
    for line in map(json.loads, lines):
        got = profiles[line["$distinct_id"]]
        assert got == {**line, "$token": KEY, "$time": got["$time"]}
        assert got["$set"]["is_synthetic"] is True
        signup = signups[line["$distinct_id"]]
        assert abs(got["$time"] - signup.timestamp()) < 0.001  # the simulated sign-up
