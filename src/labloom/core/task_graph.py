"""Dependency resolution inside one flow run: the graph as the flow body builds it, which task
run may start, and how a task run's end travels downstream.

``TaskGraph`` is owned by a ``RunEngine`` (``engine.py``), which holds its lock around every
call here and does the launching; the graph only tells it, through ``GraphOwner.ready``, that a
task run's upstreams are all final and it may start.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from . import events as ev
from .flatten import growth_for
from .futures import Flattened, MappedFuture, TaskFuture, allow_failure, find_futures
from .left_maps import RUN_RETRY
from .map_nodes import MapNode, add_dependent, created_events, waiting_for_width
from .mapping import MapSources, expand_map, holds_no_future
from .replay import snapshot_of
from .rerun import recount, reset_bad, split_again
from .state_blocks import changed
from .states import State
from .task_runs import TaskRun

if TYPE_CHECKING:
    from .futures import ResultSource
    from .lost_inputs import LostValues
    from .tasks import Task

Finished = list[TaskRun | MapNode]
Dependency = tuple[TaskRun | MapNode, bool]  # (upstream, under allow_failure)


class GraphOwner(Protocol):
    """What the graph needs from the engine that owns it."""

    def emit(self, event: ev.Event | ev.EventBlock) -> None: ...

    def emit_all(self, events: list[ev.Event]) -> None: ...

    def ready(self, tr: TaskRun) -> None:
        """Every upstream of ``tr`` succeeded (or is allowed to fail): launch it."""

    def on_final(self, tr: TaskRun) -> None:
        """``tr`` reached a final state (give back what it held)."""

    def all_closed(self) -> None:
        """No task run is left open (for now: a map may still add some)."""

    def split(self, tr: TaskRun) -> list[Any]:
        """References to the items of a finished task run's iterable result."""
        ...


class TaskGraph:
    def __init__(self, run_id: str, owner: GraphOwner) -> None:
        self.run_id = run_id
        self.owner = owner
        self.task_runs: list[TaskRun] = []
        self.maps: list[MapNode] = []
        # NodeCreated events, one per graph node (not per task run): views replay them.
        self.nodes: list[ev.NodeCreated] = []
        self.open = 0  # task runs not final, maps not expanded
        self.cancelled: str | None = None  # why, once the run is cancelled
        self.retired: set[int] = set()  # placeholders a retry replaced: history, not failures
        self.left: list[ev.TaskRunLeftMap] = []  # children that left their map (``left_maps``)
        self.again_at = RUN_RETRY  # what runs the graph again now: a map's children are told
        self._node_ids = itertools.count()
        self._calls: dict[str, int] = {}  # nodes per task name so far
        self._taken: set[str] = set()  # node names given
        self.handled: set[int] = set()  # failed task runs whose error the flow body caught

    # --- building (from the flow body) ------------------------------------------------------

    def add_task(
        self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        deps: list[Dependency],
    ) -> TaskRun:
        node_id, label = self._node(task.name, "task", self.node_ids_of(deps))
        tr = self._new_task_run(task, node_id, None, args, kwargs, label)
        self.settle(self._link(tr, deps))
        return tr

    def add_map(
        self, task: Task[Any, Any], sources: MapSources, waits: list[Dependency]
    ) -> MapNode:
        upstream = tuple(dict.fromkeys([*sources.upstream_nodes(), *self.node_ids_of(waits)]))
        node_id, label = self._node(task.name, "map", upstream)
        node = MapNode(node_id, task, sources.positional, sources.keywords, label=label)
        node.wait_for = [dep for dep, _ in waits]
        self.maps.append(node)
        self.open += 1
        node.growth = growth_for(sources)
        if node.growth is not None:
            upstream = node.growth.upstream
            upstream.grow_dependents = [*(upstream.grow_dependents or ()), node]
            self.settle(self.grow(node))
            return node
        for pending in sources.unresolved():
            node.waiting_to_expand += 1
            waiting_for_width(pending).append(node)
        if node.waiting_to_expand == 0:
            self.settle(self.expand(node))
        return node

    def dependencies(self, values: Any, wait_for: Any) -> list[Dependency]:
        """The upstreams named by futures in ``values`` and in ``wait_for``."""
        found: list[Any] = []
        find_futures(values, found)
        if wait_for is not None:
            items = wait_for if isinstance(wait_for, (list, tuple, set)) else [wait_for]
            for item in items:
                if not isinstance(item, (TaskFuture, MappedFuture, allow_failure)):
                    raise TypeError(
                        f"wait_for takes futures of task runs in this flow, got {item!r}"
                    )
                found.append(item)
        deps: dict[int, Dependency] = {}
        for item in found:
            if isinstance(item, Flattened):
                raise TypeError(
                    f"{item!r} is a .map() argument; a plain task receives a map's result as "
                    "a list of lists: pass the map's result and flatten inside the task"
                )
            allowed = isinstance(item, allow_failure)
            future = item.future if allowed else item
            self.check_owned(future)
            target = future.task_run if isinstance(future, TaskFuture) else future.node
            previous = deps.get(id(target))
            deps[id(target)] = (target, allowed and (previous is None or previous[1]))
        return list(deps.values())

    def check_owned(self, future: TaskFuture[Any] | MappedFuture[Any]) -> None:
        if future.run_id != self.run_id:
            raise ValueError(
                f"the future of {future.name!r} belongs to flow run {future.run_id}, not to "
                f"this one ({self.run_id}); a future is only valid inside its own run: pass "
                "its value, future.result(), instead"
            )

    @staticmethod
    def node_ids_of(deps: Sequence[Dependency]) -> tuple[str, ...]:
        ids = [dep.id if isinstance(dep, MapNode) else dep.node_id for dep, _ in deps]
        return tuple(dict.fromkeys(ids))

    def _node(self, name: str, kind: str, upstream: tuple[str, ...]) -> tuple[str, str]:
        """A new node: its id, and its label ("" when it is the task's name)."""
        node_id = f"n{next(self._node_ids)}"
        label = self._unique(name)
        event = ev.NodeCreated(self.run_id, node_id, label, kind, upstream, time.time())
        self.nodes.append(event)
        self.owner.emit(event)
        return node_id, "" if label == name else label

    def _unique(self, name: str) -> str:
        """Node names are numbered as calls come (add, add-2, add-3), so that a name picks one
        node's task runs and logs: ``run.logs("add-2")``, ``labloom logs RUN --task add-2``."""
        calls = self._calls[name] = self._calls.get(name, 0) + 1
        label = name if calls == 1 else f"{name}-{calls}"
        while label in self._taken:  # a task really named add-2
            calls = self._calls[name] = calls + 1
            label = f"{name}-{calls}"
        self._taken.add(label)
        return label

    def get(self, task_run_id: str) -> TaskRun | None:
        """Read from the id (``run.index``): a dict of a million ids costs as much as their runs."""
        run_id, _, index = task_run_id.rpartition(".")
        if run_id != self.run_id or not index.isdigit():
            return None
        number = int(index)
        return self.task_runs[number] if number < len(self.task_runs) else None

    def _new_task_run(
        self, task: Task[Any, Any], node_id: str, map_index: int | None,
        args: tuple[Any, ...] | None = (), kwargs: dict[str, Any] | None = None, label: str = "",
        created: float = 0.0,
    ) -> TaskRun:
        own = (f"{self.run_id}.{len(self.task_runs)}", task, node_id, label,
               created or time.time(), None)
        tr = TaskRun(own, map_index, args)
        if kwargs:
            tr.kwargs = kwargs
        self.task_runs.append(tr)
        return tr

    def _link(self, tr: TaskRun, deps: list[Dependency], announce: bool = True) -> Finished:
        """Wire ``tr`` to its upstreams; returns what ended at once, for the caller to settle
        (unless not ``announce``d: then the caller announces it and resolves it)."""
        self.open += 1
        if deps:
            tr.upstream = [dep for dep, _ in deps]
        for dep, allowed in deps:
            if allowed:
                if tr.allowed is None:
                    tr.allowed = set()
                tr.allowed.add(id(dep))
            # Registered even when dep is done: retry() and allow_failure walk these links.
            add_dependent(dep, tr)
            if not dep.done:
                tr.waiting += 1
        if not announce:
            return []
        self.owner.emit(self.created_event(tr))
        return self.resolve(tr) if tr.waiting == 0 else []

    def created_event(self, tr: TaskRun) -> ev.TaskRunCreated:
        upstream = tuple(up.id for up in tr.upstream if isinstance(up, TaskRun))
        return ev.TaskRunCreated(self.run_id, tr.id, tr.node_id, tr.base_name, tr.map_index,
                                 upstream, tr.created)

    # --- resolution ---------------------------------------------------------------------------

    def resolve(self, tr: TaskRun) -> Finished:
        """Every upstream of ``tr`` is final: let it start, or end it if it cannot run."""
        if tr.done:
            return []
        if self.cancelled is not None:
            self.set_final(tr, State.CANCELLED, self.cancelled)
            return [tr]
        blocked = [up for up in tr.upstream if up.bad and not tr.allows(up)] \
            if tr.upstream else None  # most map children have none: no list made
        if blocked:
            culprits: list[TaskRun] = []
            for up in blocked:
                culprits += [c for c in up.children if c.bad] if isinstance(up, MapNode) else [up]
            names = ", ".join(c.name for c in culprits[:3])
            more = f" and {len(culprits) - 3} more" if len(culprits) > 3 else ""
            self.set_final(tr, State.UPSTREAM_FAILED, f"upstream {names}{more} did not succeed")
            return [tr]
        self.owner.ready(tr)
        return []

    def expand(self, node: MapNode) -> Finished:
        """The width of ``node`` is known: create its children (or fail it)."""
        result = expand_map(node, self.cancelled, self.owner.split, self._future_of)
        if node.children:  # a retry's new split of its input's new value
            return split_again(self, node, result) + self._expand_downstream(node)
        if isinstance(result, tuple):
            return self.fail_map(node, *result)
        node.expanded = True
        self.close()
        if isinstance(result, int):  # the children's inputs are read from the map's sources
            finished = self.add_children(node, [], width=result)
        else:
            finished = self.add_children(node, [(args, kwargs, ()) for args, kwargs in result])
        finished += self._expand_downstream(node)
        if not node.children:
            finished.append(node)
        return finished

    def add_children(
        self, node: MapNode, specs: list[tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...]]],
        width: int = 0,
    ) -> Finished:
        """New children of ``node`` (args, kwargs, upstreams besides those the args name), or
        ``width`` children whose inputs are read from the map's sources."""
        first = len(node.children)
        node.batches.append((first, len(self.task_runs), time.time(), f"{self.run_id}."))
        children = node.children  # this list, also if a retry gives the map a new one
        node.make_room(first + len(specs) + width)
        for index, (args, kwargs, _) in enumerate(specs, start=first):
            child = TaskRun(None, index, args, node)
            if kwargs:
                child.kwargs = kwargs
            children.append(child)
        for index in range(len(children), first + width):
            children.append(TaskRun(None, index, None, node))  # inputs read from the sources
        self.task_runs.extend(itertools.islice(children, first, None))
        finished: Finished = []
        searched = bool(specs) or not holds_no_future(node)
        if not searched and not node.wait_for:  # a map over a range or a list of numbers:
            self.open += len(children) - first  # no upstream for any child (``_link`` of none)
        else:
            for i in range(first, len(children)):
                child = children[i]
                links = specs[i - first][2] if specs else ()
                deps = self.dependencies(child.inputs(), None) if searched else []
                seen = {id(dep) for dep, _ in deps}
                deps += [(dep, False) for dep in (*links, *node.wait_for) if id(dep) not in seen]
                self._link(child, deps, announce=False)
        # One block, made into events as each subscriber takes them; before any child's state.
        width, number = len(children) - first, node.batches[-1][1]
        self.owner.emit(ev.EventBlock(created_events(node, children, self.run_id), width,
                                      ev.numbered(f"{self.run_id}.", number, width)))
        for i in range(first, len(children)):
            if children[i].waiting == 0:
                finished += self.resolve(children[i])
        return finished + self._grow_dependents(node)

    def grow(self, node: MapNode) -> Finished:
        """A growing map's source has more (flatten.py): add the children it may add now."""
        if node.expanded:
            return []  # complete, or ended
        step = node.growth.step(node, self.owner.split, self._future_of)
        finished = self.add_children(node, step.children)
        if step.end is not None:
            return finished + self.fail_map(node, *step.end)
        if step.complete:
            node.expanded = True
            self.close()
            finished += self._expand_downstream(node) + self._grow_dependents(node)
            if node.done:  # no child left to end and say so
                finished.append(node)
        return finished

    def _grow_dependents(self, node: MapNode) -> Finished:
        finished: Finished = []
        for downstream in node.grow_dependents or ():
            finished += self.grow(downstream)
        return finished

    def fail_map(self, node: MapNode, state: State, message: str) -> Finished:
        """A map that cannot expand gets one placeholder task run carrying why."""
        placeholder = self._new_task_run(node.task, node.id, None, label=node.label)
        placeholder.parent = node
        node.placeholder = placeholder
        node.children.append(placeholder)  # after those a growing map made so far
        node.expanded = True
        self.owner.emit(ev.TaskRunCreated(
            self.run_id, placeholder.id, node.id, node.name, None, (), placeholder.created
        ))
        self.set_final(placeholder, state, message)
        return [placeholder, *self._expand_downstream(node), *self._grow_dependents(node)]

    def _expand_downstream(self, node: MapNode) -> Finished:
        finished: Finished = []
        for downstream in node.expand_dependents or ():
            downstream.waiting_to_expand -= 1
            if downstream.waiting_to_expand == 0:
                finished += self.expand(downstream)
        return finished

    def _future_of(self, tr: TaskRun) -> TaskFuture[Any]:
        return TaskFuture(cast("ResultSource", self.owner), tr)

    def settle(self, finished: Finished) -> None:
        """Propagate completions without recursion (a long chain of UpstreamFailed is fine)."""
        stack = list(finished)
        while stack:
            item = stack.pop()
            for dependent in item.dependents:
                dependent.waiting -= 1
                if dependent.waiting == 0:
                    stack += self.resolve(dependent)
            if isinstance(item, TaskRun):
                # Maps over this run's result learn their width now.
                for node in item.expand_dependents or ():
                    node.waiting_to_expand -= 1
                    if node.waiting_to_expand == 0 and not node.expanded:
                        stack += self.expand(node)
                if item.parent is not None:
                    item.parent.children_done += 1
                    if item.parent.done:
                        stack.append(item.parent)
                    stack += self._grow_dependents(item.parent)  # its list has arrived

    # --- states -------------------------------------------------------------------------------

    def set_state(
        self, tr: TaskRun, state: State, message: str = "", when: float | None = None,
        traceback: str = "", final: bool = False,
    ) -> None:
        self.owner.emit(changed(self.run_id, tr, tr.id, state, when or time.time(), message,
                                traceback, final))

    def close(self, count: int = 1) -> None:
        """``count`` task runs (or maps) are no longer open: the only way ``open`` goes down,
        so that the run's wait for its end is told when it reaches 0 (``all_closed``)."""
        self.open -= count
        if self.open == 0:
            self.owner.all_closed()

    def set_final(
        self, tr: TaskRun, state: State, message: str = "", when: float | None = None,
        traceback: str = "",
    ) -> None:
        self.set_state(tr, state, message, when, traceback, final=True)
        self.close()
        self.owner.on_final(tr)

    def cancel(self, reason: str, started_too: bool) -> list[TaskRun]:
        """End what has not finished as Cancelled (only what never launched unless
        ``started_too``); returns the cancelled task runs that had been launched."""
        finished: Finished = []
        launched: list[TaskRun] = []
        for node in self.maps:
            if not node.expanded:
                finished += self.fail_map(node, State.CANCELLED, reason)
        for tr in self.task_runs:
            if tr.done or (tr.handle is not None and not started_too):
                if tr.done and tr.holds_slot:  # its end cut short by a Ctrl-C: its slot goes
                    self.owner.on_final(tr)    # back (never, before: the next run waited)
                continue
            if tr.handle is not None:
                launched.append(tr)
            self.set_final(tr, State.CANCELLED, reason)
            finished.append(tr)
        self.settle(finished)
        recount(self)  # and its count: the run's own thread waits for it to reach 0
        if self.open == 0:
            self.owner.all_closed()
        return launched

    # --- after the run ----------------------------------------------------------------------

    def reset_bad(self, forget_values: Callable[[str], None], lost: LostValues) -> None:
        """For a retry: bad task runs (and completed ones whose value was ``lost``, noted for
        ``run.notes``) and everything downstream go back to Pending, their logged values
        forgotten, then what can start starts (``rerun.py``)."""
        reset_bad(self, forget_values, lost.executor.lost, noted=lost.rerun)

    # --- a late observer's view -------------------------------------------------------------

    def snapshot(self) -> list[ev.Event]:
        """The graph so far as events (``replay.py``)."""
        return snapshot_of(self)
