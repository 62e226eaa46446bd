"""A worker process of labloom's own LocalCluster ends its heartbeat before it closes.

A Dask worker sends the scheduler a heartbeat every 0.5 s (a cluster of up to ten). Its
``close()`` stops that timer but does not wait for a heartbeat already sent: a few steps later
it closes its connections (``await self.rpc.close()``), and a heartbeat still waiting for the
scheduler's answer then fails with ``CommClosedError``, logged in that worker process as
"Failed to communicate with scheduler during heartbeat." and a traceback (or, caught before it
was sent, "Unexpected exception during heartbeat" with ``ConnectionPool is closed``). The
scheduler was still there: labloom closes the workers first (``dask_cluster_close``). On a
loaded machine a heartbeat takes long enough for that to happen: `labloom run` of the README's
sweep ended, after "Completed", on that traceback (session 51). Related upstream:
dask/distributed#7192.

So a worker plugin, whose ``teardown`` a closing worker awaits before it closes its
connections, stops the heartbeat's timer and waits for the heartbeat in flight to end: a
heartbeat failing while the run goes on is still logged, as it is a real fault. To know
which heartbeat is in flight it drives the heartbeat itself: the worker's timer
(``periodic_callbacks["heartbeat"]``, which the scheduler's answer retimes) is swapped for one
calling ``Worker.heartbeat`` through it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

# Longest wait for the heartbeat in flight as the worker closes: an answer from a live
# scheduler takes milliseconds; a scheduler gone or stuck is not waited for longer than this
# (a closing busy worker has 3.2 s before its nanny kills it).
_IN_FLIGHT_WAIT = 2.0


class HeartbeatBeforeClose(WorkerPlugin):
    """Registered on labloom's own LocalClusters (the embedded one, a run's): see above."""

    name = "labloom-heartbeat-before-close"
    idempotent = True

    def __init__(self) -> None:
        self._beat: _Heartbeat | None = None

    def setup(self, worker: Any) -> None:
        # Only a worker process of its own: an in-process worker (processes=False) closes with
        # the kernel's loop, and what it logs is the kernel's.
        if multiprocessing.parent_process() is None:
            return
        from tornado.ioloop import PeriodicCallback

        callbacks = worker.periodic_callbacks
        old = callbacks.get("heartbeat")
        if old is None:  # a distributed without it: nothing to order
            return
        self._beat = _Heartbeat(worker)
        timer = PeriodicCallback(self._beat, old.callback_time)
        running = old.is_running()
        old.stop()
        callbacks["heartbeat"] = timer
        # Registered on a running worker: started here. On a worker (re)starting, the timer is
        # started by its registration with the scheduler, after the plugins' setup.
        if running:
            timer.start()

    async def teardown(self, worker: Any) -> None:
        from distributed.core import Status

        beat = self._beat
        # Also called when the plugin is unregistered from a running worker: its heartbeat
        # must go on then.
        if beat is None or worker.status not in (Status.closing, Status.closed, Status.failed):
            return
        timer = worker.periodic_callbacks.get("heartbeat")
        if timer is not None:
            timer.stop()
        await beat.ended()


class _Heartbeat:
    """``Worker.heartbeat`` as the timer's callback, the one in flight known."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.in_flight: asyncio.Task[Any] | None = None

    async def __call__(self) -> None:
        self.in_flight = asyncio.current_task()
        try:
            await self.worker.heartbeat()
        finally:
            self.in_flight = None

    async def ended(self) -> None:
        task = self.in_flight
        # A heartbeat may close the worker itself (the scheduler forgot it, or the heartbeat
        # failed oddly): that close runs inside the heartbeat, which is not waited for.
        if task is None or task is asyncio.current_task():
            return
        await asyncio.wait({task}, timeout=_IN_FLIGHT_WAIT)


def own_worker_plugins(client: Any) -> None:
    """Register on ``client``'s cluster (a LocalCluster of labloom's own) the plugins its worker
    processes need: deaf to Ctrl-C, their heartbeat ended before they close, and a failure
    labloom records not logged again by distributed."""
    from .dask_worker_failures import QuietRecordedFailures
    from .dask_worker_signals import ignore_interrupts

    ignore_interrupts(client)
    client.register_plugin(HeartbeatBeforeClose(), name=HeartbeatBeforeClose.name)
    client.register_plugin(QuietRecordedFailures(), name=QuietRecordedFailures.name)
