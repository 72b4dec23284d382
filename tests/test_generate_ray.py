"""``sim-engine generate`` on Ray: the same dataset as one process, Ctrl-C, no leftovers.

One Ray head for the module (a driver in a subprocess, 2 CPUs, loopback only) is
joined by address: chunks sharded over its two workers give the rows (and a hash
of their content) of the single-process dataset, for two chunk sizes, in this
process and from the command line (``--ray-address``). The command line's own
local cluster (``--workers 2 --backend ray``) is interrupted with SIGINT to its process group,
as a terminal's Ctrl-C does: the running chunks are recorded, the manifest says
incomplete, no Ray process is left, and ``--resume`` finishes the same dataset.
Without Ray, ``--backend ray`` says how to install it; ``--workers 2`` alone is the
process pool, Ray or not (a local Ray cluster is the heavier backend on one machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from helpers import SIM_ENGINE, assert_one_line_error, reap, sim_engine
from sim_engine.model.scenario import default_scenario
from sim_engine.runs.generate import generate
from sim_engine.runs.shards import import_ray
from test_generate import _digests, _options

# The head below enables Ray's token authentication (its default for a new cluster);
# a driver joining by address must ask for it, with the token Ray saved in ~/.ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
try:  # configured (loopback only) before anything imports Ray in this process
    import_ray(loopback=True)
except ImportError:  # pragma: no cover - Ray is in the dev extra
    pytest.skip("the Ray backend is the optional extra sim-engine[ray]", allow_module_level=True)

RAY_DAEMONS = ("raylet", "gcs_server")
HEAD = """
import logging, sys
from sim_engine.runs.shards import import_ray
ray = import_ray(loopback=True)
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
"""


def _daemons(ray_tmp: Path) -> set[int]:
    """Ray's daemons of clusters whose files are under ``ray_tmp`` (pids); other
    sessions' clusters on the machine are not counted."""
    found = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or ())
        if proc.info["name"] in RAY_DAEMONS and str(ray_tmp) in command:
            found.add(proc.pid)
    return found


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A running Ray cluster's address (``127.0.0.1:PORT``), shut down after the module."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        finally:
            reap(proc)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "ref"
    generate(default_scenario(), _options(out, chunk_users=1000))
    return out


def _started_chunks_all_recorded(out: Path) -> set[str]:
    """Assert the dataset is incomplete and every chunk with a part on disk is recorded
    in the manifest with all its files (a chunk in flight at the interrupt finished);
    return the recorded chunks."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    chunks: dict[str, dict[str, list[str]]] = manifest["chunks"]
    on_disk = {str(int(p.stem.split("-")[1])) for p in out.glob("*/date=*/part-*")}
    assert on_disk == set(chunks)
    for chunk in chunks.values():
        assert len(chunk["files"]) == 2 * len(list((out / "events").iterdir()))
        assert all((out / f).is_file() for f in chunk["files"])
    return set(chunks)


def test_ray_shards_give_the_single_process_rows(
    head: str, reference: Path, tmp_path: Path
) -> None:
    want = _digests(reference)
    for chunk in (37, 50):
        out = tmp_path / f"c{chunk}"
        summary = generate(
            default_scenario(), _options(out, chunk_users=chunk, workers=2, ray_address=head)
        )
        assert summary.complete and summary.chunks == -(-174 // chunk)
        assert _digests(out) == want
        parts = sorted(p.name for p in (out / "events" / "date=2026-03-02").iterdir())
        assert parts == [f"part-{i:05d}.parquet" for i in range(summary.chunks)]


def test_an_interrupt_lets_running_ray_chunks_finish_and_resume_completes(
    head: str, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cut"

    def interrupt(events: int, steps: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(default_scenario(), _options(out, chunk_users=37, ray_address=head), interrupt)
    # Two CPUs, so at most two chunks in flight: they finish and are recorded, no more start.
    assert 1 <= len(_started_chunks_all_recorded(out)) <= 3
    generate(default_scenario(), _options(out, chunk_users=37, resume=True))
    assert _digests(out) == _digests(reference)


def test_cli_joins_a_running_cluster(head: str, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = sim_engine(
        "generate", "--users", "120", "--days", "6", "--start", "2026-03-02", "--seed", "3",
        "--out", str(out), "--chunk-users", "50", "--ray-address", head, "--quiet",
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # Ray says nothing
    assert _digests(out) == _digests(reference)


def _wait_for_a_chunk(proc: subprocess.Popen[str], manifest: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(manifest.read_text())["chunks"]:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"no chunk recorded (exit {proc.poll()})")


def test_ctrl_c_on_a_local_cluster_keeps_chunks_and_leaves_no_ray_process(
    tmp_path: Path,
) -> None:
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    out = tmp_path / "local"
    args = [
        "generate", "--users", "3000", "--days", "30", "--start", "2026-03-02", "--seed", "3",
        "--out", str(out), "--chunk-users", "150", "--workers", "2", "--backend", "ray",
        "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [*SIM_ENGINE, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        _wait_for_a_chunk(proc, out / "manifest.json")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _stdout, stderr = proc.communicate(timeout=120)
    finally:
        reap(proc)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert 0 < len(_started_chunks_all_recorded(out)) < 20
    assert _daemons(ray_tmp) == set()
    resumed = subprocess.run(
        [*SIM_ENGINE, *args, "--resume"],
        capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == ""  # Ray says nothing
    assert _daemons(ray_tmp) == set()
    shutil.rmtree(ray_tmp, ignore_errors=True)
    whole = tmp_path / "whole"
    generate(
        default_scenario(),
        _options(whole, users=3000, days=30, chunk_users=3000, fmt="parquet"),
    )
    assert _digests(out) == _digests(whole)


def test_without_ray_backend_ray_says_how_to_install_it(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {**os.environ, "PYTHONPATH": str(shim.parent)}
    base = ["generate", "--users", "10", "--days", "2", "--start", "2026-01-05", "--quiet"]
    missing = subprocess.run(
        [*SIM_ENGINE, *base, "--out", str(tmp_path / "a"), "--workers", "2", "--backend", "ray"],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    line = assert_one_line_error(missing, 2)
    assert "--backend ray needs Ray" in line, line
    assert "pip install 'sim-engine[ray]'" in line and "--backend processes" in line
    assert not (tmp_path / "a").exists()
    pool = subprocess.run(  # --workers 2 alone: the process pool, no Ray needed
        [*SIM_ENGINE, *base, "--out", str(tmp_path / "b"), "--workers", "2", "--chunk-users", "4"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert pool.returncode == 0, pool.stderr
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["complete"] is True


def test_auto_is_the_process_pool_on_one_machine_and_ray_with_an_address(tmp_path: Path) -> None:
    def runner(**kw: object) -> str:
        return _options(tmp_path, **kw).runner()

    assert runner(workers=1) == "here"
    assert runner(workers=2) == "processes"  # Ray is installed here, yet not chosen
    assert runner(workers=2, backend="processes") == "processes"
    assert runner(workers=2, backend="ray") == "ray"
    assert runner(workers=1, ray_address="127.0.0.1:6379") == "ray"


def test_an_address_nobody_answers_is_a_one_line_runtime_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a free loopback port, closed again: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = sim_engine(
        "generate", "--users", "10", "--days", "1", "--start", "2026-01-05",
        "--out", str(tmp_path / "o"), "--ray-address", f"127.0.0.1:{port}",
    )  # fmt: skip
    line = assert_one_line_error(proc, 1)
    assert f"cannot join the Ray cluster at 127.0.0.1:{port}" in line
