"""Saying when a Dask scheduler has no workers while runs wait on it: none as a run starts
(``say_if_no_workers``), or none left after it had some (``WorkersGone``).

Dask keeps the tasks of a scheduler without workers waiting for one to join, as its own
futures do (unless the scheduler sets ``distributed.scheduler.no-workers-timeout``): workers
may come back (a nanny or a pod restarting, a batch job queued again). labloom waits too, but
said nothing: the task runs that were running stayed Running, the others Pending, and the run
never ended, with no hint why (every worker killed, out of memory, a batch job's time up, or
workers that could not read a task and closed). Now the process's log says so once the
scheduler has had no worker for ``GRACE`` seconds (a nanny restarting its worker takes about
one), once per loss, naming each run that waits and what to do.

It looks every ``LOOK`` seconds on the client's event loop (no thread of its own), only while
runs use the executor: the cluster object's own copy of the worker list where there is one,
else one small question to the scheduler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LOOK = 1.0
GRACE = 3.0


class WorkersGone:
    """``live_runs()``: the ids of the runs using the executor; ``say(fn, *args)``: calls
    ``fn`` off the event loop (the executor's event delivery)."""

    def __init__(self, live_runs: Callable[[], list[str]],
                 say: Callable[..., None], cluster: Any = None) -> None:
        self._live_runs = live_runs
        self._say = say
        self._cluster = cluster
        self._client: Any = None
        self._callback: Any = None
        self._had_workers = False
        self._none_since: float | None = None
        self._said = False

    def watch(self, client: Any) -> None:
        """A run started on ``client``: look until no run is left (started once)."""
        if self._callback is None or self._client is not client:
            client.loop.add_callback(self._start, client)

    def _start(self, client: Any) -> None:
        from tornado.ioloop import PeriodicCallback

        if self._callback is not None and self._client is client:
            return
        self._stop()
        self._client = client
        self._callback = PeriodicCallback(self._tick, LOOK * 1000)
        self._callback.start()
        client.loop.add_callback(self._tick)  # a first look now: the workers it starts with

    def _stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
        self._callback = self._client = None
        self._had_workers, self._none_since, self._said = False, None, False

    async def _tick(self) -> None:
        client = self._client
        runs = self._live_runs()
        if client is None or client.status != "running" or not runs:
            self._stop()  # a later run starts it again
            return
        count = self._local_count()
        if count is None:
            try:
                count = (await client.scheduler.identity(n_workers=0))["n_workers"]
            except Exception:
                return  # the scheduler is going away: the run's futures say so
        if count:
            self._had_workers, self._none_since, self._said = True, None, False
            return
        if not self._had_workers or self._said:
            return  # never had one (said as each run starts), or said already
        now = time.monotonic()
        if self._none_since is None:
            self._none_since = now
        elif now - self._none_since >= GRACE:
            self._said = True
            self._say(_tell, client.scheduler.address, runs)

    def _local_count(self) -> int | None:
        info = getattr(self._cluster, "scheduler_info", None)
        workers = info.get("workers") if isinstance(info, dict) else None
        return len(workers) if isinstance(workers, dict) else None


def _tell(address: str, runs: list[str]) -> None:
    import logging

    from ..core.logs import outside_task

    with outside_task():
        for run_id in runs:
            logging.getLogger("labloom").warning(
                "[labloom] run %s: the Dask scheduler at %s has no workers left (they ended: "
                "killed, out of memory, a batch job's time up, or they could not read a task; "
                "their logs say which); its task runs wait until a worker joins, those shown "
                "Running too: start workers (dask worker %s; cluster.scale(N) for a cluster "
                "object) or cancel the run (to fail such task runs after a while instead, set "
                "distributed.scheduler.no-workers-timeout where the scheduler runs)",
                run_id, address, address)


def say_if_no_workers(client: Any, run_id: str) -> None:
    """A scheduler with no workers (none started, none could connect) holds every task run
    Pending with nothing to say why: said once per run, as it starts sending (in the
    executor's event delivery: a question to the scheduler). Not for a cluster that starts
    workers of its own (embedded, per run, adaptive)."""
    try:
        try:
            info = client.scheduler_info(n_workers=1)
        except TypeError:  # a release without the argument
            info = client.scheduler_info()
    except Exception:
        return  # only a notice: a client closing meanwhile says enough on its own
    if info.get("n_workers", len(info.get("workers", ()))):
        return
    import logging

    from ..core.logs import outside_task

    address = client.scheduler.address
    with outside_task():
        logging.getLogger("labloom").warning(
            "[labloom] run %s: the Dask scheduler at %s has no workers; its task runs "
            "wait (Pending) until one joins: start some (dask worker %s), or read the "
            "workers' logs for why they could not connect", run_id, address, address)
