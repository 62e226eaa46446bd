"""``@flow(retries=N, retry_delay=S)``: a run that ends Failed runs again in place (the same
run id, completed task runs reused, the body again if it raised), and its end (the state,
``FlowFailed``, on_failure hooks, alerts, ``labloom run``'s exit) waits for the last attempt.
A nightly run whose source is not there yet must not wake anyone before it tried again."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import (
    Hook,
    due_every,
    first_slot_in,
    labloom,
    start_labloom,
    stop,
    wait_for,
    write,
)
from labloom import FlowFailed, FlowTimeoutError, RunCancelledError, State, flow, task
from labloom.export.exporter import export_notebook
from labloom.store import open_store
from test_export import write_notebook


def fails_once(marker: Path) -> None:
    """Fails the first time (a file, so a Dask worker process sees it too)."""
    if not marker.exists():
        marker.write_text("failed once")
        raise ConnectionError("the database is not up yet")


@task
def load(n: int) -> int:
    return n


@task
def flaky(x: int, marker: str) -> int:
    fails_once(Path(marker))
    return x + 1


@task
def always_fails(x: int) -> int:
    raise ValueError("bad row")


def test_a_failed_task_is_retried_in_place_and_what_completed_is_reused(
    tmp_path: Path, any_executor: Any,
) -> None:
    loads: list[int] = []

    @task
    def counted(n: int) -> int:
        loads.append(n)
        return n

    @flow(retries=2, retry_delay=0.1)
    def nightly(marker: str) -> int:
        return flaky(counted(1), marker)

    run = nightly.run(marker=str(tmp_path / "m"), executor=any_executor)
    assert run.state is State.COMPLETED and run.result() == 2 and run.attempt == 2
    assert run.message.startswith("completed at attempt 2 of 3; attempt 1 failed: 1 task run")
    assert [tr.state for tr in run.tasks] == [State.COMPLETED, State.COMPLETED]  # same runs
    if any_executor != "dask" and not hasattr(any_executor, "client"):
        assert loads == [1]  # completed: reused, not run again
    lines = [line.text for line in run.logs() if line.task_run_id is None]
    assert any("attempt 1 of 3 failed" in text and "ConnectionError" in text for text in lines)
    kept = "\n".join(line.text for line in run.logs("flaky"))  # its first traceback, kept
    assert "run attempt 1 of 3 failed here" in kept and "fails_once" in kept
    with open_store() as store:
        stored = store.get_run(run.id)
    assert stored is not None and stored.state == "Completed" and "attempt 2 of 3" in stored.message


def test_a_body_that_raised_runs_again_reusing_its_completed_calls(tmp_path: Path) -> None:
    loads: list[int] = []
    marker = tmp_path / "m"

    @task
    def counted(n: int) -> int:
        loads.append(n)
        return n

    @flow(retries=1)
    def nightly() -> int:
        first = counted(1).result()
        parts = counted.map([10, 20])
        fails_once(marker)  # the body itself: a listing that is not there yet
        return load(first + 1).result() + sum(parts.result())

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == 32 and run.attempt == 2
    assert sorted(loads) == [1, 10, 20]  # each ran once: the second attempt reused them
    names = [tr.name for tr in run.tasks]
    assert names == ["counted", "counted-2[0]", "counted-2[1]", "load"]  # no new nodes
    said = "\n".join(line.text for line in run.logs() if line.task_run_id is None)
    assert "attempt 1 of 2 failed: flow body raised ConnectionError" in said
    assert "Traceback" in said and "fails_once" in said  # why, where


def test_a_body_rerun_calls_its_failed_task_with_this_attempts_inputs() -> None:
    listing: list[list[str]] = [[], ["a.csv", "b.csv"]]  # the export is there at attempt 2
    seen: list[list[str]] = []

    @task
    def process(files: list[str]) -> int:
        seen.append(files)
        if not files:
            raise ValueError("nothing to process yet")
        return len(files)

    @flow(retries=1)
    def nightly() -> int:
        return process(listing.pop(0)).result()  # the body reads what is there now

    run = nightly.run()
    assert seen == [[], ["a.csv", "b.csv"]]  # not the first attempt's empty list again
    assert run.state is State.COMPLETED and run.result() == 2, run.message
    assert [tr.name for tr in run.tasks] == ["process"]  # the same task run, in place


def test_a_body_that_raised_before_its_failed_call_still_reruns_it_in_place() -> None:
    attempts: list[int] = []

    @task
    def fetch() -> int:
        if len(attempts) < 3:
            raise ConnectionError("the export is not there yet")
        return 3

    @flow(retries=2)
    def nightly() -> int:
        attempts.append(1)
        if len(attempts) == 2:
            raise OSError("the share is not mounted")  # before the call, this time
        return fetch().result()

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == 3, run.message
    assert [(tr.name, tr.state) for tr in run.tasks] == [("fetch", State.COMPLETED)]


def test_a_cached_task_called_with_new_inputs_by_a_body_rerun_is_keyed_by_them() -> None:
    listing: list[list[str]] = [[], ["a.csv", "b.csv"]]

    @task(cache=True)
    def count(files: list[str]) -> int:
        if not files:
            raise ValueError("nothing to count yet")
        return len(files)

    @flow(retries=1)
    def nightly() -> int:
        return count(listing.pop(0)).result()

    assert nightly() == 2

    @flow
    def empty() -> int:
        return count([])

    run = empty.run()  # its result is not the one of ["a.csv", "b.csv"]
    assert run.state is State.FAILED and "nothing to count yet" in run.message, run.message


def test_a_body_rerun_that_takes_another_way_is_not_failed_by_the_call_it_left() -> None:
    attempts: list[int] = []
    ran: list[str] = []

    @task
    def primary() -> int:
        ran.append("primary")
        raise ConnectionError("the primary is down")

    @task
    def replica() -> int:
        ran.append("replica")
        return 7

    @flow(retries=1)
    def nightly() -> int:
        attempts.append(1)
        source = primary if len(attempts) == 1 else replica  # the retry reads the replica
        return source().result()

    run = nightly.run()
    assert ran == ["primary", "replica"]  # the primary not called again by the second body
    assert run.state is State.COMPLETED and run.result() == 7, run.message
    left = next(tr for tr in run.tasks if tr.name == "primary")
    assert left.state is State.FAILED  # what attempt 1 saw, kept as history


def test_a_map_that_could_not_expand_twice_is_expanded_once_at_the_third_attempt() -> None:
    tries: list[int] = []

    @task
    def rows() -> list[int]:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError(f"the source is down ({len(tries)})")
        return [1, 2]

    @task
    def scale(x: int) -> int:
        return x * 10

    @flow(retries=2)
    def nightly() -> Any:
        return scale.map(rows())

    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == [10, 20], run.message
    # The first attempt's placeholder was not launched again, a call of scale() with nothing.
    assert not any("missing 1 required positional argument" in tr.message for tr in run.tasks)
    assert sorted(tr.state.value for tr in run.tasks) == [
        "Completed", "Completed", "Completed", "UpstreamFailed", "UpstreamFailed"]


def test_the_end_waits_for_the_last_attempt(tmp_path: Path) -> None:
    hooked: list[int] = []

    @flow(retries=2, retry_delay=[0.1, 0.2], on_failure=lambda run: hooked.append(run.attempt))
    def nightly() -> int:
        return always_fails(load(1))

    with pytest.raises(FlowFailed):
        nightly()
    run = nightly.run()
    assert run.state is State.FAILED and run.attempt == 3
    assert "every attempt failed" in run.message and "bad row" in run.message
    wait_for(lambda: len(hooked) == 2, 60, "the hooks (on the run's event thread)")
    assert hooked == [3, 3]  # once per run, after its last attempt
    starts = [tr for tr in run.tasks if tr.name == "always_fails"]
    assert len(starts) == 1 and starts[0].attempts == 1  # the same task run, run three times
    said = [line.text for line in run.logs() if line.task_run_id is None]
    assert sum("failed: 1 task run(s) did not succeed" in text for text in said) == 2
    run.retry()  # by hand: the retries anew, as the timeout is
    assert run.state is State.FAILED and run.attempt == 3
    wait_for(lambda: len(hooked) == 3, 60, "the retry's hook")


def test_while_it_waits_the_store_shows_it_running_and_why(tmp_path: Path) -> None:
    # An hour's delay: the run ending within the guard below shows the cancel cut it short.
    @flow(retries=1, retry_delay=3600)
    def nightly(marker: str) -> int:
        return flaky(load(1), marker)

    run = nightly.run(marker=str(tmp_path / "m"), background=True)
    wait_for(lambda: "attempt 2 starts in 3600s" in run.message, 60, "the run to wait")
    assert run.state is State.RUNNING and "attempt 1 of 2 failed" in run.message

    def stored_waiting() -> Any:
        with open_store() as store:
            stored = store.get_run(run.id)
        return stored if stored is not None and "starts in 3600s" in stored.message else None

    stored = wait_for(stored_waiting, 60, "the store to have the run waiting")
    assert stored.state == "Running" and "attempt 1 of 2 failed: 1 task run" in stored.message
    from labloom.dag.model import ViewGraph

    late = ViewGraph()  # a widget shown now, the Flows panel opened now
    run.subscribe(late.apply, replay=True)()
    assert "attempt 2 starts in 3600s" in late.header_json(time.time())["message"]
    run.cancel()
    assert run.wait(timeout=120) is State.CANCELLED  # a guard: at once, not after the hour
    assert run.message.startswith("cancelled by user before attempt 2 of 2 (attempt 1 failed")
    with pytest.raises(RunCancelledError):
        run.result()


def test_a_cancelled_run_is_not_retried() -> None:
    release = threading.Event()

    @task
    def hangs() -> int:
        release.wait(20)
        return 1

    @flow(retries=3)
    def nightly() -> int:
        return hangs()

    run = nightly.run(background=True)
    wait_for(lambda: [tr.state for tr in run.tasks] == [State.RUNNING], 30, "hangs() to run")
    run.cancel()
    release.set()
    assert run.wait(timeout=60) is State.CANCELLED and run.attempt == 1  # a guard


def test_a_timed_out_attempt_is_retried_with_the_timeout_anew(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    # What hangs is held until the runs are over (not a sleep a few seconds past the
    # timeout, which a loaded machine may see end first); then their threads go.
    over = threading.Event()

    @task
    def hangs_once() -> int:
        if not marker.exists():
            marker.write_text("hung")
            over.wait(600)
        return 1

    @flow(timeout=1, retries=1)
    def nightly() -> int:
        return load(hangs_once())

    try:
        run = nightly.run()
    finally:
        over.set()
    assert run.state is State.COMPLETED and run.result() == 1 and not run.timed_out
    assert "attempt 1 failed: flow 'nightly' timed out after 1s" in run.message

    @flow(timeout=1, retries=1, retry_delay=1.5)
    def quick_failure(marker: str) -> int:
        return flaky(load(1), marker)

    run = quick_failure.run(marker=str(tmp_path / "m2"))  # the first clock must not run on
    assert run.state is State.COMPLETED and run.attempt == 2, run.message

    over = threading.Event()

    @task
    def sleeps() -> int:
        over.wait(600)
        return 1

    @flow(timeout=0.5, retries=1)
    def stuck() -> int:
        return load(sleeps())

    try:
        with pytest.raises(FlowTimeoutError, match=r"timed out after 0\.5s"):
            stuck()  # each attempt hung: the last one's timeout is the run's error
        run = stuck.run()
    finally:
        over.set()
    assert run.state is State.FAILED and run.timed_out and run.attempt == 2


@pytest.mark.parametrize("options, fix", [
    ({"retries": -1}, "retries must be a whole number >= 0"),
    ({"retries": "2"}, "retries must be a whole number >= 0"),
    ({"retries": 1, "retry_delay": math.nan}, "retry_delay must be finite seconds >= 0"),
    ({"retries": 1, "retry_delay": "60"}, "retry_delay must be finite seconds >= 0"),
    ({"retries": 1, "retry_delay": [1, 2]}, "retry_delay lists 2 delays but retries=1"),
    ({"retry_delay": 600}, r"retry_delay=600\.0 without retries does nothing: give retries=N"),
])
def test_bad_retries_are_refused_where_the_flow_is_defined(options: Any, fix: str) -> None:
    with pytest.raises(ValueError, match=rf"^@flow: {fix}"):
        flow(**options)(lambda: None)


def test_flow_cells_take_retries_and_export_them(ip: Any, tmp_path: Path) -> None:
    ip.push({"flaky": flaky, "load": load, "marker": str(tmp_path / "m")})
    result = ip.run_cell("%%flow cellflow --retries 1 --retry-delay 0.1 --no-widget\n"
                         "value = flaky(load(1), marker)")
    assert result.error_in_exec is None and ip.user_ns["value"] == 2
    assert ip.user_ns["cellflow"].retries == 1
    assert ip.run_cell("%%flow bad --retries -1\nx = 1").error_in_exec is not None
    forgot = ip.run_cell("%%flow slip --retry-delay 600 --no-widget\nx = 1")  # no --retries
    said = str(forgot.error_in_exec or forgot.error_before_exec)
    assert "--retry-delay without --retries does nothing" in said  # one line since session 47
    ip.push({"always_fails": always_fails})
    failed = ip.run_cell("%%flow failing --retries 1 --no-widget\nvalue = always_fails(load(1))")
    assert isinstance(failed.error_in_exec, FlowFailed)  # raised after the second attempt
    with open_store() as store:
        [stored] = [r for r in store.list_runs(limit=5) if r.flow_name == "failing"]
    assert stored.state == "Failed" and "attempt 2 of 2: every attempt failed" in stored.message
    cells = ["%load_ext labloom", "%%tasks\ndef one():\n    return 1",
             "%%flow nightly --retries 2 --retry-delay 60,600\nvalue = one()"]
    source = export_notebook(write_notebook(tmp_path, cells), check=False).path.read_text()
    assert '@flow(name="nightly", retries=2, retry_delay=[60, 600])' in source


FLOWS = """
    from pathlib import Path
    from labloom import flow, task

    @task
    def check(marker: str) -> int:
        tries = Path(marker)
        count = int(tries.read_text()) + 1 if tries.exists() else 1
        tries.write_text(str(count))
        raise ValueError(f"attempt {count}: the export is not there yet")

    @flow(retries=2, retry_delay=0.2)
    def etl(marker: str) -> int:
        return check(marker)
"""


def test_labloom_run_alerts_once_after_the_last_attempt(tmp_path: Path) -> None:
    hook = Hook([])
    try:
        write(tmp_path / "flows.py", FLOWS)
        marker = tmp_path / "tries"
        out = labloom(tmp_path, "run", "flows.py:etl", "-p", f"marker={marker}",
                      "--notify", hook.url, LABLOOM_NOTIFY_DELAYS="0.2")
        assert out.returncode == 1, out.stderr
        assert marker.read_text() == "3"  # every attempt ran before the process ended
        assert hook.connections_so_far() == 1 and len(hook.bodies) == 1
        assert hook.bodies[0]["error"].endswith("(after 3 attempts)")
        assert "attempt 1 of 3 failed" in out.stdout + out.stderr
    finally:
        hook.close()


@contextlib.contextmanager
def serving(tmp_path: Path, flows: str, every: str, name: str) -> Iterator[Hook]:
    """``flows.py:etl`` scheduled ``--every`` with a local alert hook, ``labloom serve``
    running it; after, SIGTERM stops it within its grace of 1 s and the runs' terminate wait,
    a run waiting for its next attempt included."""
    hook = Hook([])
    write(tmp_path / "flows.py", flows)
    added = labloom(tmp_path, "schedule", "add", "flows.py:etl", "--every", every, "--name",
                    name, "-p", f"marker={tmp_path / 'tries'}", "--notify", hook.url)
    assert added.returncode == 0, added.stderr
    first_slot_in(tmp_path, name, 1.0)  # not a whole interval after the add
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", "--grace", "1",
                         LABLOOM_NOTIFY_DELAYS="0.2")
    try:
        yield hook
        proc.terminate()
        proc.communicate(timeout=30)
    finally:
        stop(proc)
        hook.close()


def test_a_scheduled_run_alerts_once_after_its_last_attempt(tmp_path: Path) -> None:
    with serving(tmp_path, FLOWS, "10s", "nightly") as hook:
        failures = lambda: [b for b in hook.bodies if b["state"] != "overdue"]  # noqa: E731
        wait_for(failures, 60, "the scheduled run's failure alert")
        assert (tmp_path / "tries").read_text() == "3"  # its three attempts ran before the alert
        [body] = failures()
        assert body["schedule"] == "nightly" and body["error"].endswith("(after 3 attempts)")


LATE = FLOWS.replace("retry_delay=0.2", "retry_delay=60")
# An hour's delay: a run ending within a guard of minutes did not wait it out.
HOUR_LATE = FLOWS.replace("retry_delay=0.2", "retry_delay=3600")


def waiting_for_its_retry(home: Path, delay: str = "60s") -> Any:
    """The id of the run ``labloom runs`` shows waiting ``delay`` for its second attempt."""
    listed = labloom(home, "runs", "--json")
    runs = json.loads(listed.stdout) if listed.returncode == 0 else []
    return runs and f"starts in {delay}" in runs[0]["message"] and runs[0]["id"]


def test_an_overdue_alert_says_the_run_waits_for_its_next_attempt(tmp_path: Path) -> None:
    # The next slot came while the run waited for its retry: the alert said it hung ("give the
    # flow or its tasks a timeout"), not that it waits to retry.
    with serving(tmp_path, LATE, "1h", "often") as hook:
        # Waiting for its retry first, then its next slots near: 2 s apart from the start, a
        # loaded machine's run was still in its first attempt at the next slot (session 48).
        wait_for(lambda: waiting_for_its_retry(tmp_path), 60, "the run to wait for its retry")
        due_every(tmp_path, "often", 1)
        overdue = lambda: [b for b in hook.bodies if b["state"] == "overdue"]  # noqa: E731
        [body] = wait_for(overdue, 60, "the overdue alert")
        assert "(attempt 1 of 3 failed: " in body["error"]
        assert "fewer retries or a shorter retry_delay" in body["error"]
        assert "a timeout" not in body["error"]


def test_a_run_waiting_for_its_next_attempt_is_cancelled_from_another_process(
    tmp_path: Path,
) -> None:
    write(tmp_path / "flows.py", HOUR_LATE)
    proc = start_labloom(tmp_path, "run", "flows.py:etl", "-p", f"marker={tmp_path / 'tries'}")
    try:
        run_id = wait_for(lambda: waiting_for_its_retry(tmp_path, "3600s"), 60,
                          "the run to wait for its second attempt")
        assert labloom(tmp_path, "cancel", run_id).returncode == 0
        _, err = proc.communicate(timeout=120)  # a guard: not the hour's delay
        assert proc.returncode == 1 and "Cancelled" in err
        shown = labloom(tmp_path, "show", run_id).stdout
        assert "Cancelled" in shown and "before attempt 2 of 3" in shown
    finally:
        stop(proc)


def test_the_live_view_shows_the_wait_then_the_new_attempts_states(tmp_path: Path) -> None:
    from labloom.dag.model import ViewGraph

    @flow(retries=1, retry_delay=0.3)
    def nightly(marker: str) -> int:
        return flaky(load(1), marker)

    view, seen = ViewGraph(), []
    lock = threading.Lock()

    def watch(batch: Any) -> None:
        with lock:
            for event in batch:  # one at a time: a slow thread may get both attempts at once
                view.apply([event])
                header = view.header_json(time.time())
                seen.append((header["state"], header["message"], header["counts"]))

    run = nightly.run(marker=str(tmp_path / "m"), background=True)
    run.subscribe(watch, replay=True)
    assert run.wait(timeout=20) is State.COMPLETED
    wait_for(lambda: seen and seen[-1][0] == "Completed", 60, "the view to see the end")
    waiting = [item for item in seen if "attempt 2 starts in 0.3s" in item[1]]
    assert waiting and waiting[0][0] == "Running" and waiting[0][2].get("Failed") == 1
    assert seen[-1][1].startswith("completed at attempt 2 of 2")
    assert seen[-1][2] == {"Completed": 2}  # the failed task run shows its new attempt's state


def test_a_view_opened_while_it_waits_shows_the_note_over_the_failed_states() -> None:
    """A view opened during the retry delay (a widget shown late, a slow thread) is replayed
    the run so far; applied an event at a time, the retry's note came before the task runs'
    states, so it showed over a run with nothing failed (seen once in CI)."""
    from labloom.dag.model import ViewGraph

    @flow(retries=1, retry_delay=1.5)
    def nightly(marker: str) -> int:
        return flaky(load(1), marker)

    with tempfile.TemporaryDirectory() as folder:
        run = nightly.run(marker=str(Path(folder) / "m"), background=True)
        wait_for(lambda: any("attempt 2 starts" in event.message for event in run.events()
                             if type(event).__name__ == "RunStateChanged"), 20,
                 "the run to wait for its second attempt")
        view, seen = ViewGraph(), []
        for event in run.events():  # the replay a late subscriber gets, an event at a time
            view.apply([event])
            header = view.header_json(time.time())
            seen.append((header["message"], header["counts"]))
        assert run.wait(timeout=20) is State.COMPLETED
    noted = [counts for message, counts in seen if "attempt 2 starts" in message]
    assert noted and all(counts.get("Failed") == 1 for counts in noted), seen


def test_an_interrupt_while_it_waits_cancels_it_at_once() -> None:
    """Ctrl-C in a terminal, a kernel's interrupt in a notebook: the wait is cut short."""
    import _thread

    from labloom.core.observers import add_run_observer

    # An hour's delay: ending before the suite's timeout (300 s), it was not waited out.
    @flow(retries=2, retry_delay=3600)
    def nightly() -> int:
        return always_fails(load(1))

    runs: list[Any] = []
    remove = add_run_observer(runs.append)

    def interrupt_when_waiting() -> None:
        wait_for(lambda: runs and "starts in 3600s" in runs[0].message, 60, "the wait")
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_waiting, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            nightly.run()
    finally:
        remove()
    assert runs[0].state is State.CANCELLED
    assert runs[0].message.startswith("interrupted before attempt 2 of 3")


def test_a_subflow_waiting_for_its_next_attempt_ends_with_its_caller() -> None:
    """A subflow runs in its caller's body: while it waited for its next attempt, cancelling
    the caller (or the caller's timeout) waited out the delay and the attempts after it."""

    @flow(retries=1, retry_delay=3600)  # an hour: the guards below are minutes
    def extract() -> int:
        return always_fails(load(1))

    @flow
    def nightly() -> int:
        return extract()

    @flow(timeout=1)
    def bounded() -> int:
        return extract()

    def subflows() -> list[Any]:
        with open_store() as store:
            return [r for r in store.list_runs(limit=10) if r.flow_name == "extract"]

    run = nightly.run(background=True)
    wait_for(lambda: any("starts in 3600s" in r.message for r in subflows()), 60,
             "the subflow to wait")
    run.cancel()
    assert run.wait(timeout=120) is State.CANCELLED  # not after the subflow's hour
    run = bounded.run(background=True)
    assert run.wait(timeout=120) is State.FAILED and run.timed_out
    assert [r.state for r in subflows()] == ["Cancelled", "Cancelled"]


def test_a_failed_task_runs_traceback_is_said_once_per_attempt() -> None:
    """`labloom logs` of a retried run printed each failed attempt's traceback twice: in the
    task run's logs and again under the run's own line, which names the task already."""

    @task
    def fetch() -> None:
        raise ConnectionError("server down")

    @flow(retries=1)
    def nightly() -> None:
        fetch()

    run = nightly.run()
    assert run.state is State.FAILED
    everything = "\n".join(line.text for line in run.logs())
    assert everything.count("Traceback") == 1  # attempt 1's, in fetch's logs
    assert "attempt 1 of 2 failed: 1 task run(s) did not succeed; first: fetch" in everything
