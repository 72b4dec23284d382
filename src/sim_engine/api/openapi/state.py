"""The OpenAPI import's result and the state its builder shares between its steps.

Part of :mod:`sim_engine.api.openapi` (internal: the package re-exports :class:`ImportResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim_engine.api.openapi.schemas import _Op

__all__ = ["ImportResult"]


@dataclass
class ImportResult:
    """A generated scenario and what the import noticed.

    Attributes:
        scenario: the scenario mapping (validates with ``validate_scenario``).
        title: the document's ``info.title``.
        source: where the document came from (for the header comment).
        operations: how many operations the document has.
        skipped: ``(METHOD PATH, reason)`` of operations not turned into actions.
        notes: action name -> comment lines written above it.
        header_notes: comment lines for the header (auth, target).
    """

    scenario: dict[str, Any]
    title: str = ""
    source: str = ""
    operations: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    header_notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: actions, auth scheme, memory keys."""
        api = self.scenario["api"]
        auth = api.get("auth") or {}
        scheme = auth.get("scheme", "none")
        parts = [f"{len(api['actions'])} actions"]
        if self.skipped:
            parts[0] += f" ({len(self.skipped)} operations skipped)"
        how = []
        if auth.get("signup"):
            how.append(f"sign-up {auth['signup']['method']} {auth['signup']['path']}")
        if auth.get("login"):
            how.append(f"login {auth['login']['method']} {auth['login']['path']}")
        parts.append(f"auth {scheme}" + (f" ({', '.join(how)})" if how else ""))
        memory = api.get("memory") or {}
        parts.append(f"memory: {', '.join(memory) if memory else 'none'}")
        return "; ".join(parts)


class _State:
    """What the builder's steps (collect, auth, actions) read and fill, for one document."""

    def __init__(self, doc: dict[str, Any], base_url: str | None, source: str) -> None:
        self.doc = doc
        self.source = source
        self.base_url = base_url
        self.result = ImportResult(scenario={})
        self.ops: list[_Op] = []
        self.prefix = ""
        self.target_url: str | None = None
        self.signup: _Op | None = None
        self.login: _Op | None = None
        self.user_resource: str | None = None
        self.seen_from: dict[str, list[tuple[_Op, str, str]]] = {}  # R -> (op, path, id field)
        self.own_from: dict[str, list[tuple[_Op, str, str]]] = {}
        self.refs_from: dict[str, list[tuple[_Op, str, str]]] = {}  # secondary references
        self.memory: dict[str, int] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}
        self.impossible: set[str] = set()

    def users_known(self) -> bool:
        """Whether the simulated users have ids on the target (a user resource or a sign-up)."""
        return bool(self.user_resource or self.signup)

    def resources(self) -> list[str]:
        """The resources the document's operations act on, sorted."""
        return sorted({op.resource for op in self.ops if op.resource})

    def filled(self, key: str) -> bool:
        """Whether some operation fills the memory key ``memory.seen_R`` / ``memory.own_R``."""
        kind, _, name = key.removeprefix("memory.").partition("_")
        if kind == "seen":
            return bool(self.seen_from.get(name) or self.refs_from.get(name))
        return bool(self.own_from.get(name))
