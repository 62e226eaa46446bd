"""Ctrl-C while a run's executor starts (`labloom run sweep.py:sweep`: the embedded Dask
cluster takes seconds to come up, and a user who sees a wrong parameter presses Ctrl-C): the
run is recorded Cancelled, "interrupted", as a Ctrl-C once it runs is. Before session 46 it was
recorded Failed with the message "the executor could not start: " (a KeyboardInterrupt's
empty text), so `labloom runs --state failed` and a schedule's alert counted it a failure.

The executor that starts slowly is the thread executor with a start that waits (the local
executors are the test seam): a real Dask cluster's start is too quick to hit on an idle
machine and too slow to bound on a busy one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import alive, cli_env, labloom, stop, wait_for, write

FLOW = """
    import os
    import threading
    from pathlib import Path

    from labloom import ThreadExecutor, flow, task

    class SlowToStart(ThreadExecutor):
        def start(self):
            Path(os.environ["STARTING"]).touch()  # the test's cue: the executor is starting
            threading.Event().wait(60)  # a cluster coming up
            super().start()

    @task
    def train(x: int) -> int:
        return x

    @flow(executor=SlowToStart())
    def sweep() -> int:
        return train(1)
"""


def test_ctrl_c_while_the_executor_starts_records_the_run_cancelled(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    marker = tmp_path / "starting"
    process = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", "flows.py:sweep"],
        env=cli_env(tmp_path, LABLOOM_PROGRESS="0", STARTING=str(marker)), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and process.poll() is None, process.stderr
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 130, err
    assert err.endswith("labloom: interrupted\n") and "Traceback" not in err, err
    [run] = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert (run["state"], run["message"]) == ("Cancelled", "interrupted"), run


DASK_FLOW = """
    from labloom import flow, task

    @task
    def train(x: int) -> int:
        return x

    @flow(executor="dask")
    def sweep() -> int:
        return train(1)
"""


def _importing_workers(pid: int) -> list[int]:
    """The worker processes ``pid`` (any of its threads) spawned whose Python is up: it catches
    SIGINT. Such a worker is then importing distributed, and reading its start-up data from
    ``pid``. Not multiprocessing's resource tracker, started first, which also catches SIGINT
    for a moment: this waited for it, so the Ctrl-C came before any worker (session 48)."""
    found = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{pid}/task/{thread}/children").read_text().split()
            for child in children:
                if b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes():
                    continue
                status = Path(f"/proc/{child}/status").read_text()
                caught = next(line for line in status.splitlines() if line.startswith("SigCgt"))
                if int(caught.split()[1], 16) & (1 << (signal.SIGINT - 1)):
                    found.append(int(child))
    return found


@pytest.mark.parametrize("cluster", [[], ["--cluster", "local"]], ids=["embedded", "per-run"])
def test_ctrl_c_while_the_dask_cluster_starts_prints_one_line(
    tmp_path: Path, cluster: list[str]
) -> None:
    # A terminal's Ctrl-C goes to the whole process group: the CLI and the embedded cluster's
    # worker processes, which were still importing. Before, each worker printed its
    # KeyboardInterrupt traceback (pages, for one key press), and multiprocessing's resource
    # tracker warned of "leaked semaphore objects" after "labloom: interrupted". Then each
    # worker failed, with a FileNotFoundError traceback, on a semaphore the command had let go
    # of at its exit (before session 48): they are killed first (core/abandoned_children).
    write(tmp_path / "flows.py", DASK_FLOW)
    process = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", "flows.py:sweep", *cluster],
        env=cli_env(tmp_path, LABLOOM_PROGRESS="0", LABLOOM_CLUSTERS=json.dumps(
            {"local": {"cluster_class": "distributed.LocalCluster"}})),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while not (workers := _importing_workers(process.pid)):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _out, err = process.communicate(timeout=60)
        wait_for(lambda: not any(alive(pid) for pid in workers), 30, "the workers to end")
    finally:
        stop(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers of ours left behind, if any
    assert process.returncode == 130, err
    assert err == "labloom: interrupted\n", err
    [run] = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert (run["state"], run["message"]) == ("Cancelled", "interrupted"), run
