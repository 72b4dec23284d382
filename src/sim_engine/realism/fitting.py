"""Robust first fits of a calibrated scenario's parameters from a real event log (pure numpy).

Each function reads plain arrays (an :class:`~sim_engine.realism.readers.EventLog`'s, or
the arrays of one sorted by user and time) and returns figures for
:class:`~sim_engine.realism.scenario_fit.Params`. Real logs are messy, so the fits
use quantiles and medians rather than means: a few extreme users (bots, importers)
cannot drag a median or an interquartile range, and log-normal shapes are read from
the interquartile range of log values (``sigma = IQR / 1.349``). Collection gaps (days
without a single event inside a busy stretch) are found so the simulated log can be
cut the same way. Seconds are the log's own clock (wall seconds for a real log).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim_engine.realism.measures import DAY_S, SESSION_GAP_S

__all__ = [
    "REFERENCE_HOURLY",
    "Gaps",
    "LogShape",
    "collection_gaps",
    "dominant_offset",
    "fit_retention",
    "hourly_intensity",
    "log_shape",
    "lognormal_quantile_fit",
    "user_offsets",
    "zone_name",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
HOUR_S = 3_600.0
_IQR_SIGMA = 1.349  # interquartile range of a standard normal

REFERENCE_HOURLY: tuple[float, ...] = (
    (0.0,) * 6 + (0.3,) * 3 + (1.0,) * 2 + (0.3,) * 2 + (1.0,) + (0.3,) * 4 + (1.0,) * 5 + (0.0,)
)
"""A human day by local hour, used to place a log without time zones: the default
routine's weekday intensity (asleep 23:00-06:00, working 0.3, relaxing 1.0 at
09-11, 13-14 and 18-23; docs/scenario.md), after DESIGN.md's published facts (activity
lowest at 4-6 am, evening peak)."""

_FRACTIONAL_ZONES = {
    -34_200: "Pacific/Marquesas",
    -12_600: "America/St_Johns",
    12_600: "Asia/Tehran",
    16_200: "Asia/Kabul",
    19_800: "Asia/Kolkata",
    20_700: "Asia/Kathmandu",
    23_400: "Asia/Yangon",
    31_500: "Australia/Eucla",
    34_200: "Australia/Darwin",
    37_800: "Australia/Lord_Howe",
    45_900: "Pacific/Chatham",
}


def zone_name(offset_s: float) -> str:
    """An IANA zone for a UTC offset in seconds (east positive).

    Whole hours from −12 to +14 give ``Etc/GMT±N`` (whose sign is POSIX's, inverted:
    +9 h is ``Etc/GMT-9``) or ``Etc/UTC``; the half- and quarter-hour offsets in use
    give a zone that has them; anything else is rounded to the nearest hour.
    """
    quarter = round(offset_s / 900.0) * 900
    if quarter in _FRACTIONAL_ZONES:
        return _FRACTIONAL_ZONES[quarter]
    hours = int(np.clip(round(offset_s / HOUR_S), -12, 14))
    if hours == 0:
        return "Etc/UTC"
    return f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"


def lognormal_quantile_fit(
    values: F64, default: tuple[float, float], min_count: int = 20
) -> tuple[float, float]:
    """``(median, sigma)`` of positive ``values`` read as log-normal, from quantiles.

    The median is the sample median; sigma is the interquartile range of the log
    values over 1.349 (a normal's IQR), so the tails (extreme users) do not move it.
    Fewer than ``min_count`` positive values give ``default``.
    """
    x = values[values > 0]
    if x.size < min_count:
        return default
    q25, q50, q75 = np.quantile(np.log(x), [0.25, 0.5, 0.75])
    return float(np.exp(q50)), float((q75 - q25) / _IQR_SIGMA)


def user_offsets(code: I64, offsets: F64, users: int) -> I64:
    """Each user's most frequent UTC offset (seconds), from events sorted by user.

    The mode rather than the mean: a user seen on both sides of a daylight-saving
    change, or travelling, keeps the offset it lives at most.
    """
    q = np.round(offsets / 900.0).astype(np.int64)
    lo = int(q.min())
    key = code * (int(q.max()) - lo + 1) + (q - lo)
    uniq, counts = np.unique(key, return_counts=True)
    owner = uniq // (int(q.max()) - lo + 1)
    best = np.zeros(users, dtype=np.int64)
    order = np.lexsort((counts, owner))  # by owner, then count ascending: last is the mode
    last = np.r_[owner[order][1:] != owner[order][:-1], True]
    chosen = order[last]
    best[owner[chosen]] = (uniq[chosen] % (int(q.max()) - lo + 1) + lo) * 900
    return best


def dominant_offset(utc_hourly: F64) -> int:
    """The UTC offset (whole hours, −12..+14) that best makes a UTC hourly profile human.

    For a log without time zones: the offset ``o`` maximising the correlation of the
    profile at UTC hour ``h − o`` with :data:`REFERENCE_HOURLY` at local hour ``h``
    (ties: the smallest ``|o|``). A worldwide audience still gets the offset of the
    population that dominates its rhythm.
    """
    ref = np.asarray(REFERENCE_HOURLY)
    best, score = 0, -np.inf
    for o in sorted(range(-12, 15), key=abs):
        shifted = np.roll(utc_hourly, o)  # shifted[h] = utc[h - o]
        if np.std(shifted) == 0:
            return 0
        c = float(np.corrcoef(shifted, ref)[0, 1])
        if c > score + 1e-12:
            best, score = o, c
    return best


def hourly_intensity(local_s: F64) -> tuple[F64, F64]:
    """Routine intensities by local hour for weekdays and weekend days, scaled to max 1.

    Events per local hour of each kind of day, divided by how many such calendar
    days the log spans, then divided by the largest of the 48 values: the relative
    rate of a weekday hour and a weekend hour. Returns two arrays of 24.
    """
    day = np.floor(local_s / DAY_S)
    hour = np.clip(np.floor((local_s - day * DAY_S) / HOUR_S).astype(np.int64), 0, 23)
    weekend = ((day.astype(np.int64) + 3) % 7) >= 5
    first, last = int(day.min()), int(day.max())
    calendar = (np.arange(first, last + 1) + 3) % 7 >= 5
    per = []
    for flag in (False, True):
        counts = np.bincount(hour[weekend == flag], minlength=24).astype(np.float64)
        days = max(int(np.sum(calendar == flag)), 1)
        per.append(counts / days)
    top = max(float(per[0].max()), float(per[1].max()), 1e-300)
    return per[0] / top, per[1] / top


@dataclass(frozen=True, slots=True)
class Gaps:
    """Collection gaps: UTC days (``floor(t / 86400)``) with no event in a busy stretch."""

    days: frozenset[int]

    def keep(self, t: F64) -> npt.NDArray[np.bool_]:
        """True for instants outside every gap day."""
        if not self.days:
            return np.ones(t.size, dtype=bool)
        return ~np.isin(np.floor(t / DAY_S).astype(np.int64), np.fromiter(self.days, np.int64))


def collection_gaps(t: F64, min_rate: float = 10.0, window: int = 7) -> Gaps:
    """Days without events although the ``2 × window`` days around them are busy.

    A UTC day with no event whose surrounding days' median count is at least
    ``min_rate`` (a Poisson day that busy is empty with chance e^-10) is a gap in
    collection, not quiet users.
    """
    day = np.floor(t / DAY_S).astype(np.int64)
    first = int(day.min())
    counts = np.bincount(day - first).astype(np.float64)
    gaps = []
    for d in np.flatnonzero(counts == 0):
        around = np.r_[counts[max(0, d - window) : d], counts[d + 1 : d + 1 + window]]
        if around.size and float(np.median(around)) >= min_rate:
            gaps.append(int(d) + first)
    return Gaps(frozenset(gaps))


@dataclass(frozen=True, slots=True)
class LogShape:
    """Figures of a log beyond :class:`~sim_engine.realism.estimators.RealismFacts`.

    Attributes:
        users: users with at least one event.
        day0_users: users whose first event is in the log's first 24 hours.
        sessions_per_active_day: sessions (30-minute split) per (user, UTC day) with events.
        think: ``(median_s, sigma)`` of gaps inside sessions (0 < gap ≤ 30 min).
        follow_up: ``(median_s, sigma)`` of gaps between sessions under a day.
        count_sigma: log-normal sigma of events per user (from its quantiles).
    """

    users: int
    day0_users: int
    sessions_per_active_day: float
    think: tuple[float, float]
    follow_up: tuple[float, float]
    count_sigma: float


def log_shape(code: I64, t: F64, users: int) -> LogShape:
    """Measure :class:`LogShape` from events sorted by (user code, time)."""
    same = code[1:] == code[:-1]
    gaps = np.diff(t)[same]
    inside = gaps[gaps <= SESSION_GAP_S]
    between = gaps[(gaps > SESSION_GAP_S) & (gaps < DAY_S)]
    starts = np.flatnonzero(np.r_[True, ~same])
    first = t[starts]
    day = np.floor(t / DAY_S).astype(np.int64)
    user_day = code * (int(day.max() - day.min()) + 2) + (day - day.min())
    active_days = int(np.unique(user_day).size)
    sessions = int(np.sum(np.r_[True, ~same | (np.diff(t) > SESSION_GAP_S)]))
    counts = np.bincount(code, minlength=users).astype(np.float64)
    _, count_sigma = lognormal_quantile_fit(counts, (1.0, 1.0), min_count=2)
    return LogShape(
        users=users,
        day0_users=int(np.sum(first < t.min() + DAY_S)),
        sessions_per_active_day=sessions / max(active_days, 1),
        think=lognormal_quantile_fit(inside, (20.0, 1.0)),
        follow_up=lognormal_quantile_fit(between, (3_600.0, 1.0)),
        count_sigma=count_sigma,
    )


def _survival(days: F64, hazard: float, decay: float) -> F64:
    """S(N) = prod over a = 1..N of (1 - hazard * a^-decay), for each N in ``days``."""
    ages = np.arange(1, int(days.max()) + 1, dtype=np.float64)
    step = np.clip(1.0 - hazard * ages**-decay, 1e-12, 1.0)
    out: F64 = np.exp(np.cumsum(np.log(step)))[days.astype(np.int64) - 1]
    return out


DECAYS: tuple[float, ...] = tuple(float(d) for d in np.arange(0.5, 2.01, 0.25))
"""The hazard decays :func:`fit_retention` tries by default."""


def fit_retention(
    retention: tuple[tuple[int, float, int], ...],
    max_day: int = 30,
    decays: tuple[float, ...] = DECAYS,
) -> tuple[float, float, float] | None:
    """``(return_p, hazard, decay)`` whose ``return_p · S(N)`` best fits a retention curve.

    ``retention`` holds (day N, share active on day N, cohort) points
    (:attr:`RealismFacts.retention`); points up to ``max_day`` with a positive share
    are fitted in log space, weighted by the square root of their cohorts (a point
    measured on more users counts more; a few long-lived users do not). The hazard
    ``hazard · age^-decay`` and the daily return probability are those of the
    calibrated lifecycle. A grid over the hazard (0.01-0.95) and ``decays`` (default
    0.5-2 by 0.25), the return probability in closed form for each. None under 3 points.
    """
    pts = [(d, s, c) for d, s, c in retention if d <= max_day and s > 0]
    if len(pts) < 3:
        return None
    days = np.asarray([p[0] for p in pts], dtype=np.float64)
    log_share = np.log([p[1] for p in pts])
    weight = np.sqrt([float(p[2]) for p in pts])
    best: tuple[float, float, float, float] | None = None
    for decay in decays:
        for hazard in np.arange(0.01, 0.951, 0.01):
            log_s = np.log(_survival(days, float(hazard), float(decay)))
            log_p = float(np.clip(np.average(log_share - log_s, weights=weight), -12.0, 0.0))
            err = float(np.average((log_share - log_s - log_p) ** 2, weights=weight))
            if best is None or err < best[0] - 1e-12:
                best = (err, float(np.exp(log_p)), float(hazard), float(decay))
    assert best is not None
    return best[1], best[2], best[3]
