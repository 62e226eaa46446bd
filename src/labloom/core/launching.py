"""Launching inside one flow run: concurrency slots, the call each launch submits (handed to
the executor by ``handing_over.py``), what an executor's outcome means (done, retry, failed)
and the retry timers.

``Launcher`` belongs to a ``RunEngine``. Graph decisions happen under the engine's lock; slot
requests (SQLite), result-file lookups and ``executor.submit`` happen outside it, in
``work()``, which every entry point of the engine calls after it lets go of the lock.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .attempt import still_running
from .call_reports import Done, is_stale
from .errors import TaskCrashedError, UpstreamFailedError, error_text
from .executor import Executor, Outcome
from .futures import MappedFuture, allow_failure, replace_futures
from .handing_over import Launched, Prepared, submit_all
from .hooks import Limiter, executor_limiter, hooks
from .inbox import Inbox
from .interrupts_held import InterruptsHeld
from .late_slots import LateSlots
from .logs import prints_shown_elsewhere
from .lost_inputs import LostValues, lost_input, lost_input_error
from .results import ResultPlanner
from .retry_policy import why_not_retried
from .state_blocks import Change, set_states
from .states import State
from .task_runs import TaskRun

if TYPE_CHECKING:
    from .engine import RunEngine
    from .task_graph import Finished


# Task runs launched per hold of the run's lock (and per look at the store's pace).
LAUNCH_BLOCK = 256
# Seconds a finishing run waits for another thread's give-back of a slot (a store write); a
# store that hangs must not hang the run's end: a stale holder is swept by its heartbeat.
RELEASE_WAIT = 10.0


class _Launching:
    """Stands in for a task run's handle while its call is being submitted."""


LAUNCHING = _Launching()


class Launcher:
    def __init__(
        self, engine: RunEngine, executor: Executor, limiter: Limiter | None = None
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.limiter = limiter if limiter is not None else executor_limiter(
            executor, connect=not engine.flow.retries)  # see ``FlowAttempts.could_not_start``
        self.results = ResultPlanner(engine)
        self._ready: deque[TaskRun] = deque()
        # Slots to give back, by task run id: a task run is queued once (``release_slot``
        # asked a scan of a queue before), and a store of an id is one step, which a Ctrl-C
        # cannot cut in two as it could a queue and a set of ids kept beside it.
        self._releases: dict[str, TaskRun] = {}
        self._early: dict[str, tuple[int, int, Outcome]] = {}
        self._timers: dict[str, threading.Timer] = {}
        # Room in the executor's queue taken by a ``work`` call and not yet submitted: several
        # threads run ``work`` at once (each applies end reports), and each took the whole
        # room before (the queue held 2,400-3,800 calls against 1,000).
        self._reserved = 0
        self._releasing: set[str] = set()  # slots taken off ``_releases``, not yet given back
        self.late = LateSlots()  # slots a call still running keeps (``late_slots``)
        self.lost = LostValues(executor, self._say_in_logs, self.results.notes)
        # Executors' reports (started, ended), applied in order and in batches (``inbox.py``).
        self.inbox = Inbox(engine.lock, engine.changed, self.work, engine.bus.holder)
        self.inbox.launch_from(self._ready, self._releases)  # what ``work`` takes

    # --- under the engine's lock ------------------------------------------------------------

    def ready(self, tr: TaskRun) -> None:
        self._ready.append(tr)

    def release_slot(self, tr: TaskRun) -> None:
        if tr.holds_slot:
            # Queued before the flag goes: a Ctrl-C between the two (``TaskGraph.cancel``
            # repairs an end it cut short) leaves it queued once, not lost.
            if (tr.state is not State.CANCELLED or tr.started is None or tr.id in self._timers
                    or not self.executor.reports_cancelled_calls
                    or self.late.keep(tr.id, tr.attempts, self.engine.reruns)):
                self._releases[tr.id] = tr  # once, if queued already
            tr.holds_slot = False

    def stop_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def outcome(self, tr: TaskRun, attempt: int, rerun: int, outcome: Outcome) -> None:
        """An attempt ended (the engine holds its lock)."""
        graph = self.engine.graph
        if is_stale(tr, attempt, rerun, self.engine.reruns):
            # Ended meanwhile, superseded, or a cancelled call of an earlier rerun: dropped. Its
            # value stays in its handle, which the task run no longer holds (a rerun reset it).
            if self.late.call_ended(tr.id, attempt, rerun):  # a cancelled call returned
                self._releases[tr.id] = tr
            return
        if tr.handle is LAUNCHING:
            self._early[tr.id] = (attempt, rerun, outcome)  # submit() has not returned yet
            return
        if outcome.started and tr.started is None:
            tr.started = outcome.started
        if outcome.ok:
            tr.handle = self.executor.settled(tr.handle)
            state, note = self.results.finished(tr)
            graph.set_final(tr, state, note, when=outcome.ended or None)
            graph.settle([tr])
            return
        if self.results.load_failed(tr, outcome):
            tr.attempts -= 1  # reading a stored result is not an attempt of the task
            # Nor a start: the call launched again starts it (``ExecutorSink._started`` took a
            # second start of a started attempt for a Dask worker lost, and said so).
            tr.started = None
            self._ready.append(tr)
            return
        error = outcome.error
        # A value it needs went, and could not be made again: ``lost_inputs``.
        gone = lost_input(tr, self.executor.remade_failed)
        if gone is not None:
            up, why = gone
            self.lost.failed_for(tr, up, why)
            error = lost_input_error(tr, up, why)
        message = error_text(error) if error is not None else "failed"
        traceback = hooks.traceback_text(outcome.traceback) if outcome.traceback else ""
        retry = (not isinstance(error, TaskCrashedError)  # sys.exit() and the like mean stop
                 and gone is None  # its input is gone for every try
                 and tr.attempts <= tr.task.retries and graph.cancelled is None)
        why_not = why_not_retried(tr.task.retry_on, error) if retry else ""
        if why_not:  # said in its logs: retries=3 and no retry would puzzle
            retry = False
            self._say_in_logs(tr, f"attempt {tr.attempts} of {tr.task.retries + 1} failed, "
                                  f"{why_not}")
        running = still_running(error) if tr.holds_slot else None  # keeps it (``late_slots``)
        if retry:
            delay = tr.task.delay_before(tr.attempts + 1)
            if running is None:
                self.release_slot(tr)
            which = f"attempt {tr.attempts} of {tr.task.retries + 1}"
            graph.set_state(tr, State.RETRYING, f"{message} ({which}; retrying in {delay:g}s)",
                            traceback=traceback)
            # Between the failed attempt's lines and the next one's, in its logs only (the
            # console says "Retrying" already): a task run that ends Completed still tells, in
            # every view of its logs, why an attempt failed.
            self._say_in_logs(tr, f"{which} failed; retrying in {delay:g}s\n"
                                  f"{traceback.rstrip() or message}")
            timer = threading.Timer(delay, self._retry_due, args=(tr, attempt, running))
            timer.daemon = True
            self._timers[tr.id] = timer
            timer.start()
            return
        tr.error = error
        if running is not None:  # given back when the call returns, not now (``on_final``)
            tr.holds_slot = False
            self.late.keep_until_returned(running, self.limiter, tr.task.tags, tr.id, attempt,
                                          rerun)
        graph.set_final(tr, State.FAILED, message, traceback=traceback)
        graph.settle([tr])

    def _say_in_logs(self, tr: TaskRun, text: str) -> None:
        """A line of labloom's in ``tr``'s logs only (the console has its progress lines)."""
        self.engine.sink.task_log(self.engine.id, tr.id, logging.WARNING, time.time(),
                                  f"[labloom] {text}")

    def _retry_due(self, tr: TaskRun, attempt: int, running: Any = None) -> None:
        if running is not None:  # the retry takes the slot once the timed-out call returned
            running.when_ended(functools.partial(self._retry_due, tr, attempt))
            return
        with self.engine.lock:
            self._timers.pop(tr.id, None)
            if tr.done or tr.attempts != attempt:
                return
            self._ready.append(tr)
        self.work()

    # --- outside the lock -------------------------------------------------------------------

    def work(self) -> None:
        """Give back slots, ask for slots and launch what is ready, until nothing is left."""
        lock = self.engine.lock
        while True:
            if self._releases:
                self._give_back()
            with lock:  # the room is read and taken at once: the rest wait, launched as calls end
                ready_n = len(self._ready)
                if not ready_n:
                    # Nothing to launch, the most common case (a small run calls ``work``
                    # after about every task run's end): the room unasked.
                    if self._releases:
                        continue  # queued meanwhile
                    return
                room = self.executor.room()
                take = ready_n if room is None else min(ready_n, room - self._reserved)
                if take <= 0:
                    if self._releases:
                        continue
                    return
                ready = [self._ready.popleft() for _ in range(take)]
                if self._releasing and ready:
                    # A slot another thread is still giving back: that thread asks for it
                    # again once done (its loop reads ``_ready`` again). Asked first, the late
                    # give-back dropped the new place in the line, and the map stalled.
                    waits = [tr for tr in ready if tr.id in self._releasing]
                    if waits:
                        ready = [tr for tr in ready if tr.id not in self._releasing]
                        self._ready.extend(waits)
                if not ready:
                    return
                take = len(ready)
                self._reserved += take
            submitted = 0  # reservations ``_launch`` gave back as it submitted
            try:
                for first in range(0, len(ready), LAUNCH_BLOCK):
                    self.engine.bus.pace()  # the store keeps up, or memory grows with its queue
                    block: list[TaskRun] = []
                    for tr in ready[first:first + LAUNCH_BLOCK]:
                        if not tr.holds_slot and self.late.take_over(tr.id):
                            tr.holds_slot = True  # a rerun: its old call's slots are its own
                        if tr.holds_slot or not tr.task.tags:
                            block.append(tr)
                        else:
                            self._ask_slot(tr)
                    submitted += self._launch_all(block)
            finally:
                # What was not submitted (waits for a slot, ended meanwhile, or an error) goes
                # back; this thread then reads the room again, so nothing ready is left waiting.
                if take > submitted:
                    with lock:
                        self._reserved -= take - submitted

    def _give_back(self) -> None:
        """Give back the slots queued by ended task runs, whole: interrupts held (in the main
        thread), as a Ctrl-C after they were taken off the queue lost them, and every later
        run behind the limit waited for ever (tests/test_interrupt_slots.py). The store's
        give-back is one short write: ``_finalize`` waits for it held too (``given_back``)."""
        lock = self.engine.lock
        with InterruptsHeld():
            with lock:
                releases = list(self._releases.values())
                self._releases.clear()
                released = [tr.id for tr in releases]
                self._releasing.update(released)
            try:
                for tr in releases:
                    self.limiter.release(tr.task.tags, tr.id)
            finally:
                with lock:
                    self._releasing.difference_update(released)
                    self.engine.changed.notify_all()  # ``given_back`` may wait

    def given_back(self, timeout: float = RELEASE_WAIT) -> None:
        """Give back the slots of the ended task runs, and wait (at most ``timeout`` s) for
        those another thread is giving back: a run is not finished while the store still shows
        its slots held (the next run of the same limit would wait for them). Reports a Ctrl-C
        left unapplied are applied first: a call's end gives back what its cancel kept."""
        self.inbox.drain()
        if self._early:  # outcomes a Ctrl-C left before ``_apply_early`` took them
            with self.engine.lock:
                for tr in [tr for tr in self.engine.graph.task_runs if tr.id in self._early]:
                    self._apply_early(tr, None)
        self.work()
        deadline = time.monotonic() + timeout
        with self.engine.lock:
            while self._releasing and time.monotonic() < deadline:
                self.engine.changed.wait(0.05)

    def _ask_slot(self, tr: TaskRun) -> None:
        """Ask for ``tr``'s slots: granted now, or later (``_granted``). A Ctrl-C meanwhile
        gives back what the limiter took: landing as the store's take committed, or before the
        grant was noted, it left the slot taken for good (tests/test_interrupt_dask_slots.py)."""
        try:
            if self.limiter.acquire(tr.task.tags, tr.id, functools.partial(self._granted, tr)):
                self._granted(tr, now=True)
        except KeyboardInterrupt:
            if not tr.holds_slot:
                self.limiter.release(tr.task.tags, tr.id)
            raise

    def _granted(self, tr: TaskRun, now: bool = False) -> None:
        with self.engine.lock:
            if tr.done:
                self._releases[tr.id] = tr
            else:
                tr.holds_slot = True
                self._ready.append(tr)
        if not now:
            self.work()

    def _launch_all(self, trs: list[TaskRun]) -> int:
        """Submit the calls of ``trs``; returns how many gave back the room ``work`` reserved
        (their calls are then in the executor's queue, or ended). The run's lock is taken twice
        per block, not twice per task run, and its waiters woken once (a map's children)."""
        if not trs:
            return 0
        engine = self.engine
        prepared: Prepared = []
        with engine.lock:
            rerun = engine.reruns  # read with the attempts: the calls carry both
            for tr in trs:
                if tr.done or tr.handle is LAUNCHING:
                    continue
                tr.attempts += 1
                if tr.attempts > 1:
                    # A retry starts over: what the attempts before logged goes now, not at
                    # their failure, so the row (and its metrics that say why it failed)
                    # stays while it waits out ``retry_delay``, and for good if the run is
                    # cancelled meanwhile. Their calls came before their ends, applied.
                    engine.sink.forget_values(tr.id)
                args, kwargs = tr.inputs()
                if tr.upstream:  # arguments may hold futures: swap them for executor-side refs
                    args = replace_futures(args, self._argument_value)
                    kwargs = replace_futures(kwargs, self._argument_value)
                tr.handle = LAUNCHING
                prepared.append((tr, tr.attempts, args, kwargs))
        echo = not prints_shown_elsewhere(engine.id)
        launched: Launched = []
        submitted = False
        try:
            submit_all(self, prepared, rerun, echo, launched)
            submitted = True
        finally:  # a KeyboardInterrupt: what was not submitted has no handle (the run cancels)
            launched += [(tr, attempt, None, None)
                         for tr, attempt, _, _ in prepared[len(launched):]]
            stale: list[Any] = []
            with engine.lock:
                if submitted:  # else ``work`` gives back the whole block's room, as it raises
                    self._reserved -= len(launched)
                for tr, attempt, handle, early in launched:
                    # (Cancelled, finished and rerun meanwhile: the rerun's launch owns it.)
                    if tr.attempts == attempt and rerun == engine.reruns \
                            and tr.handle is LAUNCHING:
                        tr.handle = handle
                    if tr.done and handle is not None:
                        stale.append(handle)
                    if early is not None or self._early:
                        self._apply_early(tr, early)
                engine.changed.notify_all()
            if stale:
                self.executor.cancel(stale)  # cancelled while they were being submitted
        return len(launched)

    def _apply_early(self, tr: TaskRun, early: tuple[int, int, Outcome] | None) -> None:
        """The outcome reported while ``tr``'s call was being submitted, taken and applied
        whole (interrupts held; few calls end before their submit returns): a Ctrl-C between
        lost a returned call's end, and the slot its run's cancel kept for the call was taken
        for good (tests/test_interrupt_slots.py)."""
        with InterruptsHeld():
            early = (self._early.pop(tr.id, None) if self._early else None) or early
            if early is not None:
                self.outcome(tr, *early)

    def returned(self, items: list[tuple[TaskRun, int, int, float, float]]) -> None:
        """Calls that returned (``executor.report_returned``): (task run, attempt, rerun,
        started, ended) each, one report applied in one step."""
        self.inbox.put(self._returned, items)

    def _returned(self, items: list[tuple[TaskRun, int, int, float, float]]) -> None:
        """``outcome`` of a successful call for each, under the engine's lock, the ends
        settled together (in order: the first's consequences first, as one by one)."""
        graph, settled, finished = self.engine.graph, self.executor.settled, self.results.finished
        ended: Finished = []
        # The usual end, set together after the loop (``state_blocks``): a cached child's
        # event may go before an earlier child's, never before its own start; settled in order.
        completed: list[Change] = []
        reruns = self.engine.reruns
        for tr, attempt, rerun, started, when in items:
            if is_stale(tr, attempt, rerun, reruns):
                continue
            if tr.handle is LAUNCHING:
                self.outcome(tr, attempt, rerun, Outcome(ok=True, started=started, ended=when))
                continue
            if started and tr.started is None:
                tr.started = started
            tr.handle = settled(tr.handle)
            state, note = finished(tr)
            if state is State.COMPLETED and not note:
                completed.append((tr, tr.id, when or time.time()))
            else:
                graph.set_final(tr, state, note, when=when or None)
            ended.append(tr)
        set_states(graph, completed, State.COMPLETED, final=True)
        ended.reverse()  # ``settle`` takes the last first
        graph.settle(ended)

    def outcomes(self, items: list[tuple[Done, Outcome]]) -> None:
        """Several attempts ended (``executor.report_all``): applied together, in order."""
        self.inbox.put_all([(self.outcome, (done.tr, done.attempt, done.rerun, outcome))
                            for done, outcome in items])

    def _argument_value(self, item: Any) -> Any:
        """What a launched call receives in place of a future (executor-side reference)."""
        allowed = isinstance(item, allow_failure)
        future = item.future if allowed else item
        if isinstance(future, MappedFuture):
            return [self._child_value(child, allowed) for child in future.node.children]
        return self._child_value(future.task_run, allowed)

    def _child_value(self, tr: TaskRun, allowed: bool) -> Any:
        if tr.state.is_success:
            return self.executor.value_ref(tr.handle)
        if allowed:
            if tr.error is not None:
                return self.executor.failure_ref(tr.error)
            return UpstreamFailedError(f"{tr.name} ended {tr.state}: {tr.message}")
        raise AssertionError(f"{tr.name} is {tr.state}, yet a dependent was launched")
