"""Odd text in logged names and values (issue 19), on SQLite and PostgreSQL: a lone surrogate
(what os.listdir gives for a file name that is not UTF-8), NUL (which PostgreSQL's text refuses)
and bidirectional controls come back from the store as logged, in Python and in ``--json``; the
terminal table and ``--csv`` show what they cannot print as escapes, and the REST pages carry
them, never a traceback. On every executor: a Dask worker's messages carry them too."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import labloom
from experiment_server import get, jp_server_config, rows_as_lists  # noqa: F401  (fixtures: see there)
from labloom import flow, log_metrics, log_params, task
from store_helpers import cli

pytest_plugins = ["pytest_jupyter.jupyter_server"]

LONE = b"caf\xe9.csv".decode("utf-8", "surrogateescape")  # caf\udce9.csv
NUL = "a\x00b"
RTL = "total: \u202e0001"
ODD_NAME = "file " + LONE


@task
def read_file(i: int) -> None:
    print("reading", LONE)
    log_params(path=LONE, sep=NUL, label=RTL, **{ODD_NAME: i, "n\x00ul": i})
    log_metrics(auc=i / 10)


@flow
def odd_files(n: int) -> None:
    read_file.map(range(n))


def _odd_run(executor: Any = "threads") -> Any:
    run = odd_files.run(n=2, executor=executor)
    assert run.state.value == "Completed", run.message
    return run


def test_odd_text_comes_back_from_the_store_as_logged(store_backend: str, any_executor: Any,
                                                      ) -> None:
    # Before, on Dask: the worker's messages (msgpack, strict UTF-8) failed on the lone
    # surrogate of the print and of the param, the worker's stream to the scheduler broke, and
    # the run waited for ever.
    run = _odd_run(any_executor)
    assert [line.text for line in run.logs()] == ["reading " + LONE] * 2
    for rows in (run.experiments(sort="auc"), labloom.experiments(run=run, sort="auc")):
        assert [(r["path"], r["sep"], r["label"], r[ODD_NAME], r["n\x00ul"]) for r in rows] == [
            (LONE, NUL, RTL, 0, 0), (LONE, NUL, RTL, 1, 1)]


def test_the_cli_prints_odd_text_as_escapes_and_json_keeps_it(store_backend: str,
                                                               labloom_home: Path) -> None:
    run = _odd_run()
    # Before: the table and --csv died on the lone surrogate (UnicodeEncodeError traceback).
    table = cli(labloom_home, "experiments", run.id, "--sort", "auc", "--desc")
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "caf\\udce9.csv" in table.stdout and "a\\x00b" in table.stdout, table.stdout
    assert "\\u202e0001" in table.stdout and "\u202e" not in table.stdout, table.stdout
    assert "file caf\\udce9.csv" in table.stdout.splitlines()[0], table.stdout
    sheet = cli(labloom_home, "experiments", run.id, "--csv", "--sort", "auc")
    assert sheet.returncode == 0 and "Traceback" not in sheet.stderr, sheet.stderr
    rows = list(csv.DictReader(io.StringIO(sheet.stdout)))
    assert [r["path"] for r in rows] == ["caf\\udce9.csv"] * 2, sheet.stdout
    assert [r["file caf\\udce9.csv"] for r in rows] == ["0", "1"], sheet.stdout
    filtered = cli(labloom_home, "experiments", run.id, "--filter", "auc>0.05")
    assert filtered.returncode == 0 and "caf\\udce9.csv" in filtered.stdout, filtered.stderr
    exact = cli(labloom_home, "experiments", run.id, "--json", "--sort", "auc")
    assert exact.returncode == 0, exact.stderr
    params = [row["params"] for row in json.loads(exact.stdout)["rows"]]
    assert [(p["path"], p["sep"], p["label"], p[ODD_NAME]) for p in params] == [
        (LONE, NUL, RTL, 0), (LONE, NUL, RTL, 1)]


async def test_rest_pages_carry_odd_text(jp_fetch: Any, store_backend: str) -> None:
    run = _odd_run()
    across = {"flow": "odd_files", "filter": f'label="{RTL}"', "sort": "auc"}
    for path, params in ((("runs", run.id, "experiments"), {"sort": "auc"}),
                         (("experiments",), across)):
        page = await get(jp_fetch, *path, **params)
        assert page["total"] == 2, page
        assert [(r["params"]["path"], r["params"]["label"], r["params"][ODD_NAME])
                for r in page["rows"]] == [(LONE, RTL, 0), (LONE, RTL, 1)]


def test_an_ended_runs_snapshot_keeps_odd_text(store_backend: str) -> None:
    # The rows an ended run is folded into (``store/experiment_snapshot.py``), so that any
    # server pages it without reading the logged values. Before: its write failed on a name
    # holding a lone surrogate (UnicodeEncodeError, both stores) or NUL (PostgreSQL), and
    # every fresh server read the whole run again.
    from labloom.server_extension import experiment_rows
    from labloom.store import experiment_snapshot as snap
    from labloom.store import open_store

    run = _odd_run()
    with open_store() as store:
        record = store.matching_runs(run.id)[0]
        experiment_rows.ExperimentRows().page(store, record, None, False, 5, 0,
                                              later=lambda fn, *args: fn(store, *args))
        assert snap.read_meta(store, run.id) is not None
        fresh = experiment_rows.ExperimentRows()  # another server: pages from the snapshot
        page = fresh.page(store, record, ODD_NAME, True, 5, 0, query=f'label="{RTL}"')
        assert [(r["params"]["path"], r["params"]["sep"], r["params"][ODD_NAME],
                 r["params"]["n\x00ul"]) for r in page["rows"]] == [
            (LONE, NUL, 1, 1), (LONE, NUL, 0, 0)]
        page = fresh.page(store, record, "n\x00ul", False, 5, 0, query="sep=" + NUL)
        assert [r["params"][ODD_NAME] for r in page["rows"]] == [0, 1]
        assert not fresh._runs  # never read the logged values


def test_the_cells_experiments_view_gets_a_lone_surrogate_escaped(store_backend: str) -> None:
    """The cell widget's answers travel as a comm message: packed as UTF-8 with
    surrogateescape, read back with replace. Before: the view showed caf\ufffd.csv (the byte
    lost); now caf\\udce9.csv, as the run's parameters views show such text."""
    from jupyter_client.session import json_packer, json_unpacker

    from labloom.notebook.widget.view import RunView

    run = _odd_run()
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, sent.append, layout_engine="builtin")
    view.start()
    try:
        node = view.read(lambda g: next(n.id for n in g.nodes.values()))
        view.handle({"event": "experiments", "req": "r1", "node": node, "sort": "auc"})
        page = json_unpacker(json_packer(sent[-1]))  # what the front end reads
    finally:
        view.close()
    escaped = "caf\\udce9.csv"
    assert [(r["params"]["path"], r["params"]["file " + escaped]) for r in page["rows"]] == [
        (escaped, 0), (escaped, 1)], page
    assert "file " + escaped in {c["name"] for c in page["columns"]}
