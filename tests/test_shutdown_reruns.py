"""A finished task does not run again when its process stops: a kernel shut down
(notebook/kernel_shutdown.py), a `labloom run` stopped by a SIGTERM to its process group
(executors/dask_stopping.py).

ipykernel answers a shutdown request by terminating the kernel's child processes before
Python's exit handlers run: the embedded Dask cluster's workers died while its nannies and
scheduler (in the kernel) lived on, and the client still held the finished run's results. The
nannies started new workers and the scheduler ran the tasks again there: here a task that
appends a line to a file appended it again, in 2 of 3 shutdowns of a kernel shut down as
JupyterLab does it (session 56). Real kernel (jupyter_client), real LocalCluster, real CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kernel_helpers import kernel
from labloom.core import process_internals
from side_effects import APPEND_LINE
from store_helpers import env_for

FLOW = '''import os
from labloom import DaskExecutor, flow, task
''' + APPEND_LINE + '''
@task
def note(x):
    append_line({path!r}, f"{{x}} {{os.getpid()}}")  # a side effect, such as a mail sent
    return x

@flow(executor=DaskExecutor(n_workers=2, threads_per_worker=1))
def notes():
    return [note(i) for i in range(4)]

run = notes.run()  # kept in the notebook: it holds its results on the cluster
assert run.result() == [0, 1, 2, 3]
'''


# ipykernel's Kernel._progressively_terminate_all_children: its sleeps between signals.
IPYKERNEL_SIGNAL_SCHEDULE = sum((0.01, 0.03, 0.1, 0.3, 1, 3, 10))


def test_a_finished_task_does_not_run_again_as_the_kernel_shuts_down(tmp_path: Path) -> None:
    side = tmp_path / "side-effects.txt"
    with kernel(tmp_path, tmp_path / "home") as k:
        k.ok(FLOW.format(path=str(side)), timeout=120)
        before = side.read_text().splitlines()
        group = k.manager.provisioner.pgid  # the kernel and its children (the workers)
        # JupyterLab's wait, longer: ipykernel's terminating of the children goes on to its
        # end, as on a machine where the kernel takes its time (a shorter wait SIGTERMs the
        # kernel meanwhile, which only sometimes hid the new runs).
        k.manager.shutdown_wait_time = 60.0
        asked = time.monotonic()
    shut_down_in = time.monotonic() - asked
    _until_gone(group)  # what could run the task again, before counting what it did
    assert sorted(line.split()[0] for line in before) == ["0", "1", "2", "3"]
    assert side.read_text().splitlines() == before, "a finished task ran again at shutdown"
    # ipykernel signals the kernel's children, SIGTERM then SIGKILL, each on that schedule
    # until none is left. multiprocessing's resource tracker ignores SIGTERM: before labloom
    # ended it first (core/process_internals), the shutdown took both schedules, 29 s.
    assert shut_down_in < IPYKERNEL_SIGNAL_SCHEDULE, shut_down_in


def test_the_resource_tracker_is_stopped_by_the_path_this_python_has() -> None:
    # Named, so that a Python that moved it fails here, not as a slow shutdown above.
    assert process_internals.tracker_stop_in_use() == process_internals.STOP_TRACKER


STOPPED_RUN = """import os, threading
from labloom import DaskExecutor, flow, task
""" + APPEND_LINE + """
SIDE = os.environ["SIDE"]

@task
def note(x):
    append_line(SIDE, f"{x} {os.getpid()}")
    return x

@task
def wait(xs):
    append_line(SIDE, "waiting")
    threading.Event().wait(120)  # still running when the run is stopped
    return xs

@flow(executor=DaskExecutor(cluster_class="distributed.LocalCluster",
                            cluster_kwargs={"n_workers": 2, "threads_per_worker": 1}))
def notes():
    return wait([note(i) for i in range(4)])
"""


def test_a_finished_task_does_not_run_again_when_a_sigterm_stops_the_run(
    tmp_path: Path,
) -> None:
    # `labloom serve` stops a run (its timeout) with a SIGTERM to the run's process group:
    # the workers of its cluster per run die with it while its nannies and scheduler live on.
    # Before, the nannies started new workers and the run's end waited while they ran the
    # four finished tasks again (3 of 3 times).
    side = tmp_path / "side-effects.txt"
    (tmp_path / "notes.py").write_text(STOPPED_RUN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", f"{tmp_path / 'notes.py'}:notes"],
        env=env_for(tmp_path / "home", SIDE=str(side)), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (side.exists() and "waiting" in side.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.1)
        before = side.read_text().splitlines()
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _until_gone(proc.pid)
    assert proc.returncode == 130, output
    assert sorted(line.split()[0] for line in before) == ["0", "1", "2", "3", "waiting"]
    assert side.read_text().splitlines() == before, output


def _until_gone(group: int) -> None:
    deadline = time.monotonic() + 60
    while _alive(group):
        assert time.monotonic() < deadline, "the processes outlived their leader by 60 s"
        time.sleep(0.1)


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group that is not ours: still there
        return True
    return True
