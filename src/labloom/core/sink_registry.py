"""Where a task call reports (started, log lines, keys, params and metrics): a ``RunSink``.
That is the run's engine (its ``ExecutorSink``, ``sinks.py``) when the run lives in this
process, else the sink the Dask executor installs on its workers (``set_remote_sink``). Apart
from ``attempt.py`` so that what only records a value (``experiment_values.py``) reaches the
sink without the call machinery, and apart from ``sinks.py`` so that a Dask worker, which
reports to its remote sink, never imports the engine's events (issue 21: 5.6 ms of each
worker's first task)."""

from __future__ import annotations

from typing import Any, Protocol


class RunSink(Protocol):
    def task_started(self, run_id: str, task_run_id: str, when: float, attempt: int,
                     worker: str = "", rerun: int | None = None) -> None:
        """``worker``: where it runs, the lane of the run's timeline (this thread's name; a
        Dask worker's sink puts its address before it). ``rerun``: the run's reruns at the
        call's launch (None: not said), as for ``task_values``."""

    def task_log(self, run_id: str, task_run_id: str, level: int, when: float, text: str) -> None:
        ...

    def task_keyed(self, run_id: str, task_run_id: str, attempt: int, key: str | None,
                   path: str | None, message: str, rerun: int | None = None) -> None:
        """A cached call made its key where its inputs are (``message``: "cached result" on
        a hit); reported before the call ends. ``rerun`` as for ``task_started``."""

    def task_values(self, run_id: str, task_run_id: str, when: float, kind: str,
                    values: dict[str, Any], step: int | None, attempt: int | None = None,
                    rerun: int | None = None) -> None:
        """The params or metrics of one logging call (``experiment_values.record``) of
        ``attempt`` in the run's ``rerun`` (None: not said, from a worker of an older
        labloom)."""


# Runs living in this process, by id: their engine receives events directly.
_local_sinks: dict[str, RunSink] = {}
# Set on Dask worker processes, where the run's engine is elsewhere.
_remote_sink: RunSink | None = None


def register_local_run(run_id: str, sink: RunSink) -> None:
    _local_sinks[run_id] = sink


def unregister_local_run(run_id: str) -> None:
    _local_sinks.pop(run_id, None)


def set_remote_sink(sink: RunSink | None) -> None:
    global _remote_sink
    _remote_sink = sink


def local_sink(run_id: str) -> RunSink | None:
    """The sink of a run living in this process, if it is still running."""
    return _local_sinks.get(run_id)


def sink_for(run_id: str) -> RunSink | None:
    return _local_sinks.get(run_id) or _remote_sink


def started_all(sink: RunSink, run_id: str,
                starts: list[tuple[str, float, int, str, int | None]]) -> None:
    """Several task runs started, as (task run id, when, attempt, worker, rerun): a chunk's
    children whose starts arrive in one message take one step of their engine
    (``tasks_started``)."""
    together = getattr(sink, "tasks_started", None)
    if together is not None:
        together(run_id, starts)
        return
    for task_run_id, when, attempt, worker, rerun in starts:
        sink.task_started(run_id, task_run_id, when, attempt, worker, rerun)
