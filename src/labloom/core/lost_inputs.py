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
  reading its value raises the same ``WorkerDiedError`` (``dask_loading``). ``run.notes`` says
  it too, and, once ``run.retry()`` ran it again, that it did and why (``LostValues``).
- A value whose new run failed with no task run waiting for it (the flow's last, or read only
  after the run) is said the same way at the run's end (``LostValues.at_end``), before it
  ended only a read of it said it. Looked for only when the executor's cluster said a value
  lost while the run went (``Executor.losses``): no pass over the task runs otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import WorkerDiedError, error_text
from .map_nodes import MapNode

if TYPE_CHECKING:
    from .executor import Executor
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


class SplitLost(Exception):
    """A map over ``up``'s result could not split it: the value is gone for good (Dask's new
    run of ``up`` raised ``error``). Raised by the engine's split, said by ``expand_map``."""

    def __init__(self, up: TaskRun, error: BaseException) -> None:
        super().__init__(up.name)
        self.up, self.error = up, error

    def said(self, map_name: str) -> str:
        """The map's failure: what went, and the fix (``run.retry()`` splits the new value)."""
        up = self.up.name
        return (f"{map_name}.map() did not run: the value of {up}, which it "
                f"maps over, was lost with its Dask worker after {up} completed, and Dask's "
                f"run of {up} to make it again failed ({error_text(self.error)}); run.retry() "
                f"runs {up} again")


def lost_note(error: BaseException, then: str) -> str:
    """The line in the logs of a task run whose value is gone (``then``: what could not be
    done for it)."""
    said = error_text(error)
    return (f"this task run's value was lost with its Dask worker after it completed; Dask ran "
            f"it again to make it, and that run failed ({said}), {then}. It stays Completed "
            "(its call returned); run.retry() runs it again")


class LostValues:
    """A run's values lost after their task runs completed (its ``Launcher``'s): each said
    once in its task run's logs and in ``run.notes``, and the task runs a retry runs again for
    it (``rerun.reset_bad``) in ``run.notes``."""

    def __init__(self, executor: Executor, say: Callable[[TaskRun, str], None],
                 notes: list[str]) -> None:
        self.executor = executor  # whose ``lost`` a retry asks (``TaskGraph.reset_bad``)
        self._say = say  # a line of labloom's in a task run's logs
        self._notes = notes
        self._said: dict[str, BaseException] = {}  # task runs whose value's loss was said,
        # and why (a value kept as gone as its cluster per run closed no longer says it)
        self._losses = executor.losses()  # the executor's count when last looked

    def failed_for(self, tr: TaskRun, up: TaskRun, error: BaseException) -> None:
        """``tr`` failed for ``up``'s value, gone (Dask's new run of it raised ``error``)."""
        self._tell(up, error, f"so {tr.name} could not run")

    def split(self, up: TaskRun) -> list[Any]:
        """``Executor.split`` of ``up``'s value; one lost with a Dask worker since ``up``
        completed and not made again is said, and raised as ``SplitLost``: the map says so,
        not "cannot iterate" as if the task had returned no list."""
        try:
            return self.executor.split(up.handle)
        except Exception as exc:
            why = self.executor.remade_failed(up.handle)
            if why is None:
                raise
            self._tell(up, why, "so a map over it could not run")
            raise SplitLost(up, why) from exc

    def at_end(self, task_runs: Callable[[], list[TaskRun]], cancelled: str | None) -> None:
        """The run's task runs ended: those whose value was lost and not made again, waited
        for while being made (``Executor.settle_lost``), said. Nothing lost while the run
        went (the executor's count the same): nothing to look at; a run ``cancelled`` waits
        for nothing (a read of such a value still says it)."""
        losses = self.executor.losses()
        if losses == self._losses or cancelled is not None:
            return
        self._losses = losses
        executor = self.executor
        done = {id(tr.handle): tr for tr in task_runs() if tr.state.is_success
                and tr.handle is not None and tr.id not in self._said}
        try:
            lost = executor.settle_lost([tr.handle for tr in done.values()])
        except Exception:  # (its cluster gone meanwhile): the run must end all the same
            return
        for handle in lost:
            why = executor.remade_failed(handle)
            if why is not None:
                self._tell(done[id(handle)], why, "so reading it raises WorkerDiedError")

    def _tell(self, up: TaskRun, error: BaseException, then: str) -> None:
        if up.id in self._said:
            return
        self._said[up.id] = error
        self._say(up, lost_note(error, then))
        self._notes.append(f"{up.name}: its value was lost with its Dask worker after it "
                           f"completed, and Dask's run of it to make it again failed "
                           f"({error_text(error)}); run.retry() runs it again")

    def rerun(self, tr: TaskRun) -> None:
        """A retry runs ``tr`` (Completed) again, its value lost (``rerun.reset_bad``)."""
        why = self.executor.remade_failed(tr.handle) or self._said.get(tr.id)
        self._said.pop(tr.id, None)  # its next value may be lost too: said again then
        how = (f": Dask's run of it to make it again failed ({error_text(why)})"
               if why is not None else " (its Dask worker or cluster went)")
        self._notes.append(f"{tr.name}: ran again, as its value was lost after it "
                           f"completed{how}")
