"""What executors report about one run (a task run started, an attempt ended), applied to the
run under its lock in the order reported, by one thread at a time and in batches.

Each report used to take the run's lock itself: with four task threads each taking it twice
per task run (started, ended) and the engine's launches taking it too, the threads queued on
it, and every wait was a sleep and a wake-up of a thread, which cost more CPU than the task
runs' own work once a run went on for a few thousand task runs (issue 21: 1,000 task runs
ran at about 30 µs of task-thread CPU each, 20,000 at 60 to 160 µs).

Now a report is appended to the run's ``Inbox`` (an append, never a wait). The thread that
finds nobody applying takes the role and applies everything waiting under one hold of the
lock; the others return at once, their reports applied by that thread. It gives the role
back, applies what arrived meanwhile, and then calls ``after`` (the launcher's ``work``: give
back slots and launch what is ready) without the role, so that a launch waiting for the
store never holds up the reports. A report is never left behind: one appended while a
thread holds the role is seen by that thread when it gives the role back (or, every fourth
batch, once its ``after`` returned, unless another report's thread took the role first); one
appended while nobody holds it is applied by its own thread.

Order is kept: one inbox per run, applied first in first out, so a task run's "started" is
applied before its end whatever threads reported them.

A report that can wait (a logging call's values, ``add``) is only appended: the next report's
batch applies it, most often the same task run's end a moment later in the same thread; a
timer applies it within ``NUDGE`` seconds when no report follows (a long task logging a
curve), and its own thread when a batch's worth waits (a tight loop of logging calls). The
timer is one thread for the whole process (``_Nudger``), started once: a ``threading.Timer``
per nudge (one every ``NUDGE`` seconds of a logging run) held the task thread starting it
until the new thread ran, 20 ms each on average among four busy task threads (0.4 to 0.5 s of
a task thread's time in a run of 100,000 children logging once, issue 19); the one thread is
started without waiting for it to run, for the same reason.
Taking the role and the run's lock, waking the waiters and launching for each of them cost a
map child logging once as much as its end did (issue 19).

A report after which there is nothing to launch (a task run started: it frees no slot and
readies nothing) comes through ``note``: a thread that applied only such reports skips
``after``. The thread reporting a start is about to run that call, and it launched first
(up to a pool's worth of queued calls): the first children of a 20,000-wide map took
67-280 ms for microseconds of work. The room a start leaves in an executor's queue is
filled after the call's end, which always follows.
"""

from __future__ import annotations

import _thread
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sized
from types import BuiltinFunctionType
from typing import Any, Protocol

from .event_holding import NoHolder

Apply = Callable[..., None]
BATCH = 1000  # reports applied per hold of the run's lock at most
NUDGE = 0.5  # seconds a report that can wait waits at most for another to apply it


class _Nudger:
    """One thread applying, ``NUDGE`` seconds after it was asked, what an inbox's ``add`` left
    (``Inbox._nudged``), for every inbox of the process: asked in order, due in order. A run
    whose lock is held long delays the other runs' nudges as long: only how soon a long task's
    values show, never whether (the next report applies them anyway)."""

    def __init__(self) -> None:
        self._due: queue.SimpleQueue[tuple[float, Inbox]] = queue.SimpleQueue()
        # The process whose thread runs ``_loop`` (None: none does): a fork's child has no
        # copy of the thread, so it starts its own.
        self._running_in: int | None = None
        self._starting = threading.Lock()

    def ask(self, inbox: Inbox) -> None:
        self._due.put((time.monotonic() + NUDGE, inbox))
        if self._running_in != os.getpid():
            with self._starting:
                if self._running_in != os.getpid():
                    # Not ``threading.Thread``, whose ``start`` waits until the new thread
                    # has run: the asking thread is a task thread's first logging call, and
                    # among four busy task threads that wait was 4-44 ms, paid by every
                    # process's first logging run (benchmarks/README.md, session 53).
                    # Noted before the start: a thread that runs and ends (a BaseException)
                    # before this thread goes on notes its end after, not before, and the next
                    # ``ask`` starts another (tests/test_nudge_thread.py).
                    self._running_in = os.getpid()
                    try:
                        _thread.start_new_thread(self._loop, ())
                    except BaseException:  # none started (or a Ctrl-C: at worst two run)
                        self._running_in = None
                        raise

    def _loop(self) -> None:
        try:
            while True:
                due, inbox = self._due.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    inbox._nudged()
                except Exception:  # an apply that raised: its inbox's own thread would die
                    logging.getLogger("labloom").exception("[labloom] applying reports failed")
        finally:
            self._running_in = None  # ended by a BaseException: the next ``ask`` starts one


_nudger = _Nudger()


class Holds(Protocol):
    """How an inbox holds a batch's events (``event_holding.Holder``, the run's bus's)."""

    def hold(self) -> list[Any] | None: ...

    def let_go(self, mine: list[Any] | None) -> None: ...


def _nothing() -> None:
    pass


class _Role:
    """Which thread applies a run's reports. Not a lock taken with ``acquire(blocking=False)``
    before a ``try``: a Ctrl-C landing right after it returned (CPython takes signals after a
    call into C) kept it for good, and the run's reports were never applied again (its
    ``retry()`` waited for ever). ``drain`` sets ``held`` inside its ``try``."""

    __slots__ = ("held", "taking")

    def __init__(self) -> None:
        self.taking = threading.Lock()  # held only while ``held`` is read and set
        self.held = False

    def give_back(self) -> None:
        self.held = False


class Inbox:
    def __init__(self, lock: threading.RLock, changed: threading.Condition,
                 after: Callable[[], None], holder: Holds | None = None) -> None:
        self._lock = lock  # the run's
        # Around each batch applied: the run's events of a batch go to its subscribers at
        # once (``EventBus.holder``), not one at a time.
        holds: Holds = holder if holder is not None else NoHolder()
        self._hold, self._let_go = holds.hold, holds.let_go
        self._changed = changed  # its waiters are woken once per batch applied
        self._after = after
        # (apply, its arguments, whether ``after`` follows it)
        self._items: deque[tuple[Apply, tuple[Any, ...], bool]] = deque()
        self._role = _Role()  # held by the thread applying
        # What a batch's applies leave to send once it is done (``send_after``): a list they
        # fill, and the call sending and emptying it, under the run's lock. Checked by its
        # length alone, in C: no Python call per batch for a run that fills nothing.
        self._filled: Sized = ()
        self._send: Callable[[], None] = _nothing
        self._flush: Callable[[], None] = _nothing
        self._nudge = False  # ``_nudger`` asked to apply what ``add`` left, if nobody does
        # What ``after`` works on (``launch_from``): None, unknown, ``after`` always follows.
        self._launch_from: tuple[Sized, ...] | None = None
        self._nudging = threading.Lock()

    def put(self, apply: Apply, *args: Any) -> None:
        """Apply ``apply(*args)`` under the run's lock: now in this thread, or soon in the
        thread applying reports already (never both)."""
        self._items.append((apply, args, True))
        self.drain()

    def note(self, apply: Apply, *args: Any) -> None:
        """As ``put``, for a report after which there is nothing to launch (see above)."""
        self._items.append((apply, args, False))
        self.drain()

    def add(self, apply: Apply, *args: Any) -> None:
        """Apply ``apply(*args)`` with the next report's batch, whichever thread applies it,
        and within ``NUDGE`` seconds at the latest; never before the reports put before it,
        never after those put after it."""
        items = self._items
        items.append((apply, args, False))  # values: nothing to launch after them
        if len(items) >= BATCH and not self._role.held:
            # A task logging in a tight loop: memory stays bounded. While a thread applies,
            # it applies this too (as ``drain`` leaves it): a run's reports wait a batch or
            # more behind most of the time, and calling ``drain`` to be refused the role at
            # each logging call was work for nothing.
            self.drain()
        elif not self._nudge:
            self.nudge()

    def nudge(self) -> None:
        """Have ``_nudger`` apply what waits, and call ``send_after``'s ``flush``, within
        ``NUDGE`` seconds, unless it is asked already."""
        with self._nudging:
            if self._nudge:
                return
            self._nudge = True
        _nudger.ask(self)

    def _nudged(self) -> None:
        self._nudge = False  # before draining: what is added from now on asks again
        self.drain()
        if self._filled:  # what the batches' ``send`` left for later (a quiet run)
            with self._lock:
                mine = self._hold()
                try:
                    self._flush()
                finally:
                    self._let_go(mine)

    def send_after(self, filled: Sized, send: Callable[[], None],
                   flush: Callable[[], None] = _nothing) -> None:
        """At the end of each batch applied, call ``send`` (under the run's lock) if ``filled``
        is not empty: the run's logging calls, appended by their applies (``add``), go out
        once per batch at most, not once per call (``sinks.ExecutorSink``). ``send`` may leave
        them for a later batch if it calls ``nudge``: the nudge then calls ``flush`` (under
        the run's lock) when it finds ``filled`` not empty."""
        self._filled, self._send, self._flush = filled, send, flush

    def launch_from(self, *pending: Sized) -> None:
        """``after`` has something to do only while one of ``pending`` is not empty (the
        launcher's task runs ready and slots to give back, filled under the run's lock): a
        thread whose batches leave them all empty skips it. A small run's end reports mostly
        ready nothing (a map's children): ``after`` took the run's lock again per batch to
        find so (0.3 of the 3 µs a batch cost, issue 21 §2). Another thread's apply that fills
        one has its own thread call ``after``, as do the launcher's other ways in."""
        self._launch_from = pending

    def put_all(self, reports: list[tuple[Apply, tuple[Any, ...]]]) -> None:
        """Several at once (a Dask chunk's children ended together), in this order."""
        self._items.extend((apply, args, True) for apply, args in reports)
        self.drain()

    def drain(self) -> None:
        items = self._items
        batches = 0
        launch = False  # what this thread applied needs ``after``
        while items:
            taken = False  # the role: taken inside the ``try``, with no call in between
            role = self._role
            try:
                with role.taking:
                    if not role.held:
                        role.held = taken = True
                if not taken:
                    # The thread holding the role applies ours; it may apply only starts, and
                    # so skip ``after``: what this thread applied before is launched here.
                    if launch:
                        self._after()
                    return
                with self._lock:
                    mine = self._hold()
                    try:
                        # At most a batch per hold: the flow body, a cancel or a view
                        # waiting for the lock get it between batches.
                        for _ in range(min(len(items), BATCH)):
                            # Taken off once applied: one a Ctrl-C cut short stays for the
                            # next drain (``given_back``), applied again whole (its task
                            # runs ended are stale then). Lost, a local call's end left the
                            # slot its cancel kept for it taken for good.
                            apply, args, then = items[0]
                            launch = launch or then
                            try:
                                apply(*args)
                            except KeyboardInterrupt:
                                if isinstance(apply, BuiltinFunctionType):
                                    # Applied whole (a logging call's ``list.append``): in
                                    # C a Ctrl-C lands only once it returned. Applied
                                    # again, the value was logged twice.
                                    items.popleft()
                                raise
                            except BaseException:
                                items.popleft()
                                raise
                            items.popleft()
                    finally:
                        try:
                            if self._filled:
                                self._send()
                        finally:
                            self._let_go(mine)  # the batch's events to the subscribers
                        self._changed.notify_all()
                    if launch and self._launch_from is not None and not any(self._launch_from):
                        launch = False  # ``after`` would find nothing to do
            finally:
                if taken:
                    role.give_back()
            batches += 1
            if items and batches % 4:
                continue  # more came while this thread applied: those first
            # Without the role: ``after`` may wait (launching waits for a store that lags),
            # and meanwhile another thread applies what is reported.
            if launch:
                launch = False
                self._after()
