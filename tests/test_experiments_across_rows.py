"""Pages across runs keep ended runs' rows (``server_extension/across_rows.py``): read once,
then answered from what is kept, while runs still going are read at every question, and a
run whose state or end changed is read afresh. Seen through the store: a kept run's values
deleted from the store stay in the answer; a running or changed run's do not."""

from __future__ import annotations

import threading
import time
from typing import Any

from labloom import flow, log_metrics, task
from labloom.server_extension.across_rows import AcrossRows
from labloom.store import open_store

GATE = threading.Event()


@task
def scored(i: int, wait: bool = False) -> None:
    log_metrics(auc=i / 10)
    if wait:
        GATE.wait(30)
        log_metrics(late=1.0)


@flow
def sweep(n: int, wait: bool = False) -> Any:
    return scored.map(range(n), wait=[wait] * n)


def _aucs(rows: list[Any]) -> list[tuple[str, float]]:
    return [(row.run_id, row.metrics.get("auc")) for row in rows]


def _drop_values(store: Any, run_id: str) -> None:
    with store.conn.transaction() as conn:
        conn.execute("DELETE FROM experiment_values WHERE run_id = ?", (run_id,))


def test_ended_runs_are_read_once_running_ones_each_time(store_backend: str) -> None:
    one, two = sweep.run(n=2, executor="local"), sweep.run(n=1, executor="local")
    GATE.clear()
    going = sweep.run(n=1, wait=True, executor="threads", background=True)
    across = AcrossRows()
    try:
        with open_store() as store:
            while not store.matching_runs(going.id) or not _read(store, going.id):
                time.sleep(0.01)  # until the running run's first call is in the store
            records = [store.get_run(r.id) for r in (one, two, going)]
            first = across.rows(store, records)
            assert _aucs(first) == [(one.id, 0.0), (one.id, 0.1), (two.id, 0.0), (going.id, 0.0)]
            for run in (one, two, going):
                _drop_values(store, run.id)
            again = across.rows(store, [store.get_run(r.id) for r in (one, two, going)])
            # the ended runs' rows were kept; the running run's were read again (none left)
            assert _aucs(again) == _aucs(first)[:3]
    finally:
        GATE.set()
        going.wait(30)


def _read(store: Any, run_id: str) -> bool:
    return bool(AcrossRows().rows(store, [store.get_run(run_id)]))


def test_a_run_whose_state_or_end_changed_is_read_again(store_backend: str) -> None:
    run = sweep.run(n=2, executor="local")
    across = AcrossRows()
    with open_store() as store:
        assert len(across.rows(store, [store.get_run(run.id)])) == 2
        _drop_values(store, run.id)
        record = store.get_run(run.id)
        assert len(across.rows(store, [record])) == 2  # kept
        record.state = "Crashed"  # as the store says of a run whose process died
        assert across.rows(store, [record]) == []


def test_at_most_max_rows_are_kept_the_least_recently_asked_dropped_first(
    store_backend: str,
) -> None:
    runs = [sweep.run(n=2, executor="local") for _ in range(3)]
    across = AcrossRows(max_rows=4)
    with open_store() as store:
        records = [store.get_run(r.id) for r in runs]
        for record in records:
            assert len(across.rows(store, [record])) == 2
        across.rows(store, [records[1]])  # asked again: the first is the least recent now
        for run in runs:
            _drop_values(store, run.id)
        kept = {record.id: len(across.rows(store, [record])) for record in records}
        assert kept == {runs[0].id: 0, runs[1].id: 2, runs[2].id: 2}


def test_a_deleted_run_is_forgotten(store_backend: str) -> None:
    runs = [sweep.run(n=2, executor="local") for _ in range(2)]
    across = AcrossRows()
    with open_store() as store:
        records = [store.get_run(r.id) for r in runs]
        assert len(across.rows(store, records)) == 4
        across.forget([runs[0].id])
        for run in runs:
            _drop_values(store, run.id)
        assert [row.run_id for row in across.rows(store, records)] == [runs[1].id] * 2
