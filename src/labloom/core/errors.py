"""labloom's exceptions.

    LabloomError
    ├── FlowFailed            a flow's return value needs a task run that did not succeed
    ├── UpstreamFailedError   .result() of a task run that never ran: an upstream failed
    ├── RunCancelledError     .result() of a cancelled task run or flow run
    └── TaskTimeoutError      (also a TimeoutError) a task run exceeded its timeout
"""

from __future__ import annotations

from typing import Any


class LabloomError(Exception):
    """Base of labloom's own errors."""


class FlowFailed(LabloomError):
    """Raised by calling a flow (or ``FlowRun.result()``) when its return value needs a task
    run that failed. ``.run`` is the FlowRun; ``.failed`` lists ``(task run name, message)``."""

    def __init__(self, message: str, run: Any = None, failed: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.run = run
        self.failed = failed or []


class UpstreamFailedError(LabloomError):
    """The task run did not run because a task it depends on failed."""


class RunCancelledError(LabloomError):
    """The task run or flow run was cancelled."""


class TaskTimeoutError(LabloomError, TimeoutError):
    """A task run exceeded its ``timeout``."""


__all__ = [
    "FlowFailed",
    "LabloomError",
    "RunCancelledError",
    "TaskTimeoutError",
    "UpstreamFailedError",
]
