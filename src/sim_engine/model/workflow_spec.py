"""Workflows and session affinity of an ``api`` section (see :mod:`sim_engine.model.api_spec`).

Part of the ``api`` schema; :mod:`sim_engine.model.api_spec` re-exports every name.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim_engine.model.bounds import MAX_WAIT_S, MAX_WEIGHT, Weight

__all__ = ["MEMORY_KEY_RE", "AffinitySpec", "WorkflowSpec", "WorkflowStep", "check_workflows"]

MEMORY_KEY_RE = re.compile(r"^(memory|pool)\.[A-Za-z_][\w]*$")
"""A memory or pool key: ``memory.NAME`` or ``pool.NAME``."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WorkflowStep(_Frozen):
    """One step of a workflow.

    Attributes:
        action: the action (or another workflow) to run.
        one_of: a branch: action -> weight, one drawn (instead of ``action``).
        probability: the step runs with this probability, else it is skipped.
        think_s: think time before the next step, uniform in [low, high]
            simulated seconds.
        requires: memory or pool keys that must be non-empty, else the step is skipped.
    """

    action: str | None = None
    one_of: dict[str, Weight] | None = None
    probability: float = Field(1.0, ge=0, le=1)
    think_s: tuple[float, float] = (5.0, 15.0)
    requires: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> WorkflowStep:
        if (self.action is None) == (self.one_of is None):
            raise ValueError("a step needs exactly one of 'action' or 'one_of'")
        if self.one_of is not None and not any(w > 0 for w in self.one_of.values()):
            raise ValueError("one_of needs a positive weight")
        low, high = self.think_s
        if low < 0 or high < low or high > MAX_WAIT_S:
            raise ValueError(f"think_s is [low, high] with 0 <= low <= high <= {MAX_WAIT_S:g}")
        return self

    def names(self) -> list[str]:
        """The actions or workflows this step may run."""
        return [self.action] if self.action is not None else list(self.one_of or {})


class WorkflowSpec(_Frozen):
    """A named sequence of steps (seed 000's help-exchange workflow is the model)."""

    description: str = ""
    steps: tuple[WorkflowStep, ...] = Field(min_length=1)


class AffinitySpec(_Frozen):
    """Session affinity (seed 001): multiply an action's weight while a key is non-empty.

    Example: ``{when: memory.open_requests, action: accept_offer, multiply: 2}``.
    """

    when: str
    action: str
    multiply: float = Field(gt=0, le=MAX_WEIGHT)

    @field_validator("when")
    @classmethod
    def _key(cls, value: str) -> str:
        if not MEMORY_KEY_RE.match(value):
            raise ValueError(f"'when' must be memory.NAME or pool.NAME, got {value!r}")
        return value


def check_workflows(workflows: dict[str, WorkflowSpec], known: set[str], keys: set[str]) -> None:
    """Check that every step names a known action or workflow and declared memory, and
    that no workflow runs itself (directly or through others).

    Args:
        workflows: name -> workflow (an ``api`` section's).
        known: action and workflow names steps may name (plugin actions included).
        keys: declared ``memory.KEY`` / ``pool.KEY`` names.

    Raises:
        ValueError: naming the first bad ``workflows.NAME.steps.I`` or the cycle.
    """
    for name, workflow in workflows.items():
        for i, step in enumerate(workflow.steps):
            for ref in step.names():
                if ref not in known:
                    raise ValueError(f"workflows.{name}.steps.{i}: unknown action {ref!r}")
            for key in step.requires:
                if key not in keys:
                    raise ValueError(f"workflows.{name}.steps.{i}.requires: unknown memory {key!r}")
    _check_cycles(workflows)


def _check_cycles(workflows: dict[str, WorkflowSpec]) -> None:
    graph = {
        name: {ref for step in wf.steps for ref in step.names() if ref in workflows}
        for name, wf in workflows.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            cycle = " -> ".join([*trail[trail.index(node) :], node])
            raise ValueError(f"workflows.{node}: workflow cycle {cycle}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        visit(name, [])
