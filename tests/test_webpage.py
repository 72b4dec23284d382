"""The run's web page (issue 15, must-have 7) in headless Chromium (Debian's ``chromium``,
driven by Playwright): the page loads behind the control token, shows live numbers that
change, and its buttons pause, resume and stop the run.

``SIM_ENGINE_UPDATE_SCREENSHOT=1`` also saves the page to ``docs/images/webpage.png``
(the README's screenshot).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from helpers import busy_scenario_file, sim_engine, sim_engine_popen, terminate
from sim_engine.observe.control import CONTROL_FILE, send_command

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def _number(page: Page, selector: str) -> int:
    return int((page.text_content(selector) or "").replace(",", ""))


def _wait_control(out: Path, proc: object) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while not (out / CONTROL_FILE).exists():
        assert proc.poll() is None  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the run never opened its control endpoint"
        time.sleep(0.05)
    return json.loads((out / CONTROL_FILE).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_web_page_shows_live_numbers_and_steers_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    busy = busy_scenario_file(tmp_path / "busy.yaml")  # nobody quits: all 80 stay known
    proc = sim_engine_popen(
        "run", "--target", "inprocess", "--users", "80", "--speed", "3600",
        "--scenario", str(busy),
        "--duration", "forever", "--start", "2026-03-02T09:00:00+00:00",
        "--out", str(out), "--no-dashboard", "-q",
    )  # fmt: skip
    try:
        info = _wait_control(out, proc)
        printed = sim_engine("ctl", str(out), "page", timeout=60)
        assert printed.stdout.strip() == f"{info['url']}/ui/?token={info['token']}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 980})
            denied = page.request.get(f"{info['url']}/ui/data")
            assert denied.status == 401  # no token, no numbers
            page.goto(f"{info['url']}/ui?token={info['token']}")  # redirected to /ui/
            page.wait_for_function("document.getElementById('actions').textContent !== '—'")
            first = _number(page, "#actions")
            page.wait_for_function(
                f"Number(document.getElementById('actions').textContent.replace(/,/g, ''))"
                f" > {first}",
                timeout=30_000,
            )  # live numbers that change
            assert _number(page, "#known") >= 80
            assert page.locator("#rate-chart .main-svg").count() > 0  # plotly drew
            assert page.locator("#users-chart .main-svg").count() > 0
            time.sleep(2.5)  # a few polls: lines on the charts
            shot = tmp_path / "webpage.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("SIM_ENGINE_UPDATE_SCREENSHOT"):
                shutil.copy(shot, ROOT / "docs/images/webpage.png")

            page.click("#pause")
            page.wait_for_function("document.getElementById('state').textContent === 'paused'")
            assert send_command(out, "status")["state"] == "paused"
            time.sleep(1.5)  # in-flight actions finish
            held = (_number(page, "#actions"), page.text_content("#sim-time"))
            time.sleep(2.5)
            assert (_number(page, "#actions"), page.text_content("#sim-time")) == held

            page.click("#resume")
            page.wait_for_function("document.getElementById('state').textContent === 'running'")
            page.fill("#speed-value", "60")
            page.click("#set-speed")
            page.wait_for_function("document.getElementById('speed').textContent === '60x'")
            assert send_command(out, "status")["speed"] == 60

            page.on("dialog", lambda dialog: dialog.accept())
            page.click("#stop")
            proc.wait(timeout=60)
            browser.close()
    finally:
        terminate(proc)
    assert proc.returncode == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["run"]["interrupted"] and metrics["run"]["speed"] == 60
