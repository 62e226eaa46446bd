"""Futures handed out while a flow body runs, and the argument markers ``unmapped`` and
``allow_failure``. A future is a name for a task run's result; data stays with the executor
until ``.result()`` asks for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .call_copies import PLAIN as _PLAIN
from .context import active_engine
from .expressions import missing_attribute, refuse_equality, refuse_operators
from .states import State

if TYPE_CHECKING:
    from .map_nodes import MapNode
    from .task_runs import TaskRun

R = TypeVar("R")


class ResultSource(Protocol):
    """What a future asks for its values: the run engine that owns its task run."""

    id: str

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool: ...

    def result_of(self, tr: TaskRun, timeout: float | None) -> Any: ...

    def results_of(self, runs: list[TaskRun], timeout: float | None) -> list[Any]: ...


class TaskFuture(Generic[R]):
    """The result of one task run, to come. Pass it to other tasks to wire the DAG.

    >>> total = add(load(), 1)      # inside a flow: load's future is add's input
    >>> total.result()              # blocks until add finished
    """

    __slots__ = ("_engine", "_task_run")

    def __init__(self, engine: ResultSource, task_run: TaskRun) -> None:
        self._engine = engine
        self._task_run = task_run

    @property
    def task_run(self) -> TaskRun:
        return self._task_run

    @property
    def run_id(self) -> str:
        """The flow run this future belongs to."""
        return self._engine.id

    @property
    def task_run_id(self) -> str:
        return self._task_run.id

    @property
    def name(self) -> str:
        return self._task_run.name

    @property
    def state(self) -> State:
        return self._task_run.state

    def wait(self, timeout: float | None = None) -> State:
        """Block until the task run ends (or ``timeout``); returns its state."""
        self._engine.wait_until(lambda: self._task_run.state.is_final, timeout)
        return self._task_run.state

    def result(self, timeout: float | None = None) -> R:
        """The task run's value; raises its exception if it failed."""
        value: R = self._engine.result_of(self._task_run, timeout)
        return value

    def __getitem__(self, key: Any) -> TaskFuture[Any]:
        """``cfg()["lr"]`` in a flow body: a small task run, ``cfg["lr"]``, takes the item
        where the value lives; pass the result to tasks like any future."""
        return index_future(self, key)

    def __bool__(self) -> bool:
        raise TypeError(
            f"Truth of a TaskFuture is not supported: {self.name!r} has no value while the "
            "flow is built; decide inside a task, or use its value with .result() (which waits)"
        )

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            f"Iterating a TaskFuture is not supported: {self.name!r} has no value while the "
            "flow is built; fan out over its items with some_task.map(future), or take "
            ".result() first"
        )

    def __len__(self) -> int:
        raise TypeError(
            f"len() of a TaskFuture is not supported: {self.name!r} has no value while the "
            "flow is built; pass it to a task, or take .result() first"
        )

    __eq__ = __ne__ = refuse_equality
    __hash__ = object.__hash__

    def __getattr__(self, name: str) -> Any:
        raise missing_attribute(self, name)

    def __repr__(self) -> str:
        return f"<TaskFuture {self.name} {self.state.value}>"


class MappedFuture(Generic[R]):
    """The results of a map: one child task run per element.

    Pass it to ``other.map(...)`` to chain child by child (depth-first), or to a plain task to
    receive all values as a list. ``.result()`` gives the list.
    """

    __slots__ = ("_engine", "_node")

    def __init__(self, engine: ResultSource, node: MapNode) -> None:
        self._engine = engine
        self._node = node

    @property
    def node(self) -> MapNode:
        return self._node

    @property
    def run_id(self) -> str:
        return self._engine.id

    @property
    def name(self) -> str:
        return self._node.name

    @property
    def futures(self) -> list[TaskFuture[R]]:
        """One future per child; the width must be known (it is once the map expanded)."""
        if not self._node.expanded:
            raise TypeError(
                f"the width of map {self.name!r} is not known yet (it maps over a result that "
                "is still being computed); pass it to a task or wait with .result() first"
            )
        return [TaskFuture(self._engine, child) for child in self._node.children]

    @property
    def state(self) -> State:
        return self._node.state

    def wait(self, timeout: float | None = None) -> State:
        self._engine.wait_until(lambda: self._node.done, timeout)
        return self._node.state

    def result(self, timeout: float | None = None) -> list[R]:
        """All children's values, in order; raises the first failure."""
        self._engine.wait_until(lambda: self._node.done, timeout)
        values: list[R] = self._engine.results_of(self._node.children, timeout)
        return values

    def __len__(self) -> int:
        return len(self.futures)

    def __iter__(self) -> Iterator[TaskFuture[R]]:
        return iter(self.futures)

    def __getitem__(self, index: int) -> TaskFuture[R]:
        return self.futures[index]

    def __bool__(self) -> bool:
        raise TypeError(
            f"Truth of a MappedFuture is not supported: the results of map {self.name!r} are "
            "not known while the flow is built; use .result()"
        )

    __eq__ = __ne__ = refuse_equality
    __hash__ = object.__hash__

    def __getattr__(self, name: str) -> Any:
        raise missing_attribute(self, name)

    def __repr__(self) -> str:
        width = len(self._node.children) if self._node.expanded else "?"
        return f"<MappedFuture {self.name}[{width}] {self.state.value}>"


refuse_operators(TaskFuture)
refuse_operators(MappedFuture)


class unmapped:
    """Broadcast a value to every child of a map instead of iterating over it.

    >>> train.map(params, data=unmapped(table))
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class allow_failure:
    """Let a downstream task run even if this upstream fails; it receives the exception object
    in place of each failed value. Given to ``.map``, a map's result is allowed child by
    child: child i of the next map gets child i's value or its exception. A list, tuple or
    dict of futures is allowed element by element.

    >>> summarize(allow_failure(train.map(params)))
    >>> report.map(allow_failure(train.map(params)))
    >>> compare(allow_failure([a, b]))       # the same as [allow_failure(a), allow_failure(b)]
    """

    __slots__ = ("future",)

    future: TaskFuture[Any] | MappedFuture[Any]

    def __new__(cls, future: Any) -> Any:
        if isinstance(future, (TaskFuture, MappedFuture)):
            marker = object.__new__(cls)
            marker.future = future
            return marker
        if type(future) in (list, tuple, dict):
            try:
                wrapped = _allow_each(future)
            except RecursionError:
                raise TypeError(
                    "allow_failure() was given a list, tuple or dict that contains itself or "
                    "is nested deeper than Python's recursion limit; wrap each future in it "
                    "instead: allow_failure(future)"
                ) from None
            found: list[Any] = []
            find_futures(wrapped, found)
            if found:
                return wrapped
        raise TypeError(
            f"allow_failure() takes a task's future (the value of calling a task inside a "
            f"flow), a map's result, or a list, tuple or dict holding them; got "
            f"{type(future).__name__}" + (" without a future in it" if type(future) in
                                          (list, tuple, dict) else "")
        )


def _allow_each(value: Any) -> Any:
    """``value`` with each future in it wrapped in ``allow_failure``."""
    if isinstance(value, (TaskFuture, MappedFuture)):
        return allow_failure(value)
    if type(value) in (list, tuple):
        return type(value)(_allow_each(item) for item in value)
    if type(value) is dict:
        return {key: _allow_each(item) for key, item in value.items()}
    return value


class Flattened:
    """``flatten(a_map's_result)``: a ``.map`` argument whose items are those of the map's lists
    (see ``flatten.py``)."""

    __slots__ = ("future",)

    def __init__(self, future: MappedFuture[Any]) -> None:
        self.future = future

    def __repr__(self) -> str:
        return f"flatten({self.future!r})"


_CONTAINERS = (list, tuple, set, frozenset)
_MARKERS = (TaskFuture, MappedFuture, allow_failure, Flattened)
# Containers shorter than this are walked item by item at once (cheaper than a look at types).
_LOOK_AT_TYPES_FROM = 32


def find_futures(obj: Any, found: list[Any]) -> None:
    """Collect futures (and allow_failure, flatten markers) anywhere in lists, tuples, sets and
    dicts. A value that contains itself (``x = [1]; x.append(x)``) or is nested deeper than
    Python's recursion limit is searched again without recursion (``_search``); the common
    call pays nothing for that. A future inside such a value where ``replace_futures`` could
    not put its value in its place (in the cycle, or that deep) is refused here, at the call."""
    start = len(found)
    try:
        _find(obj, found)
    except RecursionError:
        del found[start:]
        found += _search(obj)
        if len(found) > start:
            _replaced_sparing(obj, _same)


def _same(item: Any) -> Any:
    return item


def _find(obj: Any, found: list[Any]) -> None:
    kind = type(obj)
    if kind is TaskFuture or kind is MappedFuture or kind is allow_failure or kind is Flattened:
        found.append(obj)
    elif kind in _CONTAINERS or isinstance(obj, tuple):
        # Numbers and strings hold no future: a list of ten million of them is judged by its
        # items' types, gathered in C (0.2 s), not by a Python call per item (1.5 s, three
        # times per task call: a flow passing one to a task took 5.6 s before its task ran).
        # A NumPy array is never walked (not a container here): no future is in one.
        if len(obj) > _LOOK_AT_TYPES_FROM and set(map(type, obj)) <= _PLAIN:
            return
        for item in obj:
            _find(item, found)
    elif kind is dict:
        for item in obj.values():
            _find(item, found)


def _search(obj: Any) -> list[Any]:
    """What ``_find`` finds, without recursion: each container once (a cycle leads back to one
    searched already)."""
    found: list[Any] = []
    seen: set[int] = set()
    stack = [obj]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind in _MARKERS:
            found.append(value)
            continue
        if kind is dict:
            items: Any = value.values()
        elif kind in _CONTAINERS or isinstance(value, tuple):
            items = value
        else:
            continue
        if id(value) not in seen:
            seen.add(id(value))
            if not (len(items) > _LOOK_AT_TYPES_FROM and set(map(type, items)) <= _PLAIN):
                stack.extend(reversed(list(items)))  # in order, as ``_find`` finds them
    return found


def replace_futures(obj: Any, resolve: Callable[[Any], Any]) -> Any:
    """A copy of ``obj`` with every future replaced by ``resolve(future)``."""
    try:
        return _replaced(obj, resolve)
    except RecursionError:
        return _replaced_sparing(obj, resolve)


def _replaced_sparing(obj: Any, resolve: Callable[[Any], Any]) -> Any:
    """``replace_futures`` for a value that contains itself or is nested too deep: only the
    containers on the way to a future are copied, the others given back as they are."""
    try:
        return _rebuilt(obj, resolve)
    except RecursionError:
        raise TypeError(
            "a future is inside a list, tuple, set or dict that contains itself or is nested "
            "deeper than Python's recursion limit, where labloom cannot put its value in its "
            "place; pass the future to the task as an argument of its own"
        ) from None


def _rebuilt(obj: Any, resolve: Callable[[Any], Any]) -> Any:
    kind = type(obj)
    if kind in _MARKERS:
        return resolve(obj)
    if not _search(obj):
        return obj
    each = [_rebuilt(item, resolve) for item in (obj.values() if kind is dict else obj)]
    if kind is dict:
        return dict(zip(obj, each, strict=True))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return kind(*each)
    return kind(each)  # a list, tuple, set or frozenset


def _replaced(obj: Any, resolve: Callable[[Any], Any]) -> Any:
    kind = type(obj)
    if kind is TaskFuture or kind is MappedFuture or kind is allow_failure or kind is Flattened:
        return resolve(obj)
    if kind is list:
        return [_replaced(item, resolve) for item in obj]
    if kind is dict:
        return {key: _replaced(value, resolve) for key, value in obj.items()}
    if kind is tuple:
        return tuple(_replaced(item, resolve) for item in obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return kind(*(_replaced(item, resolve) for item in obj))
    if kind is set or kind is frozenset:
        return kind(_replaced(item, resolve) for item in obj)
    return obj


# Indexing, the one expression a future supports (the others: ``expressions.py``).


def item(value: Any, key: Any) -> Any:
    """What an indexing task run runs: ``value[key]``."""
    return value[key]


def _label(key: Any) -> str:
    text = key.name if isinstance(key, (TaskFuture, MappedFuture)) else repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def index_future(future: TaskFuture[Any], key: Any) -> TaskFuture[Any]:
    """``future[key]`` inside its flow's body: a task run named ``name[key]``."""
    from .tasks import Task

    engine = active_engine()
    if engine is None or engine.id != future.run_id:
        raise TypeError(
            f"indexing a TaskFuture ({future.name!r}) works only inside the body of its own "
            "flow, where it adds a step to the DAG; here, index its value instead: "
            "future.result()[key]"
        )
    task: Task[Any, Any] = Task(item, name=f"{future.name}[{_label(key)}]")
    return engine.submit(task, (future, key), {}, None)
