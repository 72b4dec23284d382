"""The OpenAPI import's errors (the package re-exports them).

Part of :mod:`sim_engine.api.openapi`.
"""

from __future__ import annotations

__all__ = ["OpenApiError", "OpenApiFetchError"]


class OpenApiError(ValueError):
    """An OpenAPI document cannot be used; ``str()`` is one line naming the source."""


class OpenApiFetchError(OpenApiError):
    """An OpenAPI URL could not be fetched (unreachable, HTTP error, timeout): a runtime
    failure rather than bad input."""
