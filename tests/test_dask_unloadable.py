"""A task run's value made on a Dask worker of what only the workers import (a package in
their image, a module a task put on their path): the task run completed, and loading its value
in the kernel failed with the loader's bare "No module named ...", naming no task run and no
fix. On a real LocalCluster with worker processes."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from labloom import DaskExecutor, ResultLoadError, State, flow, task
from labloom.store import open_store

MODULE = "worker_only_models"


@task
def fit(i: int) -> Any:
    """A model of a class whose module only the worker can import."""
    folder = Path(tempfile.mkdtemp(prefix="worker-only-"))
    (folder / f"{MODULE}.py").write_text("class Model:\n    def __init__(self, n):\n"
                                         "        self.n = n\n"
                                         "class Refused(Exception):\n    pass\n")
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    return importlib.import_module(MODULE).Model(i)


@task(batch_size=1)
def fit_one(i: int) -> Any:
    return fit.fn(i) if i == 1 else i


@task(batch_size=3)
def fit_chunked(i: int) -> Any:
    """Three children, one Dask task: the middle one's value only the worker can load."""
    return fit.fn(i) if i == 1 else i * 10


@task(batch_size=3)
def fail_chunked(i: int) -> Any:
    """The middle child raises an error whose class only the worker can import."""
    if i == 1:
        fit.fn(i)
        raise importlib.import_module(MODULE).Refused("no")
    return i * 10


@task
def kind(value: Any) -> str:
    return type(value).__name__


@flow
def chunk_sweep() -> Any:
    values = fit_chunked.map(range(3))
    kinds = kind.map(values)  # downstream of each child, on the worker
    read = {i: values[i].result() for i in (0, 2)}  # the siblings, read in the body
    try:
        values[1].result()
    except ResultLoadError as exc:
        read[1] = str(exc)
    return read, kinds


@flow
def chunk_values() -> Any:
    return fit_chunked.map(range(3))


@flow
def chunk_siblings() -> Any:
    values = fit_chunked.map(range(3))
    return values[0], values[2]


@flow
def chunk_failing() -> Any:
    values = fail_chunked.map(range(3))
    read = [values[i].result() for i in (0, 2)]
    with contextlib.suppress(Exception):  # its failure, handled: the run completes
        values[1].result()
    return read


@flow
def train() -> Any:
    return fit(1)


@flow
def sweep() -> Any:
    return fit_one.map(range(3))


@flow
def reads_it() -> Any:
    return fit(1).result()


def test_a_value_the_kernel_cannot_load_names_its_task_run_and_the_fix(
    one_worker_cluster: Any,
) -> None:
    assert MODULE not in sys.modules
    executor = DaskExecutor(cluster=one_worker_cluster)
    run = train.run(executor=executor)
    assert run.state is State.COMPLETED, run.message
    with pytest.raises(ResultLoadError) as raised:
        run.result()
    text = str(raised.value)
    assert text.startswith(
        f"[labloom] task run fit of flow run {run.id} completed, but a value made on a Dask "
        f"worker cannot be loaded in this process (ModuleNotFoundError: No module named "
        f"'{MODULE}')"), text
    assert "Install that module here too" in text and f"`labloom show {run.id}`" in text
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    with open_store() as store:  # the run's record is as it ended
        record = store.get_run(run.id)
        assert record is not None and record.state == "Completed" and not record.message
        assert [t.state for t in store.task_runs(run.id)] == ["Completed"]


def test_of_a_maps_values_the_one_that_cannot_be_loaded_is_named(one_worker_cluster: Any) -> None:
    executor = DaskExecutor(cluster=one_worker_cluster)
    run = sweep.run(executor=executor)
    assert run.state is State.COMPLETED, run.message
    with pytest.raises(ResultLoadError, match=r"task run fit_one\[1\] of flow run "):
        run.result()
    # Read in the flow body: the body's error, and the run failed, saying which and why.
    failed = reads_it.run(executor=executor)
    assert failed.state is State.FAILED
    assert failed.message.startswith(
        "flow body raised ResultLoadError: [labloom] task run fit of flow run"), failed.message



def test_a_chunk_child_that_cannot_be_loaded_fails_alone(one_worker_cluster: Any) -> None:
    """Three map children computed in one Dask task, the middle one's value not loadable in
    this process: reading it fails, naming it alone; its siblings' values are read, in the
    body and after, and every child's downstream task ran. Before, one value travelled for
    all three: reading any failed, naming all three."""
    executor = DaskExecutor(cluster=one_worker_cluster)
    run = chunk_sweep.run(executor=executor)
    assert run.state is State.COMPLETED, run.message
    read, kinds = run.result()
    assert (read[0], read[2], kinds) == (0, 20, ["int", "Model", "int"])
    assert read[1].startswith(f"[labloom] task run fit_chunked[1] of flow run {run.id} "
                              "completed, but a value made on a Dask worker cannot be loaded "
                              f"in this process (ModuleNotFoundError: No module named "
                              f"'{MODULE}')"), read[1]
    whole = chunk_values.run(executor=executor)
    assert whole.state is State.COMPLETED, whole.message
    for _ in range(2):  # the second time, the chunk is read child by child at once
        with pytest.raises(ResultLoadError) as raised:
            whole.result()
        assert str(raised.value).startswith(
            f"[labloom] task run fit_chunked[1] of flow run {whole.id} completed"), raised.value
        assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_a_chunk_child_whose_error_cannot_be_loaded_leaves_its_siblings_readable(
    one_worker_cluster: Any,
) -> None:
    """The failed child's error (a class only the worker imports) travelled in its chunk's
    value: its siblings' values could not be read."""
    run = chunk_failing.run(executor=DaskExecutor(cluster=one_worker_cluster))
    assert run.state is State.COMPLETED, run.message
    assert [t.state for t in sorted(run.tasks, key=lambda t: t.name)
            if t.name.startswith("fail_chunked[")] == [
        State.COMPLETED, State.FAILED, State.COMPLETED]
    assert run.result() == [0, 20]


def _deserialize_failures(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "distributed.protocol.core"
            and r.getMessage() == "Failed to deserialize"]


def test_dasks_own_log_of_the_failure_is_left_to_labloom(
    one_worker_cluster: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """Dask logged a CRITICAL "Failed to deserialize" with the loader's traceback before
    labloom's error said the same (naming the task run and the fix, that error as its cause):
    for labloom's reads it is not said twice. A read of the user's own through Dask, after,
    still logs it."""
    from distributed import Client

    executor = DaskExecutor(cluster=one_worker_cluster)
    run = train.run(executor=executor)
    with caplog.at_level(logging.INFO):
        with pytest.raises(ResultLoadError):
            run.result()
        assert not _deserialize_failures(caplog.records)
        with Client(one_worker_cluster, set_as_default=False) as client:
            own = client.submit(fit.fn, 2)
            with pytest.raises(ModuleNotFoundError):
                own.result()
        assert len(_deserialize_failures(caplog.records)) == 1


def test_a_failure_logged_by_another_read_meanwhile_is_let_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What labloom holds back while it reads is only the failures its read took up: another
    thread's, logged meanwhile, comes out as the read ends."""
    from labloom.executors.dask_load_logs import said_by_us

    logger = logging.getLogger("distributed.protocol.core")
    ours, theirs = ModuleNotFoundError("ours"), ModuleNotFoundError("theirs")

    def failed(error: BaseException) -> None:
        try:
            raise error
        except ModuleNotFoundError:
            logger.critical("Failed to deserialize", exc_info=True)

    with caplog.at_level(logging.INFO):
        with said_by_us() as absorb:
            other = threading.Thread(target=failed, args=(theirs,))
            other.start()
            other.join()
            failed(ours)
            absorb(ours)
            assert not _deserialize_failures(caplog.records)  # held back while the read runs
        assert [r.exc_info[1] for r in _deserialize_failures(caplog.records)  # type: ignore[index]
                ] == [theirs]


def test_a_cluster_per_run_keeps_the_loadable_children_of_a_chunk() -> None:
    """A cluster per run closes as its run ends, its values brought over first: a chunk with
    one child whose value cannot be loaded here was not kept at all, and its siblings' values
    were gone with the cluster."""
    executor = DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"})
    siblings = chunk_siblings.run(executor=executor)
    assert siblings.state is State.COMPLETED, siblings.message
    assert siblings.result() == (0, 20)  # read after its cluster closed
    whole = chunk_values.run(executor=executor)
    assert whole.state is State.COMPLETED, whole.message
    with pytest.raises(ResultLoadError) as raised:
        whole.result()
    assert str(raised.value).startswith(
        f"[labloom] task run fit_chunked[1] of flow run {whole.id} completed"), raised.value


def test_a_cluster_per_run_says_once_what_it_could_not_keep(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bringing a run's values over as its cluster per run closed, distributed's CRITICAL
    "Failed to deserialize" (with the loader's traceback, once per try) came before labloom's
    own warning; and a task run's value (not a chunk's) that cannot be loaded here was not kept:
    reading it after raised Dask's "Cannot gather Futures created by another client". Now one
    line says it, and reading it raises the ResultLoadError naming its task run."""
    executor = DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"})
    for flow_of, task_run in ((train, "fit"), (chunk_values, "fit_chunked[1]")):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            run = flow_of.run(executor=executor)
        assert run.state is State.COMPLETED, run.message
        assert not _deserialize_failures(caplog.records)
        said = [r.getMessage() for r in caplog.records
                if r.name == "labloom" and r.levelno >= logging.WARNING]
        task_name = task_run.split("[")[0]
        assert said == [
            f"[labloom] run {run.id} on a distributed.LocalCluster: as its cluster closed, the "
            f"value of 1 task run of {task_name!r} could not be loaded in this process "
            f"(ModuleNotFoundError: No module named '{MODULE}'): reading it raises "
            "labloom.ResultLoadError, naming the fix"], said
        with pytest.raises(ResultLoadError) as raised:
            run.result()
        assert str(raised.value).startswith(
            f"[labloom] task run {task_run} of flow run {run.id} completed, but a value made "
            "on a Dask worker cannot be loaded in this process"), raised.value
        with open_store() as store:
            record = store.get_run(run.id)
            assert record is not None and record.state == "Completed" and not record.message
