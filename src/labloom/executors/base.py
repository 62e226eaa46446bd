"""The executor interface lives in ``core/executor.py`` (the engine's side of the line); this
name stays for imports written before the move."""

from ..core.executor import DoneCallback, Executor, Outcome

__all__ = ["DoneCallback", "Executor", "Outcome"]
