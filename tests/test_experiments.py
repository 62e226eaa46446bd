"""Params and metrics a task marks (issue 19, item 1): the explicit API and the @task short
form, on every executor (a real LocalCluster too) and in a %%tasks cell; bad values get a clear
error and lose nothing already recorded; ``run.experiments()`` gives them side by side."""

from __future__ import annotations

import gc
import math
import sys
import tracemalloc
from typing import Any

import pytest

import labloom
from labloom import (
    ExperimentValueError,
    Secret,
    flow,
    log_metric,
    log_metrics,
    log_params,
    task,
    unmapped,
)
from labloom.core.call_log import CallLog
from labloom.core.experiments import page


@pytest.fixture(autouse=True)
def rows_as_lists(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests read rows as the list of dicts labloom gives without pandas (an optional
    dependency), whether or not it is installed here; ``..._with_pandas`` tests get it."""
    if "with_pandas" not in request.node.name:
        monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed



def _by_index(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["map_index"]: row for row in rows}


@task
def fit(depth: int, seed: int) -> float:
    log_params(depth=depth, criterion="gini", seed=seed)
    for epoch in range(3):
        log_metric("loss", 1.0 / (depth + epoch + 1), step=epoch)
    auc = depth / 10
    log_metrics(auc=auc, perfect=depth == 9, odd=float("nan"), worst=float("-inf"))
    return auc


@flow
def sweep(depths: list[int]) -> Any:
    return fit.map(depths, unmapped(7))


def test_logged_values_come_back_side_by_side(executor: str) -> None:
    run = sweep.run(depths=[3, 1, 2], executor=executor)
    assert run.state.value == "Completed"
    rows = _by_index(run.experiments())
    assert set(rows) == {0, 1, 2}
    row = rows[0]
    assert row["task"] == "fit" and row["state"] == "Completed" and row["duration"] >= 0
    assert row["depth"] == 3 and row["criterion"] == "gini" and row["seed"] == 7
    assert row["auc"] == 0.3 and row["perfect"] is False
    assert row["loss"] == pytest.approx(1 / 6)  # the curve's last point
    assert math.isnan(row["odd"]) and row["worst"] == -math.inf
    best = run.experiments(sort="auc", desc=True)
    assert [r["depth"] for r in best] == [3, 2, 1]


def test_values_travel_from_dask_workers() -> None:
    distributed = pytest.importorskip("distributed")
    from labloom import DaskExecutor

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=":0") as cluster:
        executor = DaskExecutor(cluster=cluster)
        run = sweep.run(depths=[1, 2], executor=executor)
        short = grid.run(executor=executor)  # @task(params=True, metrics=...) on a worker
        chunked = grid_in_chunks.run(executor=executor)  # several children per Dask task
    assert run.state.value == "Completed"
    rows = _by_index(run.experiments())
    assert rows[1]["auc"] == 0.2 and rows[1]["depth"] == 2 and math.isnan(rows[1]["odd"])
    for done in (short, chunked):
        assert done.state.value == "Completed"
        by_index = _by_index(done.experiments())
        assert by_index[1]["depth"] == 2 and by_index[1]["fold"] == 1
        assert by_index[1]["auc"] == 0.2


@task(params=True, metrics=["auc", "acc"])
def score(config: dict[str, Any], fold: int, data: str) -> dict[str, Any]:
    return {"auc": config["depth"] / 10, "acc": 0.5, "model": object()}


@flow
def grid() -> Any:
    configs = [{"depth": d, "max_features": None} for d in (1, 2)]
    return score.map(configs, [0, 1], unmapped("big data"))


@flow
def grid_in_chunks() -> Any:
    configs = [{"depth": d, "max_features": None} for d in (1, 2)]
    return score.with_options(batch_size=2).map(configs, [0, 1], unmapped("big data"))


def test_the_short_form_takes_the_mapped_elements_and_the_returned_metrics() -> None:
    run = grid.run(executor="threads")
    assert run.state.value == "Completed"
    rows = _by_index(run.experiments())
    assert rows[1]["depth"] == 2 and rows[1]["fold"] == 1 and rows[1]["max_features"] is None
    assert rows[1]["auc"] == 0.2 and rows[1]["acc"] == 0.5
    assert "data" not in rows[1] and "model" not in rows[1]  # unmapped, not asked for


def test_short_form_options_are_checked_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"metrics must be a list of names such as \['auc'\]"):
        task(metrics="auc")(lambda: None)
    with pytest.raises(TypeError, match="params must be True"):
        task(params="yes")(lambda: None)
    with pytest.raises(TypeError, match="metric name must be a non-empty string"):
        task(metrics=[""])(lambda: None)
    assert task(metrics=("a",))(lambda: None).with_options(retries=1).metrics == ("a",)


@task(metrics=["auc"])
def forgets() -> dict[str, float]:
    log_params(tried=1)
    return {"acc": 1.0}


@flow
def forgetful() -> Any:
    return forgets()


def test_a_returned_dict_without_the_metric_fails_the_task_clearly() -> None:
    run = forgetful.run(executor="local")
    tr = run.tasks[0]
    assert tr.state.value == "Failed"
    assert "returned dict has no 'auc'" in tr.message
    assert run.experiments()[0]["tried"] == 1  # what was logged before stays


class Model:
    pass


BAD: list[tuple[Any, str]] = [
    ([1, 2], "metric 'bad' is a list"),
    ({"a": 1}, "metric 'bad' is a dict"),
    (Model(), "metric 'bad' is a test_experiments.Model"),
    (None, "metric 'bad' is a NoneType"),
    (Secret("hunter2"), "metric 'bad' is a secret"),
]


@pytest.mark.parametrize(("value", "message"), BAD)
def test_a_bad_value_is_a_clear_error_and_loses_nothing(value: Any, message: str) -> None:
    @task
    def bad() -> None:
        log_params(lr=0.1)
        log_metrics(auc=0.9)
        log_metrics(more=1, bad=value)  # refused whole: "more" is not recorded either

    @flow
    def attempt() -> Any:
        return bad()

    run = attempt.run(executor="local")
    tr = run.tasks[0]
    assert tr.state.value == "Failed"
    assert message in tr.message and "ExperimentValueError" in tr.traceback
    assert "hunter2" not in tr.message + tr.traceback
    (row,) = run.experiments()
    assert row["lr"] == 0.1 and row["auc"] == 0.9 and "more" not in row


def test_bad_names_steps_and_long_strings() -> None:
    with pytest.raises(ExperimentValueError, match="step must be a whole number >= 0"):
        log_metric("loss", 1.0, step=-1)
    with pytest.raises(ExperimentValueError, match="names are at most 100"):
        log_params(**{"x" * 101: 1})
    with pytest.raises(ExperimentValueError, match="takes a dict or keywords"):
        log_metrics([("auc", 1)])  # type: ignore[arg-type]
    log_metrics(auc=1.0)  # outside a task run: checked, then nothing to record it in

    @task
    def long() -> None:
        log_params(note="n" * 500)

    @flow
    def f() -> Any:
        return long()

    run = f.run(executor="local")
    assert run.experiments()[0]["note"] == "n" * 200
    assert any("cut to 200 of its 500 characters" in line.text for line in run.logs())


def test_what_a_run_keeps_per_logging_call_is_small_and_no_work_for_the_collector() -> None:
    """A run keeps every logging call (for ``run.experiments()`` and a late subscriber); kept
    as dicts, tuples, times and ids that was about 420 bytes a call of three metrics, more than
    the engine keeps for the task run itself, and what a run of 100,000 children holds in
    memory slows every task run of it (issue 19's 1.10x target). Packed, it is under 100
    bytes, and no object per call for the garbage collector to walk."""

    @task
    def logs(i: int) -> None:
        log_metrics(a=i, b=i * 0.5, c=float(i % 7))

    @flow
    def f(n: int) -> Any:
        return logs.map(range(n))

    f.run(n=10, executor="threads")  # imports, first calls: not counted
    n = 5000
    gc.collect()
    tracemalloc.start()
    try:
        run = f.run(n=n, executor="threads")
        gc.collect()
        sink = run._engine.sink
        before = tracemalloc.get_traced_memory()[0]
        del sink._calls  # what the run keeps for its logging calls, and nothing else
        kept = before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept / n < 100, f"{kept / n:.0f} bytes kept per logging call"
    run = f.run(n=n, executor="threads")
    gc.collect()
    assert len(run._engine.sink.logged) == n
    # Objects the collector walks, three levels down from the kept calls: a few, not n.
    frontier: list[Any] = [run._engine.sink._calls]
    walked: dict[int, Any] = {}
    for _ in range(3):
        frontier = [item for item in gc.get_referents(*frontier) if gc.is_tracked(item)]
        walked.update((id(item), item) for item in frontier)
    assert len(walked) < 50, list(walked.values())[:50]
    rows = _by_index(run.experiments())
    assert len(rows) == n and rows[3] == {**rows[3], "a": 3, "b": 1.5, "c": 3.0}


def test_the_kept_calls_read_back_as_logged() -> None:
    """Every type as logged (an int stays an int, big ints exact, a bool a bool, NaN, inf and
    -0.0 kept), names in order, steps (None, 0, past 64 bits), any task run id."""
    calls: list[tuple[str, float, str, dict[str, Any], int | None]] = [
        ("r.1", 1.5, "metric", {"a": 1, "b": 0.5, "c": float("nan")}, None),
        ("r.0", 2.5, "param", {"s": "x", "n": None, "big": 2**70, "t": True, "f": False,
                               "edge": -(2**53), "past": 2**53 + 1}, 3),
        ("r.01", 3.5, "metric", {"inf": float("-inf"), "z": -0.0}, 2**64),
        ("plain", 4.0, "metric", {}, 0),
        ("a.b.12345678901234567890", 5.0, "metric", {"i": 7, "f": 7.0}, None),
        ("r.2", 6.0, "metric", {"f": 7.0, "i": 7}, 1),
    ]
    log = CallLog()
    for task_run_id, when, kind, values, step in calls:
        log.add(*log.shape(task_run_id, kind, values), when, values, step)
    back = list(log)
    assert len(log) == len(back) == len(calls)
    for logged, read in zip(calls, back, strict=True):
        assert read[:3] == logged[:3] and read[4] == logged[4]
        assert list(read[3]) == list(logged[3])  # the names in their order
        for name, value in logged[3].items():
            again = read[3][name]
            assert type(again) is type(value), (name, value, again)
            if isinstance(value, float):
                assert math.copysign(1, again) == math.copysign(1, value)
                assert again == value or (math.isnan(value) and math.isnan(again))
            else:
                assert again == value


def test_runs_that_log_nothing_have_no_rows_and_sorting_puts_missing_last() -> None:
    @task
    def quiet(x: int) -> int:
        return x

    @flow
    def f() -> Any:
        return quiet.map([1, 2])

    quiet_run = f.run(executor="local")
    assert quiet_run.experiments() == []
    assert quiet_run._engine.sink.experiments == []  # nothing kept per task run
    run = sweep.run(depths=[1], executor="local")
    assert len(run.experiments(sort="no-such-column")) == 1
    from labloom.core.experiments import Experiment

    a, b, c = Experiment("r", "a"), Experiment("r", "b"), Experiment("r", "c")
    a.metrics["auc"], b.metrics["auc"] = float("nan"), 0.5
    c.metrics["auc"] = 0.7
    assert [e.task_run_id for e in page([a, b, c], "auc", desc=True)] == ["c", "b", "a"]
    assert [e.task_run_id for e in page([a, b, c], "auc")] == ["b", "c", "a"]


def test_tasks_cells_log_too(ip: Any) -> None:
    ip.run_cell_magic("tasks", "", (
        "def trial(lr):\n"
        "    import labloom\n"
        "    labloom.log_params(lr=lr)\n"
        "    labloom.log_metrics(auc=lr * 2)\n"
        "    return lr\n"
    ))
    ip.run_cell_magic("flow", "trials --no-widget", "out = trial.map([0.1, 0.2])\n")
    run = ip.user_ns["trials"]
    assert ip.user_ns["out"] == [0.1, 0.2]
    last = labloom.experiments(flow="trials", sort="lr")
    assert [(r["lr"], r["auc"]) for r in last] == [(0.1, 0.2), (0.2, 0.4)]
    assert run is not None


def test_a_late_subscriber_is_replayed_the_values_so_far() -> None:
    from labloom.core import events as ev

    run = sweep.run(depths=[1, 2], executor="local")
    seen: list[ev.Event] = []
    unsubscribe = run.subscribe(seen.extend, replay=True)
    unsubscribe()
    logged = [e for e in seen if isinstance(e, ev.ExperimentValues)]
    assert len(logged) == 2 * 5  # per child: params, three loss points, the metrics
    assert logged[-1].kind == "metric" and logged[-1].values["auc"] == 0.2


def test_a_list_of_dicts_without_pandas() -> None:
    run = sweep.run(depths=[2, 1], executor="local")
    rows = run.experiments(sort="auc")  # pandas blocked by rows_as_lists
    assert isinstance(rows, list) and [r["depth"] for r in rows] == [1, 2]


def test_a_dataframe_with_pandas() -> None:  # the name: rows_as_lists leaves pandas
    pandas = pytest.importorskip("pandas")
    run = sweep.run(depths=[2, 1], executor="local")
    frame = run.experiments(sort="auc", desc=True)
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns[:6]) == ["run_id", "task_run_id", "task", "map_index", "state",
                                       "duration"]
    assert list(frame["depth"]) == [2, 1] and frame["odd"].isna().all()
    empty = pytest.importorskip("pandas").DataFrame  # an empty run: no rows, fixed columns
    assert isinstance(grid_nothing().experiments(), empty)


def grid_nothing() -> Any:
    @task
    def quiet() -> int:
        return 1

    @flow
    def silent() -> Any:
        return quiet()

    return silent.run(executor="local")


def test_rows_are_live_while_the_run_runs() -> None:
    import threading
    import time

    release = threading.Event()

    @task
    def slow(i: int) -> int:
        log_metrics(progress=i)
        if i == 1:
            release.wait(30)
        return i

    @flow
    def waiting() -> Any:
        return slow.map([0, 1])

    run = waiting.run(executor="threads", background=True)
    try:
        deadline = time.monotonic() + 30
        while len(run.experiments()) < 2:
            assert time.monotonic() < deadline, "values never arrived"
            time.sleep(0.02)
        states = {r["map_index"]: r["state"] for r in run.experiments()}
        assert states[1] == "Running"
    finally:
        release.set()
    run.wait()
    assert {r["state"] for r in run.experiments()} == {"Completed"}


@task(cache=True, params=True, metrics=["total"])
def cached_sum(a: int, b: int) -> dict[str, int]:
    return {"total": a + b}


@flow
def cached_sums() -> Any:
    return cached_sum.map([1, 2], [3, 4])


def test_a_cached_task_run_records_its_metrics_and_never_the_results_path() -> None:
    first = cached_sums.run(executor="threads")
    assert [row["a"] for row in first.experiments()] == [1, 2]
    again = cached_sums.run(executor="threads")
    assert {tr.state.value for tr in again.tasks} == {"Cached"}
    rows = _by_index(again.experiments())
    # The cached call receives the stored result's path, not the task's inputs: its params
    # are not taken from there (they were recorded with the run that computed the result).
    assert rows[0]["total"] == 4 and rows[1]["total"] == 6
    assert all(".pkl" not in str(value) for row in rows.values() for value in row.values())
