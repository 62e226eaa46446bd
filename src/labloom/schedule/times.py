"""When a schedule's slots fall, exactly.

Slot times are compared, stored and claimed as keys, so "the next slot after a slot" must never
be that slot again. Floats rounded here and there broke that (an anchor with a fraction under
half a millisecond made ``next`` equal ``last``), so the arithmetic is done once, exactly:

- intervals in whole milliseconds: a slot is ``anchor + k * every`` with integers, and a slot
  time read back from the store is on its millisecond;
- cron in wall-clock time of the schedule's timezone, on whole seconds. Around a DST change
  each wall-clock time fires once: a time the spring change skips fires when the clocks jump
  (2:30 becomes 3:30), a time the autumn change repeats fires the first time only.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ..core.errors import ScheduleError


def to_ms(seconds: float) -> int:
    """A time as whole milliseconds, rounded down; within 10 microseconds below a millisecond
    counts as on it (a slot read back as a float is a rounding error away from its own)."""
    return math.floor(seconds * 1000 + 0.01)


def duration_ms(seconds: float) -> int:
    return round(seconds * 1000)


class IntervalSlots:
    """``anchor + k * every`` for k >= 1."""

    def __init__(self, anchor: float, every: float) -> None:
        self.anchor = to_ms(anchor)
        self.every = duration_ms(every)
        if self.every < 1:
            raise ValueError(f"an interval of {every!r}s is shorter than a millisecond")

    def next_after(self, when: float) -> float:
        k = max((to_ms(when) - self.anchor) // self.every + 1, 1)
        return (self.anchor + k * self.every) / 1000

    def latest_at(self, now: float) -> float | None:
        k = (to_ms(now) - self.anchor) // self.every
        return (self.anchor + k * self.every) / 1000 if k >= 1 else None


def check_cron(expr: str) -> str:
    from croniter import CroniterError, croniter

    fields = expr.split()
    if len(fields) == 6 and not expr.strip().startswith("@"):
        # croniter reads a sixth field as seconds at the end; Quartz and Spring put seconds
        # first. Either way "0 0 2 * * *" would not mean what its writer meant.
        raise ScheduleError(
            f"bad cron expression {expr!r}: five fields, minute hour day month weekday, no "
            "seconds field; e.g. '0 2 * * *' for 2 a.m. every day (for runs seconds apart, "
            "--every 10s)"
        )
    if not croniter.is_valid(expr):
        raise ScheduleError(
            f"bad cron expression {expr!r}: five fields, minute hour day month weekday, "
            "e.g. '0 2 * * *' for 2 a.m. every day"
        )
    try:  # valid fields can still name no date at all: 30 February, 31 April
        croniter(expr, datetime.now(timezone.utc)).get_next(datetime)
    except CroniterError:
        raise ScheduleError(
            f"cron expression {expr!r} never fires: no date matches its day and month fields; "
            "check them (e.g. '0 0 28 2 *' for 28 February)"
        ) from None
    return expr


class CronSlots:
    """The instants whose wall-clock time in ``timezone`` matches the cron expression."""

    def __init__(self, expr: str, timezone: str | None) -> None:
        self.expr = expr
        self.zone = ZoneInfo(timezone or "UTC")

    def _wall(self, when: float) -> datetime:
        return datetime.fromtimestamp(when, self.zone).replace(tzinfo=None, fold=0)

    def _instant(self, wall: datetime) -> float:
        # fold=0: a repeated wall time is its first occurrence, a skipped one maps past the jump.
        return wall.replace(tzinfo=self.zone, fold=0).timestamp()

    def next_after(self, when: float) -> float:
        from croniter import croniter

        walls = croniter(self.expr, self._wall(when))
        while True:
            # Past wall times of an autumn hour's second pass come out before ``when``.
            slot = self._instant(walls.get_next(datetime))
            if slot > when:
                return slot

    def latest_at(self, now: float) -> float:
        from croniter import croniter

        # A slot at ``now`` itself counts: start just after it and walk back.
        walls = croniter(self.expr, self._wall(now) + timedelta(microseconds=1))
        slot = self._instant(walls.get_prev(datetime))
        while slot > now:
            slot = self._instant(walls.get_prev(datetime))
        # After an autumn change, later wall times may still lie before ``now``.
        while (following := self.next_after(slot)) <= now:
            slot = following
        return slot
