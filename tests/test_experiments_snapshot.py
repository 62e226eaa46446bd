"""An ended run's experiment rows kept in the store (``store/experiment_snapshot.py``) and paged
from there (``server_extension/experiment_snapshot_pages.py``), on SQLite and PostgreSQL: every
page, sorted on any column and filtered, is the page of the full sort of the run's rows
(``core/experiments.order``) and of the row-by-row filter; a fresh server pages it without
reading the logged values; values logged after it make it stale; a running run is never
paged from one."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from labloom import flow, log_metrics, log_params, task
from labloom.core import experiment_filter as ef
from labloom.core import experiments as ex
from labloom.core.errors import LabloomError
from labloom.dag.experiment_rows import page_answer
from labloom.server_extension import experiment_rows
from labloom.store import experiment_snapshot as snap
from labloom.store import experiments as store_experiments
from labloom.store import open_store
from labloom.store.db import get_database
from labloom.store.schema import SCHEMA_VERSION, ensure_schema, version_of

pytest_plugins = ["pytest_jupyter.jupyter_server"]

N = 240


@task
def trial(i: int) -> None:
    log_params(depth=i % 4, kind="abc"[i % 3], mix=i % 7 if i % 2 else f"s{i % 5}",
               flag=i % 3 == 0)
    if i % 5 < 2:  # logged as None (max_depth=None), as text, or not at all
        log_params(opt=None if i % 5 == 0 else "x")
    if i % 6:  # some rows without an auc: last either way
        auc = (float("nan") if i % 11 == 0 else float("inf") if i % 13 == 0
               else float(i * 7919 % 10) / 10)  # ten values, tied many times over
        log_metrics(auc=auc)
    if i % 4 == 0:  # a name both a param (these rows) and a metric (the others)
        log_params(both=i)
    else:
        log_metrics(both=-i, loss=float(i % 9))


@flow
def sweep(n: int) -> Any:
    return trial.map(range(n))


def _ended(store: Any, run_id: str) -> Any:
    """The run's record once the store has its end (the writer may lag the run's return)."""
    deadline = time.monotonic() + 30
    while True:
        found = store.matching_runs(run_id)
        if (found and found[0].state not in ("Pending", "Running")) or time.monotonic() > deadline:
            return found[0]
        time.sleep(0.05)


def _now(store: Any) -> Any:
    """A ``later`` that runs at once, here: the pool's work, done before the page returns."""
    return lambda fn, *args: fn(store, *args)


SORTS = [None, "map_index", "index_order", "state", "duration", "task", "task_run_id", "run_id", "depth",
         "params.kind", "mix", "flag", "auc", "metrics.loss", "both", "params.both", "nosuch"]
FILTERS = ["", "auc>0.5", "depth=2 kind=b", "mix!=3", "B", "flag=true", "index>=100 index<120",
           "state=Completed auc<=0.3", "auc=NaN", "both>0", "s2", "auc=inf", "opt=None",
           "opt=", "none", "opt!=None"]


def _ids(answer: dict[str, Any]) -> list[str]:
    return [row["task_run_id"] for row in answer["rows"]]


def test_every_page_of_a_snapshot_is_the_full_sorts_and_filters(store_backend: str) -> None:
    run = sweep.run(n=N, executor="threads")
    with open_store() as store:
        record = _ended(store, run.id)
        reference = store_experiments.run_experiments(store, run.id)  # the full fold
        assert len(reference) == N
        pages = experiment_rows.ExperimentRows()
        first = pages.page(store, record, "auc", True, 10, 0, later=_now(store))
        assert "partial" not in first and first["total"] == N
        meta = snap.read_meta(store, run.id)
        assert meta is not None and meta.rows == N and meta.of(record)
        assert meta.columns == ex.columns(reference)
        assert not pages._runs  # the rows read to write it are dropped: pages come from it

        fresh = experiment_rows.ExperimentRows()  # a fresh server
        for sort in SORTS:
            for desc in (False, True):
                ordered = ex.order(reference, sort, desc)
                for offset in (0, 97, N - 5):
                    page = fresh.page(store, record, sort, desc, 20, offset)
                    want = ordered[offset : offset + 20]
                    assert _ids(page) == [r.task_run_id for r in want], (sort, desc, offset)
                    assert page["rows"] == [ex.jsonable(r.as_dict()) for r in want]
                    assert page["total"] == N and page["columns"] == meta.columns
                    assert page["next"] == (offset + 20 if offset + 20 < N else None)
        for query in FILTERS:
            for sort, desc in ((None, False), ("auc", True), ("mix", False), ("state", True)):
                page = fresh.page(store, record, sort, desc, 15, 3, query=query)
                want = ef.answer(reference, sort, desc, 15, 3, query)  # row by row
                assert _ids(page) == _ids(want), (query, sort, desc)
                assert page["total"] == want["total"] and page["columns"] == want["columns"]
        assert not fresh._runs  # never read the logged values
        # A snapshot written before it kept the views' order: that order from its columns.
        assert snap.read_order(store, meta, ex.INDEX_ORDER, True) is not None
        with store.conn.transaction():
            store.conn.execute("DELETE FROM experiment_columns WHERE run_id = ? AND name LIKE ?",
                               (run.id, f"order:%:{ex.INDEX_ORDER}"))
        older = experiment_rows.ExperimentRows()
        for desc in (False, True):
            page = older.page(store, record, ex.INDEX_ORDER, desc, 20, 97)
            want = ex.order(reference, ex.INDEX_ORDER, desc)[97:117]
            assert _ids(page) == [r.task_run_id for r in want], desc

    by_hand = {
        "depth=2 kind=b": sum(i % 4 == 2 and i % 3 == 1 for i in range(N)),
        "index>=100 index<120": 20,
        "auc=NaN": sum(bool(i % 6) and i % 11 == 0 for i in range(N)),
        "auc=inf": sum(bool(i % 6) and i % 11 != 0 and i % 13 == 0 for i in range(N)),
        # As the views show them: None logged reads "None", blank is not logged (both were
        # blank: "opt=None" kept no row, "opt=" the None rows too).
        "opt=None": N // 5, "none": N // 5, "opt=": N - 2 * N // 5,
    }
    with open_store() as store:
        for query, count in by_hand.items():
            assert fresh.page(store, record, None, False, 5, 0, query=query)["total"] == count


def test_a_nodes_rows_and_an_unknown_node_from_the_snapshot(store_backend: str) -> None:
    run = sweep.run(n=30, executor="local")
    with open_store() as store:
        record = _ended(store, run.id)
        node = next(n.id for n in store.nodes(run.id) if n.name == "trial")
        experiment_rows.ExperimentRows().page(store, record, None, False, 5, 0,
                                              later=_now(store))
        assert snap.read_meta(store, run.id) is not None
        fresh = experiment_rows.ExperimentRows()
        for task_name in (node, "trial"):
            page = fresh.page(store, record, "map_index", True, 3, 0, task=task_name,
                              query="depth=1")
            assert [r["map_index"] for r in page["rows"]] == [29, 25, 21]
            assert page["total"] == sum(i % 4 == 1 for i in range(30))
        with pytest.raises(experiment_rows.UnknownTask, match="no node or task 'nope'"):
            fresh.page(store, record, None, False, 3, 0, task="nope")


def test_values_logged_after_the_snapshot_make_it_stale(store_backend: str) -> None:
    run = sweep.run(n=12, executor="local")
    with open_store() as store:
        record = _ended(store, run.id)
        experiment_rows.ExperimentRows().page(store, record, None, False, 5, 0,
                                              later=_now(store))
        late = (run.id, f"{run.id}.x", "metric", None, time.time(), '{"auc": 99.0}')
        with store.conn.transaction():  # a row written one call at a time (an older writer)
            store.conn.execute(
                "INSERT INTO experiment_values (run_id, task_run_id, kind, step, time, data) "
                "VALUES (?,?,?,?,?,?)", late)
        fresh = experiment_rows.ExperimentRows()
        top = fresh.page(store, record, "auc", True, 1, 0, later=_now(store))
        assert top["total"] == 13 and top["rows"][0]["metrics"] == {"auc": 99.0}
        meta = snap.read_meta(store, run.id)  # written again, with the late value
        assert meta is not None and meta.rows == 13
        assert meta.cursor == snap.last_logged(store, run.id)


gate = threading.Event()


@task
def held(i: int) -> None:
    log_params(opt=None if i % 2 else "x")  # max_depth=None: no limit
    log_metrics(auc=i / 10)
    if i >= 4:  # two children held: two pool threads are enough for the others
        gate.wait(60)
        log_metrics(auc=1 + i / 10)


@flow
def held_sweep() -> Any:
    return held.map(range(6))


def test_a_running_runs_pages_stay_live_then_come_from_its_snapshot(store_backend: str
                                                                      ) -> None:
    gate.clear()
    run = held_sweep.run(executor="threads", background=True)
    pages = experiment_rows.ExperimentRows()
    try:
        with open_store() as store:
            deadline = time.monotonic() + 30
            while True:
                found = store.matching_runs(run.id)
                page = (pages.page(store, found[0], "auc", True, 10, 0, later=_now(store),
                                   query="auc>=0.1") if found else {"total": 0})
                if page["total"] == 5 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert [r["map_index"] for r in page["rows"]] == [5, 4, 3, 2, 1]
            # The filter reads a None as the views show it, "None" (it matched no row).
            nones = pages.page(store, found[0], "index_order", False, 10, 0,
                               later=_now(store), query="opt=None")
            assert [r["map_index"] for r in nones["rows"]] == [1, 3, 5]
            assert snap.read_meta(store, run.id) is None  # never for a running run
    finally:
        gate.set()
    run.wait()
    with open_store() as store:
        record = _ended(store, run.id)
        page = pages.page(store, record, "auc", True, 10, 0, later=_now(store),
                          query="auc>=0.1")
        assert [r["metrics"]["auc"] for r in page["rows"]] == [1.5, 1.4, 0.3, 0.2, 0.1]
        assert {r["state"] for r in page["rows"]} == {"Completed"}
        assert snap.read_meta(store, run.id) is not None and not pages._runs


def test_the_cells_view_filters_as_the_server_does() -> None:
    rows = [(ex.Experiment("r", f"r.{i}", "t", i, "Completed", 1.0, {"d": i % 2},
                           {"auc": i / 10}), "node") for i in range(10)]
    answer = page_answer(rows, {"sort": "auc", "desc": True, "limit": 3, "filter": "d=1"})
    assert answer["total"] == 5 and [r["map_index"] for r in answer["rows"]] == [9, 7, 5]
    with pytest.raises(LabloomError, match="filter must be text"):
        page_answer(rows, {"filter": 3})


def test_double_quotes_name_a_param_and_a_value_with_spaces() -> None:
    """A param named "learning rate" could not be filtered on (terms split at every space),
    nor a value "random forest": quotes hold the spaces, as in the view (js/src/expdata.js)."""
    rows = [ex.Experiment("r", f"r.{i}", "t", i, "Completed", 1.0,
                          {"learning rate": rate, "model": "random forest" if i else "tree"},
                          {"auc": i / 10}) for i, rate in enumerate((0.1, 0.01, 0.001))]

    def kept(query: str) -> list[int | None]:
        return [row["map_index"] for row in ef.answer(rows, None, False, 10, 0, query)["rows"]]

    assert kept('"learning rate">0.005') == [0, 1]
    assert kept('model="random forest" auc>0.15') == [2]
    assert kept('"random forest"') == [1, 2]
    assert kept("model=tree") == [0] and kept("forest") == [1, 2] and kept('""') == [0, 1, 2]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


async def test_rest_a_deep_sorted_filtered_page(jp_fetch: Any, store_backend: str) -> None:
    run = sweep.run(n=N, executor="threads")
    with open_store() as store:
        _ended(store, run.id)
        reference = store_experiments.run_experiments(store, run.id)
    want = ef.answer(reference, "auc", True, 10, 30, "depth!=0")
    # A filtered page is never partial: the first answer is the whole run's.
    response = await jp_fetch("labloom", "api", "runs", run.id, "experiments", params={
        "sort": "auc", "desc": "1", "limit": "10", "offset": "30", "filter": "depth!=0"})
    page = json.loads(response.body)
    assert "partial" not in page and page["total"] == want["total"] == sum(
        i % 4 != 0 for i in range(N))
    assert _ids(page) == _ids(want)
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("labloom", "api", "runs", run.id, "experiments",
                       params={"filter": "x" * (ef.MAX_FILTER + 1)})
    assert caught.value.code == 400


def test_a_store_from_before_snapshots_upgrades_and_its_old_runs_page(store_backend: str
                                                                      ) -> None:
    conn = get_database().connect(migrate=False)
    ensure_schema(conn, target=12)  # the schema before snapshots (version 13)
    with conn.transaction():
        conn.execute(
            "INSERT INTO flow_runs (id, flow_name, parameters, state, created, started, ended,"
            " host, pid, executor, origin) VALUES ('old1', 'legacy', '{}', 'Completed', 1.0,"
            " 1.0, 9.0, 'h', 1, 'threads', 'script')")
        for i in range(3):
            conn.execute(
                "INSERT INTO task_runs (id, run_id, task_name, map_index, state, attempts,"
                " created, started, ended) VALUES (?, 'old1', 'trial', ?, 'Completed', 1, 1.0,"
                " 1.0, ?)", (f"old1.{i}", i, 2.0 + i))
        calls = [[f"old1.{i}", "metric", {"auc": [0.5, float("nan"), 0.7][i]}, None, 1.0]
                 for i in range(3)]
        conn.execute(
            "INSERT INTO experiment_values (run_id, task_run_id, kind, step, time, data) "
            "VALUES ('old1', '', 'calls', NULL, 1.0, ?)", (json.dumps(calls),))
    conn.close()
    with open_store() as store:
        assert version_of(store.conn) == SCHEMA_VERSION
        record = store.matching_runs("old1")[0]
        page = experiment_rows.ExperimentRows().page(store, record, "auc", True, 10, 0,
                                                     later=_now(store))
        assert [r["map_index"] for r in page["rows"]] == [2, 0, 1]
        assert snap.read_meta(store, "old1") is not None
        again = experiment_rows.ExperimentRows().page(store, record, "duration", True, 10, 0)
        assert [r["map_index"] for r in again["rows"]] == [2, 1, 0]
        assert again["rows"][1]["metrics"] == {"auc": "NaN"}
