"""A task run answered from a stored result (a cache hit, or ``labloom retry`` reusing what
completed) shows the params and metrics that the run computing the result logged: they are
kept with the result. Review of session 42: a sweep run again with ``cache=True`` showed its
cached rows without their params (``params=True``) or, for a task that logs with
``log_params``/``log_metrics``, no row at all, and the run ``labloom retry`` made of a failed
sweep showed only the children that ran again."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import labloom
from labloom import flow, log_metric, log_metrics, log_params, task, unmapped


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # the rows as a list of dicts


@task(cache=True)
def train(depth: int) -> float:
    log_params(depth=depth, criterion="gini")
    for epoch in range(3):
        log_metric("loss", 1 / (depth + epoch), step=epoch)
    log_metrics(auc=depth / 10, odd=math.nan)
    return depth / 10


@task(cache=True, params=True, metrics=["auc"])
def fit(config: dict[str, Any]) -> dict[str, float]:
    return {"auc": config["depth"] / 10}


@flow
def cached_sweep() -> None:
    train.map([1, 2])
    fit.map([{"depth": 1, "seed": 0}, {"depth": 2, "seed": 1}])


def _rows(run: Any) -> dict[tuple[str, int], dict[str, Any]]:
    skip = {"run_id", "task_run_id", "state", "duration"}
    return {(row["task"], row["map_index"]): {k: v for k, v in row.items() if k not in skip}
            for row in run.experiments()}


def _same(a: dict[Any, dict[str, Any]], b: dict[Any, dict[str, Any]]) -> bool:
    # NaN is kept, and unequal to itself: compare its text.
    return {k: {n: repr(v) for n, v in row.items()} for k, row in a.items()} == \
        {k: {n: repr(v) for n, v in row.items()} for k, row in b.items()}


def test_a_cached_rerun_shows_the_values_its_results_were_computed_with(any_executor: Any) -> None:
    first = cached_sweep.run(executor=any_executor)
    assert first.state.value == "Completed"
    again = cached_sweep.run(executor=any_executor)
    assert {tr.state.value for tr in again.tasks} == {"Cached"}
    assert _same(_rows(again), _rows(first)), (_rows(again), _rows(first))
    assert _rows(again)[("fit", 1)] == {"task": "fit", "map_index": 1, "depth": 2, "seed": 1,
                                         "auc": 0.2, "criterion": None, "loss": None,
                                         "odd": None}
    # The curve points came back too, a step curve per cached child.
    assert _steps(again, "loss") == _steps(first, "loss") == {0: [0, 1, 2], 1: [0, 1, 2]}


def _steps(run: Any, metric: str) -> dict[int, list[int]]:
    """The steps of ``metric``'s points by map index, from the run's events."""
    index = {tr.id: tr.map_index for tr in run.tasks}
    steps: dict[int, list[int]] = {}
    for event in run.events():
        for task_run_id, _kind, values, step, _time in getattr(event, "calls", ()):
            if metric in values and step is not None:
                steps.setdefault(index[task_run_id], []).append(step)
    return steps


_fail_at: set[int] = {2}


@task(cache=True)
def sometimes(depth: int) -> float:
    log_params(depth=depth)
    log_metrics(auc=depth / 10)
    if depth in _fail_at:
        raise RuntimeError(f"depth {depth} failed")
    return depth / 10


@flow
def failing_sweep() -> None:
    sometimes.map([1, 2, 3])


def test_a_retried_sweep_shows_every_child_not_only_those_that_ran_again() -> None:
    from labloom.export.retry import retry_run

    failed = failing_sweep.run(executor="threads")
    assert failed.state.value == "Failed"
    _fail_at.clear()
    again, _notes = retry_run(failed.id, load=lambda target, run_id: failing_sweep)
    rows = {row["map_index"]: (row["depth"], row["auc"]) for row in again.experiments()}
    assert rows == {0: (1, 0.1), 1: (2, 0.2), 2: (3, 0.3)}


@task
def configs() -> list[dict[str, int]]:
    return [{"depth": 1}, {"depth": 2}]


@task(cache=True)
def keyed_in_call(config: dict[str, int]) -> float:
    log_params(config)
    log_metric("loss", 0.5, step=0)
    return config["depth"] / 10


@flow
def upstream_sweep() -> None:
    keyed_in_call.map(configs())


def test_a_cached_child_keyed_where_it_runs_shows_its_values_too() -> None:
    # Mapped over an upstream's result: the key needs the values, so the call makes it.
    first = upstream_sweep.run(executor="threads")
    again = upstream_sweep.run(executor="threads")
    assert {tr.state.value for tr in again.tasks if tr.map_index is not None} == {"Cached"}
    assert _same(_rows(again), _rows(first)), (_rows(again), _rows(first))
    assert {row["depth"] for row in again.experiments()} == {1, 2}


@task(cache=True)
def until_fixed(depth: int, fixed: str) -> float:
    log_params(depth=depth)
    log_metric("loss", 1 / depth, step=0)
    log_metrics(auc=depth / 10)
    if depth == 2 and not os.path.exists(fixed):  # a file: Dask workers see it too
        raise RuntimeError("depth 2 failed")
    return depth / 10


@flow
def fixable_sweep(fixed: str) -> None:
    until_fixed.map([1, 2, 3], fixed=unmapped(fixed))


def test_a_retried_sweep_shows_every_child_on_every_executor(any_executor: Any,
                                                              tmp_path: Path) -> None:
    from labloom.export.retry import retry_run

    fixed = tmp_path / "fixed"
    failed = fixable_sweep.run(fixed=str(fixed), executor=any_executor)
    assert failed.state.value == "Failed"
    fixed.touch()
    again, _notes = retry_run(failed.id, load=lambda target, run_id: fixable_sweep,
                              executor=any_executor)
    assert again.state.value == "Completed", again.message
    rows = {row["map_index"]: (row["depth"], row["auc"], row["loss"])
            for row in again.experiments()}
    assert rows == {0: (1, 0.1, 1.0), 1: (2, 0.2, 0.5), 2: (3, 0.3, 1 / 3)}
    stored = {row["map_index"]: (row["depth"], row["auc"])
              for row in labloom.experiments(run=again)}
    assert stored == {0: (1, 0.1), 1: (2, 0.2), 2: (3, 0.3)}
