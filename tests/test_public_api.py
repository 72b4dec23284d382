"""The public library API: a curated ``sim_engine.__all__``, and the README's example runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import sim_engine

README = Path(__file__).resolve().parents[1] / "README.md"

PUBLIC = {
    "ActionRecord", "ActionRequest", "ActionResolver", "Clock", "ConsoleSink", "DaySnapshot",
    "FastForwardClock", "JsonlSink", "LifecycleRecord", "ManualClock", "MemoryKeeper",
    "MetricsCollector", "MockTarget", "Outcome", "ScaledClock", "Scenario", "ScenarioError",
    "SessionHook", "SimClock", "Simulation", "SimulationStats", "Sink", "DeclarativeTarget",
    "SpeedControl", "Store", "Target", "Transport", "UserForgetter", "UserRecord",
    "__version__", "bind_target", "default_scenario", "demo_target", "load_scenario", "plugins",
}  # fmt: skip


def test_all_is_the_curated_public_api() -> None:
    assert set(sim_engine.__all__) == PUBLIC
    for name in sim_engine.__all__:
        assert getattr(sim_engine, name) is not None, name


def _readme_example() -> str:
    match = re.search(r"## Using it as a library\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "the README lost its library example"
    return match.group(1)


def test_the_readme_example_imports_from_at_most_two_modules() -> None:
    pattern = r"^\s*(?:from\s+(\S+)\s+import|import\s+(\S+))"
    modules = set(re.findall(pattern, _readme_example(), re.M))
    ours = {m for pair in modules for m in pair if m.startswith("sim_engine")}
    assert 1 <= len(ours) <= 2, ours


def test_the_readme_example_runs() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_readme_example(), str(README), "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    kinds = [line.split()[1] for line in lines[:-1]]
    assert kinds.count("action") > 20 and "user" in kinds and "day" in kinds, lines[-5:]
    assert lines[-1].startswith("SimulationStats(") and "actions=" in lines[-1]
