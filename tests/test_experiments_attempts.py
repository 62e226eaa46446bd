"""A task run's logged values are its last attempt's (issue 19): a timed-out attempt's thread
logging late, a failed attempt's metrics and curve points, a run retried with FlowRun.retry():
none of them shows as the values of the task run that completed, live, stored, in the cell's
view and in the Lab's curves alike; and its duration is its last attempt's, live and stored."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

import labloom
from labloom import flow, log_metric, log_metrics, task
from labloom.notebook.widget.view import RunView
from labloom.store import experiments as store_experiments
from labloom.store import open_store


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows as the list of dicts labloom gives without pandas, installed here or not."""
    monkeypatch.setitem(sys.modules, "pandas", None)


def _wait_for_file(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.01)


def _answers(view: RunView, sent: list[dict[str, Any]],
             *questions: dict[str, Any]) -> list[dict[str, Any]]:
    """The cell's view's answers to ``questions`` (what it sends to ``sent``), asked once its
    run has ended."""
    deadline = time.monotonic() + 60  # a guard
    while not view.read(lambda g: g.state.is_final) and time.monotonic() < deadline:
        time.sleep(0.02)
    sent.clear()
    for question in questions:
        view.handle(question)
    deadline = time.monotonic() + 60  # a guard
    while len(sent) < len(questions) and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(sent)


def _last_attempt_spans(run: Any) -> dict[str, float]:
    """Per task run, from the run's own events: its end less the time of its state before its
    last Running (the failed attempt's Retrying, or its new Pending when the run was rerun).
    Its last attempt's duration fits in it; one that took in an earlier attempt does not."""
    before_last: dict[str, float] = {}
    ended: dict[str, float] = {}
    previous: dict[str, float] = {}
    for event in run.events():
        kind = type(event).__name__
        if kind == "TaskRunCreated":
            previous[event.task_run_id] = event.time
        elif kind == "StateChanged":
            if event.state.value == "Running":
                before_last[event.task_run_id] = previous[event.task_run_id]
            elif event.state.is_final:
                ended[event.task_run_id] = event.time
            previous[event.task_run_id] = event.time
    return {key: ended[key] - before_last[key] for key in ended if key in before_last}


def _view_rows(view: RunView, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cell's Experiments view's rows, once its run has ended."""
    [page] = _answers(view, sent, {"event": "experiments", "node": None, "limit": 10, "req": "e"})
    return list(page["rows"])


def test_a_timed_out_attempt_logging_late_does_not_overwrite_its_retry_values(
    any_executor: Any, tmp_path: Path
) -> None:
    """A timed-out attempt's thread runs on (Python cannot stop it); what it logs once given
    up is not the task run's. It used to be kept while the run went on, so a first attempt
    finishing late overwrote its retry's metric with its own: the row showed auc 0.1 from an
    attempt that never completed, and a sweep's best was picked by it. On every executor
    (files, not thread events: a Dask worker is another process)."""
    go, logged = tmp_path / "go", tmp_path / "logged"

    @task(timeout=0.5, retries=1, retry_delay=0)
    def train() -> None:
        first = tmp_path / "first"
        if not first.exists():
            first.touch()
            _wait_for_file(go)  # given up meanwhile
            log_metrics(auc=0.1)
            logged.touch()
            return
        log_metrics(auc=0.9)
        go.touch()

    @task
    def hold() -> None:
        _wait_for_file(logged)  # the run stays open while the given-up attempt logs

    @flow
    def retrained() -> None:
        hold(wait_for=[train()])

    run = retrained.run(executor=any_executor)
    assert run.state.value == "Completed"
    assert [row["auc"] for row in run.experiments()] == [0.9]
    assert [row["auc"] for row in labloom.experiments(run=run.id)] == [0.9]
    said = [line.text for line in run.logs("train")]
    assert "[labloom] logging calls of attempt 1 came after the attempt timed out: not " \
        "recorded, nor will later ones be (only a live attempt's values count)" in said


def test_a_retried_task_runs_duration_is_its_last_attempts_live_and_stored_alike(
    executor: str,
) -> None:
    """The store keeps each attempt's start; the live run kept the first's, so a retried
    child's duration read 0.2 s in run.experiments() and 0.001 s from the store (and in the
    Lab's run tab after a reload)."""
    attempts: list[int] = []

    @task(retries=1, retry_delay=0)
    def fit() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(0.2)  # the failed attempt's time, not to be counted
            raise ValueError("diverged")
        log_metrics(auc=0.9)

    @flow
    def refit() -> None:
        fit()

    run = refit.run(executor=executor)
    assert run.state.value == "Completed" and len(attempts) == 2
    [live] = run.experiments()
    [stored] = labloom.experiments(run=run.id)
    assert live["duration"] == pytest.approx(stored["duration"], abs=1e-6)
    # Within its last attempt: the failed one's 0.2 s before it left out, however slow the
    # machine (the run's own times, not a bound on the clock).
    assert live["duration"] <= _last_attempt_spans(run)[live["task_run_id"]] + 1e-6


def _curve_then_fail(first: Path) -> None:
    """A first attempt: a curve to step 5 and an auc, then out of memory."""
    if not first.exists():
        first.touch()
        for step in range(6):
            log_metric("loss", 10.0 - step, step=step)
        log_metrics(auc=0.1)
        raise MemoryError("out of memory at step 5")


def test_a_retried_task_run_shows_its_last_attempts_values_and_curve(
    any_executor: Any, tmp_path: Path
) -> None:
    """A failed attempt's values are not the task run's: its step 5 outranked the retry's
    steps 0-2 (the row read loss 5.0, the stored curve had both attempts' points) and its auc
    stayed though the attempt that completed logged none. On every executor: the start over
    follows the failed attempt's calls, which reach the engine before its end (a Dask
    worker's travel ahead of its completion)."""
    first = tmp_path / "first"

    @task(retries=1, retry_delay=0)
    def train() -> None:
        _curve_then_fail(first)
        for step in range(3):
            log_metric("loss", 1.0 - step / 10, step=step)

    @flow
    def retrained() -> None:
        train()

    run = retrained.run(executor=any_executor)
    assert run.state.value == "Completed"
    [live] = run.experiments()
    [stored] = labloom.experiments(run=run.id)
    for row in (live, stored):
        assert row["loss"] == pytest.approx(0.8) and "auc" not in row
    assert live["duration"] == pytest.approx(stored["duration"], abs=1e-6)
    with open_store() as store:
        points, total = store_experiments.metric_points(store, run.id, "loss")
    assert total == 3 and [p["step"] for p in points] == [0, 1, 2]


def test_a_rerun_forgets_what_its_failed_children_logged(tmp_path: Path) -> None:
    """FlowRun.retry() reruns the failed children from attempt 1: what they logged in the
    failed run goes, in the run's rows, the store's and its curves, and in a view made
    after the rerun (the widget's fold); the children that completed keep theirs."""
    first = tmp_path / "first"

    @task
    def fit(i: int) -> None:
        if i == 1:
            _curve_then_fail(first)
        log_metric("loss", float(i), step=0)

    @flow
    def sweep() -> None:
        fit.map(range(3))

    run = sweep.run(executor="threads")
    assert run.state.value == "Failed"
    assert run.retry().state.value == "Completed"
    rows = {row["map_index"]: row for row in run.experiments()}
    stored = {row["map_index"]: row for row in labloom.experiments(run=run.id)}
    for by_index in (rows, stored):
        assert {i: row["loss"] for i, row in by_index.items()} == {0: 0.0, 1: 1.0, 2: 2.0}
        assert "auc" not in by_index[1]
    with open_store() as store:
        points, total = store_experiments.metric_points(store, run.id, "loss")
    assert total == 3 and sorted(p["value"] for p in points) == [0.0, 1.0, 2.0]

    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, sent.append, layout_engine="builtin")
    view.start()
    try:
        curves, page = _answers(view, sent,
                                {"event": "curves", "node": None, "metric": "loss", "req": "c"},
                                {"event": "experiments", "node": None, "limit": 10, "req": "e"})
        assert curves["total"] == 3 and sorted(p["value"] for p in curves["points"]) == [0, 1, 2]
        assert page["total"] == 3
        assert sorted(r["metrics"]["loss"] for r in page["rows"]) == [0.0, 1.0, 2.0]
    finally:
        view.close()


def test_a_rerun_of_more_failed_children_than_a_batch_forgets_each_ones_values(
    tmp_path: Path,
) -> None:
    """More task runs start over at once than the inbox applies in a batch (1,000): each one's
    start over is applied under the run's lock as the rerun resets it, never by a drain (and
    its launches) in the middle of the reset."""
    failed = tmp_path / "failed"

    @task
    def fit(i: int) -> None:
        log_metrics(auc=-1.0 if not failed.exists() else i / 10)
        if not failed.exists():
            raise ValueError("first run")

    @flow
    def sweep() -> None:
        fit.map(range(1200))

    run = sweep.run(executor="threads")
    assert run.state.value == "Failed"
    failed.touch()
    assert run.retry().state.value == "Completed"
    rows = run.experiments()
    assert len(rows) == 1200 and min(row["auc"] for row in rows) == 0.0
    assert sorted(row["auc"] for row in labloom.experiments(run=run.id)) == sorted(
        row["auc"] for row in rows)


@pytest.mark.usefixtures("killed_workers_come_back")  # conftest.py
def test_an_attempt_dask_runs_again_after_its_worker_died_shows_only_the_run_that_ended(
    dask_cluster: Any, tmp_path: Path
) -> None:
    """A worker dying mid-task (killed, out of memory: the nanny restarts it) makes Dask run
    the same attempt again on another worker, with no labloom retry: the values the dead run
    sent before it died are not the task run's either (its step 5 outranked the rerun's steps
    0-2, its auc stayed)."""
    import os

    from labloom import DaskExecutor

    first = tmp_path / "first"

    @task
    def train() -> None:
        if not first.exists():
            first.touch()
            for step in range(6):
                log_metric("loss", 10.0 - step, step=step)
            log_metrics(auc=0.1)
            time.sleep(1.0)  # the worker's sink sends them (every 0.2 s) before it dies
            os._exit(1)
        for step in range(3):
            log_metric("loss", 1.0 - step / 10, step=step)

    @flow
    def retrained() -> None:
        train()

    run = retrained.run(executor=DaskExecutor(cluster=dask_cluster))
    assert run.state.value == "Completed" and first.exists()
    assert [tr.attempts for tr in run.tasks] == [1]  # Dask's own rerun, not a labloom retry
    [live] = run.experiments()
    [stored] = labloom.experiments(run=run.id)
    for row in (live, stored):
        assert row["loss"] == pytest.approx(0.8) and "auc" not in row
    with open_store() as store:
        points, total = store_experiments.metric_points(store, run.id, "loss")
    assert total == 3 and [p["step"] for p in points] == [0, 1, 2]


@pytest.mark.usefixtures("killed_workers_come_back")  # conftest.py
def test_a_chunk_dask_runs_again_after_its_worker_died_keeps_each_childs_values_once(
    dask_cluster: Any, tmp_path: Path
) -> None:
    """A chunk of map children runs again whole when its worker dies: the children that ran
    before the death sent their curves already, and run again; each child's row and points
    are its run's that ended, counted once."""
    import os

    from labloom import DaskExecutor

    first = tmp_path / "first"

    @task(batch_size=4)
    def fit(i: int) -> None:
        for step in range(3):
            log_metric("loss", float(i), step=step)
        if i == 3 and not first.exists():
            first.touch()
            log_metric("loss", -1.0, step=5)
            time.sleep(1.0)  # the worker's sink sends the chunk's values before it dies
            os._exit(1)

    @flow
    def sweep() -> None:
        fit.map(range(4))

    run = sweep.run(executor=DaskExecutor(cluster=dask_cluster))
    assert run.state.value == "Completed" and first.exists()
    for rows in (run.experiments(), labloom.experiments(run=run.id)):
        assert sorted(row["loss"] for row in rows) == [0.0, 1.0, 2.0, 3.0]
    with open_store() as store:
        points, total = store_experiments.metric_points(store, run.id, "loss")
    assert total == 12 and sorted(p["value"] for p in points) == [v for v in (0.0, 1.0, 2.0, 3.0)
                                                                  for _ in range(3)]


def test_a_task_run_waiting_to_retry_or_cancelled_meanwhile_keeps_its_last_attempts_values(
    executor: str,
) -> None:
    """Until its next attempt starts, a task run's last attempt is the one that failed: its
    row stays while it waits out ``retry_delay`` (the view showed it vanish for the delay),
    and stays when the run is cancelled meanwhile (it was gone for good: the metrics that
    said why it failed, live and stored)."""

    @task(retries=1, retry_delay=60)
    def fit() -> None:
        log_metrics(auc=0.1)
        raise ValueError("diverged")

    @flow
    def refit() -> None:
        fit()

    run = refit.run(executor=executor, background=True)
    deadline = time.monotonic() + 20
    while run.tasks[0].state.value != "Retrying":
        assert time.monotonic() < deadline, "never retrying"
        time.sleep(0.01)
    assert [(row["state"], row["auc"]) for row in run.experiments()] == [("Retrying", 0.1)]
    run.cancel()
    run.wait()
    assert run.tasks[0].state.value == "Cancelled"
    for rows in (run.experiments(), labloom.experiments(run=run.id)):
        assert [(row["state"], row["auc"]) for row in rows] == [("Cancelled", 0.1)]


def test_the_cells_view_watching_a_retry_and_a_rerun_gives_the_last_attempts_duration(
    tmp_path: Path,
) -> None:
    """The cell's view, live through the run, kept a task run's first start: a retried
    child's duration there took in its failed attempt (0.2 s against run.experiments()' and
    the Lab's 0.001 s), and a child rerun by the widget's Retry button (``FlowRun.retry``)
    read from the first run's start to the rerun's end."""
    go, ledger = tmp_path / "go", tmp_path / "ledger"

    @task(retries=1, retry_delay=0)
    def fit(i: int) -> None:
        if i == 0 and not (tmp_path / "first").exists():
            (tmp_path / "first").touch()
            _wait_for_file(go)  # the view watches from here on
            time.sleep(0.2)  # the failed attempt's time, not to be counted
            raise ValueError("diverged")
        if i == 1:
            with open(ledger, "a") as out:
                out.write("x")
            if ledger.stat().st_size <= 2:  # its retry fails too: the run fails, is rerun
                raise ValueError("twice")
        log_metrics(auc=0.9)

    @task(retries=0)
    def gate(_: Any) -> None:
        pass

    @flow
    def refit() -> None:
        gate(fit.map(range(2)))

    run = refit.run(executor="threads", background=True)
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, sent.append, layout_engine="builtin")
    view.start()
    try:
        go.touch()
        run.wait()
        assert run.state.value == "Failed"
        time.sleep(0.3)  # the rerun's start is later than the first run's by this much
        assert run.retry().state.value == "Completed"
        live = {row["task_run_id"]: row["duration"] for row in run.experiments()}
        spans = _last_attempt_spans(run)  # the failed attempt's 0.2 s, the first run's, out
        assert len(live) == 2 and all(live[key] <= spans[key] + 1e-6 for key in live), (
            live, spans)
        shown = {row["task_run_id"]: row["duration"] for row in _view_rows(view, sent)}
        assert shown == pytest.approx(live, abs=1e-6)
    finally:
        view.close()


def test_the_cells_curves_skip_points_before_a_start_over_as_filtering_them_each_time_did(
) -> None:
    """The cell's view leaves the points before a task run's start over in place, skipped,
    and drops them once they are half of all (``ExperimentRows._forget``): the same points,
    in the same order, as filtering them out at each start over, for any interleaving."""
    import random

    from labloom.core.events import ExperimentCalls
    from labloom.dag.experiment_rows import ExperimentRows
    from labloom.dag.model import ViewGraph

    chance = random.Random(19)
    for _ in range(50):
        calls: list[tuple[str, str, dict[str, Any], int | None, float]] = []
        for at in range(chance.randrange(1, 300)):
            task_run_id = f"r.{chance.randrange(6)}"
            if chance.random() < 0.1:
                calls.append((task_run_id, "reset", {}, None, at))
            else:
                calls.append((task_run_id, "metric", {"loss": float(at)}, at, at))
        expected: list[tuple[str, float]] = []
        for task_run_id, kind, values, _step, _when in calls:
            if kind == "reset":
                expected = [point for point in expected if point[0] != task_run_id]
            else:
                expected.append((task_run_id, values["loss"]))
        rows = ExperimentRows()
        cut = chance.randrange(len(calls) + 1)  # in two batches, as the bus may deliver them
        for part in (calls[:cut], calls[cut:]):
            rows.apply([ExperimentCalls("r", *zip(*part, strict=True))] if part else [])
        points = rows.points("loss", None, ViewGraph())
        assert [(p["task_run_id"], p["value"]) for p in points] == expected


def test_a_flow_retry_keeps_what_its_completed_task_runs_logged(
    any_executor: Any, tmp_path: Path, store_backend: str
) -> None:
    """@flow(retries=...): the task runs that completed at the failed attempt are reused, so
    are their values. Their logging calls still on their way when the retry began were
    dropped as an earlier rerun's: a sweep retried for one lost GPU lost the rows of those
    that had completed (with retry_delay=0, the default, nearly always)."""
    failed = tmp_path / "failed"

    @task
    def train(depth: int) -> float:
        log_metrics(auc=depth / 10)
        if depth == 5 and not failed.exists():
            failed.touch()
            raise ConnectionError("the GPU was lost")
        return depth / 10

    @flow(retries=1)
    def sweep() -> Any:
        return train.map([3, 5, 8])

    run = sweep.run(executor=any_executor)
    assert run.state is labloom.State.COMPLETED and run.attempt == 2, run.message
    expected = [(0, 0.3), (1, 0.5), (2, 0.8)]
    assert sorted((row["map_index"], row["auc"]) for row in run.experiments()) == expected
    stored = labloom.experiments(flow="sweep")
    assert sorted((row["map_index"], row["auc"]) for row in stored) == expected
