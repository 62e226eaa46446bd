"""The run's graph as the engine tracks it: task runs, and map nodes grouping their children.

Plain data, kept compact (slots; containers made only when a run needs them): a flow of a
million task runs holds a million of these. ``TaskGraph`` (``task_graph.py``) owns every
mutation, under its engine's lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .states import BAD_STATES, State, overall_state

if TYPE_CHECKING:
    from .tasks import Task

# The kwargs of every task run that has none: shared, never mutated (a dict each would cost
# memory across a million task runs).
NO_KWARGS: dict[str, Any] = {}


@dataclass(slots=True)
class StateEntry:
    state: State
    time: float
    message: str = ""


@dataclass(eq=False, slots=True)
class TaskRun:
    """One execution of a task (a map child is one too). Shown to users via ``FlowRun.tasks``."""

    id: str
    task: Task[Any, Any]
    node_id: str
    map_index: int | None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=lambda: NO_KWARGS)
    state: State = State.PENDING
    attempts: int = 0
    history: list[StateEntry] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    message: str = ""
    traceback: str = ""
    error: BaseException | None = None
    cache_key: str | None = None
    worker: str = ""  # where its last attempt ran (see StateChanged.worker)
    # Engine bookkeeping.
    # Empty tuples until a link is made (most map children have neither).
    upstream: Sequence[TaskRun | MapNode] = ()
    allowed: set[int] | None = None  # ids of upstreams under allow_failure
    waiting: int = 0  # upstreams not yet final
    dependents: Sequence[TaskRun] = ()
    expand_dependents: list[MapNode] | None = None
    parent: MapNode | None = None
    handle: Any = None
    holds_slot: bool = False
    label: str = ""  # its node's name where that is not the task's: a repeated call, add-2

    @property
    def base_name(self) -> str:
        """Its node's name: the task's, numbered from the second call on (add, add-2)."""
        return self.label or self.task.name

    @property
    def name(self) -> str:
        base = self.label or self.task.name
        return base if self.map_index is None else f"{base}[{self.map_index}]"

    @property
    def done(self) -> bool:
        return self.state.is_final

    @property
    def bad(self) -> bool:
        return self.state in BAD_STATES

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def allows(self, upstream: TaskRun | MapNode) -> bool:
        """True when ``upstream`` was passed under ``allow_failure``."""
        return self.allowed is not None and id(upstream) in self.allowed

    def __repr__(self) -> str:
        return f"<TaskRun {self.name} {self.state.value} attempts={self.attempts}>"


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

    @property
    def name(self) -> str:
        return self.label or self.task.name

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
