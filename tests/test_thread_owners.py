"""Every background thread labloom starts has an owner that stops it: the executor's shutdown,
the worker's close, the end of the run, or the end of the process.

Each case runs in a fresh Python process: in-process Dask workers and the store's writer are
process-wide, so threads left by earlier tests of this session would blur what is measured.
The script prints the labloom threads alive at each step, waiting for a thread that should be
gone (a thread that ends on its own needs a moment to notice) up to a guard of a minute: the
step goes on as soon as it is gone, and a thread that stays is listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PRELUDE = textwrap.dedent("""
    import json, threading, time
    import distributed
    from labloom import DaskExecutor, flow, task

    @task
    def shout(x):
        print(f"value {x}")  # a worker-side log line: the worker's flush thread has work
        return x

    @task(batch_size=3)
    def tiny(x):
        return x

    @flow
    def shouting(n):
        return tiny.map(shout.map(range(n)))

    steps = {}

    def ours():
        return sorted(t.name for t in threading.enumerate() if t.name.startswith("labloom"))

    def step(name, gone=(), within=60.0):
        end = time.monotonic() + within
        while any(g in ours() for g in gone) and time.monotonic() < end:
            time.sleep(0.02)
        steps[name] = ours()
""")


def run_script(body: str, tmp_path: Path) -> dict[str, list[str]]:
    """The steps the script recorded (its process ended within the guard below)."""
    script = PRELUDE + textwrap.dedent(body) + textwrap.dedent("""
        print("STEPS " + json.dumps(steps), flush=True)
    """)
    env = {**os.environ, "LABLOOM_HOME": str(tmp_path / "home"),
           "DASK_TEMPORARY_DIRECTORY": str(tmp_path / "dask")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    steps = json.loads(next(ln for ln in lines if ln.startswith("STEPS "))[6:])
    return steps


def test_a_dask_executor_stops_its_threads_at_shutdown_and_a_worker_its_own_at_close(
    tmp_path: Path,
) -> None:
    steps = run_script("""
        with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                      dashboard_address=":0") as cluster:
            with distributed.Client(cluster, set_as_default=False) as client:
                executor = DaskExecutor(client=client)
                assert shouting.run(n=7, executor=executor).result() == list(range(7))
                step("ran")
                executor.shutdown()
                step("executor shut down", gone=["labloom-dask-submit", "labloom-dask-events"])
                # Shut down is not closed: the executor can still run, and starts them again.
                assert shouting.run(n=5, executor=executor).result() == list(range(5))
                executor.shutdown()
        step("cluster closed", gone=["labloom-log-flush"])
    """, tmp_path)
    ran = steps["ran"]
    # What the run used: the submitter, the event delivery, one log flusher per worker.
    assert "labloom-dask-submit" in ran and "labloom-dask-events" in ran, ran
    assert ran.count("labloom-log-flush") == 2, ran
    after = steps["executor shut down"]
    assert "labloom-dask-submit" not in after and "labloom-dask-events" not in after, after
    assert "labloom-log-flush" not in steps["cluster closed"], steps["cluster closed"]


def test_an_executor_used_as_a_context_manager_is_shut_down_at_its_end(tmp_path: Path) -> None:
    steps = run_script("""
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=":0") as cluster:
            with distributed.Client(cluster, set_as_default=False) as client:
                with DaskExecutor(client=client) as executor:
                    assert shouting.run(n=4, executor=executor).result() == list(range(4))
                    step("ran")
                step("left", gone=["labloom-dask-submit", "labloom-dask-events"])
    """, tmp_path)
    assert "labloom-dask-events" in steps["ran"], steps
    assert not {"labloom-dask-submit", "labloom-dask-events"} & set(steps["left"]), steps


def test_an_executor_the_run_made_is_shut_down_when_the_run_ends(tmp_path: Path) -> None:
    # executor="dask" with a cluster made the kernel's active one (as dask-labextension does):
    # the run creates the executor, so the run's end stops its threads.
    steps = run_script("""
        import dask
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=":0") as cluster:
            with dask.config.set({"scheduler-address": cluster.scheduler_address}):
                run = shouting.run(n=5, executor="dask")
                assert run.result() == list(range(5))
                assert run.executor.describe().startswith("dask("), run.executor.describe()
                step("ended", gone=["labloom-dask-submit", "labloom-dask-events"])
    """, tmp_path)
    assert not {"labloom-dask-submit", "labloom-dask-events"} & set(steps["ended"]), steps


def test_after_the_last_run_only_the_store_writer_is_left_and_it_ends_when_idle(
    tmp_path: Path,
) -> None:
    steps = run_script("""
        from labloom.store import writer
        idle_exit = writer._IDLE_EXIT
        writer._IDLE_EXIT = 3600.0  # the writer stays however long the watcher takes to go
        run = shouting.run(n=20, executor="threads")
        assert run.result() == list(range(20))
        # The cancel watcher notices its last run ended at its next poll.
        step("run ended", gone=["labloom-cancel-watcher"])
        writer._IDLE_EXIT = idle_exit
        step("idle", gone=["labloom-store"])
        # An hour idle: a process whose exit waited for it would outlive run_script's guard.
        writer._IDLE_EXIT = 3600.0
        run = shouting.run(n=3, executor="threads")  # a later run starts what it needs again
        assert run.result() == list(range(3))
        step("second run")
    """, tmp_path)
    assert steps["run ended"] == ["labloom-store"], steps
    assert steps["idle"] == [], steps
    # What is left at exit (the writer of the second run, idle for an hour) does not hold
    # the process up: it exited within run_script's guard.
    assert "labloom-store" in steps["second run"], steps


def test_a_timed_out_task_on_threads_says_it_may_still_run_and_keeps_its_slot(
    tmp_path: Path,
) -> None:
    """**Changed** in session 44: the timed-out call gave its slot back at its timeout, and
    with a limit of 1 (a GPU, a licence seat) quick() ran beside it, still running."""
    steps = run_script("""
        import labloom
        labloom.limits.set("slow", 1)

        release, stuck_returned, quick_saw = threading.Event(), threading.Event(), []

        @task(timeout=0.2, tags=["slow"])
        def stuck():
            release.wait(60)
            stuck_returned.set()

        @task(tags=["slow"])
        def quick():
            quick_saw.append(stuck_returned.is_set())

        @flow(executor="threads")
        def both():
            stuck()
            return quick()

        run = both.run(background=True)
        by_name = lambda: {t.name: t for t in run.tasks}
        end = time.monotonic() + 60
        while not by_name()["stuck"].state.is_final and time.monotonic() < end:
            time.sleep(0.02)
        waiting = str(by_name()["quick"].state)  # its slot is stuck()'s call's until it returns
        release.set()
        run.wait()
        steps["facts"] = [waiting, by_name()["stuck"].message, str(by_name()["quick"].state),
                          str(quick_saw)]
    """, tmp_path)
    waiting, message, quick_state, quick_saw = steps["facts"]
    assert waiting == "Pending", steps["facts"]
    assert "cannot kill a thread" in message, message
    assert "keeps its task run's concurrency slots until it returns" in message, message
    # quick() ran once stuck()'s call had returned, not beside it.
    assert (quick_state, quick_saw) == ("Completed", "[True]"), steps["facts"]
