"""Bounded disk (issue 15, must-have 4): ``actions.jsonl`` and ``log.jsonl`` rotate by
size or wall time, rotated files are gzipped, ``keep`` of them stay, and a resumed run
goes on with the same files."""

from __future__ import annotations

import gzip
import json
import logging.handlers
import time
import types
from pathlib import Path
from typing import Any

import pytest

from helpers import busy_scenario_file, interrupt_after_checkpoint, sim_engine
from sim_engine.model.scenario import ScenarioError, default_scenario, validate_scenario
from sim_engine.model.settings_spec import RotationSpec
from sim_engine.sinks.rotation import open_lines, read_lines, rotated_files


def _all_lines(path: Path) -> list[str]:
    lines: list[str] = []
    for part in [*rotated_files(path), path]:
        if part.exists():
            lines.extend(read_lines(part))
    return lines


def test_size_rotation_compresses_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "actions.jsonl"
    writer = open_lines(path, RotationSpec(max_bytes=2048, keep=3), append=False)
    for i in range(500):
        writer.write(json.dumps({"i": i, "pad": "x" * 80}) + "\n")
    writer.close()
    rotated = rotated_files(path)
    assert [p.name for p in rotated] == [f"actions.jsonl.{n}.gz" for n in (3, 2, 1)]
    assert path.stat().st_size <= 2048
    for part in rotated:
        assert part.read_bytes()[:2] == b"\x1f\x8b"  # gzip
        assert len(gzip.decompress(part.read_bytes())) <= 2048
    numbers = [json.loads(line)["i"] for line in _all_lines(path)]
    assert numbers == list(range(numbers[0], 500))  # the newest lines, in order, none torn
    assert 500 - numbers[0] < 4 * 2048 // 90 + 1  # no more than keep + 1 files' worth


def test_time_rotation_on_an_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_800_000_000.0]
    fake = types.SimpleNamespace(
        **{k: getattr(time, k) for k in dir(time) if not k.startswith("_")}
    )
    fake.time = lambda: now[0]
    monkeypatch.setattr(logging.handlers, "time", fake)
    path = tmp_path / "log.jsonl"
    writer = open_lines(path, RotationSpec(every="1h", keep=2), append=False)
    for hour in range(5):
        for i in range(3):
            writer.write(json.dumps({"hour": hour, "i": i}) + "\n")
        now[0] += 3600
    writer.close()
    rotated = rotated_files(path)
    assert len(rotated) == 2 and all(p.name.endswith(".gz") for p in rotated)
    hours = [json.loads(line)["hour"] for line in _all_lines(path)]
    assert hours == [2, 2, 2, 3, 3, 3, 4, 4, 4]


@pytest.mark.parametrize(
    ("section", "message"),
    [({}, "one of max_bytes"), ({"max_bytes": 4096, "every": "1d"}, "one of max_bytes"),
     ({"max_bytes": 10}, "max_bytes"), ({"every": "soon"}, "not a duration")],
)  # fmt: skip
def test_bad_rotation_settings(section: dict[str, Any], message: str) -> None:
    data = default_scenario().model_dump(mode="json")
    data["output"]["rotate"] = section
    with pytest.raises(ScenarioError, match=message):
        validate_scenario(data)


def _scenario(tmp_path: Path) -> Path:
    rotate = {"max_bytes": 16384, "keep": 1000}  # keep all: the test counts every line
    # Busy (helpers.busy_overrides): enough actions in 3 days to rotate several times.
    return busy_scenario_file(
        tmp_path / "rotating.yaml", **{"output.rotate": rotate, "output.log_actions": "all"}
    )


def test_a_run_rotates_and_a_resumed_run_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--scenario", str(_scenario(tmp_path)), "--target", "inprocess", "--users", "60",
            "--speed", "86400", "--duration", "3d", "--start", "2026-03-02", "--out", str(out),
            "-q", "--no-dashboard"]  # fmt: skip
    code, stderr = interrupt_after_checkpoint(args, out, settle_s=0.8)
    assert code == 0, stderr
    first = len(_all_lines(out / "actions.jsonl"))
    proc = sim_engine("run", "--resume", str(out), "-q", timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    actions = [json.loads(line) for line in _all_lines(out / "actions.jsonl")]
    assert len(rotated_files(out / "actions.jsonl")) >= 3
    assert len(actions) > first > 0
    # the resumed run's figures count the rotated files too: every action exactly once
    assert metrics["summary"]["actions"] == len(actions)
    assert len(actions) == len({(a["user_id"], a["sim_ts"], a["action"]) for a in actions})
    log = [json.loads(line) for line in _all_lines(out / "log.jsonl")]
    assert rotated_files(out / "log.jsonl")  # log.jsonl rotates too
    assert sum(1 for e in log if e["event"] == "action") == len(actions)  # log_actions: all


def test_log_holds_log_events_not_a_copy_of_every_action(tmp_path: Path) -> None:
    """Default ``log_actions: failed``: a run whose actions all succeed logs none of them."""
    out = tmp_path / "run"
    # Busy (no churn hazard): no post vanishes with a churned author, so no read fails.
    busy = busy_scenario_file(tmp_path / "busy.yaml")
    proc = sim_engine("run", "--target", "inprocess", "--users", "30", "--speed", "max",
                      "--duration", "1d", "--scenario", str(busy), "--out", str(out), "-q",
                      timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["summary"]["actions"] > 100 and metrics["summary"]["failed"] == 0
    events = {json.loads(line)["event"] for line in _all_lines(out / "log.jsonl")}
    assert "action" not in events and {"run started", "run stopped"} <= events
    per_action = (out / "log.jsonl").stat().st_size / metrics["summary"]["actions"]
    assert per_action < 60, per_action  # was about 330 bytes per action (issue 15)
