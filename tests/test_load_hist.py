"""Batched, numpy-read histograms give exactly the figures of ``hdrh``'s own methods."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from sim_engine.runs.load_hist import MAX_LATENCY_US, BatchedHistogram
from sim_engine.runs.load_stats import LoadStats, Tally
from sim_engine.runs.load_workers import merge_into, tally_state

EDGES = [1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 65_535, 65_536, MAX_LATENCY_US]
PERCENTS = (0, 0.5, 1, 50, 66, 75, 90, 95, 99, 99.9, 99.99, 100)


def _values(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    drawn = [int(rng.lognormvariate(8, 2.5)) for _ in range(n)]
    return [max(1, min(MAX_LATENCY_US, v)) for v in drawn] + EDGES


def _reference(values: list[int]) -> HdrHistogram:
    hist = HdrHistogram(1, MAX_LATENCY_US, 3)
    for v in values:
        hist.record_value(v)
    return hist


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_percentiles_and_mean_are_hdrhs(seed: int) -> None:
    values = _values(seed, 20_000)
    ref, fast = _reference(values), BatchedHistogram()
    for v in values[:7_000]:
        fast.record(v)
    assert fast.value_at_percentile(50) == _reference(values[:7_000]).get_value_at_percentile(50)
    for v in values[7_000:]:  # a second batch on top of the first
        fast.record(v)
    assert fast.total == len(values)
    hist = fast.flushed()
    assert list(hist.counts) == list(ref.counts)
    assert hist.get_min_value() == ref.get_min_value()
    assert hist.get_max_value() == ref.get_max_value()
    for p in PERCENTS:
        assert fast.value_at_percentile(p) == ref.get_value_at_percentile(p), p
    assert fast.mean() == ref.get_mean_value()


def test_an_empty_histogram_reads_zero() -> None:
    fast = BatchedHistogram()
    assert (fast.total, fast.value_at_percentile(99), fast.mean()) == (0, 0, 0.0)
    assert fast.since(None).total == 0


def test_since_is_the_histogram_of_the_interval() -> None:
    before_values, after_values = _values(4, 3_000), _values(5, 2_000)
    fast = BatchedHistogram()
    for v in before_values:
        fast.record(v)
    mark = fast.snapshot()
    for v in after_values:
        fast.record(v)
    interval, ref = fast.since(mark), _reference(after_values)
    assert interval.total == len(after_values)
    for p in PERCENTS:
        assert interval.value_at_percentile(p) == ref.get_value_at_percentile(p), p
    assert interval.mean() == ref.get_mean_value()
    got = interval.flushed()
    assert (got.get_min_value(), got.get_max_value()) == (ref.get_min_value(), ref.get_max_value())
    assert fast.since(fast.snapshot()).total == 0


def test_corrected_values_and_merged_workers_stay_exact() -> None:
    fast, ref = BatchedHistogram(), HdrHistogram(1, MAX_LATENCY_US, 3)
    for v in (500, 900, 12_000, 40_000, 700):
        fast.record(v)
        ref.record_value(v)
    added = fast.record_corrected(250_000, 50_000)
    ref.record_corrected_value(250_000, 50_000)
    assert added == 4  # 200, 150, 100 and 50 ms held back behind the 250 ms answer
    assert list(fast.flushed().counts) == list(ref.counts)
    # a worker's tally, encoded and merged as --processes does
    worker, stats = Tally(), LoadStats()
    for v in _values(6, 500):
        worker.hist.record(v)
        worker.requests += 1
    state = {"total": tally_state(worker), "by_action": {}, "by_endpoint": {}, "setup": {}}
    merge_into(stats, {**state, "by_status": {}})
    parent = stats.total
    assert parent.latency.get_total_count() == 513
    assert parent.hist.value_at_percentile(95) == worker.hist.value_at_percentile(95)
