"""Retries, timeouts, cancellation, interrupts, logs and events."""

from __future__ import annotations

import _thread
import io
import itertools
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import labloom
from cli_helpers import wait_for
from labloom import State, ThreadExecutor, flow, get_run_logger, task, unmapped
from labloom.core import events as ev
from labloom.core.executor import Outcome
from labloom.core.observers import add_run_observer
from labloom.dag.console_progress import ConsoleProgress, attach
from run_helpers import runs_started


def test_retries_with_a_delay_per_attempt(executor: str) -> None:
    calls: list[float] = []

    @task(retries=2, retry_delay=[0.2, 0.4])
    def flaky() -> str:
        calls.append(time.time())
        print(f"attempt {len(calls)}")
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} lost the connection")
        return "ok"

    @flow(executor=executor)
    def f() -> str:
        return flaky()

    run = f.run()
    assert run.result() == "ok"
    (tr,) = run.tasks
    assert tr.state is State.COMPLETED and tr.attempts == 3
    states = [entry.state for entry in tr.history]
    assert states.count(State.RETRYING) == 2
    assert "attempt 1 of 3; retrying in 0.2s" in tr.history[states.index(State.RETRYING)].message
    assert calls[1] - calls[0] >= 0.2 and calls[2] - calls[1] >= 0.4
    # Each failed attempt's traceback is in the task run's logs, between the attempts' lines
    # (before, only the last one was kept, as the traceback of a task run that Completed).
    texts = [line.text for line in run.logs()]
    assert [text.split("\n")[0] for text in texts] == [
        "attempt 1", "[labloom] attempt 1 of 3 failed; retrying in 0.2s",
        "attempt 2", "[labloom] attempt 2 of 3 failed; retrying in 0.4s", "attempt 3"]
    assert "ConnectionError: attempt 2 lost the connection" in texts[3]
    assert "in flaky" in texts[3]  # the traceback, not only the message


def test_retry_on_retries_only_the_failures_it_names(executor: str) -> None:
    attempts = {"network": 0, "bug": 0, "slow": 0}

    @task(retries=2, retry_on=[ConnectionError, labloom.TaskTimeoutError], timeout=5)
    def fetch(kind: str) -> str:
        attempts[kind] += 1
        if kind == "network" and attempts[kind] < 3:
            raise ConnectionResetError("the server dropped the connection")
        if kind == "bug":
            raise KeyError("a typo: retried, it fails alike every time")
        return kind

    @flow(executor=executor)
    def f() -> object:
        return fetch.map(["network", "bug"])

    run = f.run()
    network, bug = run.tasks
    assert (network.state, network.attempts) == (State.COMPLETED, 3)
    assert (bug.state, bug.attempts) == (State.FAILED, 1) and attempts["bug"] == 1
    [said] = [line.text for line in run.logs("fetch[1]")]
    assert said == ("[labloom] attempt 1 of 3 failed, not retried: KeyError is not among "
                    "retry_on (ConnectionError, TaskTimeoutError)")
    assert fetch.retry_on == (ConnectionError, labloom.TaskTimeoutError)
    assert fetch.with_options(retry_on=None).retry_on is None


def test_retries_exhausted_end_failed() -> None:
    @task(retries=1)
    def always_fails() -> None:
        raise RuntimeError("still broken")

    @flow
    def f() -> None:
        always_fails()

    run = f.run()
    (tr,) = run.tasks
    assert (tr.state, tr.attempts) == (State.FAILED, 2)
    assert tr.message == "RuntimeError: still broken"


def test_a_timeout_fails_only_its_task(executor: str) -> None:
    release = threading.Event()

    @task(timeout=0.3)
    def stuck() -> None:
        release.wait(120)  # held past its timeout: released once the run is over

    @task
    def fine() -> int:
        return 1

    @flow(executor=executor)
    def f() -> object:
        return stuck(), fine()

    try:
        run = f.run()
    finally:
        release.set()
    by_name = {tr.name: tr for tr in run.tasks}
    assert by_name["stuck"].state is State.FAILED
    assert "timed out after 0.3s" in by_name["stuck"].message
    assert by_name["fine"].state is State.COMPLETED
    assert isinstance(by_name["stuck"].error, labloom.TaskTimeoutError)
    # Its traceback is where the task was stuck (before: labloom's line raising the timeout).
    shown = by_name["stuck"].traceback
    assert shown.startswith("Traceback (most recent call last), where the task was when it "
                            "timed out:\n"), shown
    assert "in stuck\n    release.wait(120)" in shown and "labloom/core" not in shown
    assert shown.splitlines()[-1].startswith(
        "labloom.core.errors.TaskTimeoutError: task 'stuck' timed out after 0.3s")


def test_cancel_marks_pending_task_runs_cancelled() -> None:
    gate = threading.Event()

    @task
    def blocker(i: int) -> int:
        gate.wait(300)  # opened only once the run is seen cancelled
        return i

    @task
    def after(x: int) -> int:
        return x

    @flow(executor=ThreadExecutor(max_workers=2))
    def f() -> object:
        return after.map(blocker.map(range(6)))

    run = f.run(background=True)
    wait_for(lambda: sum(tr.state is State.RUNNING for tr in run.tasks) == 2, 60,
             "two blockers to run")
    run.cancel()
    # Cancelled while the running blockers are still held: it did not wait for them (the
    # wait is a guard, the gate opens only after it).
    assert run.wait(timeout=120) is State.CANCELLED
    gate.set()
    assert all(tr.state is State.CANCELLED for tr in run.tasks)
    with pytest.raises(labloom.RunCancelledError, match="cancelled"):
        run.result()


@pytest.fixture
def python_handles_sigint() -> Iterator[None]:
    # A shell starts a background job with SIGINT ignored, and then interrupt_main() does
    # nothing; a terminal's or a kernel's Python has its own handler, as set here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_handles_sigint")
def test_keyboard_interrupt_cancels_the_run_and_raises() -> None:
    gate = threading.Event()
    started = threading.Event()

    @task
    def slow(i: int) -> int:
        started.set()
        gate.wait(300)  # opened once the interrupt is through
        return i

    @flow(executor=ThreadExecutor(max_workers=1))
    def f() -> object:
        return slow.map(range(5))

    def interrupt() -> None:
        started.wait(60)  # a deadline only: Ctrl-C lands once a task runs
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with runs_started() as runs, pytest.raises(KeyboardInterrupt):
            f()
    finally:
        gate.set()
    (run,) = runs
    assert run.wait(timeout=60) is State.CANCELLED  # a guard
    assert [tr.state for tr in run.tasks].count(State.CANCELLED) == 5


def test_every_run_is_watched_however_it_starts() -> None:
    """One registry of run observers, called where a run starts: a FlowRun started without
    Flow.run (as ``labloom retry`` does) is seen too, before its executor starts, and
    ``import labloom`` put the store's observer first."""
    from labloom.core.executor import Executor
    from labloom.core.flow_run import FlowRun
    from labloom.core.observers import run_observers
    from labloom.defaults import attach_default_observers

    assert run_observers()[0] is attach_default_observers

    class Recording(ThreadExecutor):
        def start(self) -> None:
            seen.append("executor started")
            super().start()

    seen: list[object] = []

    @flow
    def f() -> int:
        return total([2])

    executor: Executor = Recording(max_workers=1)
    remove = add_run_observer(lambda run: seen.append(run))
    try:
        run = FlowRun(f, {}, executor, owns_executor=True).start()
    finally:
        remove()
    assert seen == [run, "executor started"]
    assert run.result() == 2


def test_logs_of_concurrent_tasks_never_mix() -> None:
    barrier = threading.Barrier(2)

    @task
    def chatty(name: str) -> None:
        barrier.wait(60)  # a guard
        for i in range(200):
            print(f"{name} line {i}")
            if i % 50 == 0:
                get_run_logger().info("%s checkpoint %d", name, i)

    @flow(executor=ThreadExecutor(max_workers=2))
    def f() -> None:
        chatty("alpha")
        chatty("beta")

    run = f.run()
    assert run.state is State.COMPLETED
    for name in ("alpha", "beta"):
        (tr,) = [t for t in run.tasks if t.args == (name,)]
        lines = [line.text for line in run.logs(tr.id)]
        assert len(lines) == 204
        assert all(name in text for text in lines), "a line of the other task leaked in"
        assert [t for t in lines if "line" in t] == [f"{name} line {i}" for i in range(200)]
        infos = [line for line in run.logs(tr.id) if "checkpoint" in line.text]
        assert [line.level for line in infos] == [logging.INFO] * 4


def test_a_huge_log_line_is_cut_where_it_is_captured(tmp_path: Path) -> None:
    from labloom.core.logs import MAX_LINE_CHARS
    from labloom.store import open_store

    huge = 20_000_000

    @task
    def shout() -> None:
        print("x" * huge)
        get_run_logger().warning("y" * (MAX_LINE_CHARS + 5))
        for _ in range(30):  # one line written in pieces, none of them with its end
            print("z" * 1000, end="")
        print()
        print("short")

    @flow(executor="threads")
    def f() -> None:
        shout()

    run = f.run()
    assert run.state is State.COMPLETED
    with open_store() as store:
        stored, _ = store.logs(run.id)
    for texts in ([line.text for line in run.logs()], [line.text for line in stored]):
        xs, ys, zs, short = texts
        assert xs == "x" * MAX_LINE_CHARS + (
            f" [labloom: {huge - MAX_LINE_CHARS:,} more characters cut; a log line keeps "
            f"{MAX_LINE_CHARS:,}]"
        )
        # a logging record: "shout - " (the run logger's prefix) and 5 more than the limit
        assert ys == ("shout - " + "y" * MAX_LINE_CHARS)[:MAX_LINE_CHARS] + (
            " [labloom: 13 more characters cut; a log line keeps 10,000]"
        )
        assert zs == "z" * MAX_LINE_CHARS + " [labloom: 20,000 more characters cut; a log line " \
            "keeps 10,000]"
        assert short == "short"


def test_a_progress_bar_logs_what_a_terminal_shows(capsys: pytest.CaptureFixture[str]) -> None:
    # tqdm's way: each refresh starts with a carriage return, the bar's line ends once at its
    # close. A line of all its refreshes was cut at 10,000 characters: the task's logs kept
    # a long training's first seconds of progress and never its end.
    import sys

    @task
    def train() -> None:
        for step in range(1, 501):
            sys.stderr.write(f"\r{step * 100 // 500:3d}%|{'#' * (step // 50):10s}| {step}/500")
        sys.stderr.write("\n")
        sys.stdout.write("windows line\r\nnext\r")  # CRLF ends; a last CR at the task's end
        sys.stderr.write("x" * 15_000 + "\rafter a long line written over\n")

    @flow(executor="threads")
    def f() -> None:
        train()

    run = f.run()
    texts = sorted(line.text for line in run.logs())
    assert texts == sorted(["100%|##########| 500/500", "windows line", "next",
                            "after a long line written over"])
    echoed = capsys.readouterr().err
    assert "train | 100%|##########| 500/500\n" in echoed and " 0%|" not in echoed


def test_a_bars_state_logged_while_it_went_is_not_logged_again_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its last state, logged while the bar went, was logged again when its line ended (or at
    # the task's end): "30/30 steps" twice, whenever the last refresh came PROGRESS_EVERY
    # after the line before (the next test's 30 steps of 0.05 s under 0.3 s: 2 runs in 5).
    import sys

    from labloom.core import logs

    monkeypatch.setattr(logs, "PROGRESS_EVERY", 0.0)  # each refresh logged as it comes

    @task
    def train() -> None:
        for step in (1, 2, 3):
            sys.stderr.write(f"\r{step}/3")
        sys.stderr.write("\n")  # ends in the state logged last
        sys.stderr.write("\rloading\rloaded")
        sys.stderr.write(" in 2 s\n")  # ends in another: both are logged
        sys.stdout.write("\rfirst\rsecond")  # ended by the task's end

    @flow(executor="threads")
    def f() -> None:
        train()

    texts = [line.text for line in f.run().logs("train")]
    assert texts == ["1/3", "2/3", "3/3", "loaded", "loaded in 2 s", "second"], texts


def test_a_long_progress_bar_shows_in_the_logs_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A training of an hour with a tqdm bar: its logs showed nothing of it until it ended.
    import sys

    from labloom.core import logs

    monkeypatch.setattr(logs, "PROGRESS_EVERY", 0.3)
    seen_live: list[str] = []

    @task
    def train() -> None:
        for step in range(1, 31):
            sys.stderr.write(f"\r{step}/30 steps")
            time.sleep(0.05)
        seen_live.extend(line.text for line in run_box[0].logs("train"))
        sys.stderr.write("\n")

    @flow(executor="threads")
    def f() -> None:
        train()

    run_box: list[Any] = []
    run = f.run(background=True)
    run_box.append(run)
    run.wait()
    lines = list(run.logs("train"))
    texts = [line.text for line in lines]
    assert texts[-1] == "30/30 steps" and len(texts) >= 3, texts
    # Not a line per write: a line per PROGRESS_EVERY at most while the bar goes (the gaps
    # between them, not their count, which a slow machine's longer loop would raise).
    gaps = [b.time - a.time for a, b in itertools.pairwise(lines[:-1])]
    assert all(gap >= 0.3 - 0.01 for gap in gaps), gaps
    assert len(seen_live) >= 2 and all(t.endswith("/30 steps") for t in texts)
    counts = [int(t.split("/")[0]) for t in texts]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_log_prints_false_does_not_capture_prints(capsys: pytest.CaptureFixture[str]) -> None:
    @task(log_prints=False)
    def quiet() -> None:
        print("only on stdout")
        logging.getLogger("user.module").warning("a warning is still recorded")

    @flow(executor="local")
    def f() -> None:
        quiet()

    run = f.run()
    texts = [line.text for line in run.logs("quiet")]
    assert texts == ["user.module: a warning is still recorded"]
    assert "only on stdout" in capsys.readouterr().out


def test_prints_are_still_shown(capsys: pytest.CaptureFixture[str]) -> None:
    @task
    def say() -> None:
        print("hello from a task")

    @flow(executor="threads")
    def f() -> None:
        say()

    run = f.run()
    assert [line.text for line in run.logs("say")] == ["hello from a task"]
    assert "hello from a task" in capsys.readouterr().out


def test_events_arrive_typed_in_batches_and_a_broken_subscriber_is_harmless(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task
    def step(x: int) -> int:
        print("working", x)
        return x

    @flow
    def f() -> object:
        return step.map([1, 2])

    batches: list[list[ev.Event]] = []

    def observe(run: labloom.FlowRun) -> None:
        run.subscribe(batches.append)
        run.subscribe(lambda batch: 1 / 0)

    remove = add_run_observer(observe)
    try:
        run = f.run()
    finally:
        remove()
    assert run.state is State.COMPLETED
    events = [event for batch in batches for event in batch]
    kinds = [type(event).__name__ for event in events]
    assert kinds[0] == "RunCreated" and kinds[-1] == "RunFinished"
    assert kinds.count("TaskRunCreated") == 2 and kinds.count("LogRecord") == 2
    states = [(e.task_run_id, e.state) for e in events if isinstance(e, ev.StateChanged)]
    assert sorted(states) == sorted(
        [(tr.id, s) for tr in run.tasks for s in (State.RUNNING, State.COMPLETED)]
    )
    assert all(isinstance(e.time, float) for e in events if hasattr(e, "time"))
    assert sum("event subscriber" in r.message for r in caplog.records) == 1


def test_in_memory_retry_reruns_only_the_failed_part(executor: str) -> None:
    calls: dict[int, int] = {}
    broken = {3}

    @task
    def work(i: int) -> int:
        calls[i] = calls.get(i, 0) + 1
        if i in broken:
            raise ValueError(f"{i} is broken")
        return i

    @flow(executor=executor)
    def f() -> int:
        return total(work.map(range(5)))

    run = f.run()
    assert run.state is State.FAILED
    broken.clear()
    run.retry()
    assert run.state is State.COMPLETED
    assert run.result() == 10
    assert calls == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1}


@task
def total(values: list[int]) -> int:
    return sum(values)


def test_in_memory_retry_runs_the_task_as_it_is_defined_now(executor: str) -> None:
    # A notebook: the task fails, its cell is fixed and run again, then run.retry(). The
    # retry ran the old function again (and failed the same way) while the CLI's retry,
    # loading the file afresh, ran the fixed one.
    space: dict[str, Any] = {"__name__": "notebook_like", "task": task}

    def run_cell(text: str) -> None:
        exec(compile(text, "<cell>", "exec"), space)

    run_cell("@task(retries=1)\ndef score(x):\n    if x == 2:\n        raise ValueError('bug')\n"
             "    return x * 10\n")
    run_cell("@task\ndef best(xs):\n    raise ValueError('bug too')\n")

    @flow(executor=executor)
    def f() -> Any:
        return space["score"](1), space["best"](space["score"].map(range(4)))

    run = f.run(background=True)
    assert run.wait(timeout=30) is State.FAILED
    run_cell("@task(retries=1)\ndef score(x):\n    return x * 100\n")  # fixed
    run_cell("@task\ndef best(xs):\n    return max(xs)\n")
    run.retry()
    assert run.state is State.COMPLETED, run.message
    # The task runs that had completed are reused: score(1) and the children but score[2].
    assert run.result() == (10, 200)
    scores = [tr for tr in run.tasks if tr.task.name == "score"]
    assert all(tr.task.retries == 1 for tr in scores)  # its options are kept



def test_plain_progress_lines() -> None:
    out = io.StringIO()

    @flow
    def f() -> object:
        return total([1])

    def observe(run: labloom.FlowRun) -> None:
        attach(run, out)  # not a terminal: plain lines

    remove = add_run_observer(observe)
    try:
        f()
    finally:
        remove()
    text = out.getvalue()
    assert "flow 'f' run" in text and "total" in text and "1/1 done" in text
    assert "Completed" in text


def test_live_progress_redraws_a_table() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out, live=True)

    @flow
    def f() -> object:
        return total([1])

    run = f.run()
    progress(run.events())
    text = out.getvalue()
    assert "1/1 done" in text and "\x1b[" not in text.split("total")[0][-5:]


class Weights:
    """A task result standing in for a model: weak-referenceable, so the test sees it go."""


@task
def train(i: int) -> Weights:
    return Weights()


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_run_let_go_frees_its_task_results_without_the_cyclic_collector(
    executor: str,
) -> None:
    import gc
    import weakref

    @flow
    def training() -> list[Weights]:
        return train.map(range(3))  # type: ignore[return-value]

    gc.disable()  # as if the collector had not run yet
    try:
        run = training.run(executor=executor)
        results = [weakref.ref(w) for w in run.result()]
        assert all(r() is not None for r in results)  # kept while the run is held
        del run
        assert [r() for r in results] == [None, None, None]
    finally:
        gc.enable()


class _CountedWaits(ThreadExecutor):
    """Counts the turns of the loop in which the flow's thread waits (each asks once)."""

    runs_in_caller = False  # its ``run_pending`` only counts: calls run on the threads

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self.turns = 0

    def run_pending(self) -> bool:
        self.turns += 1
        return False


def test_the_run_s_own_wait_is_not_woken_by_every_report(monkeypatch: pytest.MonkeyPatch) -> None:
    # The flow's thread waited for its last task run on the run's condition, which every batch
    # of reports wakes: with tasks slower than the engine (a report per batch) it woke about
    # once per task run (411 turns here), 30-40 µs of CPU per task run, each taking the run's
    # lock from the threads applying reports. Now it is woken when no task run is left open.
    # Its looks (every LOOK_EVERY) an hour apart: the turns counted are its wakes alone, as
    # many on a loaded machine as on an idle one.
    from labloom.core import waiting

    monkeypatch.setattr(waiting, "LOOK_EVERY", 3600.0)

    @task
    def nap(x: int) -> int:
        time.sleep(0.002)
        return x

    @flow
    def naps(n: int) -> None:
        nap.map(range(n))

    executor = _CountedWaits(4)
    run = naps.run(n=600, executor=executor)
    assert run.state is State.COMPLETED
    assert executor.turns <= 3, executor.turns  # one wait, woken once (a turn to spare)


@pytest.mark.parametrize("width", [0, 1, 50])
def test_a_run_s_end_wakes_its_wait(
    monkeypatch: pytest.MonkeyPatch, any_executor: Any, width: int, tmp_path: Path
) -> None:
    # The wait for the run's end is woken by the last task run's end (or a map found empty,
    # or a block of ends applied at once: a Dask chunk's children, a batch of threads'), not
    # by its next look: with looks an hour apart the run still ends.
    from labloom.core import waiting

    monkeypatch.setattr(waiting, "LOOK_EVERY", 3600.0)
    gate = tmp_path / "open"  # the tasks end once the run waits for them

    @task
    def quick(x: int) -> int:
        deadline = time.monotonic() + 120  # a guard: the gate opens 0.5 s in
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return x

    @flow
    def once(n: int) -> list[int]:
        return quick.with_options(batch_size=25).map(range(n))  # Dask: chunks of children

    threading.Timer(0.5, gate.touch).start()
    run = once.run(n=width, executor=any_executor, background=True)
    assert run.wait(timeout=60) is State.COMPLETED
    assert run.result() == list(range(width))


class _RunsInTheWaitingThread(labloom.Executor):
    """A user's executor that runs each call in the thread waiting for the run, as the local
    executor does (``run_pending``), written without subclassing it (a debugger's own)."""

    name = "waiting-thread"

    def __init__(self) -> None:
        self.queue: list[tuple[Any, ...]] = []

    def submit(self, call: Any, args: Any, kwargs: Any, on_done: Any,
               resources: Any = None) -> Any:
        handle: list[Any] = []
        self.queue.append((call, args, kwargs, handle, on_done))
        return handle

    def run_pending(self) -> bool:
        if not self.queue:
            return False
        call, args, kwargs, handle, on_done = self.queue.pop(0)
        try:
            handle.append(call(*args, **kwargs))
        except Exception as exc:
            on_done(Outcome(ok=False, error=exc))
        else:
            on_done(Outcome(ok=True))
        return True

    def value_ref(self, handle: Any) -> Any:
        return handle[0]

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        return handle[0]


def test_an_executor_running_calls_in_the_waiting_thread_runs_a_retry_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The retry is queued by its timer's thread; the run's own thread, which runs the calls,
    # must wake for it, not at its next look (an hour away here). Known by ``run_pending``
    # alone: the flag the local executor sets was not the user's executor's.
    from labloom.core import waiting

    monkeypatch.setattr(waiting, "LOOK_EVERY", 3600.0)
    tries: list[int] = []

    @task(retries=1, retry_delay=0.05)
    def flaky() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("once")
        return len(tries)

    @flow
    def once() -> int:
        return flaky()

    run = once.run(executor=_RunsInTheWaitingThread(), background=True)
    assert run.wait_finished(30), "the retry was never run"
    assert run.state is State.COMPLETED and run.result() == 2


def _started_map(width: int) -> list[ev.Event]:
    """A map "sq" of ``width`` children announced, each Running."""
    events: list[ev.Event] = [ev.NodeCreated("r", "n", "sq", "map", (), 1.0)]
    events += [ev.TaskRunCreated("r", f"r.{i}", "n", "sq", i, (), 1.0) for i in range(width)]
    return events + [ev.StateChanged("r", f"r.{i}", State.RUNNING, 2.0) for i in range(width)]


def test_plain_progress_names_a_failed_child_and_sums_up_its_node_once() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out, live=False)
    events = _started_map(3)
    events += [ev.StateChanged("r", "r.2", State.RETRYING, 3.0, "once"),
               ev.StateChanged("r", "r.2", State.RUNNING, 3.5),
               ev.StateChanged("r", "r.unknown", State.FAILED, 3.6, "not this run's"),
               ev.StateChanged("r", "r.0", State.COMPLETED, 4.0),
               ev.StateChanged("r", "r.1", State.COMPLETED, 4.0)]
    progress(events)
    assert "done" not in out.getvalue()  # one child still running
    progress([ev.StateChanged("r", "r.2", State.FAILED, 5.0, "boom"),
              ev.StateChanged("r", "r.2", State.FAILED, 5.1, "boom")])
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert lines == ["Retrying  sq[2]: once", "Failed    sq[2]: boom",
                     "sq                       [####################] 2/3 done, 1 failed",
                     "Failed    sq[2]: boom"]


def test_plain_progress_says_cancelled_children_apart_from_failed_ones() -> None:
    """An interrupted run's children: before, "1/4 done, 3 failed" of a run with one failure."""
    out = io.StringIO()
    progress = ConsoleProgress(out, live=False)
    progress([*_started_map(4),
              ev.StateChanged("r", "r.0", State.COMPLETED, 3.0),
              ev.StateChanged("r", "r.1", State.FAILED, 3.0, "boom"),
              *(ev.StateChanged("r", f"r.{i}", State.CANCELLED, 4.0, "stop") for i in (2, 3))])
    assert out.getvalue().splitlines()[-1].strip() == (
        "sq                       [####################] 1/4 done, 1 failed, 2 cancelled")


def test_live_progress_counts_each_child_once_in_its_state_when_announced_again() -> None:
    # State changes are counted by the state's value, inline (``ConsoleProgress.__call__``); a
    # replay announces a task run again: it moves within its node, never counted twice.
    out = io.StringIO()
    progress = ConsoleProgress(out, live=True)
    events = _started_map(4)
    events += [ev.StateChanged("r", "r.0", State.COMPLETED, 3.0),
               ev.StateChanged("r", "r.1", State.FAILED, 3.0, "boom"),
               ev.TaskRunCreated("r", "r.3", "n", "sq", 3, (), 1.0)]  # announced again: Pending
    progress(events)
    node = progress.nodes["n"]
    assert node.count(State.RUNNING) == 1 and node.count(State.PENDING) == 1
    assert node.count(State.COMPLETED) == 1 and node.count(State.FAILED) == 1
    assert node.seen == 4 and node.final == 2 and not node.finished
    assert "done, 1 running, 1 failed" in out.getvalue()  # the table drawn from those counts
    progress([ev.StateChanged("r", f"r.{i}", State.COMPLETED, 4.0) for i in (2, 3)])
    assert node.finished and node.count(State.COMPLETED, State.CACHED) == 3


def test_a_run_let_go_drops_its_map_children_s_inputs_without_reading_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Setting a map child's ``args`` read its inputs from the map first (to keep its keywords):
    # the run's release did so for every child, 0.6 µs each, only to drop them.
    from labloom.core.map_nodes import MapNode

    @flow
    def mapped() -> None:
        train.map(range(5))

    run = mapped.run(executor="threads")
    children = run.tasks
    assert [tr.args for tr in children] == [(i,) for i in range(5)]
    reads = []
    monkeypatch.setattr(MapNode, "inputs_of",
                        lambda node, index: reads.append(index) or ((), {}))
    run._engine.release()
    assert reads == []
    assert [(tr.args, tr.kwargs) for tr in children] == [((), {})] * 5


def test_a_task_gets_its_arguments_as_they_were_at_the_call(any_executor: Any) -> None:
    # A sweep's usual loop edits one dict of settings and calls the task with it each time.
    # The calls ran later (the local executor while the run is waited for, Dask after the body
    # submitted its block) with the dict as the loop left it: every child trained with the
    # last learning rate, and a cached one stored that answer under the first one's key.
    @task
    def train(settings: dict[str, Any], seen: list[int]) -> tuple[float, int]:
        return settings["lr"], len(seen)

    @flow
    def sweep() -> list[Any]:
        settings: dict[str, Any] = {"depth": 3}
        seen: list[int] = []
        out = []
        for lr in [0.1, 0.2, 0.3]:
            settings["lr"] = lr
            out.append(train(settings, seen))
            seen.append(1)
        out.append(train.map(unmapped(settings), [[]]))  # given whole to each child
        settings["lr"] = 0.4
        return out

    run = sweep.run(executor=any_executor, background=True)
    assert run.wait(timeout=60) is State.COMPLETED
    assert run.result() == [(0.1, 0), (0.2, 1), (0.3, 2), [(0.3, 0)]]
