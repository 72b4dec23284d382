"""The population: simulated users, their identities and their memory.

A :class:`SimUser` is a slotted object of well under 1 KB: identity strings,
a 64-bit random state (each user derives its own generator from the run seed,
see :func:`user_rng`), the credentials the target gave it, and a small memory
of what it created and last saw. Passwords are never stored: they are derived
from the run secret and the user id when needed.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from mimesis import Person
from mimesis.locales import Locale

from sim_engine.model.lifecycle import LifecycleStatus, lifecycle_from_dict, lifecycle_to_dict

__all__ = [
    "IdentityFactory",
    "SimUser",
    "password_for",
    "save_rng",
    "user_from_dict",
    "user_rng",
    "user_to_dict",
]

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _mix64(*parts: int | str) -> int:
    digest = hashlib.blake2b(b"|".join(str(p).encode() for p in parts), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class SimUser:
    """One simulated user.

    Attributes:
        user_id: the engine's id (1, 2, ...), unique within a run.
        persona: index into the run's compiled personas.
        created_ts: simulated epoch seconds when the user was created.
        name, email, tag, avatar: identity (email on the synthetic domain).
        tz: the user's time zone.
        rng_state: 64-bit state of the user's own random generator.
        remote_id: the user's id on the target (after sign-up).
        token: auth token (after log-in); never written to any record.
        session_id: number of sessions started so far.
        session_left: actions left in the current session (0: not in a session).
        pending: a session event is queued or an action is in flight for the user.
        life: long-term status (None when the scenario's lifecycle is disabled).
        day_end: simulated epoch seconds of the user's next local midnight.
        founder: a founder account (never churns; stable password).
        joined: the sign-up succeeded (an API without accounts gives no remote id).
        memory: what the target keeps for the user (an ``api`` section's token and
            lists), as JSON-ready data, refreshed whenever the user is saved.
        activity, posting: the user's propensities, multipliers on its persona's session
            rate and write weights (1 until set; :mod:`sim_engine.model.plan.propensity`).
    """

    __slots__ = (
        "activity",
        "avatar",
        "created_ts",
        "day_end",
        "email",
        "founder",
        "joined",
        "life",
        "memory",
        "name",
        "pending",
        "persona",
        "posting",
        "remote_id",
        "rng_state",
        "session_id",
        "session_left",
        "tag",
        "token",
        "tz",
        "user_id",
    )

    def __init__(
        self,
        user_id: int,
        persona: int,
        created_ts: float,
        name: str,
        email: str,
        tz: ZoneInfo,
        rng_state: int,
        tag: str | None = None,
        avatar: str = "",
    ) -> None:
        self.user_id = user_id
        self.persona = persona
        self.created_ts = created_ts
        self.name = name
        self.email = email
        self.tz = tz
        self.rng_state = rng_state
        self.tag = tag
        self.avatar = avatar
        self.remote_id: int | None = None
        self.token: str | None = None
        self.session_id = 0
        self.session_left = 0
        self.pending = False
        self.life: LifecycleStatus | None = None
        self.day_end = 0.0
        self.founder = False
        self.joined = False
        self.memory: dict[str, Any] | None = None
        self.activity = 1.0
        self.posting = 1.0

    @property
    def username(self) -> str:
        """The user's login name: the email's local part."""
        return self.email.split("@", 1)[0]

    @property
    def initials(self) -> str:
        """Initials of the user's name (the default avatar)."""
        return "".join(part[0] for part in self.name.split()[:2]).upper()

    def __repr__(self) -> str:
        return f"SimUser(user_id={self.user_id}, name={self.name!r}, persona={self.persona})"


def user_to_dict(user: SimUser) -> dict[str, Any]:
    """Serialise a user for the state store.

    The token is kept in the target's ``memory`` (with the ids the user holds),
    not in a field of its own.
    """
    data: dict[str, Any] = {
        slot: getattr(user, slot)
        for slot in SimUser.__slots__
        if slot not in ("tz", "token", "life", "pending", "session_left")
    }
    data["tz"] = str(user.tz)
    data["life"] = lifecycle_to_dict(user.life) if user.life is not None else None
    return data


def user_from_dict(data: dict[str, Any]) -> SimUser:
    """Rebuild a user saved by :func:`user_to_dict`.

    Raises:
        KeyError, ValueError: the data is not a saved user.
    """
    user = SimUser(
        user_id=int(data["user_id"]),
        persona=int(data["persona"]),
        created_ts=float(data["created_ts"]),
        name=str(data["name"]),
        email=str(data["email"]),
        tz=ZoneInfo(str(data["tz"])),
        rng_state=int(data["rng_state"]),
        tag=data.get("tag"),
        avatar=str(data.get("avatar", "")),
    )
    user.remote_id = data.get("remote_id")
    user.session_id = int(data.get("session_id", 0))
    user.day_end = float(data.get("day_end", 0.0))
    user.founder = bool(data.get("founder", False))
    user.activity = float(data.get("activity", 1.0))
    user.posting = float(data.get("posting", 1.0))
    user.joined = bool(data.get("joined", user.remote_id is not None))
    memory = data.get("memory")
    user.memory = dict(memory) if isinstance(memory, dict) else None
    life = data.get("life")
    user.life = lifecycle_from_dict(life) if life is not None else None
    return user


_RNG_CACHE: dict[int, random.Random] = {}  # a state saved by save_rng -> its generator
_RNG_CACHE_SIZE = 4096  # generators kept (about 2.5 KB each: 10 MB at most)


def user_rng(user: SimUser) -> random.Random:
    """Return the user's generator (advance it with :func:`save_rng`).

    Seeding a Mersenne Twister costs about 7 µs, more than the rest of a load test's
    step, so the generator :func:`save_rng` last saw with this state goes on where it
    stopped (a bounded cache, keyed by the 64-bit state it drew); otherwise, e.g. for a
    user restored from a checkpoint, a new one is seeded from ``user.rng_state``. The
    draws are a function of the seed and the order of events either way.
    """
    rng = _RNG_CACHE.pop(user.rng_state, None)
    return rng if rng is not None else random.Random(user.rng_state)


def save_rng(user: SimUser, rng: random.Random) -> None:
    """Store the next 64-bit state drawn from ``rng`` back into the user, and keep ``rng``
    for the next :func:`user_rng` of that state (the oldest kept one goes past
    ``_RNG_CACHE_SIZE``)."""
    state = user.rng_state = rng.getrandbits(64)
    if len(_RNG_CACHE) >= _RNG_CACHE_SIZE:
        del _RNG_CACHE[next(iter(_RNG_CACHE))]
    _RNG_CACHE[state] = rng


def password_for(secret: str, key: int | str) -> str:
    """Derive a password from a secret and a key (a user id, an email); nothing stores it."""
    return hashlib.blake2b(f"{secret}:{key}".encode(), digest_size=12).hexdigest()


class IdentityFactory:
    """Creates users with realistic names, synthetic emails, avatars and tags.

    Deterministic for a given seed and creation order. Names come from Mimesis
    (measured 10–30x faster than Faker, DESIGN.md).

    Args:
        seed: the run seed.
        persona_shares: share of each persona, by persona index.
        timezones: ``(zone name, share)`` pairs.
        email_domain: synthetic domain for every email.
        run_tag: a short tag put in every generated email, so two runs against
            the same target never collide (founders keep their own emails).
        tags: interest/faction tags to draw from (empty: no tag).
        avatar: ``initials`` or ``url``.
    """

    def __init__(
        self,
        seed: int,
        persona_shares: Sequence[float],
        timezones: Sequence[tuple[str, float]],
        email_domain: str,
        tags: Sequence[str] = (),
        avatar: str = "initials",
        run_tag: str = "",
    ) -> None:
        self._seed = seed
        self.run_tag = run_tag
        self._rng = random.Random(_mix64(seed, "identity"))
        self._person = Person(Locale.EN, seed=_mix64(seed, "names"))
        self._persona_weights = list(persona_shares)
        self._zones = [ZoneInfo(name) for name, _ in timezones]
        self._zone_weights = [share for _, share in timezones]
        self._domain = email_domain
        self._tags = list(tags)
        self._avatar = avatar
        self._next_id = 1

    @property
    def created(self) -> int:
        """How many users this factory has made."""
        return self._next_id - 1

    def export_state(self) -> dict[str, Any]:
        """Return what :meth:`restore_state` needs to continue the same sequence of users."""
        return {"next_id": self._next_id, "rng": _rng_state_to_json(self._rng)}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Continue from a saved state: ids go on from ``next_id``, names from a fresh seed."""
        self._next_id = int(state["next_id"])
        self._rng.setstate(_rng_state_from_json(state["rng"]))
        self._person = Person(Locale.EN, seed=_mix64(self._seed, "names", self._next_id))

    def create(
        self,
        created_ts: float,
        persona: int | None = None,
        name: str | None = None,
        email: str | None = None,
    ) -> SimUser:
        """Create the next user at simulated time ``created_ts`` (simulated epoch seconds).

        Args:
            created_ts: creation time.
            persona: force a persona index (default: drawn by share).
            name: force the name (founders); default: a generated one.
            email: force the email (founders); default: derived from the name.
        """
        rng = self._rng
        user_id = self._next_id
        self._next_id += 1
        if persona is None:
            persona = rng.choices(range(len(self._persona_weights)), self._persona_weights)[0]
        tz = rng.choices(self._zones, self._zone_weights)[0]
        if name is None:
            name = self._person.full_name()
        if email is None:
            slug = _SLUG_RE.sub(".", name.lower()).strip(".")
            tag_part = f".{self.run_tag}" if self.run_tag else ""
            email = f"{slug}.{user_id}{tag_part}@{self._domain}"
        tag = rng.choice(self._tags) if self._tags else None
        avatar = f"https://avatars.{self._domain}/{user_id}.png" if self._avatar == "url" else ""
        return SimUser(
            user_id=user_id,
            persona=persona,
            created_ts=created_ts,
            name=name,
            email=email,
            tz=tz,
            rng_state=_mix64(self._seed, "user", user_id),
            tag=tag,
            avatar=avatar,
        )


def _rng_state_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_state_from_json(data: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def rng_to_json(rng: random.Random) -> list[Any]:
    """Return a random generator's state as JSON-ready data."""
    return _rng_state_to_json(rng)


def rng_from_json(rng: random.Random, data: list[Any]) -> None:
    """Restore a random generator's state saved by :func:`rng_to_json`."""
    rng.setstate(_rng_state_from_json(data))
