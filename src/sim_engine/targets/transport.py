"""The transport seam: send one HTTP-shaped request, get one response, never raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

__all__ = [
    "FORM_CONTENT_TYPE",
    "HINT_HEADERS",
    "TOO_LARGE",
    "Form",
    "Response",
    "TargetUnreachableError",
    "Transport",
    "too_large",
]

HINT_HEADERS = ("retry-after", "backoff")
"""Response headers a transport keeps: the server's back-off hints."""


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
"""The content type of a :class:`Form` body."""


@dataclass(frozen=True, slots=True)
class Form:
    """A form-encoded request body (an OAuth2 token request), passed as a transport's
    ``json_body``: every transport sends it as ``application/x-www-form-urlencoded``.

    Attributes:
        fields: name -> value (sent as text: booleans ``true``/``false``, null empty).
    """

    fields: Mapping[str, str]

    def encode(self) -> str:
        """The URL-encoded body (``a=1&b=x+y``)."""
        return urlencode(list(self.fields.items()))


TOO_LARGE = "response too large"
"""How the ``error`` of a response whose body passed ``limits.max_response_bytes`` begins."""


def too_large(limit: int, size: int | None = None) -> str:
    """Return the one-line error of a body over ``limit`` bytes (``size``: its length, if known)."""
    told = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return f"{TOO_LARGE}: {told}, limit {limit} (limits.max_response_bytes)"


class TargetUnreachableError(ConnectionError):
    """The target cannot be reached at all (checked before a run starts)."""


@dataclass(slots=True)  # read-only by convention: frozen costs 8x to build
class Response:
    """One response.

    Attributes:
        status: HTTP status; 0 when no response arrived.
        body: raw body bytes (empty when none).
        latency_ms: wall milliseconds from send to the end of the body.
        error: one-line reason when ``status`` is 0 (refused, timeout, reset).
        skipped: the request was not sent (e.g. its circuit breaker is open).
        retries: retries made before this response.
        headers: the back-off hints the server sent (``Retry-After``, ``Backoff``),
            lower-cased names; None when there were none.
    """

    status: int
    body: bytes
    latency_ms: float
    error: str | None = None
    skipped: bool = False
    retries: int = 0
    headers: Mapping[str, str] | None = None


class Transport(Protocol):
    """Sends requests to one base URL (real sockets or an in-process app)."""

    async def request(
        self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send ``method path`` with an optional JSON body (a :class:`Form`: form-encoded);
        never raises for network errors."""
        ...

    async def check(self) -> None:
        """Raise :class:`TargetUnreachableError` with a one-line reason if nothing answers."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...
