"""Many task runs' state changes in one step: a Dask chunk's children, which start together
and (usually) return together (``ExecutorSink._started``, ``Launcher._returned``).

``TaskGraph.set_state`` per child cost a chain of calls and an event emitted alone each; here
one loop sets them and their events go to the bus at once (``EventBus.emit_all``). What each
child is left with is the same: its state, message, end, history entry and event."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import events as ev
from .states import State

if TYPE_CHECKING:
    from .task_graph import TaskGraph
    from .task_runs import TaskRun

# (task run, its id, when): a start has its id already (the worker's message names it), so it
# is not made again from the task run (a map child's id is built on each read).
Change = tuple["TaskRun", str, float]


def changed(run_id: str, tr: TaskRun, task_run_id: str, state: State, now: float,
            message: str = "", traceback: str = "", final: bool = False) -> ev.StateChanged:
    """``tr`` moved to ``state``: what a state change does to a task run, and its event (one
    place for ``TaskGraph.set_state`` and the blocks below)."""
    before, tr.state = tr.state, state
    tr.message = message
    if traceback:
        tr.traceback = traceback
    if final:
        tr.ended = now
    tr.record(state, now, message)
    return ev.StateChanged(run_id, task_run_id, state, now, message, tr.all_attempts, traceback,
                           tr.worker, before, tr.node_id)


def set_states(graph: TaskGraph, changes: list[Change], state: State, final: bool = False,
               ) -> None:
    """``graph.set_state`` (``set_final`` if ``final``) of each change, with no message."""
    run_id = graph.run_id
    graph.owner.emit_all([changed(run_id, tr, task_run_id, state, now, final=final)
                          for tr, task_run_id, now in changes])
    if final:
        graph.close(len(changes))
        on_final = graph.owner.on_final
        for tr, _, _ in changes:
            on_final(tr)


def started_again(graph: TaskGraph, cut: list[Change]) -> None:
    """Starts whose apply a Ctrl-C cut short inside ``set_states`` (their state Running, their
    event not sent: ``ExecutorSink._started``), done once: their history entry, unless it was
    made, and their event. Each step looks before it acts: cut short again, this is again."""
    events: list[ev.Event] = []
    for tr, task_run_id, now in cut:
        history = tr.history
        before: State
        if history[-1].state is not State.RUNNING:  # cut before its entry
            before = history[-1].state
            tr.message = ""
            tr.record(State.RUNNING, now, "")
        else:
            before = history[-2].state
        events.append(ev.StateChanged(graph.run_id, task_run_id, State.RUNNING, now, "",
                                      tr.all_attempts, "", tr.worker, before, tr.node_id))
    graph.owner.emit_all(events)
