"""The simulation: one scheduler for the whole population, composed of small collaborators.

A single heap of due events (:class:`~sim_engine.engine.scheduler.Scheduler`)
drives everything; no user owns a task or a timer. Popping an event hands it
to the collaborator that owns its kind:

* :class:`~sim_engine.engine.growth.Growth` -- arrivals and replacements;
* :class:`~sim_engine.engine.sessions.Sessions` -- session starts and steps,
  which become dispatches for the :class:`~sim_engine.engine.executor.Executor`
  (binds, sends, feeds answers back through a ``capabilities.Binder``);
* :class:`~sim_engine.engine.daycycle.DayCycle` -- run days and local midnights;
* :class:`~sim_engine.engine.persistence.Persistence` -- checkpoints, restore, reconcile.

With a jumping clock (``--speed max`` or a manual clock) the engine moves time
itself, and keeps causality with a lookahead: it never pops an event later
than the oldest in-flight action's time plus the smallest possible think time,
so a response can never schedule a follow-up in the simulated past.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Sequence
from typing import Any

from sim_engine.api.binding import run_tag, user_password
from sim_engine.engine.binders import ApiBinder
from sim_engine.engine.capabilities import (
    ActionResolver,
    Binder,
    CreationCleaner,
    Journal,
    MemoryKeeper,
    SessionAware,
    SessionHook,
    SessionPolicy,
    UserForgetter,
)
from sim_engine.engine.clock import Clock, SpeedControl
from sim_engine.engine.daycycle import DayCycle
from sim_engine.engine.events import ARRIVAL, DAY, REPLACE, TICK, population_breakdown
from sim_engine.engine.executor import Executor
from sim_engine.engine.growth import Growth
from sim_engine.engine.journal import Progress
from sim_engine.engine.ledger import Ledger
from sim_engine.engine.persistence import Persistence
from sim_engine.engine.policies import PersonaPolicy
from sim_engine.engine.scheduler import Scheduler
from sim_engine.engine.sessions import Sessions
from sim_engine.engine.stall import StallMeter
from sim_engine.engine.stats import SimulationStats
from sim_engine.model.api_spec import ApiSpec
from sim_engine.model.behaviour import CompiledPersona, compile_personas
from sim_engine.model.builtin import social_api
from sim_engine.model.population import IdentityFactory, SimUser
from sim_engine.model.records import Sink, Store, Target
from sim_engine.model.scenario import Scenario

__all__ = ["Simulation", "SimulationStats", "effective_api", "user_password"]

_TIMER_S = 0.001  # a load test's back-to-back steps (1 µs apart) must not sleep 1 ms


def effective_api(scenario: Scenario) -> ApiSpec:
    """The scenario's ``api`` section, or the built-in demo API's description."""
    return scenario.api if scenario.api is not None else social_api()


class Simulation:
    """A population of simulated users acting on a target over simulated time.

    Args:
        scenario: the validated scenario.
        target: what the actions run against.
        clock: the clock (its current time is the simulated start). A clock that
            is also a :class:`~sim_engine.engine.clock.SpeedControl` can be
            paused and re-speeded through :meth:`pause`, :meth:`resume` and
            :meth:`set_speed`; the object is never replaced.
        sinks: receivers of :class:`ActionRecord`, :class:`UserRecord`,
            :class:`LifecycleRecord` and :class:`DaySnapshot`.
        duration_s: simulated seconds to run (None: until :meth:`stop`).
        secret: run secret from which passwords and the email tag derive
            (default: random).
        store: where users are saved as they change (crash safety); None: nowhere.
        hooks: told when sessions start and end (plugins, seed 000's SimulationPlugin).
        policy: how sessions are planned (default: the persona model,
            :class:`~sim_engine.engine.policies.PersonaPolicy`; the load test
            passes a :class:`~sim_engine.engine.policies.ClosedLoopPolicy`).
        journal: where each action is written before it is sent, so that a resumed
            run does not send it again (``engine/journal.py``); None: nowhere.
        stall: when an action waiting on the wall clock stops holding the others at
            ``--speed max`` (default: after 0.5 wall s; ``StallMeter.adaptive()``
            follows the target's latency; see ``engine/stall.py``).
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
        hooks: Sequence[SessionHook] = (),
        policy: SessionPolicy | None = None,
        journal: Journal | None = None,
        stall: StallMeter | None = None,
    ) -> None:
        self.scenario = scenario
        self._target = target
        self._clock = clock
        self._control = clock if isinstance(clock, SpeedControl) else None
        self._start_s = clock.now()
        self.run_start_s = self._start_s  # where the run began: a resumed run's runner sets it
        self._end_s = math.inf if duration_s is None else self._start_s + duration_s
        self._personas = compile_personas(scenario)
        self._progress = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._stopping = False
        self._stopped = False  # stop() was called (not just the end of the run)
        self._populated = False
        self._wake_in: float | None = None  # wall seconds until a blocking action stalls
        life = scenario.lifecycle if scenario.lifecycle.enabled else None
        self._policy = policy if policy is not None else PersonaPolicy(life)
        self._compose(secret or secrets.token_hex(16), store, sinks, hooks, journal)
        self._executor.stall = stall or self._executor.stall

    def _compose(
        self,
        secret: str,
        store: Store | None,
        sinks: Sequence[Sink],
        hooks: Sequence[SessionHook],
        journal: Journal | None,
    ) -> None:
        scenario, target, personas = self.scenario, self._target, self._personas
        lookahead_s = max(
            min(p.session.think_time.min_s for p in personas),
            scenario.limits.min_action_interval_s,
        )
        self._lookahead_s = lookahead_s
        self._concurrency = scenario.target.concurrency
        forgetter = target if isinstance(target, UserForgetter) else None
        keeper = target if isinstance(target, MemoryKeeper) else None
        self._ledger = Ledger(personas, sinks, store, forgetter, keeper, journal)
        self._scheduler = Scheduler(self._progress.set)
        api = effective_api(scenario)
        resolver = target if isinstance(target, ActionResolver) else None
        aware = target if isinstance(target, SessionAware) else None
        binder: Binder = ApiBinder(api, resolver, aware)
        self._sessions = Sessions(
            scenario, personas, self._scheduler, binder, secret, lookahead_s, hooks, self._alive,
            self._policy,
        )  # fmt: skip
        self._executor = Executor(
            target, self._clock, self._ledger, self._sessions, binder, self._on_change
        )
        factory = self._factory(secret)
        self._growth = Growth(
            scenario, personas, factory, self._ledger, self._scheduler, self._policy
        )
        life = scenario.lifecycle if scenario.lifecycle.enabled else None
        can_delete = "delete_account" in api.actions
        self._days = DayCycle(
            life, personas, self._scheduler, self._ledger, self._growth, self._sessions,
            self._executor, target, can_delete, self._start_s, lookahead_s,
            target if isinstance(target, CreationCleaner) else None,
        )  # fmt: skip
        self._persistence = Persistence(
            self._clock, self._ledger, self._growth, self._days, self._sessions,
            self._scheduler, personas, target, (self._start_s, self._end_s),
            scenario.target.concurrency, "list_own_posts" in api.actions,
        )  # fmt: skip

    def _factory(self, secret: str) -> IdentityFactory:
        shares = self.scenario.persona_shares()
        pop = self.scenario.population
        return IdentityFactory(
            seed=self.scenario.seed,
            persona_shares=[shares[p.name] for p in self._personas],
            timezones=list(pop.timezones.items()),
            email_domain=pop.email_domain,
            tags=pop.tags,
            avatar=pop.avatar,
            run_tag=run_tag(secret),
        )

    # -- public ---------------------------------------------------------------------------

    @property
    def start_s(self) -> float:
        """Simulated start of this process's simulation (simulated epoch seconds): for a
        resumed run, where it resumed; :attr:`run_start_s` is where the run began."""
        return self._start_s

    @property
    def end_s(self) -> float:
        """Simulated end (simulated epoch seconds; ``inf`` when open-ended)."""
        return self._end_s

    @property
    def clock(self) -> Clock:
        """The run's clock (the same object for the whole run, whatever the speed)."""
        return self._clock

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
        return self._ledger.users

    def statistics(self) -> SimulationStats:
        """Return a snapshot of the run's counters."""
        ledger = self._ledger
        return SimulationStats(
            sim_now=self._clock.now(),
            users=len(ledger.users),
            signed_up=ledger.signed_up,
            actions=ledger.actions,
            failed=ledger.failed,
            in_flight=len(self._executor.inflight),
            scheduled=len(self._scheduler),
            idle=self._executor.idle,
        )

    def stop(self) -> None:
        """Stop starting actions; :meth:`run` returns once in-flight ones have finished, or
        after ``target.timeout_s`` wall seconds (those still waiting are cancelled)."""
        self._stopped = True
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
        """Simulated seconds per wall second; None for ``max`` (or a manual clock)."""
        if self._clock.jumps or self._control is None:
            return None
        return self._control.speed

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
        if self._control is not None:
            self._control.pause()
        self._progress.set()

    def resume(self) -> None:
        """Let simulated time run and actions flow again."""
        if self._control is not None:
            self._control.resume()
        self._resumed.set()
        self._progress.set()

    def set_speed(self, speed: float | None) -> None:
        """Change the speed at run time: simulated seconds per wall second, or None for ``max``.

        The clock switches itself, anchored at the current simulated time, so
        time never jumps and every holder of the clock sees the change.

        Raises:
            ValueError: ``speed`` is not positive, or the clock cannot change speed.
        """
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive (or None for max)")
        if self._control is None:
            raise ValueError("this run's clock cannot change speed")
        self._control.set_speed(speed)
        self._progress.set()

    def breakdown(self) -> dict[str, dict[str, int]]:
        """Count users by lifecycle state, persona and current routine state.

        Returns ``{"lifecycle": {...}, "persona": {...}, "routine": {...},
        "session": {"in_session": n}}``. Costs one pass over the population.
        """
        return population_breakdown(self._ledger.users.values(), self._personas, self._clock.now())

    def add_users(self, count: int, at_s: float | None = None) -> list[SimUser]:
        """Create ``count`` users now (or at ``at_s``); each signs up at its first session.

        Returns the users created (fewer when the population maximum is reached).
        """
        return self._growth.add_users(count, self._clock.now() if at_s is None else at_s)

    def populate(self) -> None:
        """Create the founders and the initial population (once; :meth:`run` calls it too).

        Call it before :meth:`run` to build a large population while a live clock
        is paused, so building takes no simulated time.
        """
        if self._ledger.users or self._populated:
            return
        self._populated = True
        for founder in self.scenario.population.founders:
            self._growth.create_founder(founder, self._start_s)
        self._growth.add_users(self.scenario.population.initial, self._start_s)

    # -- crash safety (see Persistence) ---------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Return the engine's own state (not the users) as JSON-ready data."""
        return self._persistence.export_state()

    def checkpoint(self) -> int:
        """Save the state and every changed user; return how many users were saved."""
        return self._persistence.checkpoint()

    def restore(
        self,
        state: dict[str, Any],
        users: Sequence[SimUser],
        progress: dict[int, Progress] | None = None,
    ) -> None:
        """Continue a crashed run: take back its users and state (before :meth:`run`).

        ``progress`` (each user's last action sent, from
        :func:`~sim_engine.engine.journal.read_journal`) keeps users from sending again
        what they sent after the checkpoint.

        Raises:
            KeyError, ValueError: ``state`` is not an exported state.
        """
        self._populated = True
        self._persistence.restore(state, users, progress)

    async def reconcile(self) -> int:
        """Bring users' memory in line with the target; return how many changed."""
        return await self._persistence.reconcile()

    # -- the run loop ---------------------------------------------------------------------

    async def run(self) -> SimulationStats:
        """Run until the duration has passed or :meth:`stop` is called.

        Returns the final statistics. Never raises for failed actions (they are
        records); exceptions from sinks or the target's programming errors
        propagate.
        """
        self.populate()
        self._growth.start(self._start_s)
        self._days.start()
        try:
            await self._loop()
        finally:
            self._stopping = True
            # Stopped (a signal, the kill switch): waits for answers at most as long as
            # one request may take; at the end of the run, for every answer.
            grace = self.scenario.target.timeout_s if self._stopped else None
            await self._executor.drain(grace)
            end = min(self._clock.now(), self._end_s)
            if end > self._days.day_start_s:
                self._ledger.emit(self._days.snapshot(end))
        if self._executor.error is not None:
            raise self._executor.error
        return self.statistics()

    def _alive(self, user_id: int) -> bool:
        return not self._stopping and user_id in self._ledger.users

    def _on_change(self) -> None:
        if self._executor.error is not None:
            self._stopping = True  # a programming error: surfaced from run()
        self._progress.set()

    def _blocked(self, sim_t: float) -> bool:
        """True when an event at ``sim_t`` must wait for in-flight actions first.

        On a jumping clock the lookahead waits only for actions answering promptly:
        one waiting on the wall clock (a timeout, a ``Retry-After``) stops holding
        the others after a threshold that follows the target's latency
        (:class:`~sim_engine.engine.stall.StallMeter`).
        """
        executor = self._executor
        self._wake_in = None
        if len(executor.inflight) >= self._concurrency:
            return True
        if not self._clock.jumps or not executor.inflight_times:
            return False
        floor, stalls_in = executor.prompt_floor()
        if floor is None or sim_t <= floor + self._lookahead_s:
            return False
        self._wake_in = stalls_in  # look again when that action counts as stalled
        return True

    async def _wait_progress(self) -> None:
        await self._wait(self._wake_in)

    async def _loop(self) -> None:
        while not self._stopping:
            if not self._resumed.is_set():
                await self._resumed.wait()
                continue
            sim_t = self._scheduler.next_time()
            if sim_t is None or sim_t >= self._end_s:
                if not self._executor.inflight:
                    break
                await self._wait_progress()
            elif self._blocked(sim_t):
                await self._wait_progress()
            elif self._clock.jumps:
                await self._clock.sleep_until(sim_t)
                if self._clock.now() >= sim_t:  # else it stopped jumping (went live): wait
                    self._handle(sim_t)
            elif self._due(sim_t):
                self._handle(sim_t)
            else:
                await self._sleep_or_progress(sim_t)
        await self._finish_time()

    def _due(self, sim_t: float) -> bool:
        """Due now, or sooner than a timer can wait (uvloop's are whole milliseconds)."""
        wait_s = self._clock.wall_seconds_until(sim_t)  # 0 once due; None while paused
        return self._clock.now() >= sim_t if wait_s is None else wait_s < _TIMER_S

    def _handle(self, sim_t: float) -> None:
        """Pop the next event and hand it to the collaborator that owns its kind."""
        _, _, kind, user = self._scheduler.pop()
        if user is not None:
            if kind == DAY:
                self._days.on_day(user, sim_t)
                return
            user.pending = False
            if user.user_id in self._ledger.users:
                step = self._sessions.on_event(kind, user, sim_t)
                if step is not None:
                    self._executor.dispatch(step)
        elif kind == ARRIVAL:
            self._growth.on_arrival(sim_t)
        elif kind == TICK:
            self._days.on_tick(sim_t)
        elif kind == REPLACE and not self._growth.full():
            self._growth.create(sim_t)

    async def _finish_time(self) -> None:
        """Bring the clock to the end of the run (or the next event) once the loop is over."""
        clock = self._clock
        if self._stopping:
            return
        if clock.jumps:
            nxt = self._scheduler.next_time()
            if nxt is not None:
                await clock.sleep_until(min(nxt, self._end_s))
            elif math.isfinite(self._end_s):
                await clock.sleep_until(self._end_s)
            return
        # A wall-clock run lasts its whole duration even when nothing more is due
        # before the end (e.g. everyone asleep); stop() still ends the wait at once.
        while not self._stopping and not clock.jumps and clock.now() < self._end_s < math.inf:
            await self._sleep_or_progress(self._end_s)
        if clock.jumps and not self._stopping and math.isfinite(self._end_s):
            await clock.sleep_until(self._end_s)  # switched to max while waiting

    async def _sleep_or_progress(self, sim_t: float) -> None:
        """Wait until the live clock reaches ``sim_t`` or something changes (one timer, no task)."""
        await self._wait(self._clock.wall_seconds_until(sim_t))

    async def _wait(self, delay: float | None) -> None:
        """Wait for progress, at most ``delay`` wall seconds (None: no limit)."""
        self._progress.clear()
        handle = None
        if delay is not None:  # uvloop rounds timers to whole milliseconds: never ask for less
            handle = asyncio.get_running_loop().call_later(max(delay, _TIMER_S), self._progress.set)
        try:
            await self._progress.wait()
        finally:
            if handle is not None:
                handle.cancel()
