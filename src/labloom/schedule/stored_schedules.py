"""Schedules in the store: when each is due, and slots claimed atomically.

A schedule fires at *slots*: cron times in its timezone, or ``anchor + k * every`` (due times;
a task's concurrency slots are another thing, in ``store/concurrency_slots.py``). A slot is
handled once, by one scheduler on any host: claiming inserts ``(schedule, slot_time)`` into
``schedule_slots`` (its primary key: a unique claim) inside one transaction that first locks
the schedule's row (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), and
also checks that no run of the schedule is still going (no overlap) and what was missed.
Every time here (slots, when a slot is due, anchors) is the store's (``store_clock``): the
hosts sharing a PostgreSQL store fire each slot at the server's time, whatever their clocks say.

    >>> parse_duration("1h30m")
    5400.0
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..core.errors import ScheduleError
from ..core.numbers import duration_of
from ..store import access, store_clock
from ..store import home as _home
from ..store.db import Conn, get_database, is_integrity_error
from ..store.storable import is_storable, storable
from ..store.unanswered_commits import brief, has_row, written_once
from .alert_outbox import forget as forget_alerts
from .liveness import Settled, settle_running
from .liveness import health as health  # re-exported: where callers look for it
from .times import CronSlots, IntervalSlots, duration_ms
from .times import check_cron as check_cron  # re-exported: where callers look for it

log = logging.getLogger("labloom")

# A slot that started later than this after its time was missed (the scheduler was down).
MAX_GRACE = 60.0
HEARTBEAT_EVERY = 1.0
CATCHUP_CHOICES = ("once", "skip")


# Slot times must stay dates a computer can write down (datetime ends in the year 9999).
MAX_EVERY = 100 * 365 * 86400.0


def parse_duration(text: str) -> float:
    """``30s``, ``5m``, ``2h``, ``1d``, ``1h30m`` (or plain seconds) as seconds."""
    seconds = duration_of(text)
    if seconds is None:
        raise ScheduleError(
            f"bad duration {text!r}: write a number with s, m, h or d, e.g. 30s, 5m, 1h30m")
    if not seconds > 0:  # also NaN, which compares false with everything
        raise ScheduleError(f"bad duration {text!r}: it must be longer than zero")
    if seconds > MAX_EVERY:
        raise ScheduleError(f"bad duration {text!r}: the longest interval is 36500d (100 years)")
    if duration_ms(seconds) < 1:
        raise ScheduleError(f"bad duration {text!r}: the shortest interval is 1ms (0.001s)")
    return seconds


# A name is one segment of the API's URLs (schedules/{name}/pause): a slash would split it and
# "." or ".." would be resolved away by the browser, so the panel's buttons could not reach it.
_NAME = re.compile(r"(?!\.{1,2}\Z)[^/\\\x00-\x1f\x7f]{1,200}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ScheduleError(
            f"bad schedule name {name!r}: 1 to 200 characters without / or \\ or control "
            "characters, and not . or ..; choose another with --name"
        )
    return name


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None
    return name


def local_timezone() -> str:
    """The local IANA timezone name where it can be found, else UTC: the TZ variable first,
    as ``date`` and cron read it (a container's zone is often set there alone)."""
    for where in (os.environ.get("TZ", "").removeprefix(":"), "/etc/localtime"):
        try:
            named = os.path.realpath(where) if where.startswith("/") else where
            if named:
                return check_timezone(named.split("zoneinfo/", 1)[-1])
        except (OSError, ScheduleError):
            pass
    return "UTC"


@dataclass
class Schedule:
    name: str
    target: str
    workdir: str
    cron: str | None
    every: float | None
    timezone: str | None
    params: dict[str, Any]
    notify: str | None
    executor: str | None
    address: str | None
    catchup: str
    overlap: bool
    paused: bool
    anchor: float
    not_before: float
    created: float
    owner: str | None = None
    cluster: str | None = None  # a cluster profile's name (``--cluster``)

    @classmethod
    def from_row(cls, row: Any) -> Schedule:
        names = {f.name for f in dataclasses.fields(cls)}
        data = {key: value for key, value in dict(row).items() if key in names}
        data["params"] = json.loads(data["params"])
        data["overlap"] = bool(data["overlap"])
        data["paused"] = bool(data["paused"])
        return cls(**data)

    @property
    def spec(self) -> str:
        if self.cron:
            return f"cron {self.cron} ({self.timezone or 'UTC'})"
        return f"every {format_duration(self.every or 0)}"

    def _slots(self) -> IntervalSlots | CronSlots:
        if self.every:
            return IntervalSlots(self.anchor, self.every)
        return CronSlots(self.cron or "", self.timezone)

    def next_after(self, when: float) -> float:
        """The first slot strictly after ``when``."""
        return self._slots().next_after(when)

    def latest_at(self, now: float) -> float | None:
        """The last slot at or before ``now`` (None before the first)."""
        return self._slots().latest_at(now)

    def period_at(self, slot: float) -> float:
        return self.every if self.every else self.next_after(slot) - slot

    def grace(self, slot: float) -> float:
        """How late a slot may start and still count as on time."""
        return min(MAX_GRACE, self.period_at(slot) / 2)


def format_duration(seconds: float) -> str:
    out, rest = [], seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            n = int(rest // size)
            out.append(f"{n}{unit}")
            rest -= n * size
    if rest or not out:
        out.append(f"{rest:g}s")
    return "".join(out)


def iso(when: float | None, tz: str | None = None) -> str:
    if when is None:
        return "-"
    zone = ZoneInfo(tz) if tz else timezone.utc
    return datetime.fromtimestamp(when, zone).isoformat(timespec="seconds")


@contextmanager
def store() -> Iterator[Conn]:
    conn = get_database().connect(named_rows=True)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: Conn) -> Iterator[Conn]:
    """One write transaction taken at once: claims never interleave."""
    with conn.transaction():
        yield conn


def add(conn: Conn, schedule: Schedule) -> None:
    check_name(schedule.name)
    # Kept exactly, not escaped as a run's logs are: its runs must find the same file again.
    bad = [k for k, v in dataclasses.asdict(schedule).items() if isinstance(v, str)
           and not is_storable(v)]
    if bad:
        raise ScheduleError(
            f"the schedule's {bad[0]} {storable(getattr(schedule, bad[0]))!r} holds bytes that "
            "are not UTF-8 (or NUL), which the store cannot keep exactly; rename it (or run "
            "`labloom schedule add` from a folder) so its name is UTF-8"
        )
    values = (
        schedule.name, schedule.target, schedule.workdir, schedule.cron, schedule.every,
        schedule.timezone, json.dumps(schedule.params), schedule.notify, schedule.executor,
        schedule.address, schedule.catchup, int(schedule.overlap), int(schedule.paused),
        schedule.anchor, schedule.not_before, schedule.created,
        schedule.owner or _home.user_name(), schedule.cluster,
    )
    try:  # its answer lost (a server crash, a network cut), asked: not "exists" when it landed
        written_once(conn, lambda conn: conn.execute(
            "INSERT INTO schedules (name, target, workdir, cron, every, timezone, params, notify,"
            " executor, address, catchup, overlap, paused, anchor, not_before, created, owner,"
            " cluster) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values),
            lambda again, xid: has_row(again, "schedules", "name", schedule.name, xid), True)
    except Exception as exc:
        if not is_integrity_error(exc):
            raise
        raise ScheduleError(
            f"a schedule named {schedule.name!r} exists; choose another with --name, or "
            f"`labloom schedule remove {schedule.name}` first"
        ) from None


def get_all(conn: Conn) -> list[Schedule]:
    rows = conn.execute("SELECT * FROM schedules ORDER BY name").fetchall()
    return [Schedule.from_row(row) for row in rows]


def get(conn: Conn, name: str) -> Schedule:
    row = conn.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = [s.name for s in get_all(conn)]
        raise ScheduleError(
            f"no schedule named {name!r}; the schedules are {', '.join(names) or 'none'}"
        )
    return Schedule.from_row(row)


def remove(conn: Conn, name: str) -> int:
    """Remove a schedule; how many of its alerts, still to send, went with its URL."""
    access.check("remove", f"schedule {name!r}", get(conn, name).owner)

    def write(conn: Conn) -> int:
        conn.execute("DELETE FROM schedules WHERE name = ?", (name,))
        conn.execute(
            "DELETE FROM schedule_slots WHERE schedule = ? AND status != 'running'", (name,)
        )
        return forget_alerts(conn, name)

    return written_once(conn, write, lambda again, _: not again.execute(  # lost answer: asked
        "SELECT 1 FROM schedules WHERE name = ?", (name,)).fetchone(), True)


def set_paused(conn: Conn, name: str, paused: bool) -> None:
    access.check("pause" if paused else "resume", f"schedule {name!r}", get(conn, name).owner)
    # Slots that passed while paused are not caught up. Its answer lost: asked (``add``).
    sql, values = ("UPDATE schedules SET paused = 1 WHERE name = ?", (name,)) if paused else (
        "UPDATE schedules SET paused = 0, not_before = ? WHERE name = ?",
        (store_clock.now(conn), name))
    written_once(conn, lambda conn: conn.execute(sql, values),
                 lambda again, xid: has_row(again, "schedules", "name", name, xid), True)


def watermark(conn: Conn, schedule: Schedule, now: float | None = None) -> float:
    """Slots at or before this are handled. A slot is claimed once due, so one recorded after
    ``now`` was claimed by a clock that ran ahead and has been set back since: it counts once
    it is due again, not before (it would silence the schedule until then)."""
    now = store_clock.now(conn) if now is None else now
    row = conn.execute(
        "SELECT MAX(slot_time) FROM schedule_slots WHERE schedule = ? AND slot_time <= ?",
        (schedule.name, now),
    ).fetchone()
    last = row[0] if row and row[0] is not None else float("-inf")
    return float(max(last, schedule.not_before))


def next_run(conn: Conn, schedule: Schedule, now: float | None = None) -> float:
    return schedule.next_after(watermark(conn, schedule, now))


@dataclass(frozen=True)
class Claim:
    schedule: Schedule
    slot: float
    catchup: bool


def claim_due(
    conn: Conn, schedule: Schedule, scheduler_id: str, now: float,
    on_settled: Callable[[Conn, list[Settled]], None] | None = None,
) -> Claim | None:
    """Claim the schedule's due slot for this scheduler, if it has one and may run it now.

    Missed slots (the scheduler was down) become one catch-up run of the latest, or with
    catchup "skip" are recorded as skipped; a slot due while a run of the schedule is still
    going is recorded as skipped unless the schedule allows overlap. Slots a gone scheduler
    left that end meanwhile (see ``liveness.settle_running``) go to ``on_settled`` inside the
    transaction that records them (their alerts kept with them).
    ``now`` is the store's time (``store_clock.now``).
    """
    with transaction(conn):
        brief(conn)  # its client gone unnoticed, it held the row lock below for two hours
        # The row lock serializes claimers of this schedule on every host (PostgreSQL).
        row = conn.execute(
            "SELECT paused FROM schedules WHERE name = ?" + conn.for_update, (schedule.name,)
        ).fetchone()
        if row is None or row[0]:
            return None
        first = schedule.next_after(watermark(conn, schedule, now))
        if first > now:
            return None
        latest = schedule.latest_at(now)
        if latest is None or latest < first:
            latest = first
        missed = latest > first or now - latest > schedule.grace(latest)
        settled: list[Settled] = []
        going = set() if schedule.overlap else settle_running(conn, now, schedule.name, settled)
        if settled and on_settled is not None:
            on_settled(conn, settled)
        if schedule.name in going:
            _record(conn, schedule.name, latest, "skipped", scheduler_id, now,
                    "the previous run was still running")
            return None
        if missed and schedule.catchup == "skip" and now - latest > schedule.grace(latest):
            _record(conn, schedule.name, latest, "skipped", scheduler_id, now,
                    "missed while no scheduler was running")
            return None
        note = "catch-up run for missed slots" if missed else None
        _record(conn, schedule.name, latest, "running", scheduler_id, now, note)
        return Claim(schedule, latest, missed)


def unlaunched(conn: Conn, scheduler_id: str, launched: set[tuple[str, float]]) -> list[Claim]:
    """The slots ``scheduler_id`` claimed (running) that are not among ``launched``: claims
    whose COMMIT landed though its answer never came (a PostgreSQL server that crashed or a
    network cut right after it), which the scheduler took for failed. Left so, the slot stayed
    running, its scheduler alive, and every later slot of a schedule without overlap was
    skipped as 'the previous run was still running'."""
    claims = []
    for row in conn.execute(
            "SELECT schedule, slot_time, note FROM schedule_slots WHERE scheduler = ? AND "
            "status = 'running'", (scheduler_id,)).fetchall():
        if (row[0], float(row[1])) not in launched:
            try:
                claims.append(Claim(get(conn, row[0]), float(row[1]), row[2] is not None))
            except ScheduleError:  # removed meanwhile: nothing left to run
                continue
    return claims


def point_slot_at_run(run_id: str) -> None:
    """In a run `labloom serve` started: its slot names the run from the start, so a server
    that replaces a killed one can follow the run instead of calling the slot lost."""
    name = os.environ.get("LABLOOM_SCHEDULE")
    slot = os.environ.get("LABLOOM_SCHEDULED_TIME")
    if not name or not slot:
        return
    try:
        with store() as conn:
            conn.execute(
                "UPDATE schedule_slots SET run_id = ? WHERE schedule = ? AND slot_time = ?",
                (run_id, name, float(slot)),
            )
    except Exception as exc:  # the store's own error, whichever its backend: the run goes on
        log.warning("[labloom] could not name run %s in its schedule slot: %s", run_id, exc)


def _record(
    conn: Conn, name: str, slot: float, status: str, scheduler_id: str,
    now: float, note: str | None,
) -> None:
    conn.execute(
        "INSERT INTO schedule_slots (schedule, slot_time, status, scheduler, claimed, note)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (name, slot, status, scheduler_id, now, note),
    )


def finish_slot(
    conn: Conn, name: str, slot: float, status: str, **fields: Any
) -> bool:
    """Update a claimed slot still running; fields given as None keep their value (a catch-up
    note stays). False when another scheduler settled it meanwhile (this one was frozen past
    its heartbeat): that one has recorded it, and alerted."""
    allowed = {"started", "ended", "run_id", "exit_code", "note"}
    given = {key: value for key, value in fields.items() if key in allowed and value is not None}
    sets = ["status = ?"] + [f"{key} = ?" for key in given]
    values = [status, *given.values()]
    return bool(conn.execute(
        f"UPDATE schedule_slots SET {', '.join(sets)} WHERE schedule = ? AND slot_time = ?"
        " AND status = 'running'", (*values, name, slot),
    ).rowcount)


def slots(conn: Conn, name: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM schedule_slots"
    args: tuple[Any, ...] = ()
    if name is not None:
        query += " WHERE schedule = ?"
        args = (name,)
    return [dict(row) for row in conn.execute(query + " ORDER BY slot_time", args)]
