"""Params and metrics a task marks (issue 19, item 1): the explicit API and the @task short
form, on every executor (a real LocalCluster too) and in a %%tasks cell; bad values get a clear
error and lose nothing already recorded; ``run.experiments()`` gives them side by side."""

from __future__ import annotations

import gc
import math
import sys
from typing import Any

import pytest

import labloom
from labloom import (
    ExperimentValueError,
    Secret,
    ThreadExecutor,
    flow,
    log_metric,
    log_metrics,
    log_params,
    task,
    unmapped,
)
from labloom.core import experiment_values
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


def test_a_task_calls_way_straight_to_the_inbox_keeps_and_stores_what_the_sinks_way_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task call in the run's own process sends its logging calls straight to the run's
    inbox (``TaskContext.add_call``, session 34); the way through ``ExecutorSink.task_values``
    (the Dask workers' calls, and a context without ``add_call``) stays. Both keep, emit and
    store the same calls in the same order."""
    import dataclasses

    from labloom.core import events as ev

    def logged_run(straight: bool) -> tuple[Any, list[Any], list[Any]]:
        real = experiment_values.current_task
        if not straight:
            monkeypatch.setattr(experiment_values, "current_task",
                                lambda: (ctx := real()) and dataclasses.replace(ctx,
                                                                                add_call=None))
        try:
            run = sweep.run(depths=[3, 1, 2, 5], executor=ThreadExecutor(2))
        finally:
            monkeypatch.setattr(experiment_values, "current_task", real)
        assert run.state.value == "Completed"
        index = {tr.id: tr.map_index for tr in run.tasks}
        kept = [(index[tid], kind, values, step) for tid, kind, values, step, _ in
                run._engine.sink.logged]
        seen: list[ev.Event] = []
        run.subscribe(seen.extend, replay=True)()
        replayed = [(index[e.task_run_id], e.kind, e.values, e.step) for e in seen
                    if isinstance(e, ev.ExperimentValues)]
        return run, kept, replayed

    straight, kept, replayed = logged_run(True)
    through_sink, kept_too, replayed_too = logged_run(False)
    assert len(kept) == 4 * 5 and kept_too

    def by_child(calls: list[Any]) -> dict[int, list[Any]]:  # threads interleave children
        out: dict[int, list[Any]] = {}
        for index, *call in calls:
            out.setdefault(index, []).append(call)
        return out

    assert (repr(by_child(kept)) == repr(by_child(kept_too)) == repr(by_child(replayed))
            == repr(by_child(replayed_too)))  # by their text: NaN is not equal to itself
    assert by_child(kept)[0][0] == ["param", {"depth": 3, "criterion": "gini", "seed": 7}, None]

    def stored(run: Any) -> list[Any]:
        rows = labloom.experiments(run=run.id, sort="auc")
        return [{k: v for k, v in row.items() if k not in ("run_id", "duration", "task_run_id")}
                for row in rows]

    assert repr(stored(straight)) == repr(stored(through_sink))
    assert [row["auc"] for row in stored(straight)] == [0.1, 0.2, 0.3, 0.5]


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


@task(metrics=["auc"], retries=2)
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
    # Not retried: each attempt would do all its work again to return the same dict.
    assert tr.attempts == 1
    assert "not retried: ExperimentValueError" in run.logs("forgets")[-1].text


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


def test_names_seen_before_still_have_their_values_checked() -> None:
    """``record`` checks a name once (a metric per map child is a hot path), a value every
    time: a bad value under names seen before is refused whole, and the names kept are
    bounded for code that makes a name per call."""

    @task
    def again() -> None:
        for i in range(3):
            log_metrics(auc=0.5 + i, loss=1.0)
        log_metrics(auc=0.9, loss=[1.0])  # both names seen: refused, auc 0.9 not recorded

    @flow
    def f() -> Any:
        return again()

    run = f.run(executor="local")
    tr = run.tasks[0]
    assert tr.state.value == "Failed" and "metric 'loss' is a list" in tr.message
    (row,) = run.experiments()
    assert row["auc"] == 2.5 and row["loss"] == 1.0
    with pytest.raises(ExperimentValueError, match="names are at most 100"):
        log_metrics(auc=1.0, **{"x" * 101: 1.0})  # a name never seen among seen ones
    for i in range(experiment_values.MAX_SEEN + 10):
        log_metrics(**{f"m{i}": 1.0})
    assert len(experiment_values._seen_names) <= experiment_values.MAX_SEEN


def test_what_a_run_keeps_per_logging_call_is_no_work_for_the_garbage_collector() -> None:
    """A run keeps every logging call (for ``run.experiments()``); kept as event objects they
    were 100,000 more objects for each full collection of a run of 100,000 children to walk,
    and a fresh process makes about 20 of them (issue 19's recording cost)."""

    @task
    def logs(i: int) -> None:
        log_params(i=i, name="x")
        log_metrics(auc=i / 10, loss=float("nan"))
        log_metric("curve", 1.0, step=i)

    @flow
    def f() -> Any:
        return logs.map(range(20))

    run = f.run(executor="threads")
    gc.collect()
    gc.collect()  # a tuple is untracked once a collection has seen it
    sink = run._engine.sink
    assert len(sink.logged) == 60
    ids, _, values, _, times = sink._columns  # and kinds and steps: strings, ints
    kept = [*values, *ids, *times]
    assert len(kept) == 180 and not [item for item in kept if gc.is_tracked(item)]
    assert len(run.experiments()) == 20 and run.experiments()[3]["auc"] == 0.3


def test_a_logging_call_makes_one_object_for_the_garbage_collector_to_count() -> None:
    """Every object made and still alive counts toward the next young collection (one every
    ``gc_policy.RUN_THRESHOLD``): the values' dict is one, kept for the run; a bound method
    made per call to apply it later was a second (a map of 100,000 children logging once made
    some 20 young collections more than logging none, of 45)."""
    counted: list[float] = []

    @task
    def logs(n: int) -> None:
        gc.disable()  # the count only grows while nothing collects
        try:
            for x in range(50):  # first calls make what later calls reuse
                log_metrics(a=x, b=x * 0.5, c=float(x % 7))
            before = gc.get_count()[0]
            for x in range(n):  # with the first, fewer than a batch: none applied meanwhile
                log_metrics(a=x, b=x * 0.5, c=float(x % 7))
            counted.append((gc.get_count()[0] - before) / n)
        finally:
            gc.enable()

    @flow
    def f(n: int) -> None:
        logs(n)

    f.run(n=900, executor=ThreadExecutor(1))  # fills the free lists of tuples, as a long run
    run = f.run(n=900, executor=ThreadExecutor(1))
    assert run.state.value == "Completed"
    assert counted[-1] < 1.5, counted  # 2.0 before
    assert len(run._engine.sink.logged) == 950
    assert run.experiments()[0]["c"] == 3.0  # the last call's (899 % 7)


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
    with pytest.raises(labloom.UnknownColumnError, match="no column 'no-such-column'"):
        run.experiments(sort="no-such-column")  # a typo, once it ended
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
        # A metric that may come later is no typo while the run runs: rows as they are.
        assert len(run.experiments(sort="auc", desc=True)) == 2
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
    # are those saved with the result by the run that computed it (test_experiments_cached).
    assert rows[0]["total"] == 4 and rows[1]["total"] == 6
    assert (rows[0]["a"], rows[1]["b"]) == (1, 4)
    assert all(".pkl" not in str(value) for row in rows.values() for value in row.values())


def test_values_logged_by_a_call_its_run_gave_up_on_are_dropped_once_the_run_finished() -> None:
    """A timed-out call's thread cannot be stopped; what it logs after its run finished is
    dropped (review of session 34's straight way to the inbox: it was kept in memory, shown by
    run.experiments() and never stored)."""
    import threading
    import time

    go, logged = threading.Event(), threading.Event()

    @task(timeout=0.2)
    def slow() -> None:
        go.wait(300)  # opened once the run is over: the call logs after its run finished
        log_metrics(late=1.0)
        logged.set()

    @task
    def quick() -> None:
        log_metrics(early=2.0)

    @flow
    def outlived() -> None:
        quick()
        slow()

    run = outlived.run(executor=ThreadExecutor(2))
    assert run.state.value == "Failed"  # the timeout
    go.set()
    assert logged.wait(60)  # the waits here are guards
    inbox = run._engine.launcher.inbox
    deadline = time.monotonic() + 60
    while inbox._items and time.monotonic() < deadline:  # the nudger applies it (NUDGE)
        time.sleep(0.01)
    inbox.drain()
    assert [values for _, _, values, _, _ in run._engine.sink.logged] == [{"early": 2.0}]


def test_logging_calls_waiting_to_go_out_reach_every_subscriber_exactly_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logging calls wait to go out together (``ExecutorSink._send``, session 35): a late
    subscriber's replay sends those waiting first, so that it and the subscribers before it
    each get every call once; the calls still waiting at the run's end go out before it; the
    store and ``run.experiments()`` hold them all."""
    import threading
    import time

    from labloom.core import events as ev
    from labloom.core import inbox, sinks

    monkeypatch.setattr(sinks, "SEND_EVERY", 60.0)  # only a replay or the end sends them
    monkeypatch.setattr(inbox._nudger, "ask", lambda _inbox: None)  # nor the nudge
    go, release = threading.Event(), threading.Event()

    @task
    def child(i: int) -> int:
        go.wait(30)
        log_metrics(first=float(i))
        if i == 3:
            release.wait(30)
            log_metrics(second=float(i))
        return i

    @flow
    def four() -> Any:
        return child.map(range(4))

    run = four.run(executor=ThreadExecutor(4), background=True)
    early: list[ev.Event] = []
    late: list[ev.Event] = []
    try:
        deadline = time.monotonic() + 30
        while len(run.tasks) < 4:  # the map expanded: what ``early`` misses is nothing logged
            assert time.monotonic() < deadline, "the map never expanded"
            time.sleep(0.01)
        unsubscribe_early = run.subscribe(early.extend)
        with run._engine.lock:  # as if calls had just gone out: the next ones wait
            run._engine.sink._quiet_until = math.inf
        go.set()
        while sorted(tr.state.value for tr in run.tasks) != ["Completed"] * 3 + ["Running"]:
            assert time.monotonic() < deadline, "the children never ended"
            time.sleep(0.01)
        engine = run._engine
        with engine.lock:
            # Applied with their ends (child 3's first too, if a later report applied it),
            # and not sent yet.
            assert len(engine.sink._pending) >= 3
            unsubscribe_late = run.subscribe(late.extend, replay=True)
            assert not engine.sink._pending
    finally:
        go.set()
        release.set()
    run.wait()
    unsubscribe_early()
    unsubscribe_late()

    def calls(events: list[ev.Event]) -> list[tuple[str, dict[str, float]]]:
        found: list[tuple[str, dict[str, float]]] = []
        for event in events:
            if isinstance(event, ev.ExperimentCalls):
                found += [(tid, values) for tid, _, values, _, _ in event.calls]
            elif isinstance(event, ev.ExperimentValues):
                found.append((event.task_run_id, event.values))
        return sorted(found, key=repr)

    index = {tr.id: tr.map_index for tr in run.tasks}
    expected = sorted([(i, {"first": float(i)}) for i in range(4)] + [(3, {"second": 3.0})],
                      key=repr)
    for seen in (early, late):
        assert sorted(((index[tid], values) for tid, values in calls(seen)), key=repr) == expected
    assert len(engine.sink.logged) == 5
    rows = _by_index(run.experiments())
    assert rows[3]["first"] == 3.0 and rows[3]["second"] == 3.0
    stored = _by_index(labloom.experiments(run=run.id))
    assert [stored[i]["first"] for i in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert stored[3]["second"] == 3.0


def test_a_quiet_runs_logged_values_go_out_without_another_report() -> None:
    """A task logging and then working long: no report follows its call, so its values go
    out at the inbox's nudge (``Inbox._nudged`` calls the sink's ``flush``), while it runs."""
    import threading
    import time

    from labloom.core import events as ev

    go, release = threading.Event(), threading.Event()

    @task
    def long() -> int:
        go.wait(30)
        log_metric("loss", 0.5, step=0)
        release.wait(30)
        return 1

    @flow
    def one() -> Any:
        return long()

    run = one.run(executor="threads", background=True)
    seen: list[ev.Event] = []
    try:
        deadline = time.monotonic() + 30
        while not run.tasks:
            assert time.monotonic() < deadline, "the task run never appeared"
            time.sleep(0.01)
        unsubscribe = run.subscribe(seen.extend)
        go.set()
        while not any(isinstance(e, ev.ExperimentCalls) for e in seen):
            assert time.monotonic() < deadline, "the values never went out"
            time.sleep(0.01)
        assert run.tasks[0].state.value == "Running"
    finally:
        go.set()
        release.set()
    run.wait()
    unsubscribe()


def test_values_a_given_up_call_logged_just_before_a_retry_stay_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call its run gave up on (a timeout) logging after the run finished is dropped by the
    batch that applies it, not kept waiting to go out with later calls: a retry soon after
    (``ended`` None again) would otherwise send it as the new attempt's (review of session 35:
    it waited for the nudge, ``NUDGE`` seconds, and a retry within them stored it)."""
    import threading

    from labloom.core import inbox as inbox_module

    # No nudge: what the batch that applies the late call leaves waiting stays waiting (the
    # nudge would drop it ``NUDGE`` seconds later; a retry before that is what this checks).
    monkeypatch.setattr(inbox_module._nudger, "ask", lambda _inbox: None)
    go, logged = threading.Event(), threading.Event()
    calls: list[int] = []

    # The first call is held (go) past its timeout; the retry's must end within it: 2 s,
    # not 0.2, which a loaded machine could take to run its few lines.
    @task(timeout=2)
    def slow() -> None:
        calls.append(1)
        if len(calls) == 1:  # the attempt given up on
            go.wait(300)  # opened once the run is over
            log_metrics(late=1.0)
            logged.set()
            return
        log_metrics(again=2.0)

    @flow
    def outlived() -> None:
        slow()

    run = outlived.run(executor=ThreadExecutor(2))
    assert run.state.value == "Failed"  # the timeout
    go.set()
    assert logged.wait(60)  # a guard
    engine = run._engine
    inbox = engine.launcher.inbox
    inbox.drain()  # the late call applied (by this thread, or the one reporting its end)
    with engine.lock:
        assert not inbox._items
    run.retry()
    assert run.state.value == "Completed"
    # The new attempt's call only: no start over (experiments.RESET) either, as none of the
    # task run's calls went out before the rerun.
    assert [(kind, values) for _, kind, values, _, _ in engine.sink.logged] == [
        ("metric", {"again": 2.0})]
    assert [row.get("late") for row in labloom.experiments(run=run.id)] == [None]


def test_the_values_of_a_child_ending_after_a_quiet_while_go_out_with_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls wait to go out together only while others went out less than ``SEND_EVERY``
    seconds before: a sweep of slow children shows and stores each one's values as it ends,
    not at the nudge ``NUDGE`` seconds later (review of session 35: the first call of each
    quiet while waited for the nudge, 0.5 s, in the live view and the store)."""
    import threading
    import time

    from labloom.core import inbox, sinks

    monkeypatch.setattr(sinks, "SEND_EVERY", 0.01, raising=False)
    monkeypatch.setattr(inbox._nudger, "ask", lambda _inbox: None)  # no nudge sends them
    release = [threading.Event() for _ in range(3)]

    @task
    def slow(i: int) -> int:
        release[i].wait(30)
        log_metrics(loss=float(i))
        return i

    @flow
    def sweep() -> Any:
        return slow.map(range(3))

    run = sweep.run(executor=ThreadExecutor(3), background=True)
    engine = run._engine
    try:
        deadline = time.monotonic() + 30
        while len(run.tasks) < 3:
            assert time.monotonic() < deadline, "the map never expanded"
            time.sleep(0.01)
        for i in range(2):
            time.sleep(0.05)  # a quiet while, past SEND_EVERY
            release[i].set()
            child = next(tr for tr in run.tasks if tr.map_index == i)
            while child.state.value != "Completed":
                assert time.monotonic() < deadline, "the child never ended"
                time.sleep(0.005)
            with engine.lock:  # its end's batch is over: what it sent is out
                assert not engine.sink._pending, f"child {i}'s values wait"
    finally:
        for each in release:
            each.set()
    run.wait()
    assert sorted(row["loss"] for row in run.experiments()) == [0.0, 1.0, 2.0]

