"""Identity binding shared by every driver: sign-up and log-in requests, passwords, run tags.

The engine (a run, the load test), ``cleanup`` and reconcile all make a user a
logged-in member the same way: :func:`signup_requests` with the password
:func:`user_password` derives from the run secret (a founder's is the
scenario's when it gives one), and every generated email carries the run's tag
(:func:`run_tag`, also from the secret). Pure functions over a :class:`SimUser`: no I/O, no clock.
What a user does once logged in is bound by its API description (see
:mod:`sim_engine.engine.binders`).
"""

from __future__ import annotations

import hashlib

from sim_engine.model.population import SimUser, password_for
from sim_engine.model.records import ActionRequest
from sim_engine.model.scenario import Scenario

__all__ = ["run_tag", "signup_requests", "user_password"]


def run_tag(secret: str) -> str:
    """Return the run's short tag, put in every generated email (from the run secret)."""
    return hashlib.blake2b(secret.encode(), digest_size=3).hexdigest()


def signup_requests(user: SimUser, password: str, sim_t: float, iso: str) -> list[ActionRequest]:
    """The requests that make ``user`` a logged-in member: sign-up then log-in, or only
    the log-in once it has joined.

    Args:
        user: the user (its identity, ``remote_id`` and ``joined``).
        password: its password (see :func:`user_password`).
        sim_t: simulated epoch seconds; ``iso``: the same with the user's offset.

    Both carry the whole identity: the target renders its own templates from it
    (after a crash, a log-in may be the first request it sees for the user).
    """
    identity = {
        "username": user.username,
        "email": user.email,
        "password": password,
        "name": user.name,
        "avatar_url": user.avatar or None,
        "tag": user.tag,
    }
    login = ActionRequest(
        "log_in", user.user_id, sim_t, iso, payload=identity, remote_user_id=user.remote_id
    )
    if user.remote_id is not None or user.joined:
        return [login]
    return [ActionRequest("sign_up", user.user_id, sim_t, iso, payload=identity), login]


def user_password(user: SimUser, secret: str, scenario: Scenario) -> str:
    """Return a user's password: a founder's ``password`` when the scenario gives one,
    else derived from the run secret (kept in ``state.db``, so a resumed run logs its
    users in again). Nothing public (the scenario's name, an email) can rebuild it; a
    founder meant to exist once per target across runs needs an explicit ``password``.
    """
    if user.founder:
        for spec in scenario.population.founders:
            if spec.name == user.name and spec.password:
                return spec.password
    return password_for(secret, user.user_id)
