"""Run and task-run states.

A state is a plain string enum so it serialises to JSON and SQLite as its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class State(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    COMPLETED = "Completed"
    CACHED = "Cached"
    FAILED = "Failed"
    UPSTREAM_FAILED = "UpstreamFailed"
    CANCELLED = "Cancelled"
    # Only flow runs crash: the process that ran them died before they finished.
    CRASHED = "Crashed"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_success(self) -> bool:
        return self in (State.COMPLETED, State.CACHED)


FINAL_STATES = frozenset(
    {
        State.COMPLETED,
        State.CACHED,
        State.FAILED,
        State.UPSTREAM_FAILED,
        State.CANCELLED,
        State.CRASHED,
    }
)
# A downstream task does not run after any of these (unless wrapped in allow_failure).
BAD_STATES = frozenset({State.FAILED, State.UPSTREAM_FAILED, State.CANCELLED, State.CRASHED})
# What a flow run's state can be, as the store spells it.
RUN_STATES = ("Pending", "Running", "Completed", "Failed", "Cancelled", "Crashed")


def shown_traceback(state: str, traceback: str) -> str:
    """The traceback a view shows for a task run in ``state``: why it failed, or why it waits
    to retry; none once it succeeded (a retried attempt's traceback is kept in its logs, at its
    place between the attempts' lines, ``launching.py``)."""
    return "" if state in (State.COMPLETED, State.CACHED) else traceback


# Which state a node shows when its task runs disagree: the first present wins.
_ACTIVE_ORDER = (State.RUNNING, State.RETRYING)
_FINAL_ORDER = (State.FAILED, State.UPSTREAM_FAILED, State.CANCELLED, State.CRASHED)


def overall_state(counts: Mapping[State, int], total: int) -> State:
    """The one rule for a graph node's state from its task runs' states (a map's children, or
    a plain task's single run): the engine, the live DAG and the terminal progress all use it.

    >>> overall_state({State.COMPLETED: 3, State.FAILED: 1}, 4)
    <State.FAILED: 'Failed'>
    """
    if total == 0:
        return State.PENDING
    for state in _ACTIVE_ORDER:
        if counts.get(state):
            return state
    pending = counts.get(State.PENDING, 0)
    if pending:
        # Some finished while others wait: the node as a whole is under way.
        return State.RUNNING if pending < total else State.PENDING
    for state in _FINAL_ORDER:
        if counts.get(state):
            return state
    return State.CACHED if counts.get(State.CACHED, 0) == total else State.COMPLETED
