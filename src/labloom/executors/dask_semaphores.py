"""Concurrency limits on a Dask cluster: one ``distributed.Semaphore`` per limited tag.

The engine acquires a lease *before* it submits a task run, so a waiting task run is a line in
the scheduler's semaphore queue, not a worker thread sleeping. Every client of the scheduler
shares the semaphore, so the limit holds across flow runs, kernels and machines; a client that
dies loses its leases after distributed's lease timeout (a wait for one is said: ``SAY_AFTER``).

Within one executor, acquisitions for one tag queue on an asyncio lock, so at most one acquire
request per tag is outstanding at the scheduler however many task runs wait.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from .. import limits
from . import dask_internals

# A wait this long at the cluster's semaphore, once the store granted the slot, is said: a
# live holder gives its lease back within moments of its store slot.
SAY_AFTER = 2.0


def semaphore_name(tag: str, n: int) -> str:
    # The scheduler fixes a semaphore's size at creation; naming it by size lets a changed
    # limit take effect (clients that agree on the limit share one semaphore).
    return f"labloom-limit-{tag}-{n}"


class DaskLimiter:
    """An executor's limits on its cluster. ``deliver(fn)`` calls ``fn`` off the event loop
    (the executor's event-delivery thread). ``connect()`` gives the client, asked for at the
    first limit: a run made while its scheduler is down (a cluster restarting) starts, and
    may retry (``@flow(retries=...)``), instead of raising before it exists."""

    def __init__(self, connect: Callable[[], Any],
                 deliver: Callable[[Callable[[], None]], None]) -> None:
        self._connect = connect
        self._client: Any = None
        self._deliver = deliver
        self._semaphores: dict[tuple[str, int], Any] = {}
        self._tag_locks: dict[str, asyncio.Lock] = {}
        # holder -> semaphores it holds a lease of (touched on the event loop only)
        self._held: dict[str, list[Any]] = {}

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        if not tags:
            return True
        wanted = limits.lookup(tags)
        if not wanted:
            return True
        self._run(self._acquire, holder, sorted(wanted.items()), granted)
        return False

    def release(self, tags: frozenset[str], holder: str) -> None:
        if tags:
            self._run(self._release, holder)

    def _run(self, coroutine: Callable[..., Any], *args: Any) -> None:
        # Here, not on the event loop: what the coroutine reads of ``_client`` is this one.
        self._client = self._connect()
        # Made on the event loop: one made here and then cut short by a Ctrl-C before it was
        # handed over was never awaited (a RuntimeWarning; tests/test_interrupt_dask_slots.py).
        self._client.loop.asyncio_loop.call_soon_threadsafe(_start, coroutine, args)

    def _semaphore(self, tag: str, n: int) -> Any:
        semaphore = self._semaphores.get((tag, n))
        if semaphore is None:
            semaphore = self._semaphores[(tag, n)] = dask_internals.semaphore(
                self._client, semaphore_name(tag, n), n
            )
        return semaphore

    async def _acquire(
        self, holder: str, wanted: list[tuple[str, int]], granted: Callable[[], None]
    ) -> None:
        held = self._held.setdefault(holder, [])
        # Sorted tag order everywhere: two multi-tag runs never wait on each other in a cycle.
        for tag, n in wanted:
            semaphore = self._semaphore(tag, n)
            lock = self._tag_locks.setdefault(tag, asyncio.Lock())
            async with lock:
                if not await _awaited(semaphore.acquire(timeout=SAY_AFTER)):
                    address = self._client.scheduler.address
                    self._deliver(functools.partial(_say_waiting, holder, tag, n, address))
                    await _awaited(semaphore.acquire(timeout=None))
            held.append(semaphore)
            if self._held.get(holder) is not held:
                # Given back while it waited: its task run's ask a Ctrl-C cut short
                # (``Launcher._ask_slot``). Nobody would give back the leases taken.
                for taken in held:
                    await _awaited(taken.release())
                return
        # The grant takes the run's lock: never on the event loop.
        self._deliver(granted)

    async def _release(self, holder: str) -> None:
        held = self._held.pop(holder, None)
        if held is None:
            return
        for semaphore in held:
            await _awaited(semaphore.release())  # its oldest lease: each holder took one


_going: set[asyncio.Future[Any]] = set()  # asyncio keeps only weak references to its tasks


def _start(coroutine: Callable[..., Any], args: tuple[Any, ...]) -> None:
    going = asyncio.ensure_future(coroutine(*args))
    _going.add(going)
    going.add_done_callback(_going.discard)


async def _awaited(result: Any) -> Any:
    # Semaphore's public methods return a coroutine when called on the client's event loop
    # (where this module calls them), and the value itself elsewhere.
    return await result if inspect.isawaitable(result) else result


def _say_waiting(holder: str, tag: str, n: int, address: str) -> None:
    """Said in the waiting task run's logs and on the process's log (in the executor's event
    delivery, holding no lock). The store counts live holders only (a dead process's slot is
    swept at once), so a task run that it granted but whose lease the cluster refuses waits
    for a lease no live run of this store holds: most often one of a process killed mid-task,
    which Dask gives back only after its lease timeout, in silence until now."""
    import logging
    import time

    from ..core import sink_registry
    from ..core.logs import outside_task

    text = (
        f"[labloom] waiting for a slot of concurrency limit {tag!r} ({n}) on the Dask cluster "
        f"at {address}: all {n} are held there, at least one by no live run of this store. A "
        "slot held by a run whose process ended without giving it back (killed) comes back "
        "after Dask's lease timeout (distributed.scheduler.locks.lease-timeout, 30s by "
        "default); a run on another store may also hold it"
    )
    run_id = holder.rpartition(".")[0]  # a task run's id is its run's, numbered
    sink = sink_registry.local_sink(run_id)
    if sink is not None:
        sink.task_log(run_id, holder, logging.WARNING, time.time(), text)
    with outside_task():
        logging.getLogger("labloom").warning("%s (task run %s)", text, holder)
