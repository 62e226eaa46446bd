"""Reading the store: runs, task runs, state histories and logs, as small records.

Every read first reconciles: a run still marked Pending or Running whose process is gone (same
host: its pid is dead; any host: no heartbeat for ``LABLOOM_HEARTBEAT_TIMEOUT`` seconds, default
60) is marked Crashed, and its unfinished task runs Cancelled. Nothing already written is
changed. On a shared store every reader on every host does this, so a host that dies has its
runs marked by whoever looks next.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from ..core.kept_parameters import parameter_bytes_or_default, shown_parameters
from .crashed_runs import mark_crashed_runs
from .db import Conn, get_database
from .listed_parameters import add_parameters, listed_columns
from .log_records import LogCut, LogEntry, NodeRecord
from .multirow import rows_in
from .named_logs import named_clause, named_logs
from .room import NOTE_LIKE
from .storable import NOTE
from .stored_parameters import shown_stored


@dataclass
class RunRecord:
    id: str
    flow_name: str
    state: str
    message: str
    # The parameters' JSON as stored, parsed on first use of ``parameters`` (a retry, Python);
    # None when not read (a list reads them itself, ``listed_parameters``).
    parameters_text: str | None = field(repr=False, compare=False)
    created: float | None
    started: float | None
    ended: float | None
    host: str | None
    pid: int | None
    executor: str | None
    origin: str | None
    source_hash: str | None
    target: dict[str, Any] | None
    retry_of: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # task runs by state
    user: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started

    @property
    def is_open(self) -> bool:
        """Pending or Running: what the views keep of it may still change."""
        return self.state in ("Pending", "Running")

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The run's parameters, every value whole as stored (what ``labloom retry`` replays)."""
        return _loads(self.parameters_text) or {}

    def shown_parameters(self) -> dict[str, Any]:
        """The parameters as views show them (``kept_parameters.shown_parameters``), without
        parsing a big value an older labloom stored whole (``stored_parameters.py``)."""
        text, limit = self.parameters_text, parameter_bytes_or_default()
        if "parameters" in self.__dict__ or not text or len(text) <= limit:  # parsed, or small
            return shown_parameters(self.parameters)
        return shown_stored(text, limit)

    def to_json(self) -> dict[str, Any]:
        fields = asdict(self)
        return {**{("parameters" if name == "parameters_text" else name):
                   (self.shown_parameters() if name == "parameters_text" else value)
                   for name, value in fields.items()}, "duration": self.duration}


@dataclass
class TaskRunRecord:
    id: str
    run_id: str
    task_name: str
    map_index: int | None
    state: str
    attempts: int
    started: float | None
    ended: float | None
    message: str
    traceback: str
    cache_key: str | None
    result_path: str | None
    upstream: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    node_id: str | None = None  # the graph node (one per task call or map)
    left_map: str | None = None  # why it left its map (``TaskRunLeftMap``); None: it did not

    @property
    def name(self) -> str:
        return self.task_name if self.map_index is None else f"{self.task_name}[{self.map_index}]"

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name, "duration": self.duration}


_RUN_COLUMNS = (
    "id, flow_name, state, message, parameters, created, started, ended, host, pid, executor, "
    "origin, source_hash, target, retry_of, metadata, username"
)
_TASK_COLUMNS = (
    "id, run_id, task_name, map_index, state, attempts, started, ended, message, traceback, "
    "cache_key, result_path, upstream, node_id, left_map"
)


def retries_of(conn: Conn, run_id: str) -> list[tuple[str, str]]:
    """The runs made by retrying ``run_id`` (``labloom retry``, the panel's Retry), oldest
    first, as (id, state): the other end of their ``retry_of``."""
    return [(row[0], row[1]) for row in conn.execute(
        "SELECT id, state FROM flow_runs WHERE retry_of = ? ORDER BY created, id", (run_id,))]


class RunStore:
    """Read access to the store (``open_store()``); also a context manager. ``path``: a
    SQLite file; ``url``: any database URL; neither: the store in force (``db.database_url``)."""

    def __init__(self, path: Path | None = None, url: str | None = None) -> None:
        self.database = get_database(f"sqlite:///{path}" if path is not None else url)
        self.path = self.database.path
        self.conn: Conn = self.database.connect()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # --- runs -----------------------------------------------------------------------------

    def list_runs(
        self,
        flow: str | None = None,
        limit: int | None = 20,
        *,
        state: str | None = None,
        origin: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: str | None = None,
        host: str | None = None,
        user: str | None = None,
        pid: int | None = None,
        counts: bool = True,
        parameters: bool = True,
    ) -> list[RunRecord]:
        """Newest first, optionally filtered (``host``, ``user`` and ``pid`` as recorded with the run);
        ``since``/``until`` bound the creation time and ``before`` (a run id, the last one of
        the previous page) continues a listing. ``counts=False``: without the task runs
        counted by state (a read of every task run of the page's runs). ``parameters=False``:
        without the runs' parameters (``{}``), for a list that shows none; with them, a run's
        are read only while their JSON is small (``listed_parameters``)."""
        self.reconcile()
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("flow_name", flow), ("state", state), ("origin", origin),
                              ("host", host), ("username", user), ("pid", pid)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("created >= ?")
            params.append(since)
        if until is not None:
            where.append("created < ?")
            params.append(until)
        if before is not None:
            cursor = self.conn.execute(
                "SELECT created, id FROM flow_runs WHERE id = ?", (before,)
            ).fetchone()
            if cursor is None:
                return []
            where.append("(created < ? OR (created = ? AND id < ?))")
            params += [cursor[0], cursor[0], cursor[1]]
        sql = f"SELECT {listed_columns(_RUN_COLUMNS, self.conn.kind, parameters)} FROM flow_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self.conn.execute(sql, params).fetchall()
        runs = [_run(row, listed=True) for row in rows]
        if parameters:
            add_parameters(self.conn, runs, [row[4] for row in rows])
        if counts:
            self._add_counts(runs)
        return runs

    def get_run(self, run_id: str, *, counts: bool = True, parameters: bool = True
                ) -> RunRecord | None:
        """A run by id, or by a prefix of its id that names exactly one run. ``counts=False``:
        without its task runs counted by state (a read of every task run); ``parameters=False``:
        without its parameters (``{}``), for a reader that needs neither."""
        runs = self.matching_runs(run_id, limit=2, parameters=parameters)
        if len(runs) != 1:
            return None
        if counts:
            self._add_counts(runs)
        return runs[0]

    def matching_runs(self, run_id: str, limit: int = 10, parameters: bool = True
                      ) -> list[RunRecord]:
        """The run with this id, else up to ``limit`` runs whose id starts with it (newest
        first): more than one says the prefix is ambiguous, and which runs it names.
        ``parameters=False``: without them (``{}``), for a view that shows none."""
        self.reconcile()
        columns = _RUN_COLUMNS if parameters else listed_columns(_RUN_COLUMNS, self.conn.kind, False)
        rows = self.conn.execute(
            f"SELECT {columns} FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchall()
        if not rows and run_id:
            # A prefix compared as text, not a LIKE pattern: LIKE matched case-insensitively
            # on SQLite and not on PostgreSQL, and '%' (stripped) named every run. Ids are
            # lowercase hex, so a prefix copied in capitals names the same run on both.
            prefix = run_id.lower()
            rows = self.conn.execute(
                f"SELECT {columns} FROM flow_runs WHERE substr(id, 1, ?) = ? "
                "ORDER BY created DESC, id DESC LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        return [_run(row, listed=not parameters) for row in rows]

    def retries(self, run_id: str) -> list[tuple[str, str]]:
        return retries_of(self.conn, run_id)

    def parameters_escaped(self, run_id: str) -> bool:
        """Whether the run's log says its parameters were stored with text escaped (a lone
        surrogate, NUL), as labloom did before session 46: they do not read back as given."""
        return self.conn.execute(
            "SELECT 1 FROM logs WHERE run_id = ? AND task_run_id IS NULL AND text LIKE ? "
            "LIMIT 1", (run_id, NOTE.partition("{where}")[0] + "%run parameters%"),
        ).fetchone() is not None

    def _add_counts(self, runs: list[RunRecord]) -> None:
        # Not a map's children that left it (history): as the run's graph counts its nodes.
        by_id = {run.id: run for run in runs}
        for run_id, state, count in rows_in(
                self.conn, "SELECT run_id, state, COUNT(*) FROM task_runs WHERE left_map IS NULL "
                "AND run_id IN ({marks}) GROUP BY run_id, state", list(by_id)):
            by_id[run_id].counts[state] = count

    # --- task runs and logs ---------------------------------------------------------------

    def find_task_runs(self, run_id: str, task: str, children: bool = False,
                       limit: int | None = None) -> list[TaskRunRecord]:
        """The task runs of a run that ``task`` names: an id, a task's name (a plain call, also
        ``cfg[0]``, an indexed future) or ``name[i]`` (child i of a map, where no task is called so
        itself). One indexed query.
        ``children``: a map's name names its children too (``run_logs.named``, ``--task``)."""
        named, params = named_clause(run_id, task, children)
        sql = f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? AND {named}"
        sql += " ORDER BY created, rowid" + (" LIMIT ?" if limit is not None else "")
        more = [] if limit is None else [limit]
        return [_task(row) for row in self.conn.execute(sql, [run_id, *params, *more])]

    def tracebacks(self, run_id: str, task: str | None = None) -> list[TaskRunRecord]:
        """The task runs that hold a traceback (of those ``task`` names, a map's children too),
        in creation order: what ``labloom logs`` ends with, not every task run of a wide run
        (``states.shown_traceback`` says which of them a view shows)."""
        named, params = (named_clause(run_id, task, children=True) if task is not None
                         else ("1 = 1", []))
        return [_task(row) for row in self.conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? AND {named} "
            "AND traceback <> '' ORDER BY created, rowid", [run_id, *params])]

    def task_runs(self, run_id: str, history: bool = False) -> list[TaskRunRecord]:
        rows = self.conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? ORDER BY created, rowid",
            (run_id,),
        ).fetchall()
        tasks = [_task(row) for row in rows]
        if history:
            by_id = {task.id: task for task in tasks}
            # Through the run's task runs (``task_states_by_task_run``): SQLite has no index of
            # task_states by run, and ``WHERE run_id = ?`` read the whole table (every run's
            # states: 0.35 s for one run of 350 in a store of 2,000, benchmarks/show_run.py).
            for tr_id, state, when, message, attempt in self.conn.execute(
                "SELECT s.task_run_id, s.state, s.time, s.message, s.attempt FROM task_runs t "
                "CROSS JOIN task_states s WHERE t.run_id = ? AND s.task_run_id = t.id "
                "AND s.run_id = t.run_id ORDER BY s.rowid", (run_id,)
            ):
                if tr_id in by_id:
                    by_id[tr_id].history.append(
                        {"state": state, "time": when, "message": message, "attempt": attempt}
                    )
        return tasks

    def logs(self, run_id: str, task: str | None = None) -> tuple[list[LogEntry], list[LogCut]]:
        """Log lines of a run (or of task runs matching ``task``: an id, name or ``name[i]``,
        read through them in SQL: ``named_logs``), and a note per task run whose lines were
        cut."""
        if task is not None:
            return named_logs(self.conn, run_id, task)
        names = {tr_id: name if index is None else f"{name}[{index}]"
                 for tr_id, name, index in self.conn.execute(
                     "SELECT id, task_name, map_index FROM task_runs WHERE run_id = ?", (run_id,))}
        rows = self.conn.execute("SELECT id, task_run_id, level, time, text FROM logs "
                                 "WHERE run_id = ? ORDER BY time, id", (run_id,))
        lines = [LogEntry(tr_id, names.get(tr_id, "") if tr_id else "", level, when, text, line_id)
                 for line_id, tr_id, level, when, text in rows]
        cuts = [LogCut(tr_id, names.get(tr_id, ""), kept, cut) for tr_id, kept, cut in
                self.conn.execute("SELECT task_run_id, kept, cut FROM log_cuts WHERE run_id = ?",
                                  (run_id,))]
        return lines, cuts

    def nodes(self, run_id: str) -> list[NodeRecord]:
        """The run's graph nodes in creation order (empty for runs recorded before v5)."""
        return [
            NodeRecord(node_id, name, kind, _loads(upstream) or [])
            for node_id, name, kind, upstream in self.conn.execute(
                "SELECT node_id, name, kind, upstream FROM run_nodes WHERE run_id = ? "
                "ORDER BY created, rowid", (run_id,)
            )
        ]

    def log_page(
        self, run_id: str, task_run_ids: list[str] | None = None, after: int = 0,
        limit: int = 1000,
    ) -> list[LogEntry]:
        """Up to ``limit`` log lines of a run (or of the given task runs) written after the line
        whose ``id`` is ``after``, in the order they were written: read on from the last
        ``id`` to follow a run while it writes. ``task`` is left empty (the caller knows)."""
        sql = "SELECT id, task_run_id, level, time, text FROM logs WHERE run_id = ? AND id > ?"
        params: list[Any] = [run_id, after]
        if task_run_ids is not None:
            if not task_run_ids:
                return []
            sql += f" AND task_run_id IN ({','.join('?' * len(task_run_ids))})"
            params += task_run_ids
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        return [
            LogEntry(tr_id, "", level, when, text, line_id)
            for line_id, tr_id, level, when, text in self.conn.execute(sql, params)
        ]

    def notes(self, run_id: str) -> list[str]:
        """What the writer noted of the run's lines and values it did not store (room.NOTE)."""
        return [text for (text,) in self.conn.execute(
            "SELECT text FROM logs WHERE run_id = ? AND task_run_id IS NULL AND text LIKE ?",
            (run_id, NOTE_LIKE))]

    def log_cuts(self, run_id: str, task_run_ids: list[str] | None = None) -> list[LogCut]:
        """How many lines were not stored, per task run (the store keeps a capped number)."""
        wanted = None if task_run_ids is None else set(task_run_ids)
        return [
            LogCut(tr_id, "", kept, cut)
            for tr_id, kept, cut in self.conn.execute(
                "SELECT task_run_id, kept, cut FROM log_cuts WHERE run_id = ?", (run_id,)
            )
            if wanted is None or tr_id in wanted
        ]

    # --- crash detection ------------------------------------------------------------------

    def reconcile(self, now: float | None = None) -> list[str]:
        """Mark runs whose process died as Crashed; returns their ids (``crashed_runs.py``)."""
        return mark_crashed_runs(self.conn, now)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _run(row: tuple[Any, ...], listed: bool = False) -> RunRecord:
    (run_id, flow, state, message, params, created, started, ended, host, pid, executor,
     origin, source_hash, target, retry_of, metadata, user) = row
    return RunRecord(  # (listed: ``listed_parameters.py`` reads them after, or not)
        run_id, flow, state, message or "", None if listed else params, created,
        started, ended, host,
        pid, executor, origin, source_hash, _loads(target), retry_of, _loads(metadata) or {},
        user=user,
    )


def _task(row: tuple[Any, ...]) -> TaskRunRecord:
    (tr_id, run_id, name, index, state, attempts, started, ended, message, traceback, key,
     path, upstream, node_id, left_map) = row
    return TaskRunRecord(
        tr_id, run_id, name, index, state, attempts, started, ended, message or "",
        traceback or "", key, path, _loads(upstream) or [], node_id=node_id, left_map=left_map,
    )
