"""Planning the actions of a scenario's ``api`` section (your own API, seed 001).

Without an ``api`` section the engine binds the social API's actions from the
user's memory (``binding.py``). With one, the persona's draw names an action or
a *workflow* of the declared API: a workflow expands into steps, each with its
probability, its requirements (what the target must hold for the user), a
choice among actions and its own think time, and nested workflows expand in
place. Session affinity (seed 001) multiplies action weights while the user
holds something on the target. The target resolves a name to a concrete
request, or to nothing possible.

This is a mixin of :class:`~sim_engine.engine.simulation.Simulation`, apart from the
scheduler because it is the planning of one kind of scenario only; the
workflow steps left per user stay in ``Simulation._steps``. The attributes and
methods of ``Simulation`` it uses are declared for the type checker only.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from sim_engine.model.behaviour import CompiledPersona
from sim_engine.model.population import SimUser
from sim_engine.model.records import ActionRequest

if TYPE_CHECKING:
    from sim_engine.model.api_spec import ApiSpec, WorkflowStep
    from sim_engine.model.records import Target
    from sim_engine.model.scenario import Scenario

__all__ = ["ApiActions", "api_request", "next_step"]


def next_step(
    api: ApiSpec, steps: list[WorkflowStep], rng: random.Random, target: Any, user_id: int
) -> tuple[str, float] | None:
    """Pop workflow steps until one runs; return its action and think time (simulated s).

    A step is skipped by its probability or when the target lacks what it
    ``requires`` (``target.has``); ``one_of`` draws one action by weight; a nested
    workflow's steps are put in front. Returns None when the steps run out.
    ``steps`` is consumed in place.
    """
    has = getattr(target, "has", None)
    while steps:
        step = steps.pop(0)
        if rng.random() >= step.probability:
            continue
        if has is not None and not all(has(user_id, key) for key in step.requires):
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
    target: Any, name: str, user: SimUser, sim_t: float, iso: str
) -> ActionRequest | None:
    """Bind an ``api`` action for ``user``: the target resolves it (or a fallback);
    None when nothing is possible now."""
    resolve = getattr(target, "resolve", None)
    action = resolve(name, user.user_id) if resolve is not None else name
    if action is None:
        return None
    return ActionRequest(
        action, user.user_id, sim_t, iso, user.token, remote_user_id=user.remote_id
    )


class ApiActions:
    """Mixin of ``Simulation``: the actions of an ``api`` section."""

    if TYPE_CHECKING:  # provided by Simulation; declared for the type checker only
        scenario: Scenario
        _target: Target
        _steps: dict[int, list[Any]]

        def _set_session_left(self, user: SimUser, left: int) -> None: ...

    def _affinity(self, user: SimUser, persona: CompiledPersona) -> dict[str, float] | None:
        """Session-affinity multipliers in force for this user (seed 001)."""
        api = self.scenario.api
        rules = (*api.affinity, *persona.spec.affinity) if api is not None else ()
        if not rules:
            return None
        has = getattr(self._target, "has", None)
        factors: dict[str, float] = {}
        for rule in rules:
            if has is not None and has(user.user_id, rule.when):
                factors[rule.action] = factors.get(rule.action, 1.0) * rule.multiply
        return factors or None

    def _plan_api_action(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        sim_t: float,
        iso: str,
        rng: random.Random,
    ) -> tuple[ActionRequest | None, float | None]:
        """Draw the next action of an ``api`` scenario, expanding workflows into steps.

        Returns the request (None when nothing is possible) and, for a workflow
        step, its think time (simulated seconds).
        """
        api = self.scenario.api
        assert api is not None
        steps = self._steps.get(user.user_id)
        if not steps:
            name = persona.choose_action(state, rng, self._affinity(user, persona))
            self._set_session_left(user, user.session_left - 1)
            workflow = api.workflows.get(name)
            if workflow is None:
                return self._api_request(name, user, sim_t, iso), None
            steps = self._steps[user.user_id] = list(workflow.steps)
        drawn = next_step(api, steps, rng, self._target, user.user_id)
        if not steps:
            self._steps.pop(user.user_id, None)
        if drawn is None:
            return None, None
        name, think_s = drawn
        return self._api_request(name, user, sim_t, iso), think_s

    def _api_request(
        self, name: str, user: SimUser, sim_t: float, iso: str
    ) -> ActionRequest | None:
        return api_request(self._target, name, user, sim_t, iso)
