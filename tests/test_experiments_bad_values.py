"""Each kind of value issue 19 names, logged from every executor (a Dask worker process too):
a type labloom cannot record and a ``Secret`` are a clear error naming them, and what the task
run logged before stays; NaN and inf are kept; a long string is cut, with a note in the task
run's logs."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

import labloom
from labloom import Secret, flow, log_metrics, log_params, task


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)


class Model:
    pass


@task
def trial(kind: str) -> None:
    log_params(kind=kind, note="n" * 500)
    log_metrics(auc=0.9, odd=math.nan, top=math.inf, low=-math.inf)
    bad = {"type": Model(), "secret": Secret("hunter2"), "list": [1, 2]}.get(kind)
    if bad is not None:
        log_metrics(more=1, bad=bad)  # refused whole: "more" is not recorded either


@flow
def trials() -> Any:
    return labloom.allow_failure(trial.map(["fine", "type", "secret", "list"]))


def test_each_kind_of_value_from_every_executor(any_executor: Any) -> None:
    run = trials.run(executor=any_executor)
    rows = {row["kind"]: row for row in run.experiments()}
    assert sorted(rows) == ["fine", "list", "secret", "type"]
    for kind, row in rows.items():
        assert row["note"] == "n" * 200 and row["auc"] == 0.9 and "more" not in row, kind
        assert math.isnan(row["odd"]) and (row["top"], row["low"]) == (math.inf, -math.inf)
    states = {tr.map_index: (tr.state.value, tr.message) for tr in run.tasks}
    assert states[0] == ("Completed", "")
    for index, words in ((1, "metric 'bad' is a test_experiments_bad_values.Model"),
                         (2, "metric 'bad' is a secret"), (3, "metric 'bad' is a list")):
        state, message = states[index]
        assert state == "Failed" and words in message and "hunter2" not in message, message
    stored = {row["kind"]: row for row in labloom.experiments(run=run)}
    assert {k: (r["note"], r["auc"], r["top"]) for k, r in stored.items()} == {
        k: ("n" * 200, 0.9, math.inf) for k in rows}
    notes = [line.text for line in run.logs() if "cut to 200 of its 500" in line.text]
    assert len(notes) == 4, [line.text for line in run.logs()]
