"""A target that calls a handler function: for tests and for planning-only runs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from sim_engine.model.records import ActionRequest, Outcome

__all__ = ["MockTarget"]

Handler = Callable[[ActionRequest], "Outcome | Awaitable[Outcome]"]


class MockTarget:
    """Answers every action with ``handler(request)`` (sync or async).

    Args:
        handler: returns the :class:`Outcome` for a request.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests = 0

    async def send(self, request: ActionRequest) -> Outcome:
        """Return the handler's outcome."""
        self.requests += 1
        result = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, Outcome)
        return result

    async def aclose(self) -> None:
        """Nothing to close."""
