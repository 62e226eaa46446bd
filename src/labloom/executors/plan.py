"""An executor that runs nothing: ``Flow.visualize`` traces a flow body's graph with it."""

from __future__ import annotations

from typing import Any

from ..core.attempt import TaskCall
from .base import DoneCallback, Executor


class PlanningExecutor(Executor):
    name = "plan"

    def submit(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_done: DoneCallback,
        resources: dict[str, float] | None = None,
    ) -> Any:
        return None

    def value_ref(self, handle: Any) -> Any:
        return None

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        raise RuntimeError(
            "Flow.visualize() traces the flow body without running tasks, so the body cannot "
            "call .result(); draw the flow from a run instead: run = flow.run(...); run.widget()"
        )
