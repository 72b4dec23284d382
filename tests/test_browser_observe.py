"""Browser steps in the outputs that watch a run: Prometheus, the dashboard, the report.

Records are made here as the executor makes them for a browser flow (one per step, with
a ``page``); no browser is started."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sim_engine.model.records import ActionRecord
from sim_engine.observe.dashboard import Dashboard, DashboardSnapshot, render
from sim_engine.observe.dashboard.snapshot import activity_of
from sim_engine.observe.prometheus import PrometheusExporter
from sim_engine.observe.report import read_actions
from sim_engine.observe.report.action_charts import chart_pages

T0 = 1_800_000_000.0


def step(
    name: str,
    ok: bool = True,
    at: float = T0,
    timings: tuple[float, float, float] | None = None,
    console: int = 0,
    failed: int = 0,
    **extra: Any,
) -> ActionRecord:
    ttfb, dcl, load = timings or (None, None, None)
    page = {
        "step": name,
        "url": "http://127.0.0.1:9/x",
        "ttfb_ms": ttfb,
        "dcl_ms": dcl,
        "load_ms": load,
        "console_errors": ["boom"] * console,
        "failed_requests": ["GET http://example.com/: net::ERR_BLOCKED_BY_CLIENT"] * failed,
    }
    return ActionRecord(
        "2027-01-15T08:00:00.000+00:00",
        at,
        3,
        "lurker",
        "working",
        "browse_feed",
        200 if ok else 0,
        ok,
        120.0,
        endpoint=f"PAGE {name}",
        page=page,
        **extra,
    )


RECORDS = [
    step("goto /", timings=(20.0, 60.0, 80.0)),
    step("click test_id=post-link", timings=(30.0, 90.0, 100.0), console=2),
    step("fill test_id=q"),
    step("goto http://example.com/", ok=False, failed=1),
]


def test_prometheus_counts_steps_and_observes_navigation_timing() -> None:
    exp = PrometheusExporter(0)
    for record in RECORDS:
        exp.emit(record)
    get = exp.registry.get_sample_value
    assert get("sim_engine_page_steps_total", {"ok": "true"}) == 3
    assert get("sim_engine_page_steps_total", {"ok": "false"}) == 1
    assert get("sim_engine_page_timing_seconds_count", {"phase": "load"}) == 2
    assert get("sim_engine_page_timing_seconds_sum", {"phase": "load"}) == 0.18
    assert get("sim_engine_page_timing_seconds_bucket", {"phase": "ttfb", "le": "0.025"}) == 1
    assert get("sim_engine_page_timing_seconds_count", {"phase": "dom_content_loaded"}) == 2
    assert get("sim_engine_page_console_errors_total") == 2
    assert get("sim_engine_page_failed_requests_total") == 1
    # steps are requests too, by their PAGE endpoint
    labels = {"action": "browse_feed", "endpoint": "PAGE goto /", "status": "200"}
    assert get("sim_engine_requests_total", labels) == 1


def test_api_records_touch_no_page_metric() -> None:
    exp = PrometheusExporter(0)
    exp.emit(
        ActionRecord(
            "2027-01-15T08:00:00.000+00:00",
            T0,
            1,
            "p",
            "working",
            "browse_feed",
            200,
            True,
            3.0,
            endpoint="GET /posts",
        )
    )
    get = exp.registry.get_sample_value
    assert get("sim_engine_page_steps_total", {"ok": "true"}) == 0
    assert get("sim_engine_page_timing_seconds_count", {"phase": "load"}) == 0


def test_the_dashboard_shows_steps_and_their_load_time() -> None:
    dash = Dashboard(Console(file=StringIO()))
    assert dash.page_load_ms() is None
    for record in RECORDS:
        dash.emit(record)
    assert dash.page_steps == 4 and dash.actions == 4
    assert dash.page_load_ms() == pytest.approx(80.0, rel=0.01)  # HDR: the lower middle value
    what = activity_of(RECORDS[1])
    assert what is not None and what.what.endswith("click test_id=post-link")
    console = Console(file=StringIO(), width=120, color_system=None)
    snap = DashboardSnapshot(sim_now=T0, start_s=T0, page_steps=4, page_load_ms=80.0)
    console.print(render(snap))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert any("page steps" in line and " 4 " in line for line in out.splitlines())
    assert any(" 80 ms " in line for line in out.splitlines())
    console = Console(file=StringIO(), width=120, color_system=None)
    console.print(render(DashboardSnapshot(sim_now=T0, start_s=T0)))
    assert "page steps" not in console.file.getvalue()  # type: ignore[attr-defined]


def test_the_report_reads_page_timings_per_hour(tmp_path: Path) -> None:
    path = tmp_path / "actions.jsonl"
    later = step("goto /popular", at=T0 + 3600, timings=(10.0, 40.0, 50.0))
    lines = [json.dumps(r.to_dict()) for r in [*RECORDS, later]]
    api = ActionRecord(
        "2027-01-15T08:00:00.000+00:00", T0, 1, "p", "working", "read_post", 200, True, 3.0
    )
    lines.append(json.dumps(api.to_dict()))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = read_actions(path)
    assert stats.actions == 6 and stats.pages == 5
    hour = int(T0 // 3600)
    assert set(stats.page_timing["load"]) == {hour, hour + 1}
    p50, _p95, p99 = stats.page_timing["load"][hour]
    assert 79 <= p50 <= 81 and 99 <= p99 <= 101
    assert stats.page_timing["ttfb"][hour + 1][0] == pytest.approx(10.0, rel=0.01)
    assert stats.page_problems == {"console errors": 2, "failed requests": 1}
    _fig, note = chart_pages(stats)
    assert note.startswith("5 browser steps; 2 console errors, 1 failed requests")
    empty = tmp_path / "api.jsonl"
    empty.write_text(json.dumps(api.to_dict()) + "\n", encoding="utf-8")
    assert chart_pages(read_actions(empty))[1].startswith("No browser steps in this run")


def test_a_flow_is_one_analytics_event_from_its_first_step() -> None:
    from sim_engine.engine.executor import page_records
    from sim_engine.model.analytics import AnalyticsMapper, AnalyticsUser
    from sim_engine.model.analytics_spec import AnalyticsSpec
    from sim_engine.model.population import IdentityFactory
    from sim_engine.model.records import ActionRequest, Outcome, PageStep

    user = IdentityFactory(1, [1.0], [("UTC", 1.0)], "x.test").create(T0, persona=0)
    pages = tuple(
        PageStep(f"goto /{i}", f"http://127.0.0.1:9/{i}", 200, True, 5.0) for i in range(3)
    )
    request = ActionRequest("browse_feed", 1, T0, "2027-01-15T08:00:00+00:00")
    records = page_records(
        user, "lurker", "working", request, Outcome(200, True, 15.0, pages=pages)
    )
    assert [r.page["index"] for r in records if r.page is not None] == [0, 1, 2]
    mapper = AnalyticsMapper(AnalyticsSpec())
    events = [mapper.event(r, AnalyticsUser(1, "lurker")) for r in records]
    assert events[0] is not None and events[1:] == [None, None]
