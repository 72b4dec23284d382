"""``sim-engine run --browser-share`` on the built-in demo, in Chromium: page records in
actions.jsonl with Navigation Timing, browser storage in state.db, and a resumed run whose
users are still signed in (no log-in page after the checkpoint for a user that saved its
session cookie). Errors for a target without pages are one line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from helpers import (
    assert_one_line_error,
    busy_scenario_file,
    checkpoint_s,
    interrupt_when,
    read_jsonl,
    sim_engine,
)

START = "2030-03-04T08:00:00Z"
ARGS = ["--speed", "max", "--users", "3", "--seed", "11", "--start", START, "--browser-share", "1"]


def saved_cookies(state_db: Path) -> dict[int, set[str]]:
    """Per user, the cookie names of the browser storage saved in state.db."""
    db = sqlite3.connect(state_db)
    try:
        rows = db.execute("SELECT user_id, data FROM users").fetchall()
    finally:
        db.close()
    found: dict[int, set[str]] = {}
    for user_id, data in rows:
        storage = ((json.loads(data).get("memory") or {}).get("browser") or {}).get("storage")
        found[int(user_id)] = {c["name"] for c in (storage or {}).get("cookies", [])}
    return found


def page_records(out: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(out / "actions.jsonl") if "page" in r]


def test_a_run_with_every_user_in_a_browser_records_page_steps(tmp_path: Path) -> None:
    out = tmp_path / "run"
    busy = busy_scenario_file(tmp_path / "busy.yaml")  # 3 users who act in those 2 hours
    done = sim_engine(
        "run", *ARGS, "--scenario", str(busy), "--duration", "2h", "-q", "--out", str(out),
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out / "actions.jsonl")
    pages = [r for r in records if "page" in r]
    assert len(pages) >= 10
    api = [r for r in records if "page" not in r]
    assert {r["action"] for r in api} >= {"sign_up", "log_in"}  # accounts go through the API
    assert {r["action"] for r in pages} <= {"browse_feed", "read_post", "create_post"}
    gotos = [r for r in pages if r["page"]["step"].startswith("goto")]
    assert gotos and all(
        r["status"] == 200 and r["endpoint"] == "PAGE " + r["page"]["step"] for r in gotos
    )
    for r in gotos:
        page = r["page"]
        assert 0 < page["ttfb_ms"] <= page["dcl_ms"] <= page["load_ms"], page
        assert page["url"].startswith("http://127.0.0.1:")
        assert page["console_errors"] == [] and page["failed_requests"] == []
    cookies = saved_cookies(out / "state.db")
    assert any("sim_session" in names for names in cookies.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["actions"] == len(records)


def signed_in_now(state_db: Path) -> bool:
    """True when state.db (being written) holds a user's session cookie."""
    if not state_db.exists():
        return False
    try:
        return any("sim_session" in names for names in saved_cookies(state_db).values())
    except sqlite3.Error:  # not created yet, or busy
        return False


def interrupt_once_signed_in(args: list[str], out: Path) -> tuple[int, str]:
    """Start ``sim-engine run ARGS`` and SIGTERM it once a checkpoint has saved a user's
    session cookie (waiting up to 240 wall seconds: Chromium and the demo start slowly on
    a loaded machine; a fixed delay after the first checkpoint often came too early)."""
    return interrupt_when(args, lambda: signed_in_now(out / "state.db"), 240)


def test_browser_users_stay_signed_in_across_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    busy = busy_scenario_file(tmp_path / "busy.yaml")  # 3 users who act and stay
    # At 3600x until the interrupt: at max speed a loaded machine's poll came as late as
    # 27.75 h into the 30, leaving the signed-in users no session after the resume.
    live = [*ARGS[:1], "3600", *ARGS[2:]]
    code, stderr = interrupt_once_signed_in(
        [*live, "--scenario", str(busy), "--duration", "30h", "-q", "--out", str(out)], out
    )
    assert code == 0, stderr
    signed_in = {
        u for u, names in saved_cookies(out / "state.db").items() if "sim_session" in names
    }
    assert signed_in, "no user had saved its session cookie by the checkpoint"
    at = checkpoint_s(out / "state.db")
    assert at is not None
    before = len(page_records(out))
    resumed = sim_engine("run", "--resume", str(out), "--speed", "max", "-q", timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    later = [r for r in page_records(out)[before:] if r["user_id"] in signed_in]
    after = page_records(out)[before:]
    assert later, (
        f"the signed-in users {signed_in} took no browser step after the resume "
        f"(checkpoint at {at}; after it: {[(r['user_id'], r['sim_time']) for r in after][:8]})"
    )
    logins = [r for r in later if r["page"]["step"] == "goto /login"]
    assert logins == []


def test_browser_share_needs_pages(tmp_path: Path) -> None:
    proc = sim_engine(
        "run",
        "--target",
        "inprocess",
        "--browser-share",
        "0.5",
        "--duration",
        "1h",
        "--speed",
        "max",
        "-q",
        "--out",
        str(tmp_path / "x"),
    )
    line = assert_one_line_error(proc, 2)
    assert "browser" in line and "inprocess" in line
    own = tmp_path / "own.yaml"
    own.write_text(Path("examples/json-server/scenario.yaml").read_text())
    proc = sim_engine("run", "--scenario", str(own), "--browser-share", "0.5", "-q")
    assert "no browser section" in assert_one_line_error(proc, 2)
