"""Each logging call carries its attempt, and a call of an attempt that is no longer its task
run's is dropped where calls are applied (issue 19, session 37): the last windows the start
over's reset left open (a given-up thread that read the real ``add_call`` just before its swap,
a Dask worker's call in flight as the retry starts) land after the reset and no longer show as
the new attempt's. With that, a task run that logged nothing starts over without a reset."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import labloom
from labloom import flow, log_metrics, task
from labloom.cli import main
from labloom.core.experiments import RESET
from labloom.core.logs import current_task
from labloom.store import experiments as store_experiments
from labloom.store import open_store


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows as the list of dicts labloom gives without pandas, installed here or not."""
    monkeypatch.setitem(sys.modules, "pandas", None)


def _wait_for(done: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.01)


def _said_late(run: Any, capsys: pytest.CaptureFixture[str], task_name: str | None = "train",
               ) -> list[str]:
    """labloom's lines in a task's logs (None: the run's) about logging calls that came
    late, live (``run.logs``) and stored (``labloom logs``) alike."""
    live = [line.text for line in run.logs(task_name) if "came after" in line.text]
    capsys.readouterr()
    named = [] if task_name is None else ["--task", task_name]
    assert main(["logs", run.id, *named, "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)["lines"]
    assert [line["text"] for line in stored if "came after" in line["text"]] == live
    return live


NOT_RECORDED = ": not recorded, nor will later ones be (only a live attempt's values count)"


def _stored_resets(run_id: str) -> list[str]:
    """The task run ids of the run's stored calls of kind reset."""
    with open_store() as store:
        logged, _cursor, _more = store_experiments.read_logged(store, run_id)
    return [task_run_id for task_run_id, kind, *_ in logged if kind == RESET]


def test_a_given_up_thread_that_read_add_call_before_its_swap_does_not_log_into_the_retry(
    executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The swap of a timed-out attempt's ``add_call`` for a dropper misses a thread that read
    the real one a few bytecodes before: held there (an event) until the retry logged and
    its reset went out, its call landed after the reset, and the row read the given-up
    attempt's auc 0.1 in place of the retry's 0.9, live and stored. Dropped, it is said in
    the task run's logs (it left no trace: a user missing a metric could not tell why)."""
    go, landed = threading.Event(), threading.Event()
    attempts: list[int] = []

    # Attempt 1 is held (go) until attempt 2 runs, so only its timeout ends it; attempt 2
    # waits under that same timeout for attempt 1's thread to wake and log: 2 s, not 0.5,
    # so that a loaded machine's slow hand-over does not time the retry out too.
    @task(timeout=2, retries=1, retry_delay=0)
    def train() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            ctx = current_task()
            assert ctx is not None and ctx.add_call is not None
            real = ctx.add_call

            def read_before_the_swap(call: tuple[Any, ...]) -> None:
                go.wait(20)  # given up meanwhile: the swap comes too late for this call
                real(call)
                landed.set()

            ctx.add_call = read_before_the_swap
            log_metrics(auc=0.1)
            return
        log_metrics(auc=0.9)
        go.set()
        assert landed.wait(20)  # the stale call is in before this attempt's end

    @flow
    def retrained() -> None:
        train()

    run = retrained.run(executor=executor)
    assert run.state.value == "Completed" and len(attempts) == 2
    assert [row["auc"] for row in run.experiments()] == [0.9]
    assert [row["auc"] for row in labloom.experiments(run=run.id)] == [0.9]
    assert _said_late(run, capsys) == [
        "[labloom] 1 logging call of attempt 1 came after the task run started over "
        f"(attempt 2){NOT_RECORDED}"]


def test_a_dask_workers_call_of_attempt_1_delivered_after_attempt_2_started_is_dropped(
    dask_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker's message is forwarded by the scheduler, on its own time: a call of attempt 1
    delivered once attempt 2 runs and logged (sent here on the run's own topic, as a worker
    sends it) was kept as attempt 2's and its auc 0.1 won. Dropped, two such calls are said
    in one line of the task run's logs."""
    from distributed import Client

    from labloom import DaskExecutor
    from labloom.executors.dask_events import topic

    first, go, landed = tmp_path / "first", tmp_path / "go", tmp_path / "landed"

    @task(retries=1, retry_delay=0)
    def train() -> None:
        if not first.exists():
            first.touch()
            raise ValueError("diverged")
        log_metrics(auc=0.9)
        go.touch()
        _wait_for(landed.exists, "landed")

    @flow
    def retrained() -> None:
        train()

    run = retrained.run(executor=DaskExecutor(cluster=dask_cluster), background=True)
    _wait_for(go.exists, "attempt 2")
    [tr] = run.tasks
    assert tr.attempts == 2
    _wait_for(lambda: [row.get("auc") for row in run.experiments()] == [0.9], "attempt 2's auc")
    with Client(dask_cluster, set_as_default=False) as client:
        now = time.time()
        client.log_event(topic(run.id), [
            ["v", tr.id, now, "metric", {"auc": 0.1}, None, 1],
            ["v", tr.id, now, "param", {"depth": 3}, None, 1, 0],
            ["l", tr.id, logging.INFO, now, "attempt 1's call delivered"],  # applied after it
        ])
        _wait_for(lambda: any("delivered" in line.text for line in run.logs("train")),
                  "the late call")
    landed.touch()
    run.wait()
    assert run.state.value == "Completed"
    assert [row["auc"] for row in run.experiments()] == [0.9]
    assert [row["auc"] for row in labloom.experiments(run=run.id)] == [0.9]
    assert [row.get("depth") for row in run.experiments()] == [None]
    assert _said_late(run, capsys) == [
        "[labloom] 2 logging calls of attempt 1 came after the task run started over "
        f"(attempt 2){NOT_RECORDED}"]


def test_a_retry_or_rerun_of_a_task_run_that_logged_nothing_stores_no_reset(
    executor: str, tmp_path: Path
) -> None:
    """A start over sends a reset only for a task run whose calls went out: most retried
    task runs of a flow log nothing, and each one's reset was a call stored and sent to every
    view. One that logged still forgets what it logged (retried, then rerun)."""
    ledger = tmp_path / "ledger"

    def fails_first(times: int) -> None:
        with open(ledger, "a") as out:
            out.write("x")
        if ledger.stat().st_size <= times:
            raise ValueError("not yet")

    @task(retries=1, retry_delay=0)
    def quiet(i: int) -> None:
        if i == 0:
            fails_first(2)  # both attempts fail: the rerun starts it over again

    @task(retries=1, retry_delay=0)
    def loud(_: Any) -> None:
        log_metrics(auc=0.1 if not (tmp_path / "loud").exists() else 0.9)
        if not (tmp_path / "loud").exists():
            (tmp_path / "loud").touch()
            raise ValueError("diverged")

    @flow
    def sweep() -> None:
        loud(quiet.map(range(3)))

    run = sweep.run(executor=executor)
    assert run.state.value == "Failed"
    assert _stored_resets(run.id) == []
    assert run.retry().state.value == "Completed"
    [loud_run] = [tr for tr in run.tasks if tr.name == "loud"]
    assert _stored_resets(run.id) == [loud_run.id]  # its retry; the rerun's quiet one: none
    for rows in (run.experiments(), labloom.experiments(run=run.id)):
        assert [(row["task"], row["auc"]) for row in rows] == [("loud", 0.9)]


def test_a_failed_attempts_own_calls_gone_with_its_retry_are_not_said_to_have_come_late(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed attempt's calls, applied before its end but still waiting to go out as its
    retry starts over (a batch goes out at most every ``sinks.SEND_EVERY`` s), are dropped
    with it, as its reset drops them in every reader: they came in time, nothing to say.
    Said as late, a map whose children each log, fail once and are retried carried a false
    line in most of them."""

    @task(retries=1, retry_delay=0)
    def train(i: int) -> None:
        first = tmp_path / str(i)
        log_metrics(auc=0.9 if first.exists() else 0.1)
        if not first.exists():
            first.touch()
            raise ValueError("diverged")

    @flow
    def sweep() -> None:
        train.map(range(200))

    run = sweep.run(executor=executor)
    assert run.state.value == "Completed"
    assert {row["auc"] for row in run.experiments()} == {0.9}
    assert _said_late(run, capsys, None) == []


def test_a_line_labloom_says_of_a_task_run_from_another_tasks_thread_is_in_its_logs_only(
    executor: str,
) -> None:
    """The calls said late go out with a batch of reports, applied by whichever thread holds
    the run's lock, a task's too (``Inbox.add`` when a task logs in a tight loop): the
    line's copy on the process's log (``ExecutorSink.warn``) was captured as a line of the
    task running there, "labloom: [labloom] other: ...", in a task run it says nothing of."""
    from labloom.core.sink_registry import sink_for

    @task
    def other() -> None:
        pass

    @task
    def train(_: Any) -> None:
        ctx = current_task()
        assert ctx is not None
        sink: Any = sink_for(ctx.run_id)
        [said_of] = [tr for tr in sink._engine.graph.task_runs if tr.name == "other"]
        sink.warn(said_of, "a line about other, said in train's thread")

    @flow
    def two() -> None:
        train(other())

    run = two.run(executor=executor)
    assert run.state.value == "Completed"
    assert [line.text for line in run.logs("other")] == [
        "[labloom] a line about other, said in train's thread"]
    assert [line.text for line in run.logs("train")] == []


def _marked(columns: list[dict[str, Any]]) -> dict[str, bool]:
    """Each metric column's curve mark (``"steps": true``): what the curve selector offers."""
    return {c["name"]: c.get("steps", False) for c in columns if c["kind"] == "metric"}


def _cell_marks(view: Any, sent: list[dict[str, Any]], req: str) -> dict[str, bool]:
    """The marks of the cell's view's page of every row; the list of curve names the cell's
    answer once had besides is gone: the marks alone say it, as on the REST pages."""
    view.handle({"event": "experiments", "node": None, "limit": 10, "req": req})
    _wait_for(lambda: any(m.get("req") == req for m in sent), "the cell's answer")
    [answer] = [m for m in sent if m.get("req") == req]
    assert "steps" not in answer
    return _marked(answer["columns"])


def _stored_run(store: Any, run_id: str, state: str) -> Any:
    """The run's record once the store has its end in ``state`` (the writer is behind)."""
    deadline = time.monotonic() + 30
    while not (found := store.matching_runs(run_id)) or found[0].state != state:
        assert time.monotonic() < deadline, f"the store never had the run's end ({state})"
        time.sleep(0.05)
    return found[0]


def _page_marks(pages: Any, store: Any, run: Any) -> dict[str, bool]:
    """The marks of the Lab run tab's first page (``GET runs/{id}/experiments``)."""
    now = lambda fn, *args: fn(store, *args)  # noqa: E731  (the pool's work, at once)
    return _marked(pages.page(store, run, None, False, 10, 0, later=now)["columns"])


def test_the_columns_mark_the_metrics_with_curve_points_in_the_cell_and_from_the_store(
    store_backend: str,
) -> None:
    """The step curves' selector lists the metrics the columns mark (``"steps": true``):
    those with points since their task run last started over. grad and auc, whose only points
    a failed attempt logged, are not marked (grad is gone; auc is its retry's final value),
    loss is, also when its last value came without a step; alike in the cell's answer, from
    the server's rows of a run and from the run's snapshot."""
    from labloom.notebook.widget.view import RunView
    from labloom.server_extension import experiment_rows
    from labloom.store import experiment_snapshot as snap

    attempts: list[int] = []

    @task(retries=1, retry_delay=0)
    def train() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            for step in range(3):
                log_metrics(grad=1.0, auc=0.1, step=step)
            raise ValueError("diverged")
        for step in range(3):
            log_metrics(loss=1.0 - step / 10, step=step)
        log_metrics(loss=0.5, auc=0.9)

    @flow
    def retrained() -> None:
        train()

    run = retrained.run(executor="threads")
    assert run.state.value == "Completed"

    wanted = {"loss": True, "auc": False}
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, sent.append, layout_engine="builtin")
    view.start()
    try:
        assert _cell_marks(view, sent, "e") == wanted
    finally:
        view.close()
    with open_store() as store:
        stored = _stored_run(store, run.id, "Completed")
        assert _page_marks(experiment_rows.ExperimentRows(), store, stored) == wanted
        meta = snap.read_meta(store, run.id)
        assert meta is not None and _marked(meta.columns) == wanted
        assert _page_marks(experiment_rows.ExperimentRows(), store, stored) == wanted


def test_a_rerun_unmarks_the_curve_only_its_failed_run_logged_live_and_in_the_lab(
    tmp_path: Path, store_backend: str,
) -> None:
    """A child logs a curve of lr and fails; the run's rerun (``FlowRun.retry``) logs lr
    once, without a step: lr is marked before the rerun and not after (its points went with
    the failed run), in the cell's view open through both, in the Lab's pages of rows kept
    from before the rerun, and from the rerun's snapshot; loss, the other child's curve,
    stays marked throughout. The cell's list of curve names was made again from its points
    after such a start over; the marks come from the rows, which the start over replaced."""
    from labloom.notebook.widget.view import RunView
    from labloom.server_extension import experiment_rows
    from labloom.store import experiment_snapshot as snap

    failed = tmp_path / "failed"

    @task
    def tune(i: int) -> None:
        if i == 0:
            for step in range(3):
                log_metrics(loss=1.0 - step / 10, step=step)
            return
        if not failed.exists():
            failed.touch()
            for step in range(3):
                log_metrics(lr=0.1 * step, step=step)
            raise ValueError("diverged")
        log_metrics(lr=0.05)

    @flow
    def tuned() -> None:
        tune.map(range(2))

    run = tuned.run(executor="threads")
    assert run.state.value == "Failed"
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, sent.append, layout_engine="builtin")
    view.start()
    pages = experiment_rows.ExperimentRows()  # the Lab's, kept across the rerun
    try:
        _wait_for(lambda: view.read(lambda g: g.state.value == "Failed"), "the view's run")
        assert _cell_marks(view, sent, "before") == {"loss": True, "lr": True}
        with open_store() as store:
            before = _stored_run(store, run.id, "Failed")
            assert _page_marks(pages, store, before) == {"loss": True, "lr": True}
        assert run.retry().state.value == "Completed"
        wanted = {"loss": True, "lr": False}
        _wait_for(lambda: view.read(lambda g: g.state.value == "Completed"), "the rerun's end")
        assert _cell_marks(view, sent, "after") == wanted
    finally:
        view.close()
    assert [row["lr"] for row in run.experiments() if row["map_index"] == 1] == [0.05]
    with open_store() as store:
        after = _stored_run(store, run.id, "Completed")
        assert _page_marks(pages, store, after) == wanted
        meta = snap.read_meta(store, run.id)
        assert meta is not None and _marked(meta.columns) == wanted
        assert _page_marks(experiment_rows.ExperimentRows(), store, after) == wanted


def test_a_rows_values_and_its_curved_metrics_follow_the_rule_for_any_order_of_points() -> None:
    """``Experiment.curved_metrics`` holds only the metrics with points, each with the step of
    its value kept (-1 after a stepless value of one): each metric's value is still the one at
    its highest step, a stepless value outranked by any later point, as when every stepless
    value wrote None there; and the metrics marked curved are those logged with a step, for
    any order of calls."""
    import random

    from labloom.core import experiments as ex

    chance = random.Random(37)
    for _ in range(300):
        row = ex.Experiment("r", "r.0")
        expected: dict[str, Any] = {}
        kept_step: dict[str, int | None] = {}  # the rule: None after a stepless value
        stepped: set[str] = set()
        for at in range(chance.randrange(1, 12)):
            name = chance.choice("abc")
            step = chance.choice([None, 0, 1, 2, 3])
            row.add("metric", name, float(at), step)
            kept = kept_step.get(name)
            if step is not None and name in expected and kept is not None and step < kept:
                continue  # an earlier point, logged late
            expected[name], kept_step[name] = float(at), step
            if step is not None:
                stepped.add(name)
        assert row.metrics == expected
        assert ex._curved([row]) == stepped
        assert row.curved_metrics == {name: -1 if kept_step[name] is None else kept_step[name]
                                      for name in stepped}


def test_a_cancelled_attempts_thread_logging_on_into_the_reruns_attempt_is_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cancel leaves a running task's thread running (Python cannot stop it), its context
    still of attempt 1; ``run.retry()`` reruns the task run from attempt 1 again. The old
    thread's call, made after the rerun's attempt logged, was of "the current attempt" and its
    auc 0.1 replaced the rerun's 0.9, live and stored. Dropped, it is said in its logs, once:
    the thread's calls after that line (a loop logging on for an hour) are not said again."""
    running, go, landed = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []

    @task
    def train() -> None:
        calls.append(1)
        if len(calls) == 1:
            running.set()
            go.wait(20)  # cancelled and rerun meanwhile: this thread runs on
            log_metrics(auc=0.1)
            _wait_for(lambda: any("came after" in line.text for line in run.logs("train")),
                      "the line saying so")
            log_metrics(auc=0.2)
            log_metrics(auc=0.3)
            landed.set()
            return
        log_metrics(auc=0.9)
        go.set()
        assert landed.wait(20)  # the stale call is in before the rerun's end

    @flow
    def retrained() -> None:
        train()

    run = retrained.run(executor="threads", background=True)
    assert running.wait(20)
    run.cancel()
    run.wait()
    assert run.state.value == "Cancelled"
    assert run.retry().state.value == "Completed" and len(calls) == 2
    assert [row["auc"] for row in run.experiments()] == [0.9]
    assert [row["auc"] for row in labloom.experiments(run=run.id)] == [0.9]
    assert _said_late(run, capsys) == [
        f"[labloom] 1 logging call of attempt 1 came after the run was retried{NOT_RECORDED}"]
