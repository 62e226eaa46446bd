"""Task run records as the engine tracks them: ``TaskRun`` (a map's ``MapNode``, grouping its
children, is in ``map_nodes.py``).

Plain data, kept compact (slots; containers made only when a run needs them): a flow of a
million task runs holds a million of these. ``TaskGraph`` (``task_graph.py``) owns every
mutation, under its engine's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

from .states import BAD_STATES, State

if TYPE_CHECKING:
    from .map_nodes import MapNode
    from .tasks import Task

Own = tuple[str, "Task[Any, Any]", str, str, float, "complex | None"]  # see TaskRun._own

# The kwargs of every task run that has none: shared, never mutated (a dict each would cost
# memory across a million task runs).
NO_KWARGS: dict[str, Any] = {}


@dataclass(slots=True)
class StateEntry:
    state: State
    time: float
    message: str = ""


class _Rare:
    """What few task runs have (a failure, a cache key, allow_failure links): one shared
    attribute on the task run instead of five, so a million plain task runs carry none."""

    __slots__ = ("allowed", "cache_key", "earlier_attempts", "error", "expand_dependents",
                 "holds_slot", "kwargs", "left_map", "message", "traceback")

    def __init__(self) -> None:
        self.message = ""
        self.kwargs: dict[str, Any] = NO_KWARGS
        self.holds_slot = False
        self.traceback = ""
        self.error: BaseException | None = None
        self.cache_key: str | None = None
        self.allowed: set[int] | None = None  # ids of upstreams under allow_failure
        self.expand_dependents: list[MapNode] | None = None
        self.earlier_attempts = 0  # before a retry of its run reset it (``all_attempts``)
        self.left_map: str | None = None  # why it left its map (``left_maps.leave``): history


V = TypeVar("V")


class _RareField(Protocol[V]):
    """What type checkers see of ``_rare_field``: an attribute of type ``V``."""

    @overload
    def __get__(self, run: None, owner: type) -> _RareField[V]: ...

    @overload
    def __get__(self, run: TaskRun, owner: type) -> V: ...

    def __set__(self, run: TaskRun, value: V) -> None: ...


def _rare_field(name: str, default: V) -> _RareField[V]:
    """A task run's attribute kept in its ``_Rare`` record: it reads as ``default`` while the
    task run has no record, and setting the default (for strings and flags: any empty or false
    value) makes none. A plain ``property``: reading it costs what a hand-written one does."""

    def get(run: TaskRun) -> V:
        rare = run._rare
        return default if rare is None else cast(V, getattr(rare, name))

    def put(run: TaskRun, value: V) -> None:
        if run._rare is not None or (value is not None if default is None else bool(value)):
            setattr(run._more(), name, value)

    return cast("_RareField[V]", property(get, put))


# ``TaskRun._steps`` for the usual histories, kept as a number instead of a list of entries
# (the times are the task run's own ``created``, ``started`` and ``ended``): Pending;
# Pending, Running; Pending, Running, final; Pending, final. Anything else is a list.
_PENDING, _RAN, _RAN_ENDED, _ENDED = 0, 1, 2, 3
NAN = float("nan")
_ATTEMPTS = 2**32 - 1  # TaskRun._counts: the attempts' bits


class TaskRun:
    """One execution of a task (a map child is one too). Shown to users via ``FlowRun.tasks``.

    Compact on purpose: a flow of a million task runs holds a million of these, so rare
    fields live in one ``_Rare`` made on first use and the state history is a number until
    it is unusual (``history`` rebuilds the entries).

    A map child made with others has no ``_own``: its id, task, node, label, times and inputs
    are read from its ``parent`` at its ``map_index``, neither of them None then. Those reads
    say so to the type checker with ``type: ignore`` rather than ``typing.cast``, a call each:
    they are on every child's path (launch, start, end, events) many times."""

    __slots__ = (
        "_args",
        "_counts",
        "_own",
        "_rare",
        "_steps",
        "dependents",
        "handle",
        "map_index",
        "parent",
        "state",
        "upstream",
        "worker",
    )

    def __init__(
        self, own: Own | None, map_index: int | None, args: tuple[Any, ...] | None = (),
        parent: MapNode | None = None,
    ) -> None:
        # (id, task, node id, label, created, times); None for a map's child made with others:
        # its map knows those (``MapNode.batches``, ``MapNode.times``), five fewer objects for
        # each of a million. The times: when it started and ended, one complex number of two
        # (NaN: not yet), or None.
        self._own = own
        self.map_index = map_index
        # None: a map child's inputs are read from its map's sources when asked (``args``), so
        # a map over a list of a million items holds the list, not a million argument tuples.
        self._args = args
        self.state = State.PENDING
        # Attempts so far, and upstreams not yet final (``waiting``) from bit 32 on: one slot
        # for two counts (``attempts``, ``waiting``), 0 for a Pending task run, 1 when done.
        self._counts = 0
        self.worker = ""  # where its last attempt ran (see StateChanged.worker)
        # Engine bookkeeping. Empty tuples until a link is made (most map children have none).
        self.upstream: Sequence[TaskRun | MapNode] = ()
        self.dependents: Sequence[TaskRun] = ()
        self.parent = parent
        self.handle: Any = None
        self._steps: int | list[StateEntry] = _PENDING
        self._rare: _Rare | None = None

    @property
    def id(self) -> str:
        own = self._own
        if own is not None:
            return own[0]
        return self.parent.child_id(self.map_index)  # type: ignore[union-attr, arg-type]

    @property
    def task(self) -> Task[Any, Any]:
        own = self._own
        return own[1] if own is not None else self.parent.task  # type: ignore[union-attr]

    @task.setter
    def task(self, task: Task[Any, Any]) -> None:
        # A retry runs the task as defined now (``tasks.as_defined_now``); a map's child made
        # with others runs its map's.
        own = self._own
        if own is None:
            self.parent.task = task  # type: ignore[union-attr]
        else:
            self._own = (own[0], task, own[2], own[3], own[4], own[5])

    @property
    def node_id(self) -> str:
        own = self._own
        return own[2] if own is not None else self.parent.id  # type: ignore[union-attr]

    @property
    def label(self) -> str:
        """Its node's name where that is not the task's: a repeated call, add-2."""
        own = self._own
        return own[3] if own is not None else self.parent.label  # type: ignore[union-attr]

    @property
    def created(self) -> float:
        own = self._own
        if own is not None:
            return own[4]
        return self.parent.child_created(self.map_index)  # type: ignore[union-attr, arg-type]

    @property
    def attempts(self) -> int:
        return self._counts & _ATTEMPTS

    @attempts.setter
    def attempts(self, value: int) -> None:  # each one a call: never near 2**32
        self._counts = self._counts & ~_ATTEMPTS | value

    @property
    def all_attempts(self) -> int:
        """Its attempts across its run's retries (``@flow(retries=...)``, ``run.retry()``),
        which start ``attempts`` over: what a user reading the run is told (events, the
        store, ``labloom show``), how many times it ran."""
        rare = self._rare
        attempts = self._counts & _ATTEMPTS
        return attempts if rare is None else attempts + rare.earlier_attempts

    @property
    def waiting(self) -> int:
        """Upstreams not yet final."""
        return self._counts >> 32

    @waiting.setter
    def waiting(self, value: int) -> None:
        self._counts = self._counts & _ATTEMPTS | value << 32

    # A map's child made with others keeps its times in its map's ``times`` (16 bytes in an
    # array instead of a 32-byte complex each); other task runs in ``_own``.
    @property
    def started(self) -> float | None:
        if self._own is None:
            when = self.parent.times[2 * self.map_index]  # type: ignore[operator, union-attr]
            return None if when != when else when
        times = self._own[5]
        return None if times is None or times.real != times.real else times.real

    @started.setter
    def started(self, value: float | None) -> None:
        if self._own is None:
            when = NAN if value is None else value
            self.parent.times[2 * self.map_index] = when  # type: ignore[operator, union-attr]
            return
        self._set_times(value, self.ended)

    @property
    def ended(self) -> float | None:
        if self._own is None:
            when = self.parent.times[2 * self.map_index + 1]  # type: ignore[operator, union-attr]
            return None if when != when else when
        times = self._own[5]
        return None if times is None or times.imag != times.imag else times.imag

    @ended.setter
    def ended(self, value: float | None) -> None:
        if self._own is None:
            when = NAN if value is None else value
            self.parent.times[2 * self.map_index + 1] = when  # type: ignore[operator, union-attr]
            return
        self._set_times(self.started, value)

    def _set_times(self, started: float | None, ended: float | None) -> None:
        own = cast(Own, self._own)
        self._own = (own[0], own[1], own[2], own[3], own[4], None if started is None and ended
                     is None else complex(NAN if started is None else started,
                                          NAN if ended is None else ended))

    @property
    def args(self) -> tuple[Any, ...]:
        if self._args is None:
            return self.parent.inputs_of(self.map_index)[0]  # type: ignore[arg-type, union-attr]
        return self._args

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        if self._args is None:
            self._set_kwargs(self.kwargs)
        self._args = value

    @property
    def kwargs(self) -> dict[str, Any]:
        if self._args is None:
            return self.parent.inputs_of(self.map_index)[1]  # type: ignore[arg-type, union-attr]
        return self._rare.kwargs if self._rare is not None else NO_KWARGS

    @kwargs.setter
    def kwargs(self, value: dict[str, Any]) -> None:
        if self._args is None:
            self._args = self.args
        self._set_kwargs(value)

    def _set_kwargs(self, value: dict[str, Any]) -> None:
        if value or self._rare is not None:
            self._more().kwargs = value

    def drop_inputs(self) -> None:
        """Inputs ``()`` and no keywords from now on. A map child's are not read from its map
        first (``args = ()`` would: the run's release read every child's inputs to drop them)."""
        self._args = ()
        if self._rare is not None:
            self._rare.kwargs = NO_KWARGS

    def leave_map(self, times: tuple[float | None, float | None] | None = None) -> None:
        """No longer its map's child (``left_maps.leave``): its id, times (``times`` when
        given: its last run's) and inputs kept on it, as the map's next children reuse its
        index."""
        parent = self.parent
        if parent is None:
            return
        if self._own is None:
            started, ended = self.started, self.ended
            self._own = (self.id, parent.task, parent.id, parent.label, self.created, None)
            self._set_times(started, ended)
        if times is not None:
            self._set_times(*times)
        if self._args is None:
            self._args, kwargs = self.inputs()
            self._set_kwargs(kwargs)
        self.parent = None

    def inputs(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)``, read once."""
        if self._args is None:
            return self.parent.inputs_of(self.map_index)  # type: ignore[arg-type, union-attr]
        return self._args, self._rare.kwargs if self._rare is not None else NO_KWARGS

    # What few task runs have, kept in their ``_Rare`` record (see ``_rare_field``).
    message = _rare_field("message", "")
    holds_slot = _rare_field("holds_slot", False)  # a concurrency slot of its tags (``Launcher``)
    traceback = _rare_field("traceback", "")
    error: _RareField[BaseException | None] = _rare_field("error", None)
    cache_key: _RareField[str | None] = _rare_field("cache_key", None)
    allowed: _RareField[set[int] | None] = _rare_field("allowed", None)
    expand_dependents: _RareField[list[MapNode] | None] = _rare_field("expand_dependents", None)
    earlier_attempts = _rare_field("earlier_attempts", 0)
    left_map: _RareField[str | None] = _rare_field("left_map", None)

    def _more(self) -> _Rare:
        if self._rare is None:
            self._rare = _Rare()
        return self._rare

    # --- the state history ------------------------------------------------------------------

    @property
    def history(self) -> list[StateEntry]:
        """Every state it was in, with when and why (a copy)."""
        steps = self._steps
        if isinstance(steps, list):
            return list(steps)
        entries = [StateEntry(State.PENDING, self.created)]
        if steps in (_RAN, _RAN_ENDED):
            entries.append(StateEntry(State.RUNNING, self.started or 0.0))
        if steps in (_RAN_ENDED, _ENDED):
            entries.append(StateEntry(self.state, self.ended or 0.0, self.message))
        return entries

    def record(self, state: State, when: float, message: str) -> None:
        """Add a history entry; call after setting ``state``, ``message`` and (final)
        ``ended``, which the usual entries are rebuilt from."""
        steps = self._steps
        if isinstance(steps, int):
            if steps == _PENDING and state is State.RUNNING and not message \
                    and when == self.started:
                self._steps = _RAN
                return
            if steps in (_PENDING, _RAN) and state.is_final and when == self.ended:
                self._steps = _RAN_ENDED if steps == _RAN else _ENDED
                return
            self.keep_history()
        cast("list[StateEntry]", self._steps).append(StateEntry(state, when, message))

    def drop_entry(self, state: State, when: float) -> None:
        """Take ``state``'s entry at ``when`` out of its history, if it has one."""
        entries = self.history
        kept = [e for e in entries if e.state is not state or e.time != when]
        if len(kept) != len(entries):
            self._steps = kept

    def keep_history(self) -> None:
        """Keep the history as entries from now on (before fields it is rebuilt from change)."""
        if not isinstance(self._steps, list):
            self._steps = self.history

    # --- derived ----------------------------------------------------------------------------

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
        allowed = self.allowed
        return allowed is not None and id(upstream) in allowed

    def __repr__(self) -> str:
        return f"<TaskRun {self.name} {self.state.value} attempts={self.attempts}>"
