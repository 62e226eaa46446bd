"""What one Dask task of labloom's is made of, for the modules that send tasks and those that
end them (``dask_submit``, ``dask_chunk_ends``): a task run's ``Handle``, a map child waiting
for its chunk (``Member``), what one Dask task needs to be sent (``Entry``), and a task run sent
alone (``single``)."""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from ..core.attempt import TaskCall
from ..core.executor import DoneCallback, Outcome
from . import dask_events as events
from .dask_failure_marks import invoke_task
from .dask_internals import future_of, task_spec
from .dask_outcomes import ChildFailed, report
from .dask_shipping import Shipped


class ClientOwner(Protocol):
    """What submitting needs of the executor (``dask.DaskExecutor``): its client and the
    dispatcher of its workers' events. A protocol, so this module need not import that one."""

    @property
    def client(self) -> Any: ...

    @property
    def dispatcher(self) -> events.Dispatcher: ...


class Handle:
    """A task run on Dask: its future, or its chunk's future and its place in the chunk."""

    __slots__ = ("cancelled", "future", "index", "item", "task")

    def __init__(self, task: str) -> None:
        # The task's name (a map child's without its index): taken apart once, when launched,
        # not on each pass of the submitting thread.
        self.task = task
        self.future: Any = None
        self.index: int | None = None
        self.item: Any = None  # the future of this child's value alone, made when needed
        self.cancelled = False

    @property
    def lost(self) -> bool:
        """Whether this finished task run's value is gone: Dask forgot it (its scheduler
        restarted: every future it held is cancelled), or lost it with its worker ("lost"
        while Dask makes it again, "error" when that failed; ``Gone`` once its cluster per run
        closed); a value kept in this process (``Kept``) is not. A chunk child's also when its
        own item erred: its chunk was made again, and it failed (``child_value``); or when its
        place in a chunk kept so holds that failure."""
        return getattr(self.future, "status", None) in ("cancelled", "lost", "error") or (
            getattr(self.item, "status", None) == "error") or (
            self.index is not None and isinstance(getattr(self.future, "value", None), list)
            and self.index < len(self.future.value)
            and type(self.future.value[self.index]) is ChildFailed)


Member = tuple[TaskCall, tuple[Any, ...], dict[str, Any], Handle, DoneCallback]
# What one Dask task needs to be sent: its spec, resources, what to do if it cannot be sent,
# its future, what to do once it finished.
Entry = tuple[Any, tuple[tuple[str, float], ...], Callable[[Exception], None], Any,
              Callable[[Any], None] | None]


def task_name_of(call: TaskCall) -> str:
    return call.task_name.split("[", 1)[0]


def attempt_key(call: TaskCall) -> str:
    """What names one attempt of one task run among Dask keys: its task run, its attempt and,
    in a rerun (which counts attempts from 1 again), the rerun. Without it the rerun's attempt
    1 had the key of the failed attempt 1, which the scheduler may still hold as erred: the
    rerun failed at once with the first run's error, without running."""
    key = f"{call.task_run_id}-{call.attempt}"
    return f"{key}-r{call.rerun}" if call.rerun else key


def single(
    executor: ClientOwner, call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any],
    handle: Handle, on_done: DoneCallback,
) -> tuple[str, Entry]:
    """One task run as one Dask task: its key and entry (no resources)."""
    key = f"{handle.task}-{attempt_key(call)}"
    # The future exists now; the task reaches the scheduler with the next batch.
    handle.future = future_of(key, executor.client)
    dispatcher = executor.dispatcher

    def not_sent(error: Exception) -> None:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        dispatcher.put(on_done, Outcome(ok=False, error=error, traceback=text))

    def done(future: Any) -> None:
        dispatcher.put(report, future, call, on_done, dispatcher)

    spec = task_spec(key, invoke_task, shipped(call), args, kwargs)
    return key, (spec, (), not_sent, handle.future, done)


def shipped(call: TaskCall) -> TaskCall:
    """A copy of ``call`` whose function travels apart (``dask_shipping``); the engine keeps
    its own."""
    sent = copy.copy(call)
    sent.fn = Shipped(call.fn)  # type: ignore[assignment]  # not callable: unshipped first
    return sent
