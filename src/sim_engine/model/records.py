"""Value types that cross the seams: what the engine asks a target to do, what
comes back, and the records that sinks receive.

All are frozen, slotted dataclasses. Simulated times are simulated epoch
seconds (UTC) inside the engine and ISO 8601 strings with the user's local
offset once rendered into a record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

__all__ = [
    "ActionRecord",
    "ActionRequest",
    "DaySnapshot",
    "LifecycleRecord",
    "Outcome",
    "PageStep",
    "Record",
    "Sink",
    "Store",
    "Target",
    "UserRecord",
]


@dataclass(slots=True)  # read-only by convention: frozen costs 8x to build
class ActionRequest:
    """One planned action, bound to the user's memory, for a target to perform.

    Attributes:
        action: action name (``browse_feed``, ``read_post``, ``create_post``,
            ``update_post``, ``delete_post``, ``sign_up``, ``log_in``).
        user_id: the engine's id for the user.
        sim_time: simulated epoch seconds at dispatch.
        sim_time_iso: the same instant, ISO 8601 with the user's local offset.
        token: the user's auth token (None before log-in). Never recorded.
        post_id: the post acted on (read/update/delete), as the target knows it.
        offset: feed offset (``browse_feed``).
        limit: feed page size (``browse_feed``).
        payload: JSON body for create/update/sign-up/log-in.
        remote_user_id: the user's id on the target (``delete_account``).
    """

    action: str
    user_id: int
    sim_time: float
    sim_time_iso: str
    token: str | None = None
    post_id: int | None = None
    offset: int = 0
    limit: int = 20
    payload: dict[str, Any] | None = None
    remote_user_id: int | None = None


@dataclass(frozen=True, slots=True)
class PageStep:
    """One step of a browser flow (a page view, a click, a fill...), as measured.

    Attributes:
        step: what the step did (``goto /popular``, ``click test_id=post-link``).
        url: the page's URL after the step.
        status: HTTP status of the page's document (0: none, the step failed first).
        ok: the step did what it meant to.
        latency_ms: wall milliseconds the step took.
        ttfb_ms / dcl_ms / load_ms: Navigation Timing of the document the step opened
            (wall milliseconds from its start to ``responseStart``, to
            ``domContentLoadedEventEnd``, to ``loadEventEnd``); None when the step
            opened no new document.
        console_errors: ``console.error`` messages and uncaught page errors during the step.
        failed_requests: requests that failed during the step (network error, blocked
            by the loopback guard), as ``METHOD URL: reason``.
        error: one-line reason when not ok.
        sim_offset_s: simulated seconds from the action's dispatch to the step (the
            think times of the steps before it; 0 for the first step).
        screenshot: the PNG taken when the step failed, relative to the run's output
            directory (``screenshots/...``); None when none was taken.
    """

    step: str
    url: str
    status: int
    ok: bool
    latency_ms: float
    ttfb_ms: float | None = None
    dcl_ms: float | None = None
    load_ms: float | None = None
    console_errors: tuple[str, ...] = ()
    failed_requests: tuple[str, ...] = ()
    error: str | None = None
    sim_offset_s: float = 0.0
    screenshot: str | None = None


@dataclass(slots=True)  # read-only by convention: frozen costs 8x to build
class Outcome:
    """What a target answered.

    Attributes:
        status: HTTP status (0 when no response arrived: connection error, timeout).
        ok: the action did what it meant to.
        latency_ms: wall milliseconds from send to full response.
        error: one-line reason when not ok (with a body excerpt for bad answers).
        post_id: id of the post created, read, updated or deleted.
        feed_ids: ids and authors of the posts on the page the user saw
            (``browse_feed``), as ``(post_id, author_remote_id)`` pairs.
        view_count: the post's view count after a read, when the API reports it.
        token: a new auth token (``log_in``).
        remote_id: the user's id on the target (``sign_up``).
        endpoint: ``METHOD /path/{template}`` the action used (None when not HTTP).
        skipped: the action was not sent (circuit open, kill switch).
        retries: how many times it was retried before this outcome.
        intended: a deliberate error (error simulation, seed 004): counted apart
            from real failures.
        pages: a browser flow's steps (one record each); empty for API calls.
        sim_elapsed_s: simulated seconds the action itself spanned (the think times
            between a browser flow's steps); the user's next step counts from its end.
            0 for API calls.
    """

    status: int
    ok: bool
    latency_ms: float
    error: str | None = None
    post_id: int | None = None
    feed_ids: tuple[tuple[int, int], ...] | None = None
    view_count: int | None = None
    token: str | None = None
    remote_id: int | None = None
    endpoint: str | None = None
    skipped: bool = False
    retries: int = 0
    intended: bool = False
    pages: tuple[PageStep, ...] = ()
    sim_elapsed_s: float = 0.0


@dataclass(slots=True)  # read-only by convention: frozen costs 8x to build
class ActionRecord:
    """One action taken, as written to ``actions.jsonl``.

    Attributes:
        sim_time: ISO 8601 simulated time with the user's local offset.
        sim_ts: the same, as simulated epoch seconds (for sorting and bucketing).
        user_id: the engine's id for the user.
        persona: persona name.
        state: routine state when acting (``working`` or ``relaxing``).
        action: action name.
        status: HTTP status (0: no response).
        ok: success.
        latency_ms: wall milliseconds.
        post_id: post acted on, if any.
        session_id: the user's session number (per user, from 1).
        error: reason when not ok.
        endpoint: ``METHOD /path/{template}``, when the target reports it.
        skipped: not sent (circuit open, kill switch).
        retries: retries before this outcome.
        intended: a deliberate error (error simulation), not a real failure.
        page: for a browser step, its measures: ``index`` (its place in the flow,
            from 0), ``step``, ``url``, ``ttfb_ms``,
            ``dcl_ms``, ``load_ms``, ``console_errors`` and ``failed_requests`` (lists
            of one-line messages); None (and left out of the dict) for API calls.
    """

    sim_time: str
    sim_ts: float
    user_id: int
    persona: str
    state: str
    action: str
    status: int
    ok: bool
    latency_ms: float
    post_id: int | None = None
    session_id: int = 0
    error: str | None = None
    endpoint: str | None = None
    skipped: bool = False
    retries: int = 0
    intended: bool = False
    page: dict[str, Any] | None = None
    kind: str = field(default="action", init=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (without ``page`` when None: API records keep their shape)."""
        data = asdict(self)
        if data["page"] is None:
            del data["page"]
        return data


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user that joined (signed up on the target), as written to ``users.jsonl``.

    Never carries the password or token. ``segment`` is the user's lifecycle
    segment (``Premium``...; None when the scenario's lifecycle is off).
    """

    sim_time: str
    sim_ts: float
    user_id: int
    persona: str
    name: str
    email: str
    timezone: str
    avatar: str
    tag: str | None
    remote_id: int | None
    segment: str | None = None
    kind: str = field(default="user", init=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LifecycleRecord:
    """A change in a user's long-term state, as written to ``lifecycle.jsonl``.

    Attributes:
        sim_time: ISO 8601 simulated time with the user's local offset.
        sim_ts: the same, in simulated epoch seconds.
        user_id: the engine's id for the user.
        change: ``state`` (lifecycle state), ``pattern`` (activity pattern),
            ``event`` (life event) or ``cleanup`` (removed from the target).
        old: value before (written as ``from``).
        new: value after (written as ``to``).
        reason: why.
    """

    sim_time: str
    sim_ts: float
    user_id: int
    change: str
    old: str
    new: str
    reason: str
    kind: str = field(default="lifecycle", init=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with ``from`` and ``to`` keys."""
        return {
            "sim_time": self.sim_time,
            "sim_ts": self.sim_ts,
            "user_id": self.user_id,
            "change": self.change,
            "from": self.old,
            "to": self.new,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DaySnapshot:
    """The population at the end of a simulated day (run-relative, 24 simulated hours).

    Attributes:
        day_start_ts / day_end_ts: the day's bounds (simulated epoch seconds).
        total_users: users the engine knows (churned-but-kept included).
        state_distribution: lifecycle state -> users.
        pattern_distribution: activity pattern -> users (not churned).
        engagement_by_state: lifecycle state -> mean engagement score.
    """

    day_start_ts: float
    day_end_ts: float
    total_users: int
    state_distribution: dict[str, int]
    pattern_distribution: dict[str, int]
    engagement_by_state: dict[str, float]
    kind: str = field(default="day", init=False)

    @property
    def sim_ts(self) -> float:
        """The day's end (simulated epoch seconds), like every record's ``sim_ts``."""
        return self.day_end_ts

    @property
    def sim_time(self) -> str:
        """The day's end as ISO 8601 in UTC, like every record's ``sim_time``."""
        return datetime.fromtimestamp(self.day_end_ts, timezone.utc).isoformat(
            timespec="milliseconds"
        )


Record = ActionRecord | UserRecord | LifecycleRecord | DaySnapshot


class Sink(Protocol):
    """Receives records as they happen (observers never reach into the engine)."""

    def emit(self, record: Record) -> None:
        """Take one record; must not block for long (the engine calls it inline)."""
        ...

    def close(self) -> None:
        """Flush and release resources; called once at the end of a run."""
        ...


class Target(Protocol):
    """What users act on: an HTTP API, an in-process app, a mock.

    A target turns an :class:`ActionRequest` into a call and the answer into an
    :class:`Outcome`. It must never raise for a failed call (a refused
    connection, a timeout, a 500, a non-JSON body): those are outcomes with
    ``ok=False`` and a one-line ``error``.
    """

    async def send(self, request: ActionRequest) -> Outcome:
        """Perform one action and report what happened."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once at the end of a run."""
        ...


class Store(Protocol):
    """Keeps the population across crashes (the engine writes through; see ``store.py``).

    ``save_user`` is called at every event that must not be forgotten (a user
    created, a sign-up, a created or deleted resource); ``checkpoint`` saves the
    engine's state and every changed user together, atomically.
    """

    def save_user(self, user: Any) -> None:
        """Persist one user now (a :class:`~sim_engine.model.population.SimUser`)."""
        ...

    def remove_user(self, user_id: int) -> None:
        """Forget a user (deleted from the target, or never joined)."""
        ...

    def checkpoint(self, state: dict[str, Any], users: Any) -> None:
        """Atomically save the engine ``state`` and the given users."""
        ...
