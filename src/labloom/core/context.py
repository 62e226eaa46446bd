"""The active run: which engine's flow body is executing here (a context variable), apart from
the engine so that what only asks (``tasks.py``, ``values.py``, ``expressions.py``) does not
import it; as Prefect 3 keeps ``context.py`` apart from ``flow_engine.py``."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from .logs import current_task

if TYPE_CHECKING:
    from .engine import RunEngine

# Set by the engine around its flow body (``RunEngine._drive``, ``RunEngine.trace``).
ACTIVE: contextvars.ContextVar[RunEngine | None] = contextvars.ContextVar(
    "labloom_flow_run", default=None
)


def active_engine() -> RunEngine | None:
    """The engine whose flow body is executing here; None inside a task, unless the task
    called a flow (a nested flow: its own engine, a run of its own)."""
    engine, task = ACTIVE.get(), current_task()
    return None if task is not None and (engine is None or engine.id == task.run_id) else engine
