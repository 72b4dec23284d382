"""Corrections of fitted figures after a simulation round (simulated method of moments).

Each figure moves towards the value that makes the simulated log's fact equal the real
log's: hourly intensities by the ratio of hourly rates (a damped fixed-point step),
the retention figures from D1 and the decay from D1 to D30, and the scalar spreads
(activity, posting, follow-ups) by a bounded secant step on one fact each.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sim_engine.realism.estimators import RealismFacts
from sim_engine.realism.fitting import hourly_intensity

__all__ = ["Secant", "update_intensity", "update_retention"]

F64 = npt.NDArray[np.float64]
_DAMP = 0.8
_MIN_INTENSITY = 1e-4
_MAX_HAZARD_STEP = 0.1


class Secant:
    """Solve ``fact(x) = target`` for one increasing fact, one simulation per step.

    Args:
        x: the first value; ``slope``: the fact's change per unit of ``x`` assumed until
            two points give a secant; ``low``, ``high``: bounds of ``x``.

    Steps are at most an eighth of the bounds' range; a secant with the wrong sign or
    nearly flat falls back to ``slope``.
    """

    def __init__(self, x: float, slope: float, low: float, high: float) -> None:
        self.x, self.slope, self.low, self.high = x, slope, low, high
        self._last: tuple[float, float] | None = None

    def step(self, target: float | None, got: float | None) -> float:
        """The next ``x`` after the fact came out ``got`` at the current ``x``."""
        if target is None or got is None:
            return self.x
        slope = self.slope
        if self._last is not None and abs(self.x - self._last[0]) > 1e-6:
            secant = (got - self._last[1]) / (self.x - self._last[0])
            if secant > 0.1 * self.slope:
                slope = secant
        self._last = (self.x, got)
        limit = 0.125 * (self.high - self.low)
        move = float(np.clip((target - got) / slope, -limit, limit))
        self.x = float(np.clip(self.x + move, self.low, self.high))
        return self.x


def update_intensity(
    real_local: F64, sim_local: F64, weekday: tuple[float, ...], weekend: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Multiply each hour's intensity by (real rate / simulated rate) ** 0.8, max 1.

    Rates are :func:`~sim_engine.realism.fitting.hourly_intensity` of both logs' local
    instants (events per local hour of each kind of day, relative to the busiest).
    Hours without real events stay asleep (0); an hour the simulation left empty
    keeps its intensity.
    """
    want = np.concatenate(hourly_intensity(real_local))
    got = np.concatenate(hourly_intensity(sim_local))
    now = np.asarray(weekday + weekend, dtype=np.float64)
    ratio = np.divide(want, got, out=np.ones_like(want), where=got > 0)
    new = np.where(want > 0, np.maximum(now * ratio**_DAMP, _MIN_INTENSITY), 0.0)
    new /= max(float(new.max()), 1e-300)
    return tuple(new[:24].tolist()), tuple(new[24:].tolist())


def _last_common_day(real: RealismFacts, sim: RealismFacts, upto: int = 30) -> int | None:
    a = {d: s for d, s, _ in real.retention if d <= upto}
    b = {d: s for d, s, _ in sim.retention if d <= upto}
    common = sorted(set(a) & set(b) - {1})
    return common[-1] if common else None


def update_retention(
    real: RealismFacts, sim: RealismFacts, return_p: float, hazard: float, decay: float
) -> tuple[float, float]:
    """Correct (return probability, churn hazard on day 1) from the retention curves.

    Damped steps (power 0.8; D1's ratio within 0.5-2, the hazard's move within
    ±0.1) keep noisy rounds from overshooting. The return probability scales with D1;
    the hazard moves by the log of the
    simulated over the real decay from D1 to D30 (or the last day ≤ 30 both curves
    have) divided by ``Σ a^-decay`` over the days in between, the sensitivity of
    ``log S(N)`` to the hazard's first-day figure.
    """
    if real.d1 is None or sim.d1 is None:
        return return_p, hazard
    ratio = float(np.clip(max(real.d1, 1e-4) / max(sim.d1, 1e-4), 0.5, 2.0))
    new_p = float(np.clip(return_p * ratio**0.8, 0.005, 1.0))
    n = _last_common_day(real, sim)
    if n is None:
        return new_p, hazard
    share_r = dict((d, s) for d, s, _ in real.retention)[n]
    share_s = dict((d, s) for d, s, _ in sim.retention)[n]
    ratio_r = max(share_r, 1e-4) / max(real.d1, 1e-4)
    ratio_s = max(share_s, 1e-4) / max(sim.d1, 1e-4)
    weight = float(np.sum(np.arange(2, n + 1, dtype=np.float64) ** -decay))
    step = float(
        np.clip(0.8 * np.log(ratio_s / ratio_r) / weight, -_MAX_HAZARD_STEP, _MAX_HAZARD_STEP)
    )
    new_h = float(np.clip(hazard + step, 0.0, 0.99))
    return new_p, new_h
