"""A task run that failed because a value it needs is gone: its upstream completed, then the
value was lost with the Dask worker holding it (killed, out of memory, retired), and Dask's run
of the upstream to make it again failed. Dask then fails every task waiting for that value with
the upstream's new error, which read as the downstream's own: ``use`` Failed with
``RuntimeError`` raised in ``make``'s code, beside a ``make`` Completed.

What the record says instead (decided for a Prefect or Dask user reading it):
- The downstream task run is Failed (it was sent to run and cannot: a failure of the run, not
  a choice of the flow body, so not ``UpstreamFailed``, whose upstream is itself bad), with a
  ``WorkerDiedError`` naming the upstream, the lost value, the failed new run and its error
  (the new run's traceback kept), and the fix. It is not retried: its input is gone for each
  try, which would fail the same way at once.
- The upstream stays Completed: its call returned, and its attempt, duration, logs and cached
  result are that call's; a final state is final for every view, alert and hook that saw it.
  Its logs say, once, that its value was lost, that Dask ran it again and that run failed
  (with its error), and which task run could not run for it; the executor counts it lost
  (``Executor.lost``, ``Executor.remade_failed``), so ``run.retry()`` runs it again, and
  reading its value raises the same ``WorkerDiedError`` (``dask_loading``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import WorkerDiedError, error_text
from .map_nodes import MapNode

if TYPE_CHECKING:
    from .task_runs import TaskRun


def lost_input(tr: TaskRun, remade_failed: Callable[[Any], BaseException | None],
               ) -> tuple[TaskRun, BaseException] | None:
    """The upstream of ``tr`` (failed) that succeeded and whose value is gone for good, and
    why (``Executor.remade_failed``), if any: a few reads of a future's status, on a failure
    only. Not one whose value is being made again (a worker just died): ``tr`` failed of its
    own then."""
    for up in _upstreams(tr):
        if up.state.is_success and up.handle is not None:
            why = remade_failed(up.handle)
            if why is not None:
                return up, why
    return None


def _upstreams(tr: TaskRun) -> Iterator[TaskRun]:
    for up in tr.upstream:
        if isinstance(up, MapNode):
            yield from up.children
        else:
            yield up
    parent = tr.parent
    if parent is not None and tr.map_index is not None:  # a map's child: its sources' values
        for source in (*parent.sources, *parent.keywords.values()):
            if source.kind == "future":
                yield source.value
            elif source.kind == "mapped" and tr.map_index < len(source.value.children):
                yield source.value.children[tr.map_index]


def lost_input_error(tr: TaskRun, up: TaskRun, error: BaseException) -> WorkerDiedError:
    """What ``tr`` failed of: ``up``'s value gone, Dask's new run of ``up`` failing with
    ``error`` (which Dask gave ``tr`` as its own)."""
    said = error_text(error)
    failed = WorkerDiedError(
        f"{tr.name} did not run: the value of {up.name}, which it needs, was lost with its Dask "
        f"worker after {up.name} completed, and Dask's run of {up.name} to make it again "
        f"failed ({said}); run.retry() runs {up.name} again")
    failed.__cause__ = error
    return failed


def lost_note(tr: TaskRun, error: BaseException) -> str:
    """The line in the logs of the upstream whose value is gone (``tr``: one that failed of it)."""
    said = error_text(error)
    return (f"this task run's value was lost with its Dask worker after it completed; Dask ran "
            f"it again to make it, and that run failed ({said}), so {tr.name} could not run. "
            "It stays Completed (its call returned); run.retry() runs it again")
