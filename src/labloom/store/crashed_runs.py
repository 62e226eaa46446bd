"""Marking runs whose process died: a run still Pending or Running whose process is gone (same
host: its pid is dead; any host: no heartbeat for ``LABLOOM_HEARTBEAT_TIMEOUT`` seconds, see
``home.why_gone``) becomes Crashed, and its unfinished task runs Cancelled. Every read of the
store does this first (``RunStore.reconcile``); nothing already written is changed."""

from __future__ import annotations

from . import store_clock
from .db import Conn, is_transient
from .home import why_gone

_OPEN_STATES = ("Pending", "Running")


def mark_crashed_runs(conn: Conn, now: float | None = None) -> list[str]:
    """Mark runs whose process died as Crashed; returns their ids."""
    now = store_clock.now(conn) if now is None else now
    suspects = conn.execute(
        "SELECT id, host, pid, heartbeat, created FROM flow_runs WHERE state IN (?, ?)",
        _OPEN_STATES,
    ).fetchall()
    crashed: list[str] = []
    for run_id, host, pid, beat, created in suspects:
        why = why_gone(host, pid, beat, created, now)
        if why is None:
            continue
        try:
            marked = _mark_crashed(conn, run_id, beat, why, now)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return crashed  # a full or busy disk: reading goes on, the next read marks
        if marked:
            crashed.append(run_id)
    return crashed


def _mark_crashed(conn: Conn, run_id: str, beat: float | None, why: str, now: float) -> bool:
    message = (
        f"crashed: {why}; finished task runs are kept, `labloom retry {run_id}` reruns "
        "the rest"
    )
    with conn.transaction():
        # Only if nothing was written meanwhile (the run may be alive after all).
        changed = conn.execute(
            "UPDATE flow_runs SET state = 'Crashed', message = ?, ended = ? WHERE id = ? "
            "AND state IN (?, ?) AND COALESCE(heartbeat, -1.0) = ?",
            (message, beat or now, run_id, *_OPEN_STATES, -1.0 if beat is None else beat),
        ).rowcount
        if changed:
            note = "not finished: the run's process died"
            open_tasks = [row[0] for row in conn.execute(
                "SELECT id FROM task_runs WHERE run_id = ? AND state IN "
                "('Pending', 'Running', 'Retrying')", (run_id,)
            )]
            conn.executemany(
                "UPDATE task_runs SET state = 'Cancelled', message = ? WHERE id = ?",
                [(note, tr_id) for tr_id in open_tasks],
            )
            conn.executemany(
                "INSERT INTO task_states (task_run_id, run_id, state, time, message, "
                "attempt) VALUES (?, ?, 'Cancelled', ?, ?, 0)",
                [(tr_id, run_id, now, note) for tr_id in open_tasks],
            )
    return bool(changed)
