"""Map semantics: what each argument of ``Task.map`` contributes, and the children it yields.

A source is static (a list now), unmapped (the same value for every child), a future (its
items are known when that task run ends), another map (child i pairs with its child i), or
``flatten`` of a map (the items of its children's lists, as they arrive: ``flatten.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .call_copies import as_called
from .flatten import check_growing
from .futures import Flattened, MappedFuture, TaskFuture, allow_failure, find_futures, unmapped
from .lost_inputs import SplitLost
from .map_nodes import MapNode
from .states import State
from .task_runs import TaskRun

if TYPE_CHECKING:
    from .tasks import Task


@dataclass
class MapSource:
    kind: str  # "static" | "unmapped" | "future" | "mapped" | "flat"
    value: Any  # list | value | TaskRun | MapNode | MapNode (whose lists are flattened)
    label: str  # "argument 1", "seed=": names it in error messages
    allowed: bool = False  # a map's result under allow_failure: each child may have failed


def map_source(
    check_owned: Callable[[Any], None], task: Task[Any, Any], label: str, value: Any
) -> MapSource:
    if isinstance(value, unmapped):  # given whole to every child, as it is now (as_called)
        return MapSource("unmapped", as_called(value.value), label)
    if isinstance(value, MappedFuture):
        check_owned(value)
        return MapSource("mapped", value.node, label)
    if isinstance(value, TaskFuture):
        check_owned(value)
        return MapSource("future", value.task_run, label)
    if isinstance(value, Flattened):
        check_owned(value.future)
        return MapSource("flat", value.future.node, label)
    if isinstance(value, allow_failure):
        if isinstance(value.future, MappedFuture):
            check_owned(value.future)
            return MapSource("mapped", value.future.node, label, allowed=True)
        raise TypeError(
            f"{task.name}.map(): {label} is allow_failure() of a single task's future: if it "
            "fails there are no items to map over. Map over the future itself, or wrap a "
            "map's result (allow_failure(step.map(...))) to let each child receive its "
            "upstream child's value or exception"
        )
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"{task.name}.map(): {label} is a string, and mapping would iterate its "
            f"characters; pass a list of strings, or unmapped({value!r}) to give it whole "
            "to every run"
        )
    try:
        # A range is kept as it is: its items are made when a child asks (``inputs_of``).
        items = value if isinstance(value, range) else list(value)
    except TypeError:
        raise TypeError(
            f"{task.name}.map(): {label} is a {type(value).__name__}, which is not iterable; "
            "wrap it in unmapped(...) to give the same value to every run"
        ) from None
    return MapSource("static", items, label)


# Items that never hold a future: a map over a list of these needs no search per child.
_PLAIN = frozenset({int, float, complex, bool, str, bytes, type(None)})


def holds_no_future(node: MapNode) -> bool:
    """True when no child of ``node`` can find a future in its arguments: each source is a
    range or a list of numbers and strings, or a value given whole (``unmapped``) that holds
    none. Looked at once per map; each child's arguments were searched before (``find_futures``
    over 20,000 children: about 20 ms of the flow's thread, a fraction of this)."""
    for source in (*node.sources, *node.keywords.values()):
        if source.kind == "unmapped":
            found: list[Any] = []
            find_futures(source.value, found)
            if found:
                return False
        elif source.kind != "static" or not (
                isinstance(source.value, range)
                or all(type(item) in _PLAIN for item in source.value)):
            return False
    return True


@dataclass
class MapSources:
    positional: list[MapSource]
    keywords: dict[str, MapSource]

    def all(self) -> list[MapSource]:
        return [*self.positional, *self.keywords.values()]

    def check_known_widths(self, task_name: str) -> None:
        """Fail at the call for what is already known: nothing to map, unequal lengths."""
        check_growing(task_name, self)
        iterated = [source for source in self.all() if source.kind != "unmapped"]
        if not iterated:
            raise TypeError(
                f"{task_name}.map() got only unmapped(...) arguments; give at least one "
                "iterable to map over, or call the task once instead"
            )
        widths = {}
        for source in iterated:
            if source.kind == "static":
                widths[source.label] = len(source.value)
            elif source.kind == "mapped" and source.value.expanded:
                widths[source.label] = len(source.value.children)
        if len(set(widths.values())) > 1:
            raise ValueError(unequal_lengths_message(task_name, widths))

    def unresolved(self) -> list[TaskRun | MapNode]:
        """What must happen before the width is known: runs to finish, maps to expand."""
        pending: list[TaskRun | MapNode] = []
        for source in self.all():
            if (source.kind == "future" and not source.value.done) or (source.kind == "mapped" and not source.value.expanded):
                pending.append(source.value)
        return pending

    def upstream_nodes(self) -> list[str]:
        ids: list[str] = []
        for source in self.all():
            if source.kind == "future":
                ids.append(source.value.node_id)
            elif source.kind in ("mapped", "flat"):
                ids.append(source.value.id)
            else:
                found: list[Any] = []
                find_futures(source.value, found)
                for item in found:
                    future = item.future if isinstance(item, allow_failure) else item
                    ids.append(
                        future.node.id
                        if isinstance(future, MappedFuture)
                        else future.task_run.node_id
                    )
        return ids


def unequal_lengths_message(task_name: str, widths: dict[str, int]) -> str:
    listed = ", ".join(f"{label} has {width} items" for label, width in widths.items())
    return (
        f"{task_name}.map() zips its iterables, which must have equal lengths: {listed}; "
        "wrap values meant for every run in unmapped(...)"
    )


def expand_map(
    node: MapNode,
    cancelled: str | None,
    split: Callable[[TaskRun], list[Any]],
    future_of: Callable[[TaskRun], TaskFuture[Any]],
) -> list[tuple[tuple[Any, ...], dict[str, Any]]] | int | tuple[State, str]:
    """The children's (args, kwargs), or (state, message) when the map cannot expand; only
    the width when every source is a list or ``unmapped`` (``MapNode.inputs_of`` reads each
    child's from the sources).

    ``split`` gives references to the items of a finished task run's result (executor side);
    ``future_of`` a future for a child of an upstream map (child i pairs with child i).
    """
    sources = MapSources(node.sources, node.keywords)
    if cancelled is not None:
        return State.CANCELLED, cancelled or "cancelled"
    items: dict[int, list[Any]] = {}
    widths: dict[str, int] = {}
    for source in sources.all():
        if source.kind == "unmapped":
            continue
        if source.kind == "future":
            upstream: TaskRun = source.value
            if upstream.bad:
                return State.UPSTREAM_FAILED, f"upstream {upstream.name!r} did not succeed"
            try:
                values = split(upstream)
            except SplitLost as lost:
                return State.FAILED, lost.said(node.name)
            except Exception as exc:
                return State.FAILED, (
                    f"{node.name}.map(): cannot iterate the result of {upstream.name!r} "
                    f"({type(exc).__name__}: {exc}); it must return a list or another iterable"
                )
        elif source.kind == "mapped":
            mapped: MapNode = source.value
            if mapped.placeholder is not None:
                return State.UPSTREAM_FAILED, f"upstream map {mapped.name!r} did not succeed"
            values = [future_of(child) for child in mapped.children]
            if source.allowed:
                values = [allow_failure(future) for future in values]
        else:
            values = source.value
        items[id(source)] = values
        widths[source.label] = len(values)
    if len(set(widths.values())) > 1:
        return State.FAILED, unequal_lengths_message(node.name, widths)
    width: int = next(iter(widths.values()))
    if all(source.kind in ("static", "unmapped") for source in sources.all()):
        return width

    def pick(source: MapSource, index: int) -> Any:
        return source.value if source.kind == "unmapped" else items[id(source)][index]

    keywords = sources.keywords.items()
    return [
        (
            tuple(pick(source, i) for source in sources.positional),
            {key: pick(source, i) for key, source in keywords} if keywords else {},
        )
        for i in range(width)
    ]
