"""The ``analytics:`` section, the mapper, and the batch files a run writes for import."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import assert_one_line_error, read_jsonl, sim_engine
from sim_engine.model.analytics import EVENT_NAMESPACE, AnalyticsMapper, AnalyticsUser
from sim_engine.model.analytics_spec import AnalyticsSpec
from sim_engine.model.records import ActionRecord
from sim_engine.model.scenario import ScenarioError, default_scenario, validate_scenario
from sim_engine.runs.analytics import KEY_ENV, analytics_options, analytics_sink
from sim_engine.runs.runner import RunOptions, execute

DOCS = Path(__file__).parent.parent / "docs" / "analytics.md"
START = datetime.fromisoformat("2024-05-15T08:00:00+00:00").timestamp()


def record(**changes: Any) -> ActionRecord:
    fields: dict[str, Any] = {
        "sim_time": "2024-05-15T20:00:00.250+02:00",
        "sim_ts": 1715796000.25,
        "user_id": 7,
        "persona": "lurker",
        "state": "relaxing",
        "action": "read_post",
        "status": 200,
        "ok": True,
        "latency_ms": 2.5,
        "post_id": 3,
        "session_id": 4,
        "endpoint": "GET /posts/{post.id}",
    }
    fields.update(changes)
    return ActionRecord(**fields)


ANN = AnalyticsUser(
    7, "lurker", "Premium", "Europe/Paris", "2024-05-14T09:00:00.000+02:00", 1715670000.0,
    "ann@sim-engine.test", "Ann Lee",
)  # fmt: skip


# -- the mapper ---------------------------------------------------------------------------


def test_an_action_becomes_an_event_in_simulated_time_with_the_users_offset() -> None:
    event = AnalyticsMapper(AnalyticsSpec()).event(record(), ANN)
    key = "user-7|1715796000.25|read_post|4"
    assert event == {
        "event": "post_viewed",
        "kind": "track",
        "distinct_id": "user-7",
        "timestamp": "2024-05-15T20:00:00.250+02:00",
        "sim_ts": 1715796000.25,
        "uuid": str(uuid.uuid5(EVENT_NAMESPACE, key)),
        "properties": {
            "persona": "lurker",
            "routine_state": "relaxing",
            "session_id": 4,
            "post_id": 3,
            "is_synthetic": True,
        },
    }


def test_identify_carries_the_traits_at_sign_up() -> None:
    identity = AnalyticsMapper(AnalyticsSpec()).identify(ANN, ANN.signup_time or "", 1715670000.0)
    assert identity is not None
    assert identity["timestamp"] == "2024-05-14T09:00:00.000+02:00"
    assert identity["traits"] == {
        "persona": "lurker",
        "segment": "Premium",
        "timezone": "Europe/Paris",
        "signed_up_at": "2024-05-14T09:00:00.000+02:00",
        "name": "Ann Lee",
        "email": "ann@sim-engine.test",
        "is_synthetic": True,
    }
    off = AnalyticsSpec.model_validate({"identify": {"enabled": False}})
    assert AnalyticsMapper(off).identify(ANN, "x", 0.0) is None


def test_failed_and_skipped_actions_send_nothing_unless_asked() -> None:
    mapper = AnalyticsMapper(AnalyticsSpec())
    assert mapper.event(record(ok=False, status=500), ANN) is None
    assert mapper.event(record(action="list_own_posts"), ANN) is None
    spec = AnalyticsSpec.model_validate({"failed": True, "synthetic_property": "synthetic"})
    event = AnalyticsMapper(spec).event(record(ok=False, status=500), ANN)
    assert event is not None and event["properties"]["synthetic"] is True
    assert "is_synthetic" not in event["properties"]
    none = AnalyticsSpec.model_validate({"synthetic_property": None})
    event = AnalyticsMapper(none).event(record(), ANN)
    assert event is not None and "is_synthetic" not in event["properties"]


def test_other_names_any_action_and_generators_render_per_event() -> None:
    spec = AnalyticsSpec.model_validate(
        {
            "events": {"rate_video": {"event": "video_rated", "properties": {"r": "{{int:1:5}}"}}},
            "other": {"event": "did_{action.name}"},
            "skip": [],
        }
    )
    mapper = AnalyticsMapper(spec, seed=3)
    other = mapper.event(record(action="zap"), ANN)
    assert other is not None and other["event"] == "did_zap"
    ratings = []
    for i in range(200):
        event = mapper.event(record(action="rate_video", sim_ts=float(i)), ANN)
        assert event is not None
        ratings.append(event["properties"]["r"])
    assert set(ratings) == {1, 2, 3, 4, 5}  # ints, every value drawn
    again = AnalyticsMapper(spec, seed=3)
    first = again.event(record(action="rate_video", sim_ts=0.0), ANN)
    assert first is not None and first["properties"]["r"] == ratings[0]  # seeded


def test_every_kind_of_property_template_renders_like_the_api_sections() -> None:
    """Constants, one placeholder (typed), text around placeholders, generators, nested
    values and templated keys give what ``templates.render`` gives."""
    spec = AnalyticsSpec.model_validate(
        {
            "events": {
                "read_post": {
                    "event": "{action.name}_seen",
                    "properties": {
                        "const": 5, "text": "plain", "id": "{action.post_id}",
                        "label": "post {action.post_id} by {user.persona}",
                        "ok": "{action.ok}", "nested": {"tz": "{user.timezone}"},
                        "{action.state}_flag": True, "word": "{{choice:a|b}}",
                    },
                }
            },
            "common": {},
        }
    )  # fmt: skip
    event = AnalyticsMapper(spec).event(record(), ANN)
    assert event is not None and event["event"] == "read_post_seen"
    props = event["properties"]
    assert props == {
        "const": 5, "text": "plain", "id": 3, "label": "post 3 by lurker", "ok": True,
        "nested": {"tz": "Europe/Paris"}, "relaxing_flag": True, "word": props["word"],
        "is_synthetic": True,
    }  # fmt: skip
    assert props["word"] in ("a", "b")


# -- validation -----------------------------------------------------------------------------

HOGFLIX_API = {
    "auth": {
        "signup": {"method": "POST", "path": "/users", "body": {"email": "{user.email}"}},
        "login": {"method": "POST", "path": "/login", "body": {"email": "{user.email}"}},
        "token_path": "token",
    },
    "actions": {
        name: {"method": "POST", "path": f"/{name}"}
        for name in (
            "browse_catalog", "watch_video", "rate_video", "add_to_watchlist", "chat_flixbuddy",
        )
    },
}  # fmt: skip


def hogflix(analytics: dict[str, Any] | None) -> dict[str, Any]:
    data = default_scenario().model_dump(mode="json")
    data["api"] = HOGFLIX_API
    weights = {"browse_catalog": 1.0, "watch_video": 3.0, "rate_video": 1.0}
    for persona in data["personas"].values():
        persona["actions"] = {"working": weights, "relaxing": weights}
    data["analytics"] = analytics
    return data


def docs_example() -> dict[str, Any]:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(analytics:.*?)```", text, re.S)
    assert block is not None
    loaded = yaml.safe_load(block.group(1))
    assert isinstance(loaded, dict)
    return dict(loaded["analytics"])


def test_the_docs_seed_003_example_validates_and_names_its_events() -> None:
    scenario = validate_scenario(hogflix(docs_example()))
    spec = scenario.analytics_mapping()
    names = {spec.events[a].event for a in ("watch_video", "rate_video", "add_to_watchlist")}
    assert names == {"video_watched", "video_rated", "watchlist_added"}
    assert spec.events["chat_flixbuddy"].event == "flixbuddy_interaction"
    event = AnalyticsMapper(spec).event(record(action="rate_video"), ANN)
    assert event is not None and event["distinct_id"] == "hogflix-7"
    assert event["properties"]["plan"] == "Premium" and event["properties"]["is_synthetic"]
    assert event["properties"]["rating"] in range(1, 6)


def test_an_action_the_mapping_cannot_name_is_one_line_naming_it() -> None:
    example = docs_example()
    del example["events"]["chat_flixbuddy"]
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(hogflix(example), source="hogflix.yaml")
    assert str(caught.value) == (
        "hogflix.yaml: analytics: action 'chat_flixbuddy' has no event; name it under "
        "analytics.events, list it under analytics.skip, or set analytics.other"
    )
    # without a section, the default (demo API) mapping cannot name HogFlix's actions:
    scenario = validate_scenario(hogflix(None))
    with pytest.raises(ScenarioError, match=r"action 'add_to_watchlist' has no event \(and 4"):
        scenario.analytics_mapping()
    with pytest.raises(ScenarioError, match="add_to_watchlist"):
        analytics_options("posthog-file", None, {}, scenario)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"events": {"watch_video": {"event": "w", "properties": {"x": "{action.nope}"}}}},
            "analytics.events.watch_video.properties: unknown placeholder {action.nope}",
        ),
        ({"distinct_id": "{action.name}"}, "analytics.distinct_id: unknown placeholder"),
        ({"common": {"x": "{{nonesuch}}"}}, "analytics.common: unknown generator"),
        ({"events": {"a": {"event": "two\nlines"}}}, "analytics.events.a.event: 'two\\nlines'"),
        ({"skip": ["watch_video"], "events": {"watch_video": {"event": "w"}}}, "also in"),
        ({"bogus": 1}, "analytics.bogus: Extra inputs are not permitted"),
    ],
)
def test_bad_sections_are_one_line_naming_the_field(section: dict[str, Any], message: str) -> None:
    example = docs_example()
    merged = {**example, **section}
    if "events" in section:
        merged["events"] = {**example["events"], **section["events"]}
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(hogflix(merged), source="s.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


# -- batch files ----------------------------------------------------------------------------


def run_to_files(out: Path, kind: str) -> list[dict[str, Any]]:
    """A short in-process run (users in Paris and New York) writing ``kind``'s files."""
    scenario = default_scenario().with_overrides(
        **{
            "population.initial": 12,
            "population.timezones": {"Europe/Paris": 1.0, "America/New_York": 1.0},
            "seed": 5,
        }
    )
    analytics = analytics_options(kind, None, {}, scenario)
    options = RunOptions(
        scenario, "inprocess", None, 8 * 3600.0, START, out, control=False, analytics=analytics
    )
    execute(options)
    return [a for a in read_jsonl(out / "actions.jsonl") if a["ok"] and a["action"] != "x"]


def test_posthog_file_lines_match_the_batch_import_fields(tmp_path: Path) -> None:
    actions = run_to_files(tmp_path, "posthog-file")
    lines = read_jsonl(tmp_path / "analytics-posthog.jsonl")
    events = [e for e in lines if e["event"] != "$set"]
    sets = [e for e in lines if e["event"] == "$set"]
    assert len(events) == len(actions) > 30
    assert len(sets) == len(read_jsonl(tmp_path / "users.jsonl")) > 0
    for event, action in zip(events, actions, strict=True):
        assert set(event) == {"event", "distinct_id", "properties", "timestamp", "uuid"}
        assert event["timestamp"] == action["sim_time"]  # simulated, with the offset
        assert event["distinct_id"] == f"user-{action['user_id']}"
        assert event["properties"]["is_synthetic"] is True
        uuid.UUID(event["uuid"])
    offsets = {e["timestamp"][-6:] for e in events}
    assert offsets & {"+01:00", "+02:00"} and offsets & {"-04:00", "-05:00"}
    assert all(s["properties"]["$set"]["is_synthetic"] is True for s in sets)
    assert {s["properties"]["$set"]["segment"] for s in sets} <= {"Premium", "Standard", "Basic"}


def test_segment_file_lines_are_spec_calls(tmp_path: Path) -> None:
    actions = run_to_files(tmp_path, "segment-file")
    lines = read_jsonl(tmp_path / "analytics-segment.jsonl")
    calls = [c for c in lines if c["type"] != "identify"]
    assert len(calls) == len(actions)
    for call, action in zip(calls, actions, strict=True):
        name_key = "event" if call["type"] == "track" else "name"
        pages = {"browse_feed", "browse_trending", "check_followers"}
        assert call["type"] == ("page" if action["action"] in pages else "track")
        assert set(call) == {"type", "userId", name_key, "properties", "timestamp", "messageId"}
        assert datetime.fromisoformat(call["timestamp"]).timestamp() == pytest.approx(
            action["sim_ts"], abs=1e-3
        )
        assert call["timestamp"] == action["sim_time"]
    identifies = [c for c in lines if c["type"] == "identify"]
    assert identifies and all(set(c["traits"]) >= {"persona", "timezone"} for c in identifies)


def test_mixpanel_file_lines_are_import_events(tmp_path: Path) -> None:
    actions = run_to_files(tmp_path, "mixpanel-file")
    events = read_jsonl(tmp_path / "analytics-mixpanel.jsonl")
    profiles = read_jsonl(tmp_path / "analytics-mixpanel-profiles.jsonl")
    assert len(events) == len(actions) and profiles
    for event, action in zip(events, actions, strict=True):
        assert set(event) == {"event", "properties"}
        props = event["properties"]
        assert list(props)[:3] == ["time", "distinct_id", "$insert_id"]
        assert props["time"] == round(action["sim_ts"] * 1000)  # milliseconds, UTC
        assert isinstance(props["time"], int) and len(props["$insert_id"]) <= 36
    assert all(set(p) == {"$distinct_id", "$set", "$ignore_time"} for p in profiles)
    # the same run again gives the same ids (a re-import deduplicates)
    run_to_files(tmp_path / "again", "mixpanel-file")
    again = read_jsonl(tmp_path / "again" / "analytics-mixpanel.jsonl")
    assert [e["properties"]["$insert_id"] for e in again] == [
        e["properties"]["$insert_id"] for e in events
    ]


def test_log_jsonl_does_not_repeat_successful_actions(tmp_path: Path) -> None:
    actions = run_to_files(tmp_path, "posthog-file")
    logged = [e for e in read_jsonl(tmp_path / "log.jsonl") if e["event"] == "action"]
    assert actions and not [e for e in logged if e["ok"]]


# -- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--analytics", "posthog"], {KEY_ENV: "k"}, "--analytics posthog needs --analytics-host"),
        (
            ["--analytics", "segment", "--analytics-host", "http://127.0.0.1:9"],
            {},
            f"--analytics segment needs its key in the {KEY_ENV} variable",
        ),
        (
            ["--analytics", "mixpanel", "--analytics-host", "https://api.mixpanel.com"],
            {KEY_ENV: "secret-key-123"},
            "--analytics-host: refusing to target api.mixpanel.com",
        ),
        (["--analytics-host", "http://127.0.0.1:9"], {}, "--analytics-host needs --analytics"),
        (
            ["--analytics", "posthog-file", "--analytics-host", "http://127.0.0.1:9"],
            {},
            "--analytics-host is for a live sink, not posthog-file",
        ),
    ],
)
def test_bad_analytics_options_exit_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str, monkeypatch: Any
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    proc = sim_engine(
        "run", "--target", "inprocess", "--duration", "1h", "--out", str(out), "-q", *args
    )
    line = assert_one_line_error(proc, 2)
    assert message in line
    assert "secret-key-123" not in proc.stdout + proc.stderr
    assert not out.exists()


def test_an_unknown_analytics_kind_is_a_usage_error(tmp_path: Path) -> None:
    proc = sim_engine("run", "--analytics", "nope", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Invalid value for '--analytics': 'nope' is not one of 'posthog'" in proc.stderr


def test_a_resumed_run_knows_its_users_without_identifying_them_again(tmp_path: Path) -> None:
    """The users a resumed run's users.jsonl lists keep their traits in later events
    (here the distinct id is their email) and get no second identify; the file grows."""
    line = {
        "sim_time": "2024-05-14T09:00:00.000+02:00", "sim_ts": 1715670000.0, "user_id": 7,
        "persona": "lurker", "name": "Ann Lee", "email": "ann@sim-engine.test",
        "timezone": "Europe/Paris", "avatar": "AL", "tag": None, "remote_id": 3,
        "segment": "Basic", "kind": "user",
    }  # fmt: skip
    (tmp_path / "users.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    (tmp_path / "analytics-segment.jsonl").write_text('{"earlier": true}\n', encoding="utf-8")
    scenario = default_scenario().with_overrides(
        **{"analytics": {"distinct_id": "{user.email}", "common": {"plan": "{user.segment}"}}}
    )
    options = analytics_options("segment-file", None, {}, scenario)
    sink = analytics_sink(options, scenario, tmp_path, resumed=True)
    sink.emit(record())
    sink.close()
    lines = read_jsonl(tmp_path / "analytics-segment.jsonl")
    assert lines[0] == {"earlier": True} and len(lines) == 2
    assert lines[1]["userId"] == "ann@sim-engine.test"
    assert lines[1]["properties"] == {"plan": "Basic", "post_id": 3, "is_synthetic": True}
    assert sink.identified == 0 and sink.events == 1
