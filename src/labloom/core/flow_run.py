"""``FlowRun``: the user's handle on one run of a flow (``Flow.run`` returns it).

Thin by design: it reads the run's state and asks its ``RunEngine`` (``engine.py``) to wait,
cancel or retry. Views and tools use only what is public here: ``subscribe``, ``events``,
``tasks``, ``logs``, ``cancel``, ``retry``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from .context import active_engine
from .engine import RunEngine
from .executor import Executor
from .hooks import Limiter, hooks
from .kept_parameters import parameter_bytes
from .results import Reuse
from .run_logs import LogLine, run_line_limit
from .states import State

if TYPE_CHECKING:
    from .flows import Flow
    from .task_runs import TaskRun


class FlowRun:
    """One run of a flow: its live handle. ``Flow.run(...)`` returns it.

    >>> run = sweep.run(grid=grid, background=True)
    >>> run.state, len(run.tasks)
    >>> run.wait(); run.result()
    """

    def __init__(
        self,
        flow: Flow[Any, Any],
        parameters: dict[str, Any],
        executor: Executor,
        origin: str = "script",
        limiter: Limiter | None = None,
        owns_executor: bool = False,
        reuse: dict[str, Reuse] | None = None,
    ) -> None:
        # A bad LABLOOM_PARAMETER_BYTES or LABLOOM_RUN_LOG_LINES is said before anything starts.
        parameter_bytes()
        run_line_limit()
        self._engine = RunEngine(flow, parameters, executor, origin, limiter, owns_executor)
        self._engine.handle = self
        # The engine holds this handle weakly: when the user drops it, the run's data goes.
        weakref.finalize(self, self._engine.release)
        if reuse:
            self._engine.results.reuse = dict(reuse)
        self.id = self._engine.id
        self.flow = flow
        self.flow_name = flow.name
        self.parameters = parameters
        self.executor = executor
        self.origin = origin
        self.announced: list[Callable[[ev.RunCreated], None]] = []  # see ``when_announced``

    # --- what the run is --------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._engine.state

    @property
    def message(self) -> str:
        return self._engine.message

    @property
    def started(self) -> float | None:
        return self._engine.started

    @property
    def ended(self) -> float | None:
        return self._engine.ended

    @property
    def metadata(self) -> dict[str, Any]:
        """Facts for views (the Dask dashboard link, ``retry_of``); set before ``start``."""
        return self._engine.metadata

    @property
    def body_error(self) -> BaseException | None:
        """The exception the flow body itself raised, if it did."""
        return self._engine.body_error

    @property
    def timed_out(self) -> bool:
        """Whether the run was stopped by its flow's ``timeout`` (it is then Failed)."""
        return self._engine.clock.stopped_it

    @property
    def attempt(self) -> int:
        """Which attempt the run is at (or ended at): 1, or more under ``@flow(retries=N)``,
        up to ``N + 1``."""
        return self._engine.attempts.number

    @property
    def notes(self) -> list[str]:
        """What a retry had to rerun although it completed before, and why; and the values
        lost after their task runs completed (a Dask worker died), that Dask could not make
        again."""
        return list(self._engine.results.notes)

    @property
    def tasks(self) -> list[TaskRun]:
        """Task runs so far, in creation order (map children included)."""
        return self._engine.task_runs()

    def logs(self, task: str | None = None) -> list[LogLine]:
        """Log lines of the run, or of one task run (by id, ``name`` or ``name[i]``).

        The kernel keeps the newest ``LABLOOM_RUN_LOG_LINES`` (100,000) lines of a run; older
        ones come from the store when it is on.
        """
        logs = self._engine.logs
        kept = logs.select(task, self._engine.graph)
        if logs.dropped and hooks.older_logs is not None:
            older = hooks.older_logs(self.id, task)
            first = kept[0].time if kept else float("inf")
            kept = [line for line in older if line.time < first] + kept
        return kept

    def experiments(self, sort: str | None = None, desc: bool = False) -> Any:
        """The params and metrics its task runs logged, one row per task run (with its map
        index, state and duration), as a pandas DataFrame, or a list of dicts without pandas.
        Live: a running run gives the rows so far. Once it ended, a ``sort`` no row has is an
        ``UnknownColumnError`` (a typo would come back unsorted).

        >>> run.experiments(sort="auc", desc=True).head()
        """
        from . import experiments as ex

        engine = self._engine
        with engine.lock:  # a copy, so a wide table is built without holding up the run
            logged = list(engine.sink.logged)
        rows = ex.collect(self.id, logged)
        for row in rows.values():
            tr = engine.graph.get(row.task_run_id)
            if tr is not None:
                row.task, row.map_index, row.state = tr.task.name, tr.map_index, tr.state.value
                row.duration = tr.duration
        if self.ended is not None:  # while it runs, a metric may just not have come yet
            ex.check_sort(list(rows.values()), sort)
        return ex.frame(ex.page(list(rows.values()), sort, desc))

    # --- observing --------------------------------------------------------------------------

    def subscribe(self, callback: ev.Subscriber, replay: bool = False) -> Callable[[], None]:
        """Receive the run's events in batches (lists), on a thread of this subscriber's own;
        ``replay=True`` first gives the run so far (``events()``). Returns an unsubscribe."""
        return self._engine.subscribe(callback, replay)

    def when_announced(self, callback: Callable[[ev.RunCreated], None]) -> None:
        """Call ``callback(event)`` with the run's ``RunCreated`` in the run's own thread as it
        is emitted: its executor is up (a Dask cluster's dashboard link is in the event's
        metadata) and no task has started yet. For what must come before any task's output
        (``subscribe``'s batches come later, on another thread); the run waits for it."""
        self.announced.append(callback)

    def events(self) -> list[ev.Event]:
        """The run so far as events: its graph's nodes, each task run where it stands, the log
        lines the kernel keeps."""
        return self._engine.events()

    # --- acting -----------------------------------------------------------------------------

    def start(self, background: bool = False) -> FlowRun:
        self._engine.start(background)
        return self

    def wait(self, timeout: float | None = None) -> State:
        """Block until the run ends (or ``timeout`` seconds); returns its state.

        Interrupting the wait (Ctrl-C, a kernel interrupt) cancels the run.
        """
        return self._engine.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The flow's return value with futures resolved.

        Raises the flow body's own exception if it raised, ``RunCancelledError`` if the run
        was cancelled, and ``FlowFailed`` if the return value needs a task run that failed.
        """
        return self._engine.result(timeout)

    def cancel(self, reason: str = "cancelled by user") -> None:
        """Cancel what has not finished: pending task runs become Cancelled at once."""
        self._engine.cancel(reason)

    def retry(self, background: bool = False) -> FlowRun:
        """Rerun failed, upstream-failed and cancelled task runs and what depends on them,
        reusing completed results; same run id. Returns self (waited unless background)."""
        self._engine.retry(background)
        return self

    def wait_finished(self, timeout: float) -> bool:
        """Wait for the run to be finished and recorded, without driving the executor."""
        return self._engine.wait_finished(timeout)

    def finish_now(self) -> None:
        """Finish a cancelled run from this thread (at process exit: its own may be stuck)."""
        self._engine.finish_now()

    def widget(self) -> Any:
        """The live DAG of this run, for a notebook."""
        if hooks.widget is None:
            raise RuntimeError("[labloom] no widget is registered: `import labloom` first")
        return hooks.widget(self)

    def __repr__(self) -> str:
        return f"<FlowRun {self.flow_name} {self.id} {self.state.value}>"


def active_run() -> FlowRun | None:
    """The flow run whose body is executing here, unless we are inside a task."""
    engine = active_engine()
    return None if engine is None else engine.handle


__all__ = ["FlowRun", "LogLine", "active_run"]
