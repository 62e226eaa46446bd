"""Deleting runs from the store: `labloom delete RUN...` and `labloom db prune --older-than DAYS`.

A store keeps every run it was given, and a nightly flow with a map of thousands writes
thousands of task runs, states and log lines a night: without a way to delete, a team's history
only grows (and a place that must not keep logs past a retention period could not comply).

A run is deleted with everything of it the store holds (its task runs, their states, logs and
cut notes, logged params and metrics and their folded rows, its graph's nodes, a cancel
request). Only an ended run: one still running is kept (a run whose process is gone is Crashed,
``RunStore.reconcile``, and so ended). Another user's run only by an admin (``access.py``).
Result files are not deleted: a cached result is shared by every run with its key.

Each batch of runs is its own short transaction, so a big prune never holds the store's write
lock for long: runs going meanwhile keep recording.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.errors import NotAllowedError
from . import access

if TYPE_CHECKING:
    from .reader import RunRecord, RunStore

# The tables that hold rows of a run, by its ``run_id``; ``task_states`` is looked up through
# its task runs (indexed by task run on SQLite, where a scan by run would read the whole table).
_RUN_TABLES = ("logs", "log_cuts", "experiment_values", "experiment_rows", "experiment_columns",
               "run_nodes", "cancel_requests")
_BATCH = 50  # runs per transaction
_ENDED = ("Completed", "Failed", "Cancelled", "Crashed")


@dataclass
class Pruned:
    """What a deletion did (or, dry, would do)."""

    deleted: list[str] = field(default_factory=list)  # run ids
    running: list[str] = field(default_factory=list)  # kept: not ended
    not_allowed: list[str] = field(default_factory=list)  # kept: another user's
    task_runs: int = 0


def delete_runs(store: RunStore, runs: Sequence[RunRecord], dry_run: bool = False) -> Pruned:
    """Delete ``runs`` (as the store read them) that may be deleted; say which were kept."""
    result = Pruned()
    chosen: list[RunRecord] = []
    for run in runs:
        if run.state not in _ENDED:
            result.running.append(run.id)
            continue
        try:
            access.check("delete", f"run {run.id}", run.user)
        except NotAllowedError:
            result.not_allowed.append(run.id)
            continue
        chosen.append(run)
    for batch in _batches([run.id for run in chosen]):
        result.task_runs += _delete(store, batch, dry_run)
        result.deleted += batch
    return result


def _batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start : start + _BATCH]


def _delete(store: RunStore, run_ids: list[str], dry_run: bool) -> int:
    marks = ",".join("?" * len(run_ids))
    count_sql = f"SELECT COUNT(*) FROM task_runs WHERE run_id IN ({marks})"
    if dry_run:
        return int(store.conn.execute(count_sql, run_ids).fetchone()[0])
    with store.conn.transaction() as conn:
        count = int(conn.execute(count_sql, run_ids).fetchone()[0])
        conn.execute("DELETE FROM task_states WHERE task_run_id IN (SELECT id FROM task_runs "
                     f"WHERE run_id IN ({marks}))", run_ids)
        for table in _RUN_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", run_ids)
        conn.execute(f"DELETE FROM task_runs WHERE run_id IN ({marks})", run_ids)
        conn.execute(f"DELETE FROM flow_runs WHERE id IN ({marks})", run_ids)
    return count


def older_runs(store: RunStore, before: float, flow: str | None = None) -> list[RunRecord]:
    """The runs created before ``before`` (a time), of ``flow`` if given, oldest first."""
    runs = store.list_runs(flow=flow, limit=None, until=before, counts=False)
    return runs[::-1]
