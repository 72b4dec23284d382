"""The realism estimators recover known parameters from synthetic logs (seeded).

Each synthetic log has an analytic answer: a Poisson process has burstiness B = 0; a
log-normal renewal process with shape s has σ/μ = sqrt(exp(s²) − 1), so
B = (σ/μ − 1)/(σ/μ + 1); Pareto counts with index α have Gini 1/(2α − 1); gaps with a
Pareto tail of index a have a density slope −(a + 1); constructed logs give exact
retention, sessions and local-time shares. Tolerances are a few sampling standard
errors, far below the distance to the answer of a wrong estimator.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_engine.realism import RealismInputError, distances, facts
from sim_engine.realism.measures import gini, power_law_fit, top_share

T0 = 1_772_409_600.0  # Monday 2026-03-02 00:00 UTC
DAY = 86_400.0


def _renewal(gaps_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One user per row of ``gaps_s``: events at T0 plus the cumulative gaps."""
    users, n = gaps_s.shape
    return np.repeat(np.arange(users), n), (T0 + np.cumsum(gaps_s, axis=1)).ravel()


def _analytic_b(s: float) -> float:
    cv = math.sqrt(math.exp(s * s) - 1.0)
    return (cv - 1.0) / (cv + 1.0)


def test_poisson_process_has_no_burstiness_and_no_memory() -> None:
    rng = np.random.default_rng(1)
    user, t = _renewal(rng.exponential(3_600.0, size=(200, 500)))
    f = facts(user, t)
    assert f.burst_users == 200
    assert f.burstiness_median is not None and abs(f.burstiness_median) < 0.02
    assert f.memory_median is not None and abs(f.memory_median) < 0.02


@pytest.mark.parametrize(("s", "events", "tolerance"), [(0.5, 2_000, 0.02), (1.0, 5_000, 0.015)])
def test_lognormal_renewal_process_gives_its_analytic_burstiness(
    s: float, events: int, tolerance: float
) -> None:
    rng = np.random.default_rng(7)
    user, t = _renewal(rng.lognormal(0.0, s, size=(100, events)) * 600.0)
    f = facts(user, t)
    assert f.burstiness_median is not None
    assert f.burstiness_median == pytest.approx(_analytic_b(s), abs=tolerance)
    assert f.memory_median is not None and abs(f.memory_median) < 0.02  # renewal: no memory


def test_correlated_gaps_have_positive_memory() -> None:
    rng = np.random.default_rng(3)
    log_gap = np.zeros((100, 1_000))
    for i in range(1, 1_000):  # AR(1) on log gaps: lag-1 correlation of log gaps 0.8
        log_gap[:, i] = 0.8 * log_gap[:, i - 1] + rng.normal(0.0, 0.6, 100)
    user, t = _renewal(np.exp(log_gap) * 600.0)
    f = facts(user, t)
    assert f.memory_median is not None and f.memory_median > 0.5
    shuffled = rng.permuted(np.exp(log_gap) * 600.0, axis=1)
    g = facts(*_renewal(shuffled))
    assert g.memory_median is not None and abs(g.memory_median) < 0.03


def test_users_under_the_minimum_have_no_burstiness() -> None:
    rng = np.random.default_rng(4)
    user, t = _renewal(rng.exponential(600.0, size=(30, 9)))  # 9 events each: too few
    f = facts(user, t)
    assert f.min_events_per_user == 10
    assert f.burst_users == 0 and f.burstiness_median is None and f.memory_median is None


def test_pareto_gaps_give_their_density_slope() -> None:
    rng = np.random.default_rng(5)
    a = 0.5  # density of gaps ∝ τ^-(a+1) = τ^-1.5 above 30 s
    user, t = _renewal((rng.pareto(a, size=(100, 2_000)) + 1.0) * 30.0)
    f = facts(user, t)
    assert f.iet_slope == pytest.approx(-(a + 1.0), abs=0.08)


@pytest.mark.parametrize("alpha", [2.0, 3.0])
def test_gini_of_pareto_values_is_analytic(alpha: float) -> None:
    rng = np.random.default_rng(11)
    values = rng.pareto(alpha, 400_000) + 1.0
    assert gini(values) == pytest.approx(1.0 / (2.0 * alpha - 1.0), abs=0.01)


def test_gini_and_top_shares_of_small_known_counts() -> None:
    assert gini(np.full(10, 3)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)  # (n-1)/n: one holds all
    counts = np.array([1] * 99 + [101])
    assert top_share(counts, 0.01) == pytest.approx(101 / 200)
    assert top_share(counts, 0.10) == pytest.approx((101 + 9) / 200)


def test_participation_facts_of_a_constructed_log() -> None:
    # 100 users: user 0 makes 101 events (50 writes), users 1..99 one read each.
    user = np.array([0] * 101 + list(range(1, 100)))
    t = T0 + np.arange(user.size) * 7.0
    is_write = np.zeros(user.size, dtype=bool)
    is_write[:50] = True
    f = facts(user, t, is_write=is_write)
    assert f.users == 100 and f.events == 200 and f.writes == 50
    assert f.top1_events == pytest.approx(101 / 200)
    assert f.gini_events == pytest.approx(gini(np.array([1] * 99 + [101])))
    assert f.never_write_share == pytest.approx(0.99)
    assert f.gini_writes == pytest.approx(0.99)  # one of 100 users holds every write
    assert f.reads_per_write == pytest.approx(150 / 50)
    g = facts(user, t, is_write=is_write, is_read=~is_write & (user > 0))
    assert g.reads_per_write == pytest.approx(99 / 50)
    assert facts(user, t).gini_writes is None and facts(user, t).reads_per_write is None


def test_retention_counts_day_windows_after_the_first_event_and_censors_the_end() -> None:
    # Cohort A: 100 users starting on day 0; 50 come back on day 1, 20 on day 7, 10 on day 30.
    # Cohort B: 100 users starting on day 35 who never come back. The span ends on day 45,
    # so B's day-30 window lies outside the log and B is left out of D30 only.
    first_a = T0 + np.arange(100) * 60.0
    first_b = T0 + 35 * DAY + np.arange(100) * 60.0
    users = [np.arange(100), np.arange(100, 200), np.arange(50), np.arange(20), np.arange(10)]
    times = [
        first_a,
        first_b,
        first_a[:50] + 1 * DAY,
        first_a[:20] + 7.5 * DAY,
        first_a[:10] + 31 * DAY - 1.0,
    ]  # the last second of day 30
    f = facts(np.concatenate(users), np.concatenate(times), span_end_s=T0 + 45 * DAY)
    assert f.d1 == pytest.approx(50 / 200)
    assert f.d7 == pytest.approx(20 / 200)
    assert f.d30 == pytest.approx(10 / 100)
    assert dict((d, c) for d, _, c in f.retention)[30] == 100


def test_an_event_exactly_one_day_after_the_first_is_day_one() -> None:
    first = T0 + np.arange(20) * 10.0
    user = np.r_[np.arange(20), np.arange(10)]
    t = np.r_[first, first[:10] + DAY]
    f = facts(user, t, span_end_s=T0 + 3 * DAY)
    assert f.d1 == pytest.approx(0.5)


def test_power_law_fit_of_a_retention_curve() -> None:
    days = np.arange(1, 61)
    exponent, r2 = power_law_fit(days, 0.4 * days**-0.6) or (0.0, 0.0)
    assert exponent == pytest.approx(0.6) and r2 == pytest.approx(1.0)
    exp_decay = power_law_fit(days, 0.5 * np.exp(-days / 5.0))
    assert exp_decay is not None and exp_decay[1] < 0.9  # an exponential is not a power law
    assert power_law_fit(days[:2], np.array([0.5, 0.3])) is None


def test_hourly_shares_are_in_local_time() -> None:
    # Users in UTC+9 act at 20:00 local (11:00 UTC); users in UTC-5 at 07:00 local (12:00 UTC).
    days = np.arange(14) * DAY
    t = np.r_[T0 + 11 * 3_600.0 + days, T0 + 12 * 3_600.0 + days]
    user = np.r_[np.zeros(14), np.ones(14)]
    offset = np.r_[np.full(14, 9 * 3_600.0), np.full(14, -5 * 3_600.0)]
    local = facts(user, t, offset_s=offset)
    assert local.hourly_shares[20] == pytest.approx(0.5)
    assert local.hourly_shares[7] == pytest.approx(0.5)
    utc = facts(user, t)
    assert utc.hourly_shares[11] == pytest.approx(0.5) and utc.hourly_shares[12] == 0.5
    assert local.local_time and not utc.local_time


def test_weekday_is_the_local_date() -> None:
    sunday_23_utc = T0 - 3_600.0  # Sunday 2026-03-01 23:00 UTC = Monday 01:00 in UTC+2
    t = sunday_23_utc + np.arange(2) * 60.0
    f = facts(np.array([1, 2]), t, offset_s=np.full(2, 7_200.0))
    assert f.weekday_shares[0] == pytest.approx(1.0)
    assert facts(np.array([1, 2]), t).weekday_shares[6] == pytest.approx(1.0)


def test_rhythm_of_a_thinned_poisson_process() -> None:
    # Eight weeks; weekend days keep 60 % of events, and hours 3..5 keep 5 %.
    rng = np.random.default_rng(9)
    t = T0 + rng.uniform(0, 56 * DAY, 400_000)
    hour = ((t - T0) % DAY) // 3_600
    weekend = (((t - T0) // DAY) % 7) >= 5
    keep = rng.random(t.size) < np.where(weekend, 0.6, 1.0) * np.where(
        (hour >= 3) & (hour <= 5), 0.05, 1.0
    )
    t = t[keep]
    f = facts(rng.integers(0, 1_000, t.size), t)
    assert f.weekend_weekday == pytest.approx(0.6, abs=0.02)
    assert f.trough_peak == pytest.approx(0.05, abs=0.01)
    assert sum(f.hourly_shares) == pytest.approx(1.0)


def test_sessions_split_at_thirty_minutes_of_inactivity() -> None:
    minute = 60.0
    # user 1: gaps 10, 10, 31 min -> sessions of 3 and 1 events; user 2: one lone event;
    # user 3: gaps of exactly 30 minutes stay in one session of 3.
    user = np.array([1, 1, 1, 1, 2, 3, 3, 3])
    t = T0 + minute * np.array([0, 10, 20, 51, 5, 0, 30, 60])
    f = facts(user, t)
    assert f.sessions == 4
    assert f.session_mean_events == pytest.approx(8 / 4)
    assert f.session_single_share == pytest.approx(2 / 4)
    assert f.session_mean_duration_s == pytest.approx((20 + 0 + 0 + 60) * minute / 4)


def test_event_order_does_not_matter() -> None:
    rng = np.random.default_rng(2)
    user, t = _renewal(rng.exponential(900.0, size=(50, 200)))
    order = rng.permutation(t.size)
    assert facts(user, t) == facts(user[order], t[order])


@pytest.mark.parametrize(
    ("user", "t", "message"),
    [
        ([], [], "no events"),
        ([1, 1, 1], [T0, T0 + 1, T0 + 2], "one user only"),
        ([1, 2], [T0, float("nan")], "event 1 is not a finite"),
        ([1, 2, 3], [T0, T0 + 1], "user: 3 values for 2 events"),
        ([1, 2], ["x", "y"], "time: cannot be read"),
    ],
)
def test_bad_arrays_raise_one_line_errors(user: list[int], t: list[float], message: str) -> None:
    with pytest.raises(RealismInputError, match=message) as info:
        facts(user, t)
    assert "\n" not in str(info.value)


def test_distances_between_two_logs() -> None:
    rng = np.random.default_rng(6)
    user, t = _renewal(rng.exponential(3_600.0, size=(100, 300)))
    a = facts(user, t)
    assert distances(a, a).hourly_l1 == 0.0 and distances(a, a).d1 == 0.0
    night = facts(np.array([1, 2]), np.array([T0, T0 + 60.0]))  # both at midnight
    noon = facts(np.array([1, 2]), np.array([T0, T0 + 60.0]) + 12 * 3_600.0)
    d = distances(night, noon)
    assert d.hourly_l1 == pytest.approx(2.0)
    assert d.d30 is None and d.burstiness_median is None
    bursty = facts(*_renewal(rng.lognormal(0.0, 1.0, size=(100, 300)) * 600.0))
    assert distances(a, bursty).burstiness_median == pytest.approx(
        (bursty.burstiness_median or 0.0) - (a.burstiness_median or 0.0)
    )


def test_large_or_negative_user_ids_give_the_same_facts() -> None:
    rng = np.random.default_rng(8)
    user, t = _renewal(rng.exponential(900.0, size=(40, 100)))
    small = facts(user, t)
    assert facts(user * 7_919 + 10**12, t) == small
    assert facts(-user - 1, t).users == small.users == 40
