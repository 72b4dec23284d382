"""One estimator per stylized fact, pure numpy on arrays sorted by (user, time).

Every function takes dense user codes ``code`` (int64, ``0..users-1``, sorted
ascending) and event instants ``t`` (float64 unix seconds, UTC, ascending within a
user), as :func:`sim_engine.realism.estimators.facts` prepares them, or the per-user
counts derived from them. Times are seconds of the log's own clock (simulated seconds
for a simulated log, wall seconds for a real one). docs/realism.md gives each
estimator's source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DAY_S",
    "IET_RANGE_S",
    "MIN_COHORT",
    "MIN_EVENTS_PER_USER",
    "RETENTION_FIT_MAX_DAY",
    "RETENTION_MAX_DAY",
    "SESSION_GAP_S",
    "Rhythm",
    "Sessions",
    "burstiness_memory",
    "gini",
    "iet_density_slope",
    "power_law_fit",
    "retention_curve",
    "rhythm",
    "sessions",
    "top_share",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_S = 86_400.0
"""Seconds in a day."""
HOUR_S = 3_600.0
SESSION_GAP_S = 1_800.0
"""Inactivity that ends a session: 30 minutes, the web-analytics convention."""
MIN_EVENTS_PER_USER = 10
"""Users with fewer events (9 inter-event times) get no burstiness or memory."""
IET_RANGE_S = (60.0, 604_800.0)
"""Inter-event times fitted for the density slope: 1 minute to 1 week."""
IET_BINS_PER_DECADE = 5
RETENTION_MAX_DAY = 60
"""Days after the first event for which the retention curve is measured."""
RETENTION_FIT_MAX_DAY = 30
"""The power-law fit of the retention curve uses days 1..30."""
MIN_COHORT = 10
"""A retention point needs at least this many users whose day-N window is in the log."""


@dataclass(frozen=True, slots=True)
class Rhythm:
    """The daily and weekly rhythm in local time.

    Attributes:
        hourly: 24 shares of events by local hour (0 = midnight to 1 am); sum 1.
        weekday: 7 shares of events by local weekday (0 = Monday); sum 1.
        trough_peak: smallest hourly share over the largest.
        weekend_weekday: events per Saturday/Sunday over events per Monday–Friday,
            each divided by the number of such calendar days the log spans (local
            dates), or None when the log spans less than one of each weekday.
    """

    hourly: FloatArray
    weekday: FloatArray
    trough_peak: float
    weekend_weekday: float | None


def rhythm(local_s: FloatArray) -> Rhythm:
    """Hourly and weekday shares of events at local instants ``local_s``.

    Args:
        local_s: float64 seconds since 1970-01-01 on the users' wall clocks (UTC
            instant plus the user's offset), any order.
    """
    day = np.floor(local_s / DAY_S)
    hour = np.floor((local_s - day * DAY_S) / HOUR_S).astype(np.int64)
    weekday = ((day.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    hourly = np.bincount(np.clip(hour, 0, 23), minlength=24).astype(np.float64)
    per_weekday = np.bincount(weekday, minlength=7).astype(np.float64)
    first, last = int(day.min()), int(day.max())
    calendar = np.bincount((np.arange(first, last + 1) + 3) % 7, minlength=7)
    ratio = None
    if np.all(calendar > 0):
        per_day = per_weekday / calendar
        weekdays = float(per_day[:5].mean())
        ratio = float(per_day[5:].mean()) / weekdays if weekdays > 0 else None
    return Rhythm(
        hourly=hourly / hourly.sum(),
        weekday=per_weekday / per_weekday.sum(),
        trough_peak=float(hourly.min() / hourly.max()),
        weekend_weekday=ratio,
    )


def _per_user_mean_sd(
    x: FloatArray, owner: IntArray, users: int
) -> tuple[FloatArray, FloatArray, IntArray]:
    n = np.bincount(owner, minlength=users)
    safe = np.maximum(n, 1)
    mean = np.bincount(owner, weights=x, minlength=users) / safe
    dev = x - mean[owner]
    sd = np.sqrt(np.bincount(owner, weights=dev * dev, minlength=users) / safe)
    return mean, sd, n


def burstiness_memory(
    code: IntArray, t: FloatArray, users: int, min_events: int = MIN_EVENTS_PER_USER
) -> tuple[FloatArray, FloatArray]:
    """Per-user burstiness B and memory M of inter-event times (Goh & Barabási 2008).

    B = (σ − μ)/(σ + μ) of a user's gaps (population σ): −1 regular, 0 Poisson, → 1
    bursty. M is the Pearson correlation of consecutive gaps (τ_i, τ_{i+1}).

    Args:
        code, t: events sorted by (code, t); ``users`` distinct codes.
        min_events: users with fewer events are left out.

    Returns:
        (B, M): float64 arrays, one value per user that qualifies (M also needs
        non-constant gaps); lengths may differ.
    """
    same = code[1:] == code[:-1]
    gaps = np.diff(t)[same]
    owner = code[1:][same]
    mean, sd, n_gaps = _per_user_mean_sd(gaps, owner, users)
    ok = (n_gaps >= min_events - 1) & (sd + mean > 0)
    b = (sd[ok] - mean[ok]) / (sd[ok] + mean[ok])
    pair = owner[1:] == owner[:-1]
    x, y, pair_owner = gaps[:-1][pair], gaps[1:][pair], owner[1:][pair]
    mx, sx, n_pairs = _per_user_mean_sd(x, pair_owner, users)
    my, sy, _ = _per_user_mean_sd(y, pair_owner, users)
    cov_sum = np.bincount(
        pair_owner, weights=(x - mx[pair_owner]) * (y - my[pair_owner]), minlength=users
    )
    ok_m = (n_gaps >= min_events - 1) & (sx > 0) & (sy > 0)
    m = cov_sum[ok_m] / np.maximum(n_pairs[ok_m], 1) / (sx[ok_m] * sy[ok_m])
    return b.astype(np.float64), m.astype(np.float64)


def iet_density_slope(
    code: IntArray, t: FloatArray, range_s: tuple[float, float] = IET_RANGE_S
) -> float | None:
    """Slope of the pooled inter-event time density in log-log between ``range_s``.

    Gaps of all users are counted in logarithmic bins (5 per decade); the density is
    count / bin width; the slope is the least-squares line of log10(density) against
    log10(bin centre) over non-empty bins. A density ∝ τ^-a gives slope −a (about −1
    for email and web browsing; Barabási 2005, Goh & Barabási 2008).

    Returns:
        The slope, or None when fewer than 3 bins hold gaps.
    """
    same = code[1:] == code[:-1]
    gaps = np.diff(t)[same]
    lo, hi = range_s
    bins = max(round(float(np.log10(hi / lo)) * IET_BINS_PER_DECADE), 1)
    edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    counts, _ = np.histogram(gaps, bins=edges)
    keep = counts > 0
    if int(keep.sum()) < 3:
        return None
    centres = np.sqrt(edges[:-1] * edges[1:])[keep]
    density = counts[keep] / np.diff(edges)[keep]
    slope, _ = np.polyfit(np.log10(centres), np.log10(density), 1)
    return float(slope)


def gini(values: FloatArray | IntArray) -> float:
    """Gini coefficient of non-negative ``values`` (0 equal, → 1 one holds all).

    G = 2 Σ i·x_(i) / (n Σ x) − (n + 1)/n with x sorted ascending, i = 1..n.
    Returns 0.0 when the values sum to 0.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def top_share(values: FloatArray | IntArray, fraction: float) -> float:
    """Share of the total held by the top ``fraction`` of entries (at least one entry)."""
    x = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    total = float(x.sum())
    if total <= 0:
        return 0.0
    k = max(1, int(np.ceil(x.size * fraction)))
    return float(x[:k].sum() / total)


@dataclass(frozen=True, slots=True)
class Sessions:
    """Sessions split by 30 minutes of inactivity.

    Attributes:
        count: number of sessions.
        mean_events: mean events per session.
        single_share: share of sessions with one event.
        mean_duration_s, median_duration_s: first to last event, seconds (0 for one event).
    """

    count: int
    mean_events: float
    single_share: float
    mean_duration_s: float
    median_duration_s: float


def sessions(code: IntArray, t: FloatArray, gap_s: float = SESSION_GAP_S) -> Sessions:
    """Split each user's events into sessions at gaps longer than ``gap_s`` seconds."""
    new = np.ones(t.size, dtype=bool)
    new[1:] = (code[1:] != code[:-1]) | (np.diff(t) > gap_s)
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, t.size - 1)
    events = last - first + 1
    duration = t[last] - t[first]
    return Sessions(
        count=int(first.size),
        mean_events=float(events.mean()),
        single_share=float(np.mean(events == 1)),
        mean_duration_s=float(duration.mean()),
        median_duration_s=float(np.median(duration)),
    )


def retention_curve(
    code: IntArray,
    t: FloatArray,
    users: int,
    span_end_s: float,
    max_day: int = RETENTION_MAX_DAY,
) -> tuple[IntArray, FloatArray, IntArray]:
    """Share of users active on day N after their first event, N = 1..max_day.

    Day N of a user is the 24 h window [first + N·86400 s, first + (N+1)·86400 s).
    Only users whose day-N window ends by ``span_end_s`` count (for both the
    numerator and the cohort), so the end of the log does not look like churn.

    Returns:
        (days, shares, cohorts) for the days whose cohort has at least
        :data:`MIN_COHORT` users.
    """
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    first = t[starts]
    rel = np.floor((t - first[code]) / DAY_S).astype(np.int64)
    keep = (rel >= 1) & (rel <= max_day)
    width = max_day + 1
    keys = code[keep] * width + rel[keep]  # ascending: events are sorted by (code, t)
    pairs = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
    owner, day = pairs // width, pairs % width
    inside = first[owner] + (day + 1) * DAY_S <= span_end_s
    active = np.bincount(day[inside], minlength=width)
    days = np.arange(1, width, dtype=np.int64)
    cohorts = np.searchsorted(np.sort(first), span_end_s - (days + 1) * DAY_S, side="right")
    ok = cohorts >= MIN_COHORT
    shares = active[1:][ok] / cohorts[ok]
    return days[ok], shares.astype(np.float64), cohorts[ok].astype(np.int64)


def power_law_fit(
    days: npt.ArrayLike, shares: npt.ArrayLike, max_day: int = RETENTION_FIT_MAX_DAY
) -> tuple[float, float] | None:
    """Fit shares ≈ a · day^(−exponent) by least squares in log-log over days ≤ max_day.

    Returns:
        (exponent, R²) of the fit of log10(share) on log10(day), or None when fewer
        than 3 points with a positive share are available.
    """
    day = np.asarray(days, dtype=np.float64)
    share = np.asarray(shares, dtype=np.float64)
    keep = (day >= 1) & (day <= max_day) & (share > 0)
    if int(keep.sum()) < 3:
        return None
    x, y = np.log10(day[keep]), np.log10(share[keep])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
    return float(-slope), r2
