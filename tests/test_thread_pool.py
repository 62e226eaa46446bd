"""The task threads of a ``ThreadExecutor`` (``executors/thread_pool.py``): nothing kept per
call, the standard pool's thread names, and its behaviour at exit and at shutdown."""

from __future__ import annotations

import concurrent.futures
import gc
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from labloom import ThreadExecutor
from labloom.executors.thread_pool import ThreadPool
from store_helpers import env_for


def test_a_call_waiting_for_a_thread_holds_no_future() -> None:
    """The standard pool made a ``Future`` (a ``Condition``, a lock) per call: about 10 µs of
    CPU per no-op task run, a tenth of its cost (issue 21 §2)."""
    executor = ThreadExecutor(1)
    gate = threading.Event()
    ran: list[int] = []
    try:
        executor.start()
        assert executor._pool is not None
        executor._pool.submit(gate.wait, 5)
        for i in range(100):
            executor._pool.submit(ran.append, i)
        futures = sum(isinstance(o, concurrent.futures.Future) for o in gc.get_objects())
        assert futures == 0
        assert executor.room() is not None and executor.room() <= 1000 - 100
    finally:
        gate.set()
    deadline = threading.Event()
    while len(ran) < 100 and not deadline.wait(0.01):
        pass
    executor.shutdown()
    assert ran == list(range(100))


def test_threads_are_named_as_the_standard_pools_and_a_raising_call_keeps_its_thread() -> None:
    pool = ThreadPool(1, "labloom-task")
    names: list[str] = []
    done = threading.Event()

    def fail() -> None:
        raise ValueError("boom")

    pool.submit(fail)
    pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(5)
    pool.close()
    assert names == ["labloom-task_0"]


def test_shutdown_drops_the_calls_not_started() -> None:
    pool = ThreadPool(1, "p")
    gate, ran = threading.Event(), []
    pool.submit(gate.wait, 5)
    for i in range(10):
        pool.submit(ran.append, i)
    pool.close()  # drops the ten
    gate.set()
    for thread in pool._threads:
        thread.join(5)
    assert ran == []


def test_a_process_that_exits_runs_the_queued_calls_and_waits_for_its_threads(
        tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    script = textwrap.dedent(f"""
        import time
        from labloom.executors.thread_pool import ThreadPool
        pool = ThreadPool(2, "p")
        def write(i):
            time.sleep(0.01)
            with open({str(out)!r}, "a") as f:
                f.write(f"{{i}}\\n")
        for i in range(20):
            pool.submit(write, i)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True,
                          text=True, env=env_for(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    assert sorted(int(x) for x in out.read_text().split()) == list(range(20))


def test_submitters_in_many_threads_never_start_more_than_max_workers() -> None:
    # Whichever thread applies a run's reports launches what became ready, so calls come
    # from several threads at once; the pool must still stop at max_workers.
    pool = ThreadPool(2, "labloom-bound")
    release = threading.Event()
    go = threading.Barrier(8)

    def submit_many() -> None:
        go.wait()
        for _ in range(50):
            pool.submit(release.wait, 30)

    submitters = [threading.Thread(target=submit_many) for _ in range(8)]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    try:
        assert len(pool._threads) <= 2
    finally:
        release.set()
        pool.close()
