"""A task that raises a BaseException which is not an Exception (``sys.exit()``,
``KeyboardInterrupt``, ``asyncio.CancelledError``, a subclass of its own) ends its task run
Failed, naming it, on every executor; the flow ends and its call raises ``FlowFailed``. Before,
the thread executor left the run Running forever and Dask workers died one after another.

The one exception: on the local executor, in the foreground, a task runs in the caller's main
thread, where Python delivers Ctrl-C; a KeyboardInterrupt there cancels the run as Ctrl-C does.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

import pytest

import labloom
from labloom import FlowFailed, State, TaskCrashedError, flow, task
from run_helpers import runs_started

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of the suite


class Abort(BaseException):
    """Libraries define these to get past ``except Exception``."""


def _exit() -> None:
    sys.exit(3)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _cancelled() -> None:
    raise asyncio.CancelledError()


def _abort() -> None:
    raise Abort("stop everything")


KINDS: dict[str, tuple[Callable[[], None], str]] = {
    "sys.exit": (_exit, r"raised SystemExit: 3 "),
    "KeyboardInterrupt": (_interrupt, r"raised KeyboardInterrupt "),
    "CancelledError": (_cancelled, r"raised CancelledError "),
    "BaseException subclass": (_abort, r"raised Abort: stop everything "),
}


def _flow(kind: str, executor: object, timeout: float | None) -> labloom.Flow[[], object]:
    raise_it = KINDS[kind][0]

    @task(retries=2, timeout=timeout)
    def crashes() -> int:
        raise_it()
        return 1

    @task
    def sibling() -> str:
        return "ran"

    @flow(executor=executor)
    def f() -> object:
        return crashes(), sibling()

    return f


def _check(run: labloom.FlowRun, kind: str) -> None:
    assert run.wait(timeout=30) is State.FAILED
    crashed = next(tr for tr in run.tasks if tr.task.name == "crashes")
    assert crashed.state is State.FAILED
    assert crashed.attempts == 1  # not retried, although retries=2
    assert isinstance(crashed.error, TaskCrashedError)
    assert crashed.message.startswith("TaskCrashedError: task 'crashes' " + KINDS[kind][1])
    assert KINDS[kind][0].__name__ in crashed.traceback  # the task's own frames
    assert next(tr for tr in run.tasks if tr.task.name == "sibling").state is State.COMPLETED


@pytest.mark.parametrize(
    ("executor", "kind", "timeout"),
    [
        pytest.param(executor, kind, timeout, id=f"{executor}-{kind}-{timeout or 'no'}-timeout")
        for executor in ("threads", "local")
        for kind in sorted(KINDS)
        for timeout in (None, 30.0)
        # in the caller's thread, where Ctrl-C lands: the test after this one
        if (executor, kind, timeout) != ("local", "KeyboardInterrupt", None)
    ],
)
def test_a_base_exception_fails_its_task_run_and_the_flow(
    executor: str, kind: str, timeout: float | None
) -> None:
    f = _flow(kind, executor, timeout)
    with runs_started() as runs, pytest.raises(FlowFailed, match=KINDS[kind][1]):
        f()
    _check(runs[0], kind)


def test_keyboard_interrupt_in_a_local_task_cancels_the_run_as_ctrl_c_does() -> None:
    f = _flow("KeyboardInterrupt", "local", None)
    with runs_started() as runs, pytest.raises(KeyboardInterrupt):
        f()
    (run,) = runs
    assert run.wait(timeout=60) is State.CANCELLED  # a guard
    assert run.message == "interrupted"


def test_keyboard_interrupt_in_a_background_local_run_fails_the_task() -> None:
    # A background run's thread is not the main thread: no Ctrl-C can land there.
    run = _flow("KeyboardInterrupt", "local", None).run(background=True)
    _check(run, "KeyboardInterrupt")
    assert threading.current_thread() is threading.main_thread()


def test_the_error_survives_a_trip_through_pickle() -> None:
    import pickle

    error = TaskCrashedError("task 'x' raised SystemExit: 1", "SystemExit", "Traceback ...")
    back = pickle.loads(pickle.dumps(error))
    assert (str(back), back.kind, back.task_traceback) == (str(error), "SystemExit", "Traceback ...")



@pytest.mark.parametrize("timeout", [None, 30.0], ids=["no-timeout", "timeout"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_on_dask_the_task_run_fails_and_the_worker_lives(one_worker_cluster, kind: str, timeout) -> None:  # type: ignore[no-untyped-def]
    from distributed import Client

    with Client(one_worker_cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        executor = labloom.DaskExecutor(client=client)
        run = _flow(kind, executor, timeout).run()
        with pytest.raises(FlowFailed, match=KINDS[kind][1]):
            run.result()
        _check(run, kind)
        # the worker that ran it is the same one: it was not killed (nor restarted)
        assert set(client.scheduler_info()["workers"]) == workers
        executor.shutdown()


class _Unprintable(Exception):
    """A library's error whose ``__str__`` reads what its ``__init__`` did not set."""

    def __str__(self) -> str:
        return f"status {self.status}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("executor", ["threads", "local"])
def test_an_error_that_cannot_be_printed_fails_its_task_run(executor: str) -> None:
    # Its message was made in the engine's report of the attempt: the AttributeError there
    # left the run Running forever on threads, and came out of the flow's call on local.
    @task(retries=1)
    def fetch() -> int:
        raise _Unprintable()

    @flow(executor=executor)
    def f() -> int:
        return fetch()

    with runs_started() as runs, pytest.raises(FlowFailed, match="_Unprintable"):
        f()
    (run,) = runs
    assert run.wait(timeout=30) is State.FAILED
    (tr,) = run.tasks
    assert tr.state is State.FAILED and tr.attempts == 2
    assert tr.message.startswith("_Unprintable: <unprintable: AttributeError")
