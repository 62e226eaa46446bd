"""Getting task runs to the Dask scheduler: in batches, and short map children in chunks.

``Submitter`` sends what accumulated since its last message as one graph: ``client.submit``
costs the scheduler one graph update per task, so a map of 5,000 children submitted one by
one took about 1.5x the time of ``client.map``.

Map children are packed into chunks, each one Dask task (``dask_outcomes.run_chunk``), as many
per chunk as ``batch_size=N`` says or, by default, as ``dask_chunking`` chooses from measured
durations: scheduling, transfer and bookkeeping are paid per chunk, not per child, while each
child keeps its own task run. Inside a chunk each child is a ``TaskCall`` of its own: it
reports running, its log lines, its start and end to the engine as any task run does, has its
own timeout and cache file, and fails alone (its retry is sent on its own). One that runs on
holds its siblings after it no longer than ``dask_chunking.GIVE_BACK_AFTER``: they go out again
one per Dask task (``dask_chunk_ends``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.attempt import TaskCall
from ..core.executor import Outcome
from ..core.interrupts_held import InterruptsHeld
from ..core.wakeup import Wakeup
from . import dask_events as events
from .dask_chunk_ends import ChunkEnds
from .dask_chunking import Probes, chunk_size, probe_count
from .dask_entries import ClientOwner, Entry, Handle, Member, attempt_key, single, task_name_of
from .dask_internals import future_of, send_graph, task_spec, watch
from .dask_outcomes import chunk_not_sent, run_chunk
from .dask_packing import pack

# (``Handle`` and the rest were here before ``dask_entries``: tests and benchmarks import them
# from this module.)
__all__ = ["ClientOwner", "Handle", "Member", "Submitter", "single", "task_name_of"]

log = logging.getLogger("labloom")

IDLE_EXIT = 5.0  # seconds the submitting thread waits for work before it ends
GATHER_WAIT = 0.005  # how long an unfilled chunk waits for more children to arrive


class Submitter:
    def __init__(self, executor: ClientOwner) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self._pending: dict[str, Entry] = {}
        self._members: list[Member] = []
        # Children held back until their map is measured: looked at again when a probe ended
        # (``_recheck``) or the thread idled, not on every launch block's wake-up.
        self._held: list[Member] = []
        self._recheck = False
        # Per (run, task name) of automatic maps launched unmeasured: their probes (and the
        # size they decided, for the map's life: ``forget`` drops them).
        self._probes: dict[tuple[str, str], Probes] = {}
        self._wake = Wakeup()  # not a threading.Event: see core/wakeup.py
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.chunk_ends = ChunkEnds(executor, self.add, self.may_hang)

    def add(self, key: str, entry: Entry, resources: dict[str, float] | None = None) -> None:
        """Send ``entry`` with the next batch; its ``done(future)`` runs once it finished."""
        with self._lock:
            if resources:
                entry = (entry[0], tuple(sorted(resources.items())), *entry[2:])
            self._pending[key] = entry
            self._start()
        self._wake.set()

    def add_members(self, members: list[Member]) -> None:
        """Map children that may share a Dask task: they wait to fill a chunk."""
        if not members:
            return
        with self._lock:
            self._members += members
            self._start()
        if not self._wake.is_set():  # a map's children come in blocks: one wake-up will do
            self._wake.set()

    def _start(self) -> None:
        self._stopped = False
        if self._thread is None:
            with InterruptsHeld():  # kept and not started: taken for running, nothing sent
                self._thread = threading.Thread(target=self._loop, name="labloom-dask-submit",
                                                daemon=True)
                self._thread.start()

    def drop(self, keys: set[str]) -> None:
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)

    def forget(self, run_id: str) -> None:
        """The run ended: its maps' probes no longer matter, and its children still waiting
        for a chunk are never sent."""
        with self._lock:
            for key in [k for k in self._probes if k[0] == run_id]:
                del self._probes[key]
            self._members = [m for m in self._members if m[0].run_id != run_id]
            self._held = [m for m in self._held if m[0].run_id != run_id]
        self.chunk_ends.forget(run_id)

    def stop(self) -> None:
        """End the thread (the executor's shutdown); a later ``add`` starts another."""
        with self._lock:
            self._stopped = True
        self._wake.set()

    def _loop(self) -> None:
        while True:
            woken = self._wake.wait(IDLE_EXIT)
            with self._lock:
                if self._held and (self._recheck or not woken):  # first: gathering counts them
                    self._members[:0] = self._held
                    self._held, self._recheck = [], False
            growing = self._gather_members()
            with self._lock:
                batch, self._pending = self._pending, {}
                members, self._members = self._members, []
                if not batch and not members and not self._held and (
                        self._stopped or not woken):
                    self._thread = None  # stopped, or idle: a later add starts another
                    return
            failed: set[str] = set()  # keys whose task runs were already told they failed
            try:
                self._send(batch, members, growing, failed)
            except Exception as exc:  # a dead thread would leave its runs waiting forever
                self._not_sent(batch, members, exc, failed)
            # Not kept while waiting: they hold futures, and a run's futures must go with it.
            del batch, members

    def _not_sent(
        self, batch: dict[str, Entry], members: list[Member], error: Exception, failed: set[str]
    ) -> None:
        """Each task run of a batch that broke off is told once, except those put back."""
        log.exception("labloom: sending tasks to Dask failed")
        with self._lock:
            waiting = {id(member) for member in (*self._members, *self._held)}  # put back
        for key, entry in batch.items():
            if key not in failed:
                entry[2](error)
        chunk_not_sent([
            member[4] for member in members if id(member) not in waiting
            and (member[3].future is None or member[3].future.key not in failed)
        ])(error)

    def known_size(self, call: TaskCall, name: str) -> int | None:
        """Children per Dask task for ``call``'s map (of task ``name``), None while unknown:
        what its probes decided if it was launched unmeasured, else from the task's mean."""
        if isinstance(call.batch_size, int):
            return call.batch_size
        probes = self._probes.get((call.run_id, name))
        if probes is not None:
            return probes.size
        mean = self._executor.dispatcher.mean_duration(name)
        return None if mean is None else chunk_size(mean)

    def _gather_members(self) -> bool:
        """Children are launched one by one: wait while they keep coming, but no longer than
        it takes to fill a chunk. True when more were still arriving. Children held back until
        their task is measured do not count."""
        seen = -1
        # Counted per chunk to fill, as ``_chunks`` packs them: children of one map may have
        # been given different sizes (the measured mean moved between decisions). Comparing
        # all of them with the largest size said "full" while no chunk was, and the thread
        # spun, sending nothing, forever.
        groups: dict[tuple[str, str, int], int] = {}
        # Each look counts only the children that arrived since the last (and those still
        # undecided): counting all of them each time cost a chunk of 1,000 about 10,000 looks.
        counted = 0
        watched: list[Member] | None = None
        undecided: list[Member] = []
        while True:
            with self._lock:
                members = self._members
                if members is not watched:  # a new list (a run forgotten): count again
                    watched, counted, undecided = members, 0, []
                    groups.clear()
                looked_at = undecided + members[counted:]
                counted = len(members)
            undecided = []
            for member in looked_at:
                call, name = member[0], member[3].task
                size = self.known_size(call, name)
                if size is None:
                    undecided.append(member)
                    continue
                key = (call.run_id, name, size)
                groups[key] = groups.get(key, 0) + 1
            count = sum(groups.values())
            if count in (0, seen):
                return False
            if any(n >= size for (_, _, size), n in groups.items()):
                return True
            seen = count
            time.sleep(GATHER_WAIT)

    def _send(
        self, batch: dict[str, Entry], members: list[Member], growing: bool, failed: set[str]
    ) -> None:
        batch = dict(batch)  # chunks join it here; the caller's copy says what was asked
        chunks, alone, rest, held = self._chunks(members, full_only=growing)
        if rest or held:
            with self._lock:
                self._members[:0] = rest
                self._held += held  # after those held before: they were launched first
        if rest:  # an unfilled chunk waits for the children still arriving
            self._wake.set()
        if not (batch or chunks or alone):
            # Nothing to send (e.g. the children of a cancelled run): the client is not asked
            # for, since asking for it after a cluster per run closed would start another.
            return
        client = self._executor.client
        # (held children wait for a probe's end, which wakes this thread)
        for call, args, kwargs, handle, on_done in alone:
            key, entry = single(self._executor, call, args, kwargs, handle, on_done)
            batch[key] = entry
        for key, chunk in chunks.items():
            chunk_future = future_of(key, client)
            for index, (_, _, _, handle, _) in enumerate(chunk):
                handle.future, handle.index = chunk_future, index
            # Packed: the children's shared fields travel once (``dask_packing``); only their
            # arguments are searched for futures.
            calls = pack([call for call, _, _, _, _ in chunk])
            keywords = [kwargs for _, _, kwargs, _, _ in chunk]
            arguments = [args for _, args, _, _, _ in chunk]
            # Numbers and strings hold no future: Dask need not look through a thousand
            # children's arguments for one (about 2 µs a child in this thread).
            plain = frozenset((1,)) if _plain(arguments) else frozenset()
            spec = task_spec(key, run_chunk, calls, arguments,
                             keywords if any(keywords) else None, plain=plain)
            # Its ending known before it is sent: a hanging child may give siblings back at once.
            batch[key] = (spec, (), chunk_not_sent([m[4] for m in chunk]), chunk_future,
                          self.chunk_ends.ended_of(chunk))
        groups: dict[tuple[tuple[str, float], ...], dict[str, Any]] = {}
        for key, (spec, resources, *_) in batch.items():
            groups.setdefault(resources, {})[key] = spec
        watched: list[tuple[Any, Callable[[Any], None]]] = []
        for resources, graph in groups.items():
            try:
                send_graph(client, graph, dict(resources) or None)
            except Exception as exc:  # e.g. an argument that cannot be pickled
                sent = self._send_those_that_can_travel(client, graph, resources, exc, batch)
                failed.update(key for key in graph if key not in sent)
                if not sent:
                    continue
                graph = sent
            for key in graph:
                done = batch[key][4]
                assert done is not None
                watched.append((batch[key][3], done))
        watch(client, watched)

    def _send_those_that_can_travel(
        self, client: Any, graph: dict[str, Any], resources: tuple[tuple[str, float], ...],
        error: Exception, batch: dict[str, Entry],
    ) -> dict[str, Any]:
        """A graph Dask could not send: its tasks whose arguments cannot be serialized fail,
        saying so; the others are sent again (one task's lock or connection failed every
        task sent with it). Returns what was sent."""
        bad = {key: events.pickling_error(spec) for key, spec in graph.items()}
        rest = {key: spec for key, spec in graph.items() if bad[key] is None}
        for key, why in bad.items():
            if why is not None:
                batch[key][2](events.unsendable(why))
        if rest and len(rest) < len(graph):
            try:
                send_graph(client, rest, dict(resources) or None)
                return rest
            except Exception as exc:
                error = exc
        for key in rest:  # nothing to blame on an argument: the send itself broke
            batch[key][2](error)
        return {}

    def _chunks(
        self, members: list[Member], full_only: bool = False
    ) -> tuple[dict[str, list[Member]], list[Member], list[Member], list[Member]]:
        """The members as chunks by key, those sent alone, those waiting for their chunk to
        fill, and those held back until their task is measured."""
        by_task: dict[tuple[str, str, int], list[Member]] = {}
        alone: list[Member] = []
        held: list[Member] = []
        for i, member in enumerate(members):
            call, handle = member[0], member[3]
            if handle.cancelled:
                continue
            name = handle.task
            size = self._size(call, name)
            if size is None:
                held.append(member)
            elif size == 1:
                # In place: a send that breaks fails a probe through its end (``_not_sent``)
                members[i] = self._probe(member, name)
                alone.append(members[i])
            else:
                by_task.setdefault((call.run_id, name, size), []).append(member)
        chunks: dict[str, list[Member]] = {}
        rest: list[Member] = []
        for (_, name, size), group in by_task.items():
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                if full_only and len(chunk) < size:
                    rest += chunk
                    continue
                first = chunk[0][0]
                chunks[f"{name}-chunk-{attempt_key(first)}"] = chunk
        return chunks, alone, rest, held

    def _size(self, call: TaskCall, name: str) -> int | None:
        """As ``known_size``, and for a map not measured yet: 1 for a probe, None to hold."""
        known = self.known_size(call, name)
        if known is not None:
            call.batch_size = known  # decided (``known_size`` then answers at once)
            return known
        probes = self._probes.get((call.run_id, name)) or self.plan_probes(call.run_id, name)
        return probes.next_size()

    def plan_probes(self, run_id: str, name: str) -> Probes:
        """The probes of a map (of task ``name``) not measured yet, two per cluster thread:
        planned by the launching thread (``DaskExecutor.submit_all``), as asking the scheduler
        from this one waited while the launch held the interpreter (43 ms: no probe went out
        before the whole map was launched)."""
        key = (run_id, name)
        probes = self._probes.get(key)
        if probes is None:
            try:
                threads = sum(self._executor.client.nthreads().values())
            except Exception:  # no answer: the fewest probes; sending finds the rest out
                threads = 0
            with self._lock:
                probes = self._probes.setdefault(key, Probes(probe_count(threads)))
        return probes

    def _probe(self, member: Member, name: str) -> Member:
        """A child (of task ``name``) sent alone: if a probe (its map unmeasured), its end
        counts, and wakes this thread once the children held back can go (``Probes.end``)."""
        call, args, kwargs, handle, on_done = member
        probes = self._probes.get((call.run_id, name))
        if probes is None or probes.sent >= probes.limit:
            return member
        probes.sent += 1

        def ended(outcome: Outcome) -> None:
            with self._lock:
                undecided = probes.size is None
                # A failure's duration says nothing of the experiments' (an invalid
                # configuration failing at once)
                decided = probes.end(*((outcome.started, outcome.ended) if outcome.ok
                                       else (0.0, 0.0)))
                self._recheck = self._recheck or decided
            if decided:
                if undecided and probes.size is not None:
                    _said_decided(call.run_id, name, probes)
                self._wake.set()
            on_done(outcome)

        return call, args, kwargs, handle, ended

    def may_hang(self, run_id: str, name: str) -> None:
        """A child of task ``name`` held its chunk's siblings: "auto" packs that task no more
        (counted as endless: ``chunk_size`` of it is 1), this run's map included."""
        with self._lock:
            probes = self._probes.get((run_id, name))
            if probes is not None:
                probes.size = 1
        durations = self._executor.dispatcher.durations
        count, _ = durations.get(name, (0, 0.0))
        durations[name] = (max(count, 1), math.inf)


def _said_decided(run_id: str, name: str, probes: Probes) -> None:
    """On labloom's log (debug): what a map's probes measured, and the chunks they decided
    (why a map of quick tasks went one child per Dask task: the machine paused its probes);
    the record carries them as ``labloom_probes``, (size, seconds measured)."""
    log.debug("[labloom] run %s: the probes of %r measured %s ms: %d per Dask task", run_id,
              name, ", ".join(f"{seconds * 1000:.2f}" for seconds in probes.measured),
              probes.size, extra={"labloom_probes": (probes.size, list(probes.measured))})


_PLAIN = frozenset((int, float, str, bytes, bool, type(None)))


def _plain(arguments: list[tuple[Any, ...]]) -> bool:
    """Whether every argument is a number, a string, bytes or None (never a future)."""
    plain = _PLAIN
    return all(type(arg) in plain for args in arguments for arg in args)
