"""How a run's map children went to a real Dask cluster (alone, or in chunks), read from the
scheduler's log; and a task's measured durations set by the test, so that whether
``batch_size="auto"`` chunks a map does not hang on the machine's load."""

from __future__ import annotations

from typing import Any


def dask_keys(executor: Any) -> set[str]:
    keys = executor.client.run_on_scheduler(
        lambda dask_scheduler: [t[0] for t in dask_scheduler.transition_log]
    )
    return {k for k in keys if isinstance(k, str)}


def keys_of(executor: Any, run: Any, name: str) -> tuple[set[str], set[str]]:
    """The Dask tasks that ran ``run``'s children of ``name``: alone, and in chunks."""
    keys = dask_keys(executor)
    ids = [tr.id for tr in run.tasks if tr.task.name == name]
    alone = {f"{name}-{i}-1" for i in ids} & keys
    return alone, {f"{name}-chunk-{i}-1" for i in ids} & keys


def sent_alone(executor: Any, run: Any, name: str) -> set[int]:
    """The map indexes of ``run``'s children of ``name`` whose first attempt was a Dask task
    of its own."""
    keys = dask_keys(executor)
    return {tr.map_index for tr in run.tasks
            if tr.task.name == name and f"{name}-{tr.id}-1" in keys}


def measured_as_tiny(executor: Any, name: str) -> None:
    """Task ``name`` measured (a million calls of 10 µs): a probe result the test controls,
    which a run's own durations (a pause of the machine included) cannot move. What the
    cluster measured was load-dependent by design: under load 7+ a paused probe (12.5 ms)
    said "not tiny", and a check that the map was chunked failed. (A million at 10 µs: a
    thousand children measured at a second each would move the mean to 1 ms: chunks of 49.)"""
    assert executor.client is not None  # connected: its dispatcher holds the shared durations
    executor.dispatcher.durations[name] = (1_000_000, 10.0)
