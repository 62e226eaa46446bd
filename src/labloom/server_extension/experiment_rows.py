"""A run's experiment rows as the server keeps them between pages (``GET runs/{id}/experiments``).

Two sources. An ended run that has a snapshot in the store (``store/experiment_snapshot.py``:
its rows folded once, kept by column) is paged from it (``experiment_snapshot_pages.py``): any
offset, any sort, any filter, from a fresh server too, reading one column and one page of rows.
A run that is still running, or ended without a snapshot yet, is paged from the rows kept here
(below); once an ended run has been read whole here, its snapshot is written on the pool and
its rows here dropped. So a run is read whole and folded once per store, not once per server.

Why a per-run cache and not ORDER BY ... LIMIT in SQL: a row is several logging calls folded
together (params, metrics, a curve's last step), each call's values one JSON object whose NaN
and Infinity neither SQLite's JSON functions (before 3.42) nor PostgreSQL's jsonb accept, so
sorting by a metric in SQL would need the storage changed and a window function per sort that
repeats ``Experiment.add``'s rule in two dialects. And a view pages through one order many
times (scrolling 100,000 rows is up to a thousand pages): here the run's rows are read and
folded once, each order is sorted once, and every page after that is a slice (a few
milliseconds, whatever the offset).

The first looks at a big run: reading and folding all its calls costs about a second of CPU
for 100,000 rows (200,000 calls), too long for the view's first page. So while a run has not
been read whole, a page is answered from the rows of its first calls and says ``"partial":
true`` (``total`` and ``columns`` are those of the calls read, and a row may lack values
logged later): the first question reads the run's first calls (the first look: an index range,
in growing chunks; for an unsorted page until it is full, for a sorted one ``FIRST_LOOK``
calls), folds them into the run's rows and hands the rest of the read to the pool
(``StoreAccess.later``), which goes on from there. A question meanwhile is answered at once
from the first look's rows, sorted as asked (each order and the columns kept: a slice, not a
sort of a growing set per question, which at 100,000 rows cost as much as the read it
waited on). The view asks again on its next tick and gets the complete answer once the read is
done. Waits for the whole read: a page the first look's rows cannot fill (an unsorted page
past them, any page past their count), a sort on a task-run column (state, duration, index:
each would need every task run read), and a small run (its first calls are all of it). The
views' own order (``index_order``: by task, then map index) is answered from the first look's
rows, their task runs read: as unsorted pages, the first look stops once the page is full.

Invalidation follows the store's cursor: values are only ever appended, so each page first
reads the values logged after the last one read (an index seek, nothing when the run has
ended) and folds them in; new values drop the kept orders and columns. The task-run columns
(state, duration) change as the run runs: a page's rows are read afresh from ``task_runs`` by
id (100 at most), and a sort on one of them reads them all, kept only once the run has ended.
``task`` (a node id or task name) keeps the rows of those task runs only; which those are is
read per page while the run runs, once after it ended. At most ``MAX_ROWS`` rows are kept in
all, the least recently paged runs dropped first.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..core import experiment_filter as ef
from ..core import experiments as ex
from ..store import experiment_snapshot as snapshot
from ..store.experiments import PAGE, fill, read_logged, task_run_ids
from ..store.reader import RunRecord, RunStore
from .experiment_snapshot_pages import Snapshots, UnknownTask

MAX_ROWS = 300_000  # about 0.9 KB each (a run of 3 params and 3 metrics): some 270 MB at worst
FIRST_LOOK = 20_000  # calls read at most for a partial first page: about 0.1 s of CPU

Later = Callable[..., None]  # runs ``fn(store, *args)`` on the pool, not waited for


class RunRows:
    """One run's rows, orders and columns. ``reader`` is held by whoever reads the run's calls
    (one at a time: they move ``cursor``), ``lock`` by whoever reads or changes the rows;
    ``reader`` is always taken first."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.reader = threading.Lock()
        self.lock = threading.Lock()
        self.cursor = 0
        self.whole = False  # read to its end once: pages are complete from now on
        self.reading = False  # the whole read is queued or under way on the pool
        self.changed = False  # rows folded in since ``listed`` was made
        # The rows of the first look, which partial pages are answered from until the run is
        # read whole, their orders and columns kept: each such page costs a slice.
        self.first: list[ex.Experiment] | None = None
        self.first_orders: dict[tuple[str | None, bool], list[ex.Experiment]] = {}
        self.first_names: list[dict[str, str]] | None = None
        self.first_filled = False  # their task runs read (an index order of them asked)
        self.rows: dict[str, ex.Experiment] = {}
        self.listed: list[ex.Experiment] = []
        self.orders: dict[tuple[str | None, str, bool], list[ex.Experiment]] = {}
        self.subsets: dict[str, list[ex.Experiment]] = {}  # by task, once the run ended
        self.subset_names: dict[str, list[dict[str, str]]] = {}
        self.names: list[dict[str, str]] | None = None
        self.filled: tuple[str, float | None] | None = None  # the ended run all rows are of
        self.saving = False  # its snapshot is being written (an ended run, read whole)

    def read(self, store: RunStore, size: int, enough: Callable[[int], bool] | None = None,
             hold: bool = False) -> bool:
        """Fold in the calls logged since the last look, ``size`` rows of them a read (more
        while a read holds few calls), until the run's end or ``enough(calls read)``; whether
        the end was reached. Holds ``reader``; ``hold``: takes ``lock`` for each fold only."""
        read, more = 0, True
        while more and not (enough and enough(read)):
            chunk, cursor, more = read_logged(store, self.run_id, self.cursor, size)
            with self.lock if hold else contextlib.nullcontext():
                if chunk:
                    ex.collect(self.run_id, chunk, self.rows)
                    self.changed = True
                self.cursor = cursor
            read += len(chunk)
            if len(chunk) < FIRST_LOOK // 4:  # rows of few calls: more rows a read (not many
                size = min(PAGE, size * 2)  # more: a first look stops soon after its page)
        return not more

    def settle(self) -> None:
        """After rows were folded in: the rows as listed, the kept orders and columns dropped."""
        if self.changed:
            self.changed = False
            self.listed = list(self.rows.values())
            self.orders.clear()
            self.subsets.clear()
            self.subset_names.clear()
            self.names = None
            self.filled = None

    def catch_up(self, store: RunStore) -> None:
        """Fold in the values logged since the last look (``reader`` and ``lock`` held)."""
        self.whole = self.read(store, PAGE) or self.whole
        self.settle()

    def warm(self, store: RunStore, then: Later | None = None) -> None:
        """The whole read after the first look (on the pool), folding a chunk at a time: a
        partial page meanwhile reads the first look's rows, which later calls may change;
        ``then(store)`` after it (an ended run's snapshot is written)."""
        try:
            with self.reader:
                ended = self.read(store, 16, hold=True)
                with self.lock:
                    self.whole = ended or self.whole
                    self.first, self.first_orders, self.first_names = None, {}, None
                    self.first_filled = False
                    self.settle()
                    if self.names is None:
                        self.names = ex.columns(self.listed)
        finally:
            self.reading = False
        if then is not None:
            then(store)

    def partial(self, store: RunStore, sort: str | None, desc: bool, limit: int, offset: int,
                task: str | None, later: Later, then: Later | None = None,
                ) -> dict[str, Any] | None:
        """A page from the first look's rows, marked partial, while the run is not read whole;
        None when the complete page is to be read (see the module's comment)."""
        if self.whole or (sort in ex.TASK_RUN_SORTS and sort != ex.INDEX_ORDER):
            return None
        ids = None if task is None else self.ids(store, task)
        if self.first is None and self.reader.acquire(blocking=False):
            try:  # the first look: the run's first calls, read here

                def enough(read: int) -> bool:
                    if read >= FIRST_LOOK:
                        return True
                    # A sorted page: FIRST_LOOK calls; any page: one read. In index order, as
                    # unsorted: a map's children mostly log in index order.
                    if (sort and sort != ex.INDEX_ORDER) or not read:
                        return False
                    return sum(ids is None or row.task_run_id in ids  # an unsorted page: full
                               for row in self.rows.values()) >= offset + limit

                if self.read(store, 4, enough, hold=True):
                    return None  # the run's calls end here: the complete page costs no more
                with self.lock:
                    self.first = list(self.rows.values())
            finally:
                self.reader.release()
        with self.lock:
            if self.whole or self.first is None:  # read whole, or another first look is going
                return None
            answer = self.answer(store, sort, desc, limit, offset, ids)
            start, self.reading = not self.reading, True
        if start:
            later(self.warm, then)  # the rest of the run, from where the first look stopped
        return answer

    def answer(self, store: RunStore, sort: str | None, desc: bool, limit: int, offset: int,
               ids: set[str] | None) -> dict[str, Any] | None:
        """A partial page of the first look's rows (``lock`` held); None when they are too few
        for it."""
        assert self.first is not None
        rows = self.first if ids is None else [r for r in self.first if r.task_run_id in ids]
        if len(rows) < offset + limit:
            return None
        ordered = self.first_orders.get((sort, desc)) if ids is None else None
        if ordered is None:
            if sort == ex.INDEX_ORDER and not self.first_filled:
                for at in range(0, len(self.first), PAGE):  # (a few of a run's task runs)
                    fill(store, self.run_id, {row.task_run_id: row
                                              for row in self.first[at : at + PAGE]}, by_id=True)
                self.first_filled = True
            ordered = ex.order(rows, sort, desc)
            if ids is None:
                self.first_orders[(sort, desc)] = ordered
        names = self.first_names if ids is None else None
        if names is None:
            names = ex.columns(rows)
            if ids is None:
                self.first_names = names
        shown = ordered[offset : offset + limit]
        fill(store, self.run_id, {row.task_run_id: row for row in shown}, by_id=True)
        answer = ex.answer_of(shown, names, len(rows), sort, desc, limit, offset)
        answer["partial"] = True
        if answer["next"] is None and limit:  # rows not read yet may follow this page's
            answer["next"] = offset + limit
        return answer

    def ids(self, store: RunStore, task: str) -> set[str]:
        found = task_run_ids(store, self.run_id, task)
        if found is None:
            raise UnknownTask(f"[labloom] run {self.run_id} has no node or task {task!r}; "
                              f"GET runs/{self.run_id} lists its nodes")
        return found

    def chosen(self, store: RunStore, task: str | None,
               ended: tuple[str, float | None] | None) -> list[ex.Experiment]:
        """The rows of ``task``'s task runs (every row without it)."""
        if task is None:
            return self.listed
        kept = self.subsets.get(task)
        if kept is not None:
            return kept
        ids = self.ids(store, task)
        rows = [row for row in self.listed if row.task_run_id in ids]
        if ended is not None:
            self.subsets[task] = rows
        return rows

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int, task: str | None = None, query: str = "",
             ) -> tuple[list[ex.Experiment], list[dict[str, str]], int]:
        """The rows of one page, their task-run columns read, the columns and the total;
        ``query`` filters them (``core/experiment_filter.py``)."""
        ended = (run.state, run.ended) if not run.is_open else None
        by_task_run = sort in ex.TASK_RUN_SORTS
        terms = ef.parse(query, self.header(store, task, ended)) if query else []
        if (by_task_run or any(t.column is None or t.column in ex.FIXED for t in terms)) and (
                ended is None or self.filled != ended):
            fill(store, self.run_id, self.rows)
            self.filled = ended
            self.orders = {key: rows for key, rows in self.orders.items()
                           if key[1] not in ex.TASK_RUN_SORTS}
        chosen = self.chosen(store, task, ended)
        if sort:
            ordered = self.orders.get((task, sort, desc))
            if ordered is None:
                ordered = ex.order(chosen, sort, desc)
                if (not by_task_run or ended is not None) and (task is None or ended is not None):
                    self.orders[(task, sort, desc)] = ordered
        else:
            ordered = chosen
        if terms:
            words = (*ef.WORDS_IN,
                     *(f"{c['kind']}s.{c['name']}" for c in self.header(store, task, ended)))
            ordered = list(filter(ef.row_matcher(terms, words, ef.cell), ordered))
        shown = ordered[offset : offset + limit]
        if ended is None or self.filled != ended:
            fill(store, self.run_id, {row.task_run_id: row for row in shown}, by_id=True)
        return shown, self.header(store, task, ended), len(ordered)

    def header(self, store: RunStore, task: str | None,
               ended: tuple[str, float | None] | None) -> list[dict[str, str]]:
        """The page's ``columns``: those of the rows of ``task`` (all rows without it)."""
        if task is not None:
            names = self.subset_names.get(task)
            if names is None:
                names = ex.columns(self.chosen(store, task, ended))
                if ended is not None:
                    self.subset_names[task] = names
            return names
        if self.names is None:
            self.names = ex.columns(self.listed)
        return self.names


class ExperimentRows:
    """``RunRows`` by store and run, the least recently paged dropped past ``max_rows``; an
    ended run's pages from its snapshot (``snapshots``) once one is written."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._max_rows = max_rows
        self._runs: OrderedDict[tuple[str, str], RunRows] = OrderedDict()
        self._lock = threading.Lock()
        self.snapshots = Snapshots()

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int, task: str | None = None, later: Later | None = None,
             query: str = "") -> dict[str, Any]:
        """One page; ``later``: the pool to read the whole run on after a partial page (without
        it, a page of a run not read whole yet waits for the whole read), and to write an ended
        run's snapshot on once it is read whole; ``query`` filters the rows."""
        ended = not run.is_open
        if ended:
            answer = self.snapshots.page(store, run, sort, desc, limit, offset, task, query)
            if answer is not None:
                return answer
        key = (store.database.url, run.id)
        with self._lock:
            entry = self._runs.get(key)
            if entry is None:
                entry = self._runs[key] = RunRows(run.id)
            self._runs.move_to_end(key)
        save: Later | None = (lambda store: self.keep(store, entry, run)) if ended else None
        if later is not None and not query:
            partial = entry.partial(store, sort, desc, limit, offset, task, later, save)
            if partial is not None:
                return partial
        with entry.reader, entry.lock:
            entry.catch_up(store)
            shown, names, total = entry.page(store, run, sort, desc, limit, offset, task, query)
            answer = ex.answer_of(shown, names, total, sort, desc, limit, offset)
            whole = entry.whole and not entry.reading and not entry.saving
        if whole and later is not None and save is not None:
            later(save)
        self._trim()
        return answer

    def keep(self, store: RunStore, entry: RunRows, run: RunRecord) -> None:
        """Write the ended run's snapshot (on the pool, once it is read whole), then page it
        from there: the rows kept here are dropped."""
        with entry.reader, entry.lock:
            if entry.saving:
                return
            entry.catch_up(store)
            if not entry.whole:
                return
            entry.saving = True  # once: a failed write leaves the run paged from memory
            rows, cursor = list(entry.rows.values()), entry.cursor
        meta = snapshot.write(store, run, rows, cursor)
        self.snapshots.adopt(store, meta)
        with self._lock:
            if self._runs.get((store.database.url, run.id)) is entry:
                del self._runs[(store.database.url, run.id)]

    def _trim(self) -> None:
        with self._lock:
            kept = sum(len(entry.rows) for entry in self._runs.values())
            while kept > self._max_rows and len(self._runs) > 1:
                _, dropped = self._runs.popitem(last=False)
                kept -= len(dropped.rows)


__all__ = ["FIRST_LOOK", "ExperimentRows", "RunRows", "UnknownTask"]
