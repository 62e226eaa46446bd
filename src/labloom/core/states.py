"""Run and task-run states.

A state is a plain string enum so it serialises to JSON and SQLite as its name.
"""

from __future__ import annotations

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
