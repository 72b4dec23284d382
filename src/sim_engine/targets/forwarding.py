"""Capabilities a wrapping target (plugin actions, the browser tier) passes on to the
target it wraps, defined on the wrapper itself: Python 3.12's ``isinstance`` checks of
runtime protocols do not see what a wrapper's ``__getattr__`` would forward."""

from __future__ import annotations

from sim_engine.engine.capabilities import Creation, CreationCleaner
from sim_engine.model.records import ActionRequest, Outcome, Target

__all__ = ["ForwardsCreations"]


class ForwardsCreations:
    """The :class:`~sim_engine.engine.capabilities.CreationCleaner` capability of the
    wrapped target ``inner`` (none when it has not got it: nothing to delete).

    Attributes:
        inner: the wrapped target.
    """

    inner: Target

    def creations(self, user_id: int) -> list[Creation]:
        """What ``user_id`` created that goes before its account (the wrapped target's)."""
        inner = self.inner
        return inner.creations(user_id) if isinstance(inner, CreationCleaner) else []

    async def delete_creation(self, request: ActionRequest, creation: Creation) -> Outcome:
        """Delete ``creation`` through the wrapped target."""
        inner = self.inner
        if not isinstance(inner, CreationCleaner):
            return Outcome(0, False, 0.0, error="the target cannot delete it", skipped=True)
        return await inner.delete_creation(request, creation)
