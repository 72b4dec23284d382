"""The browser tier on a real third-party web application: Trac 1.6 with
TracAccountManager (issue 16, must-have 5), driven only through its pages in Chromium.

Trac is installed by ``scripts/test-deps.sh`` in ``examples/trac/.venv`` (pinned in
``examples/trac/requirements.txt``; the test installs nothing). The test makes a fresh
Trac environment in a temporary folder as an operator would (``trac-admin initenv``,
``examples/trac/trac.ini`` appended, an ``admin`` account holding TRAC_ADMIN, tickets and
wiki writes for authenticated users), starts ``tracd`` on a free 127.0.0.1 port, runs
``examples/trac/scenario.yaml`` (every user a browser user) through the real command, then
reads Trac's own files back: every simulated user that joined signed up on ``/register``
(a line in Trac's htpasswd file), browsed wiki pages, and the tickets in Trac's database
are exactly those the users' ``new_ticket`` flows opened, each reported by its user.

It fails (never skips) when Trac is not installed or does not start.
"""

from __future__ import annotations

import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import installed_command, sim_engine, terminate
from realapi import ROOT, read_records, start_server
from sim_engine.demo.launcher import find_free_port

TRAC = ROOT / "examples" / "trac"
BIN = TRAC / ".venv" / "bin"


def trac_admin(env: Path, *args: str) -> None:
    if not (BIN / "trac-admin").exists():
        pytest.fail("examples/trac/.venv is missing: run `bash scripts/test-deps.sh`")
    subprocess.run([str(BIN / "trac-admin"), str(env), *args], check=True, capture_output=True)


@pytest.fixture
def trac(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh Trac on a free port: its base URL and its environment folder."""
    env = tmp_path / "trac-env"
    trac_admin(env, "initenv", "Simulated project", "sqlite:db/trac.db")
    with (env / "conf" / "trac.ini").open("a", encoding="utf-8") as ini:
        ini.write("\n" + (TRAC / "trac.ini").read_text(encoding="utf-8"))
    (env / "htpasswd").touch()
    trac_admin(env, "permission", "add", "admin", "TRAC_ADMIN")
    trac_admin(
        env,
        "permission",
        "add",
        "authenticated",
        "TICKET_CREATE",
        "TICKET_MODIFY",
        "WIKI_CREATE",
        "WIKI_MODIFY",
    )
    url = f"http://127.0.0.1:{find_free_port()}"

    def ready() -> bool:
        with urllib.request.urlopen(url + "/register", timeout=5) as resp:
            return bool(resp.status == 200)

    port = url.rsplit(":", 1)[1]
    argv = [str(BIN / "tracd"), "--hostname", "127.0.0.1", "--port", port, "--single-env", str(env)]
    proc = start_server(argv, cwd=tmp_path, log_path=tmp_path / "tracd.log", ready=ready)
    try:
        yield url, env
    finally:
        terminate(proc)


def test_simulated_users_sign_up_browse_and_open_tickets_through_tracs_pages(
    trac: tuple[str, Path], tmp_path: Path
) -> None:
    url, env = trac
    out = tmp_path / "run"
    argv = [
        "run",
        "--scenario",
        str(TRAC / "scenario.yaml"),
        "--target",
        url,
        "--speed",
        "max",
        "--duration",
        "3h",
        "--users",
        "3",
        "--seed",
        "5",
        "-q",
        "--out",
        str(out),
    ]
    proc = sim_engine(*argv, timeout=420, command=installed_command(), cwd=ROOT)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )
    actions = read_records(out / "actions.jsonl")
    users = read_records(out / "users.jsonl")
    assert users and all("page" in a for a in actions)  # nothing but pages
    # sign-up: every user that joined is in Trac's password file, and no one else
    accounts = {line.split(":", 1)[0] for line in (env / "htpasswd").read_text().splitlines()}
    signups = [a for a in actions if a["action"] == "sign_up"]
    assert {a["page"]["step"] for a in signups} >= {
        "goto /register",
        "click role=button name=Create account",
    }
    assert len(accounts) == len(users)
    # browsing: wiki pages opened by signed-in users
    wiki = [a for a in actions if a["action"] == "browse_wiki" and a["ok"]]
    assert any(a["page"]["url"].startswith(url + "/wiki/") for a in wiki)
    assert [a for a in actions if a["page"]["step"] == "wait_for text=logged in as" and a["ok"]]
    # the write: the tickets in Trac are the ones the flows opened, each by a user
    opened = [a for a in actions if a["page"]["step"] == "wait_for url=**/ticket/*" and a["ok"]]
    db = sqlite3.connect(env / "db" / "trac.db")
    try:
        tickets = db.execute("SELECT id, reporter FROM ticket").fetchall()
    finally:
        db.close()
    assert opened and len(tickets) == len(opened)
    assert {a["page"]["url"].split("#")[0] for a in opened} == {
        f"{url}/ticket/{t}" for t, _ in tickets
    }
    assert {reporter for _, reporter in tickets} <= accounts
    ok = sum(a["ok"] for a in actions)
    assert ok / len(actions) >= 0.95, [a["error"] for a in actions if not a["ok"]][:5]
