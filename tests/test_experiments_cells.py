"""Params and metrics logged from a ``%%tasks`` cell's functions (issue 19, item 1: "works on
every executor, from Dask workers too, and in %%tasks cells"), in a real IPython shell: the
explicit calls with a step curve, and the ``@task(params=True, metrics=[...])`` short form
written in the cell, on the local, threads and Dask (worker processes) executors."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import labloom

CELL = """\
import labloom

def trial(lr):
    labloom.log_params(lr=lr)
    for epoch in range(3):
        labloom.log_metric("loss", lr / (epoch + 1), step=epoch)
    labloom.log_metrics(auc=lr * 2)
    return lr

@labloom.task(params=True, metrics=["acc"])
def fit(config):
    return {"acc": config["depth"] / 10}
"""


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)


@pytest.mark.parametrize("executor", ["local", "threads", "dask"])
def test_a_tasks_cells_functions_log_on_every_executor(ip: Any, executor: str,
                                                       request: pytest.FixtureRequest) -> None:
    ip.run_cell_magic("tasks", "", CELL)
    where = f"--executor {executor}"
    if executor == "dask":  # worker processes: the cell's functions are shipped by value
        where += f" --address {request.getfixturevalue('dask_cluster').scheduler_address}"
    ip.run_cell_magic("flow", f"trials --no-widget {where}",
                      "out = trial.map([0.1, 0.2])\nfits = fit.map([{'depth': 3}])\n")
    assert ip.user_ns["out"] == [0.1, 0.2]
    rows = labloom.experiments(flow="trials", sort="lr")
    assert [(r["lr"], r["auc"], r["loss"]) for r in rows if r["task"] == "trial"] == [
        (0.1, 0.2, 0.1 / 3), (0.2, 0.4, 0.2 / 3)]
    assert [(r["depth"], r["acc"]) for r in rows if r["task"] == "fit"] == [(3, 0.3)]
