"""Live analytics through the official SDKs, each pointed at a loopback recorder: the
exact payloads the SDK sent, timestamps in simulated time, ``is_synthetic``, the key."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from helpers import read_jsonl
from sim_engine.model.analytics import AnalyticsMapper, AnalyticsUser
from sim_engine.model.records import ActionRecord, UserRecord
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.analytics import KEY_ENV, analytics_options
from sim_engine.runs.runner import RunOptions, execute
from sim_engine.sinks.analytics.formats import (
    mixpanel_event,
    mixpanel_profile,
    segment_event,
    segment_identify,
)
from sim_engine.sinks.analytics.live import MixpanelWriter, PosthogWriter, SegmentWriter

KEY = "phc_test_key_0123456789"
START = datetime.fromisoformat("2024-05-15T08:00:00+00:00").timestamp()

EVENT: dict[str, Any] = {
    "event": "post_viewed",
    "kind": "track",
    "distinct_id": "user-7",
    "timestamp": "2024-05-15T20:00:00.250+02:00",
    "sim_ts": 1715796000.25,
    "uuid": "4f0c7d3e-1111-5222-8333-444455556666",
    "properties": {"post_id": 3, "persona": "lurker", "is_synthetic": True},
}
PAGE: dict[str, Any] = {
    **EVENT,
    "kind": "page",
    "event": "feed_viewed",
    "uuid": EVENT["uuid"][:-1] + "7",
}
IDENTITY: dict[str, Any] = {
    "distinct_id": "user-7",
    "timestamp": "2024-05-14T09:00:00.000+02:00",
    "sim_ts": 1715670000.0,
    "uuid": "4f0c7d3e-1111-5222-8333-444455556668",
    "traits": {"persona": "lurker", "segment": "Premium", "is_synthetic": True},
}


class Recorder:
    """An HTTP server on 127.0.0.1 that records every POST and answers 200 with
    ``{"status": 1}`` (what Mixpanel's SDK checks; PostHog's and Segment's take any 200)."""

    def __init__(self, delay_s: float = 0.0, refuse: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refuse = refuse  # answer the first N requests 429 (Retry-After: 0)
        recorder = self
        pause = threading.Event()  # never set: a slow host

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                recorder.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": raw.decode()}
                )
                pause.wait(delay_s)
                body = b'{"status": 1, "error": null}'
                if recorder.refuse > 0:
                    recorder.refuse -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def json_bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests if r["path"] == path]

    def form_data(self, path: str) -> list[dict[str, Any]]:
        """Mixpanel posts ``data=<JSON array>`` as a form."""
        return [
            m
            for r in self.requests
            if r["path"].split("?")[0] == path
            for m in json.loads(parse_qs(r["body"])["data"][0])
        ]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.mark.parametrize("writer_class", [PosthogWriter, SegmentWriter, MixpanelWriter])
def test_a_full_sdk_queue_makes_the_run_wait_instead_of_dropping_events(
    writer_class: Any,
) -> None:
    """A slow host (20 ms a request) and room for 2 unsent messages: every one of 60
    events still arrives, in order (the SDKs alone drop what does not fit)."""
    slow = Recorder(delay_s=0.02)
    try:
        writer = writer_class(slow.url, KEY, max_queue=2)
        for i in range(60):
            writer.track({**EVENT, "event": f"e{i}", "uuid": f"{EVENT['uuid'][:-2]}{i:02d}"})
        writer.close()
        if writer_class is MixpanelWriter:
            names = [e["event"] for e in slow.form_data("/import")]
        else:
            path = "/batch/" if writer_class is PosthogWriter else "/v1/batch"
            names = [e["event"] for b in slow.json_bodies(path) for e in b["batch"]]
        assert names == [f"e{i}" for i in range(60)]
        assert writer.errors.failed == 0
    finally:
        slow.close()


@pytest.mark.parametrize("writer_class", [PosthogWriter, SegmentWriter])
def test_a_rate_limited_batch_is_retried_by_the_sdk(writer_class: Any) -> None:
    """The host answers 429 to the first batch: the SDK sends it again, and nothing is lost
    or counted as failed."""
    limited = Recorder(refuse=1)
    try:
        writer = writer_class(limited.url, KEY)
        writer.track(EVENT)
        writer.close()
        path = "/batch/" if writer_class is PosthogWriter else "/v1/batch"
        batches = [
            [e["uuid" if "uuid" in e else "messageId"] for e in b["batch"]]
            for b in limited.json_bodies(path)
        ]
        assert batches == [[EVENT["uuid"]], [EVENT["uuid"]]]  # refused, then sent again
        assert writer.errors.failed == 0
    finally:
        limited.close()


def sdk_fields(properties: dict[str, Any], ours: dict[str, Any]) -> set[str]:
    """The keys an SDK added to our properties (all of them ``$``-prefixed library facts)."""
    return {k for k in properties if k not in ours}


def test_posthog_sdk_sends_historical_events_at_simulated_times(recorder: Recorder) -> None:
    writer = PosthogWriter(recorder.url, KEY)
    writer.identify(IDENTITY)
    writer.track(EVENT)
    writer.close()
    (body,) = recorder.json_bodies("/batch/")
    assert body["api_key"] == KEY and body["historical_migration"] is True
    person, event = body["batch"]
    assert person["event"] == "$set" and person["distinct_id"] == "user-7"
    assert person["$set"] == IDENTITY["traits"]
    assert person["timestamp"] == "2024-05-14T07:00:00+00:00"  # 09:00+02:00, in UTC
    assert person["uuid"] == IDENTITY["uuid"]
    assert event["event"] == "post_viewed" and event["distinct_id"] == "user-7"
    assert event["timestamp"] == "2024-05-15T18:00:00.250000+00:00"  # 20:00:00.250+02:00
    assert event["uuid"] == EVENT["uuid"]
    props = event["properties"]
    assert {k: props[k] for k in EVENT["properties"]} == EVENT["properties"]
    extra = sdk_fields(props, EVENT["properties"])
    assert extra and all(k.startswith("$") for k in extra) and props["$lib"] == "posthog-python"


def test_segment_sdk_sends_track_page_and_identify_calls(recorder: Recorder) -> None:
    from segment.analytics.version import VERSION

    writer = SegmentWriter(recorder.url, KEY)
    writer.identify(IDENTITY)
    writer.track(EVENT)
    writer.track(PAGE)
    writer.close()
    (request,) = [r for r in recorder.requests if r["path"] == "/v1/batch"]
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {auth}"
    body = json.loads(request["body"])
    assert body["writeKey"] == KEY
    context = {"library": {"name": "analytics-python", "version": VERSION}}
    common = {"integrations": {}, "anonymousId": None, "context": context, "userId": "user-7"}
    assert body["batch"] == [
        {
            **common,
            "type": "identify",
            "traits": IDENTITY["traits"],
            "timestamp": "2024-05-14T09:00:00.000+02:00",  # the user's own offset
            "messageId": IDENTITY["uuid"],
        },
        {
            **common,
            "type": "track",
            "event": "post_viewed",
            "properties": EVENT["properties"],
            "timestamp": "2024-05-15T20:00:00.250+02:00",
            "messageId": EVENT["uuid"],
        },
        {
            **common,
            "type": "page",
            "name": "feed_viewed",
            "category": None,
            "properties": EVENT["properties"],
            "timestamp": "2024-05-15T20:00:00.250+02:00",
            "messageId": PAGE["uuid"],
        },
    ]


def test_mixpanel_sdk_imports_events_and_sets_profiles(recorder: Recorder) -> None:
    writer = MixpanelWriter(recorder.url, KEY)
    writer.identify(IDENTITY)
    writer.track(EVENT)
    writer.close()
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    imports = [r for r in recorder.requests if r["path"].startswith("/import")]
    assert imports and imports[0]["headers"]["Authorization"] == f"Basic {auth}"
    (event,) = recorder.form_data("/import")
    props = event["properties"]
    ours = {
        "token": KEY,
        "distinct_id": "user-7",
        "time": 1715796000250,  # milliseconds, the simulated instant
        "$insert_id": EVENT["uuid"],
        **EVENT["properties"],
    }
    assert event["event"] == "post_viewed"
    assert {k: props[k] for k in ours} == ours
    assert sdk_fields(props, ours) == {"mp_lib", "$lib_version"}
    (profile,) = recorder.form_data("/engage")
    assert profile["$distinct_id"] == "user-7" and profile["$token"] == KEY
    assert profile["$set"] == IDENTITY["traits"]
    assert profile["$time"] == 1715670000.0 and profile["$ignore_time"] is True  # simulated


def test_a_run_sends_its_actions_live_through_posthog(
    recorder: Recorder, tmp_path: Path, monkeypatch: Any
) -> None:
    scenario = default_scenario().with_overrides(
        # 20 users: the realistic default users act about half as much as the old ones (10 did)
        **{"population.initial": 20, "population.timezones": {"Asia/Tokyo": 1.0}, "seed": 8}
    )
    analytics = analytics_options("posthog", recorder.url, {KEY_ENV: KEY}, scenario)
    assert KEY not in repr(analytics)
    out = tmp_path / "run"
    execute(RunOptions(scenario, "inprocess", None, 6 * 3600.0, START, out, analytics=analytics))
    sent = [e for body in recorder.json_bodies("/batch/") for e in body["batch"]]
    events = [e for e in sent if e["event"] != "$set"]
    actions = [a for a in read_jsonl(out / "actions.jsonl") if a["ok"]]
    assert len(events) == len(actions) > 20
    assert len([e for e in sent if e["event"] == "$set"]) == len(read_jsonl(out / "users.jsonl"))
    for event, action in zip(events, actions, strict=True):
        local = datetime.fromisoformat(action["sim_time"])
        offset = local.utcoffset()
        assert offset is not None and offset.total_seconds() == 9 * 3600
        assert datetime.fromisoformat(event["timestamp"]) == local  # the simulated instant
        assert event["properties"]["is_synthetic"] is True
        assert event["distinct_id"] == f"user-{action['user_id']}"
    for path in out.iterdir():
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path.name


def _live_run(kind: str, recorder: Recorder, out: Path) -> list[dict[str, Any]]:
    """A 6-hour run (20 users in Tokyo) sending live to ``recorder``; return the events and
    identities the run's own mapping gives for its ``actions.jsonl`` and ``users.jsonl``
    (what the SDK must have sent), each with the action or user it came from."""
    scenario = default_scenario().with_overrides(
        # 20 users: the realistic default users act about half as much as the old ones (10 did)
        **{"population.initial": 20, "population.timezones": {"Asia/Tokyo": 1.0}, "seed": 8}
    )
    analytics = analytics_options(kind, recorder.url, {KEY_ENV: KEY}, scenario)
    execute(RunOptions(scenario, "inprocess", None, 6 * 3600.0, START, out, analytics=analytics))
    for path in out.iterdir():
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path.name
    mapper = AnalyticsMapper(scenario.analytics_mapping(), seed=scenario.seed)
    fields = {f.name for f in dataclasses.fields(UserRecord) if f.init}
    users = {}
    mapped: list[dict[str, Any]] = []
    for line in read_jsonl(out / "users.jsonl"):
        record = UserRecord(**{k: v for k, v in line.items() if k in fields})
        users[record.user_id] = user = AnalyticsUser.from_record(record)
        identity = mapper.identify(user, record.sim_time, record.sim_ts)
        assert identity is not None
        mapped.append({"identity": identity, "source": line})
    fields = {f.name for f in dataclasses.fields(ActionRecord) if f.init}
    for line in read_jsonl(out / "actions.jsonl"):
        action = ActionRecord(**{k: v for k, v in line.items() if k in fields})
        event = mapper.event(action, users[action.user_id])
        if event is not None:
            mapped.append({"event": event, "source": line})
    assert sum("event" in m for m in mapped) > 20 and sum("identity" in m for m in mapped) >= 3
    return mapped


def _simulated(when: datetime, source: dict[str, Any]) -> None:
    """``when`` is the action's (or the sign-up's) simulated instant, in Tokyo time (to the
    millisecond: text times are cut to whole milliseconds, Mixpanel rounds ``sim_ts``)."""
    local = datetime.fromisoformat(source["sim_time"])
    assert local.utcoffset() == timedelta(hours=9)
    assert abs(when - local) <= timedelta(milliseconds=1)
    assert abs(when.timestamp() - source["sim_ts"]) < 0.001
    assert START <= when.timestamp() <= START + 6 * 3600  # the run's span, not the wall clock


def test_a_run_sends_its_actions_live_through_segment(recorder: Recorder, tmp_path: Path) -> None:
    """Every call Segment's SDK sent is exactly the run's mapped event or identify in the
    tracking spec, with the SDK's own context, at the simulated time in the user's zone."""
    from segment.analytics.version import VERSION

    mapped = _live_run("segment", recorder, tmp_path / "run")
    sent = {m["messageId"]: m for body in recorder.json_bodies("/v1/batch") for m in body["batch"]}
    assert {body["writeKey"] for body in recorder.json_bodies("/v1/batch")} == {KEY}
    sdk = {
        "integrations": {},
        "anonymousId": None,
        "context": {"library": {"name": "analytics-python", "version": VERSION}},
    }
    assert len(sent) == len(mapped)
    for item in mapped:
        if "event" in item:
            want = {**segment_event(item["event"]), **sdk}
            if want["type"] == "page":  # the SDK's page call has a category argument
                want["category"] = None
        else:
            want = {**segment_identify(item["identity"]), **sdk}
        got = sent[want["messageId"]]
        assert got == want
        assert got.get("properties", got.get("traits"))["is_synthetic"] is True
        assert got["userId"] == f"user-{item['source']['user_id']}"
        _simulated(datetime.fromisoformat(got["timestamp"]), item["source"])
    assert {m["type"] for m in sent.values()} == {"identify", "track", "page"}


def test_a_run_sends_its_actions_live_through_mixpanel(recorder: Recorder, tmp_path: Path) -> None:
    """Every event Mixpanel's SDK imported is exactly the run's mapped event (time in
    simulated milliseconds, the project token, the SDK's two library fields), and every
    user is a profile update at its simulated sign-up time."""
    from mixpanel import __version__ as version

    mapped = _live_run("mixpanel", recorder, tmp_path / "run")
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    imports = [r for r in recorder.requests if r["path"].startswith("/import")]
    assert imports and {r["headers"]["Authorization"] for r in imports} == {f"Basic {auth}"}
    sent = {e["properties"]["$insert_id"]: e for e in recorder.form_data("/import")}
    profiles = {p["$distinct_id"]: p for p in recorder.form_data("/engage")}
    events = [m for m in mapped if "event" in m]
    assert len(sent) == len(events) and len(profiles) == len(mapped) - len(events)
    sdk = {"token": KEY, "mp_lib": "python", "$lib_version": version}
    for item in events:
        want = mixpanel_event(item["event"])
        want["properties"].update(sdk)
        got = sent[item["event"]["uuid"]]
        assert got == want
        assert got["properties"]["is_synthetic"] is True
        when = datetime.fromtimestamp(got["properties"]["time"] / 1000, timezone.utc)
        _simulated(when, item["source"])
    for item in mapped:
        if "identity" in item:
            identity = item["identity"]
            want = {**mixpanel_profile(identity), "$token": KEY, "$time": identity["sim_ts"]}
            got = profiles[identity["distinct_id"]]
            assert got == want and got["$set"]["is_synthetic"] is True
            _simulated(datetime.fromtimestamp(got["$time"], timezone.utc), item["source"])
