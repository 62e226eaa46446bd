"""The task threads of a ``ThreadExecutor``: one queue and a few threads, nothing per call.

``concurrent.futures.ThreadPoolExecutor`` made a ``Future`` (with its ``Condition`` and lock)
and a work item per call, took two module-wide locks at each submit and a semaphore at each
end: 8-11 µs of CPU per call, about a tenth of a no-op task run (issue 21 §2), for results
labloom never reads (a call reports its own end). Threads start as calls come, up to
``max_workers``, named ``<prefix>_<i>`` as the standard pool's. As with it, a process that
exits runs the calls already queued (the engine cancels its runs first, ``at_exit``: a
cancelled call returns at once) and waits for the threads; ``shutdown`` drops what waits; and
a pool nobody holds any more ends its threads once the calls queued ran (a run given its own
``ThreadExecutor(4)`` left four idle threads behind for the life of the process, per run).

A pool ends with one ``None`` on its queue, which each thread that takes it puts back: one put,
made again at no harm, ends every thread, also one started as the pool closed. One ``None`` per
thread, put once by the pool's finalizer, was lost for good when a Ctrl-C landed before the
puts (in ``InterruptsHeld.__enter__``, before its swap): the threads waited on the queue and the
process's exit joined them for ever (session 52). The exit puts one again on the queue of every
thread still there (``_at_exit``): a finalizer cut short, in ``weakref``'s own code, is one too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ..core.interrupts_held import InterruptsHeld
from ..core.threading_internals import register_at_exit

log = logging.getLogger("labloom")
Call = tuple[Callable[..., None], tuple[Any, ...]]

_pools: weakref.WeakSet[ThreadPool] = weakref.WeakSet()
# Every pool's threads, also those of a pool already collected (they end after its last
# calls), each with its pool's queue: where the exit tells it to end.
_threads: weakref.WeakKeyDictionary[threading.Thread, queue.SimpleQueue[Call | None]]
_threads = weakref.WeakKeyDictionary()
_registered = False
_registering = threading.Lock()


def _at_exit() -> None:
    """Before the interpreter joins its threads: each pool's threads end once the calls
    queued before this ran."""
    for pool in list(_pools):
        pool.close(drop=False)
    for calls in {id(calls): calls for calls in list(_threads.values())}.values():
        calls.put(None)  # a pool collected, its finalizer cut short by a Ctrl-C


# How long the exit lets idle threads end before it counts the ones still in a call.
_IDLE_ENDS_WITHIN = 0.2
STILL_RUNNING = (
    "[labloom] waiting for {count} task call(s) still running before the process exits: Python "
    "cannot stop a thread, and a call returns when its code does (their runs are recorded "
    "already). Press Ctrl-C again to exit now."
)


def _say_calls_still_running() -> None:
    """The last of labloom's exit hooks (registered first, at import: they run in reverse),
    after the runs still going were cancelled and the pools closed: a thread still in a call
    holds the exit until the call returns, which is said, so that a Ctrl-C that cancelled a run
    is not followed by a silent wait as long as the task's code runs (a training of an hour)."""
    # A daemon thread (made by a background run's thread, whose kind it takes) holds nothing.
    threads = [thread for thread in list(_threads) if not thread.daemon]
    deadline = time.monotonic() + _IDLE_ENDS_WITHIN
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = sum(thread.is_alive() for thread in threads)
    if busy:
        sys.stderr.write(STILL_RUNNING.format(count=busy) + "\n")
        sys.stderr.flush()


register_at_exit(_say_calls_still_running)


class ThreadPool:
    def __init__(self, max_workers: int | None, prefix: str,
                 busy: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
                 ) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._prefix = prefix
        # Entered by a thread when it takes a call after waiting, left before it waits again:
        # what each call would set up and undo (the task threads' capture of prints and log
        # records) is set up once while calls keep coming.
        self._busy = busy
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._growing = threading.Lock()
        self._closed = False
        # The threads hold the queue, never the pool: so the pool can be collected, and then
        # its threads told to end. A C function: no Python frame of ours where a Ctrl-C lands.
        weakref.finalize(self, self._queue.put, None)
        global _registered
        with _registering:
            if not _registered:
                register_at_exit(_at_exit)
                _registered = True
            _pools.add(self)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self._closed:
            raise RuntimeError("cannot run calls on a thread pool that was shut down")
        self._queue.put((fn, args))
        # A new thread while some call waits and there is room: as many as the calls need.
        # Calls are submitted from several threads (whichever applies a run's reports
        # launches what became ready): the lock, taken only while the pool grows, keeps it
        # to ``max_workers``.
        # Held (interrupts_held.py): a Ctrl-C between the thread's count and its start left a
        # thread counted that never ran, and a ``ThreadExecutor(1)`` ran no call again.
        if len(self._threads) < self.max_workers and self._queue.qsize() > 0:
            with InterruptsHeld(), self._growing:
                if len(self._threads) < self.max_workers:
                    thread = threading.Thread(target=_work, args=(self._queue, self._busy),
                                              name=f"{self._prefix}_{len(self._threads)}")
                    self._threads.append(thread)
                    _threads[thread] = self._queue
                    thread.start()

    def queued(self) -> int:
        """Calls submitted and not started yet."""
        return self._queue.qsize()

    def close(self, drop: bool = True) -> None:
        """End the threads once idle; ``drop``: the calls not started never run."""
        self._closed = True
        if drop:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        self._queue.put(None)  # and again when the pool is collected: no harm


def _work(calls: queue.SimpleQueue[Call | None],
          busy_while: Callable[[], contextlib.AbstractContextManager[Any]]) -> None:
    take, wait = calls.get_nowait, calls.get
    busy: contextlib.AbstractContextManager[Any] | None = None
    try:
        while True:
            try:
                item = take()
            except queue.Empty:
                if busy is not None:
                    busy.__exit__(None, None, None)
                    busy = None
                item = wait()
            if item is None:
                calls.put(None)  # for the next thread: one ends them all
                return
            if busy is None:
                busy = busy_while()
                busy.__enter__()
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # never lose a thread (the standard pool kept it in a Future)
                log.exception("[labloom] a task thread's call raised")
            del item, fn, args  # nothing of a call kept while the thread waits
    finally:
        if busy is not None:
            busy.__exit__(None, None, None)

