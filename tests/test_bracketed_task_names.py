"""A task whose own name holds ``[digits]`` (``@task(name="fold[3]")``) is named by that name
from the store, before child 3 of a map ``fold``: ``labloom logs RUN --task`` (text, --json,
--follow), ``RunStore.find_task_runs``, ``GET runs/{id}/logs?task=`` and, by the same rule, the
kernel's ``run.logs(NAME)``. ``fold[2]``, which no
task is called, still names the map's child. Both store backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom
from labloom import flow, task
from labloom.store import open_store
from test_server_api import get

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True}}}


@task(name="fold[3]")
def third_fold() -> int:
    print("the task called fold[3]")
    return 3


@task(name="fold")
def fold(x: int) -> int:
    print(f"child of the map fold, x={x}")
    return x


@task(name="grid[1]")
def grid(x: int) -> int:
    print(f"child of the map grid[1], x={x}")
    return x


@flow(executor="local")
def bracketed() -> None:
    third_fold()
    fold.map([0, 1, 2, 3, 4])
    grid.map([10, 11])


def texts(out: str) -> list[str]:
    return [line.rsplit("| ", 1)[1] for line in out.splitlines() if "| " in line]


def logs_of(home: Path, run_id: str, name: str, *more: str) -> list[str]:
    home.mkdir(exist_ok=True)  # the command's folder; a PostgreSQL store makes none
    out = labloom(home, "logs", run_id, "--task", name, *more)
    assert out.returncode == 0, out.stderr
    if "--json" in more:
        return [line["text"] for line in json.loads(out.stdout)["lines"]]
    return texts(out.stdout)


def test_a_tasks_own_bracketed_name_names_it_before_a_maps_child(
    store_backend: str, labloom_home: Path
) -> None:
    run = bracketed.run()
    assert run.state.value == "Completed"
    own = ["the task called fold[3]"]
    for more in ((), ("--json",), ("--follow",)):
        # Before, fold[3] named both: the task's line and child 3's of the map fold.
        assert logs_of(labloom_home, run.id, "fold[3]", *more) == own, more
        assert logs_of(labloom_home, run.id, "fold[2]", *more) == ["child of the map fold, x=2"]
        assert logs_of(labloom_home, run.id, "fold", *more) == [
            f"child of the map fold, x={x}" for x in range(5)], more
        assert logs_of(labloom_home, run.id, "grid[1]", *more) == [
            "child of the map grid[1], x=10", "child of the map grid[1], x=11"], more
    # The kernel's lines (run.logs) by the same rule: before, run.logs("fold") had the task
    # fold[3]'s line too (a shown name fold[3] read as child 3), and fold[3] both.
    for name in ("fold[3]", "fold[2]", "fold", "grid[1]", "grid[1][0]"):
        with open_store() as store:
            stored = [(line.task, line.text) for line in store.logs(run.id, name)[0]]
        assert [(line.task_name, line.text) for line in run.logs(name)] == stored, name
    assert [line.text for line in run.logs("fold[3]")] == own
    assert len(run.logs()) == 8
    with open_store() as store:
        [found] = store.find_task_runs(run.id, "fold[3]")
        assert (found.task_name, found.map_index) == ("fold[3]", None)
        [child] = store.find_task_runs(run.id, "fold[2]")
        assert (child.task_name, child.map_index) == ("fold", 2)
        # The map grid[1]'s child 0 is grid[1][0]; grid[1] alone names them all, as a map's
        # name does, and no child 1 of a map grid (there is none).
        [first] = store.find_task_runs(run.id, "grid[1][0]")
        assert (first.task_name, first.map_index) == ("grid[1]", 0)
        assert len(store.find_task_runs(run.id, "grid[1]", children=True)) == 2


def test_a_missing_task_is_said_with_the_bracketed_names_whole(
    store_backend: str, labloom_home: Path
) -> None:
    run = bracketed.run()
    labloom_home.mkdir(exist_ok=True)
    out = labloom(labloom_home, "logs", run.id, "--task", "nothing")
    assert out.returncode == 2, out.stderr
    # Before: "its tasks: fold, fold, grid" read as "fold, grid" (the [3] and [1] cut off as
    # though they were map indexes): fold[3] and grid[1] named no task a user could ask for.
    assert "its tasks: fold[3], fold, grid[1] (" in out.stderr, out.stderr


async def test_the_rest_log_route_names_the_task_before_the_child(
    store_backend: str, jp_fetch: Any
) -> None:
    run = bracketed.run()
    page = await get(jp_fetch, "runs", run.id, "logs", task="fold[3]")
    assert [line["text"] for line in page["lines"]] == ["the task called fold[3]"]
    assert [t["name"] for t in page["task_runs"]] == ["fold[3]"]
    page = await get(jp_fetch, "runs", run.id, "logs", task="fold[4]")
    assert [line["text"] for line in page["lines"]] == ["child of the map fold, x=4"]
