"""The same seed gives byte-identical users and actions for an in-process run.

Only measured latencies may differ. Emails carry a per-run tag derived from the
run secret; an in-process run derives its secret from the seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sim_engine.cli.main import cli


def _run(out: Path, seed: str) -> tuple[str, str]:
    args = [
        "run",
        *("--target", "inprocess", "--speed", "max", "--duration", "12h", "--users", "25"),
        *("--start", "2024-05-15T08:00:00Z", "--seed", seed, "--out", str(out), "-q"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    actions = []
    for line in (out / "actions.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record.pop("latency_ms") >= 0
        actions.append(json.dumps(record, sort_keys=True))
    return (out / "users.jsonl").read_text(), "\n".join(actions)


def test_same_seed_gives_identical_users_and_actions(tmp_path: Path) -> None:
    users_a, actions_a = _run(tmp_path / "a", "5")
    users_b, actions_b = _run(tmp_path / "b", "5")
    assert users_a.count("\n") >= 10 and actions_a.count("\n") > 100
    assert users_a == users_b
    assert actions_a == actions_b
    users_c, _ = _run(tmp_path / "c", "6")
    assert users_c != users_a  # the seed matters
