"""FastAPI dependencies of the demo social API: the store, the request time, the caller.

All are ``async def``: FastAPI runs sync dependencies in a thread pool, which would make
in-process runs non-deterministic.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sim_engine.demo.schemas import ErrorOut
from sim_engine.demo.store import DemoStore

__all__ = [
    "NowDep",
    "StoreDep",
    "UserIdDep",
    "current_user_id",
    "error_responses",
    "get_store",
    "request_time",
]


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _parse_sim_time(value: str) -> str:
    """Validate an ``X-Sim-Time`` value and normalise it to ISO 8601 with an offset.

    Raises:
        ValueError: If the value is not an ISO 8601 date-time.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):  # datetime.fromisoformat() accepts "Z" only from 3.11
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.isoformat()


_bearer = HTTPBearer(auto_error=False, description="Token from `POST /auth/login`.")


async def get_store(request: Request) -> DemoStore:
    """Return the :class:`DemoStore` attached to the running app."""
    store: DemoStore = request.app.state.store
    return store


async def request_time(
    x_sim_time: Annotated[
        str | None,
        Header(description="Simulated ISO 8601 date-time to store instead of the wall clock."),
    ] = None,
) -> str:
    """Return the timestamp to store: ``X-Sim-Time`` if sent, else the current UTC time.

    Raises:
        HTTPException: 400 if ``X-Sim-Time`` is not an ISO 8601 date-time.
    """
    if x_sim_time is None or not x_sim_time.strip():
        return _utc_now_iso()
    try:
        return _parse_sim_time(x_sim_time)
    except ValueError:
        raise HTTPException(400, "invalid X-Sim-Time header: expected ISO 8601") from None


async def current_user_id(
    store: Annotated[DemoStore, Depends(get_store)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    """Return the id of the authenticated user.

    Raises:
        HTTPException: 401 if the bearer token is missing or unknown.
    """
    if credentials is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    user_id = store.user_for_token(credentials.credentials)
    if user_id is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user_id


StoreDep = Annotated[DemoStore, Depends(get_store)]
NowDep = Annotated[str, Depends(request_time)]
UserIdDep = Annotated[int, Depends(current_user_id)]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry documenting ``codes`` with the :class:`ErrorOut` body.

    Args:
        *codes (int): HTTP status codes (4xx) the route can answer.

    Returns:
        dict[int | str, dict[str, Any]]: ``{code: {"model": ErrorOut}}`` for each code.
    """
    return {code: {"model": ErrorOut} for code in codes}
