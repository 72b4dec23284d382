"""One self-contained HTML report of a finished run (``sim-engine report DIR``).

Reads a run directory (``metrics.json``, ``actions.jsonl``, and when present
``daily_metrics.json`` and ``users.jsonl``) and writes ``DIR/report.html``: a
header with the run's facts and Plotly charts. The plotly.js bundle is inlined
once in the page, so the file works offline and can be mailed or archived.

``actions.jsonl`` is read in one streaming pass with memory bounded by the
number of users and simulated hours, never by the number of actions: counts are
aggregated per simulated hour, latency percentiles per simulated hour come from
HDR histograms (only a window of recent hours is kept open; older ones are kept
compressed), and session lengths from one open session per user.

The modules: :mod:`.read` (the run's files, :func:`read_actions`), :mod:`.facts`
(the header), :mod:`.plots`, :mod:`.action_charts` and :mod:`.run_charts` (the
charts), :mod:`.page` (the page, :func:`build_report`, :func:`write_report`).

An edge module: the core never imports it; the CLI imports it lazily.
"""

from __future__ import annotations

from sim_engine.observe.report.page import CHART_TITLES, REPORT_NAME, build_report, write_report
from sim_engine.observe.report.read import ERROR_CATEGORIES as ERROR_CATEGORIES
from sim_engine.observe.report.read import ActionStats as ActionStats
from sim_engine.observe.report.read import NotARunDirError, ReportError
from sim_engine.observe.report.read import error_category as error_category
from sim_engine.observe.report.read import read_actions as read_actions

__all__ = [
    "CHART_TITLES",
    "REPORT_NAME",
    "NotARunDirError",
    "ReportError",
    "build_report",
    "write_report",
]
