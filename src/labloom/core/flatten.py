"""``flatten``: map over the items of a map's lists, depth-first, and maps that grow.

``step2.map(flatten(step1.map(xs)))`` runs one child of step2 per item of step1's lists. An
item's index in the flat list depends on the lengths of the lists before it, so step2 gains the
children for list i's items when lists 0..i have all arrived: depth-first wherever step1's
children end in their order (as executors start them), never waiting for the whole of step1.
A map whose one iterable is such a growing map grows along with it, child j pairing with its
child j (the chain stays depth-first). ``Growth`` says what a growing map may add now;
``TaskGraph.grow`` (``task_graph.py``) adds it.

A list that cannot arrive (its task run failed, or returned something that is not a list) ends
the growing map: the children made so far run on, and a placeholder task run at the end
carries why, so nothing downstream mistakes a prefix for the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .futures import Flattened, MappedFuture, TaskFuture, allow_failure, unmapped
from .states import State

if TYPE_CHECKING:
    from .map_nodes import MapNode
    from .mapping import MapSource, MapSources
    from .task_runs import TaskRun


def flatten(value: Any) -> Any:
    """One level of nesting removed: ``flatten([[1, 2], [3]]) == [1, 2, 3]``.

    Given a map's result (``flatten(step1.map(xs))``), it is a ``.map`` argument whose items
    arrive as step1's children end:

    >>> step2.map(flatten(split.map(files)))     # one step2 child per item of every list
    """
    if isinstance(value, MappedFuture):
        return Flattened(value)
    if isinstance(value, (TaskFuture, allow_failure, unmapped, Flattened)):
        raise TypeError(
            f"flatten() takes a map's result (flatten(step.map(...))) or a list of lists, got "
            f"{type(value).__name__}; for one task's list of lists, flatten inside the task"
        )
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(
            f"flatten() takes a list of lists or a map's result, got a {type(value).__name__}"
        )
    flat: list[Any] = []
    for index, item in enumerate(value):
        if isinstance(item, (TaskFuture, MappedFuture)):
            raise TypeError(
                f"flatten(): element {index} is the future of {item.name!r}, whose items are not "
                "known while the flow is built; map over flatten(step.map(...)) instead"
            )
        if isinstance(item, (str, bytes, Mapping)) or not isinstance(item, Iterable):
            raise TypeError(
                f"flatten(): element {index} is a {type(item).__name__}, not a list; flatten "
                "removes one level of nesting from a list of lists"
            )
        flat.extend(item)
    return flat


def check_growing(task_name: str, sources: MapSources) -> None:
    """``flatten(...)`` must be a map's only iterable (its width is known item by item)."""
    iterated = [s for s in sources.all() if s.kind != "unmapped"]
    if any(s.kind == "flat" for s in iterated) and len(iterated) > 1:
        raise TypeError(
            f"{task_name}.map(): flatten(...) must be the only iterable of a map, as its items "
            "arrive list by list; give the other arguments with unmapped(...), or zip in a "
            "second map over this one's result"
        )


@dataclass
class Step:
    """What a growing map may do now."""

    children: list[tuple[tuple[Any, ...], dict[str, Any], tuple[TaskRun, ...]]]
    end: tuple[State, str] | None = None  # it can grow no further, and why
    complete: bool = False  # every item has arrived


@dataclass
class Growth:
    """A growing map's progress through its source: ``flat`` over the lists of ``upstream``'s
    children, else pairing with the children of ``upstream``, itself a growing map."""

    source: MapSource
    upstream: MapNode
    flat: bool
    consumed: int = 0  # upstream children taken so far
    # Per child, flat only: (index of the upstream child, index in its list). Keys use it.
    origins: list[tuple[int, int]] = field(default_factory=list)

    def step(self, node: MapNode, split: Callable[[TaskRun], list[Any]],
             future_of: Callable[[TaskRun], TaskFuture[Any]]) -> Step:
        step = Step([])
        upstream = self.upstream
        while self.consumed < len(upstream.children):
            child = upstream.children[self.consumed]
            if child is upstream.placeholder or (self.flat and child.bad):
                step.end = State.UPSTREAM_FAILED, (
                    f"upstream {child.name} did not succeed: {node.name} ends before its items"
                )
                return step
            if not self.flat:
                item: Any = future_of(child)
                step.children.append(self._args(node, allow_failure(item) if self.source.allowed
                                                else item, ()))
            elif not child.done:
                break
            else:
                try:
                    items = split(child)
                except Exception as exc:
                    step.end = State.FAILED, (
                        f"flatten({upstream.name}): cannot iterate the result of {child.name} "
                        f"({type(exc).__name__}: {exc}); each child must return a list"
                    )
                    return step
                for index, item in enumerate(items):
                    self.origins.append((self.consumed, index))
                    step.children.append(self._args(node, item, (child,)))
            self.consumed += 1
        step.complete = (upstream.expanded and upstream.placeholder is None
                         and self.consumed == len(upstream.children))
        return step

    def _args(self, node: MapNode, item: Any, links: tuple[TaskRun, ...]) -> Any:
        def pick(source: MapSource) -> Any:
            return item if source is self.source else source.value

        keywords = {key: pick(source) for key, source in node.keywords.items()}
        return tuple(pick(source) for source in node.sources), keywords, links


def growth_for(sources: MapSources) -> Growth | None:
    """A map grows when its one iterable is ``flatten(...)`` or a map that is still growing."""
    iterated = [s for s in sources.all() if s.kind != "unmapped"]
    if len(iterated) != 1:
        return None
    source = iterated[0]
    if source.kind == "flat":
        return Growth(source, source.value, flat=True)
    if source.kind == "mapped" and source.value.growth is not None and not source.value.expanded:
        return Growth(source, source.value, flat=False)
    return None


def origin_of(node: MapNode, index: int) -> tuple[TaskRun, int]:
    """A flat map's child ``index``: the upstream child whose list holds its item, and where."""
    growth: Growth = node.growth
    child, position = growth.origins[index]
    return growth.upstream.children[child], position
