"""Pages of an ended run from its snapshot in the store (``store/experiment_snapshot.py``):
any offset, sorted on any column, filtered, in milliseconds from a fresh server too.

A page reads only what it needs: the snapshot's description (one small row), the column it is
sorted on, the columns its filter names, and the page's own rows by position. Sorting one
column of 100,000 values takes about 40 ms of CPU; each order, filter and node's rows is kept
(positions, 4 bytes a row), so scrolling through one order is a slice and a read of 100 rows.
What is kept is bounded across runs (``MAX_VALUES``, the least recently paged runs dropped).
The sort and the filter are ``core/experiments.order``'s and ``core/experiment_filter``'s
rules on columns instead of rows (tests compare them, page for page).
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from itertools import compress
from typing import Any

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..core.errors import LabloomError
from ..store import experiment_snapshot as snap
from ..store.experiments import task_run_ids
from ..store.reader import RunRecord, RunStore

MAX_VALUES = 3_000_000  # columns' values and orders' positions kept, all runs together
_KEPT_ORDERS = 8  # filtered orders kept per run (a view's few at a time)


def _stored(column: str, meta: snap.Meta) -> str | tuple[str, str] | None:
    """The stored column a sort or filter column reads: a fixed one, ``param:x``, ``metric:x``;
    a bare name both a metric and a param is (metric, param): the metric where a row has it."""
    if column in ex.FIXED:
        return None if column == "run_id" else column
    kind, _, name = column.partition(".")
    if kind in ("params", "metrics") and name:
        return snap.column_name(kind[:-1], name)
    logged = {(c["kind"], c["name"]) for c in meta.columns}
    both = [snap.column_name(k, column) for k in ("metric", "param") if (k, column) in logged]
    if len(both) == 2:
        return both[0], both[1]
    return both[0] if both else None


def _matches(term: ef.Term, values: list[Any]) -> bytearray:
    """``term.test`` of each value: a comparison inline on numbers, else once per distinct
    value (a param's few values, a state's)."""
    compare = ef.COMPARE.get(term.op)
    if compare is not None:
        wanted = term.wanted
        return bytearray(
            ((value.__class__ is float or value.__class__ is int) and compare(value, wanted))
            or (value.__class__ is bool and compare(1.0 if value else 0.0, wanted))
            for value in values)
    types = set(map(type, values))
    if bool in types and (int in types or float in types):  # True == 1, but "true" != "1"
        return bytearray(map(term.test, values))
    # Once per distinct value (a NaN is its own key: looked up as the same object), then a
    # look-up per row in C.
    results = {value: term.test(value) for value in set(values)}
    return bytearray(map(results.__getitem__, values))


def _both(one: bytearray, other: bytearray) -> bytearray:
    """Two masks of 0 and 1 bytes and-ed, as two big integers (in C, not a byte at a time)."""
    size = len(one)
    return bytearray((int.from_bytes(one, "little") & int.from_bytes(other, "little")
                      ).to_bytes(size, "little"))


class UnknownTask(LabloomError):
    """``task`` names no node or task of the run."""


class SnapshotRows:
    """One ended run's snapshot as paged: its columns, orders and kept subsets."""

    def __init__(self, meta: snap.Meta) -> None:
        self.meta = meta
        self.lock = threading.Lock()
        self.columns: dict[str, list[Any]] = {}
        self.orders: dict[tuple[str | None, bool], array[int]] = {}
        self.kept: dict[tuple[str | None, str], array[int] | None] = {}
        self.names: dict[str, list[dict[str, str]]] = {}
        self.filtered: OrderedDict[tuple[Any, ...], array[int]] = OrderedDict()

    @property
    def size(self) -> int:
        return (len(self.columns) + len(self.orders) + len(self.kept) + len(self.filtered)
                ) * max(1, self.meta.rows)

    def column(self, store: RunStore, name: str) -> list[Any]:
        values = self.columns.get(name)
        if values is None:
            values = self.columns[name] = snap.read_column(store, self.meta, name)
        return values

    def values(self, store: RunStore, column: str) -> list[Any]:
        """A sort or filter column's value in each row (see ``Experiment.get``)."""
        stored = _stored(column, self.meta)
        if stored is None:
            return [self.meta.run_id] * self.meta.rows if column == "run_id" else (
                [None] * self.meta.rows)
        if isinstance(stored, str):
            return self.column(store, stored)
        metric, param = self.column(store, stored[0]), self.column(store, stored[1])
        return [m if m is not None else p for m, p in zip(metric, param, strict=True)]

    def shown(self, store: RunStore, column: str) -> list[Any]:
        """A filter column's ``values`` as ``ef.cell`` reads them: a param logged as None
        is ``ef.SHOWN_NONE`` (the positions the snapshot keeps of those rows)."""
        values = self.values(store, column)
        kind, _, name = column.partition(".")
        none = snap.none_name("param", name)
        if kind != "params" or none not in self.meta.nones:
            return values
        key = "shown:" + column
        found = self.columns.get(key)
        if found is None:
            found = self.columns[key] = list(values)
            for i in snap.read_column(store, self.meta, none, []):
                found[i] = ef.SHOWN_NONE
        return found

    def order(self, store: RunStore, sort: str | None, desc: bool) -> array[int] | None:
        if not sort:
            return None
        found = self.orders.get((sort, desc))
        if found is None and sort == ex.INDEX_ORDER:
            found = snap.read_order(store, self.meta, sort, desc)
            if found is None:  # a snapshot written before it kept this order
                found = array("i", ex.index_positions(
                    self.column(store, "task"), self.column(store, "map_index"), desc))
            self.orders[(sort, desc)] = found
        if found is None:
            stored = _stored(sort, self.meta)
            kept = (snap.read_order(store, self.meta, stored, desc)
                    if isinstance(stored, str) else None)  # sorted when it was written
            found = self.orders[(sort, desc)] = (
                kept if kept is not None else snap.order_of(self.values(store, sort), desc))
        return found

    def keep(self, store: RunStore, task: str | None, query: str) -> array[int] | None:
        """The positions ``task`` and the filter keep, in position order; None: every row."""
        key = (task, query)
        if key in self.kept:
            return self.kept[key]
        mask: bytearray | None = None
        if task is not None:
            mask = self.task_mask(store, task)
        terms = ef.parse(query, self.header(store, task)) if query else []
        for term in terms:
            if term.column is None:
                hit = bytearray(self.meta.rows)
                for column in (*ef.WORDS_IN, *(f"{c['kind']}s.{c['name']}" for c in
                                                 self.meta.columns)):
                    seen: dict[tuple[type, Any], bool] = {}  # by type: True == 1
                    for i, value in enumerate(self.shown(store, column)):
                        if not hit[i]:
                            found = seen.get((type(value), value))
                            if found is None:
                                found = term.value in ef.text(value).lower()
                                seen[(type(value), value)] = found
                            hit[i] = found
            else:
                hit = _matches(term, self.shown(store, term.column))
            mask = hit if mask is None else _both(mask, hit)
        kept = None if mask is None else array("i", compress(range(len(mask)), mask))
        self.kept[key] = kept
        return kept

    def task_mask(self, store: RunStore, task: str) -> bytearray:
        nodes, tasks = self.column(store, "node"), self.column(store, "task")
        mask = bytearray(n == task or t == task for n, t in zip(nodes, tasks, strict=True))
        if not any(mask) and task_run_ids(store, self.meta.run_id, task) is None:
            raise UnknownTask(f"[labloom] run {self.meta.run_id} has no node or task {task!r}; "
                              f"GET runs/{self.meta.run_id} lists its nodes")
        return mask

    def header(self, store: RunStore, task: str | None) -> list[dict[str, str]]:
        """The page's ``columns``: the run's, or those the rows of ``task`` hold."""
        if task is None:
            return self.meta.columns
        found = self.names.get(task)
        if found is None:
            kept = self.keep(store, task, "")
            assert kept is not None
            found = self.names[task] = _types(self, store, kept)
        return found

    def page(self, store: RunStore, sort: str | None, desc: bool, limit: int, offset: int,
             task: str | None, query: str) -> dict[str, Any]:
        with self.lock:
            kept = self.keep(store, task, query)
            ordered = self.order(store, sort, desc)
            if kept is None:
                seq: Sequence[int] = ordered if ordered is not None else range(self.meta.rows)
            elif ordered is None:
                seq = kept
            else:
                seq = self.filtered.get((task, query, sort, desc)) or self._filter(
                    kept, ordered, (task, query, sort, desc))
            names = self.header(store, task)
            shown = list(seq[offset : offset + limit])
            total = len(seq)
        rows = snap.read_rows(store, self.meta.run_id, shown)
        return ex.answer_of(rows, names, total, sort, desc, limit, offset)

    def _filter(self, kept: array[int], ordered: array[int], key: tuple[Any, ...]) -> array[int]:
        mask = bytearray(self.meta.rows)
        for i in kept:
            mask[i] = 1
        seq = array("i", compress(ordered, map(mask.__getitem__, ordered)))
        self.filtered[key] = seq
        while len(self.filtered) > _KEPT_ORDERS:
            self.filtered.popitem(last=False)
        return seq


def _types(rows: SnapshotRows, store: RunStore, kept: array[int]) -> list[dict[str, str]]:
    """``core/experiments.columns`` of the kept rows, from the columns."""
    out = []
    chosen: set[int] | None = None
    for column in rows.meta.columns:
        values = rows.column(store, snap.column_name(column["kind"], column["name"]))
        found = {type(values[i]) for i in kept if values[i] is not None}
        if not found:
            none = snap.none_name(column["kind"], column["name"])
            if none in rows.meta.nones:
                chosen = set(kept) if chosen is None else chosen
                if any(i in chosen for i in snap.read_column(store, rows.meta, none, [])):
                    out.append({**column, "type": "none"})
            continue
        kinds = {"bool" if t is bool else "number" if t in (int, float) else "string"
                 for t in found}
        out.append({**column, "type": kinds.pop() if len(kinds) == 1 else "mixed"})
    return out


class Snapshots:
    """``SnapshotRows`` by store and run, bounded by ``max_values``."""

    def __init__(self, max_values: int = MAX_VALUES) -> None:
        self._max = max_values
        self._runs: OrderedDict[tuple[str, str], SnapshotRows] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int, task: str | None, query: str) -> dict[str, Any] | None:
        """A page of the ended ``run`` from its snapshot; None when it has no current one."""
        key = (store.database.url, run.id)
        with self._lock:
            rows = self._runs.get(key)
            if rows is not None:
                self._runs.move_to_end(key)
        if rows is None or not rows.meta.of(run):
            meta = snap.read_meta(store, run.id)
            if (meta is None or not meta.of(run)
                    or meta.cursor != snap.last_logged(store, run.id)):
                with self._lock:
                    self._runs.pop(key, None)
                return None
            rows = self.adopt(store, meta)
        answer = rows.page(store, sort, desc, limit, offset, task, query)
        self._trim()
        return answer

    def adopt(self, store: RunStore, meta: snap.Meta) -> SnapshotRows:
        rows = SnapshotRows(meta)
        with self._lock:
            self._runs[(store.database.url, meta.run_id)] = rows
        return rows

    def _trim(self) -> None:
        with self._lock:
            kept = sum(rows.size for rows in self._runs.values())
            while kept > self._max and len(self._runs) > 1:
                _, dropped = self._runs.popitem(last=False)
                kept -= dropped.size


__all__ = ["MAX_VALUES", "SnapshotRows", "Snapshots", "UnknownTask"]
