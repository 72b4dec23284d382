"""The binder: an API description's actions and workflows, for every API.

A binder turns the persona's draw into a request and feeds answers back into
memory (the :class:`~sim_engine.engine.capabilities.Binder` seam). There is one
binding path: a scenario's ``api`` section, or for the built-in demo API its
built-in description (:func:`sim_engine.model.builtin.social_api`). The target
keeps each user's memory and resolves each action (or a fallback); a
*workflow* expands into steps, each with its probability, its requirements, a
choice among actions and its own think time, nested workflows in place;
session affinity (seed 001) multiplies action weights while the user holds
something.
"""

from __future__ import annotations

import random
from typing import Any

from sim_engine.engine.capabilities import ActionResolver, Planned, SessionAware
from sim_engine.engine.events import local_iso
from sim_engine.model.api_spec import ApiSpec, WorkflowStep
from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest, Outcome

__all__ = ["ApiBinder", "api_request", "next_step"]


def next_step(
    api: ApiSpec,
    steps: list[WorkflowStep],
    rng: random.Random,
    resolver: ActionResolver | None,
    user_id: int,
) -> tuple[str, float] | None:
    """Pop workflow steps until one runs; return its action and think time (simulated s).

    A step is skipped by its probability or when the target lacks what it
    ``requires``; ``one_of`` draws one action by weight; a nested workflow's
    steps are put in front. Returns None when the steps run out. ``steps`` is
    consumed in place.
    """
    while steps:
        step = steps.pop(0)
        if rng.random() >= step.probability:
            continue
        if resolver is not None and not all(resolver.has(user_id, k) for k in step.requires):
            continue
        if step.one_of is not None:
            names = list(step.one_of)
            name = rng.choices(names, [step.one_of[n] for n in names])[0]
        else:
            assert step.action is not None
            name = step.action
        think_s = rng.uniform(*step.think_s)
        if name in api.workflows:  # a nested workflow: its steps come first
            steps[0:0] = list(api.workflows[name].steps)
            continue
        return name, think_s
    return None


def api_request(
    resolver: ActionResolver | None, name: str, user: SimUser, sim_t: float
) -> ActionRequest | None:
    """Bind an ``api`` action for ``user``: the target resolves it (or a fallback);
    None when nothing is possible now."""
    action = resolver.resolve(name, user.user_id) if resolver is not None else name
    if action is None:
        return None
    iso = local_iso(user, sim_t)
    token, remote_id = user.token, user.remote_id
    # positional (keywords cost more): ..., token, post_id, offset, limit, payload, remote id
    return ActionRequest(action, user.user_id, sim_t, iso, token, None, 0, 20, None, remote_id)


class ApiBinder:
    """Binds the actions and workflows of a scenario's ``api`` section.

    Args:
        api: the ``api`` section.
        resolver: the target, when it resolves actions per user (checked once).
        session_aware: the target, when it keeps per-session state (checked once).
    """

    def __init__(
        self,
        api: ApiSpec,
        resolver: ActionResolver | None,
        session_aware: SessionAware | None = None,
    ) -> None:
        self._api = api
        self._resolver = resolver
        self._session_aware = session_aware
        self._steps: dict[int, list[Any]] = {}  # workflow steps left, by user id
        self._rules: dict[str, tuple[Any, ...]] = {}  # affinity rules in force, by persona

    def plan(
        self, user: SimUser, persona: CompiledPersona, state: str, sim_t: float, rng: random.Random
    ) -> Planned:
        """Draw the next action, expanding workflows into steps (see :func:`next_step`)."""
        steps = self._steps.get(user.user_id)
        drew = not steps
        if not steps:
            name = persona.choose_action(
                state, rng, self._affinity(user, persona), posting=user.posting
            )
            workflow = self._api.workflows.get(name)
            if workflow is None:
                return Planned(api_request(self._resolver, name, user, sim_t))
            steps = self._steps[user.user_id] = list(workflow.steps)
        drawn = next_step(self._api, steps, rng, self._resolver, user.user_id)
        if not steps:
            self._steps.pop(user.user_id, None)
        more = user.user_id in self._steps
        if drawn is None:
            return Planned(None, None, drew, more)
        name, think_s = drawn
        return Planned(api_request(self._resolver, name, user, sim_t), think_s, drew, more)

    def remember(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> bool:
        """The target keeps an ``api`` section's memory: nothing to do here."""
        return False

    def drop(self, user_id: int) -> None:
        """The session is over: forget its unfinished workflow steps; tell the target."""
        self._steps.pop(user_id, None)
        if self._session_aware is not None:
            self._session_aware.end_session(user_id)

    def _affinity(self, user: SimUser, persona: CompiledPersona) -> dict[str, float] | None:
        """Session-affinity multipliers in force for this user (seed 001)."""
        rules = self._rules.get(persona.name)
        if rules is None:
            rules = self._rules[persona.name] = (*self._api.affinity, *persona.spec.affinity)
        if not rules or self._resolver is None:
            return None
        factors: dict[str, float] = {}
        for rule in rules:
            if self._resolver.has(user.user_id, rule.when):
                factors[rule.action] = factors.get(rule.action, 1.0) * rule.multiply
        return factors or None
