"""File and password hygiene (issue 13.6): the kill file stays inside the run directory,
founders' passwords derive from the run secret unless given, ``state.db`` is private.

(``control.json``'s mode 0600 is tested in ``test_control.py``.)
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from helpers import assert_one_line_error, sim_engine
from sim_engine.api.binding import user_password
from sim_engine.engine.store import SqliteStore
from sim_engine.model.population import SimUser, password_for
from sim_engine.model.scenario import ScenarioError, load_scenario

# -- the kill file ----------------------------------------------------------------------------


def _scenario_file(tmp_path: Path, safety: dict[str, object]) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({"safety": safety}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("kill_file", "says"),
    [
        ("/tmp/victim", "relative to the run directory"),
        ("../victim", "no '..'"),
        ("stop/../../victim", "no '..'"),
        ("C:\\victim", "relative to the run directory"),
        ("~/victim", "relative to the run directory"),
        (".", "the run directory itself"),
        ("state.db", "a file the run writes itself"),
        ("actions.jsonl", "a file the run writes itself"),
    ],
)
def test_a_kill_file_outside_the_run_directory_is_refused(
    tmp_path: Path, kill_file: str, says: str
) -> None:
    path = _scenario_file(tmp_path, {"kill_file": kill_file})
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert "safety.kill_file" in str(error.value) and says in str(error.value)
    line = assert_one_line_error(sim_engine("validate", str(path)), 2)
    assert "safety.kill_file" in line


@pytest.mark.parametrize("kill_file", ["KILL", "STOP.txt", "stop/KILL", "./KILL"])
def test_a_kill_file_inside_the_run_directory_is_accepted(tmp_path: Path, kill_file: str) -> None:
    assert load_scenario(_scenario_file(tmp_path, {"kill_file": kill_file})).safety.kill_file == (
        kill_file
    )


def _run_dir(tmp_path: Path, kill_file: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.db").write_bytes(b"")
    (run / "scenario.json").write_text(json.dumps({"safety": {"kill_file": kill_file}}))
    return run


def test_kill_never_writes_outside_the_run_directory(tmp_path: Path) -> None:
    """``scenario.json`` is only a copy, and may be edited: ``kill`` checks it again."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in (str(victim), "../victim.txt"):
        run = _run_dir(tmp_path, name)
        line = assert_one_line_error(sim_engine("kill", str(run)), 2)
        assert "safety.kill_file" in line
        assert victim.read_text() == "precious\n"
        for path in run.iterdir():
            path.unlink()
        run.rmdir()


def test_kill_writes_a_kill_file_in_a_subdirectory(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "stop/KILL")
    proc = sim_engine("kill", str(run))
    assert proc.returncode == 0, proc.stderr
    assert (run / "stop" / "KILL").read_text() == "stop\n"


# -- founders' passwords ----------------------------------------------------------------------


def _founder() -> SimUser:
    user = SimUser(1, 0, 0.0, "Maria Reyes", "maria.reyes@sim-engine.test", ZoneInfo("UTC"), 7)
    user.founder = True
    return user


def test_a_founders_password_derives_from_the_run_secret(tmp_path: Path) -> None:
    path = tmp_path / "founders.yaml"
    data = {"name": "bootstrap", "population": {"founders": [{"name": "Maria Reyes"}]}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    scenario = load_scenario(path)
    founder = _founder()
    first, second = (user_password(founder, s, scenario) for s in ("secret-1", "secret-2"))
    assert first != second  # nothing but the secret rebuilds it
    public = password_for(f"{scenario.name}:founders", founder.email)  # the old derivation
    assert public not in (first, second)
    assert user_password(founder, "secret-1", scenario) == first  # a resume logs in again


def test_a_founders_explicit_password_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "founders.yaml"
    founders = [{"name": "Maria Reyes", "password": "Given-Pa55word"}]
    path.write_text(yaml.safe_dump({"population": {"founders": founders}}), encoding="utf-8")
    assert user_password(_founder(), "secret-1", load_scenario(path)) == "Given-Pa55word"


# -- state.db is private ----------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable (0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _modes(run: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}


@pytest.mark.usefixtures("open_umask")
def test_state_db_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db", create=True)
    try:
        store.checkpoint({"secret": "s3cret"}, [])
        names = {p.name for p in tmp_path.iterdir()}
        assert {"state.db", "state.db-wal", "state.db-shm"} <= names  # WAL files exist now
        assert set(_modes(tmp_path).values()) == {0o600}, _modes(tmp_path)
    finally:
        store.close()


@pytest.mark.usefixtures("open_umask")
def test_an_older_world_readable_state_db_is_narrowed_on_resume(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "state.db", create=True).close()
    os.chmod(tmp_path / "state.db", 0o644)
    store = SqliteStore(tmp_path / "state.db", create=False)
    try:
        store.checkpoint({"secret": "s3cret"}, [])
        assert set(_modes(tmp_path).values()) == {0o600}, _modes(tmp_path)
    finally:
        store.close()
