"""Load shapes: stages, profiles, and the closed (ramping users) and open (arrival rate) policies.

The policies are driven here with the time they would be called at (an injected
clock: no sleeping), with virtual users answering instantly or late.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from helpers import assert_one_line_error, sim_engine
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.load_shapes import (
    ArrivalRatePolicy,
    Profile,
    StagedUsersPolicy,
    StagesError,
    parse_stages,
)
from sim_engine.runs.loadtest import LoadOptions, format_summary, run_load

START = 1_000_000.0
PERSONA = cast(CompiledPersona, None)


def vu(user_id: int) -> Any:
    return SimpleNamespace(user_id=user_id, session_id=0, token=None)


def test_parse_stages() -> None:
    assert parse_stages("30s:10,2m:100, 30s:0") == [(30.0, 10.0), (120.0, 100.0), (30.0, 0.0)]
    assert parse_stages("1h:2.5") == [(3600.0, 2.5)]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("30s", "is not DURATION:TARGET"),
        ("soon:10", "not a duration"),
        ("30s:many", "target is not a number"),
        ("30s:-1", "target must be a number >= 0"),
        ("0s:10", "last no time at all"),
    ],
)
def test_bad_stages(text: str, needle: str) -> None:
    with pytest.raises(StagesError) as caught:
        parse_stages(text)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_profile_values_integral_and_crossings() -> None:
    p = Profile.of(0.0, parse_stages("30s:10,2m:100,30s:0"))
    assert p.end == 180 and p.peak == 100
    assert [p.value(t) for t in (-1, 0, 15, 30, 90, 165, 180, 500)] == [
        0, 0, 5, 10, 55, 50, 0, 0
    ]  # fmt: skip
    assert p.integral(30) == pytest.approx(150)
    assert p.integral(180) == pytest.approx(150 + 55 * 120 + 50 * 30)
    assert p.time_of_integral(150) == pytest.approx(30)
    assert p.time_of_integral(p.integral(77.7)) == pytest.approx(77.7)
    assert p.time_of_integral(p.integral(180) + 1) == math.inf
    assert p.first_at_least(5, 0) == pytest.approx(15)
    assert p.first_at_least(5, 20) == 20
    assert p.first_at_least(50, 170) == math.inf  # ramping down: never again


def _drive_open(policy: ArrivalRatePolicy, users: int, latency_s: float) -> list[float]:
    """Every virtual user signs up at the start, then runs each iteration for ``latency_s``:
    returns the iteration start times."""
    starts: list[float] = []
    queue = []
    for i in range(users):
        user = vu(i + 1)
        t = policy.next_start(PERSONA, user, START, 0.0, random.Random(0))
        assert t == START  # the sign-up, at once
        user.session_id = 1
        policy.length(PERSONA, user, random.Random(0))
        assert policy.think_s(PERSONA, random.Random(0)) == math.inf  # the sign-up session ends
        user.token = "t"
        queue.append((START + 0.001, user))
    while queue:
        queue.sort(key=lambda item: item[0])
        now, user = queue.pop(0)
        t = policy.next_start(PERSONA, user, now, 0.0, random.Random(0))
        if math.isinf(t):
            continue
        assert t >= now
        user.session_id += 1
        assert policy.length(PERSONA, user, random.Random(0)) == 1
        assert policy.think_s(PERSONA, random.Random(0)) == 0.0
        starts.append(t)
        queue.append((t + latency_s, user))
    return starts


def test_constant_arrival_rate_is_kept_whatever_the_answers() -> None:
    policy = ArrivalRatePolicy(Profile.constant(10.0, 10.0), START, users=4)
    starts = _drive_open(policy, users=4, latency_s=0.05)
    # 10 per second for 10 s; the slot at 0 s went by during the sign-up
    assert len(starts) == 99 and policy.dropped == 1
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert all(g == pytest.approx(0.1) for g in gaps)
    assert policy.interval_us(START + 5) == 400_000  # 4 users / 10 per s


def test_late_answers_drop_slots_instead_of_shifting_the_schedule() -> None:
    policy = ArrivalRatePolicy(Profile.constant(10.0, 10.0), START, users=2)
    # each user's slots are 0.2 s apart; an iteration takes 0.45 s: two slots of three missed
    starts = _drive_open(policy, users=2, latency_s=0.45)
    assert 30 <= len(starts) <= 36
    assert len(starts) + policy.dropped == 100
    # still on the grid of arrivals: every start is a multiple of 0.1 s from the start
    assert all(abs(((t - START) * 10) - round((t - START) * 10)) < 1e-6 for t in starts)


def test_ramping_arrival_rate() -> None:
    # 0 -> 20 per second over 10 s: A(t) = t**2, arrival k at sqrt(k), 100 in all
    policy = ArrivalRatePolicy(Profile.of(0.0, [(10.0, 20.0)]), START, users=5)
    starts = sorted(_drive_open(policy, users=5, latency_s=0.01))
    assert len(starts) + policy.dropped == 100
    for t in starts[-5:]:
        k = round((t - START) ** 2)
        assert t - START == pytest.approx(math.sqrt(k))
    first_half = sum(1 for t in starts if t - START < 5)
    assert first_half == pytest.approx(25, abs=2)  # A(5) = 25


def test_staged_users_ramp_up_hold_and_down() -> None:
    profile = Profile.of(0.0, parse_stages("10s:10,10s:10,10s:0"))
    policy = StagedUsersPolicy(profile, START, 0.0, 0.0)
    users = [vu(i + 1) for i in range(10)]
    firsts = [policy.next_start(PERSONA, u, START, 0.0, random.Random(0)) for u in users]
    # user r starts when the profile reaches r + 1: 1 s, 2 s, ... 10 s
    assert [f - START for f in firsts] == pytest.approx([float(r + 1) for r in range(10)])
    rank4 = users[4]
    rank4.session_id = 1
    assert policy.next_start(PERSONA, rank4, START + 12, 0.0, random.Random(0)) == START + 12
    assert policy.next_start(PERSONA, rank4, START + 24.9, 0.0, random.Random(0)) == START + 24.9
    # ramping down: 10 - (t - 20) < 5 after 25 s, and it never rises again
    assert policy.next_start(PERSONA, rank4, START + 25.5, 0.0, random.Random(0)) == math.inf
    assert policy.users_at(START + 5.5) == 5 and policy.users_at(START + 15) == 10


def test_staged_users_wait_their_delay() -> None:
    profile = Profile.constant(2.0, 100.0)
    policy = StagedUsersPolicy(profile, START, 0.5, 1.5)
    user = vu(1)
    user.session_id = 3
    rng = random.Random(7)
    waits = [
        policy.next_start(PERSONA, user, START + 10, 0.0, rng) - START - 10 for _ in range(500)
    ]
    assert min(waits) >= 0.5 and max(waits) <= 1.5
    assert sum(waits) / len(waits) == pytest.approx(1.0, abs=0.05)


# -- whole load tests with a shape (in-process demo API) ----------------------------------------


def _options(tmp_path: Path, **changes: Any) -> LoadOptions:
    settings: dict[str, Any] = {
        "scenario": default_scenario(),
        "delay_min_ms": 0.0,
        "delay_max_ms": 0.0,
        "target_url": "inprocess",
        "out_dir": tmp_path / "out",
    }
    settings.update(changes)
    return LoadOptions(**settings)


def test_open_model_keeps_its_rate(tmp_path: Path) -> None:
    result = run_load(_options(tmp_path, users=8, arrival_rate=40.0, duration_s=3.0))
    # 40/s for 3 s: 120 arrivals; those missed while the users signed up are dropped
    assert result.requests + result.dropped_iterations == pytest.approx(120, abs=2)
    assert result.requests >= 60  # (the rest dropped while the users signed up: load-dependent)
    assert result.wall_s >= 2.8  # (no upper bound: the machine may be loaded)
    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert data["model"] == "open" and data["latency_corrected"] is True
    assert data["arrival_rate"] == 40.0 and data["users"] == 8
    assert any("coordinated omission" in line for line in format_summary(result))


def test_closed_stages_ramp_the_users(tmp_path: Path) -> None:
    options = _options(
        tmp_path, stages=((1.0, 3.0), (1.0, 3.0)), delay_min_ms=20.0, delay_max_ms=40.0
    )
    result = run_load(options)
    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert data["model"] == "closed-stages" and data["users"] == 3
    assert data["setup"]["sign_up"]["requests"] == 3
    # about 1.5 s of the three users at ~30 ms per iteration (ramp: 1, 2, 3 users)
    assert 40 <= result.requests <= 200
    assert result.wall_s >= 1.9  # (no upper bound: the machine may be loaded)
    assert not result.cut_short


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--arrival-rate", "10"], "--arrival-rate needs --duration"),
        (["--stages", "1s:2", "--duration", "5s"], "--stages set the test's length"),
        (["--stages", "1s:2", "--users", "3"], "drop --users"),
        (["--stages", "1s:2", "--max-request-count", "3"], "belong to the closed model"),
        (["--stages", "1s"], "--stages: '1s' is not DURATION:TARGET"),
        (["--arrival-rate", "-1", "--duration", "2s"], "--arrival-rate must be a number >= 0"),
    ],
)
def test_bad_shapes_exit_2(args: list[str], needle: str) -> None:
    line = assert_one_line_error(sim_engine("load", "-q", "--target", "inprocess", *args), 2)
    assert needle in line


def test_two_processes_share_the_users_and_merge_their_figures(tmp_path: Path) -> None:
    options = _options(
        tmp_path, users=5, min_requests=8, max_requests=8, delay_max_ms=2.0, processes=2
    )
    result = run_load(options)
    assert result.requests == 40  # 3 + 2 users, 8 requests each
    assert result.setup["sign_up"].requests == 5
    assert result.total.latency.get_total_count() == 40  # the merged histograms
    assert sum(t.requests for t in result.by_endpoint.values()) == 40
    assert result.cpu_s > 0 and not result.cut_short
    data = json.loads((tmp_path / "out" / "load.json").read_text("utf-8"))
    assert data["processes"] == 2 and data["requests"] == 40


def test_coordinated_omission_correction() -> None:
    from sim_engine.model.records import ActionRecord
    from sim_engine.runs.load_stats import LoadStats

    def rec(ms: float) -> ActionRecord:
        return ActionRecord(
            sim_time="2026-01-01T00:00:00+00:00", sim_ts=START + 1, user_id=1, persona="p",
            state="relaxing", action="browse_feed", status=200, ok=True, latency_ms=ms,
            session_id=1, endpoint="GET /posts",
        )  # fmt: skip

    # one user's slots are 100 ms apart: a 1 s answer held up 9 more arrivals, which
    # would have waited 900, 800, ... 100 ms: the histogram gets those too
    policy = ArrivalRatePolicy(Profile.constant(10.0, 60.0), START, users=1)
    stats = LoadStats(interval_us=policy.interval_us)
    for _ in range(90):
        stats.emit(rec(5.0))
    stats.emit(rec(1000.0))
    assert stats.total.requests == 91  # requests are requests...
    assert stats.total.latency.get_total_count() == 100  # ...the latency sees 100 arrivals
    assert stats.total.corrected == 9
    assert stats.total.percentile_ms(95) == pytest.approx(500, rel=0.01)
    uncorrected = LoadStats()
    for _ in range(90):
        uncorrected.emit(rec(5.0))
    uncorrected.emit(rec(1000.0))
    assert uncorrected.total.percentile_ms(95) == pytest.approx(5.0, rel=0.01)
