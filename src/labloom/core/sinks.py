"""The engine's side of where task calls report: ``ExecutorSink``, what executors report
about one run's task runs in the process that runs its engine. Which sink a call reports to
is ``sink_registry.py``'s (a Dask worker imports that, not this)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from . import events as ev
from .call_reports import is_stale, not_recorded
from .experiments import RESET
from .logs import outside_task
from .process_log import warn_later
from .run_logs import MAX_TASK_LINES, RunLogs
from .state_blocks import Change, set_states, started_again
from .states import State
from .threading_internals import held_here
from .waiting_calls import WaitingCalls

if TYPE_CHECKING:
    from .inbox import Inbox
    from .results import ResultPlanner
    from .task_graph import TaskGraph
    from .task_runs import TaskRun


class _Reports(Protocol):
    inbox: Inbox


class SinkOwner(Protocol):
    """What the sink needs from its run's engine."""

    id: str
    lock: threading.RLock
    ended: float | None  # set as the run finishes, under ``lock``; None again on a retry
    # Reruns so far (``FlowRun.retry``), carried by each task call launched since: a thread
    # that outlived its run (cancelled, given up) is of an earlier one, and what it logs is
    # not the rerun's, though its attempt count is the same (a rerun starts again at 1).
    reruns: int
    graph: TaskGraph
    logs: RunLogs
    results: ResultPlanner

    @property
    def launcher(self) -> _Reports: ...

    def emit(self, event: ev.Event) -> None: ...


# Logging calls go out as one event at most every this many seconds while they keep coming
# (the live views' own pace, ``delivery.FLUSH_INTERVAL``), or once this many wait (``_send``).
SEND_EVERY = 0.05
SEND_AT = 1000


# labloom's line in a task run's logs when Dask ran its call again (its worker was lost).
RAN_AGAIN = ("[labloom] the Dask worker running this call was lost and Dask runs it again, as "
             "the same attempt: the lines before this one are from the run that was lost")


class ExecutorSink:
    """What executors report about one run's task runs (running, log lines), from any thread;
    registered by run id (``sink_registry.register_local_run``) for the run's lifetime."""

    def __init__(self, engine: SinkOwner) -> None:
        self._engine = engine
        # What the run's task runs logged with log_params/log_metrics, for run.experiments():
        # one entry per logging call, nothing for task runs that log none. Kept by column
        # (task run ids, kinds, values' dicts, steps, times), not as events nor as a tuple per
        # call holding its dict (which the garbage collector never stops tracking): 100,000
        # event objects made each full collection of a fresh process (about 20 in a run of
        # 100,000 task runs, a quarter of its CPU) walk 100,000 more objects. Nor the batches
        # sent: an event and its tuples per batch are as many for a map whose batches hold one
        # call each.
        self._columns: tuple[list[Any], ...] = ([], [], [], [], [])
        # Calls not sent yet, a tuple each (task run id, kind, values, step, time, attempt,
        # rerun), made columns once per batch of reports (``_send``): appended by a task call
        # of this process itself (``waiting_calls.py``), by a Dask worker's through the inbox.
        inbox = engine.launcher.inbox
        self._waiting = WaitingCalls(inbox, SEND_AT)
        self._pending = self._waiting.calls
        # What a task call appends its logging calls to itself (``attempt.TaskCall``), when
        # its executor allows it; None: through ``task_values``'s inbox, as a Dask worker's.
        executor = getattr(engine, "executor", None)
        self.waiting = (self._waiting if getattr(executor, "runs_each_attempt_once_here", False)
                        else None)
        # Task runs started over so far (``forget_values``): until one has, every call is of
        # its task run's current attempt, and ``flush`` checks none.
        self._restarts = 0
        # (task run id, the attempt its start over superseded) -> how many calls waited in
        # ``_pending`` then: those before were applied in time (the attempt failed; the reset
        # drops them everywhere, nothing to say), those after arrived late (``_current`` says
        # so in its logs). Only for start overs with calls waiting; emptied with ``_pending``.
        self._restarted_at: dict[tuple[str, int], int] = {}
        # (task run id, attempt, rerun) of late calls said so already: said once, as a thread
        # that outlived its attempt may log on for an hour, a batch of calls every few ms.
        self._said_late: set[tuple[str, int, int | None]] = set()
        # The task runs whose calls went out, made at the first start over from the kept
        # columns: a start over of one that logged nothing needs no reset. Nothing for a
        # run that never starts a task run over, nor for a task run that logs nothing.
        self._logged_ids: set[str] | None = None
        # A Dask worker's logging call's way in (``task_values``): the inbox's ``add`` with
        # the pending list's own ``append`` as the apply, so no Python frame runs per call
        # under the run's lock, and each batch's end sends what it applied
        # (``Inbox.send_after``).
        self.add_call = functools.partial(inbox.add, self._pending.append)
        self._inbox = inbox
        # Until when a batch's calls wait for others (``_send``): one went out before.
        self._quiet_until = 0.0
        inbox.send_after(self._pending, self._send, self.flush)

    def task_started(self, run_id: str, task_run_id: str, when: float, attempt: int,
                     worker: str = "", rerun: int | None = None) -> None:
        self.tasks_started(run_id, [(task_run_id, when, attempt, worker, rerun)])

    def tasks_started(self, run_id: str,
                      starts: list[tuple[str, float, int, str, int | None]]) -> None:
        """Several at once (see ``started_all``), applied in order with the run's other
        reports (``inbox.py``): never after the end of the same attempt. Nothing to launch
        after a start (``Inbox.note``): the reporting thread runs its call at once."""
        self._engine.launcher.inbox.note(self._started, starts)

    def _started(self, starts: list[tuple[str, float, int, str, int | None]]) -> None:
        graph = self._engine.graph  # under the run's lock
        reruns = self._engine.reruns
        running: list[Change] = []
        cut: list[Change] | None = None  # (made only when needed: this is every start's path)
        for task_run_id, when, attempt, worker, rerun in starts:
            tr = graph.get(task_run_id)
            if tr is None or is_stale(tr, attempt, rerun, reruns):
                # Cancelled meanwhile, or a superseded attempt, or a call of an earlier rerun
                # (cancelled, running on) whose start arrives late (a Dask worker's message):
                # taken, it set the rerun's start back and reset what the rerun logged.
                if tr is not None and tr.done and tr.started == when:
                    # This very start again (see below), its run cancelled meanwhile: its
                    # Running, which no event told the store, goes from the kernel's history.
                    tr.drop_entry(State.RUNNING, when)
                continue
            if tr.state is State.RUNNING and tr.started is not None:
                if tr.started == when:
                    # This very start again: a Ctrl-C cut its apply short once its state was
                    # Running, before its event went out (nothing can land after that: the
                    # inbox takes it off next, in C), and the inbox applies it again
                    # (inbox.py). Taken for a run anew, it had a second Running, a "ran
                    # again" line and its values reset (tests/test_interrupt_reports.py).
                    cut = [] if cut is None else cut
                    cut.append((tr, task_run_id, when))
                    continue
                # The same attempt started again: Dask runs a task anew when its worker died
                # (killed, out of memory), with no retry of ours. What the dead run sent
                # before it died came first (the cluster forwards a worker's messages before
                # it notices the worker gone): forgotten as a retry's are, or its step 5
                # outranked the new run's steps 0-2 and its auc stayed. Always: its calls
                # still waiting are of the same attempt, which ``flush`` keeps.
                self._reset(task_run_id)
                # Its lines cannot be taken back (the store and the views have them): said
                # between the two runs' lines (timed at the new run's start, so the store's
                # time order holds it there), in its logs only (a worker lost mid-map would
                # put a line per child on the process's log).
                self.log(ev.LogRecord(self._engine.id, task_run_id, logging.WARNING,
                                      when or time.time(), RAN_AGAIN))
            # Each attempt's start, as the store keeps it: a retried task run's duration is
            # its last attempt's, live and stored alike (live, it was from the first's start).
            tr.started = at = when or time.time()
            tr.worker = worker
            running.append((tr, task_run_id, at))
        set_states(graph, running, State.RUNNING)
        if cut:
            started_again(graph, cut)

    def task_keyed(self, run_id: str, task_run_id: str, attempt: int, key: str | None,
                   path: str | None, message: str, rerun: int | None = None) -> None:
        engine = self._engine
        with engine.lock:
            tr = engine.graph.get(task_run_id)
            if tr is None or is_stale(tr, attempt, rerun, engine.reruns):
                return  # a cancelled call's "cached result" made its rerun's call show Cached
            engine.results.keyed(tr, key, path, message)

    def task_log(self, run_id: str, task_run_id: str, level: int, when: float, text: str) -> None:
        self.log(ev.LogRecord(run_id, task_run_id, level, when, text))

    def warn(self, tr: TaskRun, message: str) -> None:
        """A line from labloom itself in a task run's logs (and on the process's log)."""
        self.log(ev.LogRecord(self._engine.id, tr.id, logging.WARNING, time.time(),
                              f"[labloom] {message}"))
        if held_here(self._engine.lock):  # never ``logging`` under it: see ``process_log``
            warn_later("[labloom] %s: %s", tr.name, message)
            return
        with outside_task():  # else also a line of the task this thread runs, if any
            logging.getLogger("labloom").warning("[labloom] %s: %s", tr.name, message)

    @property
    def logged(self) -> list[ev.Call]:
        """The logging calls so far: (task run id, kind, values, step, time); under the
        engine's lock."""
        return list(self._batch().calls)

    def _batch(self) -> ev.ExperimentCalls:
        """Every call kept, as one event over the kept columns themselves (not copies): read
        under the run's lock and never handed out, as ``_send`` grows them. The calls still
        waiting go out first: a replay (``experiments``) then holds each call the live events
        sent before it, and none they send after it."""
        self.flush()
        return ev.ExperimentCalls(self._engine.id, *self._columns)

    @property
    def experiments(self) -> list[ev.ExperimentValues]:
        """The logging calls so far, as events (a late subscriber's replay)."""
        return self._batch().each()

    def task_values(self, run_id: str, task_run_id: str, when: float, kind: str,
                    values: dict[str, Any], step: int | None, attempt: int | None = None,
                    rerun: int | None = None) -> None:
        # Through the run's inbox, as starts and ends are (``inbox.py``), applied in order
        # with the same thread's end of the task run, so never after it. Only appended: the
        # end that follows applies it (a log_metrics call per map child that took the run's
        # lock itself made the task threads queue on it, 1.6-1.9x the flow logging none; one
        # that applied the inbox itself, 1.1x). A task call in this process appends to the
        # calls waiting itself (``waiting_calls.py``); this is the way in of the Dask
        # workers' calls (``dask_events.Dispatcher``).
        self.add_call((task_run_id, kind, values, step, when, attempt, rerun))

    def forget_values(self, task_run_id: str) -> None:
        """``task_run_id`` starts over (a retry, a rerun; under the run's lock, its attempt
        count changed already): a call of kind ``RESET``, so that every reader drops what it
        logged before (``experiments.RESET``), if any of its calls went out. Its earlier
        attempts' calls not sent yet, or still to come (a given-up thread, a Dask worker's
        call in flight), ``flush`` drops, by their attempt. Most task runs that start over
        logged nothing: they send no reset (a retry of each child of a 100,000-wide map was
        as many calls stored, and sent to every view)."""
        self._restarts += 1
        if self._pending:
            tr = self._engine.graph.get(task_run_id)
            if tr is not None and tr.attempts > 1:  # a retry (a rerun's are all late)
                self._restarted_at[task_run_id, tr.attempts - 1] = len(self._pending)
        logged = self._logged_ids
        if logged is None:
            logged = self._logged_ids = set(self._columns[0])
        if task_run_id in logged:
            self._reset(task_run_id)

    def _reset(self, task_run_id: str) -> None:
        """The call of kind ``RESET``, under the run's lock, applied at once: after the
        failed attempt's calls (applied before its end) and before anything its new attempt
        logs (it is not launched yet). Not through the inbox: a rerun of more task runs than
        a batch would have drained it, launches and all, mid-reset. Outside a batch of
        reports (a launch, a rerun) nothing sends it: the nudge does. Its attempt None:
        ``flush`` keeps it whatever the task run's attempt is by then."""
        self._pending.append((task_run_id, RESET, {}, None, time.time(), None, None))
        if not self._waiting.asked:
            self._waiting.asked = True
            self._inbox.nudge()

    def _send(self) -> None:
        """At the end of a batch of reports that applied calls, under the run's lock
        (``Inbox.send_after``): the calls go out as one event at once when none went out in
        the last ``SEND_EVERY`` seconds, else once those passed, or once ``SEND_AT`` wait.
        At once: a sweep of slow children, one ending now and then, shows and stores each
        one's values with its end, as before, not ``inbox.NUDGE`` seconds later. One event per
        batch was most often one call (four task threads take turns applying, a batch of one
        or two reports each): 6,000 to 7,200 events, of one call in the median, for a map
        of 100,000 children logging once, each built, queued, delivered, folded
        and joined by the store writer. Left waiting, they go out at a later batch's end, at
        the nudge this asks for (a run gone quiet), at a read of the calls (``_batch``) or
        as the run finishes (``RunEngine._finalize``), whichever comes first."""
        if self._engine.ended is not None:
            # Calls applied after the run finished (a call it gave up on): dropped now by
            # ``flush``, not left waiting: a retry before the wait is over (``ended`` None
            # again) would send them as the new attempt's.
            self.flush()
            return
        now = time.monotonic()
        if now >= self._quiet_until or len(self._pending) >= SEND_AT:
            self._quiet_until = now + SEND_EVERY
            self.flush()
        elif not self._waiting.asked:
            self._waiting.asked = True
            self._inbox.nudge()

    def flush(self) -> None:
        """Send the calls waiting, as one event (under the run's lock)."""
        self._waiting.sent()
        if not self._pending:
            return
        # Taken from the front: a task thread appends without the lock (``waiting_calls.py``),
        # and a call it appends between the copy and the ``del`` stays for the next send.
        pending = self._pending[:]
        del self._pending[:len(pending)]
        if self._engine.ended is not None:
            # A call its run gave up on (a timeout: a thread cannot be stopped) logging after
            # the run finished: dropped, as its record is closed. Kept, it would show in
            # run.experiments() and never in the store (or in it only after a retry).
            self._restarted_at.clear()
            return
        if self._restarts:
            pending = self._current(pending)
            if not pending:
                return
        # Tuples, shared by the event and nobody else: the run's columns copy them.
        ids, kinds, values, steps, times, _attempts, _reruns = zip(*pending, strict=True)
        if self._logged_ids is not None:
            self._logged_ids.update(ids)
        kept_ids, kept_kinds, kept_values, kept_steps, kept_times = self._columns
        kept_ids += ids
        kept_kinds += kinds
        kept_values += values
        kept_steps += steps
        kept_times += times
        self._engine.emit(ev.ExperimentCalls(self._engine.id, ids, kinds, values, steps, times))

    def _current(self, pending: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The calls of ``pending`` whose attempt is their task run's current one (and the
        resets, of no attempt), once some task run started over: a given-up thread that read
        the real ``add_call`` just before its swap (``attempt._stop_recording``), or a Dask
        worker's call of attempt 1 arriving after attempt 2's reset, landed after the reset
        and showed as the new attempt's. Checked here, once per batch under the run's lock,
        not per call as applied (``add_call`` runs no Python frame under the lock). A call
        of an attempt superseded after it was applied goes too: the reset that follows it
        would have dropped it in every reader. A call of an earlier rerun (``FlowRun.retry``)
        goes whatever its attempt: a thread that outlived its run (cancelled, given up),
        whose attempt 1 is the rerun's attempt 1 too. Those that came late (not the failed
        attempt's own, applied before its start over) are said in their task run's logs
        (``_say_late``): a user missing a metric sees why."""
        graph = self._engine.graph
        reruns = self._engine.reruns
        restarted_at = self._restarted_at
        kept = []
        late: list[tuple[TaskRun, tuple[Any, ...]]] = []
        for at, call in enumerate(pending):
            attempt = call[5]
            if attempt is not None:
                retried = call[6] is not None and call[6] != reruns
                tr = graph.get(call[0])
                if retried or (tr is not None and tr.attempts != attempt):
                    if tr is not None and (
                            retried or at >= restarted_at.get((tr.id, attempt), 0)):
                        late.append((tr, call))
                    continue
            kept.append(call)
        restarted_at.clear()
        if late:
            self._say_late(late)
        return kept

    def _say_late(self, late: list[tuple[TaskRun, tuple[Any, ...]]]) -> None:
        """One line in a task run's logs for its calls of a batch that ``_current`` dropped
        as late (each with its task run), those of an attempt said before left out: at most
        a line per task run and batch, and one per attempt (never one per call)."""
        said = self._said_late
        lines: dict[str, list[Any]] = {}  # task run id -> [task run, count, attempts, keys]
        for tr, call in late:
            key = (tr.id, call[5], call[6])
            if key not in said:
                line = lines.setdefault(tr.id, [tr, 0, set(), set()])
                line[1] += 1
                line[2].add(call[5])
                line[3].add(key)
        for tr, count, attempts, keys in lines.values():
            said.update(keys)
            earlier = {rerun is not None and rerun != self._engine.reruns for *_, rerun in keys}
            after = ["the run was retried" if of_earlier_run else
                     f"the task run started over (attempt {tr.attempts})"
                     for of_earlier_run in sorted(earlier, reverse=True)]
            self.warn(tr, not_recorded(" and ".join(map(str, sorted(attempts))),
                                       " and ".join(after), count))

    def log(self, record: ev.LogRecord) -> None:
        engine = self._engine
        with engine.lock:  # kept and sent together, so a late subscriber sees it exactly once
            if engine.logs.add(record):
                engine.emit(record)
                return
            tr = engine.graph.get(record.task_run_id or "")
            if tr is None or tr.done:  # a late line: the count at the end is already out
                self.report_dropped(record.task_run_id or "")

    def ended(self, tr: TaskRun) -> None:
        """``tr`` is final: say how many of its lines were dropped, if any were (most often
        no task run's were: then not even its id is made)."""
        if self._engine.logs.capped:
            self.report_dropped(tr.id)

    def report_dropped(self, task_run_id: str) -> None:
        # Lines past the cap are counted, not kept; the store says how many it never saw.
        engine = self._engine
        dropped = engine.logs.per_task.get(task_run_id, 0) - MAX_TASK_LINES
        if dropped > 0:
            engine.emit(ev.LogLinesDropped(engine.id, task_run_id, dropped, time.time()))
