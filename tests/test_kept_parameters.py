"""What a run keeps of its parameters: a value whole while its JSON is small (a grid of 350
configs replays), else its type and length, never its content; a run whose parameter was kept
as a summary is refused at once by `labloom retry` and the REST retry, naming the parameter and
the fix. Checked through the real CLI, a real Jupyter server and both stores."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import test_server_api as api
from cli_helpers import labloom, write
from labloom import LabloomError, State, flow
from labloom.store import open_store
from test_server_api import jp_server_config  # noqa: F401  (fixture: the server with labloom)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

GRID = [{"learning_rate": 10.0 ** -k, "max_depth": d, "model": "xgboost", "seed": s}
        for k in range(1, 8) for d in range(2, 12) for s in range(5)]  # 350 configs
WARD_IDS = tuple(range(200_000))
MILLION = {"__type__": "builtins.list", "__len__": 1_000_000, "__over_bytes__": 100_000}
FLOWS = '''
import math
import os

from labloom import flow, task

@task
def check(xs, expected):
    assert len(xs) == expected and (not xs or xs[-1] == expected - 1), "not the value given"
    return len(xs)

@task
def fail_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")
    return "ok"

@flow(executor="local")
def sweep(xs, grid, marker, threshold=0.5):
    n = check(xs, len(xs))
    fail_once(marker)
    assert len(grid) == 350 and (threshold == 0.5 or math.isnan(threshold))
    return n

@flow(executor="local")
def odd(threshold, config, name, pairs):
    return check([], 0)

@task
def size(value):
    return len(value)

@flow(executor="local")
def nested(value):
    return size(value)

@task
def write_down(name, path, ready):
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as file:
        file.write(name)

@flow(executor="local")
def named(name, marker):
    return write_down(name, marker + ".name", fail_once(marker))
'''


@pytest.fixture(autouse=True)
def child_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(api.SRC))
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    monkeypatch.delenv("LABLOOM_PARAMETER_BYTES", raising=False)


@pytest.fixture
def flows(tmp_path: Path) -> ModuleType:
    """The flows, imported from a file: a retry loads them again from there."""
    path = write(tmp_path / "work" / "sweeps.py", FLOWS)
    spec = importlib.util.spec_from_file_location("sweeps", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recorded(run_id: str) -> Any:
    with open_store() as store:
        return store.get_run(run_id)


def run_count() -> int:
    with open_store() as store:
        return len(store.list_runs(limit=100))


def strict_json(text: str | bytes) -> Any:
    """JSON as a browser reads it: NaN and Infinity are not JSON."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in the answer: JSON.parse refuses it")
    return json.loads(text, parse_constant=refuse)


def test_a_big_list_is_kept_as_its_type_and_length_and_not_replayed(
    flows: ModuleType, tmp_path: Path, labloom_home: Path
) -> None:
    # Before: the million ints were stored whole (6.9 MB of JSON in the run's row, and in
    # every answer that read the run), and `labloom retry` replayed them.
    marker = str(tmp_path / "first-attempt")
    big = flows.sweep.run(xs=list(range(1_000_000)), grid=GRID, marker=marker)
    assert big.state is State.FAILED
    record = recorded(big.id)
    assert record.parameters == {"xs": MILLION, "grid": GRID, "marker": marker,
                                 "threshold": 0.5}
    shown = labloom(labloom_home, "show", big.id, cwd=tmp_path)
    assert '"__over_bytes__": 100000' in shown.stdout and len(shown.stdout) < 100_000

    refused = labloom(labloom_home, "retry", big.id, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert f"run {big.id}: parameter xs was kept as a summary" in refused.stderr
    assert "LABLOOM_PARAMETER_BYTES" in refused.stderr
    assert f"`labloom run {tmp_path / 'work' / 'sweeps.py'}:sweep --param xs=...`" in refused.stderr
    assert run_count() == 1  # nothing was started

    # A grid of 350 configs is kept whole, and a run with it replays from the store.
    small = flows.sweep.run(xs=[0, 1, 2], grid=GRID, marker=str(tmp_path / "second"))
    assert small.state is State.FAILED and recorded(small.id).parameters["grid"] == GRID
    again = labloom(labloom_home, "retry", small.id, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    retry = next(r for r in json.loads(labloom(labloom_home, "runs", "--json", cwd=tmp_path).stdout)
                 if r["retry_of"] == small.id)
    assert retry["state"] == "Completed" and retry["parameters"]["grid"] == GRID


def test_a_run_recorded_whole_by_an_older_labloom_still_replays(
    flows: ModuleType, tmp_path: Path, labloom_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An older labloom kept every parameter whole: a limit this high does the same.
    monkeypatch.setenv("LABLOOM_PARAMETER_BYTES", "10_000_000")
    old = flows.sweep.run(xs=list(range(200_000)), grid=GRID, marker=str(tmp_path / "m"))
    assert old.state is State.FAILED and len(recorded(old.id).parameters["xs"]) == 200_000
    monkeypatch.delenv("LABLOOM_PARAMETER_BYTES")

    # Its views show the summary now; the record itself is not changed.
    shown = json.loads(labloom(labloom_home, "show", old.id, "--json", cwd=tmp_path).stdout)
    assert shown["parameters"]["xs"] == {**MILLION, "__len__": 200_000}
    again = labloom(labloom_home, "retry", old.id, cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # `check` saw all 200,000 values
    retry = next(r for r in json.loads(labloom(labloom_home, "runs", "--json", cwd=tmp_path).stdout)
                 if r["retry_of"] == old.id)
    assert retry["state"] == "Completed"
    assert recorded(retry["id"]).parameters["xs"] == {**MILLION, "__len__": 200_000}


def test_odd_values_are_kept_or_summarised_and_shown_as_json(
    flows: ModuleType, tmp_path: Path, labloom_home: Path
) -> None:
    run = flows.odd.run(
        threshold=math.nan, config={"notes": {"text": "x" * 5_000_000}}, name="caf\udce9.csv",
        pairs={(0, 1): 2},
    )
    assert run.state is State.COMPLETED
    kept = recorded(run.id).parameters
    assert math.isnan(kept["threshold"])  # Python's JSON keeps NaN: a retry replays it
    assert kept["config"] == {"__type__": "builtins.dict", "__len__": 1,
                              "__over_bytes__": 100_000}
    assert kept["name"] == "caf\udce9.csv"  # exactly: a retry replays it (before: escaped)
    # A key JSON cannot hold: before, the run's row could not be written at all.
    assert kept["pairs"] == {"__type__": "builtins.dict", "__len__": 1,
                             "__over_bytes__": 100_000}
    shown = strict_json(labloom(labloom_home, "show", run.id, "--json", cwd=tmp_path).stdout)
    assert shown["parameters"]["threshold"] == "NaN"
    refused = labloom(labloom_home, "retry", run.id, cwd=tmp_path)
    assert refused.returncode == 1
    assert "parameters config, pairs were kept as a summary" in refused.stderr


def test_a_bad_limit_is_said_before_anything_runs(
    flows: ModuleType, tmp_path: Path, labloom_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABLOOM_PARAMETER_BYTES", "lots")
    with pytest.raises(LabloomError, match=r"^\[labloom\] LABLOOM_PARAMETER_BYTES must be a "
                       r"whole number of bytes >= 0 .*, got 'lots': set it to one"):
        flows.sweep.run(xs=[], grid=GRID, marker=str(tmp_path / "m"))
    assert run_count() == 0


async def test_the_lab_sees_the_summary_and_its_retry_is_refused_at_once(
    jp_fetch: Any, flows: ModuleType, tmp_path: Path
) -> None:
    big = flows.sweep.run(xs=list(range(1_000_000)), grid=GRID, marker=str(tmp_path / "m"),
                          threshold=math.nan)
    assert big.state is State.FAILED
    response = await jp_fetch("labloom", "api", "runs", big.id)
    detail = strict_json(response.body)  # the run tab's JSON.parse failed on NaN before
    assert detail["parameters"]["xs"] == MILLION and detail["parameters"]["threshold"] == "NaN"
    assert len(response.body) < 100_000

    code, answer = await api.post(jp_fetch, "runs", big.id, "retry")
    # Before: 202, and `labloom retry` refused in a log nobody reads.
    assert code == 409, answer
    assert "parameter xs was kept as a summary" in answer["message"]
    assert "LABLOOM_PARAMETER_BYTES" in answer["message"]
    assert run_count() == 1


def test_the_launch_form_leaves_a_big_default_out(flows: ModuleType) -> None:
    # Before: the Flows panel's "Run with..." form got the whole list as the field's text.
    from labloom.export.form import describe_params

    @flow
    def ward(ids: tuple[int, ...] = WARD_IDS, day: str = "2026-12-06") -> None:
        pass

    defaults = {f["name"]: f["default"] for f in describe_params(ward)}
    assert defaults == {"ids": None, "day": "2026-12-06"}  # empty: the flow's default applies


def test_a_parameter_that_contains_itself_or_nests_deep_is_recorded_as_a_summary(
    flows: ModuleType, tmp_path: Path, labloom_home: Path
) -> None:
    """Before: flow.run raised a bare RecursionError (searching the parameters for futures)
    before anything was recorded."""
    itself: list[Any] = [1, 2]
    itself.append(itself)
    deep: list[Any] = []
    inner = deep
    for _ in range(5_000):
        inner.append([])
        inner = inner[0]
    runs = [flows.nested.run(value=itself), flows.nested.run(value=deep)]
    assert [run.result() for run in runs] == [3, 1]
    for run, length in zip(runs, (3, 1), strict=True):
        assert recorded(run.id).parameters == {"value": {
            "__type__": "builtins.list", "__len__": length, "__over_bytes__": 100_000}}
        shown = strict_json(labloom(labloom_home, "show", run.id, "--json", cwd=tmp_path).stdout)
        assert shown["state"] == "Completed" and shown["parameters"]["value"]["__len__"] == length
        refused = labloom(labloom_home, "retry", run.id, cwd=tmp_path)
        assert refused.returncode == 1
        assert f"run {run.id}: parameter value was kept as a summary" in refused.stderr
    listed = json.loads(labloom(labloom_home, "runs", "--json", cwd=tmp_path).stdout)
    assert [r["state"] for r in listed] == ["Completed", "Completed"]


def test_a_parameter_with_a_lone_surrogate_replays_exactly_and_shows_escaped(
    flows: ModuleType, tmp_path: Path, labloom_home: Path
) -> None:
    """A file name that is not UTF-8, as os.listdir gives it. Before: stored escaped, so
    `labloom retry` ran the flow with another name (a backslash, then "udce9")."""
    name = b"caf\xe9.csv".decode("utf-8", "surrogateescape")
    marker = str(tmp_path / "first")
    run = flows.named.run(name=name, marker=marker)
    assert run.state is State.FAILED and recorded(run.id).parameters["name"] == name
    shown = strict_json(labloom(labloom_home, "show", run.id, "--json", cwd=tmp_path).stdout)
    assert shown["parameters"]["name"] == "caf\\udce9.csv"  # readable: the character escaped
    assert "caf\\\\udce9.csv" in labloom(labloom_home, "show", run.id, cwd=tmp_path).stdout

    again = labloom(labloom_home, "retry", run.id, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    written = Path(marker + ".name").read_text(encoding="utf-8", errors="surrogatepass")
    assert written == name


async def test_a_list_of_runs_does_not_read_an_older_runs_big_parameters(
    jp_fetch: Any, flows: ModuleType, tmp_path: Path, labloom_home: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: every list (`labloom runs`, %flow_runs, the Flows panel's) parsed each listed
    run's parameters, tens of MB for a run an older labloom stored whole: about 1 s a read
    (benchmarks/big_parameter.py --older), and to_json copied them again."""
    monkeypatch.setenv("LABLOOM_PARAMETER_BYTES", "10_000_000")  # as an older labloom did
    old = flows.sweep.run(xs=list(range(200_000)), grid=GRID, marker=str(tmp_path / "m"))
    monkeypatch.delenv("LABLOOM_PARAMETER_BYTES")
    new = flows.sweep.run(xs=[0, 1, 2], grid=GRID, marker=str(tmp_path / "n"))
    none = flows.nested.run(value=[])

    with open_store() as store:
        listed = {run.id: run.parameters for run in store.list_runs()}
        assert listed[old.id] == {"__type__": "builtins.dict", "__over_bytes__": 100_000}
        assert listed[new.id]["grid"] == GRID and listed[none.id] == {"value": []}
        assert {run.id: run.parameters for run in store.list_runs(parameters=False)} == {
            old.id: {}, new.id: {}, none.id: {}}
        assert len(store.get_run(old.id).parameters["xs"]) == 200_000  # the record: whole
    shown = json.loads(labloom(labloom_home, "runs", "--json", cwd=tmp_path).stdout)
    assert {run["id"]: run["parameters"] for run in shown}[old.id] == listed[old.id]

    response = await jp_fetch("labloom", "api", "runs")
    assert len(response.body) < 10_000 and "parameters" not in json.loads(response.body)["runs"][0]


async def test_a_run_whose_parameters_an_older_labloom_stored_escaped_is_refused_replay(
    jp_fetch: Any, flows: ModuleType, tmp_path: Path, labloom_home: Path
) -> None:
    """Before session 46 the writer stored such a parameter escaped, with a note in the run's
    log; a retry replayed the escaped text, another name than the run was given."""
    from labloom.store.storable import NOTE

    run = flows.named.run(name="caf\udce9.csv", marker=str(tmp_path / "first"))
    with open_store() as store:  # the row and the note as that writer left them
        store.conn.execute("UPDATE flow_runs SET parameters = ? WHERE id = ?", (json.dumps(
            {"name": "caf\\udce9.csv", "marker": str(tmp_path / "first")}), run.id))
        store.conn.execute(
            "INSERT INTO logs (run_id, task_run_id, level, time, text) VALUES (?, NULL, 30, 0, ?)",
            (run.id, NOTE.format(where="run parameters")))
    refused = labloom(labloom_home, "retry", run.id, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert f"run {run.id}: parameter(s) name held text the store could not hold" in refused.stderr
    code, answer = await api.post(jp_fetch, "runs", run.id, "retry")
    assert code == 409 and "a labloom before session 46 stored it backslash-escaped" in \
        answer["message"]
    assert run_count() == 1


async def test_opening_an_older_run_shows_its_big_parameter_without_building_it(
    jp_fetch: Any, flows: ModuleType, tmp_path: Path, labloom_home: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `labloom show RUN`, its --json and the run tab (REST GET runs/{id}, and each of
    its polls) parsed the whole stored parameters of a run an older labloom kept whole, to show
    a summary: a second or more for tens of MB (benchmarks/big_parameter.py --older). Parsed,
    a million floats take about 32 MB beside their 5 MB of text; the views now walk the text."""
    import tracemalloc

    monkeypatch.setenv("LABLOOM_PARAMETER_BYTES", "10_000_000")  # as an older labloom did
    old = flows.nested.run(value=[0.5] * 1_000_000)
    monkeypatch.delenv("LABLOOM_PARAMETER_BYTES")
    summary = {**MILLION, "__type__": "builtins.list"}
    odd = flows.odd.run(threshold=math.inf, config={"a": [1, "x,]"]}, name="caf\udce9",
                        pairs=[[1, 2]])

    tracemalloc.start()
    try:
        with open_store() as store:
            size = len(store.conn.execute("SELECT parameters FROM flow_runs WHERE id = ?",
                                          (old.id,)).fetchone()[0])
            tracemalloc.reset_peak()
            record = store.get_run(old.id)
            assert record.shown_parameters() == {"value": summary}
            assert json.loads(json.dumps(record.to_json()))["parameters"] == {"value": summary}
            del record
        detail = strict_json((await jp_fetch("labloom", "api", "runs", old.id)).body)
        assert detail["parameters"] == {"value": summary}
        poll = await api.get(jp_fetch, "runs", old.id, since=detail["cursor"])
        assert "parameters" not in poll
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * size, f"{peak} bytes at most, for {size} bytes of text"

    shown = strict_json(labloom(labloom_home, "show", old.id, "--json", cwd=tmp_path).stdout)
    assert shown["parameters"] == {"value": summary}
    assert json.dumps({"value": summary}) in labloom(labloom_home, "show", old.id,
                                                     cwd=tmp_path).stdout
    with open_store() as store:  # what a retry and Python read: every value, whole
        assert store.get_run(old.id).parameters["value"] == [0.5] * 1_000_000
        odd_record = store.get_run(odd.id)
        assert odd_record.shown_parameters() == {
            "threshold": "Infinity", "config": {"a": [1, "x,]"]}, "name": "caf\\udce9",
            "pairs": [[1, 2]]}
        assert odd_record.parameters["name"] == "caf\udce9"


async def test_experiments_across_runs_read_no_parameters_nor_counts(
    jp_fetch: Any, flows: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compare tab (REST GET experiments?runs=...), its curves and labloom.experiments(runs=)
    read the runs they name. Before: each by get_run, which counted every task run of it by
    state and read its parameters (tens of MB for a run an older labloom stored whole), for
    rows that show neither (benchmarks/README.md, session 47 helper b: the across page)."""
    from labloom.store.experiments import experiments as labloom_experiments
    from labloom.store.experiments import runs_to_read

    monkeypatch.setenv("LABLOOM_PARAMETER_BYTES", "10_000_000")  # as an older labloom did
    old = flows.nested.run(value=list(range(200_000)))
    monkeypatch.delenv("LABLOOM_PARAMETER_BYTES")
    new = flows.nested.run(value=[1])
    with open_store() as store:
        named = runs_to_read(store, runs=[old.id[:8], new.id, old.id, "f" * 12])
        assert [(r.id, r.parameters, r.counts) for r in named] == [
            (old.id, {}, {}), (new.id, {}, {})]
        assert [r.id for r in runs_to_read(store, "nested")] == [new.id, old.id]
        assert all(r.counts == {} for r in runs_to_read(store, "nested"))
    page = await api.get(jp_fetch, "experiments", runs=f"{old.id},{new.id}")
    assert page["runs"] == [] and page["total"] == 0  # (they log nothing: no rows)
    assert (await api.get(jp_fetch, "runs", old.id, "experiments", "curves",
                          metric="auc"))["points"] == []
    with pytest.raises(LabloomError, match="no run 'ffffffffffff'"):
        labloom_experiments(runs=[old.id, "f" * 12])
