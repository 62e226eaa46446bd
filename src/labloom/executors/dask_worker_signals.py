"""The embedded LocalCluster's worker processes ignore SIGINT, from their start.

They are the kernel's children, in its process group, and JupyterLab's Interrupt button (like a
terminal's Ctrl-C) sends SIGINT to the whole group: each worker process died of it
(dask/distributed#1925), and every later Dask cell of the kernel hung on a cluster without
workers. The interrupt is meant for the kernel, whose KeyboardInterrupt cancels the run.

A worker closed while it runs a task (the run was interrupted, a cluster per run closes as its
cancelled run ends) says, once per task, "Async instruction for <Task cancelled
name="execute('...')" ...> ended with CancelledError": a warning that distributed gives only
for a close (its own comment says so), two long lines after a Ctrl-C that had said what
happened. On these workers, labloom's own, it is not printed.

While the cluster starts, the plugin is not yet there: a Ctrl-C then reached each worker
process in the middle of its imports, and each printed a KeyboardInterrupt traceback (pages,
for one key press). So the cluster is started from a thread that blocks SIGINT
(``start_deaf_to_interrupts``): the threads of its event loop, which spawn the workers, inherit
that mask, and a spawned process keeps the mask it was born with. If `labloom run` exits on
that Ctrl-C before the workers are up, it kills them first (``core/abandoned_children``).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from distributed.diagnostics.plugin import WorkerPlugin

from ..core.abandoned_children import ChildStart

Started = TypeVar("Started")


class IgnoreInterrupts(WorkerPlugin):
    """Registered once on the embedded cluster; the scheduler gives it to restarted workers."""

    name = "labloom-ignore-interrupts"
    idempotent = True

    def setup(self, worker: Any) -> None:
        # Only a worker process of its own, on its main thread (the only one that may set a
        # handler): an in-process worker (processes=False) runs in a thread of the kernel, whose
        # own Ctrl-C must keep working.
        own_process = multiprocessing.parent_process() is not None
        if own_process and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if own_process:  # (an in-process worker's logger is the kernel's: left as it is)
            logging.getLogger("distributed.worker.state_machine").addFilter(_cancelled_by_close)


def _cancelled_by_close(record: logging.LogRecord) -> bool:
    """False for the warning of a task's execution cancelled as its worker closes."""
    text = record.getMessage()
    return not (text.startswith("Async instruction for")
                and text.endswith("ended with CancelledError"))


def ignore_interrupts(client: Any) -> None:
    """Make the worker processes of ``client``'s (embedded) cluster ignore SIGINT."""
    client.register_plugin(IgnoreInterrupts(), name=IgnoreInterrupts.name)


def start_deaf_to_interrupts(start: Callable[[], Started], close: Callable[[Started], Any]) -> Started:
    """``start()`` run in a thread that blocks SIGINT, waited for here (where a Ctrl-C still
    interrupts: it is meant for this process, which cancels the run). What an interrupted wait
    leaves starting is closed with ``close`` once it is up: nobody will use it."""
    box: dict[str, Any] = {}
    lock = threading.Lock()
    children = ChildStart()  # the workers, killed if `labloom run` exits before they are up

    def run() -> None:
        try:
            if hasattr(signal, "pthread_sigmask"):  # not on Windows: no process groups there
                _start_resource_tracker()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            children.begin()
            value = start()
        except BaseException as exc:  # given to the waiting thread, which raises it
            box["error"] = exc
            return
        with lock:
            box["value"] = value
            abandoned = box.get("abandoned", False)
        if abandoned:
            close(value)
            children.closed()

    thread = threading.Thread(target=run, name="labloom-cluster-start", daemon=True)
    thread.start()
    try:
        thread.join()
    except BaseException:
        with lock:
            box["abandoned"] = True
            value = box.get("value")
        if value is not None:  # it came up as the interrupt came
            close(value)
        else:
            children.abandon()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker process, started now if it is not running.

    Started later, by the cluster's event loop, it would unblock SIGINT in that thread (its
    start blocks and then unblocks SIGINT in whatever thread starts it), and the workers spawned
    after would hear Ctrl-C again. (Its warning of "leaked semaphore objects" after an
    interrupted ``labloom run`` is not held back here: that exit lets go of them first,
    ``core/process_internals.release_before_hard_exit``, so a real leak is still said.)
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
