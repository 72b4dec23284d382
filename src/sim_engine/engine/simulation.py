"""The engine: one scheduler for the whole population.

A single heap of due events ``(sim_time, seq, kind, user)`` drives everything;
no user owns a task or a timer, so a million sleeping users cost memory, not
CPU. Popping an event runs the (pure) planner for that user and, when an
action is due, binds it to the user's memory and dispatches it to the target
as an asyncio task under a concurrency cap. When the answer arrives, the
user's memory is updated and its next event is pushed.

With a jumping clock (``--speed max`` or a manual clock) the engine moves time
itself, and keeps causality with a lookahead: it never pops an event later
than the oldest in-flight action's time plus the smallest possible think time,
so a response can never schedule a follow-up in the simulated past.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import secrets
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sim_engine.api.binding import (
    _run_tag,
    bind_social,
    remember_social,
    signup_requests,
    user_password,
)
from sim_engine.engine.api_actions import ApiActions
from sim_engine.engine.clock import Clock, FastForwardClock, ScaledClock
from sim_engine.engine.crash_safety import CrashSafety
from sim_engine.engine.daily import DailyDynamics
from sim_engine.engine.events import (
    _ARRIVAL,
    _DAY,
    _DAY_S,
    _NEXT,
    _REPLACE,
    _SESSION,
    _TICK,
    _next_midnight,
    _offset_of,
    _offset_s,
)
from sim_engine.model.behaviour import CompiledPersona, compile_personas
from sim_engine.model.content import ContentGenerator
from sim_engine.model.lifecycle import LifecycleState, new_status, session_depth
from sim_engine.model.population import IdentityFactory, SimUser, save_rng, user_rng
from sim_engine.model.records import (
    ActionRecord,
    ActionRequest,
    Outcome,
    Sink,
    Store,
    Target,
    UserRecord,
)
from sim_engine.model.scenario import FounderSpec, Scenario

__all__ = [
    "Simulation",
    "SimulationStats",
    "bind_social",
    "remember_social",
    "user_password",
]

_REFERENCE_MEAN_ACTIONS = 4.0  # persona depth factor = mean_actions / this (lifecycle on)
_SIGNUP_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SimulationStats:
    """A snapshot of a run (see :meth:`Simulation.statistics`).

    Attributes:
        sim_now: current simulated time (simulated epoch seconds).
        users: users created so far; ``signed_up``: of them, signed up on the target.
        actions: actions completed; ``failed``: of them, not ok.
        in_flight: actions awaiting an answer.
        scheduled: events waiting in the heap.
    """

    sim_now: float
    users: int
    signed_up: int
    actions: int
    failed: int
    in_flight: int
    scheduled: int


class Simulation(DailyDynamics, CrashSafety, ApiActions):
    """A population of simulated users acting on a target over simulated time.

    Args:
        scenario: the validated scenario.
        target: what the actions run against.
        clock: the clock (its current time is the simulated start).
        sinks: receivers of :class:`ActionRecord` and :class:`UserRecord`.
        duration_s: simulated seconds to run (None: until :meth:`stop`).
        secret: run secret from which passwords are derived (default: random).
        store: where users are saved as they change (crash safety); None: nowhere.
        hooks: objects with ``on_session_start(user, sim_t)`` and
            ``on_session_end(user, sim_t)`` (plugins, seed 000's SimulationPlugin).
    """

    def __init__(
        self,
        scenario: Scenario,
        target: Target,
        clock: Clock,
        sinks: Sequence[Sink] = (),
        duration_s: float | None = None,
        secret: str | None = None,
        store: Store | None = None,
        hooks: Sequence[Any] = (),
    ) -> None:
        self.scenario = scenario
        self._target = target
        self._clock = clock
        self._sinks = list(sinks)
        self._start_s = clock.now()
        self._end_s = math.inf if duration_s is None else self._start_s + duration_s
        self._secret = secret or secrets.token_hex(16)
        self._personas: list[CompiledPersona] = compile_personas(scenario)
        shares = scenario.persona_shares()
        pop = scenario.population
        self._factory = IdentityFactory(
            seed=scenario.seed,
            persona_shares=[shares[p.name] for p in self._personas],
            timezones=list(pop.timezones.items()),
            email_domain=pop.email_domain,
            tags=pop.tags,
            avatar=pop.avatar,
            run_tag=_run_tag(self._secret),
        )
        self._content = ContentGenerator(scenario.seed)
        self._growth_rng = random.Random(scenario.seed * 7919 + 1)
        self._heap: list[tuple[float, int, int, SimUser | None]] = []
        self._seq = 0
        self._users: dict[int, SimUser] = {}
        self._signup_failures: dict[int, int] = {}
        self._lookahead_s = max(
            min(p.session.think_time.min_s for p in self._personas),
            scenario.limits.min_action_interval_s,
        )
        self._open_sessions = 0
        self._inflight_times: deque[float] = deque()
        self._inflight: set[asyncio.Task[None]] = set()
        self._progress = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._stopping = False
        self._signed_up = 0
        self._actions = 0
        self._failed = 0
        self._error: BaseException | None = None
        self._steps: dict[int, list[Any]] = {}  # workflow steps left, by user id
        self._hooks = list(hooks)
        self._hooked: set[int] = set()  # users whose session start the hooks saw
        self._dirty: set[int] = set()
        self._store = store
        self._populated = False
        self._life = scenario.lifecycle if scenario.lifecycle.enabled else None
        self._persona_index = {p.name: p.index for p in self._personas}
        self._arrivals_today = 0
        self._day_start_s = self._start_s

    # -- public ---------------------------------------------------------------------------

    @property
    def start_s(self) -> float:
        """Simulated start (simulated epoch seconds)."""
        return self._start_s

    @property
    def end_s(self) -> float:
        """Simulated end (simulated epoch seconds; ``inf`` when open-ended)."""
        return self._end_s

    @property
    def target(self) -> Target:
        """The target the users act on (add-ons may read its ``statistics()`` if it has one)."""
        return self._target

    @property
    def personas(self) -> list[CompiledPersona]:
        """The compiled personas, by index."""
        return self._personas

    @property
    def users(self) -> dict[int, SimUser]:
        """The users by engine id (read-only use, please)."""
        return self._users

    def statistics(self) -> SimulationStats:
        """Return a snapshot of the run's counters."""
        return SimulationStats(
            sim_now=self._clock.now(),
            users=len(self._users),
            signed_up=self._signed_up,
            actions=self._actions,
            failed=self._failed,
            in_flight=len(self._inflight),
            scheduled=len(self._heap),
        )

    def stop(self) -> None:
        """Stop starting actions; :meth:`run` returns once in-flight ones have finished."""
        self._stopping = True
        self._resumed.set()
        self._progress.set()

    # -- run control ----------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True while the run takes no action and its simulated clock stands still."""
        return not self._resumed.is_set()

    @property
    def speed(self) -> float | None:
        """Simulated seconds per wall second; None for ``max``."""
        return None if self._clock.jumps else getattr(self._clock, "speed", None)

    @property
    def state(self) -> str:
        """``running``, ``paused`` or ``stopping`` (for status lines and dashboards)."""
        if self._stopping:
            return "stopping"
        return "paused" if self.paused else "running"

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (or the run ended)."""
        return self._stopping

    def pause(self) -> None:
        """Take no more actions and stop simulated time until :meth:`resume`."""
        self._resumed.clear()
        pause = getattr(self._clock, "pause", None)
        if pause is not None:
            pause()
        self._progress.set()

    def resume(self) -> None:
        """Let simulated time run and actions flow again."""
        resume = getattr(self._clock, "resume", None)
        if resume is not None:
            resume()
        self._resumed.set()
        self._progress.set()

    def set_speed(self, speed: float | None) -> None:
        """Change the speed at run time: simulated seconds per wall second, or None for ``max``.

        Switching between ``max`` and a factor swaps the clock, anchored at the
        current simulated time, so time never jumps.

        Raises:
            ValueError: ``speed`` is not positive.
        """
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive (or None for max)")
        now = self._clock.now()
        current = self.speed
        if speed is None:
            if current is not None:
                self._clock = FastForwardClock(now)
        elif current is None:
            clock = ScaledClock(now, speed)
            if self.paused:
                clock.pause()
            self._clock = clock
        else:
            set_speed = getattr(self._clock, "set_speed", None)
            if set_speed is not None:
                set_speed(speed)
        self._progress.set()

    def breakdown(self) -> dict[str, dict[str, int]]:
        """Count users by lifecycle state, persona and current routine state.

        Returns ``{"lifecycle": {...}, "persona": {...}, "routine": {...},
        "session": {"in_session": n}}``. Costs one pass over the population.
        """
        now = self._clock.now()
        lifecycle: dict[str, int] = {}
        persona: dict[str, int] = {}
        routine: dict[str, int] = {}
        cache: dict[tuple[int, Any], str] = {}
        in_session = 0
        for user in self._users.values():
            p = self._personas[user.persona]
            persona[p.name] = persona.get(p.name, 0) + 1
            if user.life is not None:
                key = user.life.state.value
                lifecycle[key] = lifecycle.get(key, 0) + 1
            group = (user.persona, user.tz)
            state = cache.get(group)
            if state is None:
                state = cache[group] = p.state_at(now, _offset_s(user, now))
            routine[state] = routine.get(state, 0) + 1
            in_session += user.session_left > 0
        return {
            "lifecycle": lifecycle,
            "persona": persona,
            "routine": routine,
            "session": {"in_session": in_session},
        }

    def add_users(self, count: int, at_s: float | None = None) -> list[SimUser]:
        """Create ``count`` users now (or at ``at_s``); each signs up at its first session.

        Returns the users created (fewer when the population maximum is reached).
        """
        t = self._clock.now() if at_s is None else at_s
        made = []
        for _ in range(count):
            if len(self._users) >= self.scenario.population.max:
                break
            made.append(self._create_user(t))
        return made

    def populate(self) -> None:
        """Create the founders and the initial population (once; :meth:`run` calls it too).

        Call it before :meth:`run` to build a large population while a live clock
        is paused, so building takes no simulated time.
        """
        if self._users or self._populated:
            return
        self._populated = True
        for founder in self.scenario.population.founders:
            self._create_founder(founder, self._start_s)
        self.add_users(self.scenario.population.initial, self._start_s)

    async def run(self) -> SimulationStats:
        """Run until the duration has passed or :meth:`stop` is called.

        Returns the final statistics. Never raises for failed actions (they are
        records); exceptions from sinks or the target's programming errors
        propagate.
        """
        self.populate()
        if self.scenario.population.signups_per_day > 0:
            self._push(self._start_s + self._arrival_gap_s(), _ARRIVAL, None)
        self._push(self._day_start_s + _DAY_S, _TICK, None)
        try:
            await self._loop()
        finally:
            self._stopping = True
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            end = min(self._clock.now(), self._end_s)
            if end > self._day_start_s:
                self._emit(self._snapshot(end))
        if self._error is not None:
            raise self._error
        return self.statistics()

    # -- scheduling -----------------------------------------------------------------------

    def _push(self, sim_t: float, kind: int, user: SimUser | None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (sim_t, self._seq, kind, user))
        if user is not None and kind != _DAY:
            user.pending = True
        self._progress.set()

    def _arrival_gap_s(self) -> float:
        return self._growth_rng.expovariate(self.scenario.population.signups_per_day / _DAY_S)

    def _blocked(self, sim_t: float) -> bool:
        """True when an event at ``sim_t`` must wait for in-flight actions first."""
        if len(self._inflight) >= self.scenario.target.concurrency:
            return True
        if not self._clock.jumps or not self._inflight_times:
            return False
        return sim_t > self._inflight_times[0] + self._lookahead_s

    async def _wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    async def _loop(self) -> None:
        heap = self._heap
        clock = self._clock
        while not self._stopping:
            if not self._resumed.is_set():
                await self._resumed.wait()
                continue
            clock = self._clock
            if not heap or heap[0][0] >= self._end_s:
                if not self._inflight:
                    break
                await self._wait_progress()
                continue
            sim_t = heap[0][0]
            if self._blocked(sim_t):
                await self._wait_progress()
                continue
            if clock.jumps:
                await clock.sleep_until(sim_t)
            elif clock.now() < sim_t:
                await self._sleep_or_progress(sim_t)
                continue
            _, _, kind, user = heapq.heappop(heap)
            if user is not None:
                if kind == _DAY:
                    self._on_day(user, sim_t)
                else:
                    user.pending = False
                    self._on_user_event(kind, user, sim_t)
            elif kind == _ARRIVAL:
                self._on_arrival(sim_t)
            elif kind == _TICK:
                self._on_tick(sim_t)
            elif kind == _REPLACE and len(self._users) < self.scenario.population.max:
                self._create_user(sim_t)
        clock = self._clock
        if clock.jumps and heap and not self._stopping:
            await clock.sleep_until(min(heap[0][0], self._end_s))
        elif clock.jumps and math.isfinite(self._end_s) and not self._stopping:
            await clock.sleep_until(self._end_s)
        # A wall-clock run lasts its whole duration even when nothing more is due
        # before the end (e.g. everyone asleep); stop() still ends the wait at once.
        while not clock.jumps and not self._stopping and clock.now() < self._end_s < math.inf:
            await self._sleep_or_progress(self._end_s)

    async def _sleep_or_progress(self, sim_t: float) -> None:
        """Wait until the live clock reaches ``sim_t`` or something changes (one timer, no task)."""
        self._progress.clear()
        wall_until = getattr(self._clock, "wall_seconds_until", None)
        delay = wall_until(sim_t) if wall_until is not None else 0.0
        handle = None
        if delay is not None:
            # uvloop rounds timers to whole milliseconds: never ask for less.
            handle = asyncio.get_running_loop().call_later(max(delay, 0.001), self._progress.set)
        try:
            await self._progress.wait()
        finally:
            if handle is not None:
                handle.cancel()

    # -- events ---------------------------------------------------------------------------

    def _create_founder(self, spec: FounderSpec, sim_t: float) -> SimUser:
        persona = self._persona_index[spec.persona] if spec.persona else None
        user = self._factory.create(sim_t, persona=persona, name=spec.name, email=spec.email)
        user.founder = True
        return self._admit(user, sim_t)

    def _create_user(self, sim_t: float) -> SimUser:
        return self._admit(self._factory.create(sim_t), sim_t)

    def _admit(self, user: SimUser, sim_t: float) -> SimUser:
        self._users[user.user_id] = user
        self._saved(user)
        rng = user_rng(user)
        local = datetime.fromtimestamp(sim_t, user.tz)
        if self._life is not None:
            user.life = new_status(self._life, local.date().toordinal(), rng)
            user.life.active_today = True  # joining is the first day's activity
            user.day_end = _next_midnight(local)
            self._push(user.day_end, _DAY, user)
        persona = self._personas[user.persona]
        first = persona.next_session_start(sim_t, _offset_of(local), rng)
        save_rng(user, rng)
        if math.isfinite(first):
            self._push(first, _SESSION, user)
        return user

    def _on_arrival(self, sim_t: float) -> None:
        cap = self.scenario.population.max_signups_per_day
        if len(self._users) < self.scenario.population.max and (
            cap is None or self._arrivals_today < cap
        ):
            self._arrivals_today += 1
            self._create_user(sim_t)
        self._push(sim_t + self._arrival_gap_s(), _ARRIVAL, None)

    def _on_user_event(self, kind: int, user: SimUser, sim_t: float) -> None:
        if user.user_id not in self._users:
            return
        persona = self._personas[user.persona]
        local = datetime.fromtimestamp(sim_t, user.tz)
        offset_s = _offset_of(local)
        state = persona.state_at(sim_t, offset_s)
        life = user.life
        if life is not None and (not life.active_today or life.state is LifecycleState.CHURNED):
            # A session planned for, or running into, a day the user skips
            # (e.g. a vacation starting at midnight) ends without acting -- even a
            # first session that would sign up: it waits for the next active day.
            self._session_ended(user, sim_t)
            self._set_session_left(user, 0)
            user.last_feed = None
            return
        rng = user_rng(user)
        if kind == _SESSION:
            cap = self.scenario.limits.max_concurrent_sessions
            if cap is not None and self._open_sessions >= cap:
                # Too many sessions at once (seed 000's session throttling): try later.
                self._push(sim_t + rng.uniform(30.0, 120.0), _SESSION, user)
                save_rng(user, rng)
                return
            user.session_id += 1
            self._set_session_left(user, self._session_length(persona, rng, user))
            user.feed_offset = 0
            if self._hooks:
                self._hooked.add(user.user_id)
                for hook in self._hooks:
                    hook.on_session_start(user, sim_t)
        if state == "sleeping" or not self._in_session(user):
            self._end_session(user, persona, sim_t, offset_s, rng)
            save_rng(user, rng)
            return
        iso = local.isoformat(timespec="milliseconds")
        request: ActionRequest | None
        floor_s = self.scenario.limits.min_action_interval_s
        if user.token is None:
            requests = self._signup_requests(user, sim_t, iso)
            think_s = max(persona.think_time_s(rng), floor_s)
        elif self.scenario.api is None:
            requests = [self._bind(persona.choose_action(state, rng), user, sim_t, iso, rng)]
            self._set_session_left(user, user.session_left - 1)
            think_s = max(persona.think_time_s(rng), floor_s)
        else:
            request, step_think_s = self._plan_api_action(user, persona, state, sim_t, iso, rng)
            think_s = max(persona.think_time_s(rng), floor_s)
            if step_think_s is not None:
                think_s = max(step_think_s, self.scenario.limits.min_action_interval_s)
            if request is None:  # nothing possible: the user just thinks
                save_rng(user, rng)
                base = sim_t if self._clock.jumps else self._clock.now()
                self._follow_up(user, persona, base, think_s)
                return
            requests = [request]
        save_rng(user, rng)
        self._dispatch(user, persona, state, sim_t, requests, think_s)

    def _end_session(
        self,
        user: SimUser,
        persona: CompiledPersona,
        sim_t: float,
        offset_s: float,
        rng: random.Random,
    ) -> None:
        self._session_ended(user, sim_t)
        self._set_session_left(user, 0)
        self._steps.pop(user.user_id, None)
        user.last_feed = None
        nxt = persona.next_session_start(sim_t, offset_s, rng)
        life = user.life
        if (
            life is not None
            and user.token is not None
            and (nxt >= user.day_end or not life.active_today)
        ):
            return  # today's sessions are over; the user's next local midnight plans more
        if math.isfinite(nxt):
            self._push(max(nxt, sim_t + self._lookahead_s), _SESSION, user)

    def _session_ended(self, user: SimUser, sim_t: float) -> None:
        """Tell the hooks that a session they saw start is over (once per session)."""
        if user.user_id in self._hooked:
            self._hooked.discard(user.user_id)
            for hook in self._hooks:
                hook.on_session_end(user, sim_t)

    def _in_session(self, user: SimUser) -> bool:
        """True while the user has actions (or workflow steps) left in its session."""
        return user.session_left > 0 or bool(self._steps.get(user.user_id))

    def _set_session_left(self, user: SimUser, left: int) -> None:
        """Set the actions left in the user's session, keeping the open-session count."""
        if user.session_left > 0 and left <= 0:
            self._open_sessions -= 1
        elif user.session_left <= 0 and left > 0:
            self._open_sessions += 1
        user.session_left = max(0, left)

    def _session_length(self, persona: CompiledPersona, rng: random.Random, user: SimUser) -> int:
        if user.life is None or self._life is None:
            return persona.session_length(rng)
        factor = persona.session.mean_actions / _REFERENCE_MEAN_ACTIONS
        depth = session_depth(self._life, user.life, rng, scale=factor)
        return min(depth, persona.session.max_actions)

    # -- binding planned actions to memory ------------------------------------------------

    def _signup_requests(self, user: SimUser, sim_t: float, iso: str) -> list[ActionRequest]:
        password = user_password(user, self._secret, self.scenario)
        return signup_requests(user, password, sim_t, iso, self.scenario.api is not None)

    def _bind(
        self, action: str, user: SimUser, sim_t: float, iso: str, rng: random.Random
    ) -> ActionRequest:
        """Turn a planned action into a request from memory (see :func:`bind_social`)."""
        return bind_social(
            action, user, sim_t, iso, rng, self._content, self.scenario.target.page_size
        )

    # -- execution ------------------------------------------------------------------------

    def _dispatch(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        sim_t: float,
        requests: list[ActionRequest],
        think_s: float,
    ) -> None:
        user.pending = True
        self._spawn(sim_t, self._perform(user, persona, state, sim_t, requests, think_s))

    def _spawn(self, sim_t: float, coro: Coroutine[Any, Any, None]) -> None:
        self._inflight_times.append(sim_t)
        task = asyncio.ensure_future(self._timed(sim_t, coro))
        self._inflight.add(task)
        task.add_done_callback(self._on_done)

    async def _timed(self, sim_t: float, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        finally:
            self._inflight_times.remove(sim_t)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._progress.set()
        if not task.cancelled() and task.exception() is not None:
            self._error = self._error or task.exception()
            self._stopping = True  # a programming error: surfaced from run()

    async def _perform(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        sim_t: float,
        requests: list[ActionRequest],
        think_s: float,
    ) -> None:
        ok = True
        for request in requests:
            outcome = await self._target.send(request)
            self._apply(user, request, outcome)
            self._record(user, persona, state, request, outcome)
            if not outcome.ok and not (request.action == "sign_up" and outcome.status == 409):
                # A user that already exists (a founder, seed 001's bootstrap, or a
                # sign-up the target took just before a crash) just logs in.
                ok = False
                break
        if requests[0].action in ("sign_up", "log_in"):
            self._after_signup(user, ok)
        base = sim_t if self._clock.jumps else self._clock.now()
        self._follow_up(user, persona, base, think_s)

    def _after_signup(self, user: SimUser, ok: bool) -> None:
        if ok:
            self._signup_failures.pop(user.user_id, None)
            return
        failures = self._signup_failures.get(user.user_id, 0) + 1
        self._signup_failures[user.user_id] = failures
        self._set_session_left(user, 0)
        if failures >= _SIGNUP_ATTEMPTS and user.remote_id is None:
            del self._users[user.user_id]  # gives up on this user: never joined
            forget = getattr(self._target, "forget_user", None)
            if forget is not None:
                forget(user.user_id)
            if self._store is not None:
                self._store.remove_user(user.user_id)

    def _follow_up(
        self, user: SimUser, persona: CompiledPersona, base: float, think_s: float
    ) -> None:
        user.pending = False
        if self._stopping or user.user_id not in self._users:
            return
        if self._in_session(user) and think_s <= persona.session.inactivity_timeout_s:
            self._push(base + think_s, _NEXT, user)
            return
        rng = user_rng(user)
        self._end_session(user, persona, base, _offset_s(user, base), rng)
        save_rng(user, rng)

    def _apply(self, user: SimUser, request: ActionRequest, outcome: Outcome) -> None:
        """Feed the answer back into the user's memory."""
        action = request.action
        if outcome.intended:
            return  # a deliberate error (error simulation) teaches the user nothing
        if action == "sign_up" and outcome.ok:
            user.joined = True
            user.remote_id = outcome.remote_id
            self._signed_up += 1
            self._saved(user)
            local = datetime.fromtimestamp(request.sim_time, user.tz)
            self._emit(
                UserRecord(
                    sim_time=request.sim_time_iso,
                    sim_ts=request.sim_time,
                    user_id=user.user_id,
                    persona=self._personas[user.persona].name,
                    name=user.name,
                    email=user.email,
                    timezone=str(local.tzinfo),
                    avatar=user.avatar or user.initials,
                    tag=user.tag,
                    remote_id=outcome.remote_id,
                )
            )
        elif action == "log_in":
            user.token = outcome.token if outcome.ok else None
            if outcome.ok and user.remote_id is None:
                user.remote_id = outcome.remote_id
                self._saved(user)
        elif self.scenario.api is None and remember_social(user, request, outcome):
            self._saved(user)  # a post created or deleted: must not be forgotten
        if outcome.status == 401 and action not in ("log_in", "sign_up"):
            user.token = None  # re-login at the next session start

    def _record(
        self,
        user: SimUser,
        persona: CompiledPersona,
        state: str,
        request: ActionRequest,
        outcome: Outcome,
    ) -> None:
        self._actions += 1
        if not outcome.ok and not outcome.intended:
            self._failed += 1
        self._emit(
            ActionRecord(
                sim_time=request.sim_time_iso,
                sim_ts=request.sim_time,
                user_id=user.user_id,
                persona=persona.name,
                state=state,
                action=request.action,
                status=outcome.status,
                ok=outcome.ok,
                latency_ms=round(outcome.latency_ms, 3),
                post_id=outcome.post_id if outcome.post_id is not None else request.post_id,
                session_id=user.session_id,
                error=outcome.error,
                endpoint=outcome.endpoint,
                skipped=outcome.skipped,
                retries=outcome.retries,
                intended=outcome.intended,
            )
        )

    def _emit(self, record: Any) -> None:
        for sink in self._sinks:
            sink.emit(record)
