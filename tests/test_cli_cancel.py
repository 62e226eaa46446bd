"""`labloom cancel RUN`: a run going in another process (a `labloom run` in another terminal,
a scheduled run that hung) cancelled from the command line through the real entry point, as
the Flows panel's Cancel does; runs that ended, unknown runs and other users' runs refused.
And `labloom runs --state` lists them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_helpers import wait_for
from store_helpers import cli, env_for

FLOW = """
import time
from pathlib import Path
from labloom import flow, task

@task
def step(i, gate):
    if i == 2:
        Path(gate).touch()
        time.sleep(60)
    return i

@flow
def nightly(gate: str):
    return step.map(range(4), gate=[gate] * 4)

if __name__ == "__main__":
    run = nightly.run(gate=__import__("sys").argv[1], executor="threads")
    print(run.state.value, run.message, flush=True)
    __import__("os")._exit(0)  # not the minute the hung call still sleeps
"""


def _start(home: Path, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "nightly.py"
    script.write_text(FLOW)
    gate = tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, str(script), str(gate)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(home, **env))
    wait_for(gate.exists, 30, "the run's hung task")
    [run] = json.loads(cli(home, "runs", "--json").stdout)
    return proc, run["id"]


def test_a_run_in_another_process_is_cancelled(labloom_home: Path, tmp_path: Path,
                                               store_backend: str) -> None:
    proc, run_id = _start(labloom_home, tmp_path)
    try:
        done = cli(labloom_home, "cancel", run_id[:6])
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"run {run_id}: Cancelled"
        out, _ = proc.communicate(timeout=30)
        assert out.startswith("Cancelled cancelled from the command line (labloom cancel)")
        again = cli(labloom_home, "cancel", run_id)
        assert again.returncode == 1
        assert f"run {run_id}: not cancelled: run {run_id} has already ended (Cancelled)" \
            in again.stdout
    finally:
        proc.kill()
        proc.communicate()


def test_unknown_runs_and_other_users_runs_are_refused(labloom_home: Path, tmp_path: Path,
                                                      store_backend: str) -> None:
    unknown = cli(labloom_home, "cancel", "0123456789ab")
    assert unknown.returncode == 2 and "no run '0123456789ab' in the store" in unknown.stderr
    bad_wait = cli(labloom_home, "cancel", "x", "--wait", "nan")
    assert bad_wait.returncode == 2 and "--wait must be a finite number of seconds" \
        in bad_wait.stderr
    proc, run_id = _start(labloom_home, tmp_path, USER="alice", LOGNAME="alice")
    try:
        refused = cli(labloom_home, "cancel", run_id, USER="bob", LOGNAME="bob")
        assert refused.returncode == 2 and "alice" in refused.stderr, refused.stderr
        assert proc.poll() is None  # still running
        by_admin = cli(labloom_home, "cancel", run_id, USER="bob", LOGNAME="bob",
                       LABLOOM_ADMINS="bob")
        assert by_admin.returncode == 0 and "Cancelled" in by_admin.stdout
    finally:
        proc.kill()
        proc.communicate()


def test_runs_lists_by_state(labloom_home: Path, tmp_path: Path, store_backend: str) -> None:
    proc, run_id = _start(labloom_home, tmp_path)
    try:
        assert cli(labloom_home, "cancel", run_id).returncode == 0
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    listed = json.loads(cli(labloom_home, "runs", "--state", "cancelled", "--json").stdout)
    assert [run["id"] for run in listed] == [run_id]
    none = cli(labloom_home, "runs", "--state", "Failed")
    assert none.stdout.strip() == "no runs recorded in state Failed"
    bad = cli(labloom_home, "runs", "--state", "done")
    assert bad.returncode == 2 and "--state must be one of pending, running, completed, " \
        "failed, cancelled, crashed, got 'done'" in bad.stderr
