"""The executor interface: the only thing the engine knows about where tasks run.

The engine decides *when* a task run may start (its upstreams finished, a concurrency slot is
free); the executor decides *where* it runs. Three kinds of reference cross this line:

- a ``handle``: what ``submit`` returns; the engine keeps it per task run;
- a value reference (``value_ref(handle)``): what a downstream task receives as its argument.
  Locally that is the value itself; on Dask it is the Dask future, so data moves worker to
  worker and the kernel never holds it;
- an ``Outcome``: what ``on_done`` reports when the call ends (no data, only the verdict).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from .attempt import TaskCall


@dataclass
class Outcome:
    ok: bool
    error: BaseException | None = None
    traceback: str = ""
    # Worker-side start and end (time.time()); 0.0 when unknown.
    started: float = 0.0
    ended: float = 0.0
    # True when the failure is the infrastructure's (a killed worker), not the task's code.
    infrastructure: bool = False


DoneCallback = Callable[[Outcome], None]
# One call as ``Executor.submit_all`` takes it: the call, its arguments, what to do at its end.
Submission = tuple["TaskCall", tuple[Any, ...], dict[str, Any], DoneCallback]


def report_all(ends: Sequence[tuple[DoneCallback, Outcome]]) -> None:
    """Several calls ended at once (a Dask chunk's children): the callbacks the engine gave
    (``call_reports.Done``) take their run's outcomes in one step, under its lock once and with
    one wake-up of its waiters, instead of one step per call; any other is called alone."""
    runs: dict[int, tuple[Any, list[tuple[Any, Outcome]]]] = {}
    for on_done, outcome in ends:
        launcher = getattr(on_done, "launcher", None)
        if launcher is None:
            on_done(outcome)
        else:
            runs.setdefault(id(launcher), (launcher, []))[1].append((on_done, outcome))
    for launcher, items in runs.values():
        launcher.outcomes(items)


def report_returned(returns: Sequence[tuple[DoneCallback, float, float]]) -> None:
    """Several calls returned at once (a Dask chunk's children), as (``on_done``, started,
    ended): as ``report_all`` with a successful ``Outcome`` each, without making one per
    call, and the calls of one run are one report to it (``Launcher.returned``)."""
    runs: dict[int, tuple[Any, list[tuple[Any, int, int, float, float]]]] = {}
    for on_done, started, ended in returns:
        launcher = getattr(on_done, "launcher", None)
        if launcher is None:
            on_done(Outcome(ok=True, started=started, ended=ended))
        else:
            runs.setdefault(id(launcher), (launcher, []))[1].append(
                (on_done.tr, on_done.attempt, on_done.rerun,  # type: ignore[attr-defined]
                 started, ended))
    for launcher, items in runs.values():
        launcher.returned(items)


def check_mappable(value: Any) -> None:
    """A map over a task's result refuses a string, as a map over a literal one does
    (``mapping.map_source``): its items would be characters, never what was meant."""
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"it is a {type(value).__name__}, and mapping would iterate its characters; "
            "return a list of strings, or give the value whole to every run with "
            "unmapped(future)"
        )


class Executor(ABC):
    """Runs task calls. Subclasses: LocalExecutor, ThreadExecutor, DaskExecutor."""

    name: str = "executor"
    # Whether a call that started reports its end (``on_done``) also after its run cancelled
    # it: its concurrency slots are then given back at that end, not at the cancel.
    reports_cancelled_calls: bool = False
    # Whether each attempt of a call runs once, in a thread of the run's own process: its
    # logging calls then skip the run's inbox (``waiting_calls.py``). Not Dask's, which runs an
    # attempt again when its worker is lost: the calls of the new run must come after its
    # start, which drops the lost run's (``ExecutorSink._started``), as the inbox orders them.
    runs_each_attempt_once_here: bool = False

    @property
    def runs_in_caller(self) -> bool:
        """Whether calls run in the thread that waits for the run: that thread must then wake
        for every launch, not only when the run's last task run ends. Any executor that
        overrides ``run_pending`` does (the local one; a user's, written without it)."""
        return type(self).run_pending is not Executor.run_pending

    def start(self) -> None:  # noqa: B027 - optional hook
        """Called once before a run submits anything (start pools, connect clients)."""

    @abstractmethod
    def submit(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_done: DoneCallback,
        resources: dict[str, float] | None = None,
    ) -> Any:
        """Start ``call(*args, **kwargs)`` soon; call ``on_done`` from any thread when it ends."""

    def submit_all(self, calls: Sequence[Submission], resources: dict[str, float] | None,
                   handles: list[Any]) -> None:
        """``submit`` each of ``calls`` (asking the same ``resources``), appending each one's
        handle to ``handles`` as it goes: if this raises, the calls with a handle were
        submitted and the rest were not. Executors that can share the work of a block of
        calls (a map's children) do it once."""
        for call, args, kwargs, on_done in calls:
            handles.append(self.submit(call, args, kwargs, on_done, resources))

    @abstractmethod
    def value_ref(self, handle: Any) -> Any:
        """What a downstream call receives for this (successful) task run."""

    def failure_ref(self, error: BaseException) -> BaseException:
        """What a downstream call under ``allow_failure`` receives for a failed task run's
        error: the error itself, unless the executor must send it elsewhere (Dask)."""
        return error

    @abstractmethod
    def result(self, handle: Any, timeout: float | None = None) -> Any:
        """Bring the value of a successful task run to the caller."""

    def results(self, handles: list[Any]) -> list[Any]:
        """Values of several successful task runs (executors that can, fetch them at once)."""
        return [self.result(handle) for handle in handles]

    def settled(self, handle: Any) -> Any:
        """What the engine keeps, from now on, of a successful call's ``handle`` (what
        ``value_ref``, ``result`` and ``split`` are given later): the handle itself unless the
        executor has something smaller (in-process executors: the value; a million finished
        task runs then hold no handle object each)."""
        return handle

    def lost(self, handle: Any) -> bool:
        """Whether a successful call's value is gone from where it was kept (a Dask cluster
        restarted since): a retry of the run runs that task run again."""
        return False

    def remade_failed(self, handle: Any) -> BaseException | None:
        """Why a successful call's value is gone for good, if it is: it was lost (a Dask worker
        died holding it), the executor ran the call again to make it, and that run raised this
        (``lost_inputs``). None for a value that is there, or being made again."""
        return None

    def losses(self) -> int:
        """How many values its cluster said lost so far (a Dask worker holding them died):
        a run's end looks for its own only when this changed while it ran (``lost_inputs``)."""
        return 0

    def settle_lost(self, handles: list[Any]) -> list[Any]:
        """Of ``handles`` (successful calls'), those whose value was lost since, once the
        executor's new runs of them ended (a bounded wait); ``remade_failed`` says the rest."""
        return []

    def split(self, handle: Any) -> list[Any]:
        """Value references for the items of a finished task run's (iterable) result."""
        value = self.result(handle)
        check_mappable(value)
        return list(value)

    def cancel(self, handles: Sequence[Any]) -> None:  # noqa: B027 - optional hook
        """Best effort: stop calls not yet started. Running calls may finish."""

    def run_pending(self) -> bool:
        """Run one queued call in the calling thread, if this executor queues any.

        The engine calls this while it waits, so the local executor runs tasks in the thread
        that waits for them (a debugger, a signal handler and ``KeyboardInterrupt`` see them).
        Returns False when there was nothing to run.
        """
        return False

    def room(self) -> int | None:
        """How many more calls are worth submitting now; None: any number. An executor that
        queues calls in this process says, and the engine keeps the rest as ready task runs
        (a queued call costs far more memory than a task run waiting, and runs no sooner).
        Read under the run's lock (threads launching at once take the room once between
        them): answer at once, without waiting or calling into the run."""
        return None

    def run_ended(self, run_id: str) -> None:  # noqa: B027 - optional hook
        """A run that used this executor ended: drop what was kept for it alone."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` took and stop this executor's threads; the engine calls it
        for executors it created, the user for executors they made (or ``with``)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def metadata(self) -> dict[str, Any]:
        """Facts for views (Dask adds its dashboard link)."""
        return {}

    def describe(self) -> str:
        return self.name


class PlanningExecutor(Executor):
    """Runs nothing: ``Flow.visualize`` traces a flow body's graph with it."""

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
