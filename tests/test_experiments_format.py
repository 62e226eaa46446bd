"""How logged params and metrics are stored (``store/logged_calls.py``, schema 15), on SQLite
and PostgreSQL: a batch's calls as one msgpack row (by column), or JSON where msgpack cannot hold a value
exactly, every type coming back as logged; rows written by older labloom (one call a row, a
JSON array of calls) read alongside in id order, also after a v14 store is upgraded; bytes
labloom did not write are a clear error naming the row."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import msgpack
import pytest

from labloom import StoreDataError, flow, log_metrics, task
from labloom.core import events as ev
from labloom.store import experiments as store_experiments
from labloom.store import logged_calls, open_store
from labloom.store.db import get_database
from labloom.store.schema import SCHEMA_VERSION, ensure_schema, version_of

RUN = "fmt1"

# Every type a value may have (``record``), with text that JSON or SQL would trip on.
EVERY_TYPE = {"whole": 1.0, "count": 7, "negative": -3, "top64": 2**64 - 1, "low64": -2**63,
              "flag": True, "off": False, "nothing": None, "nan": math.nan, "inf": math.inf,
              "-inf": -math.inf, "tiny": 5e-324, "third": 0.1 + 0.2,
              "text": 'ünïcode "quoted" \\ 🧪 \x00 nul \u2028 line', "": "empty name"}


def _kinds(store: Any) -> list[str]:
    return [kind for (kind,) in store.conn.execute(
        "SELECT kind FROM experiment_values WHERE run_id = ? ORDER BY id", (RUN,))]


def _insert(store: Any, *calls: tuple[Any, ...]) -> None:
    """One writer's batch: ``calls`` as (task run id, kind, values, step)."""
    event = ev.ExperimentCalls(RUN, [c[0] for c in calls], [c[1] for c in calls],
                               [c[2] for c in calls], [c[3] for c in calls],
                               [time.time()] * len(calls))
    with store.conn.transaction():
        store_experiments.insert(store.conn, [store_experiments.row_of(event)])


def _insert_as_v14(conn: Any, task_run_id: str, kind: str, values: Any, step: Any = None,
                   when: float = 1.0) -> None:
    """A row as labloom before schema 15 wrote it: one call (kind "param" or "metric") or a
    batch (kind "calls", ``values`` the calls), as JSON text."""
    conn.execute(
        "INSERT INTO experiment_values (run_id, task_run_id, kind, step, time, data) "
        "VALUES (?, ?, ?, ?, ?, ?)", (RUN, task_run_id, kind, step, when, json.dumps(values)))


def _all(store: Any, limit: int) -> list[Any]:
    """Every call of the run, read ``limit`` rows at a time."""
    calls: list[Any] = []
    cursor, more = 0, True
    while more:
        chunk, cursor, more = store_experiments.read_logged(store, RUN, cursor, limit)
        calls += chunk
    return calls


def _same(got: list[Any], want: list[Any]) -> None:
    # repr tells 1 from 1.0 and True from 1, and NaN equals itself there; tuples read as lists
    assert repr([list(call) for call in got]) == repr([list(call) for call in want])


def test_every_type_round_trips_and_a_batch_msgpack_cannot_hold_falls_back_to_json(
    store_backend: str
) -> None:
    with open_store() as store:
        _insert(store, ("a", "param", dict(EVERY_TYPE), None), ("a", "metric", {"x": 1.5}, 2))
        _insert(store, ("b", "param", {"huge": 2**70, "tiny": -2**64}, None))
        _insert(store, ("c", "param", {"lone": "half \ud800 a pair"}, None),
                ("c", "metric", {"x": math.nan}, 0))
        assert _kinds(store) == ["packed", "calls", "calls"]
        calls = _all(store, 2)
    _same([call[:4] for call in calls], [
        ["a", "param", EVERY_TYPE, None], ["a", "metric", {"x": 1.5}, 2],
        ["b", "param", {"huge": 2**70, "tiny": -2**64}, None],
        ["c", "param", {"lone": "half \ud800 a pair"}, None], ["c", "metric", {"x": math.nan}, 0],
    ])
    assert all(isinstance(call[4], float) for call in calls)


@task
def logs_three(i: int) -> None:
    log_metrics(auc=i / 10, loss=1.0 / (i + 1), seen=i)


@flow
def three_each(n: int) -> Any:
    return logs_three.map(range(n))


def test_a_real_run_writes_packed_rows_that_read_back(store_backend: str) -> None:
    run = three_each.run(n=30, executor="threads")
    with open_store() as store:
        kinds = {kind for (kind,) in store.conn.execute(
            "SELECT kind FROM experiment_values WHERE run_id = ?", (run.id,))}
        rows = {row.map_index: row for row in store_experiments.run_experiments(store, run.id)}
        points, total = store_experiments.metric_points(store, run.id, "loss")
    assert kinds == {"packed"}
    assert len(rows) == 30 and rows[4].metrics == {"auc": 0.4, "loss": 0.2, "seen": 4}
    assert isinstance(rows[4].metrics["seen"], int)
    assert total == 30 and sorted(p["value"] for p in points)[-1] == 1.0


def test_a_writes_calls_of_one_run_or_of_several_store_the_same_bytes(
    store_backend: str
) -> None:
    """The writer joins a write's events in C when they are all ``ExperimentCalls`` of one
    run (``store/experiments._by_run``, ``_joined``); events of several runs, or replayed
    ``ExperimentValues``, go the other way. Both store the same bytes, call for call, in the
    order logged, a row per ``CALLS_PER_ROW`` calls."""
    calls = [(f"tr.{i}", "metric" if i % 3 else "param",
              {"a": i, "b": i * 0.5, "c": "x" * (i % 4)}, i if i % 2 else None, 10.0 + i)
             for i in range(7)]

    def batch(run_id: str, part: list[Any]) -> ev.ExperimentCalls:
        return ev.ExperimentCalls(run_id, *zip(*part, strict=True))

    fast = [(RUN, batch(RUN, calls[:1])), (RUN, batch(RUN, calls[1:5])),
            (RUN, batch(RUN, calls[5:]))]
    slow = [(RUN, ev.ExperimentValues(RUN, c[0], c[4], c[1], c[2], c[3])) for c in calls[:2]]
    slow += [("other", batch("other", calls[:3])), (RUN, batch(RUN, calls[2:6])),
             ("other", batch("other", calls[3:])), (RUN, batch(RUN, calls[6:]))]

    def stored(rows: list[Any]) -> dict[str, list[Any]]:
        with open_store() as store:
            store.conn.execute("DELETE FROM experiment_values")
            with store.conn.transaction():
                store_experiments.insert(store.conn, rows)
            got: dict[str, list[Any]] = {}
            for run_id, packed in store.conn.execute(
                    "SELECT run_id, packed FROM experiment_values ORDER BY id"):
                got.setdefault(run_id, []).append(packed)
            return got

    for per_row in (1000, 3):
        store_experiments.CALLS_PER_ROW, saved = per_row, store_experiments.CALLS_PER_ROW
        try:
            one, several = stored(fast), stored(slow)
        finally:
            store_experiments.CALLS_PER_ROW = saved
        assert one[RUN] == several[RUN] == several["other"]
        assert len(one[RUN]) == (1 if per_row == 1000 else 3)
        _same([call for row in one[RUN] for call in logged_calls.unpacked(row, 0)], calls)


def _old_rows(conn: Any) -> None:
    """Rows of each kind schema 14 wrote: one call a row, and a batch as a JSON array."""
    _insert_as_v14(conn, "old.0", "param", {"depth": 3}, None, 1.0)
    _insert_as_v14(conn, "old.0", "metric", {"loss": math.nan}, 0, 1.5)
    _insert_as_v14(conn, "", "calls", [["old.1", "metric", {"loss": 0.5, "big": 2**70}, 1, 2.0],
                                       ["old.1", "param", {"depth": None}, None, 2.5]])


_OLD_CALLS = [["old.0", "param", {"depth": 3}, None, 1.0],
              ["old.0", "metric", {"loss": math.nan}, 0, 1.5],
              ["old.1", "metric", {"loss": 0.5, "big": 2**70}, 1, 2.0],
              ["old.1", "param", {"depth": None}, None, 2.5]]


def test_old_rows_and_packed_rows_read_in_the_order_written(store_backend: str) -> None:
    with open_store() as store:
        with store.conn.transaction():
            _old_rows(store.conn)
        _insert(store, ("new.0", "metric", {"loss": 0.25}, 2))
        with store.conn.transaction():
            _insert_as_v14(store.conn, "old.0", "metric", {"loss": 0.125}, 3, 9.0)
        _insert(store, ("new.1", "metric", {"loss": math.inf}, 4))
        assert _kinds(store) == ["param", "metric", "calls", "packed", "metric", "packed"]
        for limit in (1, 2, 500):  # pages of rows: the cursor moves over every kind
            calls = _all(store, limit)
            _same([call[:4] for call in calls], [call[:4] for call in _OLD_CALLS] + [
                ["new.0", "metric", {"loss": 0.25}, 2], ["old.0", "metric", {"loss": 0.125}, 3],
                ["new.1", "metric", {"loss": math.inf}, 4]])
        points, total = store_experiments.metric_points(store, RUN, "loss")
    assert total == 5 and [p["step"] for p in points] == [0, 1, 2, 3, 4]
    assert math.isnan(points[0]["value"]) and points[4]["value"] == math.inf


def test_a_v14_store_upgrades_and_keeps_its_rows_readable(store_backend: str) -> None:
    conn = get_database().connect(migrate=False)
    ensure_schema(conn, target=14)
    with conn.transaction():
        _old_rows(conn)
    conn.close()
    with open_store() as store:
        assert version_of(store.conn) == SCHEMA_VERSION == 22
        _same(_all(store, 2), _OLD_CALLS)
        _insert(store, ("new.0", "metric", {"loss": 0.25}, 2))
        assert _kinds(store)[-1] == "packed"
        assert [call[0] for call in _all(store, 500)] == ["old.0", "old.0", "old.1", "old.1",
                                                           "new.0"]


@pytest.mark.parametrize(("odd", "why"), [
    (b"\xc1", "FormatError"),  # a byte msgpack never uses
    (msgpack.packb([["a"], ["metric"], [{"x": 1.0}], [None], [1.0]])[:-3], "incomplete"),
    (msgpack.packb([]) + b"\x01", "extra data"),
    (msgpack.packb({"a": 1}), "not an array of five columns"),
    (msgpack.packb([["a"], ["metric"], [{}], [None], []]), "shorter"),  # columns must agree
    (msgpack.packb([["a"], ["metric"], [{}], [None], 1.0]), "not iterable"),
    (msgpack.packb([msgpack.ExtType(5, b"x")]), "extension type"),
    (b"\x91\xa2\xff\xfe", "utf-8"),  # an array of one string that is not UTF-8
    (None, "bytes-like"),
])
def test_bytes_labloom_did_not_write_are_a_clear_error_naming_the_row(
    store_backend: str, odd: bytes | None, why: str
) -> None:
    with open_store() as store:
        _insert(store, ("a", "metric", {"x": 1.0}, None))
        with store.conn.transaction():
            store.conn.execute(
                "INSERT INTO experiment_values (run_id, task_run_id, kind, data, packed) "
                "VALUES (?, '', 'packed', '', ?)", (RUN, odd))
        (bad,) = store.conn.execute(
            "SELECT max(id) FROM experiment_values WHERE run_id = ?", (RUN,)).fetchone()
        calls, cursor, _ = store_experiments.read_logged(store, RUN, 0, 1)  # before it: read
        assert [call[0] for call in calls] == ["a"]
        with pytest.raises(StoreDataError, match=rf"row {bad} of experiment_values .*{why}"):
            store_experiments.read_logged(store, RUN, cursor)


def test_a_curve_from_the_store_holds_each_task_runs_points_since_its_last_start_over(
    store_backend: str,
) -> None:
    """``metric_points`` reads a start over (``experiments.RESET``) in any row, also one
    holding no point of the metric, and takes the task run's points before it back, from the
    points and from the total; ``limit`` counts current points only (the same points, in the
    same order, as filtering them out at each start over did)."""
    import random

    chance = random.Random(36)
    with open_store() as store:
        calls: list[tuple[Any, ...]] = []
        for at in range(400):
            task_run_id = f"r.{chance.randrange(5)}"
            if chance.random() < 0.08:
                call: tuple[Any, ...] = (task_run_id, "reset", {}, None)
            elif chance.random() < 0.2:
                call = (task_run_id, "metric", {"other": 1.0}, at)  # a row without "loss"
            else:
                call = (task_run_id, "metric", {"loss": float(at)}, at)
            calls.append(call)
            _insert(store, call)
        for limit in (20_000, 25):
            expected: list[tuple[str, float]] = []
            counts: dict[str, int] = {}
            for task_run_id, kind, values, _step in calls:
                if kind == "reset":
                    expected = [point for point in expected if point[0] != task_run_id]
                    counts.pop(task_run_id, None)
                elif "loss" in values:
                    counts[task_run_id] = counts.get(task_run_id, 0) + 1
                    if len(expected) < limit:
                        expected.append((task_run_id, values["loss"]))
            points, total = store_experiments.metric_points(store, RUN, "loss", limit=limit)
            assert [(p["task_run_id"], p["value"]) for p in points] == expected
            assert total == sum(counts.values())
