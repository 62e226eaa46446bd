"""Map children that leave their map: a retry split the map's input again into fewer items
(``rerun.split_again``), or the flow body, run again, mapped over fewer (``map_replay``).
They stay in the run as history; ``TaskRunLeftMap`` tells every view (the widget, the store,
the Lab's run tab, ``labloom show``, the terminal's progress) to count them out of the map,
and says why. What they logged is forgotten (``forget_values``: a "reset" logging call, as a
retry's), so no Experiments view shows them as rows of the sweep."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import events as ev
from .states import State

if TYPE_CHECKING:
    from .task_graph import TaskGraph
    from .task_runs import TaskRun

# A stored state row's state when the task run left its map (``task_states``: a view following
# the run by cursor sees it as a move out of the map); never a task run's ``State``.
LEFT = "Left"
RUN_RETRY = "at run.retry()"  # what re-splits a map unless a flow's retry says otherwise


def flow_retry(number: int, total: int) -> str:
    """What re-splits a map at attempt ``number`` of ``total`` of ``@flow(retries=...)``."""
    return f"at the flow's retry {number - 1} (attempt {number} of {total})"


def leave(graph: TaskGraph, child: TaskRun, why: str) -> None:
    """``child`` is its map's no more (under the engine's lock): history from now on, with
    its last run's times and its attempts across the run's retries (a retry reset it to
    Pending, ending Cancelled at once: its times and attempts would be the cancel's)."""
    node_id = child.node_id
    started, ended = last_run(child)
    graph.retired.add(id(child))
    child.leave_map((started, ended))
    child.attempts, child.earlier_attempts = child.all_attempts, 0
    child.left_map = why  # (``run.tasks`` lists it still: its views tell it apart)
    event = ev.TaskRunLeftMap(graph.run_id, child.id, node_id, time.time(), why, started, ended)
    graph.left.append(event)  # a late view's replay (``replay.py``)
    graph.owner.emit(event)


def last_run(tr: TaskRun) -> tuple[float | None, float | None]:
    """When its last attempt started and ended (None, None: it never ran)."""
    started = ended = None
    for entry in tr.history:
        if entry.state is State.RUNNING:
            started, ended = entry.time, None
        elif entry.state.is_final and started is not None and ended is None:
            ended = entry.time
    return started, ended

