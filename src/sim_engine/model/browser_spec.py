"""The ``browser`` section: a share of users act through a real browser's page flows.

A flow is a list of steps, each a one-key mapping::

    browser:
      share: 0.2                  # of users (chosen by seed and user id), 0..1
      max_contexts: 4             # browser contexts open at once (one per active user)
      session_cookie: sim_session # absent from a user's browser: run the `login` flow first
      login: log_in
      actions:                    # persona action -> flows and their weights
        browse_feed: {home: 40, search: 15}
      flows:
        log_in:
          - goto: /login
          - fill: {test_id: username, value: "{user.username}"}
          - fill: {test_id: password, value: "{user.password}"}
          - click: {role: button, name: Log in}
        home:
          - goto: /
          - click: {test_id: post-link, pick: random}
          - wait_for: {test_id: post-title}
          - extract: {test_id: post-title, into: last_title}

Steps: ``goto`` (a path on the base URL, or a URL; placeholders allowed), ``click``,
``fill`` (``value``: a template with the same placeholders and generators as request
templates: ``{user.username}``, ``{memory.KEY}``, ``{{title}}``...), ``wait_for`` (an
element, or ``url``: a glob the page's URL must match), ``extract`` (an element's text,
or its attribute ``attr``, or -- with ``url``, a regular expression -- a part of the
page's URL, into the user's browser memory ``into``, which later steps read as
``{memory.KEY}``; ``into: answer.FIELD`` instead gives the mapped action's API answer
that field: the flow's answer is kept in the user's API memory, and recorded for
``sim-engine cleanup``, as the API's own answer would be). An element is found by
exactly one of ``role`` (with an optional accessible ``name``), ``text``, ``test_id``
(``data-testid``) or ``css``; ``pick`` chooses among several matches (``first``,
``last``, ``random``). A step marked ``optional: true`` that fails ends the flow
without failing it (nothing to click).
Actions a browser user draws that have no flow go to the API as for everyone else.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim_engine.model.plugin_spec import PluginCatalog
from sim_engine.model.templates import template_problem

__all__ = [
    "STEP_KINDS",
    "BrowserSpec",
    "StepSpec",
    "check_browser",
    "demo_browser",
    "demo_browser_data",
]

STEP_KINDS = ("goto", "click", "fill", "wait_for", "extract")
"""The step kinds a flow may use."""

_LOCATORS = ("role", "text", "test_id", "css")
_ALLOWED: dict[str, frozenset[str]] = {
    "goto": frozenset({"path"}),
    "click": frozenset({*_LOCATORS, "name", "pick"}),
    "fill": frozenset({*_LOCATORS, "name", "pick", "value"}),
    "wait_for": frozenset({*_LOCATORS, "name", "pick", "url"}),
    "extract": frozenset({*_LOCATORS, "name", "pick", "into", "attr", "url"}),
}


_FIELDS = ("path", "role", "name", "text", "test_id", "css", "value", "url", "into", "attr")


class StepSpec(BaseModel):
    """One step of a flow (see the module docstring); written as ``{KIND: ...}``.

    Attributes:
        kind: one of :data:`STEP_KINDS`.
        path: ``goto``'s path (relative to the base URL) or URL; a template.
        role / name / text / test_id / css: how the element is found.
        pick: which of several matching elements (``first``, ``last``, ``random``).
        value: ``fill``'s text, a template.
        url: ``wait_for``'s URL glob (``**/p/*``), or ``extract``'s regular expression
            searched in the page's URL (its first group, else the whole match, is read).
        into: ``extract``'s memory key, or ``answer.FIELD``: a field of the answer the
            API would have given the mapped action (``answer.id``: the post the flow
            created), kept in the user's API memory as that answer would be.
        attr: the attribute ``extract`` reads instead of the element's text.
        optional: a failure ends the flow quietly instead of failing it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["goto", "click", "fill", "wait_for", "extract"]
    path: str | None = Field(None, min_length=1)
    role: str | None = None
    name: str | None = None
    text: str | None = None
    test_id: str | None = None
    css: str | None = None
    pick: Literal["first", "last", "random"] = "first"
    value: Any = None
    url: str | None = None
    into: str | None = Field(None, pattern=r"^(answer\.)?[A-Za-z_][A-Za-z0-9_]*$")
    attr: str | None = None
    optional: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "kind" in data:
            return data
        kinds = [k for k in data if k in STEP_KINDS]
        if len(kinds) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(STEP_KINDS)}")
        kind = kinds[0]
        rest = {k: v for k, v in data.items() if k != kind}
        body = data[kind]
        if kind == "goto":
            return {"kind": kind, "path": body, **rest}
        if not isinstance(body, dict):
            raise ValueError(f"{kind}: expected a mapping like {{test_id: ...}}")
        return {"kind": kind, **body, **rest}

    @model_validator(mode="after")
    def _fields_fit(self) -> StepSpec:
        kind = self.kind
        given = {f for f in _FIELDS if getattr(self, f) is not None}  # a dump's None too
        extra = sorted(given - _ALLOWED[kind])
        if extra:
            raise ValueError(f"{kind}: {', '.join(extra)} not allowed here")
        found = [f for f in _LOCATORS if getattr(self, f) is not None]
        by_url = kind in ("wait_for", "extract") and self.url is not None
        if kind != "goto" and not by_url and len(found) != 1:
            raise ValueError(f"{kind}: name the element by exactly one of {', '.join(_LOCATORS)}")
        if by_url and (found or self.attr is not None):
            raise ValueError(f"{kind}: either url or an element, not both")
        if kind == "extract" and self.url is not None:
            try:
                re.compile(self.url)
            except re.error as exc:
                raise ValueError(f"extract: url is not a regular expression: {exc}") from None
        if self.name is not None and self.role is None:
            raise ValueError(f"{kind}: name goes with role")
        self._required(kind)
        return self

    def _required(self, kind: str) -> None:
        if kind == "goto" and self.path is None:
            raise ValueError("goto: a path or URL is needed")
        if kind == "fill" and self.value is None:
            raise ValueError("fill: value is needed")
        if kind == "extract" and self.into is None:
            raise ValueError("extract: into (a memory key) is needed")

    def describe(self) -> str:
        """A short label of the step for records: ``goto /p/7``, ``click test_id=post-link``."""
        if self.kind == "goto":
            return f"goto {self.path}"
        if self.kind in ("wait_for", "extract") and self.url is not None:
            return f"{self.kind} url={self.url}"
        how = next(f for f in _LOCATORS if getattr(self, f) is not None)
        label = f"{self.kind} {how}={getattr(self, how)}"
        return label + (f" name={self.name}" if self.name else "")


class BrowserSpec(BaseModel):
    """The ``browser`` section (see the module docstring).

    Attributes:
        share: the share of users (0..1) who use a browser; chosen per user from the
            run seed and the user's id, so a user keeps its tier for the whole run.
        base_url: where the pages are (None: the run's target URL).
        max_contexts: browser contexts open at once (each active browser user holds
            one for its session; more wait). One browser process serves them all.
        step_timeout_s: wall seconds a step may take (navigation, finding an element).
        executable_path: the Chromium binary (Debian's ``chromium``; Playwright's
            own browser download is never used).
        session_cookie: a cookie whose absence from a user's browser means it is signed
            out: the ``login`` flow runs before the user's first flow.
        login: the flow that signs a user in (None: never).
        screenshots: ``on_failure`` (a PNG of the page for every failed step, under the
            run's ``OUT/screenshots/``) or ``off``.
        max_screenshots: the most screenshots a run keeps (later failures go without).
        actions: persona action -> flow name -> weight (> 0).
        flows: flow name -> its steps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(0.0, ge=0.0, le=1.0)
    base_url: str | None = None
    max_contexts: int = Field(4, ge=1, le=256)
    step_timeout_s: float = Field(15.0, gt=0.0, le=600.0)
    executable_path: str = "/usr/bin/chromium"
    session_cookie: str | None = None
    login: str | None = None
    screenshots: Literal["on_failure", "off"] = "on_failure"
    max_screenshots: int = Field(100, ge=0, le=100_000)
    actions: dict[str, dict[str, float]] = {}
    flows: dict[str, tuple[StepSpec, ...]] = {}

    @model_validator(mode="after")
    def _names_known(self) -> BrowserSpec:
        for name, steps in self.flows.items():
            if not steps:
                raise ValueError(f"flows.{name}: a flow needs at least one step")
        if self.login is not None and self.login not in self.flows:
            raise ValueError(f"login: no flow named {self.login!r}")
        for action, weights in self.actions.items():
            if not weights:
                raise ValueError(f"actions.{action}: name at least one flow")
            for flow, weight in weights.items():
                if flow not in self.flows:
                    raise ValueError(f"actions.{action}: no flow named {flow!r}")
                if not weight > 0:
                    raise ValueError(f"actions.{action}.{flow}: a weight must be > 0")
        return self


def check_browser(
    spec: BrowserSpec, actions: set[str], registry: PluginCatalog | None = None
) -> None:
    """Check the section against the scenario: its actions exist, its templates' generators
    are known.

    Raises:
        ValueError: ``browser.PATH: reason``, one line.
    """
    for action in spec.actions:
        if action not in actions:
            raise ValueError(f"browser.actions: {action!r} is not an action of the scenario")
    for name, steps in spec.flows.items():
        for i, step in enumerate(steps):
            for template in (step.path, step.value):
                problem = template_problem(template, registry=registry)
                if problem is not None:
                    raise ValueError(f"browser.flows.{name}.{i}: {problem}")


def demo_browser_data() -> dict[str, Any]:
    """The built-in demo app's ``browser`` section as plain data (a fresh copy).

    Raises:
        RuntimeError: the packaged file is missing or not a mapping (a broken install).
    """
    text = resources.files("sim_engine.model.builtin").joinpath("demo_browser.yaml")
    data = yaml.safe_load(text.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RuntimeError("demo_browser.yaml: not a mapping (a broken install?)")
    return data


@lru_cache(maxsize=1)
def demo_browser() -> BrowserSpec:
    """The built-in demo app's flows (``model/builtin/demo_browser.yaml``), share 0.

    Entry points of seed 003 for ``browse_feed``: home 40 %, search 15 %, a tag
    (category) 20 %, the reading list (watchlist-like) 15 %, the assistant 10 %.
    """
    return BrowserSpec.model_validate(demo_browser_data())
