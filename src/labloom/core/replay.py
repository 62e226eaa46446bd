"""A late observer's view of a run's graph: what it would have seen so far, as events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import events as ev
from .states import State

if TYPE_CHECKING:
    from .task_graph import TaskGraph


def snapshot_of(graph: TaskGraph) -> list[ev.Event]:
    """Each node, each task run and where it stands now (and when it ran: a timeline's bar)."""
    events: list[ev.Event] = list(graph.nodes)
    states: list[ev.Event] = []
    for tr in graph.task_runs:
        events.append(graph.created_event(tr))
        if tr.started is not None and tr.state is not State.RUNNING:
            states.append(ev.StateChanged(
                graph.run_id, tr.id, State.RUNNING, tr.started, "", tr.all_attempts, "", tr.worker,
            ))
        history = tr.history
        if tr.state is not State.PENDING or len(history) > 1:
            states.append(ev.StateChanged(
                graph.run_id, tr.id, tr.state, history[-1].time, tr.message, tr.all_attempts,
                tr.traceback, tr.worker,
            ))
    return events + states + graph.left  # (after their states: a view keeps those)
