"""HDR histograms fed in batches and read with numpy: the same figures, a fraction of the CPU.

The ``hdrhistogram`` package records one value at a time in Python and walks
its 21,504 counters in Python for every percentile, which a load test paid on
every request (three histograms each) and on every refresh of the live table.
:class:`BatchedHistogram` keeps a ``hdrh`` :class:`HdrHistogram` (its
counters, its encoding for ``--processes``, its every method) but:

* :meth:`BatchedHistogram.record` appends the value to a list; the pending
  values go into the counters at the next read, all at once, with the index
  arithmetic of ``HdrHistogram._counts_index_for`` done by numpy;
* :meth:`BatchedHistogram.value_at_percentile` and :meth:`BatchedHistogram.mean`
  read the counters with numpy (a cumulative sum and a search) and return
  exactly what ``get_value_at_percentile`` and ``get_mean_value`` return
  (``tests/test_load_hist.py`` compares them on random values);
* :meth:`BatchedHistogram.since` is the histogram of what was recorded after a
  :meth:`BatchedHistogram.snapshot` (a history row's own interval).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = ["LOWEST_US", "MAX_LATENCY_US", "BatchedHistogram", "Counts"]

LOWEST_US = 1
MAX_LATENCY_US = 600_000_000  # 10 wall minutes, as in metrics.py
"""The longest latency a histogram holds (wall microseconds); longer ones count as this."""
SIGNIFICANT_DIGITS = 3

Counts = npt.NDArray[np.uint64]
"""A copy of a histogram's counters (:meth:`BatchedHistogram.snapshot`)."""


def _new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, MAX_LATENCY_US, SIGNIFICANT_DIGITS)


@cache
def _tables() -> tuple[npt.NDArray[np.int64], list[int]]:
    """Per counter index: the highest equivalent value (what a percentile reads) as an
    array, and the value ``get_mean_value`` weighs that counter with."""
    hist = _new()
    highest = [
        hist.get_highest_equivalent_value(hist.get_value_from_index(i))
        for i in range(hist.counts_len)
    ]
    weights = [hist._hdr_median_equiv_value(v) for v in highest]
    return np.asarray(highest, dtype=np.int64), weights


def _view(hist: HdrHistogram) -> Counts:
    """The histogram's counters as a writable numpy array (no copy)."""
    return np.frombuffer(hist.counts, dtype=np.uint64)


class BatchedHistogram:
    """Latencies in wall microseconds (1 us to 10 min, 3 significant digits).

    Attributes:
        pending: values recorded since the last read (in the counters at the next read).
    """

    __slots__ = ("_hist", "pending")

    def __init__(self, hist: HdrHistogram | None = None) -> None:
        self._hist = hist if hist is not None else _new()
        self.pending: list[int] = []

    def record(self, value_us: int) -> None:
        """Record one value (1 <= value <= :data:`MAX_LATENCY_US`; the caller clamps)."""
        self.pending.append(value_us)

    def record_corrected(self, value_us: int, expected_interval_us: int) -> int:
        """HdrHistogram's ``record_corrected_value``; returns the samples it added."""
        hist = self.flushed()
        before = hist.get_total_count()
        hist.record_corrected_value(value_us, expected_interval_us)
        return int(hist.get_total_count() - before - 1)

    def flushed(self) -> HdrHistogram:
        """The ``hdrh`` histogram with every pending value in its counters."""
        if self.pending:
            values = np.asarray(self.pending, dtype=np.int64)
            self.pending = []
            hist = self._hist
            np.add.at(_view(hist), _indexes(hist, values), np.uint64(1))
            hist.total_count += len(values)
            hist.min_value = min(hist.min_value, int(values.min()))
            hist.max_value = max(hist.max_value, int(values.max()))
        return self._hist

    @property
    def total(self) -> int:
        """Values recorded (pending ones included)."""
        return int(self._hist.get_total_count()) + len(self.pending)

    def value_at_percentile(self, percent: float) -> int:
        """``get_value_at_percentile(percent)`` (wall us; 0 when empty), computed with numpy."""
        return _value_at(self.flushed(), _view(self._hist), percent)

    def mean(self) -> float:
        """``get_mean_value()`` (wall us; 0.0 when empty), computed with numpy."""
        hist = self.flushed()
        return _mean(_view(hist), int(hist.get_total_count()))

    def snapshot(self) -> Counts:
        """A copy of the counters now (for :meth:`since`)."""
        copy: Counts = _view(self.flushed()).copy()
        return copy

    def since(self, before: Counts | None) -> BatchedHistogram:
        """The values recorded after ``before`` was taken (None: all of them), as a new
        histogram (its min and max those of its counters)."""
        now = _view(self.flushed())
        counts = now - before if before is not None else now.copy()
        interval = _new()
        _view(interval)[:] = counts
        nonzero = np.flatnonzero(counts)
        if nonzero.size:
            interval.set_internal_tacking_values(
                int(nonzero[0]), int(nonzero[-1]), int(counts.sum())
            )
        return BatchedHistogram(interval)


def _indexes(hist: HdrHistogram, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``hist._counts_index_for(v)`` for every value, vectorised (integers throughout)."""
    shcm = hist.sub_bucket_half_count_magnitude
    unit = hist.unit_magnitude
    # bit length of (v | mask): frexp's exponent, exact for integers below 2**53
    _, bits = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))
    bucket = bits.astype(np.int64) - unit - (shcm + 1)
    sub_bucket = values >> (bucket + unit)
    indexes: npt.NDArray[np.int64] = ((bucket + 1) << shcm) + sub_bucket
    indexes -= hist.sub_bucket_half_count
    return indexes


def _value_at(hist: HdrHistogram, counts: Counts, percent: float) -> int:
    total = int(hist.get_total_count())
    if total == 0:
        return 0
    wanted = max(int((min(percent, 100.0) * total / 100) + 0.5), 1)
    index = int(np.searchsorted(np.cumsum(counts), wanted, side="left"))
    if index >= len(counts):
        return 0
    if percent:
        return int(_tables()[0][index])
    return int(hist.get_lowest_equivalent_value(hist.get_value_from_index(index)))


def _mean(counts: Counts, total: int) -> float:
    if total == 0:
        return 0.0
    weights = _tables()[1]
    nonzero = np.flatnonzero(counts)
    return float(sum(int(counts[i]) * weights[i] for i in nonzero)) / total
