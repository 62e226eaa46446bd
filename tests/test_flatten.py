"""``labloom.flatten`` (issue 17, item 3): a map over the items of a map's lists starts each item's
child as soon as its list (and the lists before it) arrived, not when the whole first map ends;
the chain after it stays depth-first. On every executor (Dask: real worker processes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import labloom
from labloom import FlowFailed, State, flatten, flow, task, unmapped


def wait_for_file(path: Path, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.01)
    return False


@task
def split(n: int, signals: str = "") -> list[int]:
    # List 1 and later wait until the chain has run item 0 through to its end (a file: Dask
    # workers are other processes): only a depth-first chain gets there.
    if signals and n > 0:
        if not wait_for_file(Path(signals) / "item-0-done"):
            raise AssertionError("the chain did not run list 0's items while list 1 was pending")
        (Path(signals) / f"split-{n}-saw-item-0").write_text("")
    return [10 * n + k for k in range(n + 1)]


@task
def plus_one(x: int) -> int:
    return x + 1


@task
def mark(x: int, signals: str) -> int:
    if x == 1:  # the item of list 0, plus one
        (Path(signals) / "item-0-done").write_text("")
    return x


@task
def total(values: list[int]) -> int:
    return sum(values)


def test_flatten_maps_over_every_item_of_every_list_in_order(any_executor: Any) -> None:
    @flow(executor=any_executor)
    def f(n: int) -> tuple[list[int], int, list[int]]:
        items = plus_one.map(flatten(split.map(range(n))))
        return items, total(items), flatten(split.map(range(n)))  # type: ignore[return-value]

    expected = [1, 11, 12, 21, 22, 23]
    assert f(3) == (expected, sum(expected), [0, 10, 11, 20, 21, 22])
    assert f(0) == ([], 0, [])


# Not on the local executor: it runs one task at a time, so nothing runs beside anything.
@pytest.mark.parametrize("any_executor", ["threads", "dask"], indirect=True)
def test_the_chain_runs_depth_first_as_the_lists_arrive(
    any_executor: Any, tmp_path: Path
) -> None:
    signals = str(tmp_path)

    # One split per Dask task: lists 1 and 2 wait for item 0's end, which a chunk holding all
    # three would hold back (the first test measured split fast on this cluster's client,
    # which executors given the same cluster share).
    one_each = split.with_options(batch_size=1)

    @flow(executor=any_executor)
    def chain() -> list[int]:
        lists = one_each.map(range(3), signals=unmapped(signals))
        return mark.map(plus_one.map(flatten(lists)), signals=unmapped(signals))  # type: ignore[return-value]

    run = chain.run()
    # Lists 1 and 2 could only end after item 0 ran through mark (they wait for its file, and
    # fail after a minute without it): a Completed run is the proof. Not end times compared:
    # the engine stamps those as it hears of each end, in whatever order news arrives.
    assert run.state is State.COMPLETED, run.message
    assert run.result() == [1, 11, 12, 21, 22, 23]
    assert sorted(p.name for p in tmp_path.glob("split-*")) == [
        "split-1-saw-item-0", "split-2-saw-item-0"]


@task
def broken_split(n: int) -> Any:
    if n == 1:
        raise ValueError("list 1 broke")
    return 5 if n == 3 else list(range(n + 1))


def test_a_list_that_cannot_arrive_ends_the_map_after_the_items_before_it(
    any_executor: Any,
) -> None:
    @flow(executor=any_executor)
    def f(n: int) -> list[int]:
        return plus_one.map(flatten(broken_split.map(range(n))))  # type: ignore[return-value]

    run = f.run(n=3)
    states = {tr.name: tr.state for tr in run.tasks}
    assert states["plus_one[0]"] is State.COMPLETED  # list 0's item ran
    assert "plus_one[1]" not in states  # nothing after the broken list is guessed at
    [ended] = [tr for tr in run.tasks if tr.task.name == "plus_one" and tr.map_index is None]
    assert ended.state is State.UPSTREAM_FAILED
    assert "broken_split[1] did not succeed" in ended.message
    with pytest.raises(FlowFailed):
        run.result()

    run = f.run(n=4)  # list 1 broken again; and list 3 is not a list
    [ended] = [tr for tr in run.tasks if tr.task.name == "plus_one" and tr.map_index is None]
    assert ended.state is State.UPSTREAM_FAILED


def test_a_child_that_returns_no_list_fails_the_map_saying_so() -> None:
    @task
    def not_a_list(n: int) -> int:
        return n

    @flow(executor="local")
    def f() -> list[int]:
        return plus_one.map(flatten(not_a_list.map([1])))  # type: ignore[return-value]

    run = f.run()
    [ended] = [tr for tr in run.tasks if tr.task.name == "plus_one"]
    assert ended.state is State.FAILED
    assert "cannot iterate the result of not_a_list[0]" in ended.message
    assert "each child must return a list" in ended.message


def test_retry_grows_the_map_on_from_the_list_that_failed(tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")

    @task
    def flaky(n: int) -> list[int]:
        if n == 1 and flag.exists():
            raise ValueError("not yet")
        return [n] * 2

    @flow(executor="threads")
    def f() -> list[int]:
        return plus_one.map(flatten(flaky.map(range(3))))  # type: ignore[return-value]

    run = f.run()
    assert run.state is State.FAILED
    flag.unlink()
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert run.result() == [1, 1, 2, 2, 3, 3]


@task(cache=True)
def cached_double(x: int, ledger: str) -> int:
    with open(ledger, "a") as out:
        out.write(f"{x}\n")
    return 2 * x


@task
def read_lists(path: str, n: int) -> list[int]:
    return [int(x) for x in Path(path).read_text().split()[n::2]]


def test_cached_children_of_a_flat_map_follow_their_items(
    any_executor: Any, tmp_path: Path
) -> None:
    data, ledger = tmp_path / "data.txt", tmp_path / "ledger"

    @flow(executor=any_executor)
    def f() -> list[int]:
        lists = read_lists.map(unmapped(str(data)), range(2))
        return cached_double.map(flatten(lists), unmapped(str(ledger)))  # type: ignore[return-value]

    data.write_text("1 2 3 4")
    assert f() == [2, 6, 4, 8]
    data.write_text("1 2 5 4")
    run = f.run()
    assert run.result() == [2, 10, 4, 8]
    assert sorted(ledger.read_text().split()) == ["1", "2", "3", "4", "5"]  # 5 is new
    assert [tr.state for tr in run.tasks if tr.task.name == "cached_double"].count(
        State.CACHED) == 3


def test_flatten_of_literal_lists_and_what_it_refuses() -> None:
    assert "flatten" in labloom.__all__
    assert flatten([[1, 2], (3,), []]) == [1, 2, 3]
    with pytest.raises(TypeError, match="got a int"):
        flatten(3)
    with pytest.raises(TypeError, match="element 1 is a str, not a list"):
        flatten([[1], "ab"])
    with pytest.raises(TypeError, match="element 0 is a int"):
        flatten([1, 2])

    @flow(executor="local")
    def plain_task() -> int:
        return total(flatten(split.map(range(2))))  # type: ignore[return-value]

    with pytest.raises(TypeError, match=r"is a .map\(\) argument; a plain task receives"):
        plain_task()

    @flow(executor="local")
    def zipped() -> object:
        return plus_one.map(flatten(split.map(range(2))), range(3))

    with pytest.raises(TypeError, match=r"flatten\(...\) must be the only iterable"):
        zipped()

    @flow(executor="local")
    def one_future() -> object:
        return plus_one.map(flatten(split(2)))

    with pytest.raises(TypeError, match=r"flatten\(\) takes a map's result"):
        one_future()

    @flow(executor="local")
    def futures_inside() -> object:
        return plus_one.map(flatten([split(1), split(2)]))

    with pytest.raises(TypeError, match="element 0 is the future of 'split'"):
        futures_inside()
