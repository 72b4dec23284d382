"""The one set of figures of a load test (or a run's thresholds): tallies fed by records.

:class:`Tally` counts one kind of request (an action, an endpoint, or all of
them): requests, failures, deliberate errors, errors by kind and an HDR
histogram of latencies. :class:`LoadStats` is the sink that keeps them, by
action and by endpoint; the summary, ``load.json``, the live table, the CSV
files and the thresholds all read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from sim_engine.model.records import ActionRecord, Record
from sim_engine.runs.load_hist import MAX_LATENCY_US, BatchedHistogram

__all__ = ["ERROR_KINDS", "LoadStats", "Tally", "error_kind", "latency_us"]

MAX_MESSAGES = 100
"""Distinct error messages a tally keeps (bounded memory whatever the target answers)."""

SETUP_ACTIONS = ("sign_up", "log_in")
"""Actions a load test counts apart, as ``setup``."""

ERROR_KINDS = (
    "refused",
    "dns",
    "tls",
    "timeout",
    "disconnected",
    "too_large",
    "garbage_body",
    "skipped",
    "other",
    "http_3xx",
    "http_4xx",
    "http_5xx",
)
"""The kinds :func:`error_kind` sorts a failed request into."""

_NETWORK_PATTERNS = (  # in this order: aiohttp says "ssl:default" in every connect error
    ("dns", ("name or service not known", "nodename nor servname", "name resolution", "dns")),
    ("refused", ("connect call failed", "connection refused")),
    ("tls", ("certificate", "[ssl", "sslerror", "ssl error", "sslcert", "tls", "ssl:true")),
    ("timeout", ("timeout", "timed out")),
    ("too_large", ("response too large",)),
    ("skipped", ("circuit open", "backed off", "rate limited")),
    ("disconnected", ("disconnected", "reset by peer", "connection reset", "broken pipe")),
    ("disconnected", ("not enough data to satisfy content length", "end of file before message")),
    ("refused", ("cannot connect",)),
)


def error_kind(status: int, error: str | None) -> str:
    """Sort a failed request into one of :data:`ERROR_KINDS`.

    Args:
        status: the HTTP status (0: no answer).
        error: the record's one-line error (may be None).

    Returns:
        ``http_4xx`` etc. for an HTTP error status; for no answer the network kind
        read from the error text (``refused``, ``dns``, ``tls``, ``timeout``...);
        ``garbage_body`` for a success status whose body could not be used.
    """
    if status >= 300:
        return f"http_{status // 100}xx" if status < 600 else "other"
    text = (error or "").lower()
    if status > 0:
        return "garbage_body"
    for kind, needles in _NETWORK_PATTERNS:
        if any(n in text for n in needles):
            return kind
    return "other"


@dataclass
class Tally:
    """Counts and latencies (wall milliseconds, HDR histogram) of one kind of request.

    Attributes:
        requests: requests recorded.
        failed: requests that failed (deliberate errors excluded).
        intended: deliberate errors (the ``api`` section's error simulation).
        errors: failed requests by :func:`error_kind`.
        messages: failed requests by error (``HTTP 503``, or the network error's
            text), at most :data:`MAX_MESSAGES` distinct ones (then ``other errors``).
        hist: the latencies, wall microseconds (3 significant digits), recorded in
            batches (:class:`~sim_engine.runs.load_hist.BatchedHistogram`).
        corrected: samples the coordinated-omission correction added (open model).
    """

    requests: int = 0
    failed: int = 0
    intended: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    hist: BatchedHistogram = field(default_factory=BatchedHistogram)
    corrected: int = 0

    @property
    def latency(self) -> HdrHistogram:
        """The HDR histogram (``hdrh``), every latency recorded so far in it."""
        return self.hist.flushed()

    def add(self, record: ActionRecord, expected_interval_us: int = 0) -> None:
        """Count one request's record (its latency in wall milliseconds).

        Args:
            record: the request's record.
            expected_interval_us: the open model's interval between one virtual
                user's requests (wall microseconds): a latency longer than it is
                also recorded as the requests it held up would have seen
                (HdrHistogram's ``record_corrected_value``); 0: no correction.
        """
        self.count(record, latency_us(record), expected_interval_us)

    def count(self, record: ActionRecord, us: int, expected_interval_us: int = 0) -> None:
        """:meth:`add` with the latency already in clamped wall microseconds (``us``, from
        :func:`latency_us`: one conversion for the tallies a record goes to)."""
        self.requests += 1
        if record.intended:
            self.intended += 1
        elif not record.ok:
            self.failed += 1
            self.errors[error_kind(record.status, record.error)] += 1
            message = f"HTTP {record.status}" if record.status else (record.error or "no answer")
            if message not in self.messages and len(self.messages) >= MAX_MESSAGES:
                message = "other errors"
            self.messages[message] += 1
        if 0 < expected_interval_us < us:
            self.corrected += self.hist.record_corrected(us, expected_interval_us)
        else:
            self.hist.record(us)

    def percentile_ms(self, percent: float) -> float:
        """The latency at ``percent`` (0-100), wall ms, corrected samples included (0: empty)."""
        if self.requests == 0:
            return 0.0
        return float(self.hist.value_at_percentile(percent)) / 1000

    def percentiles(self) -> dict[str, float]:
        """Return ``p50``, ``p95``, ``p99``, ``mean``, ``max`` latency (wall ms; 0 when empty)."""
        if self.requests == 0:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
        return {
            "p50": round(self.percentile_ms(50), 3),
            "p95": round(self.percentile_ms(95), 3),
            "p99": round(self.percentile_ms(99), 3),
            "mean": round(self.hist.mean() / 1000, 3),
            "max": round(self.latency.get_max_value() / 1000, 3),
        }

    @property
    def error_rate(self) -> float:
        """Failed share of the requests, deliberate errors left out (0.0 with none)."""
        real = self.requests - self.intended
        return self.failed / real if real > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready counts and percentiles (a row of ``load.json``)."""
        row: dict[str, Any] = {
            "requests": self.requests,
            "failed": self.failed,
            "intended_errors": self.intended,
            "latency_ms": self.percentiles(),
        }
        if self.errors:
            row["errors"] = dict(sorted(self.errors.items()))
        return row


@dataclass
class LoadStats:
    """A sink of action records: tallies overall, by action and by endpoint.

    Setup actions (sign-up, log-in) go to :attr:`setup` only when ``split_setup``
    (a load test); a run counts them like any action.

    Attributes:
        split_setup: keep sign-up and log-in apart from the requests.
        interval_us: the coordinated-omission interval at a record's simulated time
            (wall microseconds; see :meth:`Tally.add`); None: no correction.
        total: every request (setup excluded when split).
        by_action: action name -> tally.
        by_endpoint: ``METHOD /path/{template}`` (the action name when the target
            reports no endpoint) -> tally.
        setup: sign-up and log-in when split.
        by_status: HTTP status -> count (0: no answer).
    """

    split_setup: bool = True
    interval_us: Callable[[float], int] | None = None
    total: Tally = field(default_factory=Tally)
    by_action: dict[str, Tally] = field(default_factory=dict)
    by_endpoint: dict[str, Tally] = field(default_factory=dict)
    setup: dict[str, Tally] = field(default_factory=dict)
    by_status: Counter[int] = field(default_factory=Counter)

    def emit(self, record: Record) -> None:
        """Count an action record (other records are ignored)."""
        if not isinstance(record, ActionRecord):
            return
        action = record.action
        if self.split_setup and action in SETUP_ACTIONS:
            _tally(self.setup, action).add(record)
            return
        interval = 0 if self.interval_us is None else self.interval_us(record.sim_ts)
        us = latency_us(record)  # once for the three tallies
        _tally(self.by_action, action).count(record, us, interval)
        _tally(self.by_endpoint, record.endpoint or action).count(record, us, interval)
        self.total.count(record, us, interval)
        self.by_status[record.status] += 1

    def close(self) -> None:
        """Nothing to flush."""


def latency_us(record: ActionRecord) -> int:
    """The record's latency in whole wall microseconds, clamped to 1..``MAX_LATENCY_US``."""
    return max(1, min(int(record.latency_ms * 1000), MAX_LATENCY_US))


def _tally(table: dict[str, Tally], key: str) -> Tally:
    tally = table.get(key)
    if tally is None:
        tally = table[key] = Tally()
    return tally
