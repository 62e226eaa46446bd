"""Children a shorter re-split cut off (``TaskRunLeftMap``, ``core/left_maps.py``): a retry
runs again the task whose list a map splits, the new list is shorter, and the children past its
end leave the map as history. Every view counts them out of the map: the widget's model (its
summary's counts and state), the store (both backends) and a graph rebuilt from it, the Lab's
counts by node, `labloom show`, the terminal's progress, the Experiments rows; and their
message says what cut them off, run.retry() or the flow's own retry."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import labloom
from labloom import State, allow_failure, flow, log_metric, task
from labloom.dag.console_progress import ConsoleProgress
from labloom.dag.model import ViewGraph
from labloom.dag.stored import FollowedGraph, stored_graph
from labloom.export.retry import retry_run
from labloom.notebook.history import RunTable
from labloom.notebook.widget.html import summary_html
from labloom.notebook.widget.view import RunView
from labloom.schedule import liveness
from labloom.schedule.alerts import run_summary
from labloom.server_extension.queries import StoreAccess, run_timeline
from labloom.store import follow, open_store
from labloom.store.reader import RunStore
from test_resplit_mapped import gate  # fails its first run: a retry runs it again

GUARD = 90  # seconds: a retry must end
WHY = "left times_ten: its input was split again into 1 item at run.retry()"


@task
def listing(runs: Any) -> list[int]:
    return [0, 1, 2] if isinstance(runs, BaseException) else [0]


@task
def times_ten(x: int) -> int:
    return x * 10


@flow
def chained(path: Path) -> Any:
    return times_ten.map(listing(allow_failure(gate(path))))


def _followed(run_id: str) -> FollowedGraph:
    """The run's graph as the Lab's server keeps it (``server_extension/graphs.py``)."""
    with open_store() as store:
        cursor, counts = follow.node_counts(store, run_id)
        nodes = [node for _, node in follow.nodes_after(store, run_id)]
        return FollowedGraph(store.get_run(run_id), counts, nodes, cursor)


def _map_states(graph: ViewGraph) -> dict[str, Any]:
    [node] = [node for node in graph.nodes.values() if node.kind == "map"]
    return graph.states_json([node.id])[node.id]


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Experiment rows as the list of dicts labloom gives without pandas."""
    monkeypatch.setitem(sys.modules, "pandas", None)


def test_children_a_retry_cut_off_leave_their_map_in_every_view(
    tmp_path: Path, store_backend: str, subprocess_env: dict[str, str],
) -> None:
    """Before: the map of a Completed run was Cancelled, "3/3 done, 2 Cancelled" in the
    widget, the Lab and the terminal; `labloom show` gave the cut-off children a duration
    from their first start to the retry, in the table of the run's children."""
    run = chained.run(path=tmp_path / "runs")
    assert run.result() == [0, 10, 20]
    followed = _followed(run.id)  # the Lab's run tab, following the run by cursor from here
    retried = time.time()
    run.retry(background=True)
    assert run.wait_finished(GUARD), [(tr.name, tr.state) for tr in run.tasks]
    assert run.state is State.COMPLETED and run.result() == [0]
    expected = {"state": "Completed", "counts": {"Completed": 1}, "total": 1}

    live = ViewGraph()  # the widget's model, as a view opened now is replayed the run
    live.apply(run.events())
    assert _map_states(live) == expected
    assert live.header_json(time.time())["counts"] == {"Completed": 3}
    assert RunTable([run]).rows()[0][5] == "3 Completed"  # %flow_runs' row of this kernel's run
    assert run_summary(run) == ([], "")  # what a failure alert would list: nothing failed
    summary = summary_html(live, time.time())  # the cell's saved output: a row per node
    row = summary.split("<td>times_ten</td>")[1].split("</tr>")[0]
    assert 'data-state="Completed"' in row and "<td>1/1</td><td>1 Completed</td>" in row, row
    terminal = io.StringIO()  # the terminal's progress, drawn at the run's end
    ConsoleProgress(terminal, live=True)(run.events())
    [shown] = [line for line in terminal.getvalue().splitlines() if "times_ten " in line]
    assert shown.endswith("] 1/1 done"), shown

    with open_store() as store:
        stored = store.get_run(run.id)
        tasks = store.task_runs(run.id)
        nodes = store.nodes(run.id)
        _, counts = follow.node_counts(store, run.id)
        outcome = liveness.run_outcome(store.conn, run.id)  # what an alert lists
        top, moves = follow.node_moves(store, run.id, followed.cursor)
        followed.follow(stored, moves, top)
    by_name = {t.name: t for t in tasks}
    for i in (1, 2):
        left = by_name[f"times_ten[{i}]"]
        assert (left.state, left.left_map, left.attempts) == ("Cancelled", WHY, 1)
        # Its own run's times, before the retry (not the retry's cancel, as before).
        assert left.started is not None and left.ended is not None
        assert left.started <= left.ended <= retried, (left.started, left.ended, retried)
    assert by_name["times_ten[0]"].left_map is None
    assert stored.counts == {"Completed": 3}  # the run's task runs, as its graph counts them
    assert outcome == ("chained", "Completed", [])
    assert _map_states(stored_graph(stored, tasks, nodes)) == expected
    assert _map_states(followed.graph) == expected
    assert [(state, n) for _, name, _, state, n in counts if name == "times_ten"] == [
        ("Completed", 1)]

    done = subprocess.run([sys.executable, "-m", "labloom", "show", run.id], env=subprocess_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    children, _, history = done.stdout.partition("left their map")
    assert "times_ten[0]" in children and "times_ten[1]" not in children, done.stdout
    for i in (1, 2):
        [row] = [line for line in history.splitlines() if line.startswith(f"times_ten[{i}]")]
        assert row.split()[1:3] == ["Cancelled", "1"] and row.endswith(WHY), row


@task
def fit(x: int) -> int:
    log_metric("loss", float(x))
    return x


def three_then_one(folder: str, hold: Callable[[], Any] = lambda: None) -> Any:
    """A flow body that maps over three items, then raises (once ``hold`` returned); run again
    by the flow's retry, it maps over one."""
    path = Path(folder) / "runs"
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    fits = fit.map(range(3 if runs == 0 else 1))
    if runs == 0:
        fits.result()
        hold()
        raise RuntimeError("first body")
    return fits


@flow(retries=1)
def sweep(folder: str) -> Any:
    return three_then_one(folder)


def test_a_flow_body_run_again_over_fewer_items_drops_the_rest_from_the_rows(
    tmp_path: Path, store_backend: str,
) -> None:
    """@flow(retries=1) whose body raised: the next attempt maps over one item, and the
    earlier children past it leave the map (``map_replay``). Before: run.experiments() and
    labloom.experiments() kept their rows, and the map counted them as its children."""
    run = sweep.run(folder=str(tmp_path))
    assert run.state is State.COMPLETED and run.result() == [0]
    for rows in (run.experiments(), labloom.experiments(run=run.id)):
        assert [(row["map_index"], row["loss"]) for row in rows] == [(0, 0.0)]
    graph = ViewGraph()
    graph.apply(run.events())
    assert _map_states(graph) == {"state": "Completed", "counts": {"Completed": 1}, "total": 1}
    # `labloom retry`, a new run from the store's record: no note of those as results to remake
    again, notes = retry_run(run.id)
    assert again.wait_finished(GUARD) and again.state is State.COMPLETED
    assert [note.split(":")[0] for note in notes] == ["fit[0]"], notes
    why = ("left fit: the flow body ran again at the flow's retry 1 (attempt 2 of 2) and mapped "
           "it over 1 item")
    assert {tr.id: tr.left_map for tr in graph.task_runs.values() if tr.left_map} == {
        f"{run.id}.1": why, f"{run.id}.2": why}


def test_a_flow_retry_that_cuts_children_off_says_so(tmp_path: Path) -> None:
    """Under @flow(retries=...) the retry is the flow's, not run.retry() (as it said before)."""
    path = tmp_path / "runs"

    @task
    def once(x: int) -> int:  # fails in the flow's first attempt (``gate`` ran once then)
        if x == 2 and path.read_text() == "1":
            raise RuntimeError("first attempt")
        return x

    @flow(retries=1)
    def attempts() -> Any:
        return once.map(listing(allow_failure(gate(path))))

    run = attempts.run(background=True)
    assert run.wait_finished(GUARD), [(tr.name, tr.state) for tr in run.tasks]
    assert run.state is State.COMPLETED and run.result() == [0]
    why = ("left once: its input was split again into 1 item at the flow's retry 1 "
           "(attempt 2 of 2)")
    assert {tr.name: (tr.state, tr.message) for tr in run.tasks if tr.map_index} == {
        "once[1]": (State.CANCELLED, why), "once[2]": (State.CANCELLED, why)}


FITS = """%%tasks
def fits(x):
    if x == 2:
        raise ValueError("fits 2 broke")
    return x
def other(x):
    raise KeyError("other broke")
"""


def test_a_flow_cell_error_lists_no_child_that_left_its_map(ip: Any, tmp_path: Path) -> None:
    """A %%flow cell whose body, run again by --retries, maps over one item of three: the
    Failed fits[2] of the first attempt left its map; the run fails for `other` alone, and
    the cell's error lists only that (it does not fail before the magics' fix: that filter is
    reached only for a run that ended otherwise than Completed without result() raising)."""
    assert ip.run_cell(FITS).success
    cell = (f"from pathlib import Path\np = Path({str(tmp_path)!r}) / 'runs'\n"
            "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
            "out = fits.map(range(3 if n == 0 else 1))\nif n == 0:\n    out.result()\n"
            "bad = other(1)\n")
    error = ip.run_cell(f"%%flow sweeping --retries 1\n{cell}").error_in_exec
    assert isinstance(error, labloom.FlowFailed), error
    run = error.run
    assert run.state is State.FAILED and run.attempt == 2
    [left] = [tr for tr in run.tasks if tr.name == "fits[2]"]
    assert left.state is State.FAILED and left.left_map, (left.state, left.left_map)
    assert error.failed == [("other", "KeyError: 'other broke'")]
    assert "fits[2]" not in str(error) and "other broke" in str(error), str(error)
    assert ip.user_ns["out"] == [0] and "bad" not in ip.user_ns


def test_the_timeline_marks_the_bars_of_children_that_left(
    tmp_path: Path, store_backend: str,
) -> None:
    """The one timeline (``dag.timeline``) of the cell widget and of the Lab's run tab keeps a
    bar for each child the retry cut off, saying it left (js/src/timeline.js fades it). Before:
    a Cancelled bar like any child's, in a map the DAG shows Completed."""
    run = chained.run(path=tmp_path / "runs")
    assert run.result() == [0, 10, 20]
    assert run.retry().state is State.COMPLETED
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda payload: None, sent.append)
    view.start()  # replayed from the run, as a widget opened now
    try:
        view.handle({"event": "timeline"})
    finally:
        view.close()
    widget = next(m for m in sent if m.get("event") == "timeline")
    with RunStore() as store:
        stored = run_timeline(StoreAccess(workers=1), store, run.id)
    assert stored is not None
    for answer in (widget, stored):
        bars = {b["name"]: b for b in answer["bars"] if b["name"].startswith("times_ten")}
        assert {name: b.get("left", False) for name, b in bars.items()} == {
            "times_ten[0]": False, "times_ten[1]": True, "times_ten[2]": True}, answer["bars"]
        assert bars["times_ten[1]"]["state"] == "Cancelled"
