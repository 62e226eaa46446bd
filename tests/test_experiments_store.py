"""Params and metrics in the store (issue 19, item 4), on SQLite and PostgreSQL: values come
back as they went in (NaN, inf, bools, big ints, None), read per run and across runs from
Python, the real `labloom experiments` command and the REST API behind Jupyter's auth."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import labloom
from experiment_server import get, jp_server_config, refused, rows_as_lists  # noqa: F401  (fixtures: see there)
from labloom import flow, log_metric, log_metrics, log_params, task
from labloom.core.experiments import jsonable
from labloom.store import open_store
from labloom.store.experiments import run_experiments
from store_helpers import cli, cli_json

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@task
def trial(depth: int) -> float:
    log_params(depth=depth, criterion="gini", max_features=None)
    for epoch in range(3):
        log_metric("loss", 1.0 / (depth + epoch + 1), step=epoch)
    log_metrics(auc=depth / 10, odd=float("nan"), top=float("inf"), low=float("-inf"),
                best=depth == 3, big=2**60 + depth)
    if depth == 0:
        raise ValueError("depth 0 fails after logging")
    return depth / 10


@flow
def search(depths: list[int]) -> Any:
    return labloom.allow_failure(trial.map(depths))


def _check_row(row: dict[str, Any], depth: int) -> None:
    assert row["depth"] == depth and row["criterion"] == "gini" and row["max_features"] is None
    assert row["auc"] == depth / 10 and row["best"] is (depth == 3)
    assert row["loss"] == pytest.approx(1.0 / (depth + 3))
    assert math.isnan(row["odd"]) and row["top"] == math.inf and row["low"] == -math.inf
    assert row["big"] == 2**60 + depth and isinstance(row["big"], int)


def test_values_survive_the_store(store_backend: str) -> None:
    run = search.run(depths=[2, 0, 3], executor="threads")
    stored = labloom.experiments(run=run.id)
    # The store agrees with the kernel, value for value (NaN != NaN: compared as JSON).
    assert jsonable(stored) == jsonable(run.experiments())
    by_index = {row["map_index"]: row for row in stored}
    for index, depth in enumerate([2, 0, 3]):
        _check_row(by_index[index], depth)
    assert by_index[1]["state"] == "Failed" and by_index[0]["state"] == "Completed"
    assert by_index[0]["duration"] >= 0 and by_index[0]["task"] == "trial"


def test_across_runs_by_flow_and_since(store_backend: str) -> None:
    first = search.run(depths=[1], executor="local")
    middle = time.time()  # the first run has ended: after it was created, before the second
    second = search.run(depths=[2, 3], executor="local")
    rows = labloom.experiments(flow="search", sort="auc", desc=True)
    assert [(r["run_id"], r["depth"]) for r in rows] == [
        (second.id, 3), (second.id, 2), (first.id, 1)
    ]
    assert [r["depth"] for r in labloom.experiments(flow="search", since=middle)] == [2, 3]
    with pytest.warns(UserWarning, match="no runs of flow 'other' recorded"):
        assert labloom.experiments(flow="other") == []  # still empty (see test_..._surfaces)
    assert len(labloom.experiments(runs=[first.id, second.id[:8]])) == 3
    with pytest.raises(labloom.TargetError, match="no run 'nope' in the store"):
        labloom.experiments(run="nope")


def test_a_sort_or_since_it_cannot_use_is_a_clear_error(store_backend: str, labloom_home: Path
                                                        ) -> None:
    # A typo came back unsorted, looking sorted; "yesterday" matched no run, silently.
    run = search.run(depths=[1, 2], executor="local")
    for read in (lambda sort: labloom.experiments(flow="search", sort=sort),
                 lambda sort: run.experiments(sort=sort)):
        with pytest.raises(labloom.UnknownColumnError, match=r"no column 'acu'.*depth.*auc"):
            read("acu")
        with pytest.raises(labloom.UnknownColumnError, match=r"no column 'params\.auc'"):
            read("params.auc")  # a metric, not a param
        assert [row["depth"] for row in read("metrics.auc")] == [1, 2]
        assert [row["depth"] for row in read("duration")] in ([1, 2], [2, 1])
    with pytest.raises(ValueError, match="since='yesterday' is neither a date nor a time ago"):
        labloom.experiments(flow="search", since="yesterday")
    with pytest.raises(TypeError, match=r"since must be a datetime.*got a list"):
        labloom.experiments(flow="search", since=[1])
    today = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    assert len(labloom.experiments(flow="search", since=today)) == 2  # from yesterday on
    assert labloom.experiments(flow="search", since="2999-01-01") == []

    typo = cli(labloom_home, "experiments", run.id, "--sort", "acu")
    assert typo.returncode == 2 and "no column 'acu' to sort by" in typo.stderr
    assert "the rows' params and metrics: depth, criterion" in typo.stderr
    unknown = cli(labloom_home, "experiments", "--flow", "serach")
    assert unknown.returncode == 0 and "no runs recorded for flow 'serach'" in unknown.stdout


class Model:
    pass


# Each kind of bad value, and the error's words: one map child per kind.
BAD: dict[str, tuple[Any, str]] = {
    "list": ("metric", "metric 'bad' is a list"),
    "dict": ("metric", "metric 'bad' is a dict"),
    "object": ("metric", "metric 'bad' is a test_experiments_store.Model"),
    "none": ("metric", "metric 'bad' is a NoneType"),
    "secret": ("metric", "metric 'bad' is a secret"),
    "param": ("param", "param 'bad' is a test_experiments_store.Model"),
    "step": ("step", "step must be a whole number >= 0"),
    "name": ("name", "names are at most 100"),
}


@task
def careless(kind: str) -> None:
    log_params(lr=0.1)
    log_metric("loss", 0.5, step=0)
    value = {"list": [1], "dict": {"a": 1}, "object": Model(), "none": None,
             "secret": labloom.Secret("hunter2")}.get(kind, Model())
    where = BAD[kind][0]
    if where == "metric":
        log_metrics(auc=0.9, bad=value)  # refused whole: auc is not recorded either
    elif where == "param":
        log_params(seed=1, bad=value)
    elif where == "step":
        log_metric("auc", 0.9, step=-1)
    else:
        log_metrics({"x" * 101: 0.9})


@task(params=True, metrics=["auc"])
def declared(shape: str) -> Any:
    return "not a dict" if shape == "text" else {"other": 1}


@flow
def oops() -> Any:
    return labloom.allow_failure(careless.map(list(BAD))), labloom.allow_failure(
        declared.map(["text", "missing"]))


def test_each_bad_value_is_a_clear_error_and_loses_nothing_stored(store_backend: str) -> None:
    run = oops.run(executor="threads")
    with open_store() as store:
        rows = {(row.task, row.map_index): row for row in run_experiments(store, run.id)}
        stored = {(tr.task_name, tr.map_index): tr.message for tr in store.task_runs(run.id)}
    for index, (kind, (_, words)) in enumerate(BAD.items()):
        row = rows[("careless", index)]
        assert row.params == {"lr": 0.1} and row.metrics == {"loss": 0.5}, kind
        assert row.state == "Failed", kind
        message = stored[("careless", index)]
        assert words in message and "hunter2" not in message, (kind, message)
    text, missing = rows[("declared", 0)], rows[("declared", 1)]
    assert text.params == {"shape": "text"} and text.metrics == {}
    assert missing.params == {"shape": "missing"} and missing.metrics == {}
    assert "returned a str" in stored[("declared", 0)]
    assert "returned dict has no 'auc'" in stored[("declared", 1)]


def test_the_cli_sorts_tops_and_prints_csv_and_json(store_backend: str, labloom_home: Path
                                                     ) -> None:
    run = search.run(depths=[2, 0, 3, 1], executor="local")
    table = cli(labloom_home, "experiments", run.id[:6], "--sort", "auc", "--desc", "--top", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["TASK", "RUN", "STATE", "DURATION"]
    assert "trial[2]" in lines[1] and "trial[0]" in lines[2] and "NaN" in lines[1]
    assert "(2 of 4 rows" in table.stdout

    answer = cli_json(labloom_home, "experiments", run.id, "--sort", "depth")
    assert answer["total"] == 4 and [r["params"]["depth"] for r in answer["rows"]] == [0, 1, 2, 3]
    assert answer["rows"][0]["metrics"]["odd"] == "NaN"
    assert answer["rows"][0]["metrics"]["low"] == "-Infinity"
    assert {"kind": "metric", "name": "auc", "type": "number"} in answer["columns"]

    done = cli(labloom_home, "experiments", run.id, "--csv", "--sort", "auc")
    assert done.returncode == 0, done.stderr
    records = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["depth"] for r in records] == ["0", "1", "2", "3"]
    assert records[0]["top"] == "Infinity" and records[0]["max_features"] == ""

    across = cli_json(labloom_home, "experiments", "--flow", "search")
    assert across["total"] == 4
    missing = cli(labloom_home, "experiments", "nope")
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr


def test_the_cli_says_how_to_record_when_nothing_was(store_backend: str,
                                                     labloom_home: Path) -> None:
    @task
    def quiet() -> int:
        return 1

    @flow
    def silent() -> Any:
        return quiet()

    run = silent.run(executor="local")
    done = cli(labloom_home, "experiments", run.id)
    assert done.returncode == 0 and "labloom.log_metrics" in done.stdout


async def test_rest_pages_a_run_sorted(jp_fetch: Any, store_backend: str) -> None:
    run = search.run(depths=[2, 0, 3, 1], executor="local")
    first = await get(jp_fetch, "runs", run.id, "experiments", sort="auc", desc="1", limit="3")
    assert first["run_id"] == run.id and first["total"] == 4 and first["next"] == 3
    assert [r["params"]["depth"] for r in first["rows"]] == [3, 2, 1]
    row = first["rows"][0]
    assert row["map_index"] == 2 and row["state"] == "Completed" and row["task"] == "trial"
    assert row["metrics"]["odd"] == "NaN" and row["metrics"]["top"] == "Infinity"
    assert row["metrics"]["big"] == 2**60 + 3 and row["metrics"]["best"] is True
    rest = await get(jp_fetch, "runs", run.id, "experiments", sort="auc", desc="1",
                     limit="3", offset="3")
    assert [r["params"]["depth"] for r in rest["rows"]] == [0] and rest["next"] is None
    kinds = {(c["kind"], c["name"]): c["type"] for c in first["columns"]}
    assert kinds[("param", "criterion")] == "string" and kinds[("metric", "best")] == "bool"


async def test_rest_across_runs_and_errors(jp_fetch: Any, store_backend: str) -> None:
    one = search.run(depths=[1], executor="local")
    two = search.run(depths=[2], executor="local")
    both = await get(jp_fetch, "experiments", flow="search", sort="depth")
    assert both["runs"] == [two.id, one.id] and both["total"] == 2
    assert [r["run_id"] for r in both["rows"]] == [one.id, two.id]
    named = await get(jp_fetch, "experiments", runs=one.id)
    assert [r["run_id"] for r in named["rows"]] == [one.id]
    for path, params, code in [
        (("runs", "abcdef012345", "experiments"), {}, 404),
        (("runs", run_id_hostile(), "experiments"), {}, 404),
        (("runs", one.id, "experiments"), {"limit": "5000"}, 400),
        (("experiments",), {"since": "yesterday"}, 400),
        (("experiments",), {"since": "nan"}, 400),  # was 200 with no rows, as if none ran
        (("runs",), {"until": "NaN"}, 400),  # was every run
    ]:
        assert (await refused(jp_fetch, *path, **params))[0] == code, (path, params)
    for path in (("runs", one.id, "experiments"), ("experiments",),
                 ("runs", one.id, "experiments", "curves")):
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("labloom", "api", *path, params={"metric": "auc"},
                           headers={"Authorization": ""})
        assert caught.value.code == 403


def run_id_hostile() -> str:
    return "' OR 1=1 --"


async def test_rest_gives_a_metric_curve_long_form(jp_fetch: Any, store_backend: str) -> None:
    run = search.run(depths=[2, 3], executor="local")
    curve = await get(jp_fetch, "runs", run.id, "experiments", "curves", metric="loss")
    assert curve["metric"] == "loss" and curve["total"] == 6 and not curve["truncated"]
    first = curve["points"][0]
    assert first["task"] == "trial" and first["state"] == "Completed"
    assert [(p["map_index"], p["step"]) for p in curve["points"]] == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)
    ]
    assert curve["points"][2]["value"] == pytest.approx(1 / 5)
    odd = await get(jp_fetch, "runs", run.id, "experiments", "curves", metric="odd",
                    task_runs=first["task_run_id"], limit="1")
    assert odd["total"] == 1 and odd["points"][0]["value"] == "NaN"
    assert (await refused(jp_fetch, "runs", run.id, "experiments", "curves"))[0] == 400


@task
def wide_trial(i: int) -> None:
    log_params(note='tab\there "quoted" back\\slash\nnewline ünïcode 🧪', i=i)
    log_metrics(score=float("nan") if i % 2 else i / 10)


@flow
def wide_search(n: int) -> Any:
    return wide_trial.map(range(n))


def test_a_batch_of_many_rows_round_trips(store_backend: str) -> None:
    """Enough rows for the writer's bulk path (COPY on PostgreSQL), with awkward text."""
    run = wide_search.run(n=120, executor="threads")
    with open_store() as store:
        rows = {row.map_index: row for row in run_experiments(store, run.id)}
    assert len(rows) == 120
    assert rows[7].params["note"] == 'tab\there "quoted" back\\slash\nnewline ünïcode 🧪'
    assert math.isnan(rows[7].metrics["score"]) and rows[8].metrics["score"] == 0.8


@task
def scored(i: int) -> None:
    log_params(group=i % 3)
    # ties (four values), NaN on every seventh, a string after every number
    score: Any = float("nan") if i % 7 == 3 else ("n/a" if i == 20 else float(i % 4))
    log_metrics(score=score)


@flow
def scoring(n: int) -> Any:
    return scored.map(range(n))


def _expected(n: int, desc: bool) -> list[int]:
    """The order the pages must give, written out apart from labloom's code: numbers by value
    (ties in the order logged, descending too), then strings, then NaN in the order logged."""
    numbers = [i for i in range(n) if i % 7 != 3 and i != 20]
    numbers.sort(key=lambda i: -(i % 4) if desc else i % 4)  # stable: ties keep map order
    strings = [20] if n > 20 else []
    nans = [i for i in range(n) if i % 7 == 3]
    return (strings + numbers if desc else numbers + strings) + nans


async def test_rest_pages_keep_order_ties_nan_and_offsets(jp_fetch: Any, store_backend: str
                                                          ) -> None:
    n = 25
    run = scoring.run(n=n, executor="local")  # logged in map order
    for desc in (False, True):
        seen: list[int] = []
        offset: int | None = 0
        while offset is not None:
            page = await get(jp_fetch, "runs", run.id, "experiments", sort="score",
                             desc=str(int(desc)), limit="10", offset=str(offset))
            assert page["total"] == n and page["offset"] == offset
            seen += [row["map_index"] for row in page["rows"]]
            offset = page["next"]
            assert offset in (None, len(seen))
        assert seen == _expected(n, desc), desc
    beyond = await get(jp_fetch, "runs", run.id, "experiments", offset="100")
    assert beyond["rows"] == [] and beyond["next"] is None and beyond["total"] == n
    unsorted = await get(jp_fetch, "runs", run.id, "experiments", limit="5", offset="5")
    assert [r["map_index"] for r in unsorted["rows"]] == [5, 6, 7, 8, 9]
    by_group = await get(jp_fetch, "runs", run.id, "experiments", sort="params.group",
                         desc="1", limit="3")
    assert [r["map_index"] for r in by_group["rows"]] == [2, 5, 8]
    by_index = await get(jp_fetch, "runs", run.id, "experiments", sort="map_index",
                         desc="1", limit="2")
    assert [r["map_index"] for r in by_index["rows"]] == [24, 23]
    assert {"kind": "metric", "name": "score", "type": "mixed"} in by_index["columns"]
    # The same pages as Python and the CLI give (one rule for every surface).
    rows = labloom.experiments(run=run.id, sort="score", desc=True)
    assert [r["map_index"] for r in rows] == _expected(n, True)


gate = threading.Event()


@task
def waits(i: int) -> None:
    log_metrics(auc=i / 10)
    if i == 0:
        gate.wait(60)
        log_metrics(auc=0.99)  # the same row's value changes after the first page


@flow
def slow_search() -> Any:
    return waits.map(range(3))


async def _until(jp_fetch: Any, run_id: str, check: Any, **params: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        try:
            page = await get(jp_fetch, "runs", run_id, "experiments", **params)
        except HTTPClientError as exc:  # 404 until the writer has recorded the run
            if exc.code != 404 or time.monotonic() > deadline:
                raise
        else:
            if check(page) or time.monotonic() > deadline:
                return page
        await asyncio.sleep(0.1)


async def test_rest_pages_of_a_running_run_follow_new_values_and_states(
    jp_fetch: Any, store_backend: str
) -> None:
    gate.clear()
    run = slow_search.run(executor="threads", background=True)
    try:
        page = await _until(jp_fetch, run.id, lambda p: p["total"] == 3 and sum(
            r["state"] == "Completed" for r in p["rows"]) == 2, sort="auc", desc="1")
        assert [r["map_index"] for r in page["rows"]] == [2, 1, 0]
        assert page["rows"][2]["state"] == "Running"
        by_state = await get(jp_fetch, "runs", run.id, "experiments", sort="state")
        assert [r["state"] for r in by_state["rows"]] == ["Completed", "Completed", "Running"]
    finally:
        gate.set()
    run.wait()
    page = await _until(jp_fetch, run.id, lambda p: p["rows"][0]["map_index"] == 0,
                        sort="auc", desc="1")
    assert [r["map_index"] for r in page["rows"]] == [0, 2, 1]
    assert page["rows"][0]["metrics"]["auc"] == 0.99
    by_state = await get(jp_fetch, "runs", run.id, "experiments", sort="state")
    assert [r["state"] for r in by_state["rows"]] == ["Completed"] * 3


@task
def typed(i: int) -> None:
    log_params(note='ünïcode "quoted" \\ 🧪', nothing=None, flag=i % 2 == 0, big=2**70 + i)
    log_metrics(whole=1.0, tiny=1e-300, count=i, precise=0.1 + 0.2)


@flow
def typed_search(n: int) -> Any:
    return typed.map(range(n))


def test_a_batch_without_nan_keeps_every_type(store_backend: str) -> None:
    """A batch with no NaN or inf goes to SQLite as JSON objects, written back by SQLite:
    each value must come back as Python wrote it (1.0 a float, big ints exact)."""
    run = typed_search.run(n=60, executor="threads")
    with open_store() as store:
        rows = {row.map_index: row for row in run_experiments(store, run.id)}
    assert len(rows) == 60
    row = rows[7]
    assert row.params == {"note": 'ünïcode "quoted" \\ 🧪', "nothing": None, "flag": False,
                          "big": 2**70 + 7}
    assert row.metrics == {"whole": 1.0, "tiny": 1e-300, "count": 7, "precise": 0.1 + 0.2}
    assert isinstance(row.metrics["whole"], float) and isinstance(row.metrics["count"], int)
    assert rows[8].params["flag"] is True


def test_values_written_one_by_one_when_a_batch_is_refused(store_backend: str) -> None:
    """The writer's fallback (each row in its own transaction, after the database refused a
    batch) encodes the values as the batch does."""
    from labloom.core import events as ev
    from labloom.store.experiments import row_of
    from labloom.store.rows import Rows

    run = search.run(depths=[1], executor="local")
    rows = Rows()
    for i, values in enumerate([{"auc": 0.5, "odd": float("nan")}, {"auc": 0.7}]):
        event = ev.ExperimentValues(run.id, f"extra{i}", time.time(), "metric", values, None)
        rows.values.add(run.id, row_of(event))
    refused: list[Any] = []
    with open_store() as store:
        rows.write_one_by_one(store.conn, lambda exc: False,
                              lambda *args: refused.append(args))
        kept = {row.task_run_id: row.metrics for row in run_experiments(store, run.id)}
    assert refused == []
    assert kept["extra1"] == {"auc": 0.7} and math.isnan(kept["extra0"]["odd"])
