"""Generated post content: titles, bodies and tags.

Mimesis fills a pool of words and sentences once per run (seeded); each post
is then assembled with the posting user's own generator, so content is
deterministic per user and costs a few microseconds.
"""

from __future__ import annotations

import random
from typing import Any

from mimesis import Text
from mimesis.locales import Locale

__all__ = ["ContentGenerator"]


class ContentGenerator:
    """Builds post payloads.

    Args:
        seed: the run seed (fills the word and sentence pools).
        pool_size: number of sentences in the pool.
    """

    def __init__(self, seed: int, pool_size: int = 400) -> None:
        text = Text(Locale.EN, seed=seed)
        self._sentences = [text.sentence() for _ in range(pool_size)]
        words = {w.lower() for w in text.words(quantity=pool_size * 2) if w.isalpha()}
        self._words = sorted(words)

    def title(self, rng: random.Random) -> str:
        """Return a 3–7 word title."""
        words = rng.sample(self._words, rng.randint(3, 7))
        return " ".join(words).capitalize()

    def body(self, rng: random.Random) -> str:
        """Return a body of 1–4 sentences."""
        return " ".join(rng.sample(self._sentences, rng.randint(1, 4)))

    def tags(self, rng: random.Random, interest: str | None) -> list[str]:
        """Return 0–3 tags, led by the user's interest tag when it has one."""
        tags = rng.sample(self._words, rng.randint(0, 2))
        return [interest, *tags] if interest else tags

    def post(self, rng: random.Random, interest: str | None = None) -> dict[str, Any]:
        """Return a ``create_post`` payload: ``{"title", "body", "tags"}``."""
        return {"title": self.title(rng), "body": self.body(rng), "tags": self.tags(rng, interest)}

    def edit(self, rng: random.Random) -> dict[str, Any]:
        """Return an ``update_post`` payload changing the body and sometimes the title."""
        payload: dict[str, Any] = {"body": self.body(rng)}
        if rng.random() < 0.3:
            payload["title"] = self.title(rng)
        return payload
