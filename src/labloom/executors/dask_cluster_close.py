"""Closing the embedded LocalCluster (at exit): its worker processes given the time a loaded
machine needs to end, and one that does not end killed, said once.

``LocalCluster.close()`` has each nanny ask its worker process to stop and kill it 4 s later
("Worker process still alive after 4.0 seconds, killing", once per worker). That 4 s covers
the worker's close and then its interpreter's own exit, which for a process that imported
scikit-learn and SciPy took 2-4 s under load on a 2-core machine (session 46: the worker had
said "Worker closed"; what remained was Python tearing its modules down): so `labloom run` of
a sweep often ended on two such lines, read as a fault, for workers that were only exiting.

Here the workers are closed first, through their nannies, before the cluster: an idle worker
(no task running, by the scheduler's account) gets ``idle_exit_grace()`` (15 s, or
``LABLOOM_WORKER_EXIT_GRACE`` seconds); one still running a task keeps distributed's own 4 s, as
a call that does not return (a C call holding the GIL) would never let it stop. One killed is
said once, plainly, for all of them.

A ``LocalCluster`` per run (``dask_clusters.RunCluster``) closes the same way, named as the
run's; after a cancelled run every worker counts as busy (the scheduler forgot the cancelled
calls that still run). A Ctrl-C while either closes kills the workers left at once, said in
one line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

from ..core.env_numbers import env_number
from ..core.errors import ClusterConfigError

log = logging.getLogger("labloom")

# Seconds an idle worker process may take to end once asked (then it is killed): its
# interpreter's exit under load, with room to spare. ``LABLOOM_WORKER_EXIT_GRACE`` sets it.
IDLE_EXIT_GRACE = 15.0
GRACE_SETTING = "LABLOOM_WORKER_EXIT_GRACE"
# What distributed gives a worker (``Nanny.close``'s default): kept for a busy one.
BUSY_EXIT_GRACE = 4.0
# The nanny waits this share of the timeout it is given, then kills (``Nanny.kill``).
_NANNY_WAIT_SHARE = 0.8
_KILLING = "Worker process still alive after"


def idle_exit_grace() -> float:
    """Seconds an idle worker of labloom's local cluster may take to exit once asked (the
    setting). Read as the cluster starts, and kept for its close: a bad one raises a
    ClusterConfigError naming the fix before anything runs. Before, it was read as the cluster
    closed, at exit, where an error would only leave the workers to distributed's 4 s: a bad
    one was warned of and the default used."""
    grace = env_number(GRACE_SETTING, IDLE_EXIT_GRACE, "a number of seconds above 0",
                       lambda grace: 0 < grace < float("inf"), ClusterConfigError,
                       "how long an idle worker may take to exit once asked")
    if f"{grace:.1f}" == f"{BUSY_EXIT_GRACE:.1f}":
        # The nanny's line gives only the time waited: kept apart from a busy worker's, so
        # that each kill is said with its own reason.
        grace += 0.1
    return grace


class _Kills(logging.Filter):
    """On distributed's nanny logger while we close: counts its kills and keeps their lines."""

    def __init__(self, idle_grace: float) -> None:
        super().__init__()
        self.count = 0
        self.idle = 0  # of them, those given the idle grace (their line says how long)
        self._idle_wait = f" {idle_grace:.1f} seconds"

    def filter(self, record: logging.LogRecord) -> bool:
        line = record.getMessage()
        if line.startswith(_KILLING):
            self.count += 1
            self.idle += self._idle_wait in line
            return False
        return True


def close_embedded(cluster: Any, client: Any, name: str = "the embedded Dask cluster",
                   cancelled_calls: bool = False, idle_grace: float | None = None) -> None:
    """Close ``client`` and then ``cluster`` (a LocalCluster of labloom's own: the embedded
    one, or a run's), its workers first; ``name`` says which, if a worker is killed.
    ``cancelled_calls``: a run cancelled on it may have left calls running, which the
    scheduler no longer counts (their futures were cancelled): every worker is taken as busy.
    Taken as idle, each was waited for 15 s and then said to have had no task running.
    ``idle_grace``: ``idle_exit_grace()`` as read when the cluster started (None: 15 s)."""
    idle_grace = IDLE_EXIT_GRACE if idle_grace is None else idle_grace
    busy = {"*"} if cancelled_calls else _busy_workers(client)
    client.close()
    nanny_log = logging.getLogger("distributed.nanny")
    kills = _Kills(idle_grace)
    nanny_log.addFilter(kills)
    workers = list(getattr(cluster, "workers", {}).values())
    killed_at_interrupt = None
    try:
        if workers:
            try:
                cluster.sync(_close_workers, workers, busy, idle_grace)
            except Exception as exc:  # its loop is gone: the cluster's own close says why
                log.debug("closing the embedded cluster's workers: %r", exc)
        cluster.close()
    except KeyboardInterrupt:
        # Ctrl-C while it closes (an impatient user, during an idle worker's grace): not
        # waited for further, and not an "Exception ignored in atexit callback" traceback
        # with distributed's "reaping stray process" lines after it.
        killed_at_interrupt = _kill_now(workers)
    finally:
        nanny_log.removeFilter(kills)
    # The nanny's own kills are said even when a Ctrl-C came after them (the workers may all
    # have ended by then: the Ctrl-C came as the scheduler closed).
    _say_killed(name, kills.idle, "with no task running did not end within", idle_grace,
                " of being asked",
                f"the machine too loaded to let it exit? {GRACE_SETTING} gives it longer")
    _say_killed(name, kills.count - kills.idle, "still running a task did not stop within",
                BUSY_EXIT_GRACE, "", "a call of the cancelled run, still running" if
                cancelled_calls else "a call that does not return, such as one stuck in C code")
    if killed_at_interrupt is not None:
        log.warning(interrupted_line(name, killed_at_interrupt))


def interrupted_line(name: str, killed: int) -> str:
    """What a Ctrl-C while ``name`` closes is said as, ``killed`` its workers it killed."""
    if not killed:
        return f"[labloom] closing {name}: interrupted; its worker processes had ended"
    return (f"[labloom] closing {name}: interrupted; {killed} worker process"
            f"{' was' if killed == 1 else 'es were'} killed")


def _say_killed(name: str, count: int, what: str, grace: float, after: str, why: str) -> None:
    if count:
        log.warning("[labloom] closing %s: %d worker process%s %s %g s%s and %s killed (%s)",
                    name, count, "" if count == 1 else "es", what, grace, after,
                    "was" if count == 1 else "were", why)


def _kill_now(workers: list[Any]) -> int:
    """Kill the worker processes of ``workers`` (nannies) still alive; how many were."""
    processes = [getattr(getattr(nanny, "process", None), "process", None)  # AsyncProcess
                 for nanny in workers]
    killed = []
    for process in processes:
        if process is None or not process.is_alive():
            continue
        try:
            os.kill(process.pid, signal.SIGKILL)
        except OSError:  # ended meanwhile
            continue
        killed.append(process)
    # Seen ended (by the thread distributed watches each with), so that its exit does not
    # find them still running ("reaping stray process").
    deadline = time.monotonic() + 5
    while any(process.is_alive() for process in killed) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(killed)


def _busy_workers(client: Any) -> set[str]:
    """The addresses of the workers running a task, by the scheduler's account (all of them,
    if it cannot say: then no worker gets more than distributed's time)."""
    if client.status != "running":  # closed by the user: not asked (it could not answer)
        return {"*"}
    try:
        processing = client.processing()
    except Exception:
        return {"*"}
    return {address for address, keys in processing.items() if keys}


async def _close_workers(workers: list[Any], busy: set[str], idle_grace: float) -> None:
    async def close(worker: Any) -> None:
        address = getattr(worker, "worker_address", None) or getattr(worker, "address", None)
        grace = BUSY_EXIT_GRACE if ("*" in busy or address in busy) else idle_grace
        try:
            await worker.close(timeout=grace / _NANNY_WAIT_SHARE)
        except Exception as exc:  # the cluster's own close tries again, and says why
            log.debug("closing a worker of the embedded cluster: %r", exc)

    await asyncio.gather(*(close(worker) for worker in workers))
