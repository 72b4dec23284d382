"""The social API binding: the demo API's operations as HTTP requests.

=============  ===========================================
action         request
=============  ===========================================
sign_up        ``POST /users``
log_in         ``POST /auth/login`` -> token
browse_feed    ``GET /posts?limit=L&offset=O``
read_post      ``GET /posts/{id}``
create_post    ``POST /posts``
update_post    ``PUT /posts/{id}``
delete_post    ``DELETE /posts/{id}``
delete_account ``DELETE /users/{id}`` (cleanup of a churned user)
list_own_posts ``GET /posts?author_id={id}`` (reconciliation after a crash)
=============  ===========================================

Every request carries ``X-Sim-Time`` (the simulated time, so the API can store
it) and the transport's common headers (``X-Synthetic: true``, user agent).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sim_engine.model.records import ActionRequest, Outcome
from sim_engine.targets.transport import Response, Transport

__all__ = ["ENDPOINTS", "SocialApiTarget"]

_EXPECTED = {
    "sign_up": (201,),
    "log_in": (200,),
    "browse_feed": (200,),
    "read_post": (200,),
    "create_post": (201,),
    "update_post": (200,),
    "delete_post": (204, 200),
    "delete_account": (204, 200),
    "list_own_posts": (200,),
}

ENDPOINTS = {
    "browse_feed": "GET /posts",
    "read_post": "GET /posts/{id}",
    "create_post": "POST /posts",
    "update_post": "PUT /posts/{id}",
    "delete_post": "DELETE /posts/{id}",
    "sign_up": "POST /users",
    "log_in": "POST /auth/login",
    "delete_account": "DELETE /users/{id}",
    "list_own_posts": "GET /posts?author_id={id}",
}
"""Each action's endpoint (method and path template), as records and metrics name it."""


class SocialApiTarget:
    """Performs the demo social API's actions over a transport.

    Args:
        transport: where requests go (:class:`~sim_engine.targets.http.AiohttpTransport`
            or :class:`~sim_engine.targets.inprocess.AsgiTransport`).
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def send(self, request: ActionRequest) -> Outcome:
        """Perform one action; failures (refused, 4xx/5xx, garbage body) are outcomes.

        Raises:
            ValueError: the action is not one of the social API's.
        """
        method, path, body = _route(request)
        headers = {"X-Sim-Time": request.sim_time_iso}
        if request.token:
            headers["Authorization"] = f"Bearer {request.token}"
        resp = await self.transport.request(method, path, body, headers)
        outcome = _interpret(request, resp)
        return dataclasses.replace(
            outcome,
            endpoint=ENDPOINTS[request.action],
            skipped=resp.skipped,
            retries=resp.retries,
        )

    async def aclose(self) -> None:
        """Close the transport."""
        await self.transport.aclose()


def _route(request: ActionRequest) -> tuple[str, str, Any]:
    action = request.action
    if action == "browse_feed":
        return "GET", f"/posts?limit={request.limit}&offset={request.offset}", None
    if action == "read_post":
        return "GET", f"/posts/{request.post_id}", None
    if action == "create_post":
        return "POST", "/posts", request.payload
    if action == "update_post":
        return "PUT", f"/posts/{request.post_id}", request.payload
    if action == "delete_post":
        return "DELETE", f"/posts/{request.post_id}", None
    if action == "sign_up":
        return "POST", "/users", request.payload
    if action == "log_in":
        return "POST", "/auth/login", request.payload
    if action == "delete_account":
        return "DELETE", f"/users/{request.remote_user_id}", None
    if action == "list_own_posts":
        query = f"author_id={request.remote_user_id}&limit={request.limit}&offset={request.offset}"
        return "GET", f"/posts?{query}", None
    raise ValueError(f"unknown action {action!r} for the social API")


def _excerpt(body: bytes) -> str:
    text = body[:120].decode("utf-8", "replace").replace("\n", " ")
    return text + ("…" if len(body) > 120 else "")


def _interpret(request: ActionRequest, resp: Response) -> Outcome:
    status, latency = resp.status, resp.latency_ms
    if status == 0:
        return Outcome(0, False, latency, error=resp.error or "no response")
    if status not in _EXPECTED[request.action]:
        return Outcome(status, False, latency, error=f"HTTP {status}: {_excerpt(resp.body)}")
    if not resp.body:
        return Outcome(status, True, latency, post_id=request.post_id)
    try:
        data = json.loads(resp.body)
    except ValueError:
        error = f"bad answer (not JSON): {_excerpt(resp.body)}"
        return Outcome(status, False, latency, error=error)
    try:
        return _read(request, status, latency, data)
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"missing field {exc}" if isinstance(exc, KeyError) else "unexpected shape"
        error = f"bad answer ({reason}): {_excerpt(resp.body)}"
        return Outcome(status, False, latency, error=error)


def _read(request: ActionRequest, status: int, latency: float, data: Any) -> Outcome:
    action = request.action
    if action in ("browse_feed", "list_own_posts"):
        feed = tuple((int(item["id"]), int(item["author_id"])) for item in data["items"])
        return Outcome(status, True, latency, feed_ids=feed)
    if action == "log_in":
        remote_id = data.get("user_id")
        return Outcome(
            status,
            True,
            latency,
            token=str(data["token"]),
            remote_id=int(remote_id) if remote_id is not None else None,
        )
    if action == "sign_up":
        return Outcome(status, True, latency, remote_id=int(data["id"]))
    if action == "read_post":
        return Outcome(
            status, True, latency, post_id=int(data["id"]), view_count=data.get("view_count")
        )
    return Outcome(status, True, latency, post_id=int(data["id"]))
