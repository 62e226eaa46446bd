"""The schedules a `labloom serve` will not run, and why, kept in the store while it serves
(``schedule_refusals``, schema 22): `labloom schedule list` and ``GET schedules`` say so. Before,
only serve's own log did, once, and the list showed the schedule as if it would run.

Two refusals: a schedule alerted by mail while serve's relay settings are bad (``mailable``),
and one whose times serve's host cannot compute (``computable``: a time zone or cron syntax its
libraries lack, added from another host sharing the store; the listing's ``problem`` judges
that from the reading host, which may differ). A serve owns its rows: it writes one when it
first refuses a schedule, drops it when it runs the schedule again (its alerts no longer go by
mail, its times can be computed), the schedule is paused (judged again once resumed) or gone,
and drops all of them at its clean stop (``liveness.sign_off``, with those of the schedulers
found dead then). The listings show no refusal of a paused schedule, whoever keeps its row. A
killed serve's rows stay until then, shown only while its heartbeat is (``live``: the rule its
slots follow, ``liveness.STALE_AFTER``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..store import home as _home
from ..store import store_clock
from ..store.db import Conn
from . import liveness, mail_alerts

log = logging.getLogger("labloom")


class Refusals:
    """One scheduler's refusals: each said once in its log, and kept in the store."""

    def __init__(self, scheduler_id: str) -> None:
        self.id = scheduler_id
        # Read once (``mail_alerts.relay``): the settings serve's alerts go by; its schedules
        # change while it serves.
        self.relay = mail_alerts.relay_refusal()
        self._refused: dict[str, str] = {}  # schedule: why
        self._uncomputable: set[str] = set()  # those of ``_refused`` refused by ``computable``

    def mailable(self, conn: Conn, schedule: Any) -> bool:
        """Whether this scheduler can mail the schedule's failure alerts. One added while it
        serves, by mail with a bad LABLOOM_SMTP_PORT, _TLS or _FROM here (its start refused
        only for those there were), is not run: said once, naming the fix, and kept for the
        listings; the other schedules go on. Before, it ran, and each of its alerts failed when a run
        failed, at night."""
        name = schedule.name
        if (self.relay is None or not schedule.notify
                or not mail_alerts.is_mail(schedule.notify)):
            if name in self._refused:  # its alerts go elsewhere now: it runs
                self._drop(conn, [name])
            return True
        if name not in self._refused:
            reason = (f"its failure alerts go by mail, and {self.relay} in `labloom serve`'s "
                      "environment: fix it there and start serve again")
            self._keep(conn, name, reason)  # before it is said: a store away, next tick
            self._refused[name] = reason
            log.error("[labloom] schedule %r is not run by this scheduler: %s; the other "
                      "schedules go on", name, reason)
        return False

    def computable(self, conn: Conn, schedule: Any, now: float) -> bool:
        """Whether this host can tell when the schedule is due. In a store several hosts share,
        one may have added it with a time zone (or cron syntax) this host's libraries lack: said
        once, kept for the listings, and the other schedules go on."""
        name = schedule.name
        try:
            schedule.next_after(now)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            reason = (f"its times cannot be computed on serve's host ({why}): `labloom schedule "
                      f"remove {name}`, then add it again with a time zone and cron expression "
                      "that host knows")
            if self._refused.get(name) != reason:
                self._drop(conn, [name])  # another reason before (the schedule was re-added)
                self._keep(conn, name, reason)
                self._refused[name] = reason
                self._uncomputable.add(name)
                log.error("[labloom] schedule %r cannot run from this host (%s); the other "
                          "schedules go on. `labloom schedule remove %s`, then add it again "
                          "with a timezone and cron expression this host knows",
                          name, why, name)
            return False
        if name in self._uncomputable:  # computable again: judged anew (by mail or not)
            self._drop(conn, [name])
        return True

    def paused(self, conn: Conn, name: str) -> None:
        """A paused schedule is not refused: this scheduler would not run it anyway, whatever
        its settings. Resumed, it is judged again (``computable``, ``mailable``). Before, one
        refused and then paused kept its row, and the list said a paused schedule was refused."""
        if name in self._refused:
            self._drop(conn, [name])

    def kept(self, conn: Conn) -> None:
        """Its rows back, when a scheduler that stopped cleanly took them with this one's row
        (its heartbeat looked stale then: a store away for a while); this one beat it back."""
        if self._refused and conn.execute(
            "SELECT COUNT(*) FROM schedule_refusals WHERE scheduler = ?", (self.id,)
        ).fetchone()[0] < len(self._refused):
            for name, reason in self._refused.items():
                self._keep(conn, name, reason)

    def forget_gone(self, conn: Conn, names: Iterable[str]) -> None:
        """Drop the refusals of schedules removed since (one added again is judged anew)."""
        gone = set(self._refused).difference(names)
        if gone:
            self._drop(conn, sorted(gone))

    def _drop(self, conn: Conn, names: list[str]) -> None:
        for name in names:
            conn.execute("DELETE FROM schedule_refusals WHERE scheduler = ? AND schedule = ?",
                         (self.id, name))
            self._refused.pop(name, None)
            self._uncomputable.discard(name)

    def _keep(self, conn: Conn, name: str, reason: str) -> None:
        conn.execute(
            "INSERT INTO schedule_refusals (scheduler, schedule, reason, since) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (scheduler, schedule) DO NOTHING",
            (self.id, name, reason, store_clock.now(conn)))


def live(conn: Conn, now: float) -> dict[str, list[dict[str, Any]]]:
    """The refusals of live schedulers by schedule, oldest first (``now``: the store's time).
    A scheduler gone (its pid dead on this host, its heartbeat stale) refuses nothing."""
    found: dict[str, list[dict[str, Any]]] = {}
    for schedule, scheduler, reason, since, host, pid, beat in conn.execute(
        "SELECT r.schedule, r.scheduler, r.reason, r.since, h.host, h.pid, h.beat "
        "FROM schedule_refusals r JOIN schedulers h ON h.id = r.scheduler "
        "ORDER BY r.since, r.scheduler"
    ).fetchall():
        if _home.owner_alive(host, pid, beat, now, liveness.STALE_AFTER):
            found.setdefault(schedule, []).append(
                {"scheduler": scheduler, "host": host, "pid": pid, "reason": reason,
                 "since": since})
    return found
