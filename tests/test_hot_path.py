"""The per-request hot path's shortcuts keep behaviour (bench/throughput.py measures speed).

* a template with nothing to fill is rendered once and sent as rendered;
* answers are parsed by orjson, and what only the standard library reads (NaN,
  integers over 64 bits) still parses;
* a user's generator goes on between steps (no reseeding), deterministically, and a
  user restored from its saved state alone draws a valid stream;
* on a live clock, a step due sooner than a timer can wait runs at once instead of
  sleeping a whole millisecond.
"""

from __future__ import annotations

import random
from typing import Any

from helpers import DEMO_LOGIN, DEMO_SIGNUP
from sim_engine.model import population
from sim_engine.model.population import SimUser, save_rng, user_rng
from sim_engine.model.templates import is_literal
from sim_engine.targets.declarative import DeclarativeTarget
from test_declarative import Call, FakeTransport, join, make_api, req


def test_is_literal_sees_placeholders_and_generators_anywhere() -> None:
    assert is_literal("/posts") and is_literal({"limit": 20, "sort": "new"}) and is_literal(None)
    assert not is_literal("/posts/{post.id}")
    assert not is_literal({"q": "{{word}}"})
    assert not is_literal({"{user.username}": 1})  # keys too
    assert not is_literal([1, ["{user.id}"]])


async def test_a_literal_request_is_sent_as_rendered_every_time() -> None:
    api = make_api(
        auth={"signup": DEMO_SIGNUP, "login": DEMO_LOGIN, "scheme": "bearer"},
        actions={
            "feed": {"path": "/posts", "query": {"limit": 20, "tag": "a b"},
                     "headers": {"X-Mode": "list"}},
            "mine": {"path": "/users/{user.id}/posts", "query": {"limit": 5}},
        },
    )  # fmt: skip

    def handler(call: Call) -> Any:
        if call.path == "/users":
            return 201, {"id": 41}
        if call.path == "/auth/login":
            return 200, {"token": "tok-1"}
        return 200, {"items": []}

    transport = FakeTransport(handler)
    target = DeclarativeTarget(transport, api, seed=1)
    await join(target)
    for _ in range(3):
        assert (await target.send(req("feed"))).ok
        assert (await target.send(req("mine"))).ok
    sent = [(c.path, c.headers.get("X-Mode")) for c in transport.calls[2:]]
    assert sent == [("/posts?limit=20&tag=a+b", "list"), ("/users/41/posts?limit=5", None)] * 3
    assert all(c.headers["Authorization"] == "Bearer tok-1" for c in transport.calls[2:])


async def test_answers_orjson_refuses_still_parse() -> None:
    api = make_api(
        actions={"get": {"path": "/x", "extract": [{"path": "items[*]", "to": "memory.seen",
                                                    "fields": {"id": "id"}}]}},
        memory={"seen": 5},
    )  # fmt: skip
    bodies = iter(
        [
            b'{"items": [{"id": 1}]}',
            b'{"items": [{"id": 123456789012345678901234567890}], "score": NaN}',
            b"not json",
        ]
    )
    target = DeclarativeTarget(FakeTransport(lambda call: (200, next(bodies))), api, seed=1)
    first, big, bad = [await target.send(req("get")) for _ in range(3)]
    assert first.ok and big.ok
    assert not bad.ok and bad.error is not None and "not JSON" in bad.error
    seen = (target.memory(1) or {})["memory.seen"]
    assert [item["id"] for item in seen] == [1, 123456789012345678901234567890]


def _draws(user: SimUser, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        rng = user_rng(user)
        out.append(rng.random())
        save_rng(user, rng)
    return out


def _user(state: int) -> SimUser:
    user = SimUser.__new__(SimUser)
    user.rng_state = state
    return user


def test_user_generators_go_on_deterministically_and_restore_from_their_state() -> None:
    population._RNG_CACHE.clear()
    a = _draws(_user(7), 50)
    population._RNG_CACHE.clear()
    b = _draws(_user(7), 50)
    assert a == b  # a function of the seed and the order of steps
    assert len(set(a)) == 50
    # two users interleaved draw what each draws alone
    population._RNG_CACHE.clear()
    u, v = _user(7), _user(8)
    mixed = [_draws(u, 1)[0] if i % 2 == 0 else _draws(v, 1)[0] for i in range(20)]
    population._RNG_CACHE.clear()
    assert mixed[0::2] == _draws(_user(7), 10)
    # the generator goes on: the next draw is not a fresh Random(state)'s first draw
    population._RNG_CACHE.clear()
    w = _user(7)
    _draws(w, 1)
    assert user_rng(w).random() != random.Random(w.rng_state).random()
    # restored from the saved state alone (a checkpoint), a user still draws
    population._RNG_CACHE.clear()
    restored = _user(w.rng_state)
    assert 0.0 <= _draws(restored, 1)[0] < 1.0


def test_the_generator_cache_is_bounded() -> None:
    population._RNG_CACHE.clear()
    users = [_user(i) for i in range(population._RNG_CACHE_SIZE + 100)]
    for user in users:
        _draws(user, 1)
    assert len(population._RNG_CACHE) == population._RNG_CACHE_SIZE
    population._RNG_CACHE.clear()


class _LiveClock:
    """A live clock 0.4 ms short of every due step; counts the waits asked of the loop."""

    jumps = False
    speed = 1.0

    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t

    def wall_seconds_until(self, sim_t: float) -> float | None:
        return max(0.0, sim_t - self.t)


def test_a_step_due_sooner_than_a_timer_runs_at_once() -> None:
    from sim_engine.engine.simulation import Simulation

    sim = Simulation.__new__(Simulation)
    clock = _LiveClock()
    sim._clock = clock  # type: ignore[assignment]
    assert sim._due(1_000.0)
    assert sim._due(1_000.0004)  # 0.4 ms: a timer would sleep 1 ms
    assert not sim._due(1_000.002)  # 2 ms: worth a timer


def test_a_literal_is_never_another_templates_that_had_its_id() -> None:
    api = make_api(actions={"feed": {"path": "/posts"}, "one": {"path": "/posts/{user.id}"}})
    target = DeclarativeTarget(FakeTransport(lambda call: (200, {})), api, seed=1)
    feed, one = api.actions["feed"], api.actions["one"]
    assert target._literal_of(feed)[:2] == ("GET", "/posts")
    # a freed template's entry under the id a new template now has (CPython reuses ids)
    target._literal[id(one)] = target._literal[id(feed)]
    assert target._literal_of(one) == ()  # has a placeholder: rendered each time
