"""run.retry() of a run whose map's input task runs again (``rerun.split_again``): the map
splits the new value, and a map over that map's children (``b.map(a_children)``) follows it:
child i pairs with child i, a shorter split ends both maps' children past its end as history,
a longer one adds children to both, and nothing is left waiting. The task's upstream fails
and is read through ``allow_failure``: the same retry path as a value lost on Dask, without a
cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labloom import State, allow_failure, flow, task, unmapped

GUARD = 90  # seconds: the retry must end (it waited forever before, on a shorter split)


@task
def gate(path: Path) -> int:
    """Fails its first run: the retry runs it again, and ``listing`` after it."""
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    if runs == 0:
        raise RuntimeError("first run")
    return runs


@task
def listing(runs: Any, widths: tuple[int, int]) -> list[int]:
    return list(range(widths[0] if isinstance(runs, BaseException) else widths[1]))


@task
def times_ten(x: int) -> int:
    return x * 10


@task
def plus_one(y: int) -> int:
    return y + 1


def _run_and_retry(path: Path, widths: tuple[int, int]) -> Any:
    @flow
    def chained(path: Path) -> Any:
        items = listing(allow_failure(gate(path)), widths)
        return plus_one.map(times_ten.map(items))

    run = chained.run(path=path)
    assert run.result() == [10 * i + 1 for i in range(widths[0])]
    run.retry(background=True)
    assert run.wait_finished(GUARD), [(tr.name, tr.state) for tr in run.tasks]
    return run


@pytest.mark.parametrize("new", [1, 3, 5])
def test_a_map_over_a_resplit_maps_children_follows_its_new_width(tmp_path: Path,
                                                                 new: int) -> None:
    """Before: a shorter split left plus_one's children past its end waiting for ever (the
    retry never ended); a longer one gave times_ten new children but plus_one none (the
    result missed them)."""
    run = _run_and_retry(tmp_path / "runs", (3, new))
    assert run.state is State.COMPLETED, run.message
    assert run.result() == [10 * i + 1 for i in range(new)]
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    for name in ("times_ten", "plus_one"):
        for i in range(max(3, new)):
            if i < new:
                assert states[f"{name}[{i}]"] == (State.COMPLETED, ""), states
            else:  # past the new end: history
                assert states[f"{name}[{i}]"] == (State.CANCELLED, (
                    f"left {name}: its input was split again into {new} "
                    f"item{'' if new == 1 else 's'} at run.retry()")), states


@task
def times_ten_once(x: int, path: Path) -> int:
    """Fails for item 2 in the flow's first attempt (``gate`` ran once): the attempt fails."""
    if x == 2 and path.read_text() == "1":
        raise RuntimeError("first attempt")
    return x * 10


@pytest.mark.parametrize("chained", [False, True])
def test_a_flow_attempt_re_splits_a_shorter_list_while_the_earlier_events_are_delivered(
    tmp_path: Path, chained: bool,
) -> None:
    """@flow(retries=1) whose body returned: the next attempt resets what failed (the same
    ``reset_bad`` as run.retry()) while the run's delivery still makes the map's events. Before:
    the re-split cut the children's list in place under those events (IndexError in the
    delivery thread, the run raised), and with a map over the children the attempt waited for
    ever for the children past the end."""
    path = tmp_path / "runs"

    @flow(retries=1)
    def attempts(path: Path) -> Any:
        items = listing(allow_failure(gate(path)), (3, 1))
        tens = times_ten_once.map(items, path=unmapped(path))
        return plus_one.map(tens) if chained else tens

    run = attempts.run(path=path, background=True)
    assert run.wait_finished(GUARD), [(tr.name, tr.state) for tr in run.tasks]
    assert run.state is State.COMPLETED, run.message
    assert run.result() == ([1] if chained else [0])
    states = {tr.name: tr.state for tr in run.tasks}
    names = ("times_ten_once", "plus_one") if chained else ("times_ten_once",)
    assert states == {"gate": State.COMPLETED, "listing": State.COMPLETED, **{
        f"{name}[{i}]": State.COMPLETED if i == 0 else State.CANCELLED
        for name in names for i in range(3)}}, states
