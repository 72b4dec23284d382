"""Fuzzing of scenario files (hypothesis): every malformed one is refused cleanly.

Malformed scenarios are made by mutating the default scenario (unknown keys at
every level, wrong types at every path, out-of-range numbers, bad times and
durations, dropped keys) and by throwing random YAML text and bytes at the
loader. For each, :func:`~sim_engine.model.scenario.load_scenario` either accepts the
file or raises :class:`~sim_engine.model.scenario.ScenarioError` whose message is one
line naming the file and, for a field, a path that exists in the file (or the
unknown key) -- never any other exception. A sample then goes through the real
command line (``validate`` and ``run``): exit code 2, one line on stderr, no
traceback.
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import sim_engine
from sim_engine.model.scenario import Scenario, ScenarioError, load_scenario

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run: a failure is reproducible
)

BASE: dict[str, Any] = yaml.safe_load(
    resources.files("sim_engine.model").joinpath("default_scenario.yaml").read_text("utf-8")
)
Path_ = tuple[Any, ...]
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


NODES = [(p, v) for p, v in _walk(BASE) if p]
PATHS = [p for p, _ in NODES]
DICT_PATHS = [()] + [p for p, v in NODES if isinstance(v, dict)]
NUMERIC = [p for p, v in NODES if isinstance(v, (int, float)) and not isinstance(v, bool)]
BLOCK_TIMES = [p for p in PATHS if len(p) == 4 and p[0] == "routine" and p[3] in ("start", "end")]
# Numbers the scenario leaves unbounded on purpose (any seed is a seed).
UNBOUNDED = {("seed",)}
# Known gap, reported: lifecycle.segments shares are not checked for sign (see
# test_negative_segment_share_is_refused).
UNCHECKED_SIGN = {p for p in NUMERIC if p[:2] == ("lifecycle", "segments")}

KEY = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True)


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {}) if isinstance(data, dict) else data[key]
    data[path[-1]] = value


def _delete(data: Any, path: Path_) -> None:
    del _get(data, path[:-1])[path[-1]]


def _resolved(data: Any, parts: list[str]) -> Path_:
    """The longest prefix of a reported path that exists in ``data`` (as real keys)."""
    found: list[Any] = []
    node = data
    for part in parts:
        if isinstance(node, dict):
            match = [k for k in node if str(k) == part]
            if not match:
                break
            found.append(match[0])
            node = node[match[0]]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            found.append(int(part))
            node = node[int(part)]
        else:
            break
    return tuple(found)


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "scenario.yaml"


def _write(path: Path, data: Any) -> None:
    path.write_text(yaml.dump(data, Dumper=_DUMPER, allow_unicode=True), encoding="utf-8")


def _load(path: Path) -> tuple[Scenario | None, str | None]:
    """Load; return the scenario or the error message. Any other exception fails the test."""
    try:
        return load_scenario(path), None
    except ScenarioError as exc:
        message = str(exc)
    assert len(message.splitlines()) == 1 and "\n" not in message, repr(message)
    assert message.startswith(f"{path}: "), message
    assert "Traceback" not in message
    return None, message


def _field(message: str, path: Path) -> list[str]:
    """The field path a message names, split on dots ([] for a file-level message)."""
    rest = message[len(f"{path}: ") :]
    where = rest.split(": ", 1)[0]
    if where == "(top level)" or re.fullmatch(r"line \d+, column \d+|YAML", where):
        return []
    return where.split(".")


def _assert_names_the_mutation(data: Any, message: str, path: Path, mutated: Path_) -> None:
    """The message points at the mutated node or one of its ancestors (a whole-section check)."""
    parts = _field(message, path)
    if not parts:
        assert "(top level)" in message, message
        return
    found = _resolved(data, parts)
    assert found, f"{message!r} names no field of the file"
    assert found == mutated[: len(found)], f"{message!r} does not point at {mutated}"


def _assert_refused_at(scenario_file: Path, path: Path_, value: Any) -> None:
    """Set ``path`` to ``value`` in a copy of BASE and load it: it must be refused with a
    message pointing at ``path`` (or one of its ancestors)."""
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    _write(scenario_file, data)
    scenario, message = _load(scenario_file)
    assert scenario is None, f"{path} = {value!r} accepted"
    assert message is not None
    _assert_names_the_mutation(data, message, scenario_file, path)


# -- mutations of the default scenario ----------------------------------------------------------


@FUZZ
@given(where=st.sampled_from(DICT_PATHS), key=KEY, value=st.sampled_from(["surprise!", 3, None]))
def test_unknown_keys_are_refused_and_named(
    scenario_file: Path, where: Path_, key: str, value: Any
) -> None:
    data = copy.deepcopy(BASE)
    node = _get(data, where)
    if key in node:
        return
    if value is None and where == ("population",) and key == "personas":
        return
    node[key] = value
    _write(scenario_file, data)
    scenario, message = _load(scenario_file)
    assert scenario is None, f"unknown key {(*where, key)} accepted"
    assert message is not None and key in message, message


def _wrong_values(current: Any) -> list[Any]:
    if isinstance(current, dict):
        return ["just text", [1, 2], 7]
    if isinstance(current, list):
        return [{"zq": 1}, 7.5, True]
    if isinstance(current, bool):
        return [[1], {"zq": 1}, "maybe"]
    if isinstance(current, (int, float)):
        return [[1], {"zq": 1}, "many", "12 apples"]
    return [[1], {"zq": 1}]  # strings and nulls


@FUZZ
@given(path=st.sampled_from(PATHS), pick=st.integers(0, 3))
def test_wrong_types_are_refused_with_their_path(
    scenario_file: Path, path: Path_, pick: int
) -> None:
    choices = _wrong_values(_get(BASE, path))
    _assert_refused_at(scenario_file, path, choices[pick % len(choices)])


@FUZZ
@given(
    path=st.sampled_from([p for p in NUMERIC if p not in UNBOUNDED | UNCHECKED_SIGN]),
    value=st.one_of(
        st.floats(max_value=-1e-3, allow_nan=False, allow_infinity=False),
        st.integers(max_value=-1),
        st.just(-math.inf),
    ),
)
def test_negative_numbers_are_refused(scenario_file: Path, path: Path_, value: float) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    _write(scenario_file, data)
    scenario, message = _load(scenario_file)
    if scenario is not None:
        # the few signed fields (hour_shift_h >= -12) take small negative numbers
        assert path[-1] == "hour_shift_h" and value >= -12, f"{path} = {value!r} accepted"
        return
    assert message is not None
    _assert_names_the_mutation(data, message, scenario_file, path)


OUT_OF_RANGE: list[tuple[Path_, Any]] = [
    (("population", "initial"), 20_000),  # > max
    (("population", "max"), 0),
    (("target", "concurrency"), 0),
    (("target", "concurrency"), 10_001),
    (("target", "page_size"), 101),
    (("target", "timeout_s"), 0),
    (("clock", "speed"), 0),
    (("routine", "intensity", "sleeping"), 0.5),
    (("limits", "max_retries"), 21),
    (("limits", "burst"), 0),
    (("limits", "circuit_breaker", "error_rate"), 1.5),
    (("limits", "backoff", "multiplier"), 0.5),
    (("lifecycle", "churn_daily_probability"), 1.01),
    (("lifecycle", "casual_below"), 101),
    (("lifecycle", "history_days"), 0),
    (("state", "checkpoint_every_s"), 0),
    (("output", "top_n"), 0),
    (("output", "latest_actions"), 10_001),
    (("personas", "night_owl", "hour_shift_h"), 12.5),
    (("personas", "lurker", "session", "think_time", "sigma"), 4.5),
    (("personas", "lurker", "session", "max_actions"), 0),
    (("personas", "lurker", "actions", "working", "read_post"), -1),
    (("personas", "lurker", "hour_weights"), [1.0] * 23),
    (("personas", "lurker", "hour_weights"), [1.0] * 23 + [-1.0]),
]


@FUZZ
@given(case=st.sampled_from(OUT_OF_RANGE), scale=st.sampled_from([1, 10, 1000]))
def test_out_of_range_numbers_are_refused(
    scenario_file: Path, case: tuple[Path_, Any], scale: int
) -> None:
    path, value = case
    if isinstance(value, (int, float)) and value > 1 and scale > 1:
        value = value * scale  # further out
    _assert_refused_at(scenario_file, path, value)


_HHMM = re.compile(r"([01]\d|2[0-4]):[0-5]\d")
_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # lone surrogates cannot be encoded to UTF-8
TEXT = st.text(alphabet=st.characters(exclude_categories=_SURROGATES), max_size=12)


@FUZZ
@given(
    path=st.sampled_from(BLOCK_TIMES),
    value=st.one_of(
        st.sampled_from(["25:00", "24:30", "7:00", "12:60", "noon", "", "06:00:00", "-1:00"]),
        TEXT.filter(lambda t: not _HHMM.fullmatch(t)),
        st.integers(0, 2000),  # YAML 1.1 reads an unquoted 06:00 as 360
    ),
)
def test_bad_routine_times_are_refused(scenario_file: Path, path: Path_, value: Any) -> None:
    _assert_refused_at(scenario_file, path, value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")


@FUZZ
@given(
    field=st.sampled_from(["duration", "start"]),
    value=st.one_of(
        st.sampled_from(
            ["3 fortnights", "-1d", "1x", "d", "1.5.2h", "yesterday", "2024-13-01", "15/05/2024"]
        ),
        TEXT.filter(lambda t: not _DURATION.match(t) and not t.strip().lstrip("-").isdigit()),
    ),
)
def test_bad_clock_strings_are_refused(scenario_file: Path, field: str, value: str) -> None:
    data = copy.deepcopy(BASE)
    data["clock"][field] = value
    _write(scenario_file, data)
    scenario, message = _load(scenario_file)
    if scenario is not None:
        # a start given as any ISO 8601 form pydantic reads ("2024-05", "2024W01"...) is fine
        assert field == "start" and scenario.clock.start is not None, value
        return
    assert message is not None
    _assert_names_the_mutation(data, message, scenario_file, ("clock", field))


REQUIRED = {"share", "actions", "start", "end", "state", "name"}


@FUZZ
@given(path=st.sampled_from(PATHS))
def test_dropped_keys_are_filled_in_or_refused_by_name(scenario_file: Path, path: Path_) -> None:
    data = copy.deepcopy(BASE)
    _delete(data, path)
    _write(scenario_file, data)
    scenario, message = _load(scenario_file)
    # Sections left out come from the default scenario; personas and lists are replaced
    # as a whole, so a required field dropped there is missing.
    required_inside = path[0] in ("personas", "routine") and path[-1] in REQUIRED
    if scenario is not None:
        assert not required_inside, f"{path} dropped, still accepted"
        return
    assert message is not None
    if required_inside:
        assert str(path[-1]) in message, message
    parts = _field(message, scenario_file)
    if parts:
        # what is named exists, or is the missing key of a node that exists
        assert len(_resolved(data, parts)) >= len(parts) - 1, message


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(path=st.sampled_from([(), *PATHS]), value=JSONISH)
def test_any_value_anywhere_is_accepted_or_refused_cleanly(
    scenario_file: Path, path: Path_, value: Any
) -> None:
    data: Any = copy.deepcopy(BASE)
    if path:
        _set(data, path, value)
    else:
        data = value
    _write(scenario_file, data)
    _load(scenario_file)  # asserts a clean refusal when refused


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_is_accepted_or_refused_cleanly(scenario_file: Path, text: str) -> None:
    try:
        scenario_file.write_text(text, encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        scenario_file.write_bytes(text.encode("utf-8", "surrogatepass"))
    _load(scenario_file)


@FUZZ
@given(blob=st.binary(max_size=300))
def test_random_bytes_are_accepted_or_refused_cleanly(scenario_file: Path, blob: bytes) -> None:
    scenario_file.write_bytes(blob)
    _load(scenario_file)


@FUZZ
@given(
    lines=st.lists(
        st.sampled_from(
            [
                "population:",
                "  initial: 5",
                "  initial: [",
                "clock: {speed: max",
                "- a",
                "  - b",
                "\t",
                "key: value: other",
                "&a x: *b",
                "? [a]",
                ": c",
                "'unclosed",
                "!!python/object:os.system ls",
                "personas:",
                "  x: {share: 1",
                "%YAML 9.9",
                "---",
                "...",
                "{{}}",
                "a: !!binary zz",
            ]
        ),
        min_size=1,
        max_size=8,
    )
)
def test_yaml_syntax_errors_are_refused_with_a_line(scenario_file: Path, lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    scenario_file.write_text(text, encoding="utf-8")
    _, message = _load(scenario_file)
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        if exc.problem_mark is not None:  # a YAML syntax error: its line and column are named
            assert message is not None
            assert re.search(r": line \d+, column \d+: ", message), message
    except yaml.YAMLError:
        assert message is not None and "\n" not in message
    else:
        if message is not None:  # valid YAML, refused as a scenario: a one-line field error
            assert "\n" not in message and "line " not in message.split(": ")[1], message


def test_negative_segment_share_is_refused(scenario_file: Path) -> None:
    data = copy.deepcopy(BASE)
    data["lifecycle"]["segments"]["Premium"] = -5
    _write(scenario_file, data)
    scenario, message = _load(scenario_file)
    assert scenario is None
    assert message is not None and "segments" in message


# -- through the real command line -------------------------------------------------------------


def _cli_samples(directory: Path) -> list[Path]:
    """Fifteen malformed files, one or two of each kind, made with a fixed seed."""
    rng = random.Random(7)
    files: dict[str, Any] = {}

    def mutated(change: Any) -> dict[str, Any]:
        data = copy.deepcopy(BASE)
        change(data)
        return data

    files["unknown_top.yaml"] = mutated(lambda d: d.update(colour="blue"))
    files["unknown_deep.yaml"] = mutated(
        lambda d: _set(d, ("limits", "backoff", "jitterr"), "full")
    )
    for i in range(3):
        path = rng.choice([p for p in PATHS if not isinstance(_get(BASE, p), (dict, list))])
        files[f"wrong_type_{i}.yaml"] = mutated(lambda d, p=path: _set(d, p, {"zq": [1]}))
    for i, (path, value) in enumerate(rng.sample(OUT_OF_RANGE, 3)):
        files[f"range_{i}.yaml"] = mutated(lambda d, p=path, v=value: _set(d, p, v))
    time_path = rng.choice(BLOCK_TIMES)
    files["bad_time.yaml"] = mutated(lambda d: _set(d, time_path, "25:61"))
    files["bad_duration.yaml"] = {"clock": {"duration": "3 fortnights"}}
    files["dropped_share.yaml"] = mutated(lambda d: d["personas"]["lurker"].pop("share"))
    texts = {
        "syntax.yaml": "population:\n  initial: [1, 2\nclock: {\n",
        "tabs.yaml": "population:\n\tinitial: 5\n",
        "list.yaml": "- just\n- a list\n",
    }
    out = []
    for name, data in files.items():
        out.append(directory / name)
        _write(out[-1], data)
    for name, text in texts.items():
        out.append(directory / name)
        out[-1].write_text(text, encoding="utf-8")
    out.append(directory / "binary.yaml")
    out[-1].write_bytes(bytes(rng.randrange(256) for _ in range(200)) + b"\xff\xfe")
    assert len(out) >= 15
    return out


def test_malformed_files_through_the_command_line(tmp_path: Path) -> None:
    samples = _cli_samples(tmp_path)
    jobs: list[tuple[Path, tuple[str, ...]]] = []
    for i, sample in enumerate(samples):
        jobs.append((sample, ("validate", str(sample))))
        if i % 2 == 0 or sample.name in ("syntax.yaml", "binary.yaml"):
            out = tmp_path / f"out-{sample.stem}"
            run = ("run", "--scenario", str(sample), "--target", "inprocess", "--duration", "1h")
            jobs.append((sample, (*run, "--out", str(out))))
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda job: sim_engine(*job[1]), jobs))
    for (sample, args), proc in zip(jobs, results, strict=True):
        where = f"{args[0]} {sample.name}"
        assert proc.returncode == 2, (where, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, where
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (where, proc.stderr)
        assert lines[0].startswith(f"sim-engine: error: {sample}: "), (where, lines[0])
        if args[0] == "run":
            assert not (tmp_path / f"out-{sample.stem}").exists(), where  # nothing was started
