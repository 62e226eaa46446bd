"""A retry of a run whose own cluster closed (``DaskExecutor(cluster_class=...)``): what the
retry sends again must not name that cluster's futures. A map over a task's result holds, as
its children's arguments, futures of the items split on the cluster; a child retried after the
cluster closed was sent with them and failed as "cancelled". On real LocalClusters."""

from __future__ import annotations

from pathlib import Path

import pytest

from labloom import DaskExecutor, State, flow, task, unmapped

pytest.importorskip("distributed")


@task
def numbers() -> list[int]:
    return [10, 20, 30]


@task
def plus_one(x: int, path: Path) -> int:
    """Fails once, for 20."""
    if x == 20 and not path.exists():
        path.write_text("failed once")
        raise RuntimeError("not this time")
    return x + 1


@task
def total(values: list[int]) -> int:
    return sum(values)


@flow
def sweep(path: Path) -> int:
    return total(plus_one.map(numbers(), path=unmapped(path)))


def test_a_retry_after_the_runs_cluster_closed_reruns_a_child_of_a_map_over_a_result(
    tmp_path: Path,
) -> None:
    """Before: the retry ended Failed, 'plus_one[1]: CancelledError: plus_one[1] was
    cancelled'."""
    executor = DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": False, "dashboard_address": ":0"})
    run = sweep.run(path=tmp_path / "failed", executor=executor)
    assert run.state is State.FAILED
    states = {tr.name: tr.state for tr in run.tasks}
    assert states["plus_one[1]"] is State.FAILED and states["plus_one[0]"] is State.COMPLETED
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert run.result() == 11 + 21 + 31
