"""The engine's per-request shortcuts keep behaviour (bench/load_overhead.py measures speed).

* a simulated time's local ISO text and UTC offset come from caches (15-minute windows
  of offsets, the last second's text) and equal what ``datetime`` computes, across
  time zones, their transitions (half-hour and 45-minute zones, a 30-minute DST
  shift, a change off any 15-minute boundary) and the rounding of microseconds.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, tzinfo
from types import SimpleNamespace
from typing import cast
from zoneinfo import ZoneInfo, available_timezones

import pytest

from helpers import busy_scenario
from sim_engine import ActionRequest, Outcome, Simulation
from sim_engine.engine import events
from sim_engine.engine.clock import FastForwardClock
from sim_engine.engine.events import DAY_S, local_iso, offset_of, offset_s
from sim_engine.model.population import SimUser
from sim_engine.targets import MockTarget


def _User(tz: tzinfo) -> SimUser:
    return cast(SimUser, SimpleNamespace(tz=tz))


def _exact(tz: ZoneInfo, sim_t: float) -> tuple[str, float]:
    local = datetime.fromtimestamp(sim_t, tz)
    return local.isoformat(timespec="milliseconds"), offset_of(local)


def _transitions(tz: ZoneInfo, start: float, end: float) -> list[int]:
    """The whole seconds at which ``tz``'s offset changes in [start, end) (hourly scan,
    then bisection)."""
    found, t = [], start
    while t < end:
        if offset_of(datetime.fromtimestamp(t, tz)) != offset_of(
            datetime.fromtimestamp(t + 3600, tz)
        ):
            lo, hi = int(t), int(t) + 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                same = offset_of(datetime.fromtimestamp(mid, tz)) == offset_of(
                    datetime.fromtimestamp(lo, tz)
                )
                lo, hi = (mid, hi) if same else (lo, mid)
            found.append(hi)
        t += 3600
    return found


def test_local_iso_equals_datetime_around_every_transition_of_odd_zones() -> None:
    zones = ["Europe/Berlin", "Australia/Adelaide", "America/St_Johns", "Asia/Kathmandu",
             "Pacific/Chatham", "Australia/Lord_Howe", "America/New_York", "UTC"]  # fmt: skip
    checked = 0
    for name in zones:
        tz, user = ZoneInfo(name), _User(ZoneInfo(name))
        for edge in _transitions(tz, 1.7e9, 1.7e9 + 400 * 86400) or [1_750_000_000]:
            for step in range(-12, 13):
                sim_t = edge + step * 0.25 + (0.0004 if step % 2 else 0.0)
                assert (local_iso(user, sim_t), offset_s(user, sim_t)) == _exact(tz, sim_t), (
                    name,
                    sim_t,
                )
                checked += 1
    assert checked > 8 * 25  # the DST zones have transitions in the span


def test_local_iso_equals_datetime_at_random_times_and_rounding_edges() -> None:
    rng = random.Random(7)
    zones = sorted(available_timezones())
    for i in range(20_000):
        tz = ZoneInfo(rng.choice(zones))
        sim_t = rng.uniform(6.3e8, 2.2e9)
        if i % 2:  # a window edge, and fractions that round across a millisecond or second
            sim_t = round(sim_t / 900) * 900 + rng.choice([0.0, 0.9999996, 0.0004996, -4e-7])
        assert (local_iso(_User(tz), sim_t), offset_s(_User(tz), sim_t)) == _exact(tz, sim_t)


_EPOCH = datetime(1970, 1, 1)


_MONDAY = datetime(2026, 3, 2, tzinfo=ZoneInfo("UTC")).timestamp()


class _Jump(tzinfo):
    """UTC until ``EDGE`` (not on a 15-minute boundary), then UTC+1."""

    EDGE = 1_750_000_123

    def utcoffset(self, dt: datetime | None) -> timedelta:
        assert dt is not None
        local_s = (dt.replace(tzinfo=None) - _EPOCH).total_seconds()
        return timedelta(hours=1) if local_s - 3600 >= self.EDGE else timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "JUMP"

    def fromutc(self, dt: datetime) -> datetime:
        utc_s = (dt.replace(tzinfo=None) - _EPOCH).total_seconds()
        return dt + (timedelta(hours=1) if utc_s >= self.EDGE else timedelta(0))


def test_the_offset_cache_skips_windows_holding_a_transition_and_is_bounded() -> None:
    tz = _Jump()
    user = _User(tz)
    events._OFFSETS.clear()
    for step in range(-8, 9):  # the window holding the change is computed every time
        sim_t = _Jump.EDGE + step * 0.5
        want = datetime.fromtimestamp(sim_t, tz)
        assert local_iso(user, sim_t) == want.isoformat(timespec="milliseconds")
        assert offset_s(user, sim_t) == (3600.0 if sim_t >= _Jump.EDGE else 0.0)
    assert not events._OFFSETS
    assert offset_s(user, _Jump.EDGE + 900 * 3) == 3600.0
    assert len(events._OFFSETS) == 1
    for i in range(events._MAX_CACHED + 10):
        offset_s(_User(tz), 1.7e9 + i * 900.0)
    assert len(events._OFFSETS) <= events._MAX_CACHED


async def test_a_programming_error_in_an_action_surfaces_from_run() -> None:
    """The in-flight tables are kept without done callbacks: an action raising still leaves
    them empty, stops the run and surfaces its error from ``run()``."""
    calls: list[str] = []

    def broken(request: ActionRequest) -> Outcome:
        calls.append(request.action)
        if len(calls) == 5:
            raise RuntimeError("boom in the target")
        return Outcome(201, True, 0.1, remote_id=len(calls), token=f"t{len(calls)}")

    scenario = busy_scenario(**{"population.initial": 10, "seed": 3})
    sim = Simulation(scenario, MockTarget(broken), FastForwardClock(_MONDAY), sinks=[],
                     duration_s=DAY_S, secret="x")  # fmt: skip
    with pytest.raises(RuntimeError, match="boom in the target"):
        await sim.run()
    executor = sim._executor
    assert not executor.inflight and not executor.inflight_times and not executor._acting
    assert 5 <= len(calls) < 40  # stopped soon after, not a day of actions


def test_the_positional_record_and_outcome_builders_match_the_field_order() -> None:
    """Executor.record, the declarative target's success outcome and api_request build these
    by position (keywords cost more): a reordered field must fail here."""
    from dataclasses import fields

    from sim_engine.model.records import ActionRecord

    assert [f.name for f in fields(ActionRecord) if f.init][:16] == [
        "sim_time", "sim_ts", "user_id", "persona", "state", "action", "status", "ok",
        "latency_ms", "post_id", "session_id", "error", "endpoint", "skipped", "retries",
        "intended",
    ]  # fmt: skip
    assert [f.name for f in fields(ActionRequest)] == [
        "action", "user_id", "sim_time", "sim_time_iso", "token", "post_id", "offset", "limit",
        "payload", "remote_user_id",
    ]  # fmt: skip
    assert [f.name for f in fields(Outcome)][:12] == [
        "status", "ok", "latency_ms", "error", "post_id", "feed_ids", "view_count", "token",
        "remote_id", "endpoint", "skipped", "retries",
    ]  # fmt: skip
