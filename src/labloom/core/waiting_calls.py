"""Where a task call running in its run's own process puts its logging calls: the run's list of
calls waiting to be sent (``sinks.ExecutorSink``), appended to by the task's thread without the
run's lock nor its inbox, and sent by the engine under the lock when it emits them.

Each call was an inbox item (``inbox.Inbox.add``): a Python frame per call in the task's thread
and another step of the engine's loop applying it, only to append it to this same list. What
the inbox gave it, an order among the run's reports, nothing needs here: a call of a task run
is appended by its own thread before that thread reports the task run's end, so it waits in
the list before the end is applied, as it did; a start over (``forget_values``, under the lock)
comes after the failed attempt's end, so after its calls; the calls of one thread keep their
order, and calls of different task runs had no order between them to keep. A Dask worker's
calls still come through the inbox (``ExecutorSink.task_values``).

The list is only appended to (one ``list.append``, atomic under the GIL) and taken from at its
front under the run's lock (``ExecutorSink.flush``): a call appended meanwhile stays for the
next send."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .inbox import Inbox


def _nothing() -> None:
    pass


class WaitingCalls:
    """The calls waiting (``calls``, one tuple each: task run id, kind, values, step, time,
    attempt, rerun) and whether a nudge was asked for them since they last went out
    (``asked``). ``experiment_values.record`` appends and reads ``asked`` and ``calls``'
    length in its own frame: ``wake`` runs once per send (the first call after it), not per
    call."""

    __slots__ = ("_inbox", "_most", "asked", "calls", "limit")

    def __init__(self, inbox: Inbox, most: int) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.asked = False  # set here and by the sink, cleared by its ``sent``
        # Calls waiting at which a logging call has them sent (``wake``): ``most`` more than
        # when it last did, so that a run whose sends are slow to come asks once per ``most``
        # calls, not at every call past it (an empty report and a drain each: a quarter of the
        # calls of a 100,000-child run, where the list passes ``most`` between two sends).
        self.limit = self._most = most
        self._inbox = inbox

    def sent(self) -> None:
        """The calls waiting went out (the sink's ``flush``, under the run's lock)."""
        self.asked = False
        self.limit = self._most

    def wake(self) -> None:
        """What waits goes out within ``inbox.NUDGE`` seconds (a long task logging a curve,
        no report following), or now when ``limit`` wait (a tight loop of logging calls:
        memory stays bounded), as the inbox's ``add`` did."""
        waiting = len(self.calls)
        if waiting >= self.limit:
            self.limit = waiting + self._most
            # An empty report: the batch applying it ends with the sink's ``_send``, which
            # sends this many at once (by this thread, or by the one applying already).
            self._inbox.note(_nothing)
        elif not self.asked:
            self.asked = True
            self._inbox.nudge()
