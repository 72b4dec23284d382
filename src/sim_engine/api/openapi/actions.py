"""The actions step of the OpenAPI import: one action per operation, memory, personas.

Part of :mod:`sim_engine.api.openapi` (internal).
"""

from __future__ import annotations

import re
from typing import Any

from sim_engine.api.openapi.paths import _PathSteps
from sim_engine.api.openapi.schemas import _map, _norm, _Op, _singular, _snake
from sim_engine.api.openapi.values import _SKIP, _Values

__all__ = ["OWN_BOUND", "SEEN_BOUND"]

SEEN_BOUND = 50
"""How many items each ``seen_R`` memory keeps (newest kept)."""

OWN_BOUND = 100
"""How many items each ``own_R`` memory keeps."""


# Starter weights per kind of action: (reader working, reader relaxing,
# writer working, writer relaxing). Reads far exceed writes.
_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "list": (5.0, 6.0, 3.0, 3.0),
    "read": (4.0, 6.0, 3.0, 4.0),
    "other_read": (0.3, 0.5, 0.3, 0.5),
    "create": (0.05, 0.1, 1.5, 2.0),
    "update": (0.02, 0.03, 0.8, 1.0),
    "delete": (0.01, 0.01, 0.2, 0.3),
    "other_write": (0.1, 0.2, 1.0, 1.5),
}
_HOUSEKEEPING = re.compile(r"log_?out|sign_?out|refresh|revoke", re.I)
_OPS_FIRST = re.compile(
    r"(health|healthz|livez|readyz|ready|ping|heartbeat|lbheartbeat|metrics|version|status|"
    r"info|metadata|server[-_]?info|api[-_]docs|(openapi|swagger|spec)(\.json|\.yaml)?|"
    r"docs|redoc|contribute\.json|robots\.txt|favicon\.ico|batch)",
    re.I,
)
_DUNDER = re.compile(r"__\w+__")
_API_PREFIX = re.compile(r"api|rest|v\d+(\.\d+)*")  # /api/v1/... : the root is below them
_WIPE = re.compile(r"_*(flush|purge|reset|wipe|truncate|drop|nuke)(_all)?_*", re.I)
_PROCESSES = frozenset(
    {"kernels", "terminals", "processes", "workers", "runners", "containers", "pods", "vms",
     "machines", "instances", "executors"}
)  # fmt: skip
"""Collections whose items are processes the server starts (Jupyter's kernels and
terminals): creating, restarting or stopping one is operating the server."""
_ADMIN_SEGMENTS = (
    "admin", "internal", "debug", "_internal", "permissions", "permission", "roles", "acl",
    "acls", "grants", "policies", "superuser", "sudo",
)  # fmt: skip


class _ActionSteps(_PathSteps):
    """Turns operations into actions, declares memory and writes the starter personas."""

    def _excluded(self, op: _Op) -> tuple[str, str] | None:
        """``(category, reason)`` of an operation left out unless asked for (None: kept).

        Categories: ``destructive`` (kept by ``include_destructive``): a ``DELETE`` on a
        collection, flush/purge/reset endpoints, admin and permission endpoints;
        ``ops`` (kept by ``include_ops``): health, heartbeat, version, metadata, the API
        root, ``__dunder__`` endpoints, batch; ``processes`` (kept by ``include_ops``
        too): what starts, restarts or stops a process on the server (any method but
        ``GET`` under ``kernels``, ``terminals``, ``containers``...; and ``sessions``
        in a document that has such processes: Jupyter's sessions start kernels).
        """
        lower = [s.lower() for s in op.segments]
        if not self.options.include_destructive:
            if any(s in _ADMIN_SEGMENTS for s in lower):
                return "destructive", "admin or permission endpoint: simulated users do not call it"
            if any(_WIPE.fullmatch(s) for s in lower):
                return "destructive", "flushes or resets data"
            if op.method == "DELETE" and self._whole_collection(op):
                return "destructive", "deletes a whole collection"
        if not self.options.include_ops:
            meaningful = [s for s in lower if not _API_PREFIX.fullmatch(s)]
            if not meaningful:
                return "ops", "the API root (server metadata), not user behaviour"
            first = meaningful[0].strip("_")
            if _OPS_FIRST.fullmatch(first) or any(_DUNDER.fullmatch(s) for s in lower):
                return "ops", "operational endpoint, not user behaviour"
            if op.method != "GET" and self._starts_processes(lower):
                return "processes", "starts, restarts or stops a process on the server"
        return None

    def _starts_processes(self, segments: list[str]) -> bool:
        """Whether a path is under a collection of server processes (see ``_excluded``)."""
        if any(s in _PROCESSES for s in segments):
            return True
        if "sessions" not in segments:
            return False
        return any(s.lower() in _PROCESSES for o in self.ops for s in o.segments)

    def _whole_collection(self, op: _Op) -> bool:
        """Whether a ``DELETE`` acts on a collection: its path ends with a literal segment that
        a list or create operation uses too, or a plural noun (``/records``; not ``/follow``)."""
        if op.last_is_param() or not op.segments:
            return False
        if any(o.path == op.path and o.kind in ("list", "create") for o in self.ops):
            return True
        last = _snake(op.segments[-1])
        return _singular(last) != last

    def _skip_reason(self, op: _Op) -> str | None:
        if op is self.signup:
            return "the sign-up: api.auth.signup"
        if op is self.login:
            return "the log-in: api.auth.login"
        excluded = self._excluded(op)
        if excluded is not None:
            return excluded[1]
        if op.method == "POST" and _HOUSEKEEPING.search(f"{op.path} {op.spec.get('operationId')}"):
            return "token housekeeping: the engine logs in again when needed"
        if op.spec.get("deprecated"):
            return "deprecated"
        partial = [s for s in op.segments if "{" in s and not re.fullmatch(r"\{[^{}]+\}", s)]
        if partial:
            return f"a path parameter inside a segment ({partial[0]}) is not supported"
        _, required, other = op.request_schema()
        if other and required:
            media = ", ".join(str(m) for m in _map(op.spec["requestBody"].get("content")))
            return f"request body is {media}, not JSON"
        for param in op.params:
            if param.get("in") == "cookie" and param.get("required"):
                return f"needs cookie {param.get('name')!r}"
        return None

    def _action(self, op: _Op) -> None:
        """Turn an operation into an action of ``api.actions`` (or note why it is skipped)."""
        reason = self._skip_reason(op)
        if reason is not None:
            if op is not self.signup and op is not self.login:
                self.result.skipped.append((op.label, reason))
                excluded = self._excluded(op)
                category = excluded[0] if excluded else "other"
                self.result.left_out.setdefault(category, []).append(op.label)
            return
        self.field_problems = []
        self.not_mine = {}
        picks: dict[str, str] = {}
        notes: list[str] = [
            f"{op.label}" + (f": {op.spec['summary']}" if op.spec.get("summary") else "")
        ]
        values = _Values(self, picks)
        path, forget = self._action_path(op, values, picks, notes)
        name = op.name = self._action_name(op, path)
        action: dict[str, Any] = {"method": op.method, "path": path}
        if op.method in ("PUT", "PATCH") and "{user.id}" in path:
            values.user_fields = True  # the user's own profile: keep the identity it logs in with
        query, headers = _parameters(op, values)
        if query:
            action["query"] = query
        _add_body(action, op, values)
        if headers:
            action["headers"] = headers
        action["expect"] = op.expect()
        if picks:
            action["pick"] = picks
        where = {n: {f: {"ne": f"{{user.{f}}}"}} for n, f in self.not_mine.items() if n in picks}
        if where and op.method != "GET":
            action["where"] = where  # following, messaging...: another user, not oneself
        extract = self._extract(op)
        if extract:
            action["extract"] = extract
        if forget is not None:
            action["forget"] = forget
        self._note_impossible(name, op, action, notes)
        self.actions[name] = action
        self.kinds[name] = op.kind
        self.result.notes[name] = notes

    def _action_name(self, op: _Op, path: str) -> str:
        """The action's name: ``delete_account`` for the ``DELETE`` of the user's own
        account (churn clean-up and ``cleanup`` delete users with it), else ``_name``."""
        if _deletes_own_account(op, path) and "delete_account" not in self.actions:
            return "delete_account"
        return self._name(op)

    def _note_impossible(
        self, name: str, op: _Op, action: dict[str, Any], notes: list[str]
    ) -> None:
        """Give an action weight 0 when nothing fills its picks or it deletes the user."""
        picks: dict[str, str] = action.get("pick", {})
        missing = sorted({k for k in picks.values() if not self.filled(k)})
        if missing:
            self.impossible.add(name)
            notes.append(
                f"never possible as generated: nothing fills {', '.join(missing)} "
                "(weight 0; give it a producer, or a pool)"
            )
        elif self.field_problems:
            self.impossible.add(name)
            notes += [f"never possible as generated: {p} (weight 0)" for p in self.field_problems]
        elif _deletes_own_account(op, action["path"]):
            self.impossible.add(name)
            notes.append("deletes the simulated user's own account: weight 0 on purpose")

    def _declare_memory(self) -> None:
        used: set[str] = set()
        for action in self.actions.values():
            used.update(action.get("pick", {}).values())
            used.update(rule["to"] for rule in action.get("extract", []))
        keys = sorted(used, key=lambda k: (k.split("_", 1)[-1], k))
        for key in keys:
            name = key.removeprefix("memory.")
            self.memory[name] = SEEN_BOUND if name.startswith("seen_") else OWN_BOUND

    def _fallback(self) -> str | None:
        for kind in ("list", "other_read"):
            for name, action in self.actions.items():
                if self.kinds[name] == kind and not action.get("pick"):
                    return name
        return None

    def _personas(self) -> dict[str, Any]:
        def weights(column: int) -> dict[str, float]:
            out = {
                name: 0.0 if name in self.impossible else _WEIGHTS[self.kinds[name]][column]
                for name in self.actions
            }
            if not any(w > 0 for w in out.values()):
                out = dict.fromkeys(out, 1.0)
            return out

        return {
            "reader": {
                "description": "Mostly browses and reads; rarely writes.",
                "share": 0.8,
                "sessions_per_day": 3,
                "actions": {"working": weights(0), "relaxing": weights(1)},
            },
            "writer": {
                "description": "Creates and edits often; reads too.",
                "share": 0.2,
                "sessions_per_day": 5,
                "actions": {"working": weights(2), "relaxing": weights(3)},
            },
        }


def _parameters(op: _Op, values: _Values) -> tuple[dict[str, Any], dict[str, str]]:
    """Values for the operation's required query parameters and headers."""
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for param in op.params:
        where, pname = param.get("in"), str(param.get("name"))
        if not param.get("required") or where not in ("query", "header"):
            continue
        if where == "header" and pname.lower() in ("authorization", "content-type", "accept"):
            continue
        value = values.scalar(_norm(param.get("schema")), pname)
        if value is _SKIP:
            value = "{{word}}"
        if where == "query":
            query[pname] = value
        else:
            headers[pname] = str(value)
    return query, headers


def _add_body(action: dict[str, Any], op: _Op, values: _Values) -> None:
    """Set ``action["body"]`` from the operation's JSON request schema (if it has one)."""
    schema, required, _ = op.request_schema()
    if schema is None:
        return
    body = (
        values.object(_norm(schema), required=True, depth=0)
        if _norm(schema).get("type", "object") == "object"
        else values.value(_norm(schema), "body", depth=0, required=True)
    )
    wrappers = [
        w for w in ("data", "item", "attributes") if w in (_norm(schema).get("properties") or {})
    ]
    if body == {} and wrappers:
        body = {wrappers[0]: {}}  # an envelope the server expects even when nothing is in it
    if body is not _SKIP:
        action["body"] = body
    elif required:
        action["body"] = {}


def _deletes_own_account(op: _Op, path: str) -> bool:
    """Whether an operation deletes the simulated user's own account (``DELETE`` of an
    item whose path the user's id fills)."""
    return op.method == "DELETE" and op.kind == "delete" and "{user.id}" in path
