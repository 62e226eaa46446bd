"""Ctrl-C of `labloom run` while a map runs on the embedded Dask cluster, or on a LocalCluster
per run: the run is recorded Cancelled and the command ends with two lines. Before session 47:

- embedded: multiprocessing's resource tracker added its own, after the shell's prompt was
  back ("UserWarning: resource_tracker: There appear to be 12 leaked semaphore objects to clean
  up at shutdown" and the ``warnings.warn`` line under it): ``labloom run`` ends with
  ``os._exit`` on Ctrl-C, which skipped multiprocessing's exit step that lets the worker
  processes' semaphores go (``core/process_internals.py``);
- per run: about 40 lines came first: each worker process died of the SIGINT (a terminal sends
  it to the whole process group) with its KeyboardInterrupt traceback, distributed said it lost
  computed tasks, that its async instructions ended with CancelledError, and that it killed
  each worker after 4 s. Its workers now ignore SIGINT, as the embedded cluster's do, and the
  cluster closes as the embedded one does (``dask_cluster_close``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import alive, cli_env, labloom, stop, wait_for, write
from labloom.core import process_internals

FLOW = """
    import os
    import time
    from pathlib import Path

    from labloom import DaskExecutor, flow, task

    @task
    def train(x: int) -> int:
        Path(os.environ["STARTED"], str(os.getpid())).touch()  # the test's cue, and the worker
        time.sleep(float(os.environ["SLEEP"]))  # running as the Ctrl-C comes
        return x

    EMBEDDED = DaskExecutor(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    PER_RUN = DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 2, "threads_per_worker": 1, "dashboard_address": ":0"})

    @flow(executor=EMBEDDED if os.environ["CLUSTER"] == "embedded" else PER_RUN)
    def sweep() -> list[int]:
        return train.map(range(4))  # type: ignore[return-value]
"""


def _interrupted(tmp_path: Path, cluster: str, presses: int, sleep: float) -> tuple[str, Path]:
    """`labloom run` of ``FLOW`` on ``cluster``, given ``presses`` Ctrl-C once its tasks run
    (each ``sleep`` s): its stderr, and the folder of its workers' pids."""
    write(tmp_path / "flows.py", FLOW)
    started = tmp_path / "started"
    started.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", "flows.py:sweep"],
        env=cli_env(tmp_path, LABLOOM_PROGRESS="0", STARTED=str(started), CLUSTER=cluster,
                    SLEEP=str(sleep)),
        cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(started.iterdir()):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr
            time.sleep(0.05)
        for press in range(presses):
            if press:
                time.sleep(0.5)  # an impatient user: not a bound on anything
            os.killpg(process.pid, signal.SIGINT)  # as a terminal does: to the whole group
        # Read to the end: the resource tracker and the workers hold stderr until they end.
        _out, err = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 130, err
    return err, started


def test_a_second_ctrl_c_while_the_run_settles_still_says_how_it_ended(tmp_path: Path) -> None:
    """The run's cluster per run closing (its busy workers given 4 s), a second Ctrl-C went on
    to the interpreter's exit, which waited for that close; "labloom: run ... Cancelled" was
    not said."""
    err, _ = _interrupted(tmp_path, "per run", presses=2, sleep=60)
    [run] = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert (run["state"], run["message"]) == ("Cancelled", "interrupted"), run
    lines = err.splitlines()
    assert lines[-2:] == [f"labloom: run {run['id']} of flow 'sweep' Cancelled: interrupted",
                          "labloom: interrupted"], err
    # The cancelled calls still running, if the close came to them (a second Ctrl-C may end
    # the command first): killed after distributed's 4 s, said so. They were taken as idle,
    # waited for 15 s, and said to have had no task running.
    assert lines[:-2] in ([], [
        "[labloom] closing the run's LocalCluster: 2 worker processes still running a task did "
        "not stop within 4 s and were killed (a call of the cancelled run, still running)"]), err


@pytest.mark.parametrize("cluster", ["embedded", "per run"])
def test_ctrl_c_mid_map_on_a_local_cluster_ends_in_two_lines(tmp_path: Path, cluster: str) -> None:
    assert process_internals.in_use() == process_internals.RUN_FINALIZERS
    err, started = _interrupted(tmp_path, cluster, presses=1, sleep=1)
    [run] = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert (run["state"], run["message"]) == ("Cancelled", "interrupted"), run
    assert err == (f"labloom: run {run['id']} of flow 'sweep' Cancelled: interrupted\n"
                   "labloom: interrupted\n"), err
    workers = [int(path.name) for path in started.iterdir()]
    wait_for(lambda: not any(alive(pid) for pid in workers), 30, "the workers to end")
