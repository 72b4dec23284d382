"""The personas of a scenario as flat numpy tables: routine intensity, states, action weights.

Built from :class:`~sim_engine.model.behaviour.CompiledPersona` (the event
engine's own compiled week tables and action weights), so the planner and the
engine share one model. Positions are *unwrapped week times* (see
:func:`~sim_engine.model.plan.calendar.week_position`); the cumulative
intensity ``G(x)`` of a persona is piecewise linear in them, and a session start
is drawn exactly by inverting it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sim_engine.model.behaviour import MINUTES_PER_WEEK, CompiledPersona

__all__ = ["ROUTINE_CODES", "ActionTable", "WeekTables"]

WEEK_S = MINUTES_PER_WEEK * 60.0
ROUTINE_CODES: tuple[str, ...] = ("sleeping", "working", "relaxing")
"""Routine states by code (the ``routine_state`` column's dictionary)."""

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class WeekTables:
    """Every persona's week table, concatenated, with its cumulative intensity.

    Args:
        personas: the compiled personas, by index.

    Attributes:
        mass: ``(personas,)`` session starts a persona expects in a week.
        shift_h: ``(personas,)`` each persona's hour shift.
    """

    def __init__(self, personas: Sequence[CompiledPersona]) -> None:
        starts, rates, states, cums, first = [], [], [], [], [0]
        mass = []
        for i, p in enumerate(personas):
            s = np.asarray(p.week.starts_s, dtype=np.float64)
            r = np.asarray(p.week.rates, dtype=np.float64)
            spans = np.diff(np.append(s, WEEK_S))
            c = np.concatenate(([0.0], np.cumsum(r * spans)))
            starts.append(s + i * WEEK_S)
            rates.append(r)
            states.append([ROUTINE_CODES.index(x) for x in p.week.states])
            cums.append(c[:-1])
            mass.append(c[-1])
            first.append(first[-1] + len(s))
        self.mass: F64 = np.asarray(mass)
        self.shift_h: F64 = np.asarray([p.spec.hour_shift_h for p in personas])
        self._big = float(self.mass.max()) * 2.0 + 1.0
        self._starts = np.concatenate(starts)
        self._rates = np.concatenate(rates)
        self._states = np.concatenate(states).astype(np.int8)
        # Segments start on whole minutes: the state of every minute of every week, by persona.
        minutes = np.arange(MINUTES_PER_WEEK) * 60.0
        self._minute_states = np.concatenate(
            [
                np.asarray(st, np.int8)[np.searchsorted(s - i * WEEK_S, minutes, "right") - 1]
                for i, (s, st) in enumerate(zip(starts, states, strict=True))
            ]
        )
        self._cum = np.concatenate(cums)
        self._first = np.asarray(first[:-1], dtype=np.int64)
        # Search keys of the inverse: cumulative values offset by persona.
        self._cum_keys = self._cum + np.repeat(np.arange(len(personas)) * self._big, np.diff(first))

    def _segment(self, persona: I64, x: F64) -> tuple[F64, I64]:
        weeks = np.floor(x / WEEK_S)
        within = x - weeks * WEEK_S
        seg = np.searchsorted(self._starts, persona * WEEK_S + within, "right") - 1
        return weeks, seg

    def cumulative(self, persona: I64, x: F64) -> F64:
        """Return ``G(x)``: expected session starts from the epoch week to week time ``x``."""
        weeks, seg = self._segment(persona, x)
        within = x - weeks * WEEK_S
        local = self._starts[seg] - persona * WEEK_S
        out: F64 = weeks * self.mass[persona] + self._cum[seg] + self._rates[seg] * (within - local)
        return out

    def inverse(self, persona: I64, y: F64) -> F64:
        """Return the week time ``x`` with ``G(x) = y`` (the first, skipping zero-rate spans).

        Every ``persona`` must have a positive weekly mass.
        """
        m = self.mass[persona]
        weeks = np.floor(y / m)
        rest = y - weeks * m
        seg = np.searchsorted(self._cum_keys, persona * self._big + rest, "right") - 1
        local = self._starts[seg] - persona * WEEK_S
        rate = self._rates[seg]
        step = np.divide(rest - self._cum[seg], rate, out=np.zeros_like(rest), where=rate > 0)
        out: F64 = weeks * WEEK_S + local + step
        return out

    def state(self, persona: I64, x: F64) -> npt.NDArray[np.int8]:
        """Return the routine state code (see :data:`ROUTINE_CODES`) at week time ``x``."""
        within = x - np.floor(x / WEEK_S) * WEEK_S
        minute = np.minimum((within // 60.0).astype(np.int64), MINUTES_PER_WEEK - 1)
        out: npt.NDArray[np.int8] = self._minute_states[persona * MINUTES_PER_WEEK + minute]
        return out


class ActionTable:
    """Every persona's action weights per routine state, for drawing actions in bulk.

    Args:
        personas: the compiled personas, by index.
        names: the event vocabulary (every action a persona can draw must be in it).

    The draw is :meth:`CompiledPersona.choose_action`'s: an action's probability is
    its weight (times ``post_frequency`` / ``update_frequency``, and the user's posting
    multiplier for write actions) over the state's total. Each table lists reads
    first, then writes, and keeps its write share, so a posting multiplier is applied
    by stretching the uniform draw instead of building a table per user.
    """

    def __init__(self, personas: Sequence[CompiledPersona], names: Sequence[str]) -> None:
        index = {n: i for i, n in enumerate(names)}
        bounds: list[float] = []
        codes: list[int] = []
        bfirst: list[int] = []
        cfirst: list[int] = []
        writes: list[float] = []
        for p in personas:
            for state in ROUTINE_CODES:
                probs = p.action_probabilities(state) if state in p.spec.actions else {}
                bfirst.append(len(bounds))
                cfirst.append(len(codes))
                probs = dict(sorted(probs.items(), key=lambda kv: kv[0] in p.writes))
                writes.append(sum(v for k, v in probs.items() if k in p.writes))
                if not probs:
                    codes.append(-1)
                    continue
                table = len(bfirst) - 1
                cum = np.cumsum(list(probs.values()))[:-1]
                bounds.extend((table + cum).tolist())
                codes.extend(index[n] for n in probs)
        self._bounds = np.asarray(bounds, dtype=np.float64)
        self._codes = np.asarray(codes, dtype=np.int16)
        self._bfirst = np.asarray(bfirst, dtype=np.int64)
        self._cfirst = np.asarray(cfirst, dtype=np.int64)
        self._writes = np.asarray(writes, dtype=np.float64)

    def draw(
        self,
        persona: I64,
        state: npt.NDArray[np.integer],
        u: F64,
        posting: F64 | None = None,
    ) -> npt.NDArray[np.int16]:
        """Return action codes for uniforms ``u`` in each ``persona`` and routine ``state``.

        ``posting``: each draw's user's posting multiplier on write weights (default 1).
        A state without weights (``sleeping``) gives ``-1``.
        """
        table = persona * len(ROUTINE_CODES) + state.astype(np.int64)
        if posting is not None:
            u = _stretch(u, self._writes[table], posting)
        pos = np.searchsorted(self._bounds, table + u, "right") - self._bfirst[table]
        return self._codes[self._cfirst[table] + pos]


def _stretch(u: F64, w: F64, m: F64) -> F64:
    """Map uniforms for a table with write share ``w`` (reads first) to one whose writes
    weigh ``m`` times more: reads keep ``[0, 1 - w)``, now hit with chance ``r``."""
    reads = 1.0 - w
    r = reads / np.maximum(reads + m * w, 1e-300)
    low = np.divide(u * reads, r, out=np.zeros_like(u), where=r > 0)
    high = reads + np.divide((u - r) * w, 1.0 - r, out=np.zeros_like(u), where=r < 1)
    out: F64 = np.where(u < r, low, high)
    return np.minimum(out, np.nextafter(1.0, 0.0))
