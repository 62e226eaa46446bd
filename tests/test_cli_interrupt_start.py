"""Ctrl-C while a run's executor starts (`labloom run sweep.py:sweep`: the embedded Dask
cluster takes seconds to come up, and a user who sees a wrong parameter presses Ctrl-C): the
run is recorded Cancelled, "interrupted", as a Ctrl-C once it runs is. Before session 46 it was
recorded Failed with the message "the executor could not start: " (a KeyboardInterrupt's
empty text), so `labloom runs --state failed` and a schedule's alert counted it a failure.

The executor that starts slowly is the thread executor with a start that waits (the local
executors are the test seam): a real Dask cluster's start is too quick to hit on an idle
machine and too slow to bound on a busy one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import cli_env, labloom, stop, write

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
