"""How a chunk's children end: with their chunk (``dask_outcomes.report_chunk``); sent again one
per Dask task when the chunk killed its workers (only the killer fails then); or, when a child
held its siblings, before the chunk does.

The children of a chunk run in turn on one worker thread. Unchunked, a child that hangs until
its timeout costs nobody else; chunked, it held every sibling after it for that timeout (a
timeout of 60 s as the first of a chunk of 50: 49 children waited a minute for nothing). So a
child with a timeout still running after ``dask_chunking.GIVE_BACK_AFTER`` gives its siblings
back: the chunk runs none after it and says so at once (``dask_outcomes.giving_back``, a "g"
message on the run's topic, after the ends of the children that ran before it). Here, those before it end
now, those after it go out again one per Dask task, and "auto" packs that task no more. The
child itself ends with the chunk (its value is the chunk's last), by its own timeout if it
comes to that. The values of those that ended early are in the chunk's result too: a cancel
of the run leaves that chunk alone (``keeps``) rather than drop them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..core.executor import report_returned
from .dask_entries import ClientOwner, Entry, Member, single
from .dask_outcomes import cancelled, killed_workers, report_chunk

log = logging.getLogger("labloom")

# A chunk's first child's attempt: (task run id, attempt, rerun), as the worker names it.
ChunkId = tuple[str, int, int]


class _Out:
    """A chunk out whose children have a timeout: those it still reports, and the place of the
    first of them in the chunk's values."""

    __slots__ = ("given_back", "members", "start")

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.start = 0
        self.given_back = False


class ChunkEnds:
    """Owned by the ``Submitter``: ``resend`` sends a task run alone with its next batch;
    ``may_hang(run_id, task)`` tells it that a child of that task held its siblings."""

    def __init__(self, executor: ClientOwner, resend: Callable[[str, Entry], None],
                 may_hang: Callable[[str, str], None]) -> None:
        self._executor = executor
        self._resend = resend
        self._may_hang = may_hang
        self._lock = threading.Lock()
        # Only chunks whose children have a timeout (only those give children back): the
        # common chunk costs nothing more.
        self._out: dict[ChunkId, _Out] = {}
        # Keys of the chunks out whose result holds values of children reported Completed.
        self._keeping: set[str] = set()

    def ended_of(self, chunk: list[Member]) -> Callable[[Any], None]:
        """What to do once the chunk's future is done (called before it is sent)."""
        put = self._executor.dispatcher.put
        first = chunk[0][0]
        if first.timeout is None:
            return lambda done: put(self.ended, done, chunk)
        key = (first.task_run_id, first.attempt, first.rerun)
        out = _Out(chunk)
        with self._lock:
            self._out[key] = out
        return lambda done: put(self._out_ended, done, key, out)

    def _out_ended(self, chunk_future: Any, key: ChunkId, out: _Out) -> None:
        with self._lock:
            self._out.pop(key, None)
            self._keeping.discard(chunk_future.key)
        self.ended(chunk_future, out.members, out.start)

    def ended(self, chunk_future: Any, chunk: list[Member], start: int = 0) -> None:
        """Report the chunk's children (in the dispatcher thread; ``start``: the first one's
        place in its values); if its workers died (a child's crash, ``os._exit``, memory),
        send them alone: only the killer fails then."""
        if len(chunk) > 1 and killed_workers(chunk_future) and not any(
                m[3].cancelled for m in chunk):
            log.warning("labloom: a chunk of %r killed its workers: sent alone", chunk[0][3].task)
            self._send_alone(chunk)
            return
        report_chunk(chunk_future, [(call, on_done) for call, _, _, _, on_done in chunk],
                     self._executor.dispatcher, start)

    def given_back(self, key: ChunkId, slow: int) -> None:
        """The chunk first run by ``key`` runs none of its children after ``slow``, which held
        them (in the dispatcher thread, after the ends of those before it arrived)."""
        with self._lock:
            out = self._out.get(key)
        if out is None or out.given_back or slow >= len(out.members):
            return  # ended meanwhile (or its run), or run again elsewhere and given back again
        out.given_back = True
        members = out.members
        self._may_hang(members[0][0].run_id, members[0][3].task)
        before, after = members[:slow], members[slow + 1:]
        times = self._executor.dispatcher.ended_all([m[0] for m in before])
        if times is None:  # one of them failed: which, and why, the chunk's end says
            out.members = members[:slow + 1]
        else:
            report_returned([(m[4], started, ended)
                             for m, (started, ended) in zip(before, times, strict=True)])
            out.members, out.start = [members[slow]], slow
            with self._lock:
                self._keeping.add(members[slow][3].future.key)
        for member in after:
            if member[3].cancelled:  # its run was cancelled: it ends so, not sent again
                member[4](cancelled(member[0]))
            else:
                self._send_alone([member])

    def keeps(self, future: Any) -> bool:
        """Whether ``future`` is a chunk still running that holds values of children already
        reported Completed (not to be cancelled: Dask would drop them)."""
        return future.key in self._keeping

    def _send_alone(self, members: list[Member]) -> None:
        for call, args, kwargs, handle, on_done in members:
            handle.index = handle.item = None
            self._resend(*single(self._executor, call, args, kwargs, handle, on_done))

    def forget(self, run_id: str) -> None:
        """The run ended: its chunks still out are no one's concern any more."""
        with self._lock:
            for key in [k for k, out in self._out.items() if out.members[0][0].run_id == run_id]:
                self._keeping.discard(self._out.pop(key).members[0][3].future.key)
