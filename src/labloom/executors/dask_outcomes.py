"""What a finished Dask task means for its task runs: the engine's ``Outcome`` of a plain task
run (``report``) or of each child of a chunk (``run_chunk`` on the worker, ``report_chunk`` on
the way back).

Inside a chunk each child is a ``TaskCall`` of its own and fails alone. Each child's end event
says whether it returned; when all did, that is all the client needs. When one failed,
``chunk_outcomes`` (a second, tiny Dask task) says which children failed and why, without
moving their values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..core.attempt import TaskCall, user_traceback, waiting_behind
from ..core.errors import SchedulerLostError, WorkerDiedError, error_text
from ..core.executor import DoneCallback, Outcome, report_all, report_returned
from ..core.logs import capturing
from . import dask_events as events
from .dask_chunking import GIVE_BACK_AFTER
from .dask_internals import (
    CLIENT_CLOSED,
    SCHEDULER_LOST,
    SCHEDULER_RESTART,
    cancel_reason,
    watch,
)
from .dask_packing import Packed

# A Dask task that returned. "lost": its value went with its worker (killed, out of memory)
# after Dask said it finished, maybe before this thread read its status; Dask computes it
# again for the future the engine holds, and reading it waits for that. Read as a failure, it
# asked Dask for the error, which waited for the value and answered None: the report broke and
# its task run stayed Running, the run never ending.
FINISHED = ("finished", "lost")


class ChildFailed:
    """In a chunk's result, where a child raised (its value is not there)."""

    __slots__ = ("error", "traceback")

    def __init__(self, error: BaseException, traceback: str) -> None:
        self.error = error
        self.traceback = traceback


def child_value(chunk: list[Any], index: int) -> Any:
    """On a worker: a chunk child's value, for a task that takes it as an argument. A
    ``ChildFailed`` there is a child that returned, whose value was lost with its worker: Dask
    ran the chunk again to make it, and this child failed this time. Its error, raised here,
    fails the tasks waiting for the value (``core/lost_inputs`` says why); the chunk's
    ``ChildFailed`` was passed to them as the child's value, and they ran on with it."""
    value = chunk[index]
    if isinstance(value, ChildFailed):
        raise value.error
    return value


class ChunkValues(list):  # type: ignore[type-arg]
    """A chunk's result: its children's values (or ``ChildFailed``), in order.

    A list subclass only so that it travels as one pickle: distributed sends a task's result
    that is exactly a ``list`` (or tuple, set, dict) item by item, each with its own header and
    compression check, about 20 µs per item on the worker and 6 µs in the kernel's gather (a
    chunk of 1,000 no-op children cost 20 ms to send, 0.1 ms as one pickle). Indexing,
    ``len`` and iteration are a list's."""

    __slots__ = ()


def run_chunk(
    packed: Packed, args: list[tuple[Any, ...]], kwargs: list[dict[str, Any]] | None
) -> ChunkValues:
    """On a worker: each child's call in turn (``kwargs`` None: none has any), one failing not
    stopping the others; their ends reach the engine in one message, before the chunk's own
    result."""
    out = ChunkValues()
    calls = packed.calls()
    if not calls:
        return out
    sink = events.worker_sink()
    # Children with a timeout (all of a chunk's or none) may give their siblings back.
    children = calls if calls[0].timeout is None else giving_back(calls, sink)
    # Output captured once for the chunk: each child still has its own task context (its
    # lines are its own), without installing and removing the stream proxies and the log
    # handler per child.
    with sink.holding(calls[0].run_id), capturing():
        for i, call in enumerate(children):
            try:
                out.append(events.invoke(call, args[i], kwargs[i] if kwargs else {}, sink))
            except Exception as exc:
                out.append(ChildFailed(exc, user_traceback(exc)))
    if len(out) < len(calls):  # given back: a place for each, or a chunk Dask made again
        # giving back earlier than its first run did had no place for a child it kept then
        # (reading its value: "IndexError: list index out of range")
        missing = not_run()
        out += [ChildFailed(missing, str(missing))] * (len(calls) - len(out))
    return out


def not_run() -> RuntimeError:
    """Why a chunk child given back (``dask_chunk_ends``) has no value in its chunk."""
    return RuntimeError("the call did not run: a sibling before it in its Dask chunk held it, "
                        "and the chunk gave it back")


def giving_back(calls: list[TaskCall], sink: events.WorkerSink) -> Iterator[TaskCall]:
    """The calls in turn; once one has run ``GIVE_BACK_AFTER`` (or its timeout, if shorter),
    the client is told at once that the chunk runs none after it (``dask_chunk_ends``), and
    none comes after it: the chunk's values end with its own."""
    first = calls[0]
    running = [0]  # the place of the child running
    given_back: list[int] = []  # the slow child's, once its siblings were given back

    def hold_no_longer() -> None:  # in this chunk's thread, while that child runs on
        if not given_back:
            given_back.append(running[0])
            sink.give_back(first.run_id, first.task_run_id, first.attempt, first.rerun,
                           running[0])

    with waiting_behind(GIVE_BACK_AFTER, hold_no_longer):
        for place, call in enumerate(calls):
            running[0] = place
            yield call
            if given_back:
                return


def chunk_outcomes(values: list[Any], start: int = 0, stop: int | None = None,
                   ) -> list[tuple[bool, BaseException | None, str]]:
    """Each child's (returned, error, traceback), of ``values[start:stop]``."""
    return [(False, _sendable(v.error), v.traceback) if isinstance(v, ChildFailed)
            else (True, None, "") for v in values[start:stop]]


def _sendable(error: BaseException) -> BaseException:
    """``error``, or Dask's own stand-in for an error it cannot move (an ``Exception`` of its
    repr), as ``distributed.core.error_message`` makes for a task alone. This answer travels
    as a value, with no such care: one error that could not be pickled lost the whole answer
    and left the chunk's children Running for good."""
    from distributed.protocol import pickle  # on the worker, where distributed is loaded

    try:
        pickle.loads(pickle.dumps(error))  # type: ignore[no-untyped-call]
    except Exception:
        return Exception(repr(error))
    return error


def report_chunk(
    chunk_future: Any, chunk: list[tuple[TaskCall, DoneCallback]], dispatcher: events.Dispatcher,
    start: int = 0,
) -> None:
    """Each child's Outcome once its chunk ended (in the dispatcher thread; ``start``: the
    first one's place in the chunk's values, when those before it ended earlier). When every
    child returned, their end events (which reach the client before the chunk's own end) say
    so and the engine takes all their outcomes in one step, with no question to the cluster;
    else ``chunk_outcomes``, a second tiny task, says which child failed and why."""
    if chunk_future.status not in FINISHED:
        for call, on_done in chunk:  # the chunk itself failed: a dead worker, a cancel
            report(chunk_future, call, on_done, dispatcher)
        return
    times = dispatcher.ended_all([call for call, _ in chunk])
    if times is not None:
        report_returned([(on_done, started, ended)
                         for (_, on_done), (started, ended) in zip(chunk, times, strict=True)])
        return
    try:
        client = chunk_future.client
        status = client.submit(chunk_outcomes, chunk_future, start, start + len(chunk),
                               key=f"status-{chunk_future.key}")
        watch(client, [(status, lambda done: dispatcher.put(report_failures, done, chunk_future,
                                                            chunk, dispatcher))])
    except Exception as exc:  # the client closed meanwhile: the children must still end
        report_all([(on_done, Outcome(ok=False, error=exc, traceback=str(exc)))
                    for _, on_done in chunk])


def report_failures(
    status: Any, chunk_future: Any, chunk: list[tuple[TaskCall, DoneCallback]],
    dispatcher: events.Dispatcher,
) -> None:
    """Each child's Outcome from ``chunk_outcomes`` (a child of the chunk failed). Without
    that answer (its task's workers died, it was cancelled, it cannot be read here), each
    child's own end event says whether it returned: reported from the chunk's future, which
    finished, the child that failed showed Completed."""
    if status.status not in FINISHED and chunk_future.status not in FINISHED:
        for call, on_done in chunk:
            report(chunk_future, call, on_done, dispatcher)
        return
    outcomes = _answer(status, [call for call, _ in chunk], dispatcher)
    ends: list[tuple[DoneCallback, Outcome]] = []
    for (call, on_done), (ok, error, text) in zip(chunk, outcomes, strict=True):
        started, ended = dispatcher.ended(call)
        ends.append((on_done, Outcome(ok=ok, error=error, traceback=text, started=started,
                                      ended=ended)))
    report_all(ends)


def _answer(status: Any, calls: list[TaskCall], dispatcher: events.Dispatcher,
            ) -> list[tuple[bool, BaseException | None, str]]:
    """``chunk_outcomes``'s answer; without it, each child's end event: a child that did not
    return fails with why the answer is missing."""
    if status.status == "finished":
        try:
            answer: list[tuple[bool, BaseException | None, str]] = status.result()
        except Exception as exc:  # unreadable here (an error's class the kernel lacks)
            missing: Exception = exc
        else:
            # Short when the chunk gave its last children back (``dask_chunk_ends``) and no
            # one here took that news (their run had ended): those never ran (a worker of an
            # older labloom; ``run_chunk`` gives them a place now).
            missing = not_run()
            return answer + [(False, missing, str(missing))] * (len(calls) - len(answer))
    else:
        why = f": {status.exception()!r}" if status.status == "error" else ""
        missing = RuntimeError(f"the call did not return, and Dask could not say why: the "
                               f"task asking it, {status.key!r}, ended {status.status}{why}")
    return [(True, None, "") if returned else (False, missing, str(missing))
            for returned in dispatcher.returned(calls)]


def report(
    future: Any, call: TaskCall, on_done: DoneCallback, dispatcher: events.Dispatcher
) -> None:
    """Turn a finished Dask future into the engine's Outcome (in the dispatcher thread)."""
    started, ended = dispatcher.ended(call)
    status = future.status
    if status in FINISHED:
        on_done(Outcome(ok=True, started=started, ended=ended))
        return
    if status == "cancelled":
        reason = cancel_reason(future)
        if reason in (SCHEDULER_LOST, CLIENT_CLOSED, SCHEDULER_RESTART):
            error: BaseException = scheduler_lost(future.client, call.task_name) if (
                reason != SCHEDULER_RESTART) else restarted(call.task_name)
            on_done(Outcome(ok=False, error=error, traceback=str(error), started=started,
                            ended=ended, infrastructure=True))
            return
        on_done(cancelled(call))
        return
    from distributed import KilledWorker

    error = future.exception()
    if isinstance(error, KilledWorker):
        message = (
            f"the Dask worker running {call.task_name!r} died (killed or out of memory) "
            f"each time Dask tried it ({error}); check the workers' logs and memory limit"
        )
        on_done(Outcome(ok=False, error=WorkerDiedError(message), traceback=message,
                        started=started, ended=ended, infrastructure=True))
        return
    text = user_traceback(error, future.traceback())
    on_done(Outcome(ok=False, error=_import_named(error), traceback=text, started=started,
                    ended=ended))


def _import_named(error: BaseException) -> BaseException:
    """Dask's "Error during deserialization of the task graph" (the scheduler could not
    unpickle a task: a module beside the notebook, a package not installed there) names the
    module only in its cause, which the task run's message did not show."""
    cause = error.__cause__
    if not isinstance(cause, ImportError) or isinstance(error, ImportError):
        return error
    kind = ModuleNotFoundError if isinstance(cause, ModuleNotFoundError) else ImportError
    named = kind(
        f"{cause} on the Dask cluster: its scheduler and workers must import what a task's "
        "code and arguments use. Install it there (the environment the flow runs in), or "
        "define what the task uses in the notebook or the flow's file"
    )
    named.__cause__ = error
    return named


def cancelled(call: TaskCall) -> Outcome:
    from concurrent.futures import CancelledError

    return Outcome(ok=False, error=CancelledError(f"{call.task_name} was cancelled"))


def chunk_not_sent(ends: list[DoneCallback]) -> Callable[[Exception], None]:
    """What tells a chunk's children (their ``on_done``) that it could not be sent."""
    def not_sent(error: Exception) -> None:
        for on_done in ends:
            on_done(Outcome(ok=False, error=error, traceback=str(error)))

    return not_sent


def killed_workers(future: Any) -> bool:
    """Whether Dask gave up on ``future``'s task because the workers running it died."""
    if future.status != "error":
        return False
    from distributed import KilledWorker

    return isinstance(future.exception(), KilledWorker)


def scheduler_lost(client: Any, task_name: str) -> SchedulerLostError:
    if getattr(client, "status", None) in ("closing", "closed"):
        return SchedulerLostError(
            f"the Dask cluster or client of this run was closed while {task_name!r} was queued "
            "or running (cluster.close() or client.close(), in another cell say, or its "
            "scheduler shut down); keep it open until the run ends, or start it again and "
            "retry the run"
        )
    address = getattr(getattr(client, "scheduler", None), "address", None) or "its address"
    return SchedulerLostError(
        f"the Dask scheduler was lost while {task_name!r} was queued or running: the client's "
        f"connection to {address} broke (the scheduler died or the network failed); start the "
        "scheduler or cluster again, then retry the run"
    )


def restarted(task_name: str) -> WorkerDiedError:
    """Dask's "scheduler-restart": every task it held was dropped and its workers restarted."""
    return WorkerDiedError(
        f"the Dask scheduler restarted while {task_name!r} was queued or running "
        "(client.restart(), or Restart in the Dask dashboard or its JupyterLab panel): Dask "
        "dropped every task it held and restarted the workers; retry the run"
    )


def sendable_error(error: BaseException) -> BaseException:
    """``error`` when a Dask worker can receive it (under ``allow_failure``), else a
    ``RuntimeError`` naming it. pickle rebuilds an error by calling its class with its message
    alone: a user's ``APIError(status, body)`` could not be, and Dask's scheduler failed the
    task receiving it, and every task sent with it, with "Error during deserialization of the
    task graph"."""
    import pickle

    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(error))
    except Exception as exc:
        return RuntimeError(
            f"{error_text(error)} [labloom: this error cannot be sent to a Dask worker, as "
            f"pickle cannot rebuild it ({type(exc).__name__}: {exc}); give "
            f"{type(error).__name__}.__init__ defaults for the arguments after the message, "
            "or a __reduce__]")
    return error
