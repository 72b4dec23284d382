"""Binding a simulated user to the target: requests from memory, memory from answers.

A planned action is only a name (``read_post``, ``create_post``...); turning it
into an :class:`ActionRequest` needs the user's memory (the feed page it just
saw, the posts it owns, its token), and the answer must be fed back into that
memory. The social-API half of this lives here, apart from the engine, because
two drivers share it: :class:`~sim_engine.engine.simulation.Simulation` (open population
over simulated time) and the load test (``loadtest.py``, closed loop over wall
time), and ``cleanup.py`` re-derives the run's passwords with
:func:`user_password`. The engine also takes its run tag (in every generated
email) from here: like passwords, it derives from the run secret. Pure functions
over a :class:`SimUser`: no I/O, no clock.

``sim_engine.engine.simulation`` re-exports :func:`bind_social`, :func:`remember_social`
and :func:`user_password`, their historical home.
"""

from __future__ import annotations

import hashlib
import random

from sim_engine.model.content import ContentGenerator
from sim_engine.model.population import SimUser, password_for
from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.model.scenario import ACTIONS, Scenario

__all__ = ["bind_social", "remember_social", "signup_requests", "user_password"]


def bind_social(
    action: str,
    user: SimUser,
    sim_t: float,
    iso: str,
    rng: random.Random,
    content: ContentGenerator,
    page_size: int,
) -> ActionRequest:
    """Bind a planned social-API action to the user's memory.

    ``read_post`` picks a post from the feed page the user just saw; ``update_post``
    and ``delete_post`` pick one of the user's own posts; ``create_post`` generates
    content. When the user lacks what the action needs, it browses the feed instead
    (the next page of it within a session). Names outside the social API (a
    plugin's actions) pass through unbound.

    Args:
        action: the planned action name.
        user: the acting user (its ``feed_offset`` advances on a feed page).
        sim_t: simulated epoch seconds; ``iso``: the same with the user's offset.
        rng: the user's generator.
        content: post content generator.
        page_size: feed page size.
    """
    uid, token = user.user_id, user.token
    if action not in ACTIONS:  # a plugin's action: the plugin target binds it
        return ActionRequest(action, uid, sim_t, iso, token)
    if action == "read_post" and user.last_feed:
        post_id = rng.choice(user.last_feed)[0]
        return ActionRequest(action, uid, sim_t, iso, token, post_id=post_id)
    if action in ("update_post", "delete_post") and user.own_posts:
        post_id = rng.choice(user.own_posts)
        payload = content.edit(rng) if action == "update_post" else None
        return ActionRequest(action, uid, sim_t, iso, token, post_id=post_id, payload=payload)
    if action == "create_post":
        return ActionRequest(action, uid, sim_t, iso, token, payload=content.post(rng, user.tag))
    offset = user.feed_offset
    user.feed_offset += page_size
    return ActionRequest("browse_feed", uid, sim_t, iso, token, offset=offset, limit=page_size)


def remember_social(user: SimUser, request: ActionRequest, outcome: Outcome) -> bool:
    """Feed a social-API answer back into the user's memory.

    Returns True when the user's own posts changed (a post created or deleted:
    an event that must not be forgotten).
    """
    action = request.action
    if action == "browse_feed" and outcome.ok:
        user.last_feed = outcome.feed_ids or None
        if not outcome.feed_ids:
            user.feed_offset = 0
    elif action == "create_post" and outcome.ok and outcome.post_id is not None:
        if user.own_posts is None:
            user.own_posts = []
        user.own_posts.append(outcome.post_id)
        return True
    elif action == "delete_post" and (outcome.ok or outcome.status == 404):
        _discard(user.own_posts, request.post_id)
        return True
    elif action == "read_post" and outcome.status == 404 and user.last_feed:
        user.last_feed = tuple(p for p in user.last_feed if p[0] != request.post_id) or None
    return False


def _run_tag(secret: str) -> str:
    """Return the run's short tag, put in every generated email (from the run secret)."""
    return hashlib.blake2b(secret.encode(), digest_size=3).hexdigest()


def signup_requests(
    user: SimUser, password: str, sim_t: float, iso: str, full_identity: bool
) -> list[ActionRequest]:
    """The requests that make ``user`` a logged-in member: sign-up then log-in, or only
    the log-in once it has joined.

    Args:
        user: the user (its identity, ``remote_id`` and ``joined``).
        password: its password (see :func:`user_password`).
        sim_t: simulated epoch seconds; ``iso``: the same with the user's offset.
        full_identity: send the whole identity with the log-in too (a declarative
            target renders its own templates and may need it, e.g. after a crash);
            the social API's log-in takes only username and password.
    """
    identity = {
        "username": user.username,
        "email": user.email,
        "password": password,
        "name": user.name,
        "avatar_url": user.avatar or None,
        "tag": user.tag,
    }
    credentials = identity if full_identity else {"username": user.username, "password": password}
    login = ActionRequest(
        "log_in", user.user_id, sim_t, iso, payload=credentials, remote_user_id=user.remote_id
    )
    if user.remote_id is not None or user.joined:
        return [login]
    return [ActionRequest("sign_up", user.user_id, sim_t, iso, payload=identity), login]


def user_password(user: SimUser, secret: str, scenario: Scenario) -> str:
    """Return a user's password: derived from the run secret, or for a founder from the
    scenario (its ``password``, else its name and email), so that it stays the same
    across runs: seed 001's founders exist once per target.
    """
    if user.founder:
        for spec in scenario.population.founders:
            if spec.name == user.name and spec.password:
                return spec.password
        return password_for(f"{scenario.name}:founders", user.email)
    return password_for(secret, user.user_id)


def _discard(items: list[int] | None, value: int | None) -> None:
    if items is not None and value in items:
        items.remove(value)
