"""Proof on a real third-party API with token auth and nested bodies: Jupyter Server 2.

Jupyter Server (the REST API behind JupyterLab) is installed by ``scripts/test-deps.sh``
in ``examples/jupyter/.venv`` (pinned in ``examples/jupyter/requirements.txt``; the test
installs nothing) and started here on a free 127.0.0.1 port over a temporary root folder
holding a seeded ``shared`` folder. Requests carry ``Authorization: token T``; notebooks
are saved as nested JSON documents (``{"content": {"cells": [...], "metadata": {...}}}``);
ids are file paths. One simulated day of ``examples/jupyter/scenario.yaml`` runs through
the real command, then the run is checked against the server's own data: the files on
disk (its store) and its contents API, counted exactly per user folder, every saved
notebook intact and signed by its folder's owner, the seed untouched, at least 99% of
outcomes expected. Then ``sim-engine cleanup`` must restore the counts exactly, and a
scenario ``init --from-openapi`` writes from the server's document, run unedited, must
reach 90% success.

It fails (never skips) when Jupyter Server is not installed or does not start.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import installed_command, sim_engine, terminate
from realapi import ROOT, Http, failures, ok, read_records, run_day, start_server, success_rate
from sim_engine.demo.launcher import find_free_port
from sim_engine.model.scenario import load_scenario

EXAMPLE = ROOT / "examples" / "jupyter"
SCENARIO = EXAMPLE / "scenario.yaml"
SERVER = EXAMPLE / ".venv" / "bin" / "jupyter-server"
TOKEN = "sim-engine-example-token"  # the scenario's api_key is "token <TOKEN>"
#: Actions only ``sim-engine cleanup`` uses: no persona draws them.
CLEANUP_ONLY = {"delete_note", "delete_checkpoint", "delete_folder"}
SEED = {"shared/README.md": "# Team notes\n", "shared/howto.md": "Save often.\n"}


@dataclass(frozen=True)
class Jupyter:
    """A running Jupyter Server: its client (with the token) and its root folder."""

    http: Http
    root: Path
    proc: subprocess.Popen[bytes]


def _start(work: Path) -> Jupyter:
    """Jupyter Server on a free port over ``work/root`` (seeded), its state under ``work``."""
    root = work / "root"
    for name, text in SEED.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, "utf-8")
    port = find_free_port()
    http = Http(f"http://127.0.0.1:{port}", {"Authorization": f"token {TOKEN}"})
    env = {
        **os.environ,
        **{f"JUPYTER_{d}_DIR": str(work / d.lower()) for d in ("RUNTIME", "DATA", "CONFIG")},
    }
    argv = [
        str(SERVER),
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--FileContentsManager.delete_to_trash=False",
    ]
    proc = start_server(
        argv,
        cwd=work,
        env=env,
        log_path=work / "jupyter.log",
        ready=lambda: http.call("GET", "/api/me")[0] == 200,
    )
    return Jupyter(http, root, proc)


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    server = _start(tmp_path_factory.mktemp("jupyter"))
    try:
        yield server
    finally:
        terminate(server.proc)


def _disk(root: Path) -> dict[str, str]:
    """Every file under ``root`` (checkpoints included): relative path -> text."""
    return {
        p.relative_to(root).as_posix(): p.read_text("utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir()}


def _listed(http: Http) -> dict[str, list[str]]:
    """What the contents API lists: folder -> the paths in it (hidden files left out)."""
    top = http.get("/api/contents?content=1")["content"]
    return {
        f["path"]: sorted(
            c["path"] for c in http.get(f"/api/contents/{f['path']}?content=1")["content"]
        )
        for f in top
        if f["type"] == "directory"
    }


@dataclass(frozen=True)
class Day:
    """One simulated day: the run's records, and the server's files before and after."""

    out: Path
    actions: list[dict[str, Any]]
    users: dict[int, dict[str, Any]]
    before: dict[str, str]
    after: dict[str, str]
    listed: dict[str, list[str]]

    def username(self, record: dict[str, Any]) -> str:
        return str(self.users[record["user_id"]]["email"].split("@", 1)[0])


@pytest.fixture(scope="module")
def day(jupyter: Jupyter, tmp_path_factory: pytest.TempPathFactory) -> Day:
    before = _disk(jupyter.root)
    out = tmp_path_factory.mktemp("jupyter-run") / "out"
    run_day(SCENARIO, jupyter.http.base_url, out)
    return Day(
        out=out,
        actions=read_records(out / "actions.jsonl"),
        users={u["user_id"]: u for u in read_records(out / "users.jsonl")},
        before=before,
        after=_disk(jupyter.root),
        listed=_listed(jupyter.http),
    )


def test_the_day_ran_with_expected_outcomes(day: Day) -> None:
    api = load_scenario(SCENARIO).api
    assert api is not None
    assert len(day.actions) > 400, f"only {len(day.actions)} actions in a simulated day"
    rate = success_rate(day.actions)
    assert rate >= 0.99, f"success {rate:.2%}: {failures(day.actions).most_common(5)}"
    by_type = Counter(r["action"] for r in day.actions if r["ok"])
    missing = [name for name in api.actions if by_type[name] == 0 and name not in CLEANUP_ONLY]
    assert not missing, f"never succeeded: {missing} ({dict(by_type)})"


def test_files_on_disk_match_the_run(day: Day, jupyter: Jupyter) -> None:
    """Per user: its folder, and in it the notebooks and notes it made minus those deleted."""
    # Jupyter keeps an empty hidden .ipynb_checkpoints folder of its own at the root (no
    # request makes it, the contents API does not list it); every folder the run made is gone
    assert {f for f in _folders(jupyter.root) if not f.startswith(".")} == {"shared"} | {
        day.username(r) for r in ok(day.actions, "make_folder")
    }
    visible = Counter(
        (path.split("/")[0], path.rsplit(".", 1)[-1])
        for path in day.after
        if "/." not in path and not path.startswith("shared/")
    )
    expected: Counter[tuple[str, str]] = Counter()
    for action, ext, sign in (
        ("create_notebook", "ipynb", 1),
        ("delete_notebook", "ipynb", -1),
        ("create_note", "md", 1),
    ):
        for record in ok(day.actions, action):
            expected[(day.username(record), ext)] += sign
    assert +expected == visible
    assert ok(day.actions, "delete_notebook"), "no notebook was deleted"
    # The server's API lists exactly what is on disk (hidden checkpoints left out).
    on_disk = sorted(p for p in day.after if "/." not in p)
    assert sorted(p for paths in day.listed.values() for p in paths) == on_disk


def test_saved_notebooks_are_intact_and_signed_by_their_owner(day: Day) -> None:
    """The nested body arrived whole: three cells, the kernel, the author's name."""
    names = {day.username({"user_id": uid}): u["name"] for uid, u in day.users.items()}
    notebooks = {
        p: json.loads(t) for p, t in day.after.items() if p.endswith(".ipynb") and "/." not in p
    }
    saved = {p: nb for p, nb in notebooks.items() if nb["cells"]}
    assert len(saved) >= len(notebooks) / 2 > 0, f"{len(saved)} of {len(notebooks)} saved"
    for path, nb in saved.items():
        assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "code", "markdown"], path
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        assert nb["metadata"]["authors"] == [{"name": names[path.split("/")[0]]}], path
    notes = [t for p, t in day.after.items() if p.endswith(".md") and not p.startswith("shared/")]
    assert ok(day.actions, "write_note") and any(t.startswith("# ") for t in notes)
    checkpoints = [p for p in day.after if "/.ipynb_checkpoints/" in p]
    assert checkpoints, "no checkpoint on disk"


def test_the_seed_is_untouched(day: Day) -> None:
    assert day.before == SEED
    assert {p: day.after.get(p) for p in SEED} == SEED


def test_cleanup_restores_the_servers_files(day: Day, jupyter: Jupyter) -> None:
    """Every file and folder the run made is gone; the seed stays."""
    assert len(day.after) > len(day.before) + 10, "the run made too little to clean up"
    assert len(day.listed) > 5, f"the run made {len(day.listed) - 1} folders"
    proc = sim_engine("cleanup", str(day.out), timeout=120, command=installed_command(), cwd=ROOT)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert _disk(jupyter.root) == day.before, proc.stdout
    # Jupyter keeps an empty hidden .ipynb_checkpoints folder of its own at the root (no
    # request makes it, the contents API does not list it); every folder the run made is gone
    assert {f for f in _folders(jupyter.root) if not f.startswith(".")} == {"shared"}


def test_unedited_import_reaches_90_percent(tmp_path: Path) -> None:
    """``init --from-openapi`` on the server's own document, run as written, on a fresh server.

    The document declares no security scheme: ``--api-key`` gives init the server's token
    (without it every call answered 403: 11.8% success)."""
    server = _start(tmp_path)
    try:
        status, document, _ = server.http.raw("GET", "/api/spec.yaml")  # Swagger 2.0, YAML
        assert status == 200, document[:300]
        spec = tmp_path / "spec.yaml"
        spec.write_bytes(document)
        scenario = tmp_path / "imported.yaml"
        made = sim_engine(
            "init",
            "--from-openapi",
            str(spec),
            "--api-key",
            f"token {TOKEN}",
            "-o",
            str(scenario),
            command=installed_command(),
            cwd=tmp_path,
        )
        assert made.returncode == 0, made.stderr
        run_day(scenario, server.http.base_url, tmp_path / "out", "--users", "20")
    finally:
        terminate(server.proc)
    actions = read_records(tmp_path / "out" / "actions.jsonl")
    rate = success_rate(actions)
    assert rate >= 0.90, f"success {rate:.2%}: {failures(actions).most_common(8)}"
