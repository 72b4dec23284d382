"""Creations in doubt: sent, never answered (the process was killed mid-request).

The declarative target writes each request that may create something to the run's
journal (``dispatched.log``) before it goes out, and marks it answered once what it
created is in ``state.db``. A request without its mark is *in doubt*: on resume it
is moved into ``state.db``, and ``sim-engine cleanup`` reports it (per action, with
method and path) and exits 1; one that named its resource (a ``PUT`` to a path) is
deleted by that path when a ``DELETE`` action of the section fills it (a 404 says it
was never made). Before, such requests left no trace: cleanup said nothing and
exited 0 while the forum kept what they made.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path
from typing import Any

import helpers
from forum_app import Forum, serve
from helpers import signup_payload
from sim_engine.engine.journal import DispatchJournal, read_journal, read_unanswered
from sim_engine.engine.store import SqliteStore
from sim_engine.model.api_spec import ApiSpec
from sim_engine.runs.created import IN_DOUBT_KIND, keep_created
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.transport import Response
from test_cleanup_any_api import run
from test_declarative import Call, FakeTransport, req

sim_engine = functools.partial(helpers.sim_engine, timeout=120)

API = ApiSpec.model_validate(
    {
        "memory": {"own_notes": 5, "own_pages": 5},
        "actions": {
            "write": {
                "method": "POST",
                "path": "/notes",
                "extract": [{"path": "", "to": "memory.own_notes"}],
            },
            "search": {  # a POST answering a list creates nothing
                "method": "POST",
                "path": "/search",
                "extract": [{"path": "[*]", "to": "memory.own_notes"}],
            },
            "put_page": {  # names its resource: a new page
                "method": "PUT",
                "path": "/pages/{{uuid}}",
                "expect": [201],
                "extract": [{"path": "", "to": "memory.own_pages", "fields": {"id": "name"}}],
            },
            "edit_page": {  # changes the page it picked: creates nothing
                "method": "PUT",
                "path": "/pages/{page.id}",
                "pick": {"page": "memory.own_pages"},
            },
            "drop_page": {
                "method": "DELETE",
                "path": "/pages/{page.id}",
                "pick": {"page": "memory.own_pages"},
                "forget": "page",
            },
        },
    }
)


def answers(call: Call) -> tuple[int, Any]:
    if call.path == "/search":
        return 200, [{"id": 1}]
    if call.method == "PUT":
        return 201, {"name": call.path.rsplit("/", 1)[1]}
    return 201, {"id": 9}


def no_answer(error: str, call: Call) -> Response:
    return Response(0, b"", 1.0, error)


def test_the_journal_keeps_creations_waiting_for_their_answer_across_a_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dispatched.log"
    journal = DispatchJournal(path)
    journal.dispatched(3, 100.0, 160.0, 2)
    first = journal.sending(3, 100.0, "write", "POST", "/notes", False)
    second = journal.sending(4, 101.5, "put_page", "PUT", "/pages/p%201", True)
    journal.answered(first)
    journal.reset()  # a checkpoint: the answered one and the progress line go
    assert read_journal(path) == {}
    journal.dispatched(5, 200.0, 230.0, 0)
    [doubt] = read_unanswered(path)
    assert doubt[1:] == (4, 101.5, "put_page", "PUT", "/pages/p%201", True)
    assert read_journal(path)[5].sim_t == 200.0  # its lines do not disturb the progress
    journal.answered(second)
    journal.close()
    assert read_unanswered(path) == []
    path.write_bytes(path.read_bytes() + b"c torn 3 1.0 write POS")  # a kill mid-write
    assert read_unanswered(path) == []


async def test_the_target_writes_ahead_what_may_create_and_marks_it_answered(
    tmp_path: Path,
) -> None:
    journal = DispatchJournal(tmp_path / "dispatched.log")
    target = DeclarativeTarget(FakeTransport(answers), API)
    target.send_log = journal
    for action in ("write", "search", "put_page", "edit_page"):
        assert (await target.send(req(action, 2))).ok, action
    lines = (tmp_path / "dispatched.log").read_bytes().splitlines()
    written = [line.split()[4:6] for line in lines if line.startswith(b"c ")]
    assert written == [[b"write", b"POST"], [b"put_page", b"PUT"]]  # not search, not edit
    assert len([line for line in lines if line.startswith(b"a ")]) == 2
    assert read_unanswered(tmp_path / "dispatched.log") == []

    held = asyncio.Event()

    class Hanging:  # the request goes out; the process dies before the answer
        async def request(self, *args: Any, **kwargs: Any) -> Response:
            held.set()
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    for error, in_doubt in (("timeout", True), ("Cannot connect to host 127.0.0.1:9", False)):
        target.transport = FakeTransport(functools.partial(no_answer, error))
        assert not (await target.send(req("write", 2))).ok
        assert bool(read_unanswered(tmp_path / "dispatched.log")) is in_doubt, error
        journal.reset()
        journal._waiting.clear()  # (the timed-out one, written again at each checkpoint)
        journal.reset()
    # a sign-up that timed out may have made the account (Kinto's slow bcrypt did)
    api = ApiSpec.model_validate({"auth": {"signup": {"method": "POST", "path": "/accounts"}},
                                  "actions": {"me": {"path": "/me"}}})  # fmt: skip
    signing = DeclarativeTarget(FakeTransport(functools.partial(no_answer, "timeout")), api)
    signing.send_log = journal
    assert not (await signing.send(req("sign_up", 7, payload=signup_payload("bo")))).ok
    [account] = read_unanswered(tmp_path / "dispatched.log")
    assert (account.user_id, account.action, account.path) == (7, "sign_up", "/accounts")
    journal._waiting.clear()
    journal.reset()

    target.transport = Hanging()  # type: ignore[assignment]
    task = asyncio.ensure_future(target.send(req("put_page", 2)))
    await held.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    [doubt] = read_unanswered(tmp_path / "dispatched.log")
    assert (doubt.user_id, doubt.action, doubt.method, doubt.named) == (2, "put_page", "PUT", True)
    assert doubt.path.startswith("/pages/")

    # a resume moves it into state.db, with the DELETE that the path it named fills
    store = SqliteStore(tmp_path / "state.db", create=True)
    keep_created(target, store, "s", fresh=False, restart=False, journal=journal)
    [(_, user, kind, _, data)] = [r for r in store.created() if r[2].startswith(IN_DOUBT_KIND)]
    assert (user, kind) == (2, "in doubt: put_page")
    name = doubt.path.rsplit("/", 1)[1]
    assert data["delete"] == {"action": "drop_page", "picks": {"page": {"id": name}}}
    assert data["in_doubt"]["method"] == "PUT"
    keep_created(target, store, "s", fresh=False, restart=False, journal=journal)
    assert len(store.created()) == 1  # kept once
    store.close()
    journal.close()


def test_cleanup_reports_creations_in_doubt_and_deletes_those_that_named_their_path(
    tmp_path: Path,
) -> None:
    forum = Forum()
    with serve(forum) as url:
        out = run(url, tmp_path)
        store = SqliteStore(out / "state.db", create=False)
        users = {u.user_id: u.remote_id for u in store.saved_users() if u.remote_id is not None}
        store.close()
        user_id, member = next(iter(users.items()))
        made = next(forum.ids)  # a PUT reached the forum; its answer never came back
        forum.threads[made] = member
        original = forum.snapshot()
        journal = out / "dispatched.log"
        with journal.open("ab") as log:  # written ahead, then the process was killed
            log.write(b"c k1 %d 1.5 start_thread POST 0 /api/threads\n" % user_id)
            log.write(b"c k2 %d 2.5 put_thread PUT 1 /api/threads/%d\n" % (user_id, made))
            log.write(b"c k3 %d 3.5 put_thread PUT 1 /api/threads/999999\n" % user_id)
            log.write(b"c k4 %d 4.5 start_thread POST 0 /api/threads\n" % user_id)
            log.write(b"a k4\n")  # answered: not in doubt

        dry = sim_engine("cleanup", str(out), "--dry-run")
        assert dry.returncode == 1, dry.stdout + dry.stderr
        assert "in doubt: 2 put_thread sent with no answer (PUT /api/threads/" in dry.stdout, (
            dry.stdout
        )
        assert forum.snapshot() == original

        done = sim_engine("cleanup", str(out))
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert (
            "in doubt: 1 start_thread sent with no answer (POST /api/threads): "
            "made or not, nothing names them: check the target"
        ) in lines, lines
        assert "sent with no answer before: 1 deleted, 1 never made" in lines, lines
        assert made not in forum.threads  # the PUT that was made is deleted
        assert forum.snapshot()[0] == {}  # and every member the run made, with it
        again = sim_engine("cleanup", str(out))
        assert again.returncode == 1
        assert "sent with no answer before" not in again.stdout  # settled ones stay settled
        assert "in doubt: 1 start_thread sent with no answer" in again.stdout


def test_a_resume_names_creations_in_doubt_and_keeps_them_for_cleanup(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--target", "inprocess", "--speed", "max", "--duration", "3d", "--users", "10"]
    args += ["--seed", "3", "-q", "--out", str(out)]
    code, stderr = helpers.interrupt_after_checkpoint(args, out, settle_s=0.2)
    assert code == 0, stderr
    with (out / "dispatched.log").open("ab") as log:  # as if killed mid-request
        log.write(b"c zz.1 1 1.5 create_post POST 0 /posts\n")
    resumed = sim_engine("run", "--resume", str(out), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert (
        "sim-engine: in doubt, sent with no answer before the stop: 1 create_post "
        "(POST /posts); `sim-engine cleanup` reports them"
    ) in resumed.stdout.splitlines(), resumed.stdout
    store = SqliteStore(out / "state.db", create=False)
    try:
        doubts = [r for r in store.created() if r[2] == IN_DOUBT_KIND + "create_post"]
    finally:
        store.close()
    assert [(r[1], r[4]["in_doubt"]["path"]) for r in doubts] == [(1, "/posts")]
    assert read_unanswered(out / "dispatched.log") == []  # the resumed run's checkpoints
