"""Experiments read outside the cell, as an ML engineer choosing a model reads them (issue 19,
item 4): the CLI watching a sweep that still runs, its CSV opened in a spreadsheet, its table
in a terminal and its JSON read by a script; params named like a row's own columns; runs named
twice or given as run objects; the REST routes' query parameters as HTTP clients send them, a
client paging by `next`, the compare tab's filter by run, and the Flows panel's list while a
compare tab reads across runs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import labloom
from experiment_server import get, jp_server_config, refused, rows_as_lists  # noqa: F401  (fixtures: see there)
from labloom import flow, log_metrics, log_params, task
from labloom.server_extension import experiment_rows
from labloom.store import experiments as store_experiments
from store_helpers import cli

pytest_plugins = ["pytest_jupyter.jupyter_server"]


gate = threading.Event()


@task(params=True, metrics=["auc"])
def fit(depth: int) -> dict[str, float]:
    gate.wait(60)  # its params are recorded as it starts, its auc once it returns
    return {"auc": depth / 10}


@flow
def slow_sweep() -> Any:
    return fit.map([1, 2, 3])


def _stored_rows(run_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        try:
            rows = labloom.experiments(run=run_id)
        except labloom.TargetError:  # the writer has not recorded the run yet
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return list(rows)
        time.sleep(0.1)


def test_a_sort_by_a_metric_still_to_come_is_no_error_while_the_run_runs(
    labloom_home: Path,
) -> None:
    # `watch labloom experiments RUN --sort auc --desc --top 10` beside a sweep: it said
    # "no column 'auc' to sort by" (exit 2) until the first child returned its auc, where
    # run.experiments(sort="auc") gave the rows so far.
    gate.clear()
    run = slow_sweep.run(executor="threads", background=True)
    try:
        assert [r["depth"] for r in _stored_rows(run.id, 3)] == [1, 2, 3]
        rows = labloom.experiments(run=run.id, sort="auc", desc=True)
        assert [r["state"] for r in rows] == ["Running"] * 3
        assert len(labloom.experiments(flow="slow_sweep", sort="auc")) == 3
        for args in ((run.id,), ("--flow", "slow_sweep")):
            shown = cli(labloom_home, "experiments", *args, "--sort", "auc", "--desc", "--top", "10")
            assert shown.returncode == 0, shown.stderr
            assert shown.stdout.count("Running") == 3, shown.stdout
        waiting = cli(labloom_home, "experiments", run.id, "--filter", "auc>0.1")  # to come
        assert waiting.returncode == 0 and "none of the 3 rows match" in waiting.stdout
    finally:
        gate.set()
    run.wait()
    done = cli(labloom_home, "experiments", run.id, "--sort", "auc", "--desc")
    assert done.returncode == 0 and done.stdout.index("fit[2]") < done.stdout.index("fit[0]")
    typo = cli(labloom_home, "experiments", run.id, "--sort", "acu")  # once ended: a typo
    assert typo.returncode == 2 and "no column 'acu' to sort by" in typo.stderr
    with pytest.raises(labloom.UnknownColumnError, match="no column 'acu'"):
        labloom.experiments(run=run.id, sort="acu")
    # A filter's typo was looked for as words: "none of the 3 rows match the filter", no why.
    typo = cli(labloom_home, "experiments", run.id, "--filter", "depth>1 acu>0.1")
    assert typo.returncode == 2, typo.stdout
    assert "no column 'acu' in the filter term 'acu>0.1'" in typo.stderr
    assert "the rows' params and metrics: depth, auc (also index, state" in typo.stderr
    kept = cli(labloom_home, "experiments", "--flow", "slow_sweep", "--filter", f"run={run.id} auc>0.1")
    assert kept.returncode == 0 and "fit[2]" in kept.stdout and "fit[0]" not in kept.stdout


@task
def noted(note: str) -> None:
    log_params(note=note)


@flow
def notes(values: list[str]) -> Any:
    return noted.map(values)


# What a spreadsheet would run as a formula (CSV injection), and text it must not touch.
FORMULAS = ['=HYPERLINK("http://x.example","click")', "+1+2", "-2+3", "@SUM(A1)",
            "\t=1", "=cmd|' /C calc'!A0"]
PLAIN = ["-3", "+1.5", "-1e-3", 'a,"b"\nc', "ünï 🧪", "x=1", ""]


def test_csv_text_a_spreadsheet_would_run_is_quoted_and_the_rest_kept(labloom_home: Path
                                                                      ) -> None:
    run = notes.run(values=FORMULAS + PLAIN, executor="local")
    done = cli(labloom_home, "experiments", run.id, "--csv")
    assert done.returncode == 0, done.stderr
    got = [r["note"] for r in csv.DictReader(io.StringIO(done.stdout))]
    assert got == ["'" + text for text in FORMULAS] + PLAIN
    exact = json.loads(cli(labloom_home, "experiments", run.id, "--json").stdout)
    assert [r["params"]["note"] for r in exact["rows"]] == FORMULAS + PLAIN  # as logged


def test_the_terminal_table_keeps_one_line_a_row(labloom_home: Path) -> None:
    # A value holding a newline (or an escape sequence) broke the table across lines.
    run = notes.run(values=["first\nsecond", "bell\x07 esc\x1b[31m", "ok"], executor="local")
    done = cli(labloom_home, "experiments", run.id)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4, lines
    assert "first\\nsecond" in lines[1] and "bell\\x07 esc\\x1b[31m" in lines[2]
    assert "\x1b" not in done.stdout
    # A long text (a path, a model's repr) made every row wider than a screen: cut, and said.
    long = "/data/" + "x" * 150 + "/train.parquet"
    run = notes.run(values=[long, "ok"], executor="local")
    lines = cli(labloom_home, "experiments", run.id).stdout.splitlines()
    assert lines[1].endswith("/data/" + "x" * 33 + "…") and len(lines[1]) < 100, lines
    assert lines[-1] == "(text over 40 characters cut; --csv or --json give it whole)"
    assert cli(labloom_home, "experiments", run.id, "--csv").stdout.count(long) == 1


def test_the_table_reads_none_and_inf_as_the_views_do(labloom_home: Path) -> None:
    # max_depth=None (no limit) showed blank, as a param not logged does, and inf read
    # "Infinity" (JSON's name); the views say None and inf.
    run = notes.run(values=[None, "ok", -math.inf], executor="local")
    lines = cli(labloom_home, "experiments", run.id).stdout.splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["None", "ok", "-inf"], lines
    rows = list(csv.DictReader(io.StringIO(cli(labloom_home, "experiments", run.id, "--csv").stdout)))
    assert [r["note"] for r in rows] == ["", "ok", "-Infinity"]  # a reader's null, as before
    exact = json.loads(cli(labloom_home, "experiments", run.id, "--json").stdout)
    assert exact["rows"][0]["params"] == {"note": None}
    # The filter reads what the table shows: "note=None" matched no row, "note=" that one.
    for query, kept in (("note=None", 1), ("note=", 0), ("none", 1)):
        found = json.loads(cli(labloom_home, "experiments", run.id, "--filter", query,
                               "--json").stdout)
        assert found["total"] == kept, query


def test_the_cli_reads_the_runs_since_a_date_or_a_time_ago(labloom_home: Path) -> None:
    # labloom.experiments(since=...) and GET experiments?since= had it; the shell had no way
    # to say "last night's runs of the retrain against today's".
    first = notes.run(values=["old"], executor="local")
    between = datetime.fromtimestamp(time.time()).isoformat()  # local, to the microsecond
    second = notes.run(values=["new"], executor="local")
    for since, ids in ((between, {second.id}), ("1h", {first.id, second.id})):
        done = cli(labloom_home, "experiments", "--flow", "notes", "--since", since, "--json")
        assert done.returncode == 0, done.stderr
        assert {row["run_id"] for row in json.loads(done.stdout)["rows"]} == ids, since
    later = cli(labloom_home, "experiments", "--since", "2099-01-01")
    assert later.returncode == 0 and "no runs recorded since 2099-01-01 00:00:00" in later.stdout
    bad = cli(labloom_home, "experiments", "--since", "yesterday")
    assert bad.returncode == 2 and "'yesterday' is neither a date" in bad.stderr
    with_run = cli(labloom_home, "experiments", second.id, "--since", "1h")
    assert with_run.returncode == 2 and "give it without RUN" in with_run.stderr


arrived = threading.Event()


@task
def finishes_last_first(i: int) -> None:
    if i == 0:
        arrived.wait(60)  # child 0 logs after child 2 (the deadline: a broken test ends)
    log_params(i=i)
    if i == 2:
        arrived.set()


@flow
def out_of_order() -> Any:
    return finishes_last_first.map(range(3))


def test_the_cli_shows_rows_by_map_index_unsorted(labloom_home: Path) -> None:
    # In the order logged (a Dask sweep's, the order they finished) the table read
    # train[7], train[2], ... and --top 1 was the first to finish, where the views show
    # rows by index.
    arrived.clear()
    run = out_of_order.run(executor="threads")
    logged = [row["i"] for row in labloom.experiments(run=run.id)]
    assert logged.index(2) < logged.index(0), logged  # as Python gives them: as logged
    table = cli(labloom_home, "experiments", run.id).stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == [f"finishes_last_first[{i}]" for i in range(3)]
    top = json.loads(cli(labloom_home, "experiments", run.id, "--top", "1", "--json").stdout)
    assert [row["map_index"] for row in top["rows"]] == [0]


def test_runs_named_twice_are_read_once(labloom_home: Path) -> None:
    # A run named by its id and by a prefix (or twice) gave each of its rows twice.
    run = notes.run(values=["a", "b"], executor="local")
    rows = labloom.experiments(runs=[run.id, run.id[:6]])
    assert [r["note"] for r in rows] == ["a", "b"]
    assert len(labloom.experiments(run=run.id, runs=[run.id])) == 2


def test_runs_are_named_by_id_or_given_themselves() -> None:
    # labloom.experiments(runs=[run, yesterday]) said "Error binding parameter 1: type
    # 'FlowRun' is not supported"; runs="3f2a..." looked for a run '3' (its characters).
    one = notes.run(values=["a"], executor="local")
    two = notes.run(values=["b", "c"], executor="local")
    assert len(labloom.experiments(run=one)) == 1
    assert len(labloom.experiments(runs=[one, two.id])) == 3
    assert len(labloom.experiments(runs=two.id)) == 2
    assert len(labloom.experiments(runs=two)) == 2  # was "'FlowRun' object is not iterable"
    with pytest.raises(TypeError, match=r"named by its id .* got a int"):
        labloom.experiments(runs=[1])
    with pytest.raises(TypeError, match=r"runs takes run ids or runs .* got a int"):
        labloom.experiments(runs=1)




def test_no_runs_of_a_flow_is_empty_output_for_a_script(labloom_home: Path) -> None:
    # `labloom experiments --flow retrain --json` before its first run printed a sentence on
    # stdout: a script's json.loads failed there (`labloom runs --flow retrain --json`: []).
    notes.run(values=["a"], executor="local")
    shown = cli(labloom_home, "experiments", "--flow", "retrain", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["rows"] == []
    assert "no runs recorded for flow 'retrain'" in shown.stderr
    shown = cli(labloom_home, "experiments", "--flow", "retrain", "--csv")
    assert shown.returncode == 0 and shown.stdout.startswith("run_id,task_run_id,")
    assert len(shown.stdout.splitlines()) == 1 and "no runs recorded" in shown.stderr
    shown = cli(labloom_home, "experiments", "--flow", "retrain")  # for people: the sentence
    assert "no runs recorded for flow 'retrain'" in shown.stdout


@task
def multitask(i: int) -> None:
    # Names an ML sweep uses for its own params: the task learnt, a clip's duration, a state.
    log_params(task="sentiment", duration=30, state="CA", run_id="exp-7", map_index=i * 100)
    log_metrics(auc=i / 10)
    if i == 1:
        raise ValueError("diverged")


@flow
def clashing() -> Any:
    return labloom.allow_failure(multitask.map(range(3)))


def test_a_param_named_like_a_fixed_column_keeps_both(labloom_home: Path) -> None:
    # log_params(task=..., state=...) overwrote the task run's own columns in the rows: the
    # failed child read state "CA", every row run_id "exp-7", and the CLI table left them out.
    run = clashing.run(executor="local")
    for rows in (run.experiments(), labloom.experiments(run=run.id)):
        assert [r["state"] for r in rows] == ["Completed", "Failed", "Completed"]
        assert {r["run_id"] for r in rows} == {run.id} and {r["task"] for r in rows} == {"multitask"}
        assert [r["map_index"] for r in rows] == [0, 1, 2]
        assert [r["params.map_index"] for r in rows] == [0, 100, 200]
        assert {(r["params.task"], r["params.state"], r["params.duration"], r["params.run_id"])
                for r in rows} == {("sentiment", "CA", 30, "exp-7")}
    records = list(csv.DictReader(io.StringIO(
        cli(labloom_home, "experiments", run.id, "--csv").stdout)))
    assert [r["state"] for r in records] == ["Completed", "Failed", "Completed"]
    assert records[1]["params.state"] == "CA" and records[1]["auc"] == "0.1"
    table = cli(labloom_home, "experiments", run.id).stdout.splitlines()
    assert "params.task" in table[0] and "sentiment" in table[2] and "Failed" in table[2]


def test_the_cli_filters_as_the_view_does(labloom_home: Path) -> None:
    """`labloom experiments --filter`: the view's and REST's grammar, in the shell too."""
    run = clashing.run(executor="local")
    exact = json.loads(cli(labloom_home, "experiments", run.id, "--json", "--filter",
                           "auc>0.05 state=Completed").stdout)
    assert [r["map_index"] for r in exact["rows"]] == [2] and exact["total"] == 1
    table = cli(labloom_home, "experiments", run.id, "--filter", "diverged").stdout
    assert table.count("multitask[") == 0  # a traceback's words are not a cell's
    failed = cli(labloom_home, "experiments", run.id, "--filter", "failed").stdout
    assert failed.count("multitask[") == 1 and "multitask[1]" in failed
    across = cli(labloom_home, "experiments", "--flow", "clashing", "--csv", "--filter",
                 f"run={run.id} auc<0.05")
    assert [r["map_index"] for r in csv.DictReader(io.StringIO(across.stdout))] == ["0"]
    none = cli(labloom_home, "experiments", run.id, "--filter", "auc>5")
    assert none.returncode == 0 and "none of the 3 rows match the filter 'auc>5'" in none.stdout
    long = cli(labloom_home, "experiments", run.id, "--filter", "x" * 3000)
    assert long.returncode != 0 and "at most 2000" in long.stderr


async def test_rest_desc_reads_as_clients_send_it(jp_fetch: Any) -> None:
    # `requests.get(url, params={"desc": False})` sends desc=False: it sorted descending.
    run = notes.run(values=["b", "c", "a"], executor="local")
    for text, order in [("False", "abc"), ("false", "abc"), ("off", "abc"), ("0", "abc"),
                        ("", "abc"), ("True", "cba"), ("1", "cba"), ("yes", "cba")]:
        for path in (("runs", run.id, "experiments"), ("experiments",)):
            page = await get(jp_fetch, *path, sort="note", desc=text)
            assert "".join(r["params"]["note"] for r in page["rows"]) == order, (text, path)
            assert page["desc"] is (order == "cba")
    for path in (("runs", run.id, "experiments"), ("experiments",)):
        code, message = await refused(jp_fetch, *path, sort="note", desc="maybe")
        assert code == 400 and "desc must be 1 or 0" in message
    # The run route's flag reads alike: tasks=False leaves its task runs out, as tasks=0 does.
    assert "task_runs" not in await get(jp_fetch, "runs", run.id, tasks="False")
    assert "task_runs" in await get(jp_fetch, "runs", run.id, tasks="true")
    again = await get(jp_fetch, "experiments", runs=f"{run.id},{run.id[:6]}")
    assert again["total"] == 3 and again["runs"] == [run.id]


@task
def two_calls(i: int) -> None:
    log_params(i=i)
    log_metrics(score=float(i % 7))


@flow
def pairs(n: int) -> Any:
    return two_calls.map(range(n))


async def test_a_client_following_next_gets_every_row_once(jp_fetch: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # A big run's first look, partial, read exactly the page's rows: its `next` was null, so a
    # client paging "while next" stopped at 20 rows of 60 (a store row of 10 calls here, 1,000
    # in a 100,000-child run; the first look reads 4 rows, here 20 children's calls).
    monkeypatch.setattr(store_experiments, "CALLS_PER_ROW", 10)
    monkeypatch.setattr(experiment_rows, "FIRST_LOOK", 100)
    run = pairs.run(n=60, executor="local")
    seen: list[int] = []
    offset: int | None = 0
    partial = False
    while offset is not None:
        page = await get(jp_fetch, "runs", run.id, "experiments", limit="20", offset=str(offset))
        partial = partial or page.get("partial", False)
        seen += [row["map_index"] for row in page["rows"]]
        offset = page["next"]
    assert partial  # the case: a first page answered from the first look
    assert seen == list(range(60))


async def test_rest_across_runs_filters_by_the_run_column_as_the_compare_view_does(
    jp_fetch: Any,
) -> None:
    # The compare tab's run column is labelled "run": `run=ID` in its filter box kept that
    # run's rows while the browser filtered (up to 5,000 rows), and none once the server did.
    one = notes.run(values=["a", "b"], executor="local")
    two = notes.run(values=["c"], executor="local")
    runs = f"{one.id},{two.id}"
    for term in (f"run={one.id}", f"run_id={one.id}", one.id):
        page = await get(jp_fetch, "experiments", runs=runs, filter=term)
        assert [r["params"]["note"] for r in page["rows"]] == ["a", "b"], term
    page = await get(jp_fetch, "experiments", runs=runs, filter=f"run!={one.id}")
    assert [r["params"]["note"] for r in page["rows"]] == ["c"]


async def test_the_flows_panel_never_waits_behind_a_compare_tab(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A compare tab of 50 runs asks pages that read every run (0.5 s each here), on the pool
    # the Flows panel's list is read on: GET runs took 2.7 s instead of 0.02 s while it
    # scrolled. Held here: two reads across runs hold the pool, the list must still answer.
    from labloom.server_extension import across_rows as routes

    run = notes.run(values=["a"], executor="local")
    held, release = threading.Event(), threading.Event()
    reads = routes.rows_by_run

    def slow_rows(*args: Any) -> Any:
        held.set()
        release.wait(30)
        return reads(*args)

    monkeypatch.setattr(routes, "rows_by_run", slow_rows)
    asks = [asyncio.ensure_future(get(jp_fetch, "experiments", runs=run.id, offset=str(i)))
            for i in range(4)]
    try:
        while not held.is_set():
            await asyncio.sleep(0.01)
        # The asks above are held till the finally: a list behind them would never come.
        listed = await asyncio.wait_for(get(jp_fetch, "runs"), timeout=60)
        assert [r["id"] for r in listed["runs"]] == [run.id]
    finally:
        release.set()
    assert [len(page["rows"]) for page in await asyncio.gather(*asks)] == [1, 0, 0, 0]
