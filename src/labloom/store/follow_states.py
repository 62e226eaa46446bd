"""Following a running run by cursor with its task runs' states kept in memory: a look reads
``task_states`` by rowid range only (``follow.node_moves`` seeks each changed task run's state
before the range in the ``task_states_by_task_run`` index and its node in ``task_runs``, about
7 µs per changed task run; here a row of the range costs a dictionary look-up in Python, and
only a task run created since is read from ``task_runs``, by primary key).

What is kept: per task run, its graph node and its last state folded in, as one small int
(``node * _WIDE + state``), so 100,000 task runs hold about 10 MB (their ids and the dict).
The owner (``server_extension.graphs``) bounds the sum over the runs it follows and reads the
SQL way (``node_moves``) past that bound. The moves come out as ``node_moves``'s do, so a
``FollowedGraph`` folds either alike; a task run's rows are folded one by one (each row moves it
from its state before to its state at the row), which adds up to its move across the range.
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter as _at
from typing import Any

from .follow import _IS_MAP, _NODE, SPAN, NodeCount, NodeMove, state_cursor
from .reader import RunStore

_WIDE = 1 << 16  # states a code has room for (the store knows 9)


class TaskStates:
    """One run's task runs, by id: node and last state, at the cursor ``cursor``. Not
    thread-safe: its owner serialises ``build`` and ``moves`` (the graph's lock)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.codes: dict[str, int] = {}  # task run id -> node index * _WIDE + state index
        self.nodes: list[tuple[str, str, int]] = []  # node index -> (node id, task name, map)
        self._node_index: dict[tuple[str, str, int], int] = {}
        self.states: list[str | None] = [None]  # state index -> state; 0: not counted yet
        self._state_index: dict[str | None, int] = {None: 0}
        self._interned: dict[int, int] = {}  # one int object per code, shared by task runs
        self.tasks = 0  # SQLite: the rowid of the last task run read in ``task_runs``

    def __len__(self) -> int:
        return len(self.codes)

    def build(self, store: RunStore) -> tuple[int, list[NodeCount]]:
        """Every task run of the run, and the state cursor they are read at (one statement:
        one snapshot), counted by node and state as ``follow.node_counts`` counts them."""
        top = ("(SELECT COALESCE(MAX(rowid), 0) FROM task_states)" if store.conn.kind == "sqlite"
               else "(SELECT COALESCE(MAX(rowid), 0) FROM task_states WHERE run_id = ?)")
        params = [self.run_id, self.run_id] if store.conn.kind == "postgresql" else [self.run_id]
        rows = store.conn.execute(
            f"SELECT {top}, '', '', '', -1, '' UNION ALL SELECT t.rowid, t.id, {_NODE}, "
            f"t.task_name, {_IS_MAP}, t.state FROM task_runs t WHERE t.run_id = ?", params
        ).fetchall()
        cursor = next(int(row[0]) for row in rows if row[4] == -1)
        rows = [row for row in rows if row[4] != -1]
        self.tasks = max((int(row[0]) for row in rows), default=0)
        # Per task run in C loops (a comprehension, map, zip): a run of 100,000 in ~0.1 s.
        keys = list(zip(map(_at(2), rows), map(_at(3), rows), map(_at(4), rows),
                        map(_at(5), rows), strict=True))
        code_of = {key: self._code(*key) for key in set(keys)}
        self.codes.update(zip(map(_at(1), rows), map(code_of.__getitem__, keys), strict=True))
        return cursor, [(node, name, int(is_map), state, n) for (node, name, is_map, state), n
                        in Counter(keys).items()]

    def moves(
        self, store: RunStore, after: int, most: int | None = None
    ) -> tuple[int, list[NodeMove]] | None:
        """As ``follow.node_moves``: how the run's task runs moved after the cursor ``after``,
        by node and (state before, state now), and the cursor reached. None when a row names
        a task run the store does not have (never, when the store keeps its rule that a task
        run's row and its first state commit together): then the caller reads it the SQL way
        and drops this object, whose codes may be partly folded."""
        top = state_cursor(store, self.run_id)
        if most is not None:
            top = min(top, after + most)
        moved: Counter[tuple[int, str]] = Counter()  # (code before, state now) -> task runs
        while after < top:
            upto = min(top, after + SPAN)
            # Each task run's last state in the range (rows come in commit order).
            last = dict(store.conn.execute(
                "SELECT task_run_id, state FROM task_states WHERE rowid > ? AND rowid <= ? "
                "AND run_id = ? ORDER BY rowid", (after, upto, self.run_id)
            ).fetchall())
            codes = self.codes
            if not self._learn(store, {task_run_id for task_run_id in last
                                       if task_run_id not in codes}):
                return None
            # Per task run, not per row, and in C loops: its code before, its state now.
            pairs = list(zip(map(codes.__getitem__, last), last.values(), strict=True))
            moved.update(pairs)
            to_code = {pair: self._moved_code(*pair) for pair in set(pairs)}
            codes.update(zip(last, map(to_code.__getitem__, pairs), strict=True))
            after = upto
        out: list[NodeMove] = []
        for (code, state), n in moved.items():
            node_id, name, is_map = self.nodes[code // _WIDE]
            out.append((node_id, name, is_map, state, self.states[code % _WIDE], n))
        return top, out

    def _learn(self, store: RunStore, ids: set[str]) -> bool:
        """Read the nodes of the task runs created since the last look (on SQLite, in one range
        of ``task_runs_by_run``, whose entries are ordered by rowid within a run; on
        PostgreSQL, where that index has no rowid, by primary key)."""
        if not ids:
            return True
        if store.conn.kind == "sqlite":
            rows = store.conn.execute(
                f"SELECT t.rowid, t.id, {_NODE}, t.task_name, {_IS_MAP} FROM task_runs t "
                "WHERE t.run_id = ? AND t.rowid > ? ORDER BY t.rowid", (self.run_id, self.tasks)
            ).fetchall()
            self.tasks = int(rows[-1][0]) if rows else self.tasks
        else:
            wanted, rows = sorted(ids), []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows += store.conn.execute(
                    f"SELECT 0, t.id, {_NODE}, t.task_name, {_IS_MAP} FROM task_runs t "
                    f"WHERE t.id IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
        # Each one created since, not counted yet (state None), in C loops as in ``build``.
        keys = list(zip(map(_at(2), rows), map(_at(3), rows), map(_at(4), rows), strict=True))
        code_of = {key: self._code(*key, None) for key in set(keys)}
        self.codes.update(zip(map(_at(1), rows), map(code_of.__getitem__, keys), strict=True))
        return all(task_run_id in self.codes for task_run_id in ids)

    def _moved_code(self, code: int, state: str) -> int:
        now = self._state_index.get(state)
        new = code - code % _WIDE + (self._new_state(state) if now is None else now)
        return self._interned.setdefault(new, new)

    def _code(self, node: str, name: str, is_map: int, state: str | None) -> int:
        key = (node, name, int(is_map))
        index = self._node_index.get(key)
        if index is None:
            index = self._node_index[key] = len(self.nodes)
            self.nodes.append(key)
        now = self._state_index.get(state)
        code = index * _WIDE + (self._new_state(state) if now is None else now)
        return self._interned.setdefault(code, code)

    def _new_state(self, state: Any) -> int:
        index = self._state_index[state] = len(self.states)
        self.states.append(state)
        return index
