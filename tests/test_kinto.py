"""Proof on a real third-party API with HTTP Basic auth: Kinto 26 (issue 12, item 7).

Kinto is installed by ``scripts/test-deps.sh`` in ``examples/kinto/.venv`` (pinned in
``examples/kinto/requirements.txt``; the test installs nothing) and started here on a free
127.0.0.1 port with ``examples/kinto/kinto.ini`` (memory backends: every start is empty).
The test seeds it as an operator would (an ``admin`` account that reads everything, a
public ``welcome`` bucket with one collection and three records), runs one simulated day
of ``examples/kinto/scenario.yaml`` through the real command, then checks the run against
Kinto's own data read back over its API: accounts, buckets, collections and records
counted exactly, every record written into its author's own bucket, the seed untouched,
and at least 99% of outcomes expected. Then ``sim-engine cleanup`` must restore the
counts exactly, and a scenario ``init --from-openapi`` writes from Kinto's own document,
run unedited, must reach 90% success.

It fails (never skips) when Kinto is not installed or does not start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import installed_command, sim_engine, terminate
from realapi import (
    ROOT,
    Http,
    basic_auth,
    failures,
    ok,
    read_records,
    run_day,
    start_server,
    success_rate,
)
from sim_engine.demo.launcher import find_free_port
from sim_engine.model.scenario import load_scenario

EXAMPLE = ROOT / "examples" / "kinto"
SCENARIO = EXAMPLE / "scenario.yaml"
KINTO = EXAMPLE / ".venv" / "bin" / "kinto"
ADMIN = basic_auth("admin", "admin-password-1")
SEED_RECORDS = 3
#: Actions only ``sim-engine cleanup`` uses: no persona draws them.
CLEANUP_ONLY = {"delete_section", "delete_notebook", "delete_account"}


@dataclass(frozen=True)
class Counts:
    """Kinto's own record counts, read as the ``admin`` account (reads everything)."""

    accounts: int
    buckets: int
    collections: int
    records: int


def _start(work: Path) -> tuple[Any, Http]:
    """Kinto on a free port over ``kinto.ini``: (process, admin client)."""
    port = find_free_port()
    admin = Http(f"http://127.0.0.1:{port}/v1", ADMIN)
    proc = start_server(
        [str(KINTO), "start", "--ini", str(EXAMPLE / "kinto.ini"), "--port", str(port)],
        cwd=work,
        log_path=work / "kinto.log",
        ready=lambda: admin.call("GET", "/__heartbeat__")[0] == 200,
    )
    return proc, admin


def _seed(admin: Http) -> None:
    """What an operator sets up before users come: the admin and a public welcome bucket."""
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/accounts", {"data": {"id": "admin", "password": "admin-password-1"}}),
        (
            "PUT",
            "/buckets/welcome",
            {"data": {"title": "Welcome"}, "permissions": {"read": ["system.Authenticated"]}},
        ),
        (
            "PUT",
            "/buckets/welcome/collections/guides",
            {"data": {"title": "Guides", "bucket": "welcome"}},
        ),
    ]
    calls += [
        (
            "POST",
            "/buckets/welcome/collections/guides/records",
            {"data": {"title": f"Guide {i}", "bucket": "welcome", "collection": "guides"}},
        )
        for i in range(SEED_RECORDS)
    ]
    for method, path, body in calls:
        status, answer, _ = admin.call(method, path, body)
        assert status == 201, f"seeding {method} {path}: {status} {answer}"


def _all(admin: Http, path: str) -> list[dict[str, Any]]:
    """Every object of a Kinto list, following its ``Next-Page`` links."""
    found: list[dict[str, Any]] = []
    url = path + ("&" if "?" in path else "?") + "_limit=500"
    while url:
        status, body, headers = admin.call("GET", url)
        assert status == 200, f"GET {url}: {status} {body}"
        found += body["data"]
        next_page = headers.get("Next-Page")
        url = next_page.split("/v1", 1)[1] if next_page else ""
    return found


@dataclass(frozen=True)
class World:
    """Kinto's data: accounts, buckets, collections and records (with their parents)."""

    accounts: list[dict[str, Any]]
    buckets: list[dict[str, Any]]
    collections: list[dict[str, Any]]
    records: list[dict[str, Any]]

    @property
    def counts(self) -> Counts:
        return Counts(
            len(self.accounts), len(self.buckets), len(self.collections), len(self.records)
        )


def _world(admin: Http) -> World:
    buckets = _all(admin, "/buckets")
    collections = [
        {**c, "_bucket": b["id"]}
        for b in buckets
        for c in _all(admin, f"/buckets/{b['id']}/collections")
    ]
    records = [
        {**r, "_bucket": c["_bucket"], "_collection": c["id"]}
        for c in collections
        for r in _all(admin, f"/buckets/{c['_bucket']}/collections/{c['id']}/records")
    ]
    return World(_all(admin, "/accounts"), buckets, collections, records)


@pytest.fixture(scope="module")
def kinto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Http]:
    """A seeded Kinto on 127.0.0.1: its admin client."""
    proc, admin = _start(tmp_path_factory.mktemp("kinto"))
    try:
        _seed(admin)
        yield admin
    finally:
        terminate(proc)


@dataclass(frozen=True)
class Day:
    """One simulated day against Kinto: the run's records and Kinto's data before and after."""

    out: Path
    actions: list[dict[str, Any]]
    usernames: dict[int, str]
    before: World
    after: World


@pytest.fixture(scope="module")
def day(kinto: Http, tmp_path_factory: pytest.TempPathFactory) -> Day:
    before = _world(kinto)
    out = tmp_path_factory.mktemp("kinto-run") / "out"
    run_day(SCENARIO, kinto.base_url.removesuffix("/v1"), out)
    users = read_records(out / "users.jsonl")
    return Day(
        out=out,
        actions=read_records(out / "actions.jsonl"),
        usernames={u["user_id"]: u["email"].split("@", 1)[0] for u in users},
        before=before,
        after=_world(kinto),
    )


def test_the_day_ran_with_expected_outcomes(day: Day) -> None:
    api = load_scenario(SCENARIO).api
    assert api is not None
    # ~560 actions on an idle machine; far fewer on a loaded one, where Kinto's bcrypt
    # makes sign-ups take seconds and, at --speed max, the day goes on without the user.
    assert len(day.actions) > 150, f"only {len(day.actions)} actions in a simulated day"
    rate = success_rate(day.actions)
    assert rate >= 0.99, f"success {rate:.2%}: {failures(day.actions).most_common(5)}"
    by_type = Counter(r["action"] for r in day.actions if r["ok"])
    missing = [name for name in api.actions if by_type[name] == 0 and name not in CLEANUP_ONLY]
    assert not missing, f"never succeeded: {missing} ({dict(by_type)})"


def test_kintos_counts_match_the_run(day: Day) -> None:
    """Every account, bucket, collection and record the run says it made is in Kinto."""
    before, after = day.before.counts, day.after.counts
    assert before == Counts(1, 1, 1, SEED_RECORDS)
    signups = ok(day.actions, "sign_up")
    assert len(signups) == len(day.usernames) > 10
    assert after.accounts == before.accounts + len(signups)
    assert after.buckets == before.buckets + len(ok(day.actions, "create_notebook"))
    assert after.collections == before.collections + len(ok(day.actions, "create_section"))
    written = len(ok(day.actions, "create_note")) - len(ok(day.actions, "delete_note"))
    assert ok(day.actions, "delete_note"), "no note was deleted"
    assert after.records == before.records + written
    assert {a["id"] for a in day.after.accounts} == {"admin", *day.usernames.values()}


def test_notes_were_written_by_their_notebooks_owners(day: Day) -> None:
    """Basic auth made each request as its user: Kinto let each write only in its own bucket."""
    owners = {b["id"]: b.get("owner") for b in day.after.buckets}
    run_records = [r for r in day.after.records if r["_bucket"] != "welcome"]
    assert run_records, "no note of the run is left in Kinto"
    wrong = [r for r in run_records if r["author"] != owners[r["_bucket"]]]
    assert not wrong, f"notes in someone else's notebook: {wrong[:3]}"
    assert all(
        r["bucket"] == r["_bucket"] and r["collection"] == r["_collection"] for r in run_records
    )
    # Edited notes left (a loaded machine's short day may have deleted the few edited).
    edited = [r for r in run_records if "updated_by" in r]
    assert all(r["updated_by"] == r["author"] for r in edited), edited[:3]
    # Per user, the notes left are those it wrote minus those it deleted.
    left = Counter(r["author"] for r in run_records)
    balance = Counter(day.usernames[r["user_id"]] for r in ok(day.actions, "create_note"))
    balance.subtract(day.usernames[r["user_id"]] for r in ok(day.actions, "delete_note"))
    off = {u: (n, left[u]) for u, n in balance.items() if n != left[u]}
    assert not off, f"user: (written - deleted, left in Kinto): {off}"


def test_the_seed_is_untouched(day: Day) -> None:
    seeded = [r for r in day.before.records if r["_bucket"] == "welcome"]
    assert [r for r in day.after.records if r["_bucket"] == "welcome"] == seeded
    assert [b for b in day.after.buckets if b["id"] == "welcome"] == day.before.buckets


def test_cleanup_restores_kintos_counts(day: Day, kinto: Http) -> None:
    """Every note, section, notebook and account the run made is gone; the seed stays."""
    made = day.after.counts
    assert made.accounts > 1 and made.buckets > 1 and made.records > SEED_RECORDS, made
    proc = sim_engine("cleanup", str(day.out), timeout=120, command=installed_command(), cwd=ROOT)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    cleaned = _world(kinto)
    assert cleaned.counts == day.before.counts, proc.stdout
    assert cleaned.records == day.before.records


def test_unedited_import_reaches_90_percent(tmp_path: Path) -> None:
    """``init --from-openapi`` on Kinto's own document, run as written, on a fresh Kinto.

    ``--users 15`` (a run option, as in the edited scenario): the default 50 users' bcrypt
    sign-ups alone would take a minute.
    """
    proc, admin = _start(tmp_path)
    try:
        _seed(admin)
        accounts_before = len(_all(admin, "/accounts"))
        scenario = tmp_path / "imported.yaml"
        made = sim_engine(
            "init",
            "--from-openapi",
            admin.base_url + "/__api__",
            "-o",
            str(scenario),
            command=installed_command(),
            cwd=tmp_path,
        )
        assert made.returncode == 0, made.stderr
        run_day(scenario, admin.base_url.removesuffix("/v1"), tmp_path / "out", "--users", "15")
        signed_up = len(_all(admin, "/accounts"))
        # the import names DELETE /accounts/{id} delete_account: cleanup deletes the users
        # (the buckets an unedited run makes are private to their users: not counted here)
        cleaned = sim_engine(
            "cleanup", str(tmp_path / "out"), timeout=120, command=installed_command(), cwd=ROOT
        )
        accounts_after = len(_all(admin, "/accounts"))
    finally:
        terminate(proc)
    actions = read_records(tmp_path / "out" / "actions.jsonl")
    rate = success_rate(actions)
    assert rate >= 0.90, f"success {rate:.2%}: {failures(actions).most_common(8)}"
    assert signed_up > accounts_before
    # Kinto keeps a deleted account's buckets: a churned user's clean-up deletes them first
    # (else cleanup could only report them: "stays on the target", exit 1)
    assert cleaned.returncode == 0, (cleaned.stdout, cleaned.stderr)
    assert "stays" not in cleaned.stdout and "in doubt" not in cleaned.stdout, cleaned.stdout
    assert accounts_after == accounts_before, cleaned.stdout
