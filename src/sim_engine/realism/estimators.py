"""The stylized facts of an event log, from plain numpy arrays (pure, no I/O).

:func:`facts` is the one entry point: user ids, UTC instants, optional local offsets
and optional write flags in, a frozen :class:`RealismFacts` out. :func:`distances`
compares two logs' facts. Each estimator lives in :mod:`sim_engine.realism.measures`;
docs/realism.md says what each fact means, how it is estimated and where the
published figures come from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sim_engine.realism import measures as m

__all__ = ["FactDistances", "RealismFacts", "RealismInputError", "distances", "facts"]


class RealismInputError(ValueError):
    """The arrays cannot be measured (empty, mismatched, non-finite, one user only).

    The message is one line naming what is wrong.
    """


@dataclass(frozen=True, slots=True)
class RealismFacts:
    """The stylized facts of one event log. Seconds are the log's own clock.

    Rhythm (local time): ``hourly_shares`` (24, hour 0 first), ``weekday_shares``
    (7, Monday first), ``trough_peak`` (min/max hourly share), ``weekend_weekday``
    (events per weekend day over per weekday; None under a week).

    Bursts (users with at least ``min_events_per_user`` events): ``burstiness_median``
    (B = (σ−μ)/(σ+μ) of each user's gaps), ``memory_median`` (M, correlation of
    consecutive gaps), ``burst_users``; ``iet_slope``: slope of the pooled gap density
    in log-log between 1 minute and 1 week.

    Participation (per user of the log): ``gini_events``, ``top1_events``,
    ``top10_events`` (share of events by the top 1 % / 10 % of users); the same for
    writes and ``never_write_share`` and ``reads_per_write`` when writes are known
    (else None).

    Sessions (30 minutes of inactivity): ``sessions``, ``session_mean_events``,
    ``session_single_share``, ``session_mean_duration_s``, ``session_median_duration_s``.

    Retention: ``retention`` holds (day N, share active on day N, cohort size) for
    N = 1..60 where the cohort has at least 10 users; ``d1``, ``d7``, ``d30`` pick
    those days (None when absent); ``retention_exponent`` and ``retention_r2`` fit
    share ≈ a·N^−exponent over N = 1..30 (None under 3 points).

    ``local_time``: True when local offsets were given (else the rhythm is in UTC).
    """

    events: int
    users: int
    span_days: float
    hourly_shares: tuple[float, ...]
    weekday_shares: tuple[float, ...]
    trough_peak: float
    weekend_weekday: float | None
    min_events_per_user: int
    burst_users: int
    burstiness_median: float | None
    memory_median: float | None
    iet_slope: float | None
    gini_events: float
    top1_events: float
    top10_events: float
    writes: int | None
    gini_writes: float | None
    top1_writes: float | None
    top10_writes: float | None
    never_write_share: float | None
    reads_per_write: float | None
    sessions: int
    session_mean_events: float
    session_single_share: float
    session_mean_duration_s: float
    session_median_duration_s: float
    retention: tuple[tuple[int, float, int], ...]
    d1: float | None
    d7: float | None
    d30: float | None
    retention_exponent: float | None
    retention_r2: float | None
    local_time: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The facts as JSON-ready values (tuples become lists)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class FactDistances:
    """How far log B is from log A (signed differences are B − A).

    ``hourly_l1`` and ``weekday_l1``: Σ|share_B − share_A| over hours / weekdays
    (0 identical, 2 disjoint). The others are None when either log lacks the fact;
    retention differences are in shares (0.05 = 5 percentage points).
    """

    hourly_l1: float
    weekday_l1: float
    burstiness_median: float | None
    gini_events: float
    gini_writes: float | None
    session_mean_events: float
    d1: float | None
    d7: float | None
    d30: float | None

    def to_dict(self) -> dict[str, Any]:
        """The distances as JSON-ready values."""
        return dataclasses.asdict(self)


def _as_array(name: str, values: Any, dtype: Any, n: int | None) -> npt.NDArray[Any]:
    try:
        array = np.asarray(values, dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise RealismInputError(f"{name}: cannot be read as {np.dtype(dtype).name}") from exc
    if n is not None and array.size != n:
        raise RealismInputError(f"{name}: {array.size} values for {n} events")
    return array


def _validate(t: npt.NDArray[np.float64], users: int) -> None:
    if t.size == 0:
        raise RealismInputError("the log has no events")
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise RealismInputError(f"timestamp of event {int(bad[0])} is not a finite number")
    if users < 2:
        raise RealismInputError("the log has one user only; realism needs at least two")


def _dense_codes(ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], int]:
    """Codes 0..users-1 for user ids (in id order); O(n) for small non-negative ids."""
    if ids.size and ids.min() >= 0 and ids.max() < 4 * ids.size + 1024:
        present = np.bincount(ids) > 0
        mapping = np.cumsum(present) - 1
        return mapping[ids].astype(np.int64), int(present.sum())
    uniq, codes = np.unique(ids, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), int(uniq.size)


def _by_user_then_time(
    codes: npt.NDArray[np.int64], times: npt.NDArray[np.float64]
) -> npt.NDArray[np.intp]:
    """The permutation sorting events by user, then time (stable sorts; one if time-sorted)."""
    if times.size > 1 and bool(np.all(times[1:] >= times[:-1])):
        return np.argsort(codes, kind="stable")
    order = np.argsort(times, kind="stable")
    return order[np.argsort(codes[order], kind="stable")]


def _optional_median(values: npt.NDArray[np.float64]) -> float | None:
    return float(np.median(values)) if values.size else None


def _participation(
    code: npt.NDArray[np.int64],
    users: int,
    is_write: npt.NDArray[np.bool_] | None,
    is_read: npt.NDArray[np.bool_] | None,
) -> dict[str, Any]:
    counts = np.bincount(code, minlength=users)
    out: dict[str, Any] = {
        "gini_events": m.gini(counts),
        "top1_events": m.top_share(counts, 0.01),
        "top10_events": m.top_share(counts, 0.10),
        "writes": None,
        "gini_writes": None,
        "top1_writes": None,
        "top10_writes": None,
        "never_write_share": None,
        "reads_per_write": None,
    }
    if is_write is None:
        return out
    writes = np.bincount(code, weights=is_write.astype(np.float64), minlength=users)
    total = int(is_write.sum())
    reads = int(is_read.sum()) if is_read is not None else int(is_write.size - total)
    out.update(
        writes=total,
        gini_writes=m.gini(writes),
        top1_writes=m.top_share(writes, 0.01),
        top10_writes=m.top_share(writes, 0.10),
        never_write_share=float(np.mean(writes == 0)),
        reads_per_write=reads / total if total else None,
    )
    return out


def _retention(
    code: npt.NDArray[np.int64], t: npt.NDArray[np.float64], users: int, span_end_s: float
) -> dict[str, Any]:
    days, shares, cohorts = m.retention_curve(code, t, users, span_end_s)
    by_day = dict(zip(days.tolist(), shares.tolist(), strict=True))
    fit = m.power_law_fit(days, shares)
    return {
        "retention": tuple(
            (int(d), float(s), int(c)) for d, s, c in zip(days, shares, cohorts, strict=True)
        ),
        "d1": by_day.get(1),
        "d7": by_day.get(7),
        "d30": by_day.get(30),
        "retention_exponent": fit[0] if fit else None,
        "retention_r2": fit[1] if fit else None,
    }


def facts(
    user: npt.ArrayLike,
    t: npt.ArrayLike,
    offset_s: npt.ArrayLike | None = None,
    is_write: npt.ArrayLike | None = None,
    *,
    is_read: npt.ArrayLike | None = None,
    span_end_s: float | None = None,
) -> RealismFacts:
    """Measure every stylized fact of an event log (vectorised; any event order).

    Args:
        user: one id per event (any integers; only equality matters), shape (n,).
        t: event instants, float unix seconds UTC, shape (n,).
        offset_s: each event's local offset from UTC in seconds (DST included), shape
            (n,); None means UTC. Used for the hourly and weekday shares only.
        is_write: True for events that create content, shape (n,); None when actions
            are unknown (the write facts are then None).
        is_read: True for events that count as reads in ``reads_per_write``; None
            means every event that is not a write.
        span_end_s: end of the observed span (unix seconds) for retention; None means
            the last event.

    Returns:
        The facts, :class:`RealismFacts`.

    Raises:
        RealismInputError: no events, arrays of different lengths, a non-finite
            time, or fewer than two users.
    """
    times = _as_array("time", t, np.float64, None)
    n = times.size
    ids = _as_array("user", user, np.int64, n)
    offsets = None if offset_s is None else _as_array("offset", offset_s, np.float64, n)
    writes = None if is_write is None else _as_array("is_write", is_write, np.bool_, n)
    reads = None if is_read is None else _as_array("is_read", is_read, np.bool_, n)
    codes, users = _dense_codes(ids)
    _validate(times, users)
    if offsets is not None and not np.all(np.isfinite(offsets)):
        raise RealismInputError("offset: not every local offset is a finite number")
    order = _by_user_then_time(codes, times)
    code, ts = codes[order], times[order]
    return _measure(
        code,
        ts,
        users,
        None if offsets is None else offsets[order],
        None if writes is None else writes[order],
        None if reads is None else reads[order],
        float(ts.max()) if span_end_s is None else float(span_end_s),
    )


def _measure(
    code: npt.NDArray[np.int64],
    t: npt.NDArray[np.float64],
    users: int,
    offsets: npt.NDArray[np.float64] | None,
    writes: npt.NDArray[np.bool_] | None,
    reads: npt.NDArray[np.bool_] | None,
    span_end_s: float,
) -> RealismFacts:
    rhythm = m.rhythm(t if offsets is None else t + offsets)
    b, mem = m.burstiness_memory(code, t, users)
    ses = m.sessions(code, t)
    return RealismFacts(
        events=int(t.size),
        users=users,
        local_time=offsets is not None,
        span_days=float((t.max() - t.min()) / m.DAY_S),
        hourly_shares=tuple(rhythm.hourly.tolist()),
        weekday_shares=tuple(rhythm.weekday.tolist()),
        trough_peak=rhythm.trough_peak,
        weekend_weekday=rhythm.weekend_weekday,
        min_events_per_user=m.MIN_EVENTS_PER_USER,
        burst_users=int(b.size),
        burstiness_median=_optional_median(b),
        memory_median=_optional_median(mem),
        iet_slope=m.iet_density_slope(code, t),
        sessions=ses.count,
        session_mean_events=ses.mean_events,
        session_single_share=ses.single_share,
        session_mean_duration_s=ses.mean_duration_s,
        session_median_duration_s=ses.median_duration_s,
        **_participation(code, users, writes, reads),
        **_retention(code, t, users, span_end_s),
    )


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def distances(a: RealismFacts, b: RealismFacts) -> FactDistances:
    """Distances from log ``a`` to log ``b`` (signed differences are b − a)."""
    return FactDistances(
        hourly_l1=float(np.abs(np.subtract(b.hourly_shares, a.hourly_shares)).sum()),
        weekday_l1=float(np.abs(np.subtract(b.weekday_shares, a.weekday_shares)).sum()),
        burstiness_median=_delta(a.burstiness_median, b.burstiness_median),
        gini_events=b.gini_events - a.gini_events,
        gini_writes=_delta(a.gini_writes, b.gini_writes),
        session_mean_events=b.session_mean_events - a.session_mean_events,
        d1=_delta(a.d1, b.d1),
        d7=_delta(a.d7, b.d7),
        d30=_delta(a.d30, b.d30),
    )
