"""Tests of scenario loading and validation: defaults, merging, and one-line field-path errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sim_engine.model.scenario import (
    ACTIONS,
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
    parse_duration,
    read_scenario_data,
    validate_scenario,
)


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    return message


# -- the default scenario ----------------------------------------------------------------


def test_default_scenario_validates() -> None:
    scenario = default_scenario()
    assert isinstance(scenario, Scenario)
    assert scenario.name == "default"
    assert set(scenario.personas) == {"lurker", "chatterbox", "night_owl", "content_curator"}
    shares = scenario.persona_shares()
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    for persona in scenario.personas.values():
        assert set(persona.actions) == {"working", "relaxing"}
        for weights in persona.actions.values():
            assert set(weights) <= set(ACTIONS)
    assert scenario.personas["night_owl"].hour_shift_h == 6
    assert scenario.routine.intensity["sleeping"] == 0.0
    assert scenario.target.url is None
    assert scenario.clock.duration == "1d"


def test_default_scenario_round_trips_through_validation() -> None:
    scenario = default_scenario()
    again = validate_scenario(scenario.model_dump(mode="json"))
    assert again == scenario


def test_shipped_default_file_loads_like_default(tmp_path: Path) -> None:
    from importlib import resources

    text = resources.files("sim_engine.model").joinpath("default_scenario.yaml").read_text("utf-8")
    assert load_scenario(write(tmp_path, text)) == default_scenario()


# -- merging -----------------------------------------------------------------------------


def test_partial_file_is_merged_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: tiny\nseed: 42\npopulation:\n  initial: 5\nclock:\n  speed: max\n",
    )
    scenario = load_scenario(path)
    default = default_scenario()
    assert scenario.name == "tiny"
    assert scenario.seed == 42
    assert scenario.population.initial == 5
    assert scenario.clock.speed == "max"
    # the rest of the mappings come from the default
    assert scenario.population.timezones == default.population.timezones
    assert scenario.population.signups_per_day == default.population.signups_per_day
    assert scenario.clock.duration == default.clock.duration
    assert scenario.routine == default.routine
    assert scenario.personas == default.personas


def test_personas_section_replaces_default_personas(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
personas:
  reader:
    share: 1
    actions:
      working: {browse_feed: 1}
      relaxing: {browse_feed: 1, read_post: 2}
""",
    )
    scenario = load_scenario(path)
    assert list(scenario.personas) == ["reader"]


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, "")) == default_scenario()


def test_clock_start_is_parsed(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "clock:\n  start: 2024-05-15T08:00:00+02:00\n"))
    assert isinstance(scenario.clock.start, datetime)
    assert scenario.clock.start.utcoffset() is not None


# -- errors name the field path, in one line ---------------------------------------------


def test_unknown_key_is_rejected_with_its_path(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "population:\n  inital: 5\n"))
    assert "population.inital" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "populaton: {}\n"))
    assert "populaton" in message


def test_wrong_type_names_the_path(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "population:\n  initial: many\n"))
    assert "population.initial" in message
    assert "integer" in message


def test_negative_number_names_the_path(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "target:\n  concurrency: -1\n"))
    assert "target.concurrency" in message


def test_unknown_action_names_the_persona_and_state(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
personas:
  lurker:
    share: 1
    actions:
      working: {browse_feed: 1, dance: 2}
      relaxing: {browse_feed: 1}
""",
    )
    message = error_of(path)
    assert "personas.lurker.actions.working" in message
    assert "dance" in message


def test_state_without_positive_weight(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
personas:
  idle:
    share: 1
    actions:
      working: {browse_feed: 1}
      relaxing: {browse_feed: 0}
""",
    )
    assert "personas.idle.actions.relaxing" in error_of(path)


def test_unknown_routine_state_in_actions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
personas:
  p:
    share: 1
    actions:
      dreaming: {browse_feed: 1}
""",
    )
    assert "personas.p.actions" in error_of(path)


_WEEKEND_OK = '  weekend:\n    - {start: "00:00", end: "24:00", state: relaxing}\n'


@pytest.mark.parametrize(
    ("blocks", "label"),
    [
        (  # a gap 06:00-07:00
            '    - {start: "00:00", end: "06:00", state: sleeping}\n'
            '    - {start: "07:00", end: "24:00", state: working}\n',
            "gap",
        ),
        (  # an overlap 06:00-08:00
            '    - {start: "00:00", end: "08:00", state: sleeping}\n'
            '    - {start: "06:00", end: "24:00", state: working}\n',
            "overlap",
        ),
        (  # stops before midnight
            '    - {start: "00:00", end: "06:00", state: sleeping}\n'
            '    - {start: "06:00", end: "23:00", state: working}\n',
            "short",
        ),
    ],
)
def test_routine_blocks_must_cover_the_day(tmp_path: Path, blocks: str, label: str) -> None:
    path = write(tmp_path, "routine:\n  weekday:\n" + blocks + _WEEKEND_OK)
    message = error_of(path)
    assert "routine" in message, label
    assert "weekday" in message, label


def test_bad_block_time_names_the_block(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'routine:\n  weekday:\n    - {start: "00:00", end: "25:00", state: working}\n'
        + _WEEKEND_OK,
    )
    message = error_of(path)
    assert "routine.weekday.0.end" in message


def test_sleeping_intensity_must_be_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "routine:\n  intensity: {sleeping: 0.5, working: 1, relaxing: 1}\n")
    assert "sleeping" in error_of(path)


def test_unknown_time_zone_is_rejected(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "population:\n  timezones: {Mars/Olympus_Mons: 1}\n"))
    assert "population.timezones" in message
    assert "Mars/Olympus_Mons" in message


def test_initial_larger_than_max(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "population:\n  initial: 20\n  max: 10\n"))
    assert "population" in message
    assert "max" in message


def test_unknown_persona_in_population_override(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "population:\n  personas: {ghost: 1}\n"))
    assert "ghost" in message


def test_bad_clock_values(tmp_path: Path) -> None:
    assert "clock.duration" in error_of(write(tmp_path, "clock:\n  duration: always\n"))
    assert "clock.speed" in error_of(write(tmp_path, "clock:\n  speed: 0\n", "s2.yaml"))


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\npopulation:\n  initial: [1, 2\n")
    message = error_of(path)
    assert "line " in message
    assert "column " in message


def test_yaml_syntax_error_position_is_one_based(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ok\nseed: 1\nbad: : :\n  - x\n")
    message = error_of(path)
    assert "line 3, column" in message


def test_scenario_must_be_a_mapping(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "- just\n- a list\n"))
    assert "mapping" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    message = error_of(path)
    assert "cannot read" in message


def test_only_first_error_is_reported_with_a_count(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "population:\n  initial: many\n  max: lots\n"))
    assert "more)" in message


# -- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("90", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1.5h", 5400),
        ("3d", 3 * 86400),
        ("1w", 7 * 86400),
        (" 2 h ", 7200),
        ("0", 0),
        (120, 120),
        (1.5, 1.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2y", "-1h", "two hours", "1h30m", -5])
def test_parse_duration_rejects(text: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- overrides ---------------------------------------------------------------------------


def test_with_overrides_applies_dotted_paths() -> None:
    base = default_scenario()
    changed = base.with_overrides(
        **{"population.initial": 200, "seed": 3, "population.timezones": {"UTC": 1.0}}
    )
    assert changed.population.initial == 200
    assert changed.seed == 3
    assert changed.population.timezones == {"UTC": 1.0}
    assert changed.personas == base.personas
    # the original is untouched (frozen models)
    assert base.population.initial == 50
    assert base.seed == 7


def test_with_overrides_revalidates() -> None:
    base = default_scenario()
    with pytest.raises(ScenarioError) as info:
        base.with_overrides(**{"population.initial": base.population.max + 1})
    assert "<overrides>" in str(info.value)
    with pytest.raises(ScenarioError, match=r"population\.initial"):
        base.with_overrides(**{"population.initial": -1})


def test_scenarios_are_frozen() -> None:
    from pydantic import ValidationError

    scenario = default_scenario()
    with pytest.raises(ValidationError):
        scenario.seed = 1  # type: ignore[misc]


# -- plugins: validation against an explicit registry ------------------------------------------


class _Catalog:
    """A test double of the registry: the model needs only these three methods."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def action_names(self) -> frozenset[str]:
        return frozenset({"wave"})

    def generator(self, name: str) -> Callable[..., Any] | None:
        return (lambda rng, *args: "hi") if name == "greeting" else None

    def spec_data(self, kind: str, name: str) -> dict[str, Any] | None:
        self.asked.append((kind, name))
        if kind == "persona" and name == "waver":
            weights = {"wave": 2.0, "browse_feed": 1.0}
            return {"share": 0.0, "actions": {"working": weights, "relaxing": weights}}
        if kind == "workflow" and name == "wave_twice":
            return {"steps": [{"action": "wave"}, {"action": "wave"}]}
        return None


def test_a_registry_is_passed_in_explicitly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "plugins: [not_imported_module]\n"
        "population: {personas: {waver: 1, lurker: 0, chatterbox: 0, night_owl: 0,"
        " content_curator: 0}}\n",
    )
    with pytest.raises(ScenarioError, match=r"unknown persona 'waver'.*not loaded"):
        load_scenario(path)  # no registry: the plugin persona is unknown
    catalog = _Catalog()
    scenario = load_scenario(path, registry=catalog)
    assert scenario.registry is catalog
    assert scenario.personas["waver"].actions["relaxing"]["wave"] == 2.0
    assert "wave" in scenario.action_names()
    assert scenario.plugins == ("not_imported_module",)
    assert ("persona", "waver") in catalog.asked
    assert scenario.with_overrides(seed=3).registry is catalog
    data = read_scenario_data(path)  # the same, step by step
    assert data["plugins"] == ["not_imported_module"]
    assert Scenario.model_validate(data, context={"registry": catalog}).registry is catalog
    with pytest.raises(TypeError, match="not a plugin registry"):
        Scenario.model_validate(data, context={"registry": object()})


def test_api_section_sees_the_registry_actions_generators_and_workflows() -> None:
    data = {
        "routine": default_scenario().routine.model_dump(mode="json"),
        "api": {
            "actions": {"post": {"method": "POST", "path": "/p", "body": {"t": "{{greeting}}"}}},
            "workflows": {"hello": {"steps": [{"action": "wave"}, {"action": "post"}]}},
        },
        "personas": {"p": {"share": 1, "actions": {"relaxing": {"hello": 1, "wave_twice": 1}}}},
        "population": {"initial": 1},
    }
    scenario = validate_scenario(data, registry=_Catalog())
    assert scenario.api is not None
    assert set(scenario.api.workflows) == {"hello", "wave_twice"}  # the plugin workflow joined
    with pytest.raises(ScenarioError, match="unknown generator"):
        validate_scenario(data)  # without the registry, {{greeting}} is unknown
