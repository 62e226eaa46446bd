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
from cut_runs import HELD
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


def test_a_cancel_stopped_at_another_users_run_says_which_runs_were_asked(
    labloom_home: Path, tmp_path: Path, store_backend: str
) -> None:
    # Before, it said only that alice's run was refused: not that the run named before it was
    # asked (it is Cancelled) nor that the one after it was never asked (it ran on).
    script = tmp_path / "held.py"
    script.write_text(HELD)
    procs = {user: subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / user)], text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env_for(labloom_home, USER=user, LOGNAME=user))
        for user in ("alice", "bob")}
    try:
        wait_for(lambda: all(Path(f"{tmp_path / user}.{i}").exists()
                             for user in procs for i in range(3)), 60, "the six runs' tasks")
        ids = {user: [r["id"] for r in sorted(
            json.loads(cli(labloom_home, "runs", "--json", "--user", user).stdout),
            key=lambda r: r["parameters"]["i"])] for user in procs}
        mine, theirs = ids["bob"], ids["alice"]
        done = cli(labloom_home, "cancel", mine[0], theirs[0], mine[1], "--wait", "0",
                   USER="bob", LOGNAME="bob")
        assert done.returncode == 2, (done.stdout, done.stderr)
        err = " ".join(done.stderr.split())
        assert f"bob may not cancel run {theirs[0]}: it belongs to alice" in err, err
        assert (f"; cancel requested before it of run(s) {mine[0]}; not asked of run(s) "
                f"{mine[1]} (`labloom cancel {mine[1]}` asks them)") in err, err
        wait_for(lambda: _state(labloom_home, mine[0]) == "Cancelled", 60, "the asked run")
        for user in procs:
            (tmp_path / user).touch()
        outs = {user: proc.communicate(timeout=120)[0].split() for user, proc in procs.items()}
        assert outs["bob"] == [f"{mine[0]}=Cancelled", f"{mine[1]}=Completed",
                               f"{mine[2]}=Completed"], outs
        assert outs["alice"] == [f"{run_id}=Completed" for run_id in theirs], outs
    finally:
        for proc in procs.values():
            proc.kill()
            proc.communicate()


def _state(home: Path, run_id: str) -> str:
    listed = cli(home, "runs", "--json")
    return next((r["state"] for r in json.loads(listed.stdout or "[]") if r["id"] == run_id), "")
