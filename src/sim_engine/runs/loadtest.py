"""Load-test mode (seed 004): N virtual users, each making a random number of requests.

A closed-loop load test, unlike the engine's open population over simulated
time: ``users`` virtual users run at once (one asyncio task each). Each signs
up and logs in (the engine's request shapes), then makes ``randint(min, max)``
requests drawn from one action distribution -- the scenario personas'
``relaxing`` weight matrices, weighted by persona share -- waiting a uniform
``[delay_min, delay_max]`` wall milliseconds before each request. A user stops
at its count, or when the wall-time ``duration`` ends (requests in flight then
finish). Requests go through the same stack as ``run``: the resilient
transport (rate limits, retries, breakers) over aiohttp or the in-process app,
with the synthetic headers; plugins (``docs/plugins.md``) take part as in a run.

Figures: requests (the drawn ones; sign-up and log-in are reported apart as
``setup``), success rate, latency percentiles from an HDR histogram (wall
milliseconds), requests per second over the whole wall time, and per-action
counts, failures and percentiles. See ``docs/load-testing.md``.

This is an edge module (like the runner): the CLI's ``load`` command calls
:func:`run_load` and prints :func:`format_summary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, cast

from hdrh.histogram import HdrHistogram

from sim_engine import __version__
from sim_engine.api.binding import signup_requests
from sim_engine.engine.binders import api_request, next_step
from sim_engine.engine.capabilities import ActionResolver
from sim_engine.engine.simulation import bind_social, remember_social, user_password
from sim_engine.model.behaviour import compile_personas
from sim_engine.model.content import ContentGenerator
from sim_engine.model.population import IdentityFactory, SimUser
from sim_engine.model.records import ActionRequest, Outcome, Target
from sim_engine.model.scenario import Scenario
from sim_engine.runs.runstate import DEMO, check_target_allowed
from sim_engine.targets.plugin import plugin_runtime

__all__ = [
    "LoadOptions",
    "LoadResult",
    "LoadTestError",
    "action_distribution",
    "format_summary",
    "run_load",
    "run_load_async",
    "write_load_json",
]

_MAX_LATENCY_US = 600_000_000  # 10 wall minutes, as in metrics.py
_SETUP = ("sign_up", "log_in")
_DRAWS = 10  # draws tried before a slot is given up as impossible (``api`` guards)


class LoadTestError(ValueError):
    """Bad load-test input (e.g. min > max); ``str()`` is one line."""


@dataclass(frozen=True)
class LoadOptions:
    """A load test's settings.

    Attributes:
        scenario: the validated scenario (actions, personas, limits, safety, seed).
        users: concurrent virtual users (>= 1).
        min_requests: fewest requests per user (>= 0).
        max_requests: most requests per user (>= ``min_requests``).
        duration_s: wall seconds after which every user stops (None: no limit).
        delay_min_ms: shortest wait before each request (wall milliseconds, >= 0).
        delay_max_ms: longest wait (>= ``delay_min_ms``).
        target_url: base URL, ``inprocess``, or None for the built-in demo server.
        out_dir: where ``load.json`` goes (and the demo server's database); None:
            nothing is written (a temporary directory holds the database).
        console: stream for progress lines (None: silent).
        progress_every_s: wall seconds between progress lines.
    """

    scenario: Scenario
    users: int = 100
    min_requests: int = 10
    max_requests: int = 1000
    duration_s: float | None = None
    delay_min_ms: float = 100.0
    delay_max_ms: float = 2000.0
    target_url: str | None = None
    out_dir: Path | None = None
    console: TextIO | None = None
    progress_every_s: float = 5.0

    def check(self) -> None:
        """Check the figures.

        Raises:
            LoadTestError: one line naming the bad option.
        """
        if self.users < 1:
            raise LoadTestError(f"--users must be at least 1 (got {self.users})")
        if self.min_requests < 0:
            raise LoadTestError(f"--min-request-count cannot be negative (got {self.min_requests})")
        if self.max_requests < self.min_requests:
            raise LoadTestError(
                f"--min-request-count ({self.min_requests}) is larger than "
                f"--max-request-count ({self.max_requests})"
            )
        if self.delay_min_ms < 0:
            raise LoadTestError(f"--delay-min cannot be negative (got {self.delay_min_ms:g})")
        if self.delay_max_ms < self.delay_min_ms:
            raise LoadTestError(
                f"--delay-min ({self.delay_min_ms:g}) is larger than "
                f"--delay-max ({self.delay_max_ms:g})"
            )
        if self.duration_s is not None and not self.duration_s > 0:
            raise LoadTestError(f"--duration must be positive (got {self.duration_s:g} s)")
        if not action_distribution(self.scenario):
            raise LoadTestError("the scenario's personas give no action a positive weight")


@dataclass
class _Tally:
    """Counts and latencies of one kind of request."""

    requests: int = 0
    failed: int = 0
    intended: int = 0
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, _MAX_LATENCY_US, 3))

    def add(self, outcome: Outcome) -> None:
        self.requests += 1
        if outcome.intended:
            self.intended += 1
        elif not outcome.ok:
            self.failed += 1
        us = max(1, min(int(outcome.latency_ms * 1000), _MAX_LATENCY_US))
        self.latency.record_value(us)

    def percentiles(self) -> dict[str, float]:
        if self.requests == 0:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
        hist = self.latency
        return {
            "p50": round(hist.get_value_at_percentile(50) / 1000, 3),
            "p95": round(hist.get_value_at_percentile(95) / 1000, 3),
            "p99": round(hist.get_value_at_percentile(99) / 1000, 3),
            "mean": round(hist.get_mean_value() / 1000, 3),
            "max": round(hist.get_max_value() / 1000, 3),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "intended_errors": self.intended,
            "latency_ms": self.percentiles(),
        }


@dataclass
class LoadResult:
    """What a load test measured (``load.json`` is :meth:`to_dict`).

    Attributes:
        options: the settings it ran with.
        target: the base URL used.
        wall_s: wall seconds from the first sign-up to the last answer.
        completed_users: users that made all their requests.
        cut_short: some user stopped before its count (duration or interrupt).
        interrupted: stopped by SIGINT/SIGTERM.
        impossible: request slots given up because no drawn action was possible
            (``api`` guards, e.g. nothing to read yet); not counted as requests.
        distribution: the flattened action distribution (name -> probability).
        transport: the resilient transport's counters (retries, rate limited...).
    """

    options: LoadOptions
    target: str
    wall_s: float = 0.0
    completed_users: int = 0
    cut_short: bool = False
    interrupted: bool = False
    impossible: int = 0
    distribution: dict[str, float] = field(default_factory=dict)
    transport: dict[str, Any] = field(default_factory=dict)
    total: _Tally = field(default_factory=_Tally)
    by_action: dict[str, _Tally] = field(default_factory=dict)
    setup: dict[str, _Tally] = field(default_factory=dict)
    by_status: Counter[int] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        """Requests made (sign-up and log-in excluded)."""
        return self.total.requests

    @property
    def failed(self) -> int:
        """Requests that failed (deliberate errors excluded)."""
        return self.total.failed

    @property
    def success_rate(self) -> float:
        """Share of requests that succeeded, deliberate errors left out (1.0 with none)."""
        real = self.total.requests - self.total.intended
        return (real - self.total.failed) / real if real > 0 else 1.0

    @property
    def requests_per_second(self) -> float:
        """Requests per wall second over the whole test (setup included in the time)."""
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    def latency_ms(self) -> dict[str, float]:
        """Latency of the requests: ``p50``, ``p95``, ``p99``, ``mean``, ``max`` (wall ms)."""
        return self.total.percentiles()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready figures (the content of ``load.json``)."""
        o = self.options
        return {
            "scenario": o.scenario.name,
            "seed": o.scenario.seed,
            "target": self.target,
            "users": o.users,
            "min_request_count": o.min_requests,
            "max_request_count": o.max_requests,
            "delay_ms": [o.delay_min_ms, o.delay_max_ms],
            "duration_s": o.duration_s,
            "requests": self.requests,
            "failed": self.failed,
            "intended_errors": self.total.intended,
            "success_rate": round(self.success_rate, 6),
            "latency_ms": self.latency_ms(),
            "requests_per_second": round(self.requests_per_second, 3),
            "wall_seconds": round(self.wall_s, 3),
            "completed_users": self.completed_users,
            "cut_short": self.cut_short,
            "interrupted": self.interrupted,
            "impossible": self.impossible,
            "by_action": {
                name: t.as_dict()
                for name, t in sorted(self.by_action.items(), key=lambda kv: -kv[1].requests)
            },
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "setup": {name: t.as_dict() for name, t in self.setup.items()},
            "distribution": {k: round(v, 6) for k, v in self.distribution.items()},
            "transport": self.transport,
            "version": __version__,
        }


def action_distribution(scenario: Scenario) -> dict[str, float]:
    """Flatten the personas' weight matrices into one action distribution.

    Each persona's ``relaxing`` matrix (its ``working`` one when it has no
    ``relaxing``), with ``post_frequency`` and ``update_frequency`` applied, is
    normalised and weighted by the persona's share. Returns name -> probability
    (summing to 1; empty when nothing has weight), most likely first.
    """
    shares = scenario.persona_shares()
    total_share = sum(shares.values())
    mix: dict[str, float] = {}
    if total_share <= 0:
        return mix
    for persona in compile_personas(scenario):
        share = shares[persona.name] / total_share
        if share <= 0:
            continue
        state = "relaxing" if "relaxing" in persona.spec.actions else "working"
        for name, p in persona.action_probabilities(state).items():
            mix[name] = mix.get(name, 0.0) + share * p
    norm = sum(mix.values())
    return {k: v / norm for k, v in sorted(mix.items(), key=lambda kv: -kv[1])} if norm else {}


def run_load(options: LoadOptions) -> LoadResult:
    """Run a load test to its end (or until SIGINT/SIGTERM) and write ``load.json``.

    Starts the built-in demo server first when ``target_url`` is None.

    Raises:
        LoadTestError: bad options (one line).
        SafetyError: the target is outside loopback and not in ``safety.allow_hosts``.
        TargetUnreachableError: nothing answers at the target URL.
        DemoServerError: the demo server did not start.
        OSError: the output directory cannot be written.
    """
    from sim_engine.runs.runner import _run_loop, _target_url

    options.check()
    target = options.target_url or DEMO
    check_target_allowed(target, options.scenario.safety.allow_hosts)
    if options.out_dir is not None:
        options.out_dir.mkdir(parents=True, exist_ok=True)
    with _work_dir(options.out_dir) as work, _target_url(target, work) as url:
        result = cast(LoadResult, _run_loop(run_load_async(options, url, work)))
    if options.out_dir is not None:
        write_load_json(result, options.out_dir)
    return result


@contextlib.contextmanager
def _work_dir(out_dir: Path | None) -> Iterator[Path]:
    if out_dir is not None:
        yield out_dir
        return
    with tempfile.TemporaryDirectory(prefix="sim-engine-load-") as tmp:
        yield Path(tmp)


async def run_load_async(options: LoadOptions, url: str, work_dir: Path) -> LoadResult:
    """Run the load test against ``url`` (a base URL or ``inprocess``) in this event loop.

    ``work_dir`` holds the in-process app's database. Writes nothing else.

    Raises:
        LoadTestError: bad options.
        TargetUnreachableError: nothing answers at ``url``.
    """
    from sim_engine.runs.runner import RunOptions, _target, _transport

    options.check()
    run_options = RunOptions(
        scenario=options.scenario,
        target_url=url,
        speed=None,
        duration_s=None,
        start_s=time.time(),
        out_dir=work_dir,
    )
    transport = _transport(url, run_options)
    try:
        await transport.check()
    except BaseException:
        await transport.aclose()
        raise
    try:
        target, hooks = plugin_runtime(
            options.scenario, _target(options.scenario, transport), transport
        )
    except BaseException:
        await transport.aclose()
        raise
    test = _LoadTest(options, target, hooks, url)
    try:
        await test.run()
    finally:
        await target.aclose()
    statistics = getattr(transport, "statistics", None)
    if statistics is not None:
        test.result.transport = statistics()
    return test.result


def write_load_json(result: LoadResult, out_dir: Path) -> Path:
    """Write ``OUT_DIR/load.json`` (atomically) and return its path.

    Raises:
        OSError: the directory cannot be written.
    """
    path = out_dir / "load.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def format_summary(result: LoadResult) -> list[str]:
    """Return the end-of-test summary as printable lines."""
    lat = result.latency_ms()
    head = "Interrupted" if result.interrupted else "Done"
    if result.cut_short and not result.interrupted:
        head += " (duration reached)"
    lines = [
        f"{head}: {result.requests} requests from {result.options.users} users "
        f"in {result.wall_s:.1f} s, {result.requests_per_second:.1f} requests/s",
        f"  success {100 * result.success_rate:.1f}% ({result.failed} failed"
        + (f", {result.total.intended} deliberate errors" if result.total.intended else "")
        + ")",
        f"  latency p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f} / p99 {lat['p99']:.1f} ms "
        f"(max {lat['max']:.1f})",
    ]
    if result.setup:
        setup = ", ".join(
            f"{name} {t.requests} ({t.failed} failed)" for name, t in result.setup.items()
        )
        lines.append(f"  setup: {setup}")
    rows = sorted(result.by_action.items(), key=lambda kv: -kv[1].requests)
    if rows:
        lines.append("  by action:")
        width = max(len(name) for name, _ in rows)
        for name, t in rows:
            p = t.percentiles()
            lines.append(
                f"    {name:<{width}}  {t.requests:>7} requests  {t.failed:>6} failed  "
                f"p50 {p['p50']:.1f} / p95 {p['p95']:.1f} ms"
            )
    if result.impossible:
        lines.append(f"  {result.impossible} request slots had no possible action")
    return lines


class _LoadTest:
    """The virtual users of one load test and what they measured."""

    def __init__(self, options: LoadOptions, target: Target, hooks: list[Any], url: str) -> None:
        scenario = options.scenario
        self._options = options
        self._target = target
        self._hooks = hooks
        self._scenario = scenario
        dist = action_distribution(scenario)
        self._names = list(dist)
        self._weights = [dist[n] for n in self._names]
        self._secret = secrets.token_hex(16)
        personas = compile_personas(scenario)
        shares = scenario.persona_shares()
        pop = scenario.population
        self._factory = IdentityFactory(
            seed=scenario.seed,
            persona_shares=[shares[p.name] for p in personas],
            timezones=list(pop.timezones.items()),
            email_domain=pop.email_domain,
            tags=pop.tags,
            avatar=pop.avatar,
            run_tag=self._secret[:6],
        )
        self._content = ContentGenerator(scenario.seed)
        self._api = scenario.api
        self._stopping = False
        self._deadline: float | None = None
        self.result = LoadResult(options, url, distribution=dist)

    def stop(self) -> None:
        """Stop every user before its next request (requests in flight finish)."""
        self._stopping = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._options.duration_s is not None:
            self._deadline = started + self._options.duration_s
        seed = self._scenario.seed
        users = [self._factory.create(time.time()) for _ in range(self._options.users)]
        received = self._install_signals(loop)
        progress = None
        if self._options.console is not None:
            progress = asyncio.ensure_future(self._progress(started))
        try:
            await asyncio.gather(
                *(self._user(u, random.Random(f"{seed}:{u.user_id}")) for u in users)
            )
        finally:
            if progress is not None:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
            self._remove_signals(loop)
        self.result.wall_s = loop.time() - started
        self.result.interrupted = bool(received)

    # -- one virtual user ------------------------------------------------------------------

    async def _user(self, user: SimUser, rng: random.Random) -> None:
        count = rng.randint(self._options.min_requests, self._options.max_requests)
        for hook in self._hooks:
            hook.on_session_start(user, time.time())
        try:
            await self._sign_in(user)
            steps: list[Any] = []
            user.feed_offset = 0
            for _ in range(count):
                if not await self._pause(rng):
                    self.result.cut_short = True
                    return
                request = self._next_request(user, rng, steps)
                if request is None:
                    self.result.impossible += 1
                    continue
                outcome = await self._target.send(request)
                if self._scenario.api is None:
                    remember_social(user, request, outcome)
                self._count(request.action, outcome)
            self.result.completed_users += 1
        finally:
            for hook in self._hooks:
                hook.on_session_end(user, time.time())

    async def _pause(self, rng: random.Random) -> bool:
        """Wait the think delay; False when the test is over (duration or interrupt)."""
        if self._stopping:
            return False
        delay = rng.uniform(self._options.delay_min_ms, self._options.delay_max_ms) / 1000.0
        loop = asyncio.get_running_loop()
        if self._deadline is not None and loop.time() + delay >= self._deadline:
            await asyncio.sleep(max(0.0, self._deadline - loop.time()))
            return False
        await asyncio.sleep(delay)
        return not self._stopping

    async def _sign_in(self, user: SimUser) -> None:
        """Sign up and log in, as the engine does (a 409 on sign-up still logs in)."""
        now = time.time()
        iso = _iso(now, user)
        password = user_password(user, self._secret, self._scenario)
        signup, login = signup_requests(user, password, now, iso, self._api is not None)
        outcome = await self._target.send(signup)
        self._count_setup("sign_up", outcome)
        if outcome.ok:
            user.remote_id = outcome.remote_id
        elif outcome.status != 409:
            return  # the user goes on without a token: its requests fail and are counted
        outcome = await self._target.send(login)
        self._count_setup("log_in", outcome)
        if outcome.ok:
            user.token = outcome.token
            if user.remote_id is None:
                user.remote_id = outcome.remote_id

    # -- drawing and binding ----------------------------------------------------------------

    def _next_request(
        self, user: SimUser, rng: random.Random, steps: list[Any]
    ) -> ActionRequest | None:
        now = time.time()
        iso = _iso(now, user)
        if self._api is None:
            name = rng.choices(self._names, self._weights)[0]
            return bind_social(
                name, user, now, iso, rng, self._content, self._scenario.target.page_size
            )
        for _ in range(_DRAWS):
            drawn = self._next_api_name(user, rng, steps)
            if drawn is None:
                continue
            request = api_request(self._resolver(), drawn, user, now)
            if request is not None:
                return request
        return None

    def _resolver(self) -> ActionResolver | None:
        target = self._target
        return target if isinstance(target, ActionResolver) else None

    def _next_api_name(self, user: SimUser, rng: random.Random, steps: list[Any]) -> str | None:
        """The next action of an ``api`` scenario: a workflow's next step, or a fresh draw."""
        api = self._api
        assert api is not None
        if not steps:
            name = rng.choices(self._names, self._weights)[0]
            workflow = api.workflows.get(name)
            if workflow is None:
                return name
            steps.extend(workflow.steps)
        drawn = next_step(api, steps, rng, self._resolver(), user.user_id)
        return drawn[0] if drawn is not None else None  # wall-time delays, not think times

    # -- figures ------------------------------------------------------------------------------

    def _count(self, action: str, outcome: Outcome) -> None:
        result = self.result
        result.total.add(outcome)
        tally = result.by_action.get(action)
        if tally is None:
            tally = result.by_action[action] = _Tally()
        tally.add(outcome)
        result.by_status[outcome.status] += 1

    def _count_setup(self, action: str, outcome: Outcome) -> None:
        tally = self.result.setup.get(action)
        if tally is None:
            tally = self.result.setup[action] = _Tally()
        tally.add(outcome)

    async def _progress(self, started: float) -> None:
        console = self._options.console
        assert console is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._options.progress_every_s)
            r = self.result
            console.write(
                f"  {loop.time() - started:6.1f} s: {r.requests} requests, "
                f"{100 * r.success_rate:.1f}% ok, "
                f"{r.completed_users}/{self._options.users} users done\n"
            )
            console.flush()

    # -- signals --------------------------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        received: list[int] = []

        def stop(signum: int) -> None:
            received.append(signum)
            self.stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop, signum)
        return received

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)


def _iso(now: float, user: SimUser) -> str:
    return datetime.fromtimestamp(now, user.tz).isoformat(timespec="milliseconds")
