"""The state row the writer leaves out, and how a reader of a task run's history puts it back.

A task run that starts and ends in one write of the store (most children of a map: on Dask a
chunk's starts and its ends reach the writer a moment apart, on threads a no-op child is made,
started and ended within one) is written with two state rows, not three: its Pending row and
its end, which says it moved from Pending (``Rows.add_all`` puts the end in its start's place).
The Running row, in the same transaction, was never seen by a view following the store
(``follow.py`` counts the end as a move from Pending to the final state, which comes to the same
counts), and it held nothing the task run's own row does not: its time is the task run's
``started``, its message empty, its attempt the end's. Only a first start (from Pending, with
no message) is left out, so ``started`` is its time: about a third of a no-op Dask child's
writer time went to that row and its index entry.

A reader of a task run's history (``RunStore.task_runs(..., history=True)``) puts the Running
entry back, before an end that moved from Pending of a task run that started. Rows written
before this (a Running row, then an end that moved from Running) read as they did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.states import FINAL_STATES

_FINAL = frozenset(state.value for state in FINAL_STATES)


def history_entries(row: Sequence[Any], started: float | None) -> list[dict[str, Any]]:
    """A state row (state, time, message, attempt, state before) as history entries: the
    Running entry left out before it, if any (``started``: its task run's)."""
    state, when, message, attempt, before = row
    entry = {"state": state, "time": when, "message": message, "attempt": attempt}
    if before == "Pending" and state in _FINAL and started is not None:
        return [{"state": "Running", "time": started, "message": "", "attempt": attempt}, entry]
    return [entry]
