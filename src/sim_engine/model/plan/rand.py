"""Counter-based randomness for the planner: every draw is a hash of where it is used.

A draw is ``mix(... mix(mix(user_key + salt_1) + salt_2) ...)`` where ``user_key``
derives from the run seed and the user's index and the salts say which draw it is
(the day, a stream constant, a session round, a step). Nothing is drawn "in
order", so a user's plan is the same whichever chunk or worker plans it, and a
whole column of draws is a handful of numpy operations. ``mix`` is SplitMix64's
finaliser (Steele, Lea & Flood 2014), a bijection on 64-bit words with full
avalanche. The run key comes from ``numpy.random.SeedSequence(seed)``, so runs
with nearby seeds share nothing.

A ``numpy.random.Generator`` per user-day (a SeedSequence spawned from
``(seed, user, day)``) would give the same independence but costs about 10 µs to
build: 90 s for 100,000 users x 90 days before any event is planned.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "U64",
    "Salt",
    "bounded",
    "exponential",
    "hash64",
    "normal",
    "run_key",
    "uniform",
    "user_keys",
]

U64 = npt.NDArray[np.uint64]
Salt = int | npt.NDArray[np.integer]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0**-53


def _mix(x: U64) -> U64:
    """SplitMix64's finaliser applied in place to a fresh array (returns it)."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def run_key(seed: int) -> int:
    """Return the 64-bit key of a run seed (``SeedSequence(seed)``'s first word)."""
    state = np.random.SeedSequence(seed).generate_state(1, np.uint64)
    return int(state[0])


def user_keys(key: int, users: npt.NDArray[np.integer]) -> U64:
    """Return each user's key: a hash of the run key and the user's index (int array)."""
    x = users.astype(np.uint64) * _GOLDEN
    x += np.uint64(key)
    return _mix(x)


def hash64(keys: U64, *salts: Salt) -> U64:
    """Hash ``keys`` (uint64 array) with each salt in turn (ints or int arrays, broadcast)."""
    x = keys.copy() if not salts else keys
    for salt in salts:
        s = np.asarray(salt).astype(np.uint64) * _GOLDEN
        x = _mix(x + s + _GOLDEN)
    return x if salts else _mix(x)


def uniform(keys: U64, *salts: Salt) -> npt.NDArray[np.float64]:
    """Return uniform floats in ``[0, 1)`` (53 random bits), one per key."""
    out: npt.NDArray[np.float64] = (hash64(keys, *salts) >> _S11).astype(np.float64) * _TO_UNIT
    return out


def exponential(keys: U64, *salts: Salt) -> npt.NDArray[np.float64]:
    """Return ``Exp(1)`` draws (inversion of a uniform), one per key."""
    return -np.log1p(-uniform(keys, *salts))


def normal(keys: U64, *salts: Salt) -> npt.NDArray[np.float64]:
    """Return standard normal draws (Box-Muller on two hashed uniforms), one per key."""
    u1 = uniform(keys, *salts, 1)
    u2 = uniform(keys, *salts, 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def bounded(
    keys: U64, low: npt.ArrayLike, high: npt.ArrayLike, *salts: Salt
) -> npt.NDArray[np.int64]:
    """Return whole numbers uniform in ``[low, high]`` (inclusive, broadcast), one per key."""
    lo = np.asarray(low, dtype=np.int64)
    span = np.asarray(high, dtype=np.int64) - lo + 1
    return lo + np.floor(uniform(keys, *salts) * span).astype(np.int64)
