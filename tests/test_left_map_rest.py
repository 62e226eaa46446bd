"""The Lab's run tab of a run whose retry cut a map's children off (``TaskRunLeftMap``):
``GET runs/{id}`` counts the map by its children now, ``GET runs/{id}/nodes/{node}`` pages only
them, and the run's task runs still list the cut-off ones, saying why (history); its
Experiments rows leave out those the flow body, run again, mapped no more; a cut-off child's
task-run detail (the run tab's panel, the cell's) says it left, and why. On both backends."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from labloom import State, flow
from labloom.notebook.widget.view import RunView
from test_left_map import GUARD, WHY, chained, sweep, three_then_one
from test_server_api import get

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


async def test_the_run_tab_counts_a_map_by_its_children_now(jp_fetch: Any, tmp_path: Path) -> None:
    """Before: the map Cancelled, total 3, its page listing the cut-off children."""
    run = chained.run(path=tmp_path / "runs")
    assert run.result() == [0, 10, 20]
    assert run.retry().state is State.COMPLETED
    detail = await get(jp_fetch, "runs", run.id)
    node = next(n["id"] for n in detail["graph"]["nodes"] if n["kind"] == "map")
    assert detail["states"][node] == {"state": "Completed", "counts": {"Completed": 1},
                                      "total": 1}
    assert detail["header"]["counts"] == {"Completed": 3}
    [listed] = (await get(jp_fetch, "runs"))["runs"]
    assert listed["counts"] == {"Completed": 3}
    page = await get(jp_fetch, "runs", run.id, "nodes", node)
    assert page["state"] == "Completed"
    assert [c["index"] for c in page["children"]["children"]] == [0]
    left = {t["name"]: t["left_map"] for t in detail["task_runs"] if t["left_map"]}
    assert left == {"times_ten[1]": WHY, "times_ten[2]": WHY}


async def test_the_run_tabs_experiments_leave_out_the_children_that_left(
    jp_fetch: Any, tmp_path: Path,
) -> None:
    """The flow body, run again by its retry, maps over one item of three."""
    run = sweep.run(folder=str(tmp_path))
    assert run.state is State.COMPLETED
    page = await get(jp_fetch, "runs", run.id, "experiments")
    assert [(row["map_index"], row["metrics"]["loss"]) for row in page["rows"]] == [(0, 0.0)]
    assert page["total"] == 1


async def test_a_child_that_left_says_so_in_its_detail(jp_fetch: Any, tmp_path: Path) -> None:
    """What the panel of a task run shows, in the run tab (``GET runs/{id}/logs?task=``, by id
    as the panel follows it, and by name) and in the cell (the widget's detail message), carries
    ``left_map``: why it left, None for a child still in its map. Before: no ``left_map``."""
    run = chained.run(path=tmp_path / "runs")
    assert run.result() == [0, 10, 20]
    assert run.retry().state is State.COMPLETED
    ids = {t.name: t.id for t in run.tasks}  # ("times_ten[2]": a child is named so)
    for task, why in (("times_ten[2]", WHY), ("times_ten[0]", None)):
        for asked in (ids[task], task):
            page = await get(jp_fetch, "runs", run.id, "logs", task=asked)
            [detail] = page["task_runs"]
            assert (detail["name"], detail["left_map"]) == (task, why), detail
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda payload: None, sent.append)
    view.start()  # replayed from the run, as a widget opened now
    try:
        map_node = next(n for n in view.graph.nodes.values() if n.kind == "map")
        view.select(map_node.id, ids["times_ten[2]"])
    finally:
        view.close()
    shown = [m for m in sent if m.get("event") == "detail"][-1]["task_run"]
    assert (shown["state"], shown["left_map"]) == ("Cancelled", WHY), shown


HELD, GO = threading.Event(), threading.Event()


@flow(retries=1)
def held_sweep(folder: str) -> Any:
    """``test_left_map.sweep``, its first body held once its three children completed."""
    return three_then_one(folder, hold=lambda: (HELD.set(), GO.wait(GUARD)))


def test_the_cells_open_panel_follows_its_child_out_of_the_map(tmp_path: Path) -> None:
    """The cell's panel open on fit[2] when the flow's retry maps over one item: it is sent
    again, saying fit[2] left and why, and the map's child list drops it. Fails on s58int: the
    detail had no ``left_map`` (the panel went on showing fit[2] Completed, as the map's)."""
    HELD.clear(), GO.clear()
    run = held_sweep.run(folder=str(tmp_path), background=True)
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda payload: None, sent.append)
    try:
        assert HELD.wait(GUARD)
        view.start()
        node = next(n.id for n in view.graph.nodes.values() if n.kind == "map")
        view.select(node, f"{run.id}.2")
        GO.set()
        assert run.wait_finished(GUARD) and run.state is State.COMPLETED
        view.settle()
    finally:
        GO.set()
        view.close()
    details = [m["task_run"] for m in sent if m.get("event") == "detail"]
    assert details[0]["name"] == "fit" and details[0]["left_map"] is None, details
    why = ("left fit: the flow body ran again at the flow's retry 1 (attempt 2 of 2) and mapped "
           "it over 1 item")
    assert (details[-1]["index"], details[-1]["left_map"]) == (2, why), details
    pages = [m for m in sent if m.get("event") == "children"]
    assert [c["index"] for c in pages[-1]["children"]] == [0], pages[-1]
