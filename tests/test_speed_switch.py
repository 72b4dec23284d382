"""A speed change at run time is seen by everyone holding the run's clock.

The issue: ``ctl speed max`` (or the dashboard's ``m``) swapped the engine's
clock while the runner kept the old one, so a finished run was recorded as
interrupted, with the wrong length and speed. One clock object now switches
itself between a factor and ``max``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import reap, sim_engine, sim_engine_popen
from sim_engine.observe.control import CONTROL_FILE


def test_ctl_speed_max_mid_run_completes_the_whole_duration(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = sim_engine_popen(
        "run",
        *("--target", "inprocess", "--speed", "60", "--duration", "6h", "--users", "20"),
        *("--seed", "3", "--out", str(out), "--no-dashboard", "--quiet"),
    )
    try:
        deadline = time.monotonic() + 30
        while not (out / CONTROL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never opened its control endpoint"
            time.sleep(0.05)
        # At 60x, six simulated hours would take six wall minutes.
        switched = sim_engine("ctl", str(out), "speed", "max", timeout=30)
        assert switched.returncode == 0, switched.stderr
        _, stderr = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == 0, stderr
    run = json.loads((out / "metrics.json").read_text())["run"]
    assert run["interrupted"] is False
    assert run["simulated_seconds"] == 6 * 3600
    assert run["speed"] == "max" and run["start_speed"] == 60
