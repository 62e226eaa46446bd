"""A map that the flow body, run again (``@flow(retries=...)``, ``flow_retries.py``), calls
with what it reads now: its earlier attempt's children run again with the new inputs.

Which earlier child a new one is: the one at its position (a map's index, ``name[i]``), as
Prefect's map index names it. Child i is reused when it completed, its inputs at i are the
same (``same_inputs.py``) and no task run it waited for ran again in this attempt; else it runs
again with child i's new inputs. A longer list adds children after the earlier ones; a shorter
one leaves the earlier children past its end as they ended, as history (not in the map's
result, not failing the run), as an earlier call the body did not make again is.

What cannot be matched this way (another kind of input at a position, a task run the map
reads that is another one now, a flattened map, an upstream not yet finished) makes a new map.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, cast

from .futures import TaskFuture
from .left_maps import leave
from .map_nodes import MapNode
from .mapping import MapSource, MapSources, expand_map, holds_no_future
from .rerun import reset_call
from .same_inputs import same_value
from .states import State

if TYPE_CHECKING:
    from .futures import ResultSource
    from .task_graph import TaskGraph
    from .task_runs import TaskRun
    from .tasks import Task


def remap(graph: TaskGraph, node: MapNode, task: Task[Any, Any], sources: MapSources,
          ran_again: Collection[int], forget_values: Callable[[str], None],
          lost: Callable[[Any], bool]) -> list[TaskRun] | None:
    """``node`` (an earlier attempt's map that expanded) made to map over ``sources``: the
    task runs that run again or are new (empty: every child reused), or None when the map
    cannot be matched: the caller makes a new one. ``ran_again``: ids of the task runs run
    again (or new) in this attempt so far. Under the engine's lock."""
    plan = _plan(graph, node, sources, ran_again, lost)
    if plan is None:
        return None
    width, inputs_at, again, read = plan
    earlier = node.children
    items = f"{width} item{'' if width == 1 else 's'}"
    why = f"left {node.name}: the flow body ran again {graph.again_at} and mapped it over {items}"
    for child in earlier[width:]:  # past the new end: history (read from the earlier sources)
        leave(graph, child, why)
        forget_values(child.id)  # no longer a row of the run's sweep (the Experiments views)
        node.children_done -= 1
    if width < len(earlier):  # a new list: the earlier one's events may still be in the making
        node.children = earlier = earlier[:width]
    node.task = task
    node.sources, node.keywords = sources.positional, sources.keywords
    for child in again:
        child.args, child.kwargs = inputs_at(cast(int, child.map_index))
        reset_call(graph, child, forget_values)
    added = len(earlier)
    if width > added:
        if read:  # from the sources, as a first expansion does
            finished = graph.add_children(node, [], width=width - added)
        else:
            finished = graph.add_children(node, [(*inputs_at(i), ()) for i in range(added, width)])
        graph.settle(finished)
    return [*again, *node.children[added:]]


# The new width, child i's new inputs, the earlier children to run again, and whether the
# inputs are read from the map's sources (a list or unmapped each: ``MapNode.inputs_of``).
Plan = tuple[int, Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]], list["TaskRun"], bool]


def _plan(graph: TaskGraph, node: MapNode, sources: MapSources, ran_again: Collection[int],
          lost: Callable[[Any], bool]) -> Plan | None:
    """What ``remap`` does; nothing changed yet, so that None (a new map) leaves the earlier
    one as it was."""
    earlier = MapSources(node.sources, node.keywords)
    if len(earlier.positional) != len(sources.positional) or \
            list(earlier.keywords) != list(sources.keywords):
        return None
    pairs = list(zip(earlier.all(), sources.all(), strict=True))
    if not all(_comparable(old, new) for old, new in pairs) or sources.unresolved():
        return None
    probe = MapNode(node.id, node.task, sources.positional, sources.keywords)
    owner = cast("ResultSource", graph.owner)
    expanded = expand_map(probe, None, graph.owner.split, lambda tr: TaskFuture(owner, tr))
    if isinstance(expanded, tuple):
        return None  # it fails: a new map says why
    read = isinstance(expanded, int)
    inputs_at: Callable[[int], tuple[tuple[Any, ...], dict[str, Any]]]
    if isinstance(expanded, int):
        width, inputs_at = expanded, probe.inputs_of  # read from the new sources
    else:
        width, inputs_at = len(expanded), expanded.__getitem__
    plain = read and holds_no_future(probe)  # no child's inputs wait for a task run
    # A source that changed for every child: an unmapped value, a task run's list run again.
    every = any(old.kind != "static" and not _same_whole(old, new, ran_again)
                for old, new in pairs)
    again = []
    for i, child in enumerate(node.children[:width]):
        if child.state is State.COMPLETED and not (child.handle is not None and lost(child.handle)) \
                and not every and all(_same_item(old, new, i) for old, new in pairs) \
                and not any(id(up) in ran_again for up in child.upstream):
            continue
        if not plain and not _same_links(graph, node, child, inputs_at(i)):
            return None
        again.append(child)
    return width, inputs_at, again, read


def _comparable(old: MapSource, new: MapSource) -> bool:
    """Both sources of one kind, and a task run's or a map's the same one."""
    if old.kind != new.kind or old.kind == "flat":
        return False
    return old.kind not in ("future", "mapped") or old.value is new.value


def _same_whole(old: MapSource, new: MapSource, ran_again: Collection[int]) -> bool:
    """What a source gives every child is as it was: an unmapped value, a task run's list."""
    if old.kind == "unmapped":
        return same_value(old.value, new.value)
    if old.kind == "future":
        return id(old.value) not in ran_again
    return True  # a map's children: each child's own upstream says it


def _same_item(old: MapSource, new: MapSource, index: int) -> bool:
    if old.kind != "static":
        return True  # said by _same_whole, or by the child's upstream
    return index < len(old.value) and same_value(old.value[index], new.value[index])


def _same_links(graph: TaskGraph, node: MapNode, child: TaskRun,
                inputs: tuple[tuple[Any, ...], dict[str, Any]]) -> bool:
    """Child's new inputs wait for the task runs its earlier ones did (else: a new map)."""
    deps = {id(dep) for dep, _ in graph.dependencies(inputs, None)}
    deps.update(id(dep) for dep in node.wait_for)
    return deps == {id(up) for up in child.upstream}
