"""A task run's value made on a Dask worker of what only the workers import (a package in
their image, a module a task put on their path): the task run completed, and loading its value
in the kernel failed with the loader's bare "No module named ...", naming no task run and no
fix. On a real LocalCluster with worker processes."""

from __future__ import annotations

import importlib
import sys
import tempfile
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
                                         "        self.n = n\n")
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    return importlib.import_module(MODULE).Model(i)


@task(batch_size=1)
def fit_one(i: int) -> Any:
    return fit.fn(i) if i == 1 else i


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
