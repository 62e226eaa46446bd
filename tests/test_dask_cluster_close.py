"""The embedded LocalCluster closing as its process exits (`labloom run`, a script), on real
worker processes: a worker that only takes long to exit is not killed, and one stuck in a call
is, said once by labloom.

`labloom run` of examples/sweep.py ended under load on distributed's "Worker process still
alive after 4.0 seconds, killing", once per worker: their interpreters, having imported
scikit-learn, took longer than the nanny's 4 s to exit once the workers had closed. Here a
worker's exit is made that slow by an exit handler that waits (as that teardown did), so the
case does not depend on the machine's load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_helpers import cli_env, labloom

SLOW_EXIT = textwrap.dedent('''
    import atexit
    import os
    import time
    from pathlib import Path

    from labloom import DaskExecutor, flow, task

    @task
    def fit(done: str) -> int:
        def slow_exit() -> None:  # as a worker that imported scikit-learn, under load
            Path(done + ".exiting").touch()
            time.sleep(float(os.environ.get("SLOW_EXIT_SECONDS", "5")))
            Path(done).write_text("exited")
        atexit.register(slow_exit)
        return 1

    @flow(executor=DaskExecutor(n_workers=1, threads_per_worker=1, dashboard_address=":0"))
    def sweep(done: str) -> int:
        return fit(done)
''')

STUCK = textwrap.dedent('''
    import ctypes
    import sys
    import time
    from pathlib import Path

    from labloom import DaskExecutor

    def stuck(started: str) -> None:
        Path(started).write_text("in")
        ctypes.PyDLL(None).sleep(60)  # C, holding the GIL: the worker cannot even stop

    if __name__ == "__main__":
        client = DaskExecutor(n_workers=1, threads_per_worker=1, dashboard_address=":0").client
        future = client.submit(stuck, sys.argv[1])
        while not Path(sys.argv[1]).exists():
            time.sleep(0.05)
        print("exiting", flush=True)
''')  # the cluster is closed at exit


def assert_said_once(stderr: str, kill: str) -> None:
    """``stderr`` says ``kill`` of the embedded cluster's workers once, and no other kill."""
    said = [line for line in stderr.splitlines() if "killed" in line or "closing" in line]
    assert len(said) == 1, stderr
    assert said[0].endswith(f"[labloom] closing the embedded Dask cluster: {kill}"), said


def test_a_worker_slow_to_exit_is_not_killed(tmp_path: Path) -> None:
    """Before: "Worker process still alive after 4.0 seconds, killing", and the worker's exit
    handler never finished."""
    (tmp_path / "sweep.py").write_text(SLOW_EXIT)
    done = tmp_path / "exited"
    run = labloom(tmp_path, "run", "sweep.py:sweep", "--param", f"done={done}", timeout=120,
                  LABLOOM_PROGRESS="0", LABLOOM_WORKER_EXIT_GRACE="60")  # (15 s: a slow CI's
    assert run.returncode == 0, run.stderr          # worker could take 10 before its exit)
    assert "still alive" not in run.stderr and "killed" not in run.stderr, run.stderr
    assert done.read_text() == "exited"  # it ended by itself


def test_a_worker_stuck_in_a_call_is_killed_and_that_is_said_once(tmp_path: Path) -> None:
    """Before: distributed's "Worker process still alive after 4.0 seconds, killing" (once per
    worker), with nothing saying that a task was still running."""
    (tmp_path / "stuck.py").write_text(STUCK)
    ended = subprocess.run([sys.executable, "stuck.py", str(tmp_path / "started")],
                           cwd=tmp_path, env=cli_env(tmp_path / "home"), capture_output=True,
                           text=True, timeout=120)
    assert ended.returncode == 0, ended.stderr
    assert "exiting" in ended.stdout
    assert "still alive" not in ended.stderr, ended.stderr
    assert_said_once(ended.stderr, "1 worker process still running a task did not stop within "
                     "4 s and was killed (a call that does not return, such as one stuck in C code)")


def test_an_idle_worker_past_its_grace_is_killed_said_once_and_the_run_kept(
    tmp_path: Path,
) -> None:
    """The idle worker's grace (15 s) is a setting, ``LABLOOM_WORKER_EXIT_GRACE``: past it,
    the worker is killed and that is said in one line naming the setting; the run's record is
    as it ended. Before, the grace was fixed, and this path had no test (it took over 15 s)."""
    (tmp_path / "sweep.py").write_text(SLOW_EXIT)
    done = tmp_path / "exited"
    run = labloom(tmp_path, "run", "sweep.py:sweep", "--param", f"done={done}", timeout=120,
                  LABLOOM_PROGRESS="0", LABLOOM_WORKER_EXIT_GRACE="1")
    assert run.returncode == 0, run.stderr
    assert "still alive" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert_said_once(run.stderr, "1 worker process with no task running did not end within "
                     "1 s of being asked and was killed (the machine too loaded to let it exit? "
                     "LABLOOM_WORKER_EXIT_GRACE gives it longer)")
    assert not done.exists()  # its exit handler was cut short: killed, not waited for
    runs = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert [(r["flow_name"], r["state"]) for r in runs] == [("sweep", "Completed")], runs


@pytest.mark.parametrize("per_run", [True, False], ids=["per run", "embedded"])
def test_a_grace_that_is_not_a_number_raises_as_the_cluster_starts(
    monkeypatch: pytest.MonkeyPatch, per_run: bool,
) -> None:
    """As every other LABLOOM_ number setting (core/env_numbers.py): read as the cluster
    starts and kept for its close. Before, it was read at exit, where a bad one was warned of
    and 15 s used (the run had run, with a setting the user never chose)."""
    from labloom import ClusterConfigError, DaskExecutor, flow, task
    from labloom.executors.dask_cluster_close import idle_exit_grace

    for text in ("soon", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("LABLOOM_WORKER_EXIT_GRACE", text)
        with pytest.raises(ClusterConfigError, match=(
                r"^\[labloom\] LABLOOM_WORKER_EXIT_GRACE must be a number of seconds above 0 "
                rf"\(how long an idle worker may take to exit once asked\), got '{text}': set "
                r"it to one, or unset it for the default \(15\)$")):
            idle_exit_grace()
    monkeypatch.setenv("LABLOOM_WORKER_EXIT_GRACE", "2.5")
    assert idle_exit_grace() == 2.5

    ran: list[int] = []

    @task
    def one() -> int:
        ran.append(1)
        return 1

    @flow
    def tiny() -> int:
        return one()

    monkeypatch.setenv("LABLOOM_WORKER_EXIT_GRACE", "soon")
    options = {"n_workers": 1, "threads_per_worker": 1, "processes": False,
               "dashboard_address": ":0"}
    executor = DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs=options) \
        if per_run else DaskExecutor(**options)
    with pytest.raises(ClusterConfigError, match="LABLOOM_WORKER_EXIT_GRACE must be"):
        tiny.run(executor=executor)
    assert not ran


def test_labloom_run_with_a_grace_that_is_not_a_number_stops_before_the_flow_runs(
    tmp_path: Path,
) -> None:
    (tmp_path / "sweep.py").write_text(SLOW_EXIT)
    done = tmp_path / "exited"
    run = labloom(tmp_path, "run", "sweep.py:sweep", "--param", f"done={done}", timeout=120,
                  LABLOOM_PROGRESS="0", LABLOOM_WORKER_EXIT_GRACE="soon")
    assert run.returncode == 2, run.stderr  # before: 0, the run done, a warning at exit
    assert ("labloom: error: LABLOOM_WORKER_EXIT_GRACE must be a number of seconds "
            "above 0") in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and not done.exists() and \
        not (tmp_path / "exited.exiting").exists(), run.stderr  # no task ran


def test_ctrl_c_while_the_cluster_closes_kills_its_workers_in_one_line(tmp_path: Path) -> None:
    """Ctrl-C during an idle worker's grace, at the end of `labloom run`: "Exception ignored in
    atexit callback" and a KeyboardInterrupt traceback through labloom's and distributed's
    code, then distributed's "reaping stray process" once per worker.

    The worker's exit takes longer than the test and its grace is longer still, so that only
    the Ctrl-C can end it: with 5 s and the default 15 s, a slow CI machine's nanny killed it
    before the Ctrl-C came, which was said "0 worker processes were killed"."""
    import os
    import signal
    import time

    from cli_helpers import stop

    (tmp_path / "sweep.py").write_text(SLOW_EXIT)
    done = tmp_path / "exited"
    process = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", "sweep.py:sweep", "--param", f"done={done}"],
        env=cli_env(tmp_path, LABLOOM_PROGRESS="0", SLOW_EXIT_SECONDS="120",
                    LABLOOM_WORKER_EXIT_GRACE="300"), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        exiting = tmp_path / "exited.exiting"  # the worker's exit handler began: closing
        deadline = time.monotonic() + 120
        while not exiting.exists():
            assert time.monotonic() < deadline and process.poll() is None, process.stderr
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does
        _out, err = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 0, err  # the run had completed
    assert err == ("[labloom] closing the embedded Dask cluster: interrupted; 1 worker process "
                   "was killed\n"), err
    assert not done.exists()
    runs = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert [(r["flow_name"], r["state"]) for r in runs] == [("sweep", "Completed")], runs


def test_a_ctrl_c_that_found_no_worker_left_says_so_not_zero_killed() -> None:
    """A Ctrl-C as the scheduler closes, the workers ended already (by themselves or killed
    past their grace, said in its own line): it printed "0 worker processes were killed"."""
    from labloom.executors.dask_cluster_close import interrupted_line

    name = "the embedded Dask cluster"
    assert interrupted_line(name, 0) == (
        "[labloom] closing the embedded Dask cluster: interrupted; its worker processes had ended")
    assert interrupted_line(name, 1).endswith("interrupted; 1 worker process was killed")
    assert interrupted_line(name, 3).endswith("interrupted; 3 worker processes were killed")


def test_a_cancelled_runs_calls_still_running_are_not_taken_for_idle_workers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """A LocalCluster per run closing after its run was cancelled mid-call: the scheduler had
    forgotten the cancelled calls, so each worker was taken as idle, waited for 15 s, and said
    to have had "no task running". Now it keeps distributed's 4 s, said for what it is."""
    import logging
    import time

    from labloom import DaskExecutor, State, flow, task

    started = tmp_path / "started"

    @task
    def long_fit() -> int:
        started.touch()
        time.sleep(60)
        return 1

    @flow
    def sweep() -> int:
        return long_fit()  # type: ignore[return-value]

    executor = DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"})
    with caplog.at_level(logging.INFO):
        run = sweep.run(executor=executor, background=True)
        deadline = time.monotonic() + 120
        while not started.exists():
            assert time.monotonic() < deadline and not run.state.is_final, run.message
            time.sleep(0.05)
        run.cancel()
        assert run.wait(timeout=120) is State.CANCELLED
    said = [r.getMessage() for r in caplog.records if r.name == "labloom"
            and r.levelno >= logging.WARNING]
    assert said == [
        "[labloom] closing the run's LocalCluster: 1 worker process still running a task did "
        "not stop within 4 s and was killed (a call of the cancelled run, still running)"], said
