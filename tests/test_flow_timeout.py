"""``@flow(timeout=...)``: a run that takes longer ends Failed, naming its timeout, with what
had not ended cancelled; calling the flow raises ``FlowTimeoutError``. A nightly run whose
database hangs must end (and alert), not hold the schedule for good."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import wait_for
from labloom import FlowTimeoutError, State, flow, task
from labloom.export.exporter import export_notebook
from labloom.store import open_store
from run_helpers import runs_started
from test_export import write_notebook


class Hold:
    """What hangs() waits on, made anew for each test: a call a test before left waiting is
    released at that test's end and says it returned there, never in a later test."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = threading.Event()  # a call of hangs() is running
        self.returned: list[int] = []  # calls of hangs() that got past their wait


CURRENT = [Hold()]


@task
def quick(i: int) -> int:
    return i


@task
def hangs(x: int) -> int:
    hold = CURRENT[0]
    hold.held.set()
    hold.release.wait(300)  # every test releases it at its end (the fixture below)
    hold.returned.append(x)
    return x


@flow(timeout=1)
def nightly() -> Any:
    first = quick.map(range(3))
    return quick(hangs(first[0]))


@pytest.fixture(autouse=True)
def hold() -> Any:
    CURRENT[0] = Hold()
    yield CURRENT[0]
    CURRENT[0].release.set()


def test_a_run_past_its_timeout_ends_failed_naming_it(hold: Hold) -> None:
    with pytest.raises(FlowTimeoutError, match=r"flow 'nightly' timed out after 1s \(timeout=1\)"):
        nightly()
    assert hold.held.is_set() and hold.returned == []  # it ended while hangs() still waited
    run = nightly.run()
    assert run.state is State.FAILED and "timed out after 1s" in run.message
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert [states[f"quick[{i}]"][0] for i in range(3)] == [State.COMPLETED] * 3
    assert states["hangs"][0] is State.CANCELLED and "timed out" in states["hangs"][1]
    assert states["quick-2"][0] is State.CANCELLED
    with open_store() as store:
        stored = store.get_run(run.id)
    assert stored is not None and stored.state == "Failed" and "timeout=1" in stored.message


def test_a_run_in_time_is_untouched_and_leaves_no_clock(hold: Hold) -> None:
    hold.release.set()
    run = nightly.run()
    assert run.state is State.COMPLETED and run.result() == 0
    time.sleep(1.2)  # past the timeout: the clock was stopped with the run
    clock = f"labloom-timeout-{run.id}"
    assert run.state is State.COMPLETED
    assert clock not in [thread.name for thread in threading.enumerate()]


def test_a_retry_has_the_timeout_anew(hold: Hold) -> None:
    run = nightly.run()
    assert run.state is State.FAILED
    run.retry()
    assert run.state is State.FAILED and "timed out" in run.message  # it hung again
    hold.release.set()
    run.retry()
    assert run.state is State.COMPLETED and run.result() == 0


def test_a_cancel_before_the_timeout_stays_cancelled() -> None:
    run = nightly.run(background=True)
    wait_for(lambda: run.state.is_final or any(
        tr.name == "hangs" and tr.state is State.RUNNING for tr in run.tasks), 30, "hangs() to run")
    run.cancel()
    run.wait()
    time.sleep(1.2)
    assert run.state is State.CANCELLED and "timed out" not in run.message


def test_on_the_local_executor_the_call_running_ends_first() -> None:
    seen: list[State] = []  # the run's state once the call saw itself cancelled

    @task
    def slow() -> int:
        # Runs until its run timed out (its task run Cancelled by it), not a sleep past the
        # timeout, which a loaded machine may see end first; the run is not over until then.
        [run] = runs
        [me] = [tr for tr in run.tasks if tr.name == "slow"]
        wait_for(lambda: me.state is State.CANCELLED, 120, "the run's timeout")
        seen.append(run.state)
        return 1

    @flow(timeout=timedelta(seconds=0.5), executor="local")
    def short() -> Any:
        return quick(slow())

    with runs_started() as runs:
        run = short.run()
    assert run.state is State.FAILED and "timed out after 0.5s" in run.message
    assert [tr.state for tr in run.tasks] == [State.CANCELLED, State.CANCELLED]
    assert seen == [State.RUNNING]  # the timeout came while the call ran, and the run waited


@pytest.mark.parametrize("bad", [0, -5, math.nan, math.inf, "60", True])
def test_a_bad_timeout_is_refused_where_the_flow_is_defined(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"@flow: timeout must be a finite number of seconds > 0"):
        flow(timeout=bad)(lambda: None)


def test_flow_cells_take_a_timeout_and_export_it(ip: Any, tmp_path: Path) -> None:
    ip.push({"hangs": hangs, "quick": quick})
    result = ip.run_cell("%%flow cellflow --timeout 1 --no-widget\nvalue = quick(hangs(2))")
    assert isinstance(result.error_in_exec, FlowTimeoutError)
    cells = ["%load_ext labloom", "%%tasks\ndef one():\n    return 1",
             "%%flow nightly --timeout 3600\nvalue = one()"]
    source = export_notebook(write_notebook(tmp_path, cells), check=False).path.read_text()
    assert '@flow(name="nightly", timeout=3600)' in source
