"""Prometheus metrics of browser steps (the ``page`` of an action record, docs/browser.md).

:class:`PageMetrics` defines its metrics in the exporter's registry and observes each
browser step's Navigation Timing, console errors and failed requests; the exporter
(:mod:`sim_engine.observe.prometheus`) calls :meth:`PageMetrics.observe` for records
that have a ``page``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PAGE_PHASES", "PAGE_TIMING_BUCKETS_S", "PageMetrics"]

PAGE_PHASES = {"ttfb": "ttfb_ms", "dom_content_loaded": "dcl_ms", "load": "load_ms"}
"""The ``phase`` label -> the ``page`` field it reads (wall milliseconds)."""

PAGE_TIMING_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Buckets of ``sim_engine_page_timing_seconds`` (upper bounds, wall seconds)."""


class PageMetrics:
    """The browser steps' metrics in ``registry``.

    Metrics: ``sim_engine_page_timing_seconds{phase}`` (histogram: time to first byte,
    DOMContentLoaded and load of each document a step opened, wall seconds from the
    navigation's start), ``sim_engine_page_steps_total{ok}``,
    ``sim_engine_page_console_errors_total`` and ``sim_engine_page_failed_requests_total``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._timing = Histogram(
            "sim_engine_page_timing_seconds",
            "Navigation Timing of documents browser steps opened (wall seconds from the "
            "navigation's start), by phase: ttfb, dom_content_loaded, load.",
            ["phase"],
            buckets=PAGE_TIMING_BUCKETS_S,
            registry=registry,
        )
        self._phases = {phase: self._timing.labels(phase) for phase in PAGE_PHASES}
        steps = Counter(
            "sim_engine_page_steps",
            "Browser steps (page views, clicks, fills...), by success.",
            ["ok"],
            registry=registry,
        )
        self._steps = {True: steps.labels("true"), False: steps.labels("false")}
        self._console = Counter(
            "sim_engine_page_console_errors",
            "console.error messages and uncaught errors seen by browser steps.",
            registry=registry,
        )
        self._failed = Counter(
            "sim_engine_page_failed_requests",
            "Requests of browser pages that failed (network error, blocked host) or "
            "answered 400 or more.",
            registry=registry,
        )

    def observe(self, page: Mapping[str, Any], ok: bool) -> None:
        """Count one browser step (its record's ``page`` and ``ok``)."""
        self._steps[ok].inc()
        for phase, key in PAGE_PHASES.items():
            value = page.get(key)
            if value is not None:
                self._phases[phase].observe(float(value) / 1000.0)
        if page.get("console_errors"):
            self._console.inc(len(page["console_errors"]))
        if page.get("failed_requests"):
            self._failed.inc(len(page["failed_requests"]))
