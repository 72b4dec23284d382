"""Per-user propensities: heavy-tailed activity and posting multipliers, drawn once per user.

Real users differ by orders of magnitude: most read and rarely post, a few post a lot
(the 90-9-1 rule; in health forums the top 1 % made about 75 % of posts, DESIGN.md).
Each user gets two multipliers, log-normal with mean 1 (``exp(sigma * z - sigma**2 / 2)``,
``z`` standard normal), from its persona's ``activity_sigma`` and ``posting_sigma``:

* **activity** multiplies the persona's session rate (``sessions_per_day``);
* **posting** multiplies the weights of the user's *write* actions (every action of
  the API description whose method is not ``GET``: ``create_post``, ``update_post``,
  ``delete_post`` on the demo API) against its reads.

Both are hashed from the run key and the user's index (user id - 1), the same in the
event engine and in ``generate``'s planner, so a user is as active and as prolific
whichever plans it, and a resumed run recomputes them instead of storing them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sim_engine.model.plan.rand import U64, normal, run_key, user_keys

__all__ = ["lognormal_mean_one", "propensities", "user_propensities"]

F64 = npt.NDArray[np.float64]
_ACTIVITY, _POSTING = 400, 401


def lognormal_mean_one(z: F64, sigma: npt.ArrayLike) -> F64:
    """Return ``exp(sigma * z - sigma**2 / 2)``: log-normal, mean 1, for standard normal ``z``."""
    s = np.asarray(sigma, dtype=np.float64)
    out: F64 = np.exp(s * z - 0.5 * s * s)
    return out


def propensities(
    keys: U64, activity_sigma: npt.ArrayLike, posting_sigma: npt.ArrayLike
) -> tuple[F64, F64]:
    """Return each user's (activity, posting) multipliers.

    Args:
        keys: the users' keys (:func:`~sim_engine.model.plan.rand.user_keys`).
        activity_sigma, posting_sigma: each user's persona's log-normal shapes
            (0 gives 1 exactly: no heterogeneity).
    """
    activity = lognormal_mean_one(normal(keys, _ACTIVITY), activity_sigma)
    posting = lognormal_mean_one(normal(keys, _POSTING), posting_sigma)
    return activity, posting


def user_propensities(
    seed: int, user_id: int, activity_sigma: float, posting_sigma: float
) -> tuple[float, float]:
    """Return one user's (activity, posting) multipliers (the event engine's scalar way).

    Args:
        seed: the run seed.
        user_id: the engine's user id (1, 2, ...; the planner's index + 1).
        activity_sigma, posting_sigma: the user's persona's log-normal shapes.
    """
    if activity_sigma == 0 and posting_sigma == 0:
        return 1.0, 1.0
    keys = user_keys(run_key(seed), np.asarray([user_id - 1], dtype=np.int64))
    activity, posting = propensities(keys, activity_sigma, posting_sigma)
    return float(activity[0]), float(posting[0])
