"""A run still going when its process exits ends recorded: a script, and a kernel shut down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kernel_helpers import kernel
from labloom.core import threading_internals
from labloom.store import open_store
from store_helpers import env_for, run_script

REASON = "the process exited while the run was running"

SCRIPT = """
import sys, time
from pathlib import Path
from labloom import flow, task

@task
def quick(i):
    return i

@task
def slow(values):
    # Still running at exit, until the exit ended its run (the thread pool waits for it, the
    # run does not): not a sleep, which a loaded machine may see end first.
    deadline = time.monotonic() + 60  # a guard: the run then completes, and the test fails
    while not ("run" in globals() and run.state.is_final) and time.monotonic() < deadline:
        time.sleep(0.01)

@flow
def leaves_early(n):
    slow(quick.map(range(n)))

run = leaves_early.run(n=int(sys.argv[1]), background=True)
deadline = time.monotonic() + 60
while not any(t.name == "slow" and t.state.value == "Running" for t in run.tasks):
    assert time.monotonic() < deadline
    time.sleep(0.01)
# the script ends here, with the run still going
"""


def store_rows(home: Path) -> tuple[object, dict[str, str]]:
    os.environ["LABLOOM_HOME"] = str(home)  # read that store (the fixture restores it)
    with open_store() as store:
        [run] = store.list_runs()
        return run, {t.name: t.state for t in store.task_runs(run.id)}


@pytest.mark.parametrize("n", [10, 10_000])
def test_a_script_that_exits_mid_run_records_the_run_and_its_finished_task_runs(
    tmp_path: Path, n: int
) -> None:
    script = tmp_path / "leaves_early.py"
    script.write_text(SCRIPT)
    out = run_script(tmp_path / "home", script, str(n))
    assert out.returncode == 0, out.stderr
    run, states = store_rows(tmp_path / "home")
    assert (run.state, run.message) == ("Cancelled", REASON)  # type: ignore[attr-defined]
    assert [states[f"quick[{i}]"] for i in range(n)] == ["Completed"] * n
    assert states["slow"] == "Cancelled"


CELLS = [
    "%load_ext labloom",
    """%%tasks
import time

def quick(i):
    return i

def slow(values):
    # As the script's: still running at the kernel's exit, until the exit ended its run.
    deadline = time.monotonic() + 60
    while not ("run" in globals() and run.state.is_final) and time.monotonic() < deadline:
        time.sleep(0.01)
""",
    """%%flow leaves_early --background --no-widget
slow(quick.map(range(5)))
""",
    """import time
run = _  # the FlowRun the --background cell returned
deadline = time.monotonic() + 60
while not any(t.name == "slow" and t.state.value == "Running" for t in run.tasks):
    assert time.monotonic() < deadline
    time.sleep(0.01)
""",
]


INTERRUPTED = """
import sys, threading
from pathlib import Path
from labloom import flow, task

@task
def train(i):
    (Path(sys.argv[1]) / str(i)).touch()
    threading.Event().wait(120)  # an hour's training: still running when Ctrl-C comes

@flow
def sweep():
    train.map(range(2))

sweep()
"""


def test_ctrl_c_of_a_script_says_why_it_has_not_exited_and_a_second_exits(
    tmp_path: Path,
) -> None:
    """Ctrl-C cancels the run at once, but the process waits for the calls still running on
    its (non-daemon) task threads, as Python's thread pools do: that wait was silent, as long
    as the task's code ran, and looked like a hang."""
    script, started = tmp_path / "sweep.py", tmp_path / "started"
    script.write_text(INTERRUPTED)
    started.mkdir()
    process = subprocess.Popen([sys.executable, str(script), str(started)],
                               env=env_for(tmp_path / "home"), stderr=subprocess.PIPE, text=True)
    try:
        # Both calls in their task's code, not only the first: under load Ctrl-C came while
        # the flow body still handed the second to its thread, which then never ran its code,
        # and the process rightly said it waited for 1 call (session 48).
        deadline = time.monotonic() + 60
        while len(list(started.iterdir())) < 2:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        said = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                if line.startswith("[labloom] waiting for 2 task call(s) still running"):
                    said.set()

        threading.Thread(target=read, daemon=True).start()
        assert said.wait(30), "".join(lines)
        assert "Press Ctrl-C again to exit now" in lines[-1]
        process.send_signal(signal.SIGINT)
        process.wait(30)
    finally:
        process.kill()
        process.wait()
    run, states = store_rows(tmp_path / "home")
    assert run.state == "Cancelled"  # type: ignore[attr-defined]
    assert set(states.values()) == {"Cancelled"}


def test_a_kernel_shut_down_mid_run_records_the_run(tmp_path: Path) -> None:
    with kernel(tmp_path, tmp_path / "home") as k:
        for cell in CELLS:
            k.ok(cell)
    run, states = store_rows(tmp_path / "home")
    assert (run.state, run.message) == ("Cancelled", REASON)  # type: ignore[attr-defined]
    assert [states[f"quick[{i}]"] for i in range(5)] == ["Completed"] * 5
    assert states["slow"] == "Cancelled"


def test_this_python_ends_runs_before_its_threads_join() -> None:
    # A Python without threading's private hook fails here, by name: its runs would still end
    # recorded, but only after the thread pools ran every queued task.
    assert threading_internals.in_use() == threading_internals.BEFORE_THREADS_JOIN


def test_without_threadings_hook_atexit_ends_the_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import atexit
    import threading

    def callback() -> None:
        pass

    monkeypatch.delattr(threading, "_register_atexit")  # what another Python lacks
    before = atexit._ncallbacks()
    try:
        assert threading_internals.register_at_exit(callback) == threading_internals.AT_EXIT
        assert atexit._ncallbacks() == before + 1  # atexit holds it now
    finally:
        atexit.unregister(callback)


LONG_TASK = """
import sys, threading
from pathlib import Path
from labloom import flow, task

@task
def train(started):
    Path(started).touch()
    threading.Event().wait(120)  # inside a call that no interrupt reaches

@flow
def nightly(started: str):
    train(started)
"""


def test_ctrl_c_of_labloom_run_on_the_local_executor_records_the_run_cancelled(
    tmp_path: Path,
) -> None:
    # `labloom run` runs the flow in a thread of its own; on the local executor the task's
    # call runs there too, so the run could not finish its cancel: the command waited 10 s
    # for it, then exited, leaving the run to be found Crashed.
    script, started = tmp_path / "nightly.py", tmp_path / "started"
    script.write_text(LONG_TASK)
    process = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", f"{script}:nightly", "--executor", "local",
         "--param", f"started={started}"],
        env=env_for(tmp_path / "home"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, err
    run, states = store_rows(tmp_path / "home")
    assert run.state == "Cancelled", err  # type: ignore[attr-defined]
    assert states == {"train": "Cancelled"}
