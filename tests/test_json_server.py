"""Proof on an API nobody here wrote: json-server 0.17 driven by a scenario's ``api`` section.

The test uses json-server as ``.ci/run`` installs it (``npm ci`` in ``examples/json-server``,
locked by its ``package-lock.json``; the test itself installs nothing), starts it on
127.0.0.1 with a copy of the seeded ``db.json``, runs one simulated day through the
real command exactly as the contract says, then checks the run against
json-server's own data (read back over its HTTP API): posts created, some updated
and deleted only by their authors, comments attached to existing posts, follows
accounted for, and no status its action does not expect.

It fails (never skips) when Node or json-server are missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import installed_command, sim_engine, terminate
from sim_engine.demo.launcher import find_free_port
from sim_engine.model.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "json-server"
SCENARIO = EXAMPLE / "scenario.yaml"
#: Actions only ``sim-engine cleanup`` uses: no persona draws them.
CLEANUP_ONLY = {"delete_comment"}


@dataclass(frozen=True)
class JsonServer:
    """A running json-server: its base URL, its data file and its log."""

    base_url: str
    db_path: Path
    log_path: Path


def _get(base_url: str, path: str) -> Any:
    with urllib.request.urlopen(base_url + path, timeout=10) as resp:
        assert resp.status == 200, f"GET {path}: {resp.status}"
        return json.loads(resp.read())


def _install() -> Path:
    """Return json-server's executable, as ``.ci/run`` installs it (the test installs nothing)."""
    if shutil.which("node") is None:
        pytest.fail("json-server needs Node.js on PATH (Debian: apt-get install nodejs npm)")
    binary = EXAMPLE / "node_modules" / ".bin" / "json-server"
    if not binary.exists():
        pytest.fail("json-server is not installed: run `bash scripts/test-deps.sh` (.ci/run does)")
    return binary


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonServer]:
    """json-server 0.17 on a free 127.0.0.1 port, over a copy of the seeded db.json."""
    binary = _install()
    work = tmp_path_factory.mktemp("json-server")
    db_path = work / "db.json"
    shutil.copyfile(EXAMPLE / "db.json", db_path)  # json-server writes every change back
    log_path = work / "json-server.log"
    port = find_free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", str(port), str(db_path)],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base_url, "/posts")
                break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"json-server did not answer on {base_url} "
                        f"(exit {proc.poll()}): {log_path.read_text('utf-8')[-2000:]}"
                    )
                time.sleep(0.1)
        yield JsonServer(base_url, db_path, log_path)
    finally:
        terminate(proc)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; none for a missing file, blank lines skipped."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Day:
    """One simulated day against json-server, and json-server's data afterwards.

    Attributes:
        actions, users: the run's ``actions.jsonl`` and ``users.jsonl``.
        usernames: engine user id -> username (the email's local part).
        seed: the seeded ``db.json``.
        posts, comments, follows: json-server's collections after the run.
        requests: json-server's own request log: (method, path, status), in order.
        out: the run directory.
    """

    actions: list[dict[str, Any]]
    users: list[dict[str, Any]]
    usernames: dict[int, str]
    seed: dict[str, Any]
    posts: list[dict[str, Any]]
    comments: list[dict[str, Any]]
    follows: list[dict[str, Any]]
    requests: list[tuple[str, str, int]]
    out: Path


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_LOG_RE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) (\d{3}) ")


def _requests(log_path: Path) -> list[tuple[str, str, int]]:
    """json-server's request log (morgan's ``dev`` format: ``METHOD URL STATUS ...``)."""
    found = []
    for line in log_path.read_text("utf-8", errors="replace").splitlines():
        match = _LOG_RE.match(_ANSI_RE.sub("", line).strip())
        if match:
            found.append((match.group(1), match.group(2), int(match.group(3))))
    return found


@pytest.fixture(scope="module")
def day(json_server: JsonServer, tmp_path_factory: pytest.TempPathFactory) -> Day:
    """Run the contract's command once: ``--speed max --duration 1d --seed 7``."""
    out = tmp_path_factory.mktemp("json-server-run") / "out"
    run = ["run", "--scenario", str(SCENARIO), "--target", json_server.base_url]
    contract = ["--speed", "max", "--duration", "1d", "--seed", "7", "--out", str(out), "-q"]
    proc = sim_engine(*run, *contract, timeout=120, command=installed_command(), cwd=ROOT)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
    )
    base = json_server.base_url
    users = _read_jsonl(out / "users.jsonl")
    return Day(
        actions=_read_jsonl(out / "actions.jsonl"),
        users=users,
        usernames={u["user_id"]: u["email"].split("@", 1)[0] for u in users},
        seed=json.loads((EXAMPLE / "db.json").read_text("utf-8")),
        posts=_get(base, "/posts"),
        comments=_get(base, "/comments"),
        follows=_get(base, "/follows"),
        requests=_requests(json_server.log_path),
        out=out,
    )


def _ok(day: Day, action: str) -> list[dict[str, Any]]:
    return [r for r in day.actions if r["action"] == action and r["ok"]]


def _run_posts(day: Day) -> list[dict[str, Any]]:
    """Posts written during the run (seeded posts are never deleted: their ids stay theirs)."""
    seeded = {p["id"] for p in day.seed["posts"]}
    return [p for p in day.posts if p["id"] not in seeded]


def _served(day: Day, method: str, pattern: str, status: int) -> list[str]:
    """Paths json-server logged for ``method`` matching ``pattern`` with ``status``."""
    return [
        path
        for m, path, code in day.requests
        if m == method and code == status and re.fullmatch(pattern, path)
    ]


def test_the_day_ran_and_every_status_was_expected(day: Day) -> None:
    api = load_scenario(SCENARIO).api
    assert api is not None
    assert len(day.actions) > 200, f"only {len(day.actions)} actions in a simulated day"
    unexpected = []
    for record in day.actions:
        if record.get("skipped") or record.get("intended"):
            continue
        action = api.actions.get(record["action"])
        if action is None:  # sign-up and log-in: nothing is sent to json-server
            if not record["ok"]:
                unexpected.append(record)
        elif record["status"] not in action.expect:
            unexpected.append(record)
    assert not unexpected, f"{len(unexpected)} unexpected statuses, e.g. {unexpected[:3]}"
    by_type = Counter(r["action"] for r in day.actions)
    for name in set(api.actions) - CLEANUP_ONLY:
        assert by_type[name] > 0, f"no {name} in {dict(by_type)}"
    reads = sum(
        n for name, n in by_type.items() if getattr(api.actions.get(name), "method", "") == "GET"
    )
    writes = sum(n for name, n in by_type.items() if name in api.actions) - reads
    assert reads > 3 * writes, f"reads {reads} do not far exceed writes {writes}"


def test_json_server_saw_no_unexpected_error(day: Day) -> None:
    """json-server's own log: no 5xx, and the only 4xx is a read of a post deleted meanwhile."""
    assert len(day.requests) > 200, f"json-server logged only {len(day.requests)} requests"
    errors = [r for r in day.requests if r[2] >= 400]
    unexpected = [r for r in errors if not (r[0] == "GET" and re.fullmatch(r"/posts/\d+", r[1]))]
    assert not unexpected, f"json-server answered {unexpected[:5]}"
    assert all(r[2] == 404 for r in errors)
    # What json-server did is what the run recorded.
    assert len(_served(day, "POST", "/posts", 201)) == len(_ok(day, "create_post"))
    assert len(_served(day, "PATCH", r"/posts/\d+", 200)) == len(_ok(day, "update_post"))
    assert len(_served(day, "DELETE", r"/posts/\d+", 200)) == len(_ok(day, "delete_post"))
    assert len(_served(day, "POST", "/comments", 201)) == len(_ok(day, "comment"))


def test_posts_were_created_by_the_runs_users(day: Day) -> None:
    created, deleted = _ok(day, "create_post"), _ok(day, "delete_post")
    assert created, "no post was created"
    assert day.usernames, "users.jsonl is empty: the run's users cannot be named"
    run_posts = _run_posts(day)
    # json-server's ids are max+1 and reused once the newest post is deleted; counting
    # is exact whatever the ids: only the run's users write posts.
    assert len(run_posts) == len(created) - len(deleted)
    strangers = {p.get("author") for p in run_posts} - set(day.usernames.values())
    assert not strangers, f"posts by authors who are not the run's users: {strangers}"


def test_posts_were_updated_and_deleted_only_by_their_authors(day: Day) -> None:
    assert _ok(day, "update_post"), "no post was updated"
    assert _ok(day, "delete_post"), "no post was deleted"
    updated = [p for p in day.posts if "updatedBy" in p]
    assert updated, "no updated post is left on json-server"
    wrong = [p for p in updated if p["updatedBy"] != p["author"]]
    assert not wrong, f"posts updated by someone else than their author: {wrong[:3]}"
    now = {p["id"]: p for p in day.posts}
    for post in day.seed["posts"]:
        assert now.get(post["id"]) == post, f"seeded post {post['id']} was changed or deleted"
    # Per user, the posts left are exactly those it created minus those it deleted:
    # had anyone deleted another's post, both users' counts would be off.
    left = Counter(p["author"] for p in _run_posts(day))
    balance = Counter(day.usernames[r["user_id"]] for r in _ok(day, "create_post"))
    balance.subtract(day.usernames[r["user_id"]] for r in _ok(day, "delete_post"))
    off = {u: (n, left[u]) for u, n in balance.items() if n != left[u]}
    assert not off, f"user: (created - deleted, left on json-server): {off}"


def test_comments_are_attached_to_existing_posts(day: Day) -> None:
    assert _ok(day, "comment"), "no comment was written"
    run_comments = [c for c in day.comments if c not in day.seed["comments"]]
    assert run_comments, "no comment written during the run is left on json-server"
    assert all(c in day.comments for c in day.seed["comments"]), "a seeded comment is gone"
    assert all(c.get("author") in day.usernames.values() for c in run_comments)
    # json-server deletes a post's comments with it, but accepts a comment on a post
    # deleted a moment before (a stale page): such a comment waits for the next delete.
    posts = {str(p["id"]) for p in day.posts}
    deleted = {path.rsplit("/", 1)[1] for path in _served(day, "DELETE", r"/posts/\d+", 200)}
    orphans = [c for c in day.comments if str(c["postId"]) not in posts]
    stray = [c for c in orphans if str(c["postId"]) not in deleted]
    assert not stray, f"comments on posts that never existed: {stray[:3]}"


def test_follows_are_accounted_for(day: Day) -> None:
    seeded = day.seed["follows"]
    assert all(f in day.follows for f in seeded), "a seeded follow is gone"
    assert _ok(day, "follow"), "nobody followed anyone"
    left = Counter(f["follower"] for f in day.follows if f not in seeded)
    balance = Counter(day.usernames[r["user_id"]] for r in _ok(day, "follow"))
    balance.subtract(day.usernames[r["user_id"]] for r in _ok(day, "unfollow"))
    off = {u: (n, left[u]) for u, n in balance.items() if n != left[u]}
    assert not off, f"user: (follows - unfollows, left on json-server): {off}"
    assert sum(left.values()) == sum(balance.values())


def test_json_server_kept_its_data_file(day: Day, json_server: JsonServer) -> None:
    """json-server writes every change to its file: the same data as its API serves."""
    on_disk = json.loads(json_server.db_path.read_text("utf-8"))
    assert on_disk["posts"] == day.posts
    assert on_disk["comments"] == day.comments
    assert on_disk["follows"] == day.follows
    assert on_disk["profile"] == day.seed["profile"]


def test_cleanup_restores_json_servers_data(day: Day, json_server: JsonServer) -> None:
    """Every post, comment and follow the run made is gone (comments by ``delete_comment``,
    which no persona draws); the seed stays. Last: it changes json-server's data."""
    assert len(day.posts) > len(day.seed["posts"]) and len(day.comments) > len(day.seed["comments"])
    proc = sim_engine("cleanup", str(day.out), timeout=120, command=installed_command(), cwd=ROOT)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    for name in ("posts", "comments", "follows"):
        assert _get(json_server.base_url, "/" + name) == day.seed[name], (name, proc.stdout)
