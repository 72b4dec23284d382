"""The OpenAPI import's result and the state its builder shares between its steps.

Part of :mod:`sim_engine.api.openapi` (internal: the package re-exports :class:`ImportResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sim_engine.api.openapi.schemas import _Op

__all__ = ["ImportOptions", "ImportResult"]


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
        left_out: category -> labels of the skipped operations: ``destructive`` (kept
            with ``include_destructive``), ``ops`` and ``processes`` (kept with
            ``include_ops``), ``other``.
    """

    scenario: dict[str, Any]
    title: str = ""
    source: str = ""
    operations: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    header_notes: list[str] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)

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

    def report(self) -> list[str]:
        """A few lines for ``init``: the auth inferred, actions never possible as
        generated, and the operations left out by category (with the flag that keeps them)."""
        auth = self.scenario["api"].get("auth") or {}
        scheme = str(auth.get("scheme", "none"))
        how = {
            "bearer": "Authorization: Bearer TOKEN",
            "token": f"Authorization: {auth.get('prefix') or 'Token'} TOKEN",
            "header": f"{auth.get('header')}: TOKEN",
            "basic": "HTTP Basic with each user's name and password",
            "api_key": f"one API key in {auth.get('header')}"
            + (" (replace CHANGE-ME)" if auth.get("api_key") == "CHANGE-ME" else ""),
            "none": "no credentials",
        }.get(scheme, scheme)
        lines = [f"auth: {scheme}: {how}"]
        if auth.get("login"):
            lines[0] += f"; token at {auth.get('token_path')} of {auth['login']['path']}"
        weights = self.scenario.get("personas", {}).get("writer", {}).get("actions", {})
        never = sorted(
            name for name in self.scenario["api"]["actions"]
            if all(state.get(name, 0) == 0 for state in weights.values())
        )  # fmt: skip
        if never and weights:
            lines.append(f"weight 0 (see the comment above each): {_labels(never)}")
        for category, text in _CATEGORY.items():
            labels = self.left_out.get(category, [])
            if labels:
                lines.append(f"left out: {len(labels)} " + text.format(n=_labels(labels)))
        return lines


@dataclass(frozen=True)
class ImportOptions:
    """What ``init --from-openapi`` may override or keep.

    Attributes:
        auth_prefix: the word before the token in ``Authorization`` (``Token``,
            ``JWT``...; None: from the document, else ``Bearer``).
        include_destructive: keep operations that delete or rewrite whole collections
            (``DELETE /records``), flush or reset data, and admin and permission
            endpoints.
        include_ops: keep operational endpoints (health, heartbeat, version, metadata,
            ``__api__``, the API root...) and what starts or stops server processes
            (kernels, terminals...).
        api_key: a key every request sends (``scheme: api_key``), whatever the document
            says (Jupyter Server's ``token T``; None: inferred).
        api_key_header: the header it goes in (None: the document's ``apiKey`` scheme's,
            else ``Authorization``).
    """

    auth_prefix: str | None = None
    include_destructive: bool = False
    include_ops: bool = False
    api_key: str | None = None
    api_key_header: str | None = None


_CATEGORY = {
    "destructive": "destructive or admin ({n}; --include-destructive keeps them)",
    "ops": "operational ({n}; --include-ops keeps them)",
    "processes": "starting or stopping server processes ({n}; --include-ops keeps them)",
    "other": "not simulated ({n}; reasons in the file's header)",
}


def _labels(labels: list[str], limit: int = 4) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


class Producer(NamedTuple):
    """An operation whose answers fill a memory key."""

    op: _Op
    where: str  # where the items are in the answer ("[*]", "data[*]", "comment", "")
    fields: dict[str, str]  # stored field -> path inside each item


class _State:
    """What the builder's steps (collect, auth, actions) read and fill, for one document."""

    def __init__(
        self, doc: dict[str, Any], base_url: str | None, source: str, options: ImportOptions
    ) -> None:
        self.doc = doc
        self.options = options
        self.auth_prefix = options.auth_prefix
        self.source = source
        self.base_url = base_url
        self.result = ImportResult(scenario={})
        self.ops: list[_Op] = []
        self.prefix = ""
        self.target_url: str | None = None
        self.signup: _Op | None = None
        self.login: _Op | None = None
        self.user_resource: str | None = None
        self.item_params: dict[str, set[str]] = {}  # R -> path parameters naming its items
        self.assumed: set[str] = set()  # resources whose undeclared id is assumed
        self.seen_from: dict[str, list[Producer]] = {}  # R -> list operations
        self.own_from: dict[str, list[Producer]] = {}  # R -> create operations
        self.refs_from: dict[str, list[Producer]] = {}  # R -> answers referring to R
        self.path_values: dict[str, dict[int, str]] = {}  # op label -> segment -> placeholder
        self.memory: dict[str, int] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}
        self.impossible: set[str] = set()
        self.field_problems: list[str] = []  # why the action being built cannot be filled
        self.not_mine: dict[str, str] = {}  # pick of another user -> the field that is not ours

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
