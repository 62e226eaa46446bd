"""``@flow(retries=2, retry_delay=600)``: a run that ends Failed runs again, in place.

What a nightly run needs when what it reads is not there yet or a server is down for a while,
and what a Prefect user expects of a flow's retries. An attempt fails when the run would end
Failed: a task run it needs failed, the flow body raised, or the flow's timeout stopped it
(Prefect retries a timed-out run too; the timeout holds for each attempt). A cancel (the
user's, an interrupt, the process exiting) is never retried, and a cancel while the run waits
for its next attempt ends it Cancelled at once.

In place: the same run id and the same task runs. Completed task runs are reused, as
``run.retry()`` reuses them; failed, upstream-failed and cancelled ones and everything
downstream run again. When the flow body itself raised, the body runs again, and its task
calls are matched in order to the earlier attempt's (by task, as Prefect matches a retried
flow's task calls): a call that completed with the same inputs (``same_inputs.py``), nothing
it waited for having run again, gives its result at once; the others are the earlier task
runs, run again with this call's inputs (what the body read may have changed); a map's children
match by position (``map_replay.py``); calls past them are new task runs. An earlier task run that
the body did not call again (it took another way) is kept as it ended, as history, and does
not fail the run.

The run's end waits for its last attempt: no ``RunFinished`` before it, so no on_failure hook,
failure alert, ``FlowFailed`` or ``labloom run`` exit either. Meanwhile the run stays Running
(so every reader that waits for, cancels or counts an open run sees it open) with a message
that says which attempt failed, why, and when the next starts; the run's log says it too,
with the flow body's traceback when the body raised.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import values
from .context import ACTIVE
from .left_maps import RUN_RETRY, flow_retry
from .map_nodes import MapNode
from .map_replay import remap
from .rerun import reset_bad, reset_call
from .retry_policy import delay_before
from .same_inputs import same_inputs
from .states import State
from .task_runs import TaskRun
from .waiting import LOOK_EVERY

if TYPE_CHECKING:
    from .engine import RunEngine
    from .mapping import MapSources
    from .tasks import Task


# How a run's message begins while it waits for, or runs, a retry (``FlowAttempts.again``).
RETRY_NOTE = re.compile(r"attempt \d+ of \d+ ")
# How a run's message begins when its executor could not start (its ``body_error`` is that
# error: no body ran; alerts and `labloom run`'s report say so, ``alerts.run_summary``).
NOT_STARTED = "the executor could not start"


class FlowAttempts:
    def __init__(self, engine: RunEngine) -> None:
        self._engine = engine
        self.number = 1  # the attempt under way
        self.failures: list[str] = []  # why each earlier attempt failed
        self.note = ""  # the run's message while it waits for or runs a retry
        # The earlier attempt's graph nodes, in the order the body made them, while the body
        # runs again (``replayed``).
        self._replay: deque[TaskRun | MapNode] = deque()
        # The earlier attempt's bad task runs that the rerun body has not called again yet
        # (by id): those it never calls are history when it ends, not the run's failures.
        self._left: dict[int, TaskRun] = {}
        # Ids of the task runs (and maps) the rerun body runs again or anew: what waited for
        # one of them is not reused, its input may differ now.
        self._ran_again: set[int] = set()
        # The run whose flow body called this flow (a subflow), or None: its cancel (its
        # timeout's) ends this one's wait too, as it waits in that body. Weak: a run kept
        # (a notebook's variable) must not keep its caller's results.
        caller = ACTIVE.get()
        self._caller = None if caller is None else weakref.ref(caller)

    @property
    def total(self) -> int:
        return self._engine.flow.retries + 1

    def facts(self) -> dict[str, int]:
        """What the run's record keeps of its attempts (its metadata: ``labloom show``'s
        "attempt 3 of 3"); nothing for a flow without retries."""
        if not self._engine.flow.retries:
            return {}
        return {"attempt": self.number, "attempts_allowed": self.total}

    def start_over(self) -> None:
        """``run.retry()``: the flow's retries anew, as its timeout is."""
        self.number, self.failures = 1, []
        self._engine.graph.again_at = RUN_RETRY  # (what a map re-split tells its children)

    def again(self) -> bool | None:
        """Called when an attempt has nothing left open. None: the run ends now. Else the next
        attempt has begun (after its delay): True when the flow body must run again."""
        engine = self._engine
        if self.number >= self.total:
            return None  # the last (most often the only) attempt: no second look at a big graph
        with engine.lock:
            state, why = outcome(engine)
            if state is not State.FAILED:
                return None
            body_error = engine.body_error
            if not self._wait_for_next(why):
                return None
            if body_error is not None:  # each bad one is reset when the body calls it again
                self._replay = deque(earlier_nodes(engine))
                self._ran_again = set()
                self._left = {id(tr): tr for tr in engine.graph.task_runs
                              if tr.bad and id(tr) not in engine.graph.retired}
                engine.graph.handled.clear()
            else:
                engine.graph.reset_bad(engine.sink.forget_values, engine.launcher.lost)
        engine.clock.start()
        engine.launcher.work()
        return body_error is not None

    def could_not_start(self, exc: BaseException) -> bool:
        """The executor could not start: the attempt's failure; True when a next attempt may
        try again. A scheduler (or a cluster's backend: Kubernetes, a gateway) that cannot be
        reached now (restarting for the night) may be up then; a bad option never will be."""
        engine = self._engine
        engine.body_error, engine.message = exc, f"{NOT_STARTED}: {exc}"
        unreachable = isinstance(exc, OSError) or isinstance(exc.__cause__, OSError)
        return unreachable and self.total > 1

    def start_late(self) -> bool:
        """The executor could not start (``RunEngine.start``): try again at each next
        attempt. True once it started (the body runs then); False: the run ends as it is."""
        engine = self._engine
        while self.again_to_start():
            try:
                engine.executor.start()
            except Exception as exc:  # (a Ctrl-C goes on: the driver cancels the run)
                if not self.could_not_start(exc):
                    return False
                continue
            engine.clock.start()
            return True
        return False

    def again_to_start(self) -> bool:
        """The executor could not start (a cluster restarting for the night, a scheduler not
        up yet: ``RunEngine.start``): True when the next attempt may try again, after its
        delay; False: the run ends now (the last attempt, or cancelled while it waited)."""
        engine = self._engine
        if self.number >= self.total:
            return False
        with engine.lock:
            return self._wait_for_next(outcome(engine)[1])

    def _wait_for_next(self, why: str) -> bool:
        """The attempt under way failed (``why``): say so, wait out the next one's delay, and
        start it; False when the run was cancelled meanwhile. Under the engine's lock (its
        condition's wait lets it go)."""
        engine = self._engine
        delay = delay_before(engine.flow.retry_delay, self.number + 1)
        body_error = engine.body_error
        # The failure is history now: a cancel during the delay must find the run open to
        # it (not already cancelled by its timeout), and end it Cancelled, not raising.
        engine.body_error, engine.graph.cancelled, engine.clock.expired = None, None, None
        engine.clock.stop()  # else it expires during the delay: each attempt has its own
        self.failures.append(why)
        when = f"in {delay:g}s" if delay else "now"
        note = (f"attempt {self.number} of {self.total} failed: {why}; attempt "
                f"{self.number + 1} starts {when}")
        self._keep_tracebacks()
        # The body's traceback has no task run's logs to be in: the run's line holds it. A
        # task run's is in its own logs (the note names the task), not said twice.
        where = "" if body_error is None else "".join(traceback.format_exception(body_error))
        self._say(note, where)
        deadline = time.monotonic() + delay
        while engine.graph.cancelled is None and time.monotonic() < deadline:
            if self._caller_cancelled():
                break
            # A cancel notifies it; the slices let a Ctrl-C (a kernel's interrupt) in.
            engine.changed.wait(min(LOOK_EVERY, deadline - time.monotonic()))
        if engine.graph.cancelled is None and (ended_by := self._caller_cancelled()):
            # Nothing of it is open: what cancel() would do is only to say so.
            engine.graph.cancelled = engine.message = ended_by
        if engine.graph.cancelled is not None:
            return False
        self.number += 1
        engine.graph.again_at = flow_retry(self.number, self.total)
        # The logging calls of task runs that completed, still waiting, are theirs: in
        # before the count that makes what the earlier attempt still reports stale.
        engine.sink.flush()
        engine.reruns += 1
        self._say(f"attempt {self.number} of {self.total} (attempt {self.number - 1} "
                  f"failed: {why})", said=f"attempt {self.number} of {self.total} starts")
        return True

    def _caller_cancelled(self) -> str:
        caller = None if self._caller is None else self._caller()
        if caller is None or caller.graph.cancelled is None:
            return ""
        return f"its caller's run {caller.id} was cancelled: {caller.message}"

    def _keep_tracebacks(self) -> None:
        """Each failed task run's traceback, said in its logs before the retry resets it (as a
        task's own retry says it): a run that ends Completed still tells why an attempt
        failed."""
        engine = self._engine
        which = f"run attempt {self.number} of {self.total}"
        for tr in engine.graph.task_runs:
            if tr.state is State.FAILED and id(tr) not in engine.graph.retired:
                why = tr.traceback.rstrip() or tr.message
                engine.sink.log(ev.LogRecord(engine.id, tr.id, logging.WARNING, time.time(),
                                             f"[labloom] {which} failed here\n{why}"))

    def _say(self, note: str, where: str = "", said: str = "") -> None:
        """The run's message (its row in the store, the Flows panel) and a line of its log
        (``said``, or the message)."""
        engine = self._engine
        engine.message = self.note = note
        now = time.time()
        engine.emit(ev.RunStateChanged(engine.id, State.RUNNING, now, note))
        text = f"[labloom] {said or note}" + (f"\n{where.rstrip()}" if where else "")
        engine.sink.log(ev.LogRecord(engine.id, None, logging.WARNING, now, text))

    def replayed_call(self, task: Task[Any, Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any], wait_for: Any) -> TaskRun | None:
        """The earlier task run this call of the rerun body is (under the engine's lock),
        reused if it completed with these inputs, else run again with them; None: a new one
        is made."""
        tr: TaskRun | None = self.replayed(task, TaskRun)
        engine = self._engine
        if tr is None:
            return None
        deps = engine.graph.dependencies((args, kwargs), wait_for)
        if {id(dep) for dep, _ in deps} != {id(up) for up in tr.upstream}:
            self._replay.clear()  # it waits for other task runs now: a new one, and the rest
            return None
        if tr.state is State.COMPLETED and not self._lost(tr) and \
                not self.upstream_ran_again(tr) and same_inputs(tr.inputs(), (args, kwargs)):
            return tr
        tr.args, tr.kwargs = args, kwargs
        self._left.pop(id(tr), None)
        self._ran_again.add(id(tr))
        reset_call(engine.graph, tr, engine.sink.forget_values)
        return tr

    def upstream_ran_again(self, tr: TaskRun) -> bool:
        """A task run ``tr`` waited for runs again in this attempt: its result may differ."""
        return any(id(up) in self._ran_again for up in tr.upstream)

    def replayed_map(self, task: Task[Any, Any], sources: MapSources) -> MapNode | None:
        """The earlier map this ``.map()`` of the rerun body is, its children that must run
        again (failed, or with other inputs now: ``map_replay.py``) reset; None: a new one."""
        node: MapNode | None = self.replayed(task, MapNode)
        if node is None:
            return None
        engine = self._engine
        if node.placeholder is None and node.growth is None:
            again = remap(engine.graph, node, task, sources, self._ran_again,
                          engine.sink.forget_values, engine.executor.lost)
            if again is None:
                return None  # a new map; the earlier one's bad children are history at the end
        else:  # it could not expand (or grows from another): it expands anew, from these
            if node.growth is None:
                node.sources, node.keywords = sources.positional, sources.keywords
            again = reset_bad(engine.graph, engine.sink.forget_values, engine.executor.lost,
                              within=node)
        for tr in again:
            self._left.pop(id(tr), None)
            self._ran_again.add(id(tr))
        if again:
            self._ran_again.add(id(node))
        return node

    def _lost(self, tr: TaskRun) -> bool:
        return tr.handle is not None and self._engine.executor.lost(tr.handle)

    def replayed(self, task: Task[Any, Any], kind: type[Any]) -> Any:
        """The earlier attempt's node that this call of the body made then (a ``TaskRun`` for
        a call, a ``MapNode`` for a map), or None: a new one is made."""
        if not self._replay:
            return None
        earlier = self._replay.popleft()
        if isinstance(earlier, kind) and earlier.task.name == task.name:
            return earlier
        self._replay.clear()  # the body took another way this time: the rest is new
        return None

    def body_ended(self) -> None:
        self._replay.clear()
        # A body that raised may not have reached them: the next attempt's may.
        if self._left and self._engine.body_error is None:
            with self._engine.lock:
                self._engine.graph.retired.update(self._left)
                self._left.clear()

    def final_message(self, state: State, message: str) -> str:
        """The run's message at its end, saying how many attempts it took."""
        if not self.failures:
            return message
        if len(self.failures) == self.number:  # cancelled while it waited for the next one
            return (f"{message} before attempt {self.number + 1} of {self.total} (attempt "
                    f"{self.number} failed: {self.failures[-1]})")
        if state is State.COMPLETED:
            return (f"completed at attempt {self.number} of {self.total}; attempt "
                    f"{self.number - 1} failed: {self.failures[-1]}")
        if state is State.FAILED:
            return f"{message} (attempt {self.number} of {self.total}: every attempt failed)"
        return f"{message} (at attempt {self.number} of {self.total})"


def outcome(engine: RunEngine) -> tuple[State, str]:
    """How the run would end now that nothing is open: its state and message."""
    if engine.graph.cancelled is not None:
        return (State.FAILED if engine.clock.stopped_it else State.CANCELLED), engine.message
    if engine.body_error is not None:
        # The executor that could not start said why; an attempt's note is not why.
        error, said = engine.body_error, engine.message != engine.attempts.note and engine.message
        return State.FAILED, said or f"flow body raised {type(error).__name__}: {error}"
    failed = values.failures(engine, engine.returned)
    if not failed:
        return State.COMPLETED, engine.message
    first = failed[0]
    message = f"{len(failed)} task run(s) did not succeed; first: {first.name}"
    return State.FAILED, message + (f": {first.message}" if first.message else "")


def earlier_nodes(engine: RunEngine) -> list[TaskRun | MapNode]:
    """The graph's nodes in the order the body made them: a plain task's run, or a map."""
    by_id: dict[str, TaskRun | MapNode] = {
        tr.node_id: tr for tr in engine.graph.task_runs
        if tr.parent is None and id(tr) not in engine.graph.retired  # left by an earlier body
    }
    by_id.update((node.id, node) for node in engine.graph.maps)
    return [by_id[node.node_id] for node in engine.graph.nodes if node.node_id in by_id]
