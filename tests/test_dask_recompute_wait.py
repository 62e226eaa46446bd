"""``LABLOOM_RECOMPUTE_WAIT``: how long a run's end waits, before its own cluster closes, for
Dask to make again a value lost with its worker (120 s by default; a constant before). On a
real LocalCluster per run: the worker holding the value is killed and Dask's new run of the task
takes long; the run's end waits the setting, then keeps the value as gone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from labloom import ClusterConfigError, DaskExecutor, State, WorkerDiedError, flow, task

pytest.importorskip("distributed")
pytestmark = pytest.mark.usefixtures("killed_workers_come_back")  # conftest.py


def _runs(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


@task
def slow_again(path: Path, seconds: float = 60) -> int:
    """This worker's process id; its second run (Dask's, to make it again) takes ``seconds``."""
    runs = _runs(path)
    path.write_text(str(runs + 1))
    if runs:
        time.sleep(seconds)  # ended by the cluster's close (a busy worker is killed after 4 s)
    return os.getpid()


@flow
def lost_and_slow(path: Path, seconds: float = 60) -> Any:
    held = slow_again(path, seconds)
    os.kill(held.result(), signal.SIGKILL)
    end = time.monotonic() + 120
    while _runs(path) < 2:  # Dask started making it again
        assert time.monotonic() < end, "Dask never ran the lost task again"
        time.sleep(0.05)
    return held


def _per_run() -> DaskExecutor:
    return DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"})


def test_the_wait_for_a_value_made_again_is_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: 120 s whatever the setting, then 'still making it again after 120 s'."""
    monkeypatch.setenv("LABLOOM_RECOMPUTE_WAIT", "1")
    run = lost_and_slow.run(path=tmp_path / "runs", executor=_per_run())
    assert run.state is State.COMPLETED, run.message
    with pytest.raises(WorkerDiedError, match=r"Dask was still making it again after 1 s "
                       r"\(LABLOOM_RECOMPUTE_WAIT\), before the run's own cluster closed"):
        run.result()


def test_a_wait_that_is_no_number_raises_before_the_cluster_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("LABLOOM_RECOMPUTE_WAIT", "two minutes")
    executor = _per_run()
    with pytest.raises(ClusterConfigError, match=r"^\[labloom\] LABLOOM_RECOMPUTE_WAIT must be "
                       r"a number of seconds >= 0 .*, got 'two minutes'"):
        lost_and_slow.run(path=tmp_path / "runs", executor=executor)
    assert _runs(tmp_path / "runs") == 0
    assert executor._per_run is not None and executor._per_run.cluster is None


def test_the_wait_is_not_made_twice_at_the_close_of_a_cluster_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's end waits for the value being made again (to say it in the task run's logs if
    that fails), then its cluster's close would wait once more for the same value: 8 s and 8 s,
    which Dask's new run of 13 s outlasted only once (5 s to spare: the run's end waits from a
    little after the new run began). Before: the value was made within the second wait and
    kept (twice the setting waited); now: one wait, and the value is gone."""
    monkeypatch.setenv("LABLOOM_RECOMPUTE_WAIT", "8")
    run = lost_and_slow.run(path=tmp_path / "runs", seconds=13, executor=_per_run())
    assert run.state is State.COMPLETED, run.message
    with pytest.raises(WorkerDiedError, match=r"Dask was still making it again after 8 s"):
        run.result()
