"""Deleting runs from the store: `labloom delete RUN...` and `labloom db prune --older-than DAYS`.

A store keeps every run it was given, and a nightly flow with a map of thousands writes
thousands of task runs, states and log lines a night: without a way to delete, a team's history
only grows (and a place that must not keep logs past a retention period could not comply).

A run is deleted with everything of it the store holds (its task runs, their states, logs and
cut notes, logged params and metrics and their folded rows, its graph's nodes, a cancel
request), and the result files no run left in the store names (``unreferenced_results.py``: a
cached result is shared by every run with its key). Only an ended run: one still running is
kept (a run whose process is gone is Crashed, ``RunStore.reconcile``, and so ended). A run
marked Crashed for its silence alone (from another host: no heartbeat for
``LABLOOM_HEARTBEAT_TIMEOUT``) may still live, its beats kept from the store (a host cut off,
a PostgreSQL failover): its writer tries again for ``LABLOOM_STORE_OUTAGE`` seconds and its
next beat makes it Running. Such a run is kept until its last beat is older than both
together; on its own host, while its process lives. (One its own host saw dead, the pid asked
there, goes at once.) Another user's run only by an admin (``access.py``).

Each batch of runs is its own short transaction, so a big prune never holds the store's write
lock for long: runs going meanwhile keep recording.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.errors import NotAllowedError, StoreUnreachableError
from . import access, store_clock
from .files_left import free, reconnected
from .home import host_name, pid_alive, seen_gone, started_after
from .multirow import in_chunks, rows_in
from .settings import heartbeat_timeout, outage_patience
from .unanswered_commits import written_once
from .unreferenced_results import FilesFreed, named_by

if TYPE_CHECKING:
    from .db import Conn
    from .reader import RunRecord, RunStore

# The tables that hold rows of a run, by its ``run_id``; ``task_states`` is looked up through
# its task runs (indexed by task run on SQLite, where a scan by run would read the whole table).
_RUN_TABLES = ("logs", "log_cuts", "experiment_values", "experiment_rows", "experiment_columns",
               "run_nodes", "cancel_requests", "run_alerts", "run_alert_wishes")
_BATCH = 50  # runs per transaction
_ENDED = ("Completed", "Failed", "Cancelled", "Crashed")


@dataclass
class Pruned:
    """What a deletion did (or, dry, would do)."""

    deleted: list[str] = field(default_factory=list)  # run ids
    running: list[str] = field(default_factory=list)  # kept: not ended
    not_allowed: list[str] = field(default_factory=list)  # kept: another user's
    # kept: marked Crashed, but its process may still write (run id -> why)
    may_live: dict[str, str] = field(default_factory=dict)
    task_runs: int = 0
    files: FilesFreed = field(default_factory=FilesFreed)


def delete_runs(store: RunStore, runs: Sequence[RunRecord], dry_run: bool = False) -> Pruned:
    """Delete ``runs`` (as the store read them) that may be deleted; say which were kept."""
    result = Pruned()
    chosen: list[str] = []
    for run in runs:
        if run.state not in _ENDED:
            result.running.append(run.id)
            continue
        try:
            access.check("delete", f"run {run.id}", run.user)
        except NotAllowedError:
            result.not_allowed.append(run.id)
            continue
        chosen.append(run.id)
    files: dict[str, float] = {}
    for at, batch in enumerate(_batches(chosen)):
        try:
            result.task_runs += _delete(store, batch, dry_run, result.may_live, files)
        except StoreUnreachableError as exc:  # the server away: say what each batch became
            untried = len(chosen) - (at + 1) * _BATCH
            raised = _which(exc, result.deleted, batch, untried)
            # Listed apart too: the Flows panel drops the rows of those deleted.
            raised.done = {"deleted": result.deleted, "cut_off": batch,
                           "not_tried": max(0, untried)}
            raise raised from None
        result.deleted += [run_id for run_id in batch if run_id not in result.may_live]
    # Its server away now, the runs are deleted all the same: their files are left for later.
    result.files = free(store, files, set(result.deleted), dry_run)
    return result


def _which(exc: StoreUnreachableError, deleted: list[str], batch: list[str],
           untried: int) -> StoreUnreachableError:
    """``exc`` of ``batch`` (its change may or may not have been made, or was not), with the
    runs deleted by the batches before it and how many were not tried. Before, a deletion over
    several batches (50 runs each) said only the last one's fate."""
    if not deleted and untried <= 0:
        return exc
    said = [f"deleted before the store's server went away: {len(deleted)} run(s)"
            f"{' (' + listed(deleted) + ')' if deleted else ''}",
            f"of the next {len(batch)} ({listed(batch, 3)}), "
            + " ".join(str(exc).removeprefix("[labloom]").split())]
    if untried > 0:
        said.append(f"{untried} more run(s) not tried")
    return type(exc)("[labloom] " + "; ".join(said))


def listed(ids: list[str], shown: int = 20) -> str:
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def why_kept_alive(host: str | None, pid: int | None, beat: float | None,
                   created: float | None, message: str, now: float) -> str | None:
    """Why a run marked Crashed may still be writing to the store; None when it cannot be."""
    if seen_gone(message):
        return None  # its own host asked its pid: dead, whichever host deletes
    if host == host_name() and pid is not None:
        if pid_alive(int(pid)) and not started_after(int(pid), created or 0.0):
            return (f"its process (pid {pid} on {host}) still lives (frozen, or cut off "
                    "from the store); stop that process, then delete the run")
        return None
    wait = heartbeat_timeout() + outage_patience()
    if beat is None or now - beat >= wait:
        return None
    return (f"it was marked Crashed for its silence, but its process (pid {pid} on {host}) "
            f"beat {now - beat:.0f}s ago and may still be writing (a host cut off from the "
            f"store beats again when it is back); delete it after {wait - (now - beat):.0f}s "
            "more, when it can no longer come back (LABLOOM_HEARTBEAT_TIMEOUT + "
            "LABLOOM_STORE_OUTAGE after its last beat)")


def _batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start : start + _BATCH]


def _delete(store: RunStore, run_ids: list[str], dry_run: bool, may_live: dict[str, str],
            files: dict[str, float]) -> int:
    """Delete a batch in one transaction; the runs found alive meanwhile go to ``may_live``
    instead, and the result files the deleted ones named to ``files``. Its answer lost (a
    crash, a network cut): asked whether it landed (``written_once``; the store's connection
    made again); the server still away, said whether it may have (``labloom delete`` exits 4)."""
    gone: list[str] = []
    # Made again here, not after the batch before landed: a server still away is this
    # batch's failure (not made), never that landed one's.
    reconnected(store)

    def write(conn: Conn) -> int:
        # Read in the transaction (PostgreSQL: rows locked), so a beat that makes a run Running
        # again comes before this read or after the delete, never between.
        lock = " FOR UPDATE" if conn.kind == "postgresql" else ""
        now = store_clock.now(conn)  # beats are stamped by the server's clock
        for run_id, state, host, pid, beat, created, message in list(rows_in(
            conn, "SELECT id, state, host, pid, heartbeat, created, message FROM flow_runs "
            f"WHERE id IN ({{marks}}){lock}", run_ids
        )):
            if state not in _ENDED:
                may_live[run_id] = f"it is {state} again: its process beat"
            elif state == "Crashed":
                why = why_kept_alive(host, pid, beat, created, message or "", now)
                if why is not None:
                    may_live[run_id] = why
        gone[:] = [run_id for run_id in run_ids if run_id not in may_live]
        if not gone:
            return 0
        count = sum(int(n) for (n,) in rows_in(
            conn, "SELECT COUNT(*) FROM task_runs WHERE run_id IN ({marks})", gone))
        for path, ended in named_by(conn, gone).items():
            files[path] = max(files.get(path, 0.0), ended)
        if dry_run:
            return count
        delete_run_rows(conn, gone)
        # Remembered: a copy from the store they came from skips them (``copying.py``).
        conn.executemany("INSERT INTO deleted_runs (id, deleted) VALUES (?, ?) "
                         "ON CONFLICT (id) DO NOTHING", [(run_id, now) for run_id in gone])
        return count

    if dry_run:
        with store.conn.transaction() as conn:
            return write(conn)
    # Cut, asked on a new one: the next batch, and the files, on one too (``reconnected``).
    return written_once(store.conn, write, lambda again, _: not any(rows_in(
        again, "SELECT id FROM flow_runs WHERE id IN ({marks})", gone)))


def delete_run_rows(conn: Conn, run_ids: Sequence[str]) -> None:
    """Every row of ``run_ids`` in every table, in the caller's transaction (``labloom
    delete``, and ``db copy`` replacing a run that changed in its source)."""
    deletes = ["DELETE FROM task_states WHERE task_run_id IN (SELECT id FROM task_runs "
               "WHERE run_id IN ({marks}))",
               *(f"DELETE FROM {table} WHERE run_id IN ({{marks}})" for table in _RUN_TABLES),
               "DELETE FROM task_runs WHERE run_id IN ({marks})",
               "DELETE FROM flow_runs WHERE id IN ({marks})"]
    for sql in deletes:
        for statement, chunk in in_chunks(sql, run_ids):
            conn.execute(statement, chunk)


def older_runs(store: RunStore, before: float, flow: str | None = None) -> list[RunRecord]:
    """The runs created before ``before`` (a time), of ``flow`` if given, oldest first."""
    runs = store.list_runs(flow=flow, limit=None, until=before, counts=False, parameters=False)
    return runs[::-1]
