"""Fault injection for the demo social API: errors, latency, stalls, 429s, dropped connections.

The demo target can misbehave on purpose so that clients (and sim-engine itself) can be tested
for resilience. A :class:`FaultConfig` says what goes wrong; a :class:`FaultController` holds
the current config with its random generators and decides, request by request, what happens;
the pure ASGI middleware :class:`FaultInjector` applies those decisions.

Switches (see ``docs/demo-server.md``):

* the environment variable ``SIM_ENGINE_DEMO_FAULTS`` holding the config as JSON
  (:func:`faults_from_env`);
* command-line flags of ``python -m sim_engine.demo`` and ``sim-engine demo-server``
  (``--error-rate``, ``--latency-ms``, ``--rate-limit-burst``, ... ; :func:`resolve_faults`);
* the admin endpoint of a running server: ``GET``/``PUT``/``DELETE /admin/faults``.

For every request whose path is not exempt (``/``, ``/health``, ``/admin/*``, the OpenAPI
pages by default), in this order:

1. the added latency is slept (whatever happens next);
2. with probability ``stall_rate`` the request stalls: nothing is sent for ``stall_ms``
   more milliseconds, or until the client gives up and disconnects (then nothing more
   happens: a client with a read timeout shorter than ``stall_ms`` sees a timeout);
3. with probability ``drop_rate`` the connection is closed without any HTTP response;
4. during a 429 burst, or with probability ``rate_limit.probability``, the answer is ``429``
   with a ``Retry-After`` header;
5. with probability ``error_rate`` the answer is ``error_status`` (503 by default);
6. otherwise the request reaches the API.

Each fault kind draws from its own random generator seeded from ``seed``, so turning one fault
on does not change the pattern of another. Injected answers carry a JSON ``detail`` and the
header ``X-Injected-Fault``.

Example:
    >>> from sim_engine.demo.faults import FaultConfig, parse_latency
    >>> cfg = FaultConfig(error_rate=0.1, latency=parse_latency("lognormal:50:1.0"), seed=7)
    >>> cfg.latency.distribution
    'lognormal'
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from sim_engine.demo.faults_config import (
    DEFAULT_EXEMPT_PATHS,
    FAULTS_ENV,
    AnyLatency,
    ExponentialLatency,
    FaultConfig,
    FaultConfigError,
    FixedLatency,
    Latency,
    LognormalLatency,
    NoLatency,
    RateLimitConfig,
    UniformLatency,
    one_line,
    parse_burst,
    parse_latency,
)

__all__ = [
    "DEFAULT_EXEMPT_PATHS",
    "FAULTS_ENV",
    "AnyLatency",
    "ExponentialLatency",
    "FaultConfig",
    "FaultConfigError",
    "FaultController",
    "FaultDecision",
    "FaultInjector",
    "FixedLatency",
    "InjectedDisconnect",
    "Latency",
    "LognormalLatency",
    "NoLatency",
    "RateLimitConfig",
    "UniformLatency",
    "faults_from_env",
    "parse_burst",
    "parse_fault_json",
    "parse_latency",
    "resolve_faults",
]

# ASGI types, spelled out to avoid depending on starlette's typing here.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InjectedDisconnect(ConnectionError):
    """Raised in place of a dropped connection when the server's socket cannot be reached.

    Under uvicorn the connection really is closed; in-process (``httpx.ASGITransport``) there is
    no socket, so the client sees this exception instead.
    """


# --------------------------------------------------------------------------------------
# Switches: the environment variable and the command-line flags
# --------------------------------------------------------------------------------------


def parse_fault_json(text: str, source: str = FAULTS_ENV) -> FaultConfig:
    """Parse a :class:`FaultConfig` from JSON text.

    Args:
        text (str): A JSON object with :class:`FaultConfig` fields.
        source (str): Where the text came from, used as the error message prefix.

    Raises:
        FaultConfigError: One line, e.g. ``SIM_ENGINE_DEMO_FAULTS: not valid JSON
            (Expecting value at line 1 column 1)``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FaultConfigError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise FaultConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    try:
        return FaultConfig.model_validate(data)
    except ValidationError as exc:
        raise FaultConfigError(f"{source}: {one_line(exc)}") from None


def faults_from_env(environ: Mapping[str, str] | None = None) -> FaultConfig | None:
    """Read ``SIM_ENGINE_DEMO_FAULTS``; None when it is unset or blank.

    Raises:
        FaultConfigError: If the value is not a valid JSON config.
    """
    env = os.environ if environ is None else environ
    text = env.get(FAULTS_ENV, "")
    return parse_fault_json(text) if text.strip() else None


def resolve_faults(
    environ: Mapping[str, str] | None = None,
    *,
    error_rate: float | None = None,
    error_status: int | None = None,
    latency_ms: str | None = None,
    rate_limit_burst: str | None = None,
    rate_limit_rate: float | None = None,
    drop_rate: float | None = None,
    seed: int | None = None,
) -> FaultConfig | None:
    """Combine ``SIM_ENGINE_DEMO_FAULTS`` with command-line flags (flags win, field by field).

    Returns:
        FaultConfig | None: None when neither the variable nor any flag is set.

    Raises:
        FaultConfigError: If the variable or a flag is invalid (one-line message).
    """
    base = faults_from_env(environ)
    updates: dict[str, Any] = {}
    if error_rate is not None:
        updates["error_rate"] = error_rate
    if error_status is not None:
        updates["error_status"] = error_status
    if latency_ms is not None:
        updates["latency"] = parse_latency(latency_ms)
    if drop_rate is not None:
        updates["drop_rate"] = drop_rate
    if seed is not None:
        updates["seed"] = seed
    if rate_limit_burst is not None or rate_limit_rate is not None:
        current = (base or FaultConfig()).rate_limit.model_dump()
        if rate_limit_burst is not None:
            current.update(parse_burst(rate_limit_burst).model_dump(exclude={"probability"}))
        if rate_limit_rate is not None:
            current["probability"] = rate_limit_rate
        updates["rate_limit"] = current
    if base is None and not updates:
        return None
    data = (base or FaultConfig()).model_dump()
    data.update(updates)
    try:
        return FaultConfig.model_validate(data)
    except ValidationError as exc:
        raise FaultConfigError(f"fault flags: {one_line(exc)}") from None


# --------------------------------------------------------------------------------------
# Deciding and applying
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request.

    Attributes:
        action: ``"pass"`` (reach the API), ``"drop"``, ``"rate_limit"`` or ``"error"``.
        delay_s: Added latency in seconds, slept before the action.
        stall_s: Stall in seconds after the latency (ends early if the client disconnects,
            and then the action is not applied); 0 for most requests.
        status: HTTP status for ``rate_limit`` (429) and ``error``; 0 otherwise.
        retry_after_s: ``Retry-After`` seconds for ``rate_limit``; None otherwise.
    """

    action: Literal["pass", "drop", "rate_limit", "error"] = "pass"
    delay_s: float = 0.0
    status: int = 0
    retry_after_s: int | None = None
    stall_s: float = 0.0


_PASS = FaultDecision()


class FaultController:
    """The current :class:`FaultConfig`, its random generators and burst clock.

    One controller is shared by the :class:`FaultInjector` middleware and the admin endpoint,
    which replaces the config at run time with :meth:`set`.

    Args:
        config (FaultConfig | None): Initial config; None injects nothing.
        clock (Callable[[], float]): Monotonic seconds, for burst timing (injectable in tests).
        sleep (Callable[[float], Awaitable[None]]): Used to add latency (injectable in tests).
    """

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.counts: dict[str, int] = {}
        self.set(config)

    @property
    def config(self) -> FaultConfig:
        """The config in force."""
        return self._config

    def set(self, config: FaultConfig | None) -> FaultConfig:
        """Replace the config (None turns faults off), reseed the generators, restart bursts.

        Returns:
            FaultConfig: The config now in force.
        """
        self._config = config if config is not None else FaultConfig()
        seed = self._config.seed
        if seed is None:
            seed = random.SystemRandom().getrandbits(63)
        kinds = ("latency", "drop", "429", "error", "stall")
        self._rng = {k: random.Random(f"{seed}:{k}") for k in kinds}
        self._epoch = self.clock()
        # "stall" counts stalled requests; each is also counted under the outcome drawn for it.
        counts = {"requests": 0, "pass": 0, "drop": 0, "rate_limit": 0, "error": 0, "stall": 0}
        self.counts = counts
        return self._config

    def decide(self, path: str) -> FaultDecision:
        """Decide what happens to a request for ``path`` (draws from the generators)."""
        config = self._config
        if not config.active or config.is_exempt(path):
            return _PASS
        self.counts["requests"] += 1
        delay_s = max(0.0, config.latency.sample_ms(self._rng["latency"]) / 1000.0)
        decision = self._outcome(config, delay_s)
        self.counts[decision.action] += 1
        stalls = config.stall_rate > 0 and self._rng["stall"].random() < config.stall_rate
        if stalls and config.stall_ms > 0:
            self.counts["stall"] += 1
            decision = dataclasses.replace(decision, stall_s=config.stall_ms / 1000.0)
        return decision

    def _outcome(self, config: FaultConfig, delay_s: float) -> FaultDecision:
        if config.drop_rate > 0 and self._rng["drop"].random() < config.drop_rate:
            return FaultDecision("drop", delay_s)
        limit = config.rate_limit
        if limit.active:
            remaining = limit.burst_remaining(self.clock() - self._epoch)
            hit = remaining > 0
            if not hit and limit.probability > 0:
                hit = self._rng["429"].random() < limit.probability
            if hit:
                retry = limit.retry_after_s
                if retry is None:
                    retry = max(1, math.ceil(remaining)) if remaining > 0 else 1
                return FaultDecision("rate_limit", delay_s, 429, retry)
        if config.error_rate > 0 and self._rng["error"].random() < config.error_rate:
            return FaultDecision("error", delay_s, config.error_status)
        return FaultDecision("pass", delay_s)


def _server_transport(send: Send) -> Any:
    """The asyncio transport behind uvicorn's ``send`` (its request cycle's), or None."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is not None and callable(getattr(transport, "close", None)):
        return transport
    return None


class FaultInjector:
    """Pure ASGI middleware applying a :class:`FaultController`'s decisions.

    Non-HTTP scopes (lifespan, websockets) pass through untouched. It must be the outermost
    layer under the server for dropped connections to close the real socket: it finds
    uvicorn's transport through ``send`` and closes it; when there is none (in-process) it
    raises :class:`InjectedDisconnect` instead.

    Args:
        app: The wrapped ASGI app.
        config (FaultConfig | FaultController | None): A config, or a controller to share
            (e.g. with the admin endpoint).
    """

    def __init__(self, app: ASGIApp, config: FaultConfig | FaultController | None = None) -> None:
        self.app = app
        self.controller = config if isinstance(config, FaultController) else FaultController(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = self.controller.decide(scope.get("path", ""))
        if decision.delay_s > 0:
            await self.controller.sleep(decision.delay_s)
        if decision.stall_s > 0:
            receive, gone = await _stall(self.controller.sleep, decision.stall_s, receive)
            if gone:
                return  # the client gave up (read timeout): nobody to answer
        if decision.action == "pass":
            await self.app(scope, receive, send)
        elif decision.action == "drop":
            await _drop(receive, send)
        elif decision.action == "rate_limit":
            retry = decision.retry_after_s if decision.retry_after_s is not None else 1
            await _answer(
                send,
                429,
                f"injected fault: rate limited, retry after {retry} s",
                "rate_limit",
                [(b"retry-after", str(retry).encode("ascii"))],
            )
        else:
            await _answer(
                send, decision.status, f"injected fault: error {decision.status}", "error", []
            )


async def _stall(
    sleep: Callable[[float], Awaitable[Any]], seconds: float, receive: Receive
) -> tuple[Receive, bool]:
    """Hold a request ``seconds`` or until the client disconnects, whichever comes first.

    Request messages read meanwhile (to notice the disconnect) are kept and replayed.

    Returns:
        The ``receive`` to use from now on, and True if the client has gone.
    """
    kept: list[Message] = []

    async def gone() -> None:
        while (message := await receive())["type"] != "http.disconnect":
            kept.append(message)

    watcher = asyncio.ensure_future(gone())
    timer = asyncio.ensure_future(sleep(seconds))
    try:
        await asyncio.wait({watcher, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watcher, timer):
            if not task.done():
                task.cancel()
        await asyncio.gather(watcher, timer, return_exceptions=True)
    if watcher.done() and not watcher.cancelled() and watcher.exception() is None:
        return receive, True

    async def replay() -> Message:
        return kept.pop(0) if kept else await receive()

    return replay, False


async def _answer(
    send: Send, status: int, detail: str, fault: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"x-injected-fault", fault.encode("ascii")),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drop(receive: Receive, send: Send) -> None:
    transport = _server_transport(send)
    if transport is None:
        raise InjectedDisconnect("injected fault: connection dropped")
    transport.close()

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    # Wait until the server has seen the connection go, so it does not try to answer 500.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(disconnected(), timeout=5.0)
