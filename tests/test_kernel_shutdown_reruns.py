"""A finished task does not run again when its kernel shuts down (notebook/kernel_shutdown.py).

ipykernel answers a shutdown request by terminating the kernel's child processes before
Python's exit handlers run: the embedded Dask cluster's workers died while its nannies and
scheduler (in the kernel) lived on, and the client still held the finished run's results. The
nannies started new workers and the scheduler ran the tasks again there: here a task that
appends a line to a file appended it again, in 2 of 3 shutdowns of a kernel shut down as
JupyterLab does it (session 56). Real kernel (jupyter_client), real LocalCluster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kernel_helpers import kernel

FLOW = '''import os
from labloom import DaskExecutor, flow, task

@task
def note(x):
    with open({path!r}, "a") as f:  # a side effect, such as a mail sent
        f.write(f"{{x}} {{os.getpid()}}\\n")
    return x

@flow(executor=DaskExecutor(n_workers=2, threads_per_worker=1))
def notes():
    return [note(i) for i in range(4)]

run = notes.run()  # kept in the notebook: it holds its results on the cluster
assert run.result() == [0, 1, 2, 3]
'''


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
    # The processes that could run the task again are gone, before counting what they did.
    deadline = time.monotonic() + 60
    while _alive(group):
        assert time.monotonic() < deadline, "the kernel's processes outlived it by 60 s"
        time.sleep(0.1)
    assert sorted(line.split()[0] for line in before) == ["0", "1", "2", "3"]
    assert side.read_text().splitlines() == before, "a finished task ran again at shutdown"


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group that is not ours: still there
        return True
    return True
