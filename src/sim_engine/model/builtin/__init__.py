"""Built-in API descriptions shipped in the package.

:func:`social_api` is the demo social API (:mod:`sim_engine.demo`) described
as an ``api`` section (``social_api.yaml`` next to this module): the engine
runs it through the same declarative target as any user's ``api`` section.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from sim_engine.model.api_spec import ApiSpec

__all__ = ["SOCIAL_API_FILE", "social_api", "social_api_data"]

SOCIAL_API_FILE = "social_api.yaml"
"""The demo social API's description, a package resource of ``sim_engine.model.builtin``."""


def social_api_data() -> dict[str, object]:
    """Return the demo social API's description as plain data (a fresh copy each call).

    Raises:
        RuntimeError: the packaged file is missing or not a mapping (a broken install).
    """
    text = resources.files(__name__).joinpath(SOCIAL_API_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise RuntimeError(f"{SOCIAL_API_FILE}: not a mapping (a broken install?)")
    return data


@lru_cache(maxsize=1)
def social_api() -> ApiSpec:
    """Return the demo social API as a validated, frozen :class:`ApiSpec`.

    Actions: ``browse_feed`` (the newest feed page, ``GET /posts``), ``read_post``
    (a post the last page showed), ``create_post``, ``update_post`` and
    ``delete_post`` (own posts only; without one the user browses instead),
    ``delete_account`` (``DELETE /users/{id}``, churn clean-up and
    ``sim-engine cleanup``) and ``list_own_posts`` (``GET /posts?author_id=``,
    reconcile after a crash). Sign-up ``POST /users``, log-in ``POST /auth/login``,
    bearer token.

    Raises:
        RuntimeError: the packaged file is missing or not a mapping.
        pydantic.ValidationError: the packaged file does not validate (a bug).
    """
    return ApiSpec.model_validate(social_api_data())
