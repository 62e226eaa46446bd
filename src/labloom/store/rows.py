"""One write's worth of rows, folded from a stream of events, and how they are written.

``Rows.write`` writes them all in one transaction, with PostgreSQL's ``COPY`` where batches are
large. When the database refuses that (a row it cannot hold), ``Rows.write_one_by_one`` writes
each row in its own transaction and drops only the rows refused, each counted against its run:
one bad row never costs the rest of its batch, nor the writer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.left_maps import LEFT
from ..core.states import FINAL_STATES
from . import experiments, multirow, new_task_runs, unanswered_commits
from .row_tables import Table
from .row_tables import insert as _insert
from .storable import NOTE, is_storable, storable_row, to_json

if TYPE_CHECKING:
    from .recorder import Recorder

_FINAL = frozenset(state.value for state in FINAL_STATES)
# A run's row with where it stands at the end of the write that creates it: a small run's
# start, state and end in one write were an INSERT and two UPDATEs of the same row.
_RUN_SQL = (
    "INSERT INTO flow_runs (id, flow_name, source_hash, parameters, state, message, created, "
    "started, ended, host, pid, executor, origin, metadata, heartbeat, target, retry_of, "
    "username) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE "
    "SET parameters = excluded.parameters, state = excluded.state, "
    "message = excluded.message, created = excluded.created, started = excluded.started, "
    "ended = excluded.ended, "
    "host = excluded.host, pid = excluded.pid, executor = excluded.executor, "
    "origin = excluded.origin, metadata = excluded.metadata, "
    "heartbeat = excluded.heartbeat, retry_of = excluded.retry_of"
)
# Where a run's state, message, end and metadata are in its row (``_RUN_SQL``'s columns).
_STATE, _MESSAGE, _ENDED, _METADATA = 4, 5, 8, 13


def _run_row(row: tuple[Any, ...], state: str, message: str, ended: float | None,
             metadata: str | None = None) -> tuple[Any, ...]:
    """A run's row with a new state, message and end (and metadata, if given)."""
    new = list(row)
    new[_STATE], new[_MESSAGE], new[_ENDED] = state, message, ended
    if metadata is not None:
        new[_METADATA] = metadata
    return tuple(new)


_FLOW_SQL = (
    "INSERT INTO flows (name, source_hash, first_seen, last_seen) VALUES (?,?,?,?) "
    "ON CONFLICT (name, source_hash) DO UPDATE SET last_seen = excluded.last_seen"
)
_NODE_SQL = (
    "INSERT INTO run_nodes (run_id, node_id, name, kind, upstream, created) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, node_id) DO UPDATE SET "
    "name = excluded.name, kind = excluded.kind, upstream = excluded.upstream, "
    "created = excluded.created"
)
# The last two: the task run's graph node and its state before (NULL for the first), so that a
# view counts what moved by node over a range of rows (``follow.node_moves``); both NULL where
# not known (an older writer, a replay, a retried run), which that view reads the slow way.
_STATE_COLUMNS = ("task_run_id", "run_id", "state", "time", "message", "attempt", "node_id",
                  "before_state")
_LOG_COLUMNS = ("run_id", "task_run_id", "level", "time", "text")
_UPDATE_SQL = (
    "UPDATE task_runs SET state = ?, message = ?, attempts = ?, "
    "started = COALESCE(?, started), ended = ?, "
    "traceback = CASE WHEN ? = '' THEN traceback ELSE ? END, "
    "worker = COALESCE(?, worker) WHERE id = ?"
)
_STAGED_UPDATE = (
    "UPDATE task_runs t SET state = s.state, message = s.message, "
    "attempts = s.attempts, started = COALESCE(s.started, t.started), "
    "ended = s.ended, traceback = CASE WHEN s.traceback = '' THEN t.traceback "
    "ELSE s.traceback END, worker = COALESCE(s.worker, t.worker) "
    "FROM {stage} s WHERE t.id = s.id"
)
# The same as one statement per batch of rows (SQLite 3.33 on: ``multirow.py``).
_MANY_UPDATE = (
    "UPDATE task_runs SET state = v.column1, message = v.column2, attempts = v.column3, "
    "started = COALESCE(v.column4, task_runs.started), ended = v.column5, "
    "traceback = CASE WHEN v.column6 = '' THEN task_runs.traceback ELSE v.column7 END, "
    "worker = COALESCE(v.column8, task_runs.worker) FROM (",
    ") AS v WHERE task_runs.id = v.column9",
)
_KEY_SQL = "UPDATE task_runs SET cache_key = ?, result_path = ? WHERE id = ?"
# A child that left its map (``TaskRunLeftMap``): why, and its last run's times (after its
# states' updates: its cancel's would be its end).
_LEFT_SQL = "UPDATE task_runs SET left_map = ?, started = ?, ended = ? WHERE id = ?"
_CUT_SQL = (
    "INSERT INTO log_cuts (run_id, task_run_id, kept, cut) VALUES (?,?,?,?) "
    "ON CONFLICT (run_id, task_run_id) DO UPDATE SET kept = excluded.kept, cut = excluded.cut"
)
_RUN_UPDATE_SQL = "UPDATE flow_runs SET state = ?, message = ?, ended = ? WHERE id = ?"
_METADATA_SQL = "UPDATE flow_runs SET metadata = ? WHERE id = ?"


class Rows:
    """One transaction's worth of rows, folded from a stream of events (``add``, then
    ``finish``)."""

    def __init__(self) -> None:
        self.runs = Table("run names", _RUN_SQL)  # (parameters are stored exactly: _created)
        self.flows = Table("flow names", _FLOW_SQL)
        self.nodes = Table("task names", _NODE_SQL)
        self.tasks = Table("task names", _insert("task_runs", new_task_runs.COLUMNS,
                                                 new_task_runs.CONFLICT))
        # New task runs that moved in this write, each with where it stands (no UPDATE).
        self.born = Table("task names", _insert("task_runs", new_task_runs.BORN_COLUMNS,
                                                new_task_runs.BORN_CONFLICT))
        self.states = Table("state messages", _insert("task_states", _STATE_COLUMNS))
        self.updates = Table("task messages and tracebacks", _UPDATE_SQL)
        self.keys = Table("result paths", _KEY_SQL)
        self.left = Table("children that left their map", _LEFT_SQL)
        self.logs = Table("log lines", _insert("logs", _LOG_COLUMNS))
        self.values = Table("params and metrics", _insert("experiment_values",
                                                          experiments.COLUMNS),
                            experiments.encoded)
        self.cuts = Table("log line counts", _CUT_SQL)
        self.run_updates = Table("run messages", _RUN_UPDATE_SQL)
        # Facts known at the end (a per-run cluster's peak worker count).
        self.metadata_updates = Table("run facts", _METADATA_SQL)
        self._task_updates: dict[str, list[Any]] = {}
        self._cuts: dict[tuple[str, str], tuple[int, int]] = {}
        # Task runs created in this write, by id: the row of each in ``tasks``, so that its key
        # goes into its row instead of an UPDATE of its own (a map child is keyed at launch).
        self._new_tasks: dict[str, int] = {}
        self._new_runs: dict[str, int] = {}  # the same for runs: their row in ``runs``
        self._stretches: new_task_runs.Stretches = []
        self.recorders: dict[str, Recorder] = {}
        self.escaped: dict[str, set[str]] = {}  # run id -> what of it was escaped
        self.opened: set[str] = set()
        self.closed: set[str] = set()
        self.events = 0
        self.one_by_one = False
        self.split = False  # refused for want of room: next time one by one (WriteTrouble.failing)
        self.notes: list[tuple[Any, ...]] = []  # of lines not stored for want of room (room.py)
        self.ticket: unanswered_commits.Ticket | None = None  # of a commit gone unanswered

    def tables(self) -> list[Table]:
        """In the order they are written one by one: what happened before what was said, so
        a disk that fills keeps the run's and its task runs' states first (``split``)."""
        return [self.runs, self.flows, self.nodes, self.tasks, self.born, self.states,
                self.updates, self.keys, self.left, self.run_updates, self.metadata_updates,
                self.logs, self.values, self.cuts]

    def count(self) -> int:
        return sum(len(t.rows) - t.done for t in self.tables())

    # --- folding --------------------------------------------------------------------------

    def add_all(self, rec: Recorder, batch: Sequence[ev.Event]) -> None:
        """A batch of one run's events, in order. The hot path, a task run's creation and its
        two or three state changes, unrolled here: a call per event, an ``isinstance`` chain
        and the attribute reads cost a no-op map's writer 1.7 µs of its 4.7 per task run. So
        is a batch of logging calls (``_add``, ``row_of`` and ``Table.add``: three calls an
        event, and a map's children logging once make about one event each, issue 19)."""
        self.events += len(batch)
        recorders, states, runs = self.recorders, self.states.rows, self.states.runs
        tasks, task_runs, new = self.tasks.rows, self.tasks.runs, self._new_tasks
        moved, final = self._task_updates, _FINAL
        values, value_runs = self.values.rows, self.values.runs
        for event in batch:
            if type(event) is ev.StateChanged:
                run_id, tr_id, to, at, message, attempt, traceback, worker, before, node = event
                recorders[run_id] = rec
                state = to._value_  # ``.value`` and an enum's hash are Python calls
                if before is None or not rec.moves_known:
                    node = was = None
                else:
                    was = before._value_
                states.append((tr_id, run_id, state, at, message, attempt, node, was))
                runs.append(run_id)
                row = moved.get(tr_id)
                if row is None:
                    row = moved[tr_id] = [run_id, None, "", 0, None, None, "", None]
                row[1], row[2], row[3] = state, message, attempt
                if state == "Running":  # each attempt's start: a retry's is its last
                    row[4] = at
                row[5] = at if state in final else None
                if traceback:
                    row[6] = traceback
                if worker:
                    row[7] = worker
            elif type(event) is ev.TaskRunCreated:
                run_id, tr_id, node, name, index, ups, at, _ = event  # a tuple too
                recorders[run_id] = rec
                new[tr_id] = len(tasks)
                upstream = json.dumps(list(ups)) if ups else "[]"
                tasks.append((tr_id, run_id, node, name, index, upstream, "Pending", at, None,
                              None))
                task_runs.append(run_id)
                states.append((tr_id, run_id, "Pending", at, "", 0,
                               node if rec.moves_known else None, None))
                runs.append(run_id)
            elif type(event) is ev.ExperimentCalls:  # the row ``experiments.row_of`` makes
                run_id = event.run_id
                recorders[run_id] = rec
                values.append((run_id, event))
                value_runs.append(run_id)
            else:
                recorders[event.run_id] = rec
                self._add(rec, event)

    def add(self, rec: Recorder, event: ev.Event) -> None:
        self.add_all(rec, (event,))

    def _add(self, rec: Recorder, event: ev.Event) -> None:
        if isinstance(event, ev.LogRecord):
            self._log(rec, event)
        elif isinstance(event, ev.LogLinesDropped):
            rec.log_dropped[event.task_run_id] = event.dropped
            self._count_cut(rec, event.run_id, event.task_run_id)
        elif isinstance(event, (ev.ExperimentCalls, ev.ExperimentValues)):
            self.values.add(event.run_id, experiments.row_of(event))
        elif isinstance(event, ev.NodeCreated):
            self.nodes.add(event.run_id, (event.run_id, event.node_id, event.name, event.kind,
                                          json.dumps(list(event.upstream)), event.time))
        elif isinstance(event, ev.TaskRunKeyed):
            at = self._new_tasks.get(event.task_run_id)
            if at is None:
                self.keys.add(event.run_id, (event.cache_key, event.result_path,
                                             event.task_run_id))
            else:
                tasks = self.tasks.rows
                tasks[at] = (*tasks[at][:8], event.cache_key, event.result_path)
        elif isinstance(event, ev.TaskRunLeftMap):
            self.left.add(event.run_id, (event.message, event.started, event.ended,
                                         event.task_run_id))
            # And a state row (no State: ``LEFT``) past the cursor of a view following the run.
            self.states.add(event.run_id, (event.task_run_id, event.run_id, LEFT, event.time,
                                           event.message, 0, None, None))
        elif isinstance(event, ev.RunCreated):
            self._created(rec, event)
        elif isinstance(event, ev.RunStateChanged):
            self._run_moved(event.run_id, event.state.value, event.message, None)
            if not event.state.is_final:
                self.opened.add(event.run_id)
                self.closed.discard(event.run_id)
        elif isinstance(event, ev.RunFinished):
            rec.moves_known = False
            self._run_moved(event.run_id, event.state.value, event.message, event.time,
                            to_json(dict(event.metadata)) if event.metadata else None)
            self.closed.add(event.run_id)

    def _run_moved(self, run_id: str, state: str, message: str, ended: float | None,
                   metadata: str | None = None) -> None:
        """A run's new state: into its row when this write creates it, else an UPDATE."""
        at = self._new_runs.get(run_id)
        if at is None:
            self.run_updates.add(run_id, (state, message, ended, run_id))
            if metadata is not None:
                self.metadata_updates.add(run_id, (metadata, run_id))
            return
        self.runs.rows[at] = _run_row(self.runs.rows[at], state, message, ended, metadata)

    def _unfold_runs(self) -> None:
        """Back to a Pending row and an UPDATE for each run that moved in the write creating it,
        when written one by one: its state and end go in after the rest of its rows, as one
        transaction has it (else it shows ended without its task runs while they wait, and for
        good, never marked Crashed, if the process dies then); a refused message costs only
        itself."""
        rows = self.runs.rows
        for run_id, at in self._new_runs.items() if rows else ():  # else cleared (``_reopen``)
            row = rows[at]
            moved = (row[_STATE], row[_MESSAGE], row[_ENDED])
            if moved != ("Pending", "", None):
                rows[at] = _run_row(row, "Pending", "", None)
                self.run_updates.add(run_id, (*moved, run_id))

    def _created(self, rec: Recorder, event: ev.RunCreated) -> None:
        metadata = dict(event.metadata)
        parameters = to_json(event.parameters, exact=True)  # a retry replays them as they were
        self._new_runs[event.run_id] = len(self.runs.rows)
        self.runs.add(event.run_id, (
            event.run_id, event.flow_name, event.source_hash, parameters,
            "Pending", "", event.time, event.time, None, rec.host, rec.pid, event.executor,
            event.origin, to_json(metadata), event.time, to_json(rec.target),
            metadata.get("retry_of"), rec.user,
        ))
        self.flows.add(event.run_id, (event.flow_name, event.source_hash, event.time,
                                      event.time))
        self.opened.add(event.run_id)

    def _log(self, rec: Recorder, event: ev.LogRecord) -> None:
        who = event.task_run_id or ""
        count = rec.log_counts.get(who, 0) + 1
        rec.log_counts[who] = count
        if count <= rec.log_cap:
            self.logs.add(event.run_id, (event.run_id, event.task_run_id, event.level,
                                         event.time, event.text))
        else:
            self._count_cut(rec, event.run_id, who)

    def _count_cut(self, rec: Recorder, run_id: str, who: str) -> None:
        """Lines not stored: past the store's cap, plus those the engine never sent."""
        seen = rec.log_counts.get(who, 0)
        cut = max(0, seen - rec.log_cap) + rec.log_dropped.get(who, 0)
        if cut:
            self._cuts[(run_id, who)] = (min(seen, rec.log_cap), cut)

    def finish(self) -> Rows:
        """The folded updates as rows, every text made storable (with a note per run)."""
        self._stretches = new_task_runs.split(self.tasks, self._task_updates, self.born)
        updates, runs = self.updates.rows, self.updates.runs
        for tr_id, (run_id, s, m, a, st, en, tb, w) in self._task_updates.items():
            updates.append((s, m, a, st, en, tb, tb, w, tr_id))
            runs.append(run_id)
        for (run_id, who), (kept, cut) in self._cuts.items():
            self.cuts.add(run_id, (run_id, who, kept, cut))
        escaped = self.escaped
        for table in self.tables():
            # One check of all its text at once (in C): row by row only when something needs
            # escaping, which is rare; checking each value cost a few µs per task run.
            if is_storable("".join([v for row in table.rows for v in row if type(v) is str])):
                continue
            for i, row in enumerate(table.rows):
                fixed = storable_row(row)
                if fixed is not None:
                    table.rows[i] = fixed
                    escaped.setdefault(table.runs[i], set()).update(
                        self._escaped_in(table, row, fixed))
        for run_id, where in escaped.items():
            rec = self.recorders.get(run_id)
            if rec is None or rec.noted_escapes:
                continue
            rec.noted_escapes = True
            self.logs.add(run_id, (run_id, None, 30, time.time(),
                                   NOTE.format(where=", ".join(sorted(where)))))
        return self

    def _escaped_in(self, table: Table, row: tuple[Any, ...], fixed: tuple[Any, ...]
                    ) -> Collection[str]:
        """What of a run an escaped row's text was, for its note."""
        if table is self.born:
            return new_task_runs.where(row, fixed, self.tasks.what, self.updates.what)
        if table is self.runs and row[_MESSAGE] != fixed[_MESSAGE]:  # folded in its row
            rest = (row[:_MESSAGE] + row[_MESSAGE + 1:]
                    != fixed[:_MESSAGE] + fixed[_MESSAGE + 1:])
            return {self.run_updates.what, *((table.what,) if rest else ())}
        return (table.what,)

    # --- writing --------------------------------------------------------------------------

    def write(self, conn: Any) -> None:
        """All rows, inside the caller's transaction; the fast way for each backend."""
        ex = conn.executemany
        for table in (self.runs, self.flows, self.nodes):
            if table:
                ex(table.sql, table.rows)
        new_task_runs.insert(conn, self.tasks, self.born, self._stretches)
        conn.insert_rows("task_states", _STATE_COLUMNS, self.states.rows)
        if len(self.updates.rows) >= 50 and conn.kind == "postgresql":
            # Thousands of updates as one statement over a staged copy of the new values.
            stage = conn.stage(
                "task_runs", ("id", "state", "message", "attempts", "started", "ended",
                              "traceback", "worker"),
                [(i, s, m, a, st, en, tb, w)
                 for s, m, a, st, en, tb, _, w, i in self.updates.rows],
            )
            conn.execute(_STAGED_UPDATE.format(stage=stage))
        elif self.updates and conn.kind == "sqlite" and multirow.UPDATE_FROM:
            # One row per task run in ``_task_updates``: no id twice in a statement.
            multirow.many_rows(conn.raw, _MANY_UPDATE[0], 9, self.updates.rows, _MANY_UPDATE[1])
        elif self.updates:
            ex(self.updates.sql, self.updates.rows)
        for table in (self.keys, self.left):
            if table:
                ex(table.sql, table.rows)
        conn.insert_rows("logs", _LOG_COLUMNS, self.logs.rows)
        experiments.insert(conn, self.values.rows)
        for table in (self.cuts, self.run_updates, self.metadata_updates):
            if table:
                ex(table.sql, table.rows)

    def write_one_by_one(
        self, conn: Any, passing: Callable[[BaseException], bool],
        refused: Callable[[Table, str, BaseException], None],
    ) -> None:
        """Each row in its own transaction: a row the database refuses is dropped (and
        reported to ``refused``), the others are written. A ``passing`` failure (a busy or
        full disk, a server away) is raised; called again, this goes on where it stopped."""
        if not self.one_by_one:
            new_task_runs.join(self.tasks, self.born, self.updates, self._stretches)
            self._unfold_runs()
        self.one_by_one = True
        refused_runs: set[str] = set()
        for table in self.tables():
            while table.done < len(table.rows):
                try:
                    row = table.rows[table.done]
                    if table is self.states and table.runs[table.done] in refused_runs:
                        row = (*row[:6], None, None)  # its chain may miss a refused row
                    with unanswered_commits.one_row(conn, self, table):
                        conn.execute(table.sql, row if table.params is None else table.params(row))
                except Exception as exc:
                    if passing(exc):
                        raise
                    refused(table, table.runs[table.done], exc)
                    refused_runs.add(table.runs[table.done])
                table.done += 1
