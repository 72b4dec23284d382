"""Fuzzing of the bounds (hypothesis): no number, date or URL gives a traceback or a hang.

Every number of a scenario and of the command line has bounds, enforced at
validation with the field named (``sim_engine.model.bounds``). Cases, by the
categories of issue 13's 174 malformed inputs:

* scenario numbers: huge (1e308, 10**30), infinite and NaN values at every numeric
  path are refused with a one-line error naming the path;
* speeds, durations and start dates, as ``run`` options (in-process ``CliRunner``,
  the run itself stubbed: what reaches it must be within bounds) and in a scenario;
* ``--target`` URLs (unclosed ``[``, bad ports, other schemes, control characters);
* texts sent to the target (email domain, founders' emails, synthetic header, user
  agent): one line, the right shape, or refused by name;
* ``load`` options (users, request counts, delays).

``test_bounds_cli.py`` runs the audit's tracebacks through the real command line
(with timeouts), ``demo-server --db`` and the numbers at their bounds.
"""

from __future__ import annotations

import copy
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim_engine.cli.main import cli
from sim_engine.model.bounds import MAX_DURATION_S, MAX_SPEED, MAX_START, MIN_START
from sim_engine.model.scenario import ScenarioError, validate_scenario

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples every run: a failure is reproducible
)

BASE: dict[str, Any] = yaml.safe_load(
    resources.files("sim_engine.model").joinpath("default_scenario.yaml").read_text("utf-8")
)
Path_ = tuple[Any, ...]


def _numeric_paths(node: Any, path: Path_ = ()) -> list[Path_]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _numeric_paths(value, (*path, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in _numeric_paths(value, (*path, i))]
    return [path] if isinstance(node, (int, float)) and not isinstance(node, bool) else []


# Numbers the default scenario leaves out, set here too.
UNSET = [
    ("clock", "speed"),
    ("population", "max_signups_per_day"),
    ("limits", "max_concurrent_sessions"),
    ("limits", "requests_per_second"),
    ("state", "checkpoint_every_s"),
    ("output", "users_sample_s"),
    ("target", "timeout_s"),
    ("limits", "read_timeout_s"),
    ("limits", "connect_timeout_s"),
    ("limits", "backoff", "max_s"),
    ("limits", "circuit_breaker", "open_s"),
    ("lifecycle", "history_days"),
    ("lifecycle", "replacement", "target_pool"),
    ("lifecycle", "streak", "break_penalty"),
    ("personas", "lurker", "sessions_per_day"),
    ("personas", "lurker", "session", "mean_actions"),
    ("personas", "lurker", "session", "think_time", "median_s"),
]
NUMERIC = sorted(set(_numeric_paths(BASE)) | set(UNSET), key=str)
UNBOUNDED = {("seed",)}  # any integer is a seed
HUGE: list[Any] = [1e308, 10**30, 1e12, math.inf, -math.inf, math.nan]


def _set(data: Any, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {}) if isinstance(data, dict) else data[key]
    data[path[-1]] = value


def _one_line_refusal(data: Any) -> str | None:
    """Validate; return None when accepted, else the one-line message (any other
    exception fails the test)."""
    try:
        validate_scenario(data, source="fuzz.yaml")
    except ScenarioError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("fuzz.yaml: "), message
        return message
    return None


# -- scenario numbers ---------------------------------------------------------------------------


@FUZZ
@given(
    path=st.sampled_from([p for p in NUMERIC if p not in UNBOUNDED]), value=st.sampled_from(HUGE)
)
def test_huge_and_non_finite_numbers_are_refused_by_name(path: Path_, value: Any) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    message = _one_line_refusal(data)
    assert message is not None, f"{path} = {value!r} accepted"
    named = message.split(": ")[1]
    dotted = ".".join(map(str, path))
    parent = ".".join(map(str, path[:-1]))
    # the path, a section a whole-section check names, or a pair's item by its name
    assert dotted.startswith(named) or named.startswith(parent + "."), (path, message)


@FUZZ
@given(
    path=st.sampled_from(NUMERIC),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**80), 2**80),
    ),
)
def test_any_number_anywhere_is_accepted_within_bounds_or_refused(path: Path_, value: Any) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    if _one_line_refusal(data) is None and path not in UNBOUNDED:
        assert math.isfinite(value) and abs(value) <= 10_000_000, (path, value)


CLOCK_VALUES: dict[str, list[Any]] = {
    "speed": [math.inf, 1e308, MAX_SPEED * 2, 0, -1, "inf", "nan", "1e308"],
    "duration": ["99999999999999w", "1e308", "3651d", "522w", "-1h", "nan", "inf"],
    "start": [
        "0001-01-01",
        "9999-12-31T12:00",
        "1969-12-31T23:59:59Z",
        "2200-01-01",
        "0001-01-01T00:00+05:00",
    ],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in CLOCK_VALUES.items() for v in values]
)
def test_clock_values_out_of_range_are_refused_in_a_scenario(field: str, value: Any) -> None:
    data = copy.deepcopy(BASE)
    data["clock"][field] = value
    message = _one_line_refusal(data)
    assert message is not None and f": clock.{field}: " in message, (value, message)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("personas", "lurker", "sessions_per_day"), 1e-300),  # RecursionError before
        (("personas", "lurker", "sessions_per_day"), 0.009),
        (("output", "users_sample_s"), 1e-300),  # sampled for ever before
        (("output", "users_sample_s"), 0.5),
    ],
)
def test_tiny_rates_and_intervals_are_refused_by_name(path: Path_, value: float) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    message = _one_line_refusal(data)
    assert message is not None and f": {'.'.join(map(str, path))}: " in message, message


# -- texts that reach the target ---------------------------------------------------------------

TEXT_FIELDS: list[Path_] = [
    ("population", "email_domain"),
    ("safety", "synthetic_header"),
    ("safety", "synthetic_value"),
    ("safety", "user_agent"),
    ("population", "founders", 0, "name"),
    ("population", "founders", 0, "email"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _with_text(path: Path_, value: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    if path[1] == "founders":
        data["population"]["founders"] = [{"name": "Ann", path[-1]: value}]
    else:
        _set(data, path, value)
    return data


@FUZZ
@given(path=st.sampled_from(TEXT_FIELDS), value=st.text(max_size=24))
def test_texts_sent_to_the_target_are_one_line_or_refused_by_name(path: Path_, value: str) -> None:
    message = _one_line_refusal(_with_text(path, value))
    if message is not None:
        assert f": {'.'.join(map(str, path))}: " in message, message
        return
    assert not _CONTROL.search(value), (path, value)
    if path[-1] in ("email_domain", "email"):
        assert "." in value and " " not in value, (path, value)
    if path[-1] == "synthetic_header":
        assert value and not re.search(r"[\s:]", value), value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("population", "email_domain"), ""),
        (("population", "email_domain"), "a b"),
        (("population", "email_domain"), "@@"),
        (("safety", "synthetic_header"), "X-A\nB"),
        (("safety", "synthetic_header"), "X:A"),
        (("safety", "synthetic_value"), "a\r\nEvil: 1"),
        (("safety", "user_agent"), "ua\nx"),
        (("population", "founders", 0, "email"), "not an email"),
        (("population", "founders", 0, "name"), "A\nB"),
    ],
)
def test_the_audits_accepted_texts_are_refused(path: Path_, value: str) -> None:
    message = _one_line_refusal(_with_text(path, value))
    assert message is not None and f": {'.'.join(map(str, path))}: " in message, message


# -- run options, in-process ------------------------------------------------------------------


class _Started(Exception):
    """Raised by the stubbed runner: the options were accepted."""


def _invoke_run(args: list[str], out: Path) -> tuple[Result, Any]:
    """``run ARGS`` with the runner stubbed; return the result and the options it got."""
    seen: list[Any] = []

    def fake_execute(options: Any) -> Any:
        seen.append(options)
        raise _Started

    with mock.patch("sim_engine.runs.runner.execute", fake_execute):
        result = CliRunner().invoke(cli, ["run", "-q", "--out", str(out), *args])
    return result, seen[0] if seen else None


def _assert_clean_refusal(result: Result) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [
        ln for ln in result.stderr.splitlines() if re.match(r"(Error|sim-engine: error): ", ln)
    ]
    assert len(errors) == 1, result.stderr


NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e308", "1e-320", "max", "MAX", "0x10", "1_000", ""]),
)
SPEED = st.one_of(NUMBER_TEXT, NUMBER_TEXT.map(lambda t: t + "x"))
DURATION = st.one_of(
    st.tuples(NUMBER_TEXT, st.sampled_from(["", "s", "m", "h", "d", "w", "y"])).map("".join),
    st.text(max_size=8),
)
START = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.text(max_size=12),
)
URL = st.one_of(
    st.tuples(
        st.sampled_from(["http://", "https://", "ftp://", "", "http:/", "http://["]),
        st.sampled_from(["127.0.0.1", "[::1", "[::1]", "localhost", "", "a b", "[zz]", "\x00"]),
        st.sampled_from(["", ":0", ":8000", ":99999", ":-1", ":abc", ":"]),
        st.sampled_from(["", "/", "/api", "?q=1", "#x"]),
    ).map("".join),
    st.text(max_size=16),
)


@FUZZ
@given(
    option=st.sampled_from(["--speed", "--duration", "--start", "--target", "--users", "--seed"]),
    speed=SPEED,
    duration=DURATION,
    start=START,
    url=URL,
    number=NUMBER_TEXT,
)
def test_run_options_give_a_bounded_run_or_a_one_line_error(
    tmp_path: Path, option: str, speed: str, duration: str, start: str, url: str, number: str
) -> None:
    value = {"--speed": speed, "--duration": duration, "--start": start, "--target": url}
    args = [option, value.get(option, number)]
    if option != "--target":
        args += ["--target", "inprocess"]
    result, options = _invoke_run(args, tmp_path / "out")
    if options is None:
        _assert_clean_refusal(result)
        return
    assert isinstance(result.exception, _Started), result.output
    assert options.speed is None or 0 < options.speed <= MAX_SPEED
    assert options.duration_s is None or 0 <= options.duration_s <= MAX_DURATION_S
    assert MIN_START.timestamp() <= options.start_s < MAX_START.timestamp()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--speed", "inf"],
        ["--speed", "1e308"],
        ["--duration", "99999999999999w"],
        ["--start", "0001-01-01"],
        ["--start", "9999-12-31T12:00"],
        ["--target", "http://[::1"],
        ["--target", "http://127.0.0.1:99999"],
        ["--target", "http://127.0.0.1:8000/\n"],
    ],
)
def test_the_audits_options_are_refused_in_process(args: list[str], tmp_path: Path) -> None:
    result, options = _invoke_run(args, tmp_path / "out")
    assert options is None
    _assert_clean_refusal(result)
    assert args[0] in result.stderr


@FUZZ
@given(command=st.sampled_from(["init", "cleanup"]), url=URL)
def test_urls_of_init_and_cleanup_give_one_line_errors(
    tmp_path: Path, command: str, url: str
) -> None:
    if command == "init":  # a URL is fetched (loopback only: refused at once) or read as a file
        args = ["init", "--from-openapi", url, "-o", str(tmp_path / "s.yaml"), "--force"]
    else:  # not a run directory: refused after the options
        args = ["cleanup", str(tmp_path), "--target", url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (1, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [
        ln for ln in result.stderr.splitlines() if re.match(r"(Error|sim-engine: error): ", ln)
    ]
    assert len(errors) == 1, result.stderr


# -- load options, in-process -------------------------------------------------------------------


def _invoke_load(args: list[str]) -> tuple[Result, Any]:
    """``load ARGS`` with the load test stubbed after it built its scenario (which may
    refuse the options); return the result and the options it got."""
    from sim_engine.runs import load_engine, loadtest

    seen: list[Any] = []

    def fake_run_load(options: Any) -> Any:
        seen.append(options)
        load_engine.load_scenario(options)  # the override it makes first
        raise _Started

    with mock.patch.object(loadtest, "run_load", fake_run_load):
        result = CliRunner().invoke(cli, ["load", "-q", "--target", "inprocess", *args])
    return result, seen[0] if seen else None


@FUZZ
@given(
    option=st.sampled_from(
        ["--users", "--min-request-count", "--max-request-count", "--delay-min", "--delay-max"]
    ),
    number=NUMBER_TEXT,
    duration=st.none() | DURATION,
)
def test_load_options_give_a_bounded_load_test_or_a_one_line_error(
    option: str, number: str, duration: str | None
) -> None:
    more = [] if duration is None else ["--duration", duration]
    result, options = _invoke_load([option, number, *more])
    if options is None:
        _assert_clean_refusal(result)
        return
    assert isinstance(result.exception, _Started), (result.output, result.exception)
    assert 1 <= options.users <= 1_000_000
    assert options.max_requests <= 1_000_000
    assert math.isfinite(options.delay_max_ms) and options.delay_max_ms <= 86_400_000


def test_load_users_at_the_bound_with_a_founder_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "founder.yaml"
    path.write_text(yaml.safe_dump({"population": {"founders": [{"name": "Ada"}]}}), "utf-8")
    result, _ = _invoke_load(["--users", "1000000", "--scenario", str(path)])
    _assert_clean_refusal(result)
    assert "population.max" in result.stderr
