"""Picker weights and preferences of the ``api`` section (``weight``, ``prefer``).

A small in-memory social API behind a scripted transport: users write posts now
and then, browse the newest page and read posts from what they saw. With
``weight: popularity`` the reads pile onto the posts already read (preferential
attachment), so views per post are heavy-tailed; with ``prefer`` a share of the
reads goes to authors the user follows. Each statistical test also runs its
mutant (the uniform picker, no preference) and shows it fails the same bound.
All draws are seeded (the target's ``seed``, the test's own ``random.Random``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.records import ActionRequest
from sim_engine.realism import measures
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.declarative._picking import Popularity, weight_of
from sim_engine.targets.transport import Response

NOW = 1_772_445_600.0
ISO = "2026-03-02T10:00:00+00:00"


class SmallSocialApi:
    """Posts (id, author, views), newest first; ``GET /posts`` is the newest page."""

    def __init__(self, page: int = 50) -> None:
        self.page = page
        self.posts: list[dict[str, Any]] = []
        self.views: Counter[int] = Counter()

    def write(self, author: int) -> None:
        self.posts.append({"id": len(self.posts) + 1, "author": author})

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        if path.startswith("/posts/"):
            post_id = int(path.rsplit("/", 1)[1])
            self.views[post_id] += 1
            body: Any = self.posts[post_id - 1]
        else:
            body = {"items": self.posts[-self.page :][::-1]}
        return Response(200, json.dumps(body).encode(), 1.0)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def statistics(self) -> dict[str, Any]:
        return {}


FIELDS = {"id": "id", "author": "author"}


def social_api(read: dict[str, Any]) -> ApiSpec:
    """Browse the newest page into ``memory.seen``; ``read`` picks from it."""
    return ApiSpec.model_validate(
        {
            "memory": {"seen": 50, "following": 50},
            "actions": {
                "browse": {
                    "path": "/posts",
                    "extract": [{"path": "items[*]", "to": "memory.seen", "fields": FIELDS}],
                },
                "read": {"path": "/posts/{post.id}", "pick": {"post": "memory.seen"}, **read},
            },
        }
    )


def req(action: str, user: int) -> ActionRequest:
    return ActionRequest(action, user, NOW, ISO)


async def a_day(
    read: dict[str, Any], seed: int = 11, following: dict[int, set[int]] | None = None
) -> tuple[SmallSocialApi, list[tuple[int, int]]]:
    """A day of a small site: 200 users, a post now and then (1% of actions), browses
    of the newest page (29%), reads of what was seen (70%).

    Args:
        read: the ``read`` action's extra keys (``weight``, ``prefer``).
        seed: the target's and the day's seed.
        following: user -> the authors it follows (``memory.following``).

    Returns:
        the API (posts, views) and the (user, author) of every read.
    """
    rng = random.Random(seed)
    api = SmallSocialApi()
    target = DeclarativeTarget(api, social_api(read), seed=seed)
    for user, authors in (following or {}).items():
        items = [{"id": a} for a in sorted(authors)]
        target.restore_memory(user, {"memory": {"memory.following": {"items": items}}})
    for author in range(1, 21):
        api.write(author)
    reads: list[tuple[int, int]] = []
    for _ in range(12_000):
        user = rng.randrange(1, 201)
        draw = rng.random()
        if draw < 0.01:
            api.write(user)
        elif draw < 0.3:
            await target.send(req("browse", user))
        else:
            outcome = await target.send(req("read", user))
            if outcome.ok and outcome.post_id is not None:
                reads.append((user, api.posts[int(outcome.post_id) - 1]["author"]))
    return api, reads


def gini(values: list[int]) -> float:
    return measures.gini(np.asarray(values, dtype=np.float64))


async def views_per_post(read: dict[str, Any], seed: int = 11) -> list[int]:
    """The views of every post written in :func:`a_day` (0 for those nobody read)."""
    api, _ = await a_day(read, seed)
    return [api.views[p["id"]] for p in api.posts]


async def test_popularity_weight_makes_views_per_post_heavy_tailed() -> None:
    views = await views_per_post({"weight": {"post": "popularity"}})
    uniform = await views_per_post({})
    assert sum(views) == pytest.approx(sum(uniform), rel=0.05)  # the same traffic
    # weight 1 + reads so far: the rich get richer (Gini >= 0.6, the bound);
    # the uniform picker (the mutant) spreads reads over each page: well under it
    assert gini(views) >= 0.6, gini(views)
    assert gini(uniform) < 0.5, gini(uniform)
    top = sorted(views, reverse=True)
    assert sum(top[: len(top) // 10]) >= 0.4 * sum(views)


async def test_field_weight_follows_the_count_the_api_gives() -> None:
    weight = {"post": "score"}
    api = ApiSpec.model_validate(
        {
            "memory": {"seen": 3},
            "actions": {
                "read": {"path": "/p/{post.id}", "pick": {"post": "memory.seen"}, "weight": weight},
            },
        }
    )
    seen = [{"id": 1, "score": 0}, {"id": 2, "score": 9}, {"id": 3, "score": "x"}]
    target = DeclarativeTarget(SmallSocialApi(), api, seed=3)
    target.restore_memory(1, {"memory": {"memory.seen": {"items": seen}}})
    picked: Counter[int] = Counter()
    for _ in range(1200):
        picks = target._memory.pick(target._memory.user(1), api.actions["read"])
        picked[picks["post"][1]["id"]] += 1
    # weights 1, 10, 1 (a field that is not a number counts 0): 1/12, 10/12, 1/12
    assert picked[2] / 1200 == pytest.approx(10 / 12, abs=0.04)
    assert picked[1] / 1200 == pytest.approx(1 / 12, abs=0.03)


def test_weight_of_multiplies_terms() -> None:
    item = {"id": 4, "views": 3, "author": {"posts": "4"}, "bad": float("nan")}
    assert weight_of(item, ["views", "author.posts"], 0) == 4 * 5
    assert weight_of(item, ["popularity", "views"], 2) == 3 * 4
    assert weight_of(item, ["bad", "missing", "id"], 0) == 5  # nan and missing count 0
    assert weight_of({"v": -3, "t": True}, ["v", "t"], 0) == 1  # negatives and booleans 0


def test_popularity_is_bounded_and_keeps_the_recently_picked() -> None:
    counts = Popularity(bound=2)
    for key in ("a", "a", "b", "a", "c"):
        counts.add(0, key)
    assert counts.get(0, "a") == 3 and counts.get(0, "c") == 1
    assert counts.get(0, "b") == 0  # the least recently picked went first
    counts.drop(0, "a")
    assert counts.get(0, "a") == 0 and counts.get(1, "c") == 0


async def test_prefer_reads_followed_authors_more() -> None:
    """Each user follows 5 of the 200 users; ``prefer`` gives them half the picks when
    the page holds any of their posts. The uniform picker (the mutant) reads them about
    as often as the page shows them: a few percent."""
    rng = random.Random(5)
    following = {u: set(rng.sample([a for a in range(1, 201) if a != u], 5)) for u in range(1, 201)}
    prefer = {"post": {"share": 0.5, "where": {"author": {"in": "memory.following.id"}}}}

    def followed_share(reads: list[tuple[int, int]]) -> float:
        return sum(author in following[user] for user, author in reads) / len(reads)

    _, preferring = await a_day({"prefer": prefer}, following=following)
    _, uniform = await a_day({}, following=following)
    assert len(preferring) > 7000 and len(uniform) > 7000
    # a random author is 5 of 199 (2.5%) of what a user reads under the uniform picker
    assert followed_share(uniform) < 0.06, followed_share(uniform)
    assert followed_share(preferring) > 0.25, followed_share(preferring)
    # per followed author, a user reads over 10x what it reads of a random author
    per_followed = followed_share(preferring) / 5
    per_other = (1 - followed_share(preferring)) / 194
    assert per_followed > 10 * per_other


def test_weight_and_prefer_are_checked_with_their_field_path() -> None:
    def check(read: dict[str, Any]) -> str:
        with pytest.raises(ValidationError) as err:
            social_api(read)
        return str(err.value)

    assert "actions.read.weight.x: 'x' is not picked" in check({"weight": {"x": "popularity"}})
    assert "actions.read.weight.post: 'a..b'" in check({"weight": {"post": "a..b"}})
    assert "actions.read.prefer: unknown memory 'memory.nope'" in check(
        {"prefer": {"post": {"share": 0.5, "where": {"author": {"in": "memory.nope.id"}}}}}
    )
    assert "actions.read.prefer.post.where.a: only {user.FIELD}" in check(
        {"prefer": {"post": {"share": 0.5, "where": {"a": "{post.id}"}}}}
    )
    assert "share" in check({"prefer": {"post": {"share": 1.5, "where": {"a": 1}}}})
    spec = social_api({"weight": {"post": "popularity"}})  # a single term is a list of one
    assert spec.actions["read"].weight == {"post": ("popularity",)}
