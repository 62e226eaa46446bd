"""A task argument that cannot travel to a Dask worker fails its own task run only (session 44),
on a real LocalCluster with worker processes: before, one that could not be rebuilt on the
scheduler failed every task sent in its graph ("Error during deserialization of the task
graph": a sweep's whole chunk of children), and one that the scheduler could rebuild but a
worker could not closed each worker it was given to, and the run waited for workers forever."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from typing import Any

import pytest

from labloom import DaskExecutor, State, flow, task

pytestmark = pytest.mark.timeout(180)


def refuse_to_load() -> None:
    raise RuntimeError("this object cannot be rebuilt")


class LoadsNowhere:
    """Pickles, but its pickle raises wherever it is loaded."""

    def __reduce__(self) -> tuple[Any, ...]:
        return refuse_to_load, ()


def load_in(pid: int) -> LoadsOnlyHere:
    if os.getpid() != pid:
        raise RuntimeError(f"this object loads only in process {pid}")
    return LoadsOnlyHere()


class LoadsOnlyHere:
    """Loads in this process (where the LocalCluster's scheduler runs), not on a worker."""

    def __reduce__(self) -> tuple[Any, ...]:
        return load_in, (os.getpid(),)


@task
def fit(i: int, extra: object = None) -> int:
    return i * 2


@flow
def sweep(bad: str) -> list[int]:
    makers = {"nowhere": LoadsNowhere, "here only": LoadsOnlyHere, "lock": threading.Lock}
    extras = [makers[bad]() if i == 7 else {"lr": i / 10} for i in range(24)]
    return fit.map(range(24), extras)  # type: ignore[return-value]


@flow
def three_calls(bad: str) -> list[int]:
    makers = {"nowhere": LoadsNowhere, "here only": LoadsOnlyHere}
    return [fit(1), fit(2, extra=makers[bad]()), fit(3)]  # type: ignore[list-item]


@pytest.fixture
def executor(dask_cluster: Any) -> DaskExecutor:
    return DaskExecutor(cluster=dask_cluster)


def only_child_7_failed(run: Any) -> str:
    """Asserts that ``sweep``'s bad child alone failed; returns its message."""
    assert run.wait(timeout=120)
    assert Counter(tr.state for tr in run.tasks) == Counter({State.COMPLETED: 23,
                                                              State.FAILED: 1})
    (failed,) = [tr for tr in run.tasks if tr.state is State.FAILED]
    assert failed.name == "fit[7]"
    return str(failed.message)


@pytest.mark.parametrize("bad", ["nowhere", "here only"])
def test_an_argument_that_cannot_be_loaded_fails_its_map_child_alone(executor, dask_cluster,
                                                                      bad):
    workers = set(dask_cluster.scheduler_info["workers"])
    message = only_child_7_failed(sweep.run(bad=bad, executor=executor, background=True))
    assert "argument 'extra' of task 'fit[7]' cannot be loaded on the Dask worker" in message
    assert "cannot be rebuilt" in message or "loads only in process" in message
    assert "in a module the workers import" in message and "pass plain data" in message
    # No worker was closed for it (a worker that cannot read a task's message is).
    assert set(dask_cluster.scheduler_info["workers"]) == workers


@pytest.mark.parametrize("bad", ["nowhere", "here only"])
def test_an_argument_that_cannot_be_loaded_fails_only_its_task_run(executor, bad):
    run = three_calls.run(bad=bad, executor=executor, background=True)
    assert run.wait(timeout=120)
    by_name = {tr.name: tr for tr in run.tasks}
    assert by_name["fit"].state is State.COMPLETED and by_name["fit-3"].state is State.COMPLETED
    assert by_name["fit-2"].state is State.FAILED
    assert "argument 'extra' of task 'fit-2'" in by_name["fit-2"].message


def test_a_map_childs_argument_that_cannot_be_pickled_fails_that_child_alone(executor):
    """A child that would share a Dask task with its siblings failed them all."""
    message = only_child_7_failed(sweep.run(bad="lock", executor=executor, background=True))
    assert "arguments cannot be sent to a Dask worker: argument 'extra' of task 'fit[7]'" in \
        message
    assert "cannot pickle '_thread.lock' object" in message


@task
def shape_of(table: Any) -> tuple[int, ...]:
    return tuple(table.shape)


class Table:
    """A user's object holding an array: shipped apart, its array out of band."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape  # type: ignore[no-any-return]


def test_objects_and_plain_data_still_arrive_whole(executor):
    numpy = pytest.importorskip("numpy")

    @flow
    def given() -> list[Any]:
        return [shape_of(numpy.zeros((3, 4))), shape_of(Table(numpy.ones((5, 2)))),
                shape_of(table=Table(numpy.ones(7)))]

    assert given.run(executor=executor).result() == [(3, 4), (5, 2), (7,)]


pickled_here: list[int] = []


def rebuild_settings(values: dict[str, float]) -> Settings:
    return Settings(values)


class Settings:
    """A user's object given to every child of a map; counts its pickles in this process."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def __reduce__(self) -> tuple[Any, ...]:
        if os.getpid() == MAIN_PID:
            pickled_here.append(1)
        return rebuild_settings, (self.values,)


MAIN_PID = os.getpid()


@task
def scaled(i: int, settings: Settings) -> float:
    return i * settings.values["scale"]


def test_a_value_given_to_every_child_is_pickled_once_not_per_child(executor):
    """Pickled apart per call, an ``unmapped(table)`` of a 500-child map went 500 times."""
    from labloom import unmapped

    @flow
    def sweep_with_settings() -> list[float]:
        return scaled.map(range(200), unmapped(Settings({"scale": 2.0})))  # type: ignore

    pickled_here.clear()
    assert sweep_with_settings.run(executor=executor).result() == [i * 2.0 for i in range(200)]
    assert 1 <= len(pickled_here) <= 2, len(pickled_here)  # once per launch block of 256


@task
def length(values: list[Any]) -> int:
    return len(values)


def test_a_value_that_contains_itself_reaches_its_task_on_a_worker(executor):
    """Before: the task run failed with RecursionError (the look at whether it is plain data
    recursed forever); pickled apart, the cycle arrives as a cycle."""
    @flow
    def given(values: list[Any]) -> int:
        return length(values)  # type: ignore[return-value]

    values: list[Any] = [1, {"lr": 0.1}]
    values.append(values)
    assert given.run(values=values, executor=executor).result() == 3


@task
def depth_of(tree: Any) -> int:
    depth = 0
    while isinstance(tree, list) and tree:
        tree, depth = tree[0], depth + 1
    return depth


class Link:
    def __init__(self, after: Link | None) -> None:
        self.after = after


def nested(levels: int) -> list[Any]:
    tree: list[Any] = []
    for _ in range(levels - 1):
        tree = [tree]
    return tree


@flow
def deep_arguments(levels: int) -> list[int]:
    chain = None
    for _ in range(5000):
        chain = Link(chain)
    return [depth_of(nested(levels)), depth_of(tree=chain), depth_of(nested(3))]  # type: ignore[list-item]


def _serialize_failures(records: list[Any]) -> list[Any]:
    return [r for r in records if r.name == "distributed.protocol.pickle"]


def test_an_argument_nested_too_deep_fails_its_task_run_naming_the_fix(
    executor: DaskExecutor, caplog: pytest.LogCaptureFixture,
) -> None:
    """A list nested 5,000 deep failed with pickle's "RecursionError ... while getting the repr
    of an object", told to "pass plain data (... lists ...)", after distributed's ERROR "Failed
    to serialize" and pages of pickle's traceback; one 400 deep failed with a bare
    "RecursionError: maximum recursion depth exceeded" from inside Dask, naming nothing."""
    from labloom.store import open_store

    for levels in (5000, 400):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            run = deep_arguments.run(levels=levels, executor=executor)
        assert run.state is State.FAILED
        by_name = {tr.name: tr for tr in run.tasks}
        assert by_name["depth_of-3"].state is State.COMPLETED  # the others ran
        message = str(by_name["depth_of"].message)
        assert message == (
            "TypeError: the task's arguments cannot be sent to a Dask worker: argument 'tree' "
            f"of task 'depth_of', a builtins.list nested {levels} levels deep: Dask walks and "
            "pickles a task's arguments recursively, and labloom refuses over 300 levels "
            "before that fails with a RecursionError. Flatten it (a list of rows, a dict keyed "
            "by path), or write it to a file and pass the file's path"), message
        assert str(by_name["depth_of-2"].message).startswith(
            "TypeError: the task's arguments cannot be sent to a Dask worker: argument 'tree' "
            f"of task 'depth_of-2', a {__name__}.Link holding objects nested too deep for "
            "pickle"), by_name["depth_of-2"].message
        assert not _serialize_failures(caplog.records)  # said once, by labloom
        with open_store() as store:
            record = store.get_run(run.id)
            assert record is not None and record.state == "Failed"
            assert {t.name: t.state for t in store.task_runs(run.id)} == {
                "depth_of": "Failed", "depth_of-2": "Failed", "depth_of-3": "Completed"}


def test_an_argument_nested_deeper_than_dasks_walk_arrives_pickled_apart(
    executor: DaskExecutor,
) -> None:
    """250 levels: under the refusal, over the depth Dask's own walk is spared (it failed near
    450 levels, less on a deep stack)."""
    assert depth_of.fn(nested(250)) == 249

    @flow
    def one(levels: int) -> int:
        return depth_of(nested(levels))  # type: ignore[return-value]

    run = one.run(levels=250, executor=executor)
    assert run.state is State.COMPLETED, run.message
    assert run.result() == 249


def test_an_argument_that_cannot_be_pickled_is_said_once(
    executor: DaskExecutor, caplog: pytest.LogCaptureFixture,
) -> None:
    """distributed's ERROR "Failed to serialize" and pickle's traceback came first."""
    with caplog.at_level(logging.INFO):
        message = only_child_7_failed(sweep.run(bad="lock", executor=executor))
    assert "cannot pickle '_thread.lock' object" in message
    assert not _serialize_failures(caplog.records)
