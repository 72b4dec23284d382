"""What the run created on the target, with how to delete it (``sim-engine cleanup``).

A *creating* action is a ``POST`` whose answer is one item an ``extract`` rule
takes whole or in part (a rule without ``[*]``; any rule into a key named in
``api.cleanup.delete``). Its item is a resource the run created, of the *kind*
of the list it goes to (lists of one kind: see :func:`kind_groups`). Its delete
handle is the action deleting that kind (``api.cleanup.delete``, else a
``DELETE`` action with ``forget`` of an item picked from a list of that kind)
and the item for each of that action's picks: the created item for the one it
forgets, and for the others (a comment's post) the item of the same kind the
creating action picked. When the answer arrives the target writes the resource
to its :class:`CreatedLog` (the run's ``state.db``), and removes it when an
action of the run deletes it (``forget``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sim_engine.engine.capabilities import Creation
from sim_engine.model.api_spec import ActionSpec, ApiSpec
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.templates import match_path
from sim_engine.targets.declarative._base import TargetBase
from sim_engine.targets.declarative._memory import UserState
from sim_engine.targets.transport import Response

__all__ = [
    "CreatedIndex",
    "CreatedLog",
    "CreatedMixin",
    "CreationPlan",
    "item_id",
    "match_call",
]

Picks = dict[str, tuple[str, dict[str, Any]]]
"""An action's picks: name -> (key picked from, item)."""


@runtime_checkable
class CreatedIndex(Protocol):
    """A :class:`CreatedLog` that can list one user's resources (``SqliteStore``)."""

    def created_by(self, user_id: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Return the resources ``user_id`` created, newest first: (kind, item id, data)."""
        ...


class CreatedLog(Protocol):
    """Where created resources are written (:class:`~sim_engine.engine.store.SqliteStore`)."""

    def save_created(self, user_id: int, kind: str, item_id: str, data: dict[str, Any]) -> None:
        """Record one resource (committed before returning)."""
        ...

    def remove_created(self, kind: str, item_id: str) -> None:
        """Forget one resource (deleted)."""
        ...


def item_id(item: dict[str, Any]) -> str:
    """Return an item's identity as JSON text: its ``id``, else its whole content."""
    if "id" in item:
        return json.dumps(item["id"], sort_keys=True, default=str)
    return json.dumps(item, sort_keys=True, default=str)


def _answer_item(body: bytes | str) -> dict[str, Any]:
    """The ``id`` of a JSON answer that is an object with one, else nothing."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return {"id": doc["id"]} if isinstance(doc, dict) and "id" in doc else {}


def _save(
    log: CreatedLog,
    request: ActionRequest,
    kind: str,
    key: str,
    item: dict[str, Any],
    handle: dict[str, Any] | None,
    why: str | None,
) -> None:
    data = {"action": request.action, "sim_time": request.sim_time, "item": item}
    log.save_created(request.user_id, kind, key, {**data, "delete": handle, "why": why})


def match_call(api: ApiSpec, method: str, path: str) -> tuple[str, Picks] | None:
    """The action of ``api`` a plugin's request is: the first of its ``method`` whose path
    template ``path`` fills (:func:`~sim_engine.model.templates.match_path`), with the
    items its path names (``/posts/7/comments`` -> ``{"post": ("memory.seen_posts",
    {"id": "7"})}``, values as strings); None when no action matches."""
    for name, action in api.actions.items():
        if action.method != method:
            continue
        values = match_path(action.path, path)
        if values is not None:
            picks = {p: (action.pick[p], dict(v)) for p, v in values.items() if p in action.pick}
            return name, picks
    return None


def kind_name(key: str) -> str:
    """The name of the kind of item ``key`` holds: ``memory.own_posts`` -> ``own_posts``."""
    return key.removeprefix("memory.")


@dataclass
class CreationPlan:
    """Which answers are created resources, and which action deletes each kind.

    Built from the ``api`` section and the target's kinds of lists (``group``:
    key -> kind number).

    Attributes:
        creates: creating action -> (index of its ``extract`` rule, key the item goes to).
        deleters: kind number -> (deleting action, the key of the kind it is named by).
        with_account: kind numbers the API deletes with their owner's account.
    """

    api: ApiSpec
    group: Callable[[str], int]
    creates: dict[str, tuple[int, str]] = field(default_factory=dict)
    deleters: dict[int, tuple[str, str]] = field(default_factory=dict)
    with_account: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        api = self.api
        for key, name in api.cleanup.delete.items():
            self.deleters.setdefault(self.group(key), (name, key))
        for name, action in api.actions.items():
            if action.method == "DELETE" and action.forget is not None:
                key = action.pick[action.forget]
                self.deleters.setdefault(self.group(key), (name, key))
        self.with_account = {self.group(key) for key in api.cleanup.with_account}
        for name, action in api.actions.items():
            rules = [
                (i, rule.to)
                for i, rule in enumerate(action.extract)
                if action.method in ("POST", "PUT")
                and ("[*]" not in rule.path or rule.to in api.cleanup.delete)
            ]
            if rules:  # the deletable kind first, then the whole answer, then own memory
                self.creates[name] = min(rules, key=lambda r: self._rank(action, *r))

    def _rank(self, action: ActionSpec, index: int, key: str) -> tuple[bool, bool, bool]:
        return (
            self.group(key) not in self.deleters,
            action.extract[index].path != "",
            not key.startswith("memory."),
        )

    def kind(self, key: str) -> str:
        """The name of the kind of item ``key`` holds (the deleting action's key, if any)."""
        deleter = self.deleters.get(self.group(key))
        return kind_name(deleter[1] if deleter is not None else key)

    def handle(
        self, creating: str, key: str, item: dict[str, Any], picks: Picks
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Return how to delete ``item`` (created by ``creating`` into ``key``), or why not.

        Returns:
            (``{"action": NAME, "picks": {name: item}}``, None), or (None, the reason).
        """
        deleter = self.deleters.get(self.group(key))
        if deleter is None:
            return None, f"no DELETE action forgets an item of {key}"
        name = deleter[0]
        action = self.api.actions[name]
        chosen: dict[str, dict[str, Any]] = {}
        for pick, pick_key in action.pick.items():
            if pick == action.forget:
                chosen[pick] = item
                continue
            same = [
                picked
                for other, (picked_key, picked) in sorted(picks.items(), key=lambda p: p[0] != pick)
                if self.group(picked_key) == self.group(pick_key)
            ]
            if not same:
                return None, f"{name} picks {pick} from {pick_key}, which {creating} did not pick"
            chosen[pick] = same[0]
        return {"action": name, "picks": chosen}, None


class CreatedMixin(TargetBase):
    """Records created resources and deletes them by their handle (see the module docstring).

    Attributes:
        created_log: where created resources are written (None: not recorded).
    """

    created_log: CreatedLog | None = None
    _plan: CreationPlan | None = None

    @property
    def creation_plan(self) -> CreationPlan:
        """The section's :class:`CreationPlan` (built once)."""
        if self._plan is None:
            self._plan = CreationPlan(self.api, self._memory.group)
        return self._plan

    def _record_created(
        self,
        request: ActionRequest,
        resp: Response,
        found: list[tuple[str, list[dict[str, Any]]]] | Outcome,
        picks: Picks,
    ) -> None:
        """An answer arrived: write the resource it created, if any, with its delete handle.

        A ``POST`` answered ``201 Created`` that keeps nothing of its answer (no
        creating ``extract`` rule) is written too, under the action's name and
        without a handle: cleanup reports it as staying. A ``PUT`` creates only when
        answered ``201 Created`` (a ``200`` replaced something that was there).
        """
        log = self.created_log
        if log is None or isinstance(found, Outcome):
            return
        if self.api.actions[request.action].method == "PUT" and resp.status != 201:
            return
        plan = self.creation_plan
        rule = plan.creates.get(request.action)
        if rule is None:
            if resp.status == 201 and self.api.actions[request.action].method == "POST":
                lost = f"{request.action} keeps nothing of its answer"
                self._record_stray(request, request.action, resp, lost)
            return
        key, items = found[rule[0]]
        for item in items:
            handle, why = plan.handle(request.action, key, item, picks)
            _save(log, request, plan.kind(key), item_id(item), item, handle, why)

    def _sending(
        self, request: ActionRequest, action: ActionSpec, method: str, path: str
    ) -> bytes | None:
        """Write ahead a request that may create something (see :class:`SendLog`): a
        ``POST`` that creates (or keeps nothing of its answer), a ``PUT`` that names a
        new resource (it picks nothing, or its path has a generator). Returns the key
        for :meth:`SendLog.answered`, None when nothing was written."""
        log = self.send_log
        if log is None or method not in ("POST", "PUT"):
            return None
        if method == "PUT" and action.pick and "{{" not in action.path:
            return None  # it changes the item it picked
        if method == "POST" and action.extract and request.action not in self.creation_plan.creates:
            return None  # it answers a list (a search)
        put = method == "PUT"
        return log.sending(request.user_id, request.sim_time, request.action, method, path, put)

    def _record_stray(self, request: ActionRequest, kind: str, resp: Response, why: str) -> None:
        """Write a resource an answer created that nothing says how to delete (it stays)."""
        if self.created_log is None:
            return
        item = _answer_item(resp.body)
        key = item_id(item) if "id" in item else f"{request.user_id}:{request.sim_time}"
        _save(self.created_log, request, kind, key, item, None, why)

    def _forget_deleted(self, picks: Picks, name: str) -> None:
        """A plugin's request deleted the item ``name`` (its fields from the path, strings):
        it no longer needs cleaning up, whether it was recorded with a number or a string."""
        if self.created_log is None:
            return
        key, item = picks[name]
        kind = self.creation_plan.kind(key)
        self.created_log.remove_created(kind, item_id(item))
        value = item.get("id")
        if isinstance(value, str) and value.lstrip("-").isdigit():
            self.created_log.remove_created(kind, item_id({**item, "id": int(value)}))

    def _forget(self, user: UserState, picks: Picks, name: str | None) -> None:
        """An action deleted the item it picked as ``name`` (None: it deletes nothing):
        forget it (every list of its kind); it no longer needs cleaning up."""
        if name is None:
            return
        key, item = pick = picks[name]
        self._memory.forget(user, pick)
        if self.created_log is not None:
            self.created_log.remove_created(self.creation_plan.kind(key), item_id(item))

    async def delete_created(self, request: ActionRequest, handle: dict[str, Any]) -> Outcome:
        """Send a recorded delete handle: its action, with exactly its picks (the user's
        lists and the shared pools are left as they are; the deleted item is forgotten).

        Args:
            request: the request (``action`` is the handle's action; the user is the
                resource's creator, logged in).
            handle: ``{"action": NAME, "picks": {name: item}}`` as recorded.

        Returns:
            the outcome (a skipped, failed one when the handle does not fit the section).
        """
        action = self.api.actions.get(str(handle.get("action")))
        picks = handle.get("picks")
        if action is None or not isinstance(picks, dict) or set(picks) != set(action.pick):
            error = f"delete handle does not fit the api section: {handle!r}"
            return Outcome(0, False, 0.0, error=error, skipped=True)
        chosen = {name: (action.pick[name], dict(item)) for name, item in picks.items()}
        user = self._memory.user(request.user_id)
        return await self._act_picked(request, action, user, chosen)

    def creations(self, user_id: int) -> list[Creation]:
        """What ``user_id`` created that its churn clean-up deletes before its account,
        newest first: recorded with a delete handle, not in doubt, of no kind
        ``api.cleanup.with_account`` says goes with the account (the
        :class:`~sim_engine.engine.capabilities.CreationCleaner` capability)."""
        log = self.created_log
        if not isinstance(log, CreatedIndex):
            return []
        with_account = {kind_name(key) for key in self.api.cleanup.with_account}
        found = []
        for kind, key, data in log.created_by(user_id):
            handle = data.get("delete")
            if kind in with_account or "in_doubt" in data or not isinstance(handle, dict):
                continue
            found.append(Creation(kind, key, str(handle.get("action")), handle))
        return found

    async def delete_creation(self, request: ActionRequest, creation: Creation) -> Outcome:
        """Send ``creation``'s delete handle; once deleted or gone (2xx, 404, 410) it is no
        longer recorded."""
        outcome = await self.delete_created(request, creation.handle)
        if self.created_log is not None and (outcome.ok or outcome.status in (404, 410)):
            self.created_log.remove_created(creation.kind, creation.item_id)
        return outcome

    async def _act_picked(
        self,
        request: ActionRequest,
        action: ActionSpec,
        user: UserState,
        picks: Picks,
    ) -> Outcome:  # pragma: no cover - overridden
        """Send an action with its items picked (the target's own)."""
        raise NotImplementedError

    async def send(self, request: ActionRequest) -> Outcome:  # pragma: no cover - overridden
        """The Target protocol's ``send`` (the target's own)."""
        raise NotImplementedError
