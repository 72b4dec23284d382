"""Figures for issue 12's closing note: sim-engine on three real third-party APIs.

For Kinto 26 (HTTP Basic, ``{"data": ...}`` bodies), Jupyter Server 2.21 (``Authorization:
token T``, Swagger 2.0 document) and json-server 0.17 (no auth, no OpenAPI document), each
started on 127.0.0.1 as ``scripts/test-deps.sh`` installs it, this prints:

* the success rate of ``init --from-openapi`` on the server's own document, run unedited
  for one simulated day (Kinto with ``--users 15``, Jupyter with ``--users 20`` and
  ``--api-key 'token T'``, as their tests do; json-server has no document: n/a);
* the success rate of the edited example scenario (``examples/NAME/scenario.yaml``), one
  simulated day, seed 7;
* ``sim-engine cleanup`` after that day: the server's own counts before the run, after it
  and after cleanup, with cleanup's exit code and summary line.

Run: ``python bench/real_apis.py [--only kinto|jupyter|json-server]`` (needs
``bash scripts/test-deps.sh`` first). Wall time: a few minutes. The success rate counts
records that are neither skipped nor deliberate errors (``tests/realapi.success_rate``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_jupyter as jupyter  # noqa: E402
import test_kinto as kinto  # noqa: E402
from helpers import installed_command, sim_engine, terminate  # noqa: E402
from realapi import (  # noqa: E402
    Http,
    failures,
    read_records,
    run_day,
    start_server,
    success_rate,
)
from sim_engine.demo.launcher import find_free_port  # noqa: E402

Counts = Callable[[], dict[str, int]]


def _rate(out: Path) -> str:
    actions = read_records(out / "actions.jsonl")
    top = ", ".join(f"{a} {s} x{n}" for (a, s), n in failures(actions).most_common(3))
    return f"{success_rate(actions):.1%} of {len(actions)} actions" + (
        f" (failed: {top})" if top else ""
    )


def _import(spec: str, work: Path, *options: str) -> Path:
    scenario = work / "imported.yaml"
    made = sim_engine(
        "init", "--from-openapi", spec, *options, "-o", str(scenario),
        command=installed_command(), cwd=work,
    )  # fmt: skip
    if made.returncode != 0:
        raise SystemExit(f"init failed: {made.stderr}")
    return scenario


def _day_and_cleanup(scenario: Path, base_url: str, work: Path, counts: Counts, *extra: str) -> str:
    before = counts()
    run_day(scenario, base_url, work / "out", *extra)
    after = counts()
    proc = sim_engine(
        "cleanup", str(work / "out"), timeout=300, command=installed_command(), cwd=ROOT
    )
    cleaned = counts()
    lines = proc.stdout.splitlines()
    summary = lines[0] if lines else proc.stderr.strip()
    left = "".join(f"\n    {line}" for line in lines if line.startswith(("stays", "in doubt")))
    return (
        f"success {_rate(work / 'out')}; counts before {before}, after the day {after}, "
        f"after cleanup {cleaned} (exit {proc.returncode}: {summary}){left}"
    )


def _kinto(work: Path) -> None:
    def counts(admin: Http, full: bool = True) -> Counts:
        if not full:  # an unedited import's buckets are private to their users: accounts only
            return lambda: {"accounts": len(kinto._all(admin, "/accounts"))}
        return lambda: dict(vars(kinto._world(admin).counts))

    for name, edited in (("unedited import", False), ("edited scenario", True)):
        here = work / f"kinto-{name.split()[0]}"
        here.mkdir()
        proc, admin = kinto._start(here)
        try:
            kinto._seed(admin)
            base = admin.base_url.removesuffix("/v1")
            if edited:
                line = _day_and_cleanup(kinto.SCENARIO, base, here, counts(admin))
            else:
                scenario = _import(admin.base_url + "/__api__", here)
                line = _day_and_cleanup(scenario, base, here, counts(admin, False), "--users", "15")
        finally:
            terminate(proc)
        print(f"kinto, {name}: {line}", flush=True)


def _jupyter(work: Path) -> None:
    def counts(root: Path) -> Counts:
        def read() -> dict[str, int]:
            folders = {f for f in jupyter._folders(root) if not f.startswith(".")}
            files = [f for f in jupyter._disk(root) if ".ipynb_checkpoints" not in f]
            return {"files": len(files), "folders": len(folders)}

        return read

    for name, edited in (("unedited import", False), ("edited scenario", True)):
        here = work / f"jupyter-{name.split()[0]}"
        here.mkdir()
        server = jupyter._start(here)
        try:
            base = server.http.base_url
            if edited:
                line = _day_and_cleanup(jupyter.SCENARIO, base, here, counts(server.root))
            else:
                status, document, _ = server.http.raw("GET", "/api/spec.yaml")
                assert status == 200, document[:300]
                (here / "spec.yaml").write_bytes(document)
                key = ("--api-key", f"token {jupyter.TOKEN}")
                scenario = _import(str(here / "spec.yaml"), here, *key)
                line = _day_and_cleanup(scenario, base, here, counts(server.root), "--users", "20")
        finally:
            terminate(server.proc)
        print(f"jupyter, {name}: {line}", flush=True)


def _json_server(work: Path) -> None:
    example = ROOT / "examples" / "json-server"
    db = work / "db.json"
    shutil.copyfile(example / "db.json", db)
    port = find_free_port()
    http = Http(f"http://127.0.0.1:{port}", {})
    binary = example / "node_modules" / ".bin" / "json-server"
    proc = start_server(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), str(db)],
        cwd=work, log_path=work / "json-server.log",
        ready=lambda: http.call("GET", "/posts")[0] == 200,
    )  # fmt: skip

    def counts() -> dict[str, int]:
        return {name: len(http.get("/" + name)) for name in ("posts", "comments", "follows")}

    try:
        line = _day_and_cleanup(example / "scenario.yaml", http.base_url, work, counts)
    finally:
        terminate(proc)
    print("json-server, unedited import: n/a (json-server serves no OpenAPI document)")
    print(f"json-server, edited scenario: {line}", flush=True)


RUNS: dict[str, Callable[[Path], Any]] = {
    "kinto": _kinto,
    "jupyter": _jupyter,
    "json-server": _json_server,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS), help="one API only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="real-apis-") as tmp:
        for name, measure in RUNS.items():
            if args.only in (None, name):
                here = Path(tmp) / name
                here.mkdir()
                measure(here)


if __name__ == "__main__":
    main()
