"""The HTML report (``sim-engine report DIR``, ``run --html``): content, errors, and an
end-to-end check that headless Chromium really draws every chart."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim_engine.cli.main import cli
from sim_engine.observe.report import (
    CHART_TITLES,
    NotARunDirError,
    ReportError,
    build_report,
    error_category,
    read_actions,
    write_report,
)

REPORT_FILES = ("metrics.json", "actions.jsonl", "daily_metrics.json", "users.jsonl")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run (1 simulated day, 40 users, in-process), made with ``run --html``."""
    out = tmp_path_factory.mktemp("report") / "run"
    cmd = [sys.executable, "-m", "sim_engine", "run", "--target", "inprocess", "--speed", "max"]
    cmd += ["--duration", "1d", "--users", "40", "--seed", "3", "--out", str(out), "-q", "--html"]
    cmd += ["--start", "2026-03-02T00:00:00Z"]  # a fixed simulated start: the same run every time
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'report.html'}" in proc.stdout
    return out


@pytest.fixture
def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the run's report inputs, free to be damaged."""
    dest = tmp_path / "copy"
    dest.mkdir()
    for name in REPORT_FILES:
        shutil.copy(run_dir / name, dest / name)
    return dest


def _page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


# -- content -----------------------------------------------------------------------------------


def test_run_html_writes_a_self_contained_page(run_dir: Path) -> None:
    page = _page(run_dir)
    assert page.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external script, stylesheet or image.
    assert not re.search(r"<script[^>]+src=", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", page, re.IGNORECASE)
    assert not re.search(r"<img[^>]+src=[\"']?https?:", page, re.IGNORECASE)
    # plotly.js is inlined exactly once, however many charts there are.
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1
    assert page.count("Plotly.newPlot(") == len(CHART_TITLES)


def test_page_has_every_chart_and_the_run_facts(run_dir: Path) -> None:
    page = _page(run_dir)
    for chart_id, title in CHART_TITLES.items():
        assert f"<h2>{html.escape(title)}</h2>" in page, title
        assert f'id="chart-{chart_id}"' in page, chart_id
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert f"{metrics['summary']['actions']:,}" in page
    assert "<th>Seed</th><td>3</td>" in page
    assert "<th>Target</th><td>inprocess</td>" in page
    top = metrics["top_posters"][0]
    assert html.escape(top["name"]) in page
    assert "Not available" not in page  # a 1-day run has one day of lifecycle history


def test_report_command_writes_and_prints_the_path(copy_run: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(copy_run)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(copy_run / "report.html")
    assert (copy_run / "report.html").stat().st_size > 1_000_000  # plotly.js inlined


def test_actions_are_aggregated_in_one_pass(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    stats = read_actions(run_dir / "actions.jsonl")
    assert stats.actions == metrics["summary"]["actions"]
    by_type: dict[str, int] = {}
    for counts in stats.per_hour.values():
        for action, n in counts.items():
            by_type[action] = by_type.get(action, 0) + n
    assert by_type == metrics["summary"]["actions_by_type"]
    assert sum(sum(c.values()) for c in stats.rhythm.values()) == stats.actions
    assert all(0 <= h < 24 for c in stats.rhythm.values() for h in c)
    assert stats.latency and all(p50 <= p95 <= p99 for p50, p95, p99 in stats.latency.values())
    # Session lengths count the actions after sign-up and log-in, per (user, session).
    sessions: dict[tuple[int, int], int] = {}
    with (run_dir / "actions.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["action"] in ("sign_up", "log_in") or rec["state"] == "cleanup":
                continue
            key = (rec["user_id"], rec["session_id"])
            sessions[key] = sessions.get(key, 0) + 1
    expected: dict[int, int] = {}
    for n in sessions.values():
        expected[n] = expected.get(n, 0) + 1
    assert dict(stats.session_lengths) == expected


def test_latency_late_records_reopen_their_hour(tmp_path: Path) -> None:
    """Hours far behind the newest are compressed, and reopened by a late record."""
    path = tmp_path / "actions.jsonl"
    base = 1_800_000_000 // 3600 * 3600
    lines = [_action(base + h * 3600, latency_ms=1.0) for h in range(100)]
    lines.append(_action(base, latency_ms=500.0))  # hour 0 again, 99 hours late
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = read_actions(path)
    assert len(stats.latency) == 100
    p50, _p95, p99 = stats.latency[base // 3600]
    assert p50 == pytest.approx(1.0, rel=0.02)
    assert p99 == pytest.approx(500.0, rel=0.02)


def test_errors_are_grouped_by_cause(copy_run: Path) -> None:
    ts = json.loads((copy_run / "actions.jsonl").read_text().splitlines()[-1])["sim_ts"]
    failures = [
        _action(ts, ok=False, status=0, error="timeout"),
        _action(ts, ok=False, status=0, error="Cannot connect to host"),
        _action(ts, ok=False, status=404, error="HTTP 404: nope"),
        _action(ts, ok=False, status=503, error="HTTP 503: busy"),
        _action(ts, ok=False, status=503, error="HTTP 503: busy"),
        _action(ts, ok=False, status=200, error="bad answer (not JSON): <html>"),
        _action(ts, ok=False, status=0, error="circuit open", skipped=True),
    ]
    hour = int(ts // 3600)
    run_before = read_actions(copy_run / "actions.jsonl").errors_per_hour
    before = dict(run_before.get(hour, {}))
    # The run's own failures (reads of posts deleted with a churned author: 404s) count too.
    in_run = Counter[str]()
    for hour_errors in run_before.values():
        in_run.update(hour_errors)
    with (copy_run / "actions.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(failures) + "\n")
    stats = read_actions(copy_run / "actions.jsonl")
    errors = dict(stats.errors_per_hour[hour])
    added = {k: errors.get(k, 0) - before.get(k, 0) for k in errors}
    assert {k: v for k, v in added.items() if v} == {
        "timeout": 1,
        "connection": 1,
        "4xx": 1,
        "5xx": 2,
        "bad answer": 1,
        "skipped": 1,
    }
    page = build_report(copy_run)
    totals = in_run + Counter(added)
    order = ("timeout", "connection", "4xx", "5xx", "bad answer", "skipped")
    assert ", ".join(f"{c} {totals[c]:,}" for c in order) in page, dict(in_run)


@pytest.mark.parametrize(
    ("status", "error", "skipped", "category"),
    [
        (0, "timeout", False, "timeout"),
        (0, "Connection timed out", False, "timeout"),
        (0, "Connection refused", False, "connection"),
        (0, None, True, "skipped"),
        (429, "HTTP 429: slow down", False, "4xx"),
        (500, "HTTP 500: oops", False, "5xx"),
        (302, "HTTP 302: moved", False, "bad answer"),
    ],
)
def test_error_category(status: int, error: str | None, skipped: bool, category: str) -> None:
    assert error_category(status, error, skipped) == category


def test_no_secret_from_the_target_url(copy_run: Path) -> None:
    path = copy_run / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    metrics["run"]["target"] = "https://bot:hunter2@api.example.com:8443/v1?token=abc123#x"
    path.write_text(json.dumps(metrics), encoding="utf-8")
    page = build_report(copy_run)
    assert "https://api.example.com:8443/v1" in page
    for secret in ("hunter2", "bot:", "abc123"):
        assert secret not in page


def test_missing_daily_history_is_said_in_the_page(copy_run: Path) -> None:
    (copy_run / "daily_metrics.json").unlink()
    (copy_run / "users.jsonl").unlink()  # optional too: authors shown by id
    page = build_report(copy_run)
    assert page.count("Not available: this run directory has no daily_metrics.json.") == 2
    (copy_run / "daily_metrics.json").write_text("[]\n", encoding="utf-8")
    assert "daily_metrics.json is empty" in build_report(copy_run)


# -- bad input ---------------------------------------------------------------------------------


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(NotARunDirError, match="no such directory"):
        write_report(tmp_path / "missing")
    with pytest.raises(NotARunDirError, match="not a run directory"):
        write_report(tmp_path)
    runner = CliRunner()
    for target in (tmp_path / "missing", tmp_path):
        result = runner.invoke(cli, ["report", str(target)])
        assert result.exit_code == 2
        assert result.output.count("\n") == 1
        assert result.output.startswith("sim-engine: error: ")
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("metrics.json", "{not json", r"metrics\.json: not valid JSON"),
        ("metrics.json", '{"summary": {}}', r"metrics\.json: missing or malformed 'users_over"),
        ("metrics.json", None, r"metrics\.json: missing"),
        ("actions.jsonl", None, r"actions\.jsonl: missing"),
        ("actions.jsonl", "APPEND:{truncated", r"actions\.jsonl: line \d+ is not valid JSON"),
        ("actions.jsonl", 'APPEND:{"sim_ts": 1.0}', r"actions\.jsonl: line \d+ has no 'action'"),
        ("actions.jsonl", "APPEND:[1, 2]", r"actions\.jsonl: line \d+ is not a JSON object"),
        ("daily_metrics.json", '{"date": 1}', r"daily_metrics\.json: not a list of days"),
        ("daily_metrics.json", "[{}]", r"daily_metrics\.json: day 1 has no valid 'start'"),
        ("users.jsonl", "\xff\xfe", r"users\.jsonl: line 1 is not valid JSON"),
    ],
)
def test_bad_file_is_named_in_one_line(
    copy_run: Path, name: str, content: str | None, message: str
) -> None:
    path = copy_run / name
    if content is None:
        path.unlink()
    elif content.startswith("APPEND:"):
        with path.open("a", encoding="utf-8") as fh:
            fh.write(content.removeprefix("APPEND:") + "\n")
    elif content == "\xff\xfe":
        path.write_bytes(b"\xff\xfe{}\n")
    else:
        path.write_text(content, encoding="utf-8")
    if name == "users.jsonl":  # only read for the authors of the most viewed posts
        metrics = json.loads((copy_run / "metrics.json").read_text(encoding="utf-8"))
        assert any(p["author_user_id"] is not None for p in metrics["top_viewed_posts"])
    with pytest.raises(ReportError, match=message) as caught:
        write_report(copy_run)
    assert not isinstance(caught.value, NotARunDirError)
    assert "\n" not in str(caught.value)
    result = CliRunner().invoke(cli, ["report", str(copy_run)])
    assert result.exit_code == 1
    assert re.search(message, result.output)
    assert result.output.count("\n") == 1
    assert not (copy_run / "report.html").exists()


# -- end to end: headless Chromium draws the charts ---------------------------------------------


def _chromium() -> str:
    """Chromium's path (tests install nothing: ``scripts/test-deps.sh`` installs it)."""
    override = os.environ.get("SIM_ENGINE_CHROMIUM")
    if override:
        return override
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "the report's end-to-end test needs headless Chromium: run `bash scripts/test-deps.sh` "
        "(Debian's package; .ci/run does), or set SIM_ENGINE_CHROMIUM to a Chromium binary"
    )


def _chromium_cmd(chromium: str, profile: Path) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
    ]


_BAR = re.compile(r'<g class="point"><path d="M[\d.]+,[\d.]+[VHL]')
_LINE = re.compile(r'<path class="js-line" d="M[\d.]+,[\d.]+L')


def test_chromium_draws_every_chart(run_dir: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    cmd = _chromium_cmd(chromium, tmp_path / "profile")
    cmd += ["--dump-dom", (run_dir / "report.html").resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert proc.returncode == 0 and "</html>" in dom, proc.stderr[-2000:]
    starts = sorted((dom.index(f'id="chart-{cid}"'), cid) for cid in CHART_TITLES)
    assert [cid for _, cid in starts] == list(CHART_TITLES)
    assert dom.count('class="main-svg"') >= len(CHART_TITLES)
    for (start, chart_id), (end, _) in zip(starts, [*starts[1:], (len(dom), "")], strict=True):
        part = dom[start:end]
        assert 'class="main-svg"' in part, f"{chart_id}: no plot drawn"
        assert re.search(r'<g class="trace (bars|scatter)', part), f"{chart_id}: no trace"
        assert _BAR.search(part) or _LINE.search(part), f"{chart_id}: traces drew nothing"


def _action(
    sim_ts: float,
    *,
    ok: bool = True,
    status: int = 200,
    latency_ms: float = 1.0,
    error: str | None = None,
    skipped: bool = False,
) -> str:
    from datetime import datetime, timezone

    iso = datetime.fromtimestamp(sim_ts, timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps(
        {
            "sim_time": iso,
            "sim_ts": sim_ts,
            "user_id": 1,
            "persona": "lurker",
            "state": "relaxing",
            "action": "browse_feed",
            "status": status,
            "ok": ok,
            "latency_ms": latency_ms,
            "post_id": None,
            "session_id": 1,
            "error": error,
            "endpoint": "GET /posts",
            "skipped": skipped,
            "retries": 0,
            "kind": "action",
        }
    )
