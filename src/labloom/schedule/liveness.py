"""Who is still alive: schedulers, and the runs of the slots they claimed.

A scheduler beats a heartbeat into the store; on its own host its pid tells at once whether it
still lives, elsewhere only the heartbeat's age does. A slot left running by a scheduler that
is gone follows its run (the run's process writes the slot's run id when it starts).

Heartbeats (the schedulers' here, the runs' by the store's writer) are stamped by the store's
clock (``store_clock``: the PostgreSQL server's), and each ``now`` given here is the store's
time too (``store_clock.now``), as are the slots' times: a host whose clock ran a minute ahead
saw every other host's scheduler gone and settled their live runs' slots.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from ..store import home as _home
from ..store import store_clock
from ..store.db import Conn

# A scheduler whose heartbeat is this old is gone (on its own host, its dead pid says so
# at once); its slots then follow their runs.
STALE_AFTER = 30.0
# A slot claimed this recently may have no run yet: its process is starting.
START_GRACE = 10.0


def beat(conn: Conn, scheduler_id: str, started: float) -> None:
    """One heartbeat. On PostgreSQL the server stamps it and says when: the same round trip
    measures this host's offset to it again (``store_clock.remember``), so a scheduler's clock,
    which decides when its slots are due, is never older than its last beat."""
    upsert = ("INSERT INTO schedulers (id, host, pid, started, beat) VALUES (?, ?, ?, ?, {})"
              " ON CONFLICT(id) DO UPDATE SET beat = excluded.beat")
    values = (scheduler_id, _home.host_name(), os.getpid(), started)
    if conn.kind == "sqlite":  # this machine's clock; and RETURNING needs SQLite 3.35
        conn.execute(upsert.format("?"), (*values, time.time()))
        return
    before = time.time()
    (server,) = conn.execute(upsert.format(store_clock.SERVER_TIME) + " RETURNING beat",
                             values).fetchone()
    store_clock.remember(conn, before, time.time(), float(server))


def sign_off(conn: Conn, scheduler_id: str) -> None:
    """A clean stop. The rows of schedulers that died before it go too: the latest word on
    the scheduler is this clean stop, not an older unclean one. (A live one beats its row back;
    the slots a dead one left follow their runs without it.) Their refusals go with them
    (``refusals``; a live one writes its own back with its next beat)."""
    now = store_clock.now(conn)
    with conn.transaction():
        conn.execute("DELETE FROM schedulers WHERE id = ?", (scheduler_id,))
        for other, host, pid, last in conn.execute(
            "SELECT id, host, pid, beat FROM schedulers"
        ).fetchall():
            if not _home.owner_alive(host, pid, last, now, STALE_AFTER):
                conn.execute("DELETE FROM schedulers WHERE id = ?", (other,))
        conn.execute("DELETE FROM schedule_refusals WHERE scheduler NOT IN "
                     "(SELECT id FROM schedulers)")


@dataclass(frozen=True)
class Settled:
    """A slot a gone scheduler left, now ended: its alert is the settling scheduler's to send."""

    schedule: str
    slot_time: float
    run_id: str | None
    status: str
    note: str


def settle_running(
    conn: Conn, now: float, name: str | None = None, settled: list[Settled] | None = None
) -> set[str]:
    """The schedules with a run still going. A running slot whose scheduler is gone (its pid
    is dead on this host, or its heartbeat stale) takes its run's outcome: a run that
    completed makes the slot completed, one still going keeps it running; only a slot with no
    run to show is lost. The slots ended here are added to ``settled``: the update below
    happens once, in one transaction, so whoever collects a slot there alerts for it alone.
    ``now`` is the store's time (``store_clock.now``). Call inside a write transaction."""
    from ..store.settings import heartbeat_timeout

    run_stale_after = heartbeat_timeout()

    query = (
        "SELECT s.schedule, s.slot_time, s.run_id, s.claimed, h.host, h.pid, h.beat,"
        " r.state, r.host, r.pid, r.heartbeat FROM schedule_slots s"
        " LEFT JOIN schedulers h ON h.id = s.scheduler LEFT JOIN flow_runs r ON r.id = s.run_id"
        " WHERE s.status = 'running'"
    )
    args: tuple[Any, ...] = ()
    if name is not None:
        query += " AND s.schedule = ?"
        args = (name,)
    going: set[str] = set()
    for (schedule, slot_time, run_id, claimed, host, pid, beat,
         run_state, run_host, run_pid, run_beat) in conn.execute(query, args).fetchall():
        if _home.owner_alive(host, pid, beat, now, STALE_AFTER):
            going.add(schedule)
            continue
        if run_state in ("Pending", "Running"):
            if _home.owner_alive(run_host, run_pid, run_beat, now, run_stale_after):
                going.add(schedule)
                continue
            status, note = "crashed", "its scheduler and its run's process stopped"
        elif run_state is not None:
            status = run_state.lower()
            note = f"its scheduler stopped; the run ended {run_state}"
        elif now - (claimed or 0) < START_GRACE:
            going.add(schedule)  # the run's process may still be starting
            continue
        else:
            status = "lost"
            note = ("its scheduler stopped before the run started" if run_id is None
                    else "its scheduler stopped and the run left no record")
        conn.execute(
            "UPDATE schedule_slots SET status = ?, note = ?, ended = COALESCE(ended, ?)"
            " WHERE schedule = ? AND slot_time = ?",
            (status, note, now, schedule, slot_time),
        )
        if settled is not None:
            settled.append(Settled(schedule, slot_time, run_id, status, note))
    return going


def run_outcome(conn: Conn, run_id: str | None) -> tuple[str | None, str | None,
                                                        list[tuple[str, str]]]:
    """A stored run's flow name, its final state (None while the store has it open) and its
    task runs that did not complete (of its graph: not a map's child that left it), as (name,
    state): states only, never messages (data)."""
    if run_id is None:
        return None, None, []
    row = conn.execute("SELECT flow_name, state FROM flow_runs WHERE id = ?",
                       (run_id,)).fetchone()
    if row is None:
        return None, None, []
    failed = [
        (name if index is None else f"{name}[{index}]", state)
        for name, index, state in conn.execute(
            "SELECT task_name, map_index, state FROM task_runs WHERE run_id = ? AND state IN "
            "('Failed', 'UpstreamFailed', 'Cancelled', 'Crashed') AND left_map IS NULL "
            "ORDER BY created", (run_id,))  # (not a child that left its map: history)
    ]
    final = None if row[1] in ("Pending", "Running") else row[1]
    return row[0], final, failed


def health(conn: Conn, now: float | None = None) -> dict[str, Any]:
    """The schedulers' heartbeats: who runs, and how fresh their last beat is (``now``: the
    store's time, by default its time now)."""
    now = store_clock.now(conn) if now is None else now
    rows = conn.execute("SELECT * FROM schedulers ORDER BY beat DESC").fetchall()
    daemons = [
        {
            "id": row["id"], "host": row["host"], "pid": row["pid"],
            "started": row["started"], "heartbeat_age": round(now - row["beat"], 1),
            "alive": _home.owner_alive(row["host"], row["pid"], row["beat"], now, STALE_AFTER),
        }
        for row in rows
    ]
    return {"running": any(d["alive"] for d in daemons), "schedulers": daemons}
