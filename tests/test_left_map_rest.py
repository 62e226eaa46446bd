"""The Lab's run tab of a run whose retry cut a map's children off (``TaskRunLeftMap``):
``GET runs/{id}`` counts the map by its children now, ``GET runs/{id}/nodes/{node}`` pages only
them, and the run's task runs still list the cut-off ones, saying why (history); its
Experiments rows leave out those the flow body, run again, mapped no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labloom import State
from test_left_map import WHY, chained, sweep
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
