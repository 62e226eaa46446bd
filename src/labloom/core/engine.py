"""The run engine: one ``RunEngine`` per flow run owns its graph (``TaskGraph``), launching,
retries and limits (``Launcher``), its log lines and its event stream, and the run's
lifecycle. Users hold a ``FlowRun`` (``flow_run.py``), a thin handle onto it. Never imports
Jupyter, the store or the CLI (their parts plug in through ``hooks.py``).

Threads: the flow body runs in the driver thread (the caller's, or a background one that the
engine owns and that ends with the run); executor callbacks arrive from any thread. Every
graph change holds ``self.lock``; nothing slow (SQLite, files, submitting) happens under it.
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import at_exit, body_calls, values, waiting
from . import events as ev
from .context import ACTIVE as _ACTIVE
from .executor import Executor
from .flow_retries import FlowAttempts, outcome
from .flow_timeout import FlowClock
from .futures import MappedFuture, TaskFuture, find_futures
from .hooks import Limiter
from .interrupts_held import InterruptsHeld, set_surely, wait_held
from .launching import LAUNCHING, Launcher
from .observers import FailureHooks, run_announced, run_starts
from .restarting import Driver, check_retriable
from .run_logs import RunLogs
from .secrets import recorded_parameters
from .sink_registry import register_local_run, unregister_local_run
from .sinks import ExecutorSink
from .states import State
from .task_graph import TaskGraph
from .task_runs import TaskRun

if TYPE_CHECKING:
    from .flows import Flow
    from .tasks import Task


class RunEngine:
    def __init__(
        self,
        flow: Flow[Any, Any],
        parameters: dict[str, Any],
        executor: Executor,
        origin: str = "script",
        limiter: Limiter | None = None,
        owns_executor: bool = False,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.flow = flow
        self.parameters = parameters
        self.executor = executor
        self.origin = origin
        self.owns_executor = owns_executor
        self.state = State.PENDING
        self.clock = FlowClock(self)  # @flow(timeout=...)
        self.attempts = FlowAttempts(self)  # @flow(retries=...)
        self.message = ""
        self.started: float | None = None
        self.ended: float | None = None
        self.reruns = 0  # ``retry`` calls so far (see ``sinks.SinkOwner.reruns``)
        self.metadata: dict[str, Any] = {}
        self._handle: weakref.ref[Any] | None = None  # the user's FlowRun, set by it
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        # ``_finish`` waits on it, not on ``changed``: each batch of reports wakes those (4
        # wake-ups a Dask task, each taking the lock from the threads applying reports).
        self.all_final = threading.Condition(self.lock)
        self.finished = threading.Event()
        self._finalizing = False  # one thread finalizes (at exit, two may try)
        self.bus = ev.EventBus(history=False, name=f"labloom-events-{self.id}")
        # Bound once (``GraphOwner``): a state change per child goes straight to the bus.
        self.emit, self.emit_all = self.bus.emit, self.bus.emit_all
        self.graph = TaskGraph(self.id, self)
        self.logs = RunLogs()
        self.launcher = Launcher(self, executor, limiter)
        self.results = self.launcher.results
        self.sink = ExecutorSink(self)
        self.body_error: BaseException | None = None
        self._created: ev.RunCreated | None = None
        # Emitted under the lock but `finished` is set later: a subscriber arriving in
        # between must still be replayed the end of the run.
        self._run_finished: ev.RunFinished | None = None
        self.returned: Any = None
        self.released = False  # see ``release``
        self.tracing = False  # Flow.visualize: nothing runs, so nothing may be waited for

    @property
    def handle(self) -> Any:
        """The user's ``FlowRun``, held weakly: letting go of it frees its results."""
        return self._handle() if self._handle is not None else None

    @handle.setter
    def handle(self, run: Any) -> None:
        self._handle = weakref.ref(run)

    # --- events -----------------------------------------------------------------------------

    def subscribe(self, callback: ev.Subscriber, replay: bool = False) -> Callable[[], None]:
        with self.lock:  # nothing is emitted between the account and the subscription
            subscription = self.bus.subscribe(callback, self.events() if replay else False,
                                              now=False)
        subscription.drain()  # the replay, before this returns, outside the run's lock
        return subscription

    def events(self) -> list[ev.Event]:
        """The run so far, as a late subscriber is replayed it: where each task run stands."""
        with self.lock:
            events: list[ev.Event] = []
            if self._created is not None:
                events.append(self._created)
            events += self.graph.snapshot()
            if self._created is not None:
                # A retry's note after the task runs it speaks of: a view applying the
                # replay an event at a time never shows it over the states before it.
                events.append(ev.RunStateChanged(self.id, State.RUNNING, self._created.time,
                                                 self.attempts.note))
            # The calls first: sending those waiting may say a line (late ones, ``_say_late``),
            # which this replay must hold, as the subscriber is added after it is emitted.
            calls = self.sink.experiments  # params and metrics too
            events += [*self.logs.lines, *calls]
            if self._run_finished is not None:
                events.append(self._run_finished)
            return events

    # --- GraphOwner -------------------------------------------------------------------------

    def ready(self, tr: TaskRun) -> None:
        self.launcher.ready(tr)

    def on_final(self, tr: TaskRun) -> None:
        self.launcher.release_slot(tr)
        self.sink.ended(tr)

    def all_closed(self) -> None:
        with self.lock:
            self.all_final.notify_all()

    def split(self, tr: TaskRun) -> list[Any]:
        return self.launcher.lost.split(tr)  # a value lost since: ``lost_inputs.SplitLost``

    def warn(self, tr: TaskRun, message: str) -> None:
        self.sink.warn(tr, message)

    # --- building the graph (from the flow body) --------------------------------------------

    def submit(
        self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
    ) -> TaskFuture[Any]:
        return body_calls.submit(self, task, args, kwargs, wait_for)

    def map(
        self, task: Task[Any, Any], iterables: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
    ) -> MappedFuture[Any]:
        return body_calls.map_calls(self, task, iterables, kwargs, wait_for)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, background: bool = False) -> None:
        # A Ctrl-C anywhere on the way to the run's driver ends it Cancelled (was left Running).
        driver = Driver()  # from when its own thread started, that thread ends the run
        try:
            run_starts(self.handle)  # the store, progress, views: before anything can happen
            started = self._start_executor()
            self._set_run_state(State.RUNNING, self.message if started else "")
            if started:
                self.clock.start()
            if background:
                driver.start(f"labloom-{self.id}", contextvars.copy_context().run, self._drive,
                             started)
            elif not self._drive(started) and self.body_error is not None:
                raise self.body_error  # its executor never started: as it would at once
        except KeyboardInterrupt:
            if self._created is None:
                self._announce()  # recorded, as a run whose executor could not start
            self.cancel("interrupted")
            if driver.thread is None:
                self._finalize()
            raise

    def _start_executor(self) -> bool:
        """Start the executor, announce the run; False: it could not start (a note says why)."""
        try:
            self.executor.start()
        except BaseException as exc:  # a cluster for the run that cannot start: still recorded
            self._announce()
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C while a cluster starts: a cancel
                self.graph.cancelled = self.message = "interrupted"  # (was Failed, "could
                self._finalize()                                     # not start: ")
                raise
            if not self.attempts.could_not_start(exc):
                self._finalize()
                raise
            return False  # its driver tries again at each of the flow's retries, if any
        self._announce()
        return True

    def _announce(self) -> None:
        """The run's own hooks attach, then the run's first event: it exists."""
        self.metadata.update(self.executor.metadata())  # it may ask the cluster: not held
        with InterruptsHeld():  # all of it or none: see interrupts_held.py
            if self.flow.on_failure:
                self.subscribe(FailureHooks(self.handle))
            register_local_run(self.id, self.sink)
            at_exit.track(self.handle)
            self.started = time.time()
            with self.lock:
                self._created = ev.RunCreated(
                    self.id, self.flow.name, recorded_parameters(self.flow.fn, self.parameters),
                    self.executor.describe(),
                    self.origin, socket.gethostname(), self.started, self.flow.source_hash,
                    dict(self.metadata),
                )
                self.emit(self._created)
        run_announced(self.handle, self._created)  # not held: a view's write may block

    def trace(self) -> list[ev.NodeCreated]:
        """Run only the body, with an executor that runs nothing: the graph's nodes."""
        self.tracing, outer = True, _ACTIVE.get()
        try:
            _ACTIVE.set(self)
            self.returned = self.flow.fn(**self.parameters)
        finally:
            _ACTIVE.set(outer)
            self.graph.cancelled = "traced"
        return list(self.graph.nodes)

    def _drive(self, started: bool = True) -> bool:  # False: its executor never started
        try:
            if not started and not self.attempts.start_late():
                self._finalize()
                return False
            self._run_body()
        except KeyboardInterrupt:
            if _ACTIVE.get() is self:  # it landed as the body's ``finally`` began: left set
                _ACTIVE.set(self._outer)
            self.cancel("interrupted")  # (the body's own cancel may have said it)
            # Not ``_finish``: a map's children half added left a count that never reached 0.
            self._finalize()
            raise
        self._finish()
        return True

    def _run_body(self) -> None:
        self._outer = _ACTIVE.get()
        try:
            _ACTIVE.set(self)  # in the ``try``: a Ctrl-C after a set before it left it set
            self.returned = self.flow.fn(**self.parameters)
        except KeyboardInterrupt:
            self.body_error = KeyboardInterrupt()
            _ACTIVE.set(self._outer)
            self.cancel("interrupted")
            raise
        except BaseException as exc:
            self.body_error = exc
            with InterruptsHeld(), self.lock:  # whole, as ``cancel``
                self.graph.cancel(f"not started: the flow body raised {type(exc).__name__}",
                                  started_too=False)
        else:
            found: list[Any] = []
            find_futures(self.returned, found)
            for item in found:
                self.graph.check_owned(getattr(item, "future", item))
        finally:
            if _ACTIVE.get() is self:
                _ACTIVE.set(self._outer)
            self.attempts.body_ended()

    def _finish(self) -> None:
        try:
            # (A local executor's calls run in this thread: it must wake for each launch.)
            until = self.changed if self.executor.runs_in_caller else self.all_final
            self.wait_until(lambda: self.graph.open == 0, None, until)
            while (body_again := self.attempts.again()) is not None:  # @flow(retries=...)
                if body_again:
                    self._run_body()
                self.wait_until(lambda: self.graph.open == 0, None, until)
            self.launcher.lost.at_end(self.task_runs, self.graph.cancelled)  # lost_inputs
        except KeyboardInterrupt:
            self.cancel("interrupted")
            self._finalize()
            raise
        self._finalize()

    def wait_finished(self, timeout: float) -> bool:
        """Wait for the run to be finished and recorded, without driving the executor."""
        return wait_held(self.finished, timeout)  # a Ctrl-C anywhere: see interrupts_held

    def finish_now(self) -> None:
        """Finish a cancelled run from this thread (at process exit: its own may be stuck)."""
        self._finalize()

    def _finalize(self) -> None:
        learned = self.executor.metadata()  # outside the lock: it may ask the cluster
        learned.update(self.attempts.facts())
        mine = False  # this call ends the run: ``finished`` is then set, however it goes
        try:
            with InterruptsHeld():  # decided, said and let go of, whole: interrupts_held.py
                with self.lock:
                    if self.finished.is_set() or self._finalizing:
                        return
                    self._finalizing = mine = True
                    changed = {k: v for k, v in learned.items() if self.metadata.get(k) != v}
                    self.metadata.update(changed)
                    self.launcher.stop_timers()
                    self.clock.stop()
                    state, message = outcome(self)
                    self.message = self.attempts.final_message(state, message)
                    self.sink.flush()  # the logging calls still waiting, before the run's end
                    self.ended, self.state = time.time(), state
                    self._run_finished = ev.RunFinished(self.id, state, self.ended, self.message,
                                                        dict(self.metadata) if changed else {})
                    self.emit(self._run_finished)
                self.launcher.given_back()  # slots of the last task runs, by any thread
                self.bus.close()
                unregister_local_run(self.id)
                at_exit.untrack(self.handle)
                self.executor.run_ended(self.id)
        finally:
            if mine:
                try:  # (a cluster of its own closing: a Ctrl-C may cut that short)
                    if self.owns_executor:
                        self.executor.shutdown()
                finally:
                    set_surely(self.finished, self.lock, self.changed.notify_all)

    def _set_run_state(self, state: State, message: str | None = None) -> None:
        self.state = state
        said = self.message if message is None else message
        self.emit(ev.RunStateChanged(self.id, state, time.time(), said))

    def cancel(self, reason: str) -> None:
        with InterruptsHeld(), self.lock:  # whole: a task run's end cut short holds a slot
            if self.finished.is_set() or self.graph.cancelled is not None:
                return
            self.graph.cancelled = reason
            self.message = reason
            launched = self.graph.cancel(reason, started_too=True)
            self.launcher.stop_timers()
            handles = [tr.handle for tr in launched if tr.handle is not None]
            self.changed.notify_all()
        self.executor.cancel([h for h in handles if h is not LAUNCHING])
        self.launcher.work()

    def retry(self, background: bool) -> None:
        restarted, driver = False, Driver()
        try:
            # Whole or not at all (restarting.py): ``finished.clear()`` takes the event's lock
            # in Python, ``bus.reopen()`` starts the delivery threads.
            with InterruptsHeld(), self.lock:
                check_retriable(self)
                self.finished.clear()
                self._finalizing = False
                self.graph.cancelled = None
                self.message = ""
                self.ended = None
                self.reruns += 1
                self.attempts.start_over()
                self._run_finished = None
                self.bus.reopen()
                register_local_run(self.id, self.sink)
                at_exit.track(self.handle)
                self._set_run_state(State.RUNNING)
                self.graph.reset_bad(self.sink.forget_values, self.launcher.lost)
                restarted = True
            self.clock.start()
            self.launcher.work()
            if background:
                driver.start(f"labloom-{self.id}", self._finish)
            else:
                self._finish()
        except KeyboardInterrupt:
            if restarted:  # Running again: ended here, unless its own thread does
                self.cancel("interrupted")
                if driver.thread is None:
                    self._finalize()
            raise

    # --- waiting and results ----------------------------------------------------------------

    def wait(self, timeout: float | None) -> State:
        return waiting.wait_for_end(self, timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None,
                   woken_by: threading.Condition | None = None) -> bool:
        return waiting.wait_until(self, predicate, timeout, woken_by or self.changed)

    def result_of(self, tr: TaskRun, timeout: float | None) -> Any:
        return values.value_of(self, tr, timeout)

    def results_of(self, runs: list[TaskRun], timeout: float | None) -> list[Any]:
        return values.values_of(self, runs, timeout)

    def result(self, timeout: float | None) -> Any:
        self.wait(timeout)
        if not self.finished.is_set():
            raise TimeoutError(f"flow run {self.id} is still {self.state} after {timeout}s")
        return values.flow_value(self, self.returned)

    def task_runs(self) -> list[TaskRun]:
        with self.lock:
            return list(self.graph.task_runs)

    def release(self) -> None:
        values.release(self)  # the user let go of the run
