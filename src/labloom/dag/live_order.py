"""The orders a live run's Experiments view asks its rows in, kept up to date as events
arrive rather than sorted again for each question.

While a big map runs, each batch of events (rows logged, states moved on) makes the cell's
view ask again (its first page, and its best row by the metric chosen): every question copied,
filtered and sorted all the rows again, 0.5-0.8 s of the kernel's at 100,000 rows, the kernel
that also runs the flow's engine. Here each order (a node's rows by a sort, a direction and a
filter) is kept as two sorted lists: rows with a value to sort by, and rows without (missing or
NaN), last either way. The task runs events touched since (``note``) are placed again: taken
out by their old place, put in by their new one (a bisection, or one merge for many); the
whole order is made again only when its question changes, or when what it reads moved (a
column came or went under a filter, a task came or went in ``index_order``).

A row is known by its position in the rows a full answer starts from (``ExperimentRows
.snapshot``: the nodes in graph order, each node's task runs in its order), an int: node
rank << 32 | run rank. Ties keep that order either way, as ``experiments.order``'s stable
sort does, so each answer is the one ``experiment_rows.page_answer`` gives.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..core.errors import LabloomError
from ..core.events import Event, ExperimentCalls, ExperimentValues, StateChanged, TaskRunCreated
from .experiment_rows import ExperimentRows, duration, filled, question
from .live_columns import LiveColumns
from .model import TaskRunInfo, ViewGraph

SCOPES = 2  # nodes whose rows are kept (the views open at once)
ORDERS = 4  # orders kept a node: a view asks two each time (its page, its best row)
_RUN_BITS = 32
_RUN_MASK = (1 << _RUN_BITS) - 1
_FEW = 16  # rows moved one by one; more, in one pass
# Task runs touched since a node's last question beyond its rows' count (a view closed a
# while): its orders are made again when next asked, and nothing more is noted meanwhile.
REMAKE_MARGIN = 1000
Found = tuple[ex.Experiment, TaskRunInfo]


def touched(batch: Sequence[Event]) -> set[str]:
    """The task runs whose rows a batch of events may change: values logged, a state (and
    so a duration), a task run created (a new row, or a rerun taking the place of one)."""
    # By exact type (the bus's own classes), in two passes without a call per event: on the
    # thread that folds every event, 0.2 ms a batch of 4,000 rather than 0.9.
    events: Sequence[Any] = batch  # each type in _ONE_TASK_RUN has a task_run_id
    ids: set[str] = {event.task_run_id for event in events if type(event) in _ONE_TASK_RUN}
    for event in batch:
        if type(event) is ExperimentCalls:
            ids.update(event.task_run_ids)
    return ids


_ONE_TASK_RUN = frozenset((StateChanged, TaskRunCreated, ExperimentValues))


def cell(row: ex.Experiment, tr: TaskRunInfo, column: str) -> Any:
    """``filled(row, tr).get(column)``, without copying the row."""
    if column == "task":
        return tr.name
    if column == "map_index":
        return tr.map_index
    if column == "state":
        return tr.state.value
    if column == "duration":
        return duration(tr)
    return row.get(column)  # run_id and task_run_id are the row's own


class LiveOrders:
    """The orders of the rows a view asked for, by node (``SCOPES`` nodes, ``ORDERS`` orders
    each, the least recently asked forgotten). Its owner calls every method under the lock
    that also guards the graph and the rows, but for ``_Order.sort``, which needs only that
    one question is answered at a time."""

    def __init__(self) -> None:
        self._scopes: OrderedDict[str | None, _Scope] = OrderedDict()

    def note(self, batch: Sequence[Event]) -> None:
        """A batch of events was folded into the graph and the rows."""
        if self._scopes:
            ids = touched(batch)
            for scope in self._scopes.values():
                scope.note(ids)

    def order_for(self, graph: ViewGraph, rows: ExperimentRows, message: dict[str, Any],
                  ) -> _Order:
        """The order ``message`` asks, up to date; a new one is not sorted yet (``sorted``)."""
        sort, desc, _limit, _offset, query = question(message)
        node = message.get("node")
        if node is not None and node not in graph.nodes:
            raise LabloomError(f"[labloom] no node {node!r} in this run")
        scope = self._scopes.get(node)
        if scope is None or scope.graph is not graph or scope.rows is not rows:
            scope = self._scopes[node] = _Scope(graph, rows, node)
        else:
            scope.refresh()
        self._scopes.move_to_end(node)
        while len(self._scopes) > SCOPES:
            self._scopes.popitem(last=False)
        return scope.order(sort, desc, query)

    @staticmethod
    def page(order: _Order, message: dict[str, Any]) -> dict[str, Any]:
        """A page of ``order`` (events since folded in first), its rows copied now."""
        scope = order.scope
        if not order.sorted:
            order.sort()
        scope.refresh()
        sort, desc, limit, offset, _query = question(message)
        shown, nodes = [], {}
        for position in order.slice(offset, limit):
            found = scope.at(position)
            assert found is not None
            row = filled(*found)
            shown.append(row)
            nodes[id(row)] = found[1].node_id
        return ex.answer_of(shown, scope.names(), order.total, sort, desc, limit, offset,
                            lambda row: {"node": nodes[id(row)]})


class _Scope:
    """The rows of one node (None: every node's) and the orders asked of them."""

    def __init__(self, graph: ViewGraph, rows: ExperimentRows, node: str | None) -> None:
        self.graph, self.rows, self.node = graph, rows, node
        self.orders: OrderedDict[tuple[str | None, bool, str], _Order] = OrderedDict()
        self._start()

    def _start(self) -> None:
        self._nodes: list[str] = []  # in graph order: a position's node rank
        self._node_rank: dict[str, int] = {}
        self._indexes: dict[str, list[int | None]] = {}  # a node's map indexes, in its order
        self._run_rank: dict[str, dict[int | None, int]] = {}
        self._dirty: set[str] = set()
        self._stale = False  # more touched than there are rows: made again when asked
        self._grow()
        self.columns = LiveColumns()
        for position, row, _tr in self.present():
            self.columns.put(position, row)

    def note(self, ids: set[str]) -> None:
        if self._stale:
            return
        self._dirty |= ids
        if len(self._dirty) > len(self.columns) + REMAKE_MARGIN:  # a remake costs less
            self._stale, self._dirty = True, set()

    def order(self, sort: str | None, desc: bool, query: str) -> _Order:
        key = (sort, desc, query)
        order = self.orders.get(key)
        if order is None:
            order = self.orders[key] = _Order(self, sort, desc, query)
        self.orders.move_to_end(key)
        while len(self.orders) > ORDERS:
            self.orders.popitem(last=False)
        return order

    def refresh(self) -> None:
        """Place again the rows of the task runs touched since the last refresh."""
        if self._stale:
            self._start()
            for order in self.orders.values():
                order.make()
                order.sort()
            return
        self._grow()
        if not self._dirty:
            return
        changed: dict[int, Found | None] = {}
        for task_run_id in self._dirty:
            tr = self.graph.task_runs.get(task_run_id)
            rank = None if tr is None else self._node_rank.get(tr.node_id)
            if tr is not None and rank is not None:
                position = rank << _RUN_BITS | self._run_rank[tr.node_id][tr.map_index]
                changed[position] = self.at(position)
        self._dirty = set()
        moved = False
        for position, found in changed.items():
            moved |= self.columns.put(position, found[0] if found else None)
        for order in self.orders.values():
            order.update(changed, moved)

    def _grow(self) -> None:
        """Nodes and task runs added since: their ranks (a node's map indexes are never
        dropped, and a rerun keeps its index's place)."""
        ids = self.graph.nodes if self.node is None else (self.node,)
        for node_id in islice(ids, len(self._nodes), None):
            self._node_rank[node_id] = len(self._nodes)
            self._nodes.append(node_id)
            self._indexes[node_id], self._run_rank[node_id] = [], {}
        for node_id in self._nodes:
            runs, indexes = self.graph.nodes[node_id].runs, self._indexes[node_id]
            if len(runs) > len(indexes):
                ranks = self._run_rank[node_id]
                for index in islice(runs, len(indexes), None):
                    ranks[index] = len(indexes)
                    indexes.append(index)

    def present(self) -> Iterator[tuple[int, ex.Experiment, TaskRunInfo]]:
        """The rows there are, in the order of a full answer's, with their positions."""
        row_of, task_run_of = self.rows.by_task_run().get, self.graph.task_runs.get
        for node_rank, node_id in enumerate(self._nodes):
            base = node_rank << _RUN_BITS
            for run_rank, task_run_id in enumerate(self.graph.nodes[node_id].runs.values()):
                row, tr = row_of(task_run_id), task_run_of(task_run_id)
                if row is not None and tr is not None:
                    yield base | run_rank, row, tr

    def at(self, position: int) -> Found | None:
        node_id = self._nodes[position >> _RUN_BITS]
        index = self._indexes[node_id][position & _RUN_MASK]
        task_run_id = self.graph.nodes[node_id].runs[index]
        row, tr = self.rows.row(task_run_id), self.graph.task_runs.get(task_run_id)
        return None if row is None or tr is None else (row, tr)

    def names(self) -> list[dict[str, Any]]:
        return self.columns.names(position for position, _row, _tr in self.present())


Entry = tuple[Any, Any, int]  # (sort key..., tie): the tie is the position, negated for desc


class _Order:
    """One question's rows in order: ``ranked`` (rows with a value) ascending by (key, tie),
    read backwards for desc (the tie negated keeps ties in position order), then ``last``
    (positions of rows without a value)."""

    def __init__(self, scope: _Scope, sort: str | None, desc: bool, query: str) -> None:
        self.scope, self.column, self.query = scope, sort, query
        self.desc = desc and sort is not None
        self.by_index = sort == ex.INDEX_ORDER
        self.make()
        self.sorted = False

    def make(self) -> None:
        """Every row placed again (not sorted yet: ``sort``, outside the view's lock)."""
        self.match = ef.matcher(self.query, self.scope.names(), _cell_of)
        self.entries: dict[int, Entry | int] = {}  # by position: its entry in either list
        self.tasks: dict[tuple[str, str], int] = {}  # index_order: task ranks
        self.task_keys: list[tuple[str, str]] = []
        self.task_rows: Counter[tuple[str, str]] = Counter()
        self.horizon = -1  # where the last task was first seen
        match, by_index = self.match, self.by_index
        for position, row, tr in self.scope.present():
            found = (row, tr)
            if match is not None and not match(found):
                continue
            if by_index:
                key = (row.run_id, tr.name)
                if key not in self.tasks:
                    self.tasks[key], self.horizon = len(self.tasks), position
                    self.task_keys.append(key)
                self.task_rows[key] += 1
            self.entries[position] = self._entry(position, found, kept=True)
        self.ranked = [e for e in self.entries.values() if type(e) is tuple]
        self.last = [e for e in self.entries.values() if type(e) is int]
        self.sorted = False

    def sort(self) -> None:
        self.ranked.sort()
        self.last.sort()
        self.sorted = True

    @property
    def total(self) -> int:
        return len(self.ranked) + len(self.last)

    def slice(self, offset: int, limit: int) -> list[int]:
        """The positions of the rows ``offset`` to ``offset + limit`` in this order."""
        ranked, end = self.ranked, offset + limit
        if self.desc:
            n = len(ranked)
            shown = [-e[2] for e in reversed(ranked[max(0, n - end):max(0, n - offset)])]
        else:
            shown = [e[2] for e in ranked[offset:end]]
        return shown + self.last[max(0, offset - len(ranked)):max(0, end - len(ranked))]

    def _entry(self, position: int, found: Found | None, kept: bool = False) -> Any:
        """The row's place (None: not shown: none there, or the filter leaves it out;
        ``kept``: the filter was asked)."""
        if found is None or (not kept and self.match is not None and not self.match(found)):
            return None
        row, tr = found
        tie = -position if self.desc else position
        if self.by_index:
            rank = self.tasks.get((row.run_id, tr.name))
            if rank is None:
                raise _Remake  # a task not among the ranks: every rank may move
            return (rank, -1 if tr.map_index is None else tr.map_index, tie)
        if self.column is None:
            return (0, 0, position)
        key = ex.sort_key(cell(row, tr, self.column))
        return position if key is None else (*key, tie)

    def update(self, changed: dict[int, Found | None], columns_moved: bool) -> None:
        """Rows at ``changed`` positions placed again (the rest are where they were)."""
        if not self.sorted:
            self.sort()
        if columns_moved and self.query:
            return self._remake()  # the filter's names may read other columns now
        gone: list[Entry | int] = []
        come: list[Entry | int] = []
        recount = False
        try:
            for position, found in changed.items():
                old, new = self.entries.get(position), self._entry(position, found)
                if old == new:
                    continue
                if self.by_index:
                    recount |= self._counts(old, new) or position <= self.horizon
                if old is not None:
                    gone.append(old)
                    del self.entries[position]
                if new is not None:
                    come.append(new)
                    self.entries[position] = new
        except _Remake:
            return self._remake()
        if recount and self._tasks_moved():
            return self._remake()
        _splice(self.ranked, [e for e in gone if type(e) is tuple],
                [e for e in come if type(e) is tuple])
        _splice(self.last, [e for e in gone if type(e) is int], [e for e in come if type(e) is int])

    def _counts(self, old: Any, new: Any) -> bool:
        """index_order's rows a task counted; True when a task's first or last came or went."""
        moved = False
        for entry, step in ((old, -1), (new, 1)):
            if entry is not None:
                key = self.task_keys[entry[0]]
                self.task_rows[key] += step
                moved |= self.task_rows[key] == (1 if step > 0 else 0)
        return moved

    def _tasks_moved(self) -> bool:
        """Whether the tasks' order of first rows (their ranks) is not the kept one."""
        wanted = sum(1 for n in self.task_rows.values() if n)
        seen: list[tuple[str, str]] = []
        for position, row, tr in self.scope.present():
            if len(seen) == wanted:
                break
            key = (row.run_id, tr.name)
            if position in self.entries and key not in seen:
                seen.append(key)
                self.horizon = position
        return seen != self.task_keys[:len(seen)] or len(seen) != len(self.tasks)

    def _remake(self) -> None:
        self.make()
        self.sort()


class _Remake(Exception):
    """An order's ranks moved while placing rows: it is made again whole."""


def _cell_of(found: Found, column: str) -> Any:
    return ef.shown(found[0], column, cell(found[0], found[1], column))


def _splice(ordered: list[Any], gone: list[Any], come: list[Any]) -> None:
    """``ordered`` without the entries ``gone`` and with the entries ``come``, still sorted."""
    if len(gone) + len(come) <= _FEW:
        for entry in gone:
            del ordered[bisect_left(ordered, entry)]
        for entry in come:
            insort(ordered, entry)
        return
    # Where each goes in the list as it is (a bisection each), then one pass copying the
    # runs between those places: sorting again read every entry (35 ms at 100,000).
    places = sorted([(bisect_left(ordered, entry), 1, None) for entry in gone]
                    + [(bisect_left(ordered, entry), 0, entry) for entry in come])
    out: list[Any] = []
    done = 0
    for at, leaving, entry in places:
        out += ordered[done:at]
        if leaving:
            done = at + 1
        else:
            done = at
            out.append(entry)
    out += ordered[done:]
    ordered[:] = out


__all__ = ["LiveOrders", "cell", "touched"]
