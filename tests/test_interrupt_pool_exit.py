"""A Ctrl-C as a thread pool ends never holds the process's exit.

The threads of a ``ThreadExecutor`` wait on its queue for a call or for the word to end; a
process's exit joins them (they are not daemons when a run in the main thread started them).
Each case runs in its own process, interrupted where ``interrupt_points.Landing`` is told, and
must exit: a thread left waiting holds it for good ("waiting for N task call(s) still running",
none was). Seen twice under load after test_interrupt_anywhere (session 51), caught in a loop
beside a CPU burner (session 52): a Ctrl-C landing in ``InterruptsHeld.__enter__`` (before its
swap) as the run's pool put one end a thread, through the pool's one-shot finalizer, left all
of them waiting.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import weakref
from pathlib import Path

TESTS = str(Path(__file__).parent)

EVERY_POINT_AS_THE_POOL_CLOSES = """
import sys
sys.path.insert(0, {tests!r})
from interrupt_points import Landing
from labloom import flow, task

@task
def one(x: int) -> int:
    return x + 1

@flow(executor="threads")
def sweep() -> list[int]:
    return one.map(range(8))

def land(landing: Landing) -> None:
    sys.settrace(landing)
    try:
        sweep.run()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    print("landed", landing.where, flush=True)

sweep.run()
points: list[str] = []
land(Landing(0, points))
# From the run's shutdown of its own pool to the run's return: each point, each time it comes.
first = next(i for i, where in enumerate(points)
             if where.startswith("executors/local.py") and where.endswith(" shutdown"))
times: dict[str, int] = {{}}
for where in points[first:]:
    times[where] = times.get(where, 0) + 1
    land(Landing(times[where], at=where, after=points[first]))
print("next", sweep.run().state.value, flush=True)
"""

A_FINALIZER_CUT_SHORT = """
import os
import sys
sys.path.insert(0, {tests!r})
from interrupt_points import Landing
from labloom.executors.thread_pool import ThreadPool

def say(i: int) -> None:
    os.write(1, f"ran {{i}}\\n".encode())  # one write: two threads' lines never mix

pool = ThreadPool(2, "labloom-task")
for i in range(4):
    pool.submit(say, i)
# Dropped (an executor nobody holds): its finalizer tells the threads to end. A Ctrl-C right
# after ``weakref.finalize`` took itself off its registry, before the call: Python prints it
# ("Exception ignored in") and the finalizer never runs again.
landing = Landing(1, also=("weakref.py",), at={at!r})
sys.settrace(landing)
del pool
sys.settrace(None)
print("landed", landing.where, flush=True)
"""


def _exits(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env["LABLOOM_PROGRESS"] = "0"
    try:
        return subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not exit: {exc.stdout!r} {exc.stderr!r}") from None


def test_a_ctrl_c_anywhere_as_a_runs_thread_pool_closes_does_not_hold_the_exit(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Every point from the run's shutdown of its own ``ThreadExecutor`` to the run's return,
    one landing each, in one process: then it must exit (and the next run complete)."""
    script = tmp_path / "pool_closes.py"
    script.write_text(EVERY_POINT_AS_THE_POOL_CLOSES.format(tests=TESTS))
    done = _exits(script, subprocess_env)
    assert done.returncode == 0, done.stderr
    landed = [line for line in done.stdout.splitlines() if line.startswith("landed ")]
    # The reference pass, then one per point: each found its point, one in the pool's close.
    assert len(landed) > 2 and "landed None" not in landed[1:], done.stdout
    assert any(line.startswith("landed executors/thread_pool.py") for line in landed), \
        done.stdout
    assert "next Completed" in done.stdout, done.stdout


def test_a_ctrl_c_cutting_a_dropped_pools_finalizer_short_does_not_hold_the_exit(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """The exit itself tells every pool thread still there to end, once the calls queued ran."""
    lines, first = inspect.getsourcelines(weakref.finalize.__call__)
    popped = first + next(i for i, line in enumerate(lines) if "_registry.pop" in line)
    at = f"weakref.py:{popped} __call__"
    script = tmp_path / "finalizer.py"
    script.write_text(A_FINALIZER_CUT_SHORT.format(tests=TESTS, at=at))
    done = _exits(script, subprocess_env)
    assert done.returncode == 0, done.stderr
    assert f"landed {at}" in done.stdout, done.stdout
    assert "KeyboardInterrupt" in done.stderr, done.stderr  # printed, not raised: it came
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("ran")) == \
        [f"ran {i}" for i in range(4)], done.stdout
