"""``sim-engine cleanup`` on an API that is not the demo's (issue 12, "Why" 1).

The forum (``forum_app``: FastAPI on 127.0.0.1) has its own routes, a sign-up
wrapped in an envelope, sessions in an ``X-Session-Key`` header, and replies
that are children of threads: a thread with replies and a member who still owns
anything cannot be deleted. One person was there before the run, with a thread
and a reply. A real ``sim-engine run`` acts on it through a scenario's ``api``
section whose memories keep only the two newest threads and replies of each
user; cleanup must still delete every thread, reply and member the run created
(from the resources recorded in ``state.db`` as their answers arrived), replies
before threads, members last, and nothing else: the forum's own records are
counted before and after. The old cleanup (POST ``/auth/login``, a 404 counted
as "already gone", exit 0) deleted nothing here; the memory-based one deleted
at most the two newest threads per user, threads before replies.
"""

from __future__ import annotations

import datetime as dt
import functools
import signal
import time
from pathlib import Path
from typing import Any

import yaml

import helpers
from forum_app import Forum, serve
from helpers import BUSY_START

#: These runs talk to a real server: give the command more time than the usual minute.
sim_engine = functools.partial(helpers.sim_engine, timeout=120)

TID = {"id": "tid"}
REPLY = "/api/threads/{reply.thread}/replies/{reply.id}"
WEIGHTS = {"browse": 3, "start_thread": 2, "reply": 3, "delete_reply": 0.4, "delete_thread": 0.4}


def scenario(tmp_path: Path, delete_replies: bool = True, reply_path: str = REPLY) -> Path:
    """The forum as a scenario's ``api`` section (``delete_replies``: with ``delete_reply``,
    at ``reply_path``)."""
    actions: dict[str, Any] = {
        "browse": {
            "path": "/api/threads",
            "expect": [200],
            "extract": [{"path": "threads[*]", "to": "memory.seen_threads", "fields": TID}],
        },
        "start_thread": {
            "method": "POST",
            "path": "/api/threads",
            "body": {"subject": "{{title}}"},
            "expect": [201],
            "extract": [{"path": "thread", "to": "memory.own_threads", "fields": TID}],
        },
        "reply": {
            "method": "POST",
            "path": "/api/threads/{thread.id}/replies",
            "pick": {"thread": "memory.seen_threads"},
            "body": {"text": "{{sentence}}"},
            "expect": [201],
            "extract": [
                {
                    "path": "reply",
                    "to": "memory.own_replies",
                    "fields": {"id": "rid", "thread": "tid"},
                },
            ],
            "fallback": "browse",
        },
        "delete_thread": {
            "method": "DELETE",
            "path": "/api/threads/{thread.id}",
            "pick": {"thread": "memory.own_threads"},
            "expect": [204],
            "forget": "thread",
            "fallback": "browse",
        },
        "delete_account": {"method": "DELETE", "path": "/api/members/{user.id}", "expect": [204]},
    }
    weights = dict(WEIGHTS)
    if delete_replies:
        actions["delete_reply"] = {
            "method": "DELETE",
            "path": reply_path,
            "pick": {"reply": "memory.own_replies"},
            "expect": [204],
            "forget": "reply",
            "fallback": "browse",
        }
    else:
        del weights["delete_reply"]
    data = {
        "name": "forum",
        "seed": 12,
        "population": {"initial": 6, "signups_per_day": 2},
        "lifecycle": {"enabled": False},
        "state": {"checkpoint_every_s": 3600, "checkpoint_every_sim_s": 31_536_000},
        "personas": {
            "member": {
                "share": 1,
                "sessions_per_day": 8,
                "actions": {"working": weights, "relaxing": weights},
            }
        },
        "api": {
            "auth": {
                "signup": {
                    "method": "POST",
                    "path": "/api/members",
                    "body": {"member": {"handle": "{user.username}", "secret": "{user.password}"}},
                    "expect": [201],
                },
                "login": {
                    "method": "POST",
                    "path": "/api/sessions",
                    "body": {"handle": "{user.username}", "secret": "{user.password}"},
                    "expect": [200],
                },
                "user_id_path": "member.uid",
                "login_user_id_path": "session.uid",
                "token_path": "session.key",
                "scheme": "header",
                "header": "X-Session-Key",
            },
            "memory": {"seen_threads": 20, "own_threads": 1, "own_replies": 1},
            "actions": actions,
        },
    }
    path = tmp_path / "forum.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def with_person(forum: Forum) -> tuple[int, int, int]:
    """The person who was there before the run: their id, their thread and reply."""
    person = forum.add_member("real.person", "pw-1")
    thread = next(forum.ids)
    forum.threads[thread] = person
    reply = next(forum.ids)
    forum.replies[reply] = (thread, person)
    return person, thread, reply


def run(url: str, tmp_path: Path, delete_replies: bool = True, reply_path: str = REPLY) -> Path:
    out = tmp_path / "run"
    proc = sim_engine(
        *("run", "--scenario", str(scenario(tmp_path, delete_replies, reply_path))),
        *("--target", url),
        *("--speed", "max", "--duration", "1d", "--start", BUSY_START, "--out", str(out), "-q"),
    )
    assert proc.returncode == 0, proc.stderr
    return out


def _summary(stdout: str, verb: str) -> tuple[set[str], str]:
    """The first line of cleanup's output, ``VERB a kind, b kind and n users``: the kinds'
    counts (a set) and the users' count."""
    first = stdout.splitlines()[0]
    assert first.startswith(verb + " "), stdout
    kinds, _, users = first.removeprefix(verb + " ").rpartition(" and ")
    return set(kinds.split(", ")), users


def test_cleanup_deletes_all_the_run_created_children_first_and_nothing_else(
    tmp_path: Path,
) -> None:
    forum = Forum()
    person, thread, reply = with_person(forum)
    original = forum.snapshot()
    with serve(forum) as url:
        out = run(url, tmp_path)
        members, threads, replies = before = forum.snapshot()
        run_members = set(members) - {person}
        run_threads = set(threads) - {thread}
        run_replies = set(replies) - {reply}
        # more than the memories keep (1 per user), and replies on the person's thread; at
        # --speed max against a live server the counts depend on the machine's load (stalled
        # answers let the clock run on), from about 15 threads for 10 members to 53 quietly
        assert len(run_threads) > len(run_members) and len(run_replies) > len(run_members)
        assert any(replies[r][0] == thread for r in run_replies)
        assert forum.deletes  # the run deleted some of its own: those are not tried again
        deleted_by_run = list(forum.deletes)

        dry = sim_engine("cleanup", str(out), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        # kinds in the order their newest resource was deleted: either may come first
        counts = {f"{len(run_replies)} own_replies", f"{len(run_threads)} own_threads"}
        assert _summary(dry.stdout, "would delete") == (counts, f"{len(run_members)} users")
        assert forum.snapshot() == before and forum.deletes == deleted_by_run

        done = sim_engine("cleanup", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert _summary(done.stdout, "deleted") == (counts, f"{len(run_members)} users"), lines
        assert "already gone" not in done.stdout and "stays" not in done.stdout
        assert forum.snapshot() == original  # exactly the records there before the run
        cleaned = forum.deletes[len(deleted_by_run) :]
        assert len(cleaned) == len(run_replies) + len(run_threads) + len(run_members)

        again = sim_engine("cleanup", str(out))
        assert (again.returncode, again.stdout.splitlines()[0]) == (0, "deleted 0 users")
        assert forum.snapshot() == original


def test_what_the_description_cannot_delete_stays_and_fails_the_command(tmp_path: Path) -> None:
    forum = Forum()
    person, thread, reply = with_person(forum)
    with serve(forum) as url:
        out = run(url, tmp_path, delete_replies=False)
        members, threads, replies = forum.snapshot()
        run_replies = set(replies) - {reply}
        assert run_replies
        stays = (
            f"stays on the target: {len(run_replies)} own_replies "
            "(no DELETE action forgets an item of memory.own_replies)"
        )
        dry = sim_engine("cleanup", str(out), "--dry-run")
        assert dry.returncode == 1, dry.stderr
        assert stays in dry.stdout.splitlines()

        done = sim_engine("cleanup", str(out))
        assert done.returncode == 1, done.stderr
        assert stays in done.stdout.splitlines(), done.stdout
        assert "Traceback" not in done.stderr
        left_members, left_threads, left_replies = forum.snapshot()
        assert left_replies == replies  # nothing could delete a reply
        # a thread with replies (409) and a member who still owns something stay; the rest went
        parents = {t for t, _ in replies.values()}
        assert left_threads == {t: a for t, a in threads.items() if t in parents}
        owners = {a for _, a in replies.values()} | set(left_threads.values())
        assert left_members == {u: h for u, h in members.items() if u in owners}
        assert person in left_members and left_threads[thread] == person


def test_what_a_killed_run_created_is_deleted_too(tmp_path: Path) -> None:
    """Killed (SIGKILL) with no checkpoint but the one at its start: the state holds every
    resource whose answer arrived, so cleanup still restores the forum exactly."""
    forum = Forum()
    with_person(forum)
    original = forum.snapshot()
    forum.freeze_at = 40  # then hold every request: nothing is created without an answer
    with serve(forum) as url:
        out = tmp_path / "run"
        proc = helpers.sim_engine_popen(
            *("run", "--scenario", str(scenario(tmp_path)), "--target", url),
            *("--speed", "max", "--duration", "30d", "--start", BUSY_START, "--out", str(out)),
            "-q",
        )
        try:
            deadline = time.monotonic() + 90
            while not forum.frozen:
                assert proc.poll() is None and time.monotonic() < deadline, "no freeze"
                time.sleep(0.05)
            time.sleep(1.0)  # the answers already sent reach the run
            proc.send_signal(signal.SIGKILL)
        finally:
            helpers.reap(proc)
        start = dt.datetime.fromisoformat(BUSY_START).timestamp()
        assert helpers.checkpoint_s(out / "state.db") in (None, start)  # none after the start
        forum.frozen, forum.freeze_at = False, None
        assert len(forum.threads) >= 40
        done = sim_engine("cleanup", str(out))
        # the creating requests held at the kill are in doubt (the forum made nothing of
        # them, but nothing told the run so): named with their paths, and exit 1
        doubts = [line for line in done.stdout.splitlines() if line.startswith("in doubt: ")]
        assert done.returncode == (1 if doubts else 0), done.stdout + done.stderr
        assert all(" sent with no answer (POST /api/" in line for line in doubts), doubts
        assert "stays" not in done.stdout
        assert forum.snapshot() == original


def test_deletes_that_all_answer_404_are_in_doubt_not_already_gone(tmp_path: Path) -> None:
    """A wrong delete path answers 404 like a resource already gone; the old cleanup said
    "already gone" and exited 0. When every delete of a kind answers 404, cleanup says it is
    in doubt, exits 1 and keeps those resources in the state (a second cleanup tries again)."""
    forum = Forum()
    with_person(forum)
    with serve(forum) as url:  # the run's own deletes of replies fail (404): it goes on
        out = run(url, tmp_path, reply_path="/api/replies/{reply.id}")
        _, _, replies = forum.snapshot()
        done = sim_engine("cleanup", str(out))
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert f"  own_replies: 0 deleted, {len(replies) - 1} already gone" in lines, lines
        assert (
            "in doubt: every delete of own_replies answered 404 or 410: gone already, "
            "or a wrong path in its delete action?"
        ) in lines
        assert forum.snapshot()[2] == replies  # indeed, not one was deleted
        again = sim_engine("cleanup", str(out), "--dry-run")
        assert f"  own_replies: {len(replies) - 1} to delete" in again.stdout.splitlines()
