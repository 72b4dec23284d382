"""Tests of the engine (``sim_engine.engine.simulation.Simulation``) run with a fast-forward clock.

Most properties are checked on whole runs against the in-process demo API
(records cross-checked with the API's own SQLite database) or against a
:class:`MockTarget`. Statistical checks use fixed seeds and ±4 sigma
tolerances; the comment beside each names a wrong model that would fail it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from helpers import ListSink, busy_scenario
from sim_engine import ActionRecord, ActionRequest, Outcome, Simulation, UserRecord
from sim_engine.demo import create_app
from sim_engine.engine.clock import FastForwardClock
from sim_engine.model.population import IdentityFactory
from sim_engine.model.scenario import RoutineSpec, Scenario, default_scenario
from sim_engine.runs.targets import bind_target
from sim_engine.targets import MockTarget
from sim_engine.targets.inprocess import AsgiTransport

DAY_S = 86400.0
# Friday 2026-03-06 00:00 UTC: three days over a weekend that includes the US switch to
# daylight saving time (Sunday 2026-03-08, 02:00 local in New York and Los Angeles).
FRIDAY = datetime(2026, 3, 6, tzinfo=timezone.utc).timestamp()
MONDAY = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
PERSONAS = ("lurker", "chatterbox", "night_owl", "content_curator")
SOCIAL_USERS = 80


@dataclass
class Run:
    sim: Simulation
    actions: list[ActionRecord]
    users: list[UserRecord]
    app: Any = None


async def run_sim(scenario: Scenario, target: Any, start: float, days: float) -> Run:
    sink = ListSink()
    sim = Simulation(
        scenario,
        target,
        FastForwardClock(start),
        sinks=[sink],
        duration_s=days * DAY_S,
        secret="x",
    )
    await sim.run()
    await target.aclose()
    actions = [r for r in sink.records if isinstance(r, ActionRecord)]
    users = [r for r in sink.records if isinstance(r, UserRecord)]
    return Run(sim, actions, users)


def routine_state(routine: RoutineSpec, shift_h: float, local: datetime) -> str:
    """The routine state at wall-clock ``local`` for a persona shifted ``shift_h`` hours."""
    shifted = local.replace(tzinfo=None) - timedelta(hours=shift_h)
    blocks = routine.weekend if shifted.weekday() >= 5 else routine.weekday
    minute = shifted.hour * 60 + shifted.minute
    for block in blocks:
        (h1, m1), (h2, m2) = block.start.split(":"), block.end.split(":")
        if int(h1) * 60 + int(m1) <= minute < int(h2) * 60 + int(m2):
            return block.state
    raise AssertionError(f"routine does not cover {shifted}")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- one shared run against the in-process demo API --------------------------------------


def _social_scenario() -> Scenario:
    # The busy scenario (helpers.busy_overrides: write-heavy, nobody quits, so every user
    # stays in sim.users) with deletes made common (so that reads of deleted posts happen);
    # SOCIAL_USERS is enough for every count below (150 took twice the time for nothing).
    overrides: dict[str, Any] = {"population.initial": SOCIAL_USERS, "seed": 5}
    for persona in ("chatterbox", "content_curator"):
        for state in ("working", "relaxing"):
            overrides[f"personas.{persona}.actions.{state}.delete_post"] = 2.0
    return busy_scenario(**overrides)


@pytest.fixture(scope="module")
def social_run() -> Iterator[Run]:
    scenario = _social_scenario()
    app = create_app()
    run = asyncio.run(run_sim(scenario, bind_target(scenario, AsgiTransport(app)), FRIDAY, days=3))
    run.app = app
    yield run
    app.state.store.close()


def test_social_run_is_substantial(social_run: Run) -> None:
    kinds = Counter(r.action for r in social_run.actions)
    assert len(social_run.users) >= SOCIAL_USERS
    assert kinds["browse_feed"] > 1000 and kinds["read_post"] > 500
    assert kinds["create_post"] > 100 and kinds["update_post"] > 50 and kinds["delete_post"] > 50
    assert {r.persona for r in social_run.actions} == set(PERSONAS)


def test_no_action_while_sleeping(social_run: Run) -> None:
    scenario = social_run.sim.scenario
    users = social_run.sim.users
    offsets_ny = set()
    for r in social_run.actions:
        if r.action == "delete_account":  # lifecycle clean-up of a churned user, not a visit
            continue
        assert r.state in ("working", "relaxing"), r
        local = parse_iso(r.sim_time)
        assert local.utcoffset() is not None
        # The ISO time is the same instant as sim_ts (rendered to the millisecond) ...
        assert -1e-6 <= r.sim_ts - local.timestamp() < 0.001
        # ... in the user's own time zone at that instant (DST included).
        tz = users[r.user_id].tz
        assert local.utcoffset() == datetime.fromtimestamp(r.sim_ts, tz).utcoffset(), r
        # The routine, read at that local time, has the persona awake, in the recorded state.
        shift = scenario.personas[r.persona].hour_shift_h
        state = routine_state(scenario.routine, shift, local)
        assert state != "sleeping", f"{r.persona} acted at {r.sim_time} (asleep)"
        assert state == r.state, r
        if str(tz) == "America/New_York":
            offsets_ny.add(local.utcoffset())
    # The run did cross the DST switch.
    assert offsets_ny == {timedelta(hours=-5), timedelta(hours=-4)}


def _post_history(actions: list[ActionRecord]) -> tuple[dict[int, ActionRecord], dict[int, float]]:
    created: dict[int, ActionRecord] = {}
    deleted: dict[int, float] = {}
    for r in actions:
        if r.action == "create_post" and r.ok:
            assert r.status == 201 and r.post_id is not None
            assert r.post_id not in created
            created[r.post_id] = r
        elif r.action == "delete_post" and r.ok:
            assert r.post_id is not None and r.post_id not in deleted
            deleted[r.post_id] = r.sim_ts
    return created, deleted


def test_updates_and_deletes_touch_only_own_posts(social_run: Run) -> None:
    created, deleted = _post_history(social_run.actions)
    changes = [r for r in social_run.actions if r.action in ("update_post", "delete_post")]
    assert changes
    for r in changes:
        assert r.post_id in created, r
        assert created[r.post_id].user_id == r.user_id, f"user {r.user_id} changed another's post"
        assert r.ok and r.status == (200 if r.action == "update_post" else 204), r
        assert created[r.post_id].sim_ts <= r.sim_ts
        if r.action == "update_post":
            assert r.post_id not in deleted or deleted[r.post_id] > r.sim_ts

    # Cross-check with the demo API's own database.
    remote = {u.user_id: u.remote_id for u in social_run.users}
    conn = social_run.app.state.store.conn
    rows = {row["id"]: row for row in conn.execute("SELECT * FROM posts")}
    assert set(rows) == set(created) - set(deleted)  # deleted posts are gone, others remain
    for post_id, row in rows.items():
        assert row["author_id"] == remote[created[post_id].user_id]
        assert parse_iso(row["created_at"]) == parse_iso(created[post_id].sim_time)
    last_update: dict[int, ActionRecord] = {}
    for r in changes:
        assert r.post_id is not None
        newer = r.post_id not in last_update or r.sim_ts > last_update[r.post_id].sim_ts
        if r.action == "update_post" and r.post_id in rows and newer:
            last_update[r.post_id] = r
    assert last_update
    for post_id, r in last_update.items():  # X-Sim-Time of the last edit is stored
        assert parse_iso(rows[post_id]["updated_at"]) == parse_iso(r.sim_time)


def test_reads_only_posts_that_exist(social_run: Run) -> None:
    created, deleted = _post_history(social_run.actions)
    reads = [r for r in social_run.actions if r.action == "read_post"]
    assert reads
    not_found = 0
    for r in reads:
        assert r.post_id in created, f"read of a post nobody created: {r}"
        assert created[r.post_id].sim_ts <= r.sim_ts, r
        assert r.status in (200, 404), r
        if r.status == 404:
            not_found += 1
            assert r.post_id in deleted and deleted[r.post_id] <= r.sim_ts, r
        else:
            assert r.post_id not in deleted or deleted[r.post_id] >= r.sim_ts, r
    assert not_found < len(reads) * 0.05


def test_users_carry_their_identity_to_the_api(social_run: Run) -> None:
    scenario = social_run.sim.scenario
    pop = scenario.population
    conn = social_run.app.state.store.conn
    rows = {row["id"]: row for row in conn.execute("SELECT * FROM users")}
    assert len(rows) == len(social_run.users) == social_run.sim.statistics().signed_up
    for u in social_run.users:
        row = rows[u.remote_id]
        user = social_run.sim.users[u.user_id]
        assert (row["name"], row["email"], row["tag"]) == (u.name, u.email, u.tag)
        assert u.email.endswith("@" + pop.email_domain) and row["username"] == user.username
        assert u.tag in pop.tags
        assert row["avatar_url"] is None and u.avatar == user.initials  # avatar: initials
        assert u.timezone in pop.timezones and u.persona in PERSONAS
        assert parse_iso(row["created_at"]) == parse_iso(u.sim_time)
    # Every user who acted had signed up first: its first records are sign_up then log_in.
    first: dict[int, list[str]] = defaultdict(list)
    for r in social_run.actions:
        if len(first[r.user_id]) < 2:
            first[r.user_id].append(r.action)
    assert all(seq == ["sign_up", "log_in"] for seq in first.values())


# -- growth ------------------------------------------------------------------------------


class QuickApi:
    """A MockTarget handler that accepts everything and hands out fresh ids."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.requests: list[ActionRequest] = []

    def __call__(self, request: ActionRequest) -> Outcome:
        self.requests.append(request)
        if request.action == "sign_up":
            return Outcome(201, True, 0.1, remote_id=next(self._ids))
        if request.action == "log_in":
            return Outcome(200, True, 0.1, token=f"t{next(self._ids)}")
        if request.action == "create_post":
            return Outcome(201, True, 0.1, post_id=next(self._ids))
        return Outcome(200, True, 0.1, post_id=request.post_id, feed_ids=())


def _frequent_short_sessions(scenario: Scenario, sessions_per_day: float) -> Scenario:
    overrides: dict[str, Any] = {}
    for p in scenario.personas:
        overrides[f"personas.{p}.sessions_per_day"] = sessions_per_day
        overrides[f"personas.{p}.session.mean_actions"] = 1
    return scenario.with_overrides(**overrides)


async def test_signups_follow_the_configured_poisson_rate() -> None:
    rate, days = 20.0, 30
    scenario = _frequent_short_sessions(
        busy_scenario(
            **{
                "population.initial": 0,
                "population.signups_per_day": rate,
                "population.max_signups_per_day": None,  # the pure Poisson process
                "seed": 21,
                # Users come back every day (no skipped days, no churn): each created
                # user signs up soon after arriving and stays in ``sim.users``.
                "lifecycle.enabled": False,
            }
        ),
        sessions_per_day=4,
    )
    run = await run_sim(scenario, MockTarget(QuickApi()), MONDAY, days=days)
    created = sorted(u.created_ts for u in run.sim.users.values())
    n = len(created)
    assert n == run.sim.statistics().users
    expected = rate * days
    # Poisson count: 600 ± 4 sqrt(600) = 600 ± 98. Half the rate (300) or double (1200) fails.
    assert abs(n - expected) <= 4 * math.sqrt(expected), n
    assert all(MONDAY < t < MONDAY + days * DAY_S for t in created)
    # Arrivals are a Poisson process: daily counts have variance ≈ mean. The index of
    # dispersion is chi-square with 29 degrees of freedom: [8.6, 66.4] holds 99.98% of it.
    # Evenly spaced arrivals (exactly 20 a day) give ~0: fails.
    daily = Counter(int((t - MONDAY) // DAY_S) for t in created)
    counts = [daily[d] for d in range(days)]
    mean = n / days
    dispersion = sum((c - mean) ** 2 for c in counts) / mean
    assert 8.6 <= dispersion <= 66.4, (dispersion, counts)
    # Gaps are exponential: P(gap < mean gap) = 1 - 1/e = 0.632 (± 4 sigma = ± 0.079).
    # Uniform gaps with the same mean give 0.5, fixed gaps 0 or 1: fail.
    gaps = [b - a for a, b in itertools.pairwise([MONDAY, *created])]
    short = sum(1 for g in gaps if g < DAY_S / rate) / len(gaps)
    p = 1 - math.exp(-1)
    assert abs(short - p) <= 4 * math.sqrt(p * (1 - p) / len(gaps)), short
    # Everyone created signs up at a first session (4 a day: P(none in 3 days) = e^-12);
    # all but the very latest arrivals have joined by the end.
    joined = {u.user_id: u.sim_ts for u in run.users}
    for user in run.sim.users.values():
        if user.created_ts < MONDAY + (days - 3) * DAY_S:
            assert user.user_id in joined, user
        if user.user_id in joined:
            assert joined[user.user_id] >= user.created_ts
    assert len(joined) == run.sim.statistics().signed_up


async def test_daily_signup_cap_holds() -> None:
    # 40 arrivals a day offered, at most 15 a day admitted (days counted from the start).
    # Busy: nobody quits, so every admitted user is still in sim.users at the end.
    scenario = busy_scenario(
        **{
            "population.initial": 0,
            "population.signups_per_day": 40,
            "population.max_signups_per_day": 15,
            "seed": 4,
        }
    )
    run = await run_sim(scenario, MockTarget(QuickApi()), MONDAY + 3600.0, days=10)
    daily = Counter(int((u.created_ts - MONDAY - 3600.0) // DAY_S) for u in run.sim.users.values())
    assert max(daily.values()) == 15
    # Poisson(40) almost never falls below 15 (P = 2e-6): every day fills its cap.
    assert [daily[d] for d in range(10)] == [15] * 10


async def test_population_never_exceeds_max() -> None:
    # Busy: nobody quits, so the population stays full and no later arrival gets an id.
    scenario = busy_scenario(
        **{
            "population.initial": 50,
            "population.max": 60,
            "population.signups_per_day": 200,
            "population.max_signups_per_day": None,
        }
    )
    seen: list[int] = []

    class Watch:
        sim: Simulation | None = None

        def emit(self, record: Any) -> None:
            assert self.sim is not None
            seen.append(len(self.sim.users))
            assert len(self.sim.users) <= 60

        def close(self) -> None:
            pass

    watch = Watch()
    sim = Simulation(
        scenario,
        MockTarget(QuickApi()),
        FastForwardClock(MONDAY),
        sinks=[watch],
        duration_s=DAY_S,
        secret="x",
    )
    watch.sim = sim
    assert len(sim.add_users(100, MONDAY)) == 60  # add_users stops at the maximum too
    stats = await sim.run()
    assert seen and max(seen) == 60
    assert stats.users == 60 and stats.signed_up <= 60
    assert sim.add_users(5) == []
    # ~200 arrivals came and were turned away; ids were never handed out for them.
    assert max(sim.users) == 60


# -- identity ----------------------------------------------------------------------------


def _factory(scenario: Scenario, **changes: Any) -> IdentityFactory:
    pop = scenario.population
    shares = scenario.persona_shares()
    kwargs: dict[str, Any] = {
        "seed": 3,
        "persona_shares": [shares[p] for p in scenario.personas],
        "timezones": list(pop.timezones.items()),
        "email_domain": pop.email_domain,
        "tags": pop.tags,
        "avatar": pop.avatar,
    }
    kwargs.update(changes)
    return IdentityFactory(**kwargs)


def _within_shares(counts: Counter[Any], shares: dict[Any, float], n: int) -> list[str]:
    total = sum(shares.values())
    problems = []
    for key, share in shares.items():
        p = share / total
        if abs(counts[key] - n * p) > 4 * math.sqrt(n * p * (1 - p)):
            problems.append(f"{key}: {counts[key]} of {n}, expected {n * p:.0f}")
    return problems


def test_identities_are_realistic_and_follow_the_shares() -> None:
    scenario = default_scenario()
    pop = scenario.population
    factory = _factory(scenario)
    n = 5000
    users = [factory.create(MONDAY) for _ in range(n)]
    assert factory.created == n
    assert [u.user_id for u in users] == list(range(1, n + 1))
    names = list(scenario.personas)
    # Persona shares 0.55/0.10/0.15/0.20 within ±4 sigma (lurker: 2750 ± 141). Equal shares
    # (1250 each) fail.
    persona_counts = Counter(names[u.persona] for u in users)
    assert _within_shares(persona_counts, scenario.persona_shares(), n) == []
    assert _within_shares(persona_counts, dict.fromkeys(names, 1.0), n)  # the check bites
    tz_counts = Counter(str(u.tz) for u in users)
    assert _within_shares(tz_counts, dict(pop.timezones), n) == []
    tag_counts = Counter(u.tag for u in users)
    assert set(tag_counts) == set(pop.tags)
    assert _within_shares(tag_counts, dict.fromkeys(pop.tags, 1.0), n) == []
    emails = [u.email for u in users]
    assert len(set(emails)) == n
    for u in users:
        local, domain = u.email.split("@")
        assert domain == pop.email_domain
        assert local.endswith(f".{u.user_id}") and local == u.username
        assert len(u.name.split()) >= 2 and all(part[0].isupper() for part in u.name.split())
        assert u.avatar == ""  # initials mode: no URL; the initials come from the name
        assert u.initials == "".join(p[0] for p in u.name.split()[:2]).upper()
        assert 1 <= len(u.initials) <= 2
    assert len({u.name for u in users}) > n * 0.8  # realistic variety, not a handful of names


def test_identity_options_domain_avatar_url_and_no_tags() -> None:
    scenario = default_scenario()
    factory = _factory(scenario, email_domain="people.example", tags=(), avatar="url")
    for _ in range(200):
        u = factory.create(MONDAY)
        assert u.email.endswith("@people.example")
        assert u.avatar == f"https://avatars.people.example/{u.user_id}.png"
        assert u.tag is None


def test_identities_are_deterministic_per_seed() -> None:
    scenario = default_scenario()

    def people(seed: int) -> list[tuple[Any, ...]]:
        f = _factory(scenario, seed=seed)
        return [
            (u.name, u.email, u.tag, str(u.tz), u.persona, u.rng_state)
            for u in (f.create(MONDAY) for _ in range(50))
        ]

    assert people(3) == people(3)
    assert people(3) != people(4)


async def test_sign_up_sends_the_identity() -> None:
    scenario = busy_scenario(  # nobody quits: every signed-up user is in sim.users
        **{
            "population.initial": 30,
            "population.signups_per_day": 0,
            "population.email_domain": "crowd.test",
            "population.avatar": "url",
            "population.tags": ["red", "blue"],
        }
    )
    api = QuickApi()
    run = await run_sim(scenario, MockTarget(api), MONDAY, days=1)
    signups = [r for r in api.requests if r.action == "sign_up"]
    assert len(signups) == len(run.users) > 20
    for request in signups:
        user = run.sim.users[request.user_id]
        payload = request.payload or {}
        assert payload["email"] == user.email and payload["email"].endswith("@crowd.test")
        assert payload["name"] == user.name and payload["username"] == user.username
        assert payload["avatar_url"] == f"https://avatars.crowd.test/{user.user_id}.png"
        assert payload["tag"] in ("red", "blue")
        assert payload["password"] and payload["password"] != "x"
    for record in run.users:  # UserRecords never carry credentials
        assert "password" not in record.to_dict() and "token" not in record.to_dict()


# -- failing and slow targets ------------------------------------------------------------


async def test_run_completes_when_every_action_fails() -> None:
    # Busy: nobody quits, so a user leaves sim.users only by giving up its sign-up.
    scenario = busy_scenario(
        **{"population.initial": 20, "population.signups_per_day": 5, "seed": 2}
    )

    def broken(request: ActionRequest) -> Outcome:
        return Outcome(500, False, 0.2, error="HTTP 500: boom")

    run = await run_sim(scenario, MockTarget(broken), MONDAY, days=2)
    stats = run.sim.statistics()
    assert stats.actions == len(run.actions) > 20
    assert stats.failed == stats.actions and stats.signed_up == 0 and not run.users
    assert stats.in_flight == 0
    for r in run.actions:
        assert (r.action, r.status, r.ok, r.error) == ("sign_up", 500, False, "HTTP 500: boom")
    # A user who never manages to sign up gives up after three attempts and leaves.
    attempts = Counter(r.user_id for r in run.actions)
    assert max(attempts.values()) == 3
    for user_id, count in attempts.items():
        assert (user_id in run.sim.users) == (count < 3)


async def test_run_completes_when_every_real_action_fails() -> None:
    scenario = default_scenario().with_overrides(
        **{"population.initial": 20, "population.signups_per_day": 0, "seed": 2}
    )
    ids = itertools.count(1)

    def auth_only(request: ActionRequest) -> Outcome:
        if request.action == "sign_up":
            return Outcome(201, True, 0.2, remote_id=next(ids))
        if request.action == "log_in":
            return Outcome(200, True, 0.2, token="t")
        return Outcome(500, False, 0.2, error="HTTP 500: boom")

    run = await run_sim(scenario, MockTarget(auth_only), MONDAY, days=2)
    stats = run.sim.statistics()
    real = [r for r in run.actions if r.action not in ("sign_up", "log_in")]
    assert len(real) > 50 and stats.failed == len(real)
    assert all(r.status == 500 and not r.ok for r in real)
    # Users keep coming back for new sessions despite the failures.
    sessions = {(r.user_id, r.session_id) for r in real}
    assert len(sessions) > 2 * len({r.user_id for r in real})


async def test_run_completes_with_a_slow_async_target() -> None:
    scenario = default_scenario().with_overrides(
        **{"population.initial": 20, "population.signups_per_day": 5, "seed": 9}
    )
    api = QuickApi()
    rng = random.Random(1)

    async def slow(request: ActionRequest) -> Outcome:
        await asyncio.sleep(rng.random() * 0.002)  # answers complete out of order
        return api(request)

    run = await run_sim(scenario, MockTarget(slow), MONDAY, days=1)
    stats = run.sim.statistics()
    assert stats.actions == len(run.actions) > 100
    assert stats.failed == 0 and stats.in_flight == 0
    assert run.sim.statistics().sim_now == MONDAY + DAY_S
    # Each user acts one step at a time, in simulated order, never in the simulated past.
    last: dict[int, float] = {}
    for r in run.actions:
        assert r.sim_ts >= last.get(r.user_id, MONDAY), r
        last[r.user_id] = r.sim_ts
