"""A map as the engine tracks it: ``MapNode``, one graph node whose children are task runs
(``task_runs.py``), and the links that wait for a map's or a task run's end.

Plain data, kept compact: a map of a million children keeps their creation times, ids and
start and end times once, here, not per child. ``TaskGraph`` (``task_graph.py``) owns every
mutation, under its engine's lock.
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import events as ev
from .states import State, overall_state
from .task_runs import NAN, NO_KWARGS

if TYPE_CHECKING:
    from collections.abc import Callable

    from .task_runs import TaskRun
    from .tasks import Task


@dataclass(eq=False)
class MapNode:
    """A map: one graph node, ``children`` task runs once its width is known."""

    id: str
    task: Task[Any, Any]
    # Per positional iterable and per keyword, a MapSource (see mapping.py).
    sources: list[Any] = field(default_factory=list)
    keywords: dict[str, Any] = field(default_factory=dict)
    wait_for: list[Any] = field(default_factory=list)  # TaskRun | MapNode every child waits for
    children: list[TaskRun] = field(default_factory=list)
    expanded: bool = False
    waiting_to_expand: int = 0
    children_done: int = 0
    # Set when the map could not expand (an upstream failed, unequal lengths): its one
    # placeholder task run carries the state and the message.
    placeholder: TaskRun | None = None
    dependents: Sequence[TaskRun] = ()
    expand_dependents: list[MapNode] | None = None
    # A map that gains children as its source's children end (flatten.py), and the maps that
    # grow from this one.
    growth: Any = None
    grow_dependents: list[MapNode] | None = None
    label: str = ""  # as TaskRun.label; its children share it
    # Children made together, as (first map index, first task run id's number, when, the
    # ids' prefix): a child's id and creation time, kept once for all of them.
    batches: list[tuple[int, int, float, str]] = field(default_factory=list)
    # Start and end of child i at 2i and 2i + 1 (NaN: not yet), for the children made with
    # others (``TaskRun.started``): one array instead of an object per child.
    times: array[float] = field(default_factory=lambda: array("d"))

    @property
    def name(self) -> str:
        return self.label or self.task.name

    def make_room(self, children: int) -> None:
        """Room in ``times`` for the first ``children`` children."""
        missing = 2 * children - len(self.times)
        if missing > 0:
            self.times.extend(array("d", [NAN]) * missing)

    def _batch(self, index: int) -> tuple[int, int, float, str]:
        batches = self.batches
        if len(batches) == 1 or index >= batches[-1][0]:
            return batches[-1]
        return batches[bisect.bisect_right(batches, index, key=lambda b: b[0]) - 1]

    def child_id(self, index: int) -> str:
        first, number, _, prefix = self.batches[-1] if len(self.batches) == 1 else \
            self._batch(index)
        return prefix + str(number + index - first)

    def child_created(self, index: int) -> float:
        return self._batch(index)[2]

    def inputs_of(self, index: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Child ``index``'s arguments when every source is a list or ``unmapped`` (see
        ``mapping.expand_map``): read from the sources, never kept per child."""
        args = tuple([s.value if s.kind == "unmapped" else s.value[index] for s in self.sources])
        if not self.keywords:
            return args, NO_KWARGS  # the usual map: no keyword to read
        return args, {key: s.value if s.kind == "unmapped" else s.value[index]
                      for key, s in self.keywords.items()}

    @property
    def done(self) -> bool:
        return self.expanded and self.children_done == len(self.children)

    @property
    def bad(self) -> bool:
        return any(child.bad for child in self.children)

    @property
    def state(self) -> State:
        if not self.expanded:
            return State.PENDING
        if not self.children:
            return State.COMPLETED  # an empty map has nothing left to do
        return overall_state(Counter(child.state for child in self.children), len(self.children))


def add_dependent(upstream: TaskRun | MapNode, dependent: TaskRun) -> None:
    if not isinstance(upstream.dependents, list):
        upstream.dependents = list(upstream.dependents)
    upstream.dependents.append(dependent)


def waiting_for_width(item: TaskRun | MapNode) -> list[MapNode]:
    """The maps that learn their width when ``item`` ends (a run) or expands (a map)."""
    if item.expand_dependents is None:
        item.expand_dependents = []
    return item.expand_dependents


def created_events(node: MapNode, children: list[TaskRun],
                   run_id: str) -> Callable[[int], ev.TaskRunCreated]:
    """``make`` of the block announcing the children ``node`` made last (its last batch),
    ``children`` being its list of them: what they share (the run, the node, the name, the
    ids' prefix, the time) is read once here, not once per child as each is announced."""
    first, number, created, prefix = node.batches[-1]
    node_id, name = node.id, node.label or node.task.name
    announce = ev.TaskRunCreated

    def make(i: int) -> ev.TaskRunCreated:
        child = children[first + i]
        upstream = tuple([up.id for up in child.upstream if not isinstance(up, MapNode)]) \
            if child.upstream else ()
        return announce(run_id, prefix + str(number + i), node_id, name, first + i, upstream,
                        created)
    return make
