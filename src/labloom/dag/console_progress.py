"""Terminal progress for scripts and the CLI: an observer of the event stream, attached to
every run outside a notebook by ``defaults.py`` (a library feature, so it lives below the CLI).

On a terminal it redraws a compact table (one row per graph node: done / running / failed);
otherwise it prints plain lines: start, failures and retries, each node as it completes, end.
It writes to stderr, as labloom's own messages do, so a flow's prints alone go to stdout and
can be piped; the start line is written when the run is attached, before any task prints.
A run on Dask then says its dashboard's link ("labloom: Dask dashboard: http://...:8787/status",
what the cell's and Lab's "Dask dashboard" links open) once its cluster is up: the start line
comes before the cluster starts (seconds, for the embedded one), so it cannot hold the link.
The link is said in the run's own thread (``FlowRun.when_announced``), before any task starts:
said from the delivery thread, a task printing at once printed before it.
Names and messages come from tasks: shown as the CLI shows them (``terminal_text.printable``),
never able to drive the terminal (a task named with U+202E read backwards, an exception's
message holding ESC ]0; retitled the window).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..core import events as ev
from ..core.states import BAD_STATES, State
from ..core.terminal_text import printable

_REDRAW_EVERY = 0.2
_PENDING = State.PENDING.value
_TOLD = (State.FAILED.value, State.RETRYING.value)  # a plain line each


# A state's value, not the state, keys the counts: an enum's hash is a Python call, and the
# progress takes two lookups per state change on every task run of a run.
_FINAL = frozenset(state.value for state in State if state.is_final)


@dataclass
class _NodeCounts:
    name: str
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # task runs by state's value
    seen: int = 0  # distinct task runs announced
    final: int = 0  # how many of them are final, kept so ``finished`` is O(1)

    def move(self, previous: str | None, state: str) -> None:
        """One task run from ``previous`` (None: new) to ``state`` (states' values)."""
        counts = self.counts
        if previous is None:
            self.seen += 1
        else:
            counts[previous] -= 1
            self.final -= previous in _FINAL
        counts[state] = counts.get(state, 0) + 1
        self.final += state in _FINAL

    def count(self, *wanted: State) -> int:
        return sum(self.counts.get(state.value, 0) for state in wanted)

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.final == self.seen


# What the progress keeps of a task run, one list each (it kept three dicts' entries): its
# node's counts, task name, map index, state (its value) and node id.
_Known = list[Any]


class ConsoleProgress:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.nodes: dict[str, _NodeCounts] = {}
        self.known: dict[str, _Known] = {}  # by task run id
        self.flow_name = ""
        self.run_id = ""
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._announced: set[str] = set()
        self.started = time.time()
        self.stream_failed = False  # see ``_write``
        self.dashboard: Any = None  # the Dask dashboard's link, once said
        self._saying = threading.Lock()  # the link is said in one of two threads, once

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        # A state change, most of a run's events, handled here: a call and an ``isinstance``
        # chain per event were most of the progress's 3 µs per no-op child on Dask.
        known_of, plain = self.known.get, not self.live
        for event in batch:
            if type(event) is not ev.StateChanged:
                self._apply(event)
                continue
            known = known_of(event[1])  # task_run_id
            if known is None:
                continue
            state, previous = event[2]._value_, known[3]  # ``.value`` is a Python call
            node = known[0]
            counts = node.counts  # as ``node.move(previous, state)``, inline
            counts[previous] -= 1
            counts[state] = counts.get(state, 0) + 1
            node.final += (state in _FINAL) - (previous in _FINAL)
            known[3] = state
            if plain and (state in _TOLD or node.final == node.seen):
                self._said(event, known)
        if self.live and time.time() - self._last_draw >= _REDRAW_EVERY:
            self._draw()

    def _apply(self, event: ev.Event) -> None:
        if type(event) is ev.TaskRunCreated:  # one per task run: first
            node = self.nodes.get(event.node_id)
            if node is None:  # no NodeCreated before it (a replay's tail)
                node = self.nodes[event.node_id] = _NodeCounts(printable(event.task_name))
            node.total += 1
            known = self.known.get(event.task_run_id)
            # Announced again (a replay): its state moves within the node that counted it.
            node.move(known[3] if known is not None and known[0] is node else None, _PENDING)
            self.known[event.task_run_id] = [node, event.task_name, event.map_index,
                                             _PENDING, event.node_id]
        elif isinstance(event, ev.TaskRunLeftMap):  # out of its map's counts: history
            known = self.known.pop(event.task_run_id, None)
            if known is not None:
                node, state = known[0], known[3]
                node.counts[state] -= 1
                node.total, node.seen = node.total - 1, node.seen - 1
                node.final -= state in _FINAL
        elif isinstance(event, ev.RunCreated):
            self.started = event.time
            self.announced(event)  # said already, unless attached to a run going on
        elif isinstance(event, ev.NodeCreated):
            self.nodes[event.node_id] = _NodeCounts(printable(event.name))
        elif isinstance(event, ev.RunStateChanged) and event.message:
            self._line(f"labloom: run {event.run_id}: {event.message}")  # a flow's retry
        elif isinstance(event, ev.RunFinished):
            if self.live:
                self._draw()
            elapsed = event.time - self.started
            tail = f": {event.message}" if event.message and event.state is not State.COMPLETED else ""
            self._line(f"labloom: run {event.run_id} {event.state.value} in {elapsed:.1f}s{tail}")

    def announced(self, event: ev.RunCreated) -> None:
        """A run on Dask says its dashboard's link, once; the line written before this returns
        in either thread (the run's own waits for it, to start its tasks after it)."""
        link = event.metadata.get("dashboard")
        if link and link != self.dashboard:
            with self._saying:
                if link != self.dashboard:
                    self._line(f"labloom: Dask dashboard: {link}")
                    self.dashboard = link

    def _said(self, event: ev.StateChanged, known: _Known) -> None:
        """The plain lines a state change makes: a failure or retry, a node's end once."""
        node, task_name, index, _, node_id = known
        if event.state in (State.FAILED, State.RETRYING):
            name = task_name if index is None else f"{task_name}[{index}]"
            self._line(f"  {event.state.value:<9} {name}: {event.message}")
        if node.finished and node_id not in self._announced:
            self._announced.add(node_id)
            self._line(f"  {self._summary(node)}")

    def _summary(self, node: _NodeCounts) -> str:
        done = node.count(State.COMPLETED, State.CACHED)
        running = node.count(State.RUNNING, State.RETRYING)
        # Cancelled apart from failed: an interrupted sweep's unfinished experiments are not
        # failures (it said "116 failed" of a run that had none, beside "Cancelled").
        cancelled = node.count(State.CANCELLED)
        failed = node.count(*BAD_STATES) - cancelled
        width = 20
        filled = int(width * (done + failed + cancelled) / node.total) if node.total else 0
        bar = "#" * filled + "." * (width - filled)
        text = f"{node.name:<24} [{bar}] {done}/{node.total} done"
        if running:
            text += f", {running} running"
        if failed:
            text += f", {failed} failed"
        if cancelled:
            text += f", {cancelled} cancelled"
        return text

    def _draw(self) -> None:
        self._last_draw = time.time()
        rows = [self._summary(node) for node in self.nodes.values() if node.total]
        back = f"\x1b[{self._drawn_lines}F\x1b[J" if self._drawn_lines else ""  # to the top
        self._drawn_lines = len(rows)
        self._write(back + "".join(f"  {row}\n" for row in rows))

    def _line(self, text: str) -> None:
        """A line of recorded text (a name, a message: escaped), not the table's redraw."""
        if self.live:
            self._drawn_lines = 0
        self._write(printable(text) + "\n")

    def _write(self, text: str) -> None:
        """A view that cannot write (stderr a file on a full disk: `labloom serve`'s run log)
        stops writing; the run goes on, and so does `labloom run`, to its report and exit
        status. It failed the run's start as "cannot reach the executor", and serve recorded
        a run that completed as crashed, with no run id."""
        if self.stream_failed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            self.stream_failed = True


def attach(run: Any, stream: TextIO | None = None) -> ConsoleProgress:
    progress = ConsoleProgress(stream)
    progress.flow_name, progress.run_id = run.flow_name, run.id
    # Now, before the run starts: events arrive later than the tasks' own prints.
    progress._line(f"labloom: flow {run.flow_name!r} run {run.id} started "
                   f"on {run.executor.describe()}")
    run.when_announced(progress.announced)  # before its tasks' own prints, as the start line
    run.subscribe(progress, replay=True)
    return progress
