"""The bounds every number of a scenario and of the command line is held to.

A value outside them is refused at validation, with its field named, instead of
overflowing a date, a float or a timer later on (or running for ever). The
figures are generous: far beyond any useful run, well inside what the engine's
arithmetic (epoch seconds, ``datetime``, ``asyncio`` timers) handles.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated

from pydantic import Field

__all__ = [
    "MAX_DAYS",
    "MAX_DURATION_S",
    "MAX_RATE",
    "MAX_SPEED",
    "MAX_START",
    "MAX_USERS",
    "MAX_WAIT_S",
    "MAX_WEIGHT",
    "MIN_START",
    "Weight",
    "check_speed",
    "check_start",
]

MAX_SPEED = 1_000_000.0
"""Fastest speed factor (simulated seconds per wall second): 11.6 simulated days a
wall second; faster than that, use ``max``."""

MAX_DURATION_S = 3650 * 86_400.0
"""Longest run: ten simulated years (simulated seconds)."""

MIN_START = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""Earliest simulated start (the Unix epoch: simulated time is epoch seconds)."""

MAX_START = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""Latest simulated start (exclusive): a start plus the longest run stays a date."""

MAX_USERS = 1_000_000
"""Largest population (``population.initial``, ``population.max``, caps on users)."""

MAX_RATE = 100_000.0
"""Largest rate per simulated day (sign-ups) or per wall second (requests)."""

MAX_WAIT_S = 86_400.0
"""Longest timeout, back-off, interval or think time: a day (seconds)."""

MAX_DAYS = 1_000_000
"""Largest count of days or actions (lifecycle thresholds, ranges): past any run, so a
threshold this high means "never"."""

MAX_WEIGHT = 1_000_000.0
"""Largest relative weight, share, intensity or multiplier."""

Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
"""A relative weight or share: finite, 0 to :data:`MAX_WEIGHT`."""


def check_speed(factor: float) -> float:
    """Return a speed factor (simulated seconds per wall second) that is within bounds.

    Raises:
        ValueError: not a finite number in (0, :data:`MAX_SPEED`].
    """
    if not (math.isfinite(factor) and 0 < factor <= MAX_SPEED):
        raise ValueError(f"speed must be 'max' or a positive number at most {MAX_SPEED:.0f}")
    return factor


def check_start(start: datetime) -> datetime:
    """Return a simulated start as an aware datetime (a naive one is taken as UTC).

    Raises:
        ValueError: before 1970-01-01 or from 2200-01-01 on (UTC).
    """
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    try:
        inside = MIN_START <= start < MAX_START
    except OverflowError:  # an offset that pushes the date past year 1 or 9999
        inside = False
    if not inside:
        raise ValueError(
            f"start must be from {MIN_START:%Y-%m-%d} to before {MAX_START:%Y-%m-%d} (UTC), "
            f"got {start.isoformat()}"
        )
    return start
