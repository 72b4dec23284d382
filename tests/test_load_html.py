"""``load --html FILE``: the report renders the test's own figures."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from helpers import sim_engine
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.load_html import build_load_html
from sim_engine.runs.load_thresholds import parse_threshold
from sim_engine.runs.loadtest import LoadOptions, run_load


class _Tables(HTMLParser):
    """Every table of the page: section id -> rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables.setdefault(self._section, []).append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _figures(page: str, chart: str) -> list[dict[str, Any]]:
    """The traces Plotly draws in ``chart-<chart>``."""
    start = page.index(f'"chart-{chart}"')
    call = page.index("Plotly.newPlot(", start)
    data = page[call:].split(",", 1)[1]
    traces, _ = json.JSONDecoder().raw_decode(data.strip())
    return list(traces)


def test_the_report_shows_endpoints_verdicts_and_percentiles_over_time(tmp_path: Path) -> None:
    rules = (parse_threshold("p99<60s"), parse_threshold("GET /posts:requests>1000000"))
    options = LoadOptions(
        default_scenario(), users=4, min_requests=25, max_requests=25, delay_min_ms=20.0,
        delay_max_ms=40.0, target_url="inprocess", thresholds=rules, progress_every_s=0.3,
    )  # fmt: skip
    result = run_load(options)
    assert len(result.timeline) >= 2  # sampled while it ran, and at the end
    page = build_load_html(result)
    parser = _Tables()
    parser.feed(page)
    verdicts = {row[0]: row[1] for row in parser.tables["thresholds"][1:]}
    assert verdicts == {"p99<60s": "passed", "GET /posts:requests>1000000": "FAILED"}
    endpoints = {row[0]: row for row in parser.tables["endpoints"][1:]}
    assert int(endpoints["all"][1]) == result.requests == 100
    for name, tally in result.by_endpoint.items():
        assert int(endpoints[name][1]) == tally.requests
        assert endpoints[name][5] == f"{tally.percentiles()['p50']:.1f}"
    assert "sign_up" in endpoints and "log_in" in endpoints  # the setup table
    latency = _figures(page, "latency")
    assert [t["name"] for t in latency] == ["p50", "p95", "p99"]
    sampled = [p.get("p95") for p in result.timeline]
    assert latency[1]["y"] == sampled and any(v is not None for v in sampled)
    rates = _figures(page, "rates")
    assert sum(rates[0]["y"]) > 0
    assert "Plotly.newPlot" in page and re.search(r"plotly\.js v\d", page)  # inlined, offline


def test_cli_writes_the_report_even_when_a_threshold_fails(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "load.html"
    proc = sim_engine(
        "load", "-q", "--target", "inprocess", "--users", "2", "--min-request-count", "3",
        "--max-request-count", "3", "--delay-min", "0", "--delay-max", "1",
        "--threshold", "requests>999", "--html", str(report),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the threshold failed...
    assert f"html: {report}" in proc.stdout
    page = report.read_text("utf-8")  # ...and the report was written first
    assert "requests&gt;999" in page and "FAILED" in page
