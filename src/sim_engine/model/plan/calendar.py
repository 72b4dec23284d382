"""Local calendars of the planner: each time zone's midnights and UTC offsets, DST-correct.

A dataset covers ``days`` local dates from ``start``: user-day ``d`` of a user in
zone ``z`` runs from ``midnight[z, d]`` to ``midnight[z, d + 1]`` (simulated epoch
seconds), the user's own local midnights, so a day is 23 or 25 hours long across
a daylight-saving change. Offsets of arbitrary instants come from each zone's
offset over the span, found with :mod:`zoneinfo` every quarter hour (no zone changes
its offset more often) and looked up by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

__all__ = ["ZoneCalendar"]

_STEP_S = 900
_EPOCH_MONDAY_S = 3 * 86400.0  # 1970-01-01 was a Thursday (as in model.behaviour)


def _offset(zone: ZoneInfo, t: float) -> int:
    delta = datetime.fromtimestamp(t, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


@dataclass(frozen=True)
class ZoneCalendar:
    """Midnights and offset changes of a few zones over a span of local dates.

    Attributes:
        zones: zone names, by zone index.
        start: the first local date.
        days: how many local dates.
        midnights: float64 ``(zones, days + 1)``: epoch seconds of each local midnight.
        table_start: epoch seconds of the offset table's first quarter hour.
        table: int32 ``(zones, quarter hours)``: each zone's UTC offset (s) from each
            quarter hour of the span on (every zone changes offset on a quarter hour).
    """

    zones: tuple[str, ...]
    start: date
    days: int
    midnights: npt.NDArray[np.float64]
    table_start: float
    table: npt.NDArray[np.int32]

    @classmethod
    def build(cls, zones: Sequence[str], start: date, days: int) -> ZoneCalendar:
        """Compute the calendar of ``zones`` (IANA names) for ``days`` dates from ``start``.

        Raises:
            zoneinfo.ZoneInfoNotFoundError: an unknown zone.
        """
        infos = [ZoneInfo(z) for z in zones]
        mid = np.empty((len(infos), days + 1), dtype=np.float64)
        for d in range(days + 1):
            day = start + timedelta(days=d)
            for z, info in enumerate(infos):
                mid[z, d] = datetime(day.year, day.month, day.day, tzinfo=info).timestamp()
        lo = (int(mid.min()) - 2 * 86400) // _STEP_S * _STEP_S
        hi = int(mid.max()) + 3 * 86400
        steps = range(lo, hi, _STEP_S)
        table = np.asarray([[_offset(info, t) for t in steps] for info in infos], dtype=np.int32)
        return cls(tuple(zones), start, days, mid, float(lo), table)

    def offsets(
        self, zone: npt.NDArray[np.integer], t: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int32]:
        """Return the UTC offset (s) in force at each ``t`` (epoch s) in each ``zone`` (index)."""
        width = self.table.shape[1]
        step = np.floor((t - self.table_start) / _STEP_S).astype(np.int64)
        np.clip(step, 0, width - 1, out=step)
        out: npt.NDArray[np.int32] = self.table.ravel()[zone.astype(np.int64) * width + step]
        return out

    def weekday(self, d: int) -> int:
        """Weekday of local date ``d`` (0 = Monday)."""
        return (self.start + timedelta(days=d)).weekday()

    def date(self, d: int) -> date:
        """Local date ``d``."""
        return self.start + timedelta(days=d)


def week_position(
    t: npt.NDArray[np.float64], offset: npt.ArrayLike, shift_h: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Return unwrapped shifted local week time: seconds since a local Monday 00:00 of the epoch.

    ``t`` in epoch seconds, ``offset`` the UTC offset (s), ``shift_h`` the persona's
    hour shift (as :meth:`CompiledPersona.state_at` uses them); modulo a week this is
    the position in the persona's week table.
    """
    out: npt.NDArray[np.float64] = t + np.asarray(offset) - np.asarray(shift_h) * 3600.0
    return out + _EPOCH_MONDAY_S
