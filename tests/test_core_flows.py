"""The core: tasks, flows, mapping, failure containment, on both in-process executors."""

from __future__ import annotations

import inspect
import threading

import pytest

from labloom import (
    FlowFailed,
    State,
    ThreadExecutor,
    allow_failure,
    flow,
    task,
    unmapped,
)


@task
def load(n: int) -> list[dict[str, int]]:
    return [{"depth": d, "trees": 10 * d} for d in range(n)]


@task
def score(params: dict[str, int], offset: int = 0) -> int:
    return params["depth"] * params["trees"] + offset


@task
def total(values: list[int]) -> int:
    return sum(values)


def test_three_stage_flow_gives_the_right_answer(executor: str) -> None:
    @flow(executor=executor)
    def sweep(n: int) -> int:
        grid = load(n)
        scores = score.map(grid, offset=unmapped(1))
        return total(scores)

    expected = sum(d * 10 * d + 1 for d in range(50))
    assert sweep(50) == expected
    run = sweep.run(n=50)
    assert run.state is State.COMPLETED
    assert len(run.tasks) == 52
    assert all(tr.state is State.COMPLETED for tr in run.tasks)
    assert sorted(tr.map_index for tr in run.tasks if tr.map_index is not None) == list(range(50))


def test_static_map_and_a_map_result_into_a_plain_task_is_a_list(executor: str) -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def identity(value: object) -> object:
        return value

    @flow(executor=executor)
    def f() -> object:
        doubled = double.map([1, 2, 3])
        return identity(doubled), doubled

    as_list, direct = f()
    assert as_list == [2, 4, 6]
    assert direct == [2, 4, 6]


def test_futures_nested_in_containers_and_wait_for_are_edges(executor: str) -> None:
    order: list[str] = []

    @task
    def make(name: str) -> str:
        order.append(name)
        return name

    @task
    def side_effect() -> None:
        order.append("side")

    @task
    def combine(parts: dict[str, object]) -> object:
        order.append("combine")
        return parts

    @flow(executor=executor)
    def f() -> object:
        a, b = make("a"), make("b")
        side = side_effect()
        return combine({"list": [a, (b,)], "set": {a}, "plain": 1}, wait_for=[side])

    assert f() == {"list": ["a", ("b",)], "set": {"a"}, "plain": 1}
    assert order[-1] == "combine" and "side" in order


def test_map_width_from_a_future_and_chained_maps(executor: str) -> None:
    @task
    def items(n: int) -> list[int]:
        return list(range(n))

    @task
    def plus_one(x: int) -> int:
        return x + 1

    @task
    def square(x: int) -> int:
        return x * x

    @flow(executor=executor)
    def f(n: int) -> list[int]:
        first = plus_one.map(items(n))  # width known only when items() ends
        return square.map(first)  # chained child by child

    assert f(4) == [1, 4, 9, 16]
    run = f.run(n=0)
    assert run.state is State.COMPLETED and run.result() == []


def test_depth_first_child_of_next_map_starts_while_siblings_still_run() -> None:
    """B[0] must start as soon as A[0] ends, while A[1] and A[2] still wait for B[0]."""
    b0_started = threading.Event()

    @task
    def stage_a(i: int) -> int:
        if i > 0 and not b0_started.wait(timeout=20):
            raise AssertionError("B[0] never started while A[1:] were running")
        return i

    @task
    def stage_b(i: int) -> int:
        if i == 0:
            b0_started.set()
        return i * 10

    @flow(executor=ThreadExecutor(max_workers=4))
    def chained() -> list[int]:
        return stage_b.map(stage_a.map([0, 1, 2]))

    run = chained.run()
    assert run.state is State.COMPLETED, run.message
    assert run.result() == [0, 10, 20]
    b0 = next(tr for tr in run.tasks if tr.name == "stage_b[0]")
    a2 = next(tr for tr in run.tasks if tr.name == "stage_a[2]")
    assert b0.started is not None and a2.ended is not None and b0.started <= a2.ended


@task
def fragile(i: int) -> int:
    if i == 7:
        raise ValueError(f"experiment {i} diverged")
    return i


@task
def count_errors(values: list[object]) -> int:
    return sum(isinstance(v, Exception) for v in values)


def test_one_failing_child_fails_the_reduce_only(executor: str) -> None:
    @task
    def independent() -> str:
        return "ok"

    @flow(executor=executor)
    def f() -> object:
        side = independent()
        return total(fragile.map(range(20))), side

    run = f.run()
    states = [tr.state for tr in run.tasks if tr.task.name == "fragile"]
    assert states.count(State.COMPLETED) == 19 and states.count(State.FAILED) == 1
    reduce = next(tr for tr in run.tasks if tr.task.name == "total")
    assert reduce.state is State.UPSTREAM_FAILED
    assert "fragile[7]" in reduce.message
    assert next(tr for tr in run.tasks if tr.task.name == "independent").state is State.COMPLETED
    assert run.state is State.FAILED
    with pytest.raises(FlowFailed, match=r"fragile\[7\]: ValueError: experiment 7 diverged"):
        run.result()


def test_allow_failure_lets_the_reduce_run_with_the_exception(executor: str) -> None:
    @flow(executor=executor)
    def f() -> int:
        return count_errors(allow_failure(fragile.map(range(20))))

    assert f() == 1
    run = f.run()
    assert run.state is State.COMPLETED
    failed = [tr for tr in run.tasks if tr.state is State.FAILED]
    assert [tr.name for tr in failed] == ["fragile[7]"]
    assert "ValueError" in failed[0].traceback
    assert failed[0].traceback.splitlines()[1].strip().startswith(f'File "{__file__}"')


def test_future_result_raises_the_task_exception(executor: str) -> None:
    @flow(executor=executor)
    def f() -> str:
        try:
            fragile(7).result()
        except ValueError as exc:
            return str(exc)
        return "no error"

    assert f() == "experiment 7 diverged"
    assert f.run().state is State.COMPLETED  # the body handled the failure


def test_flow_body_error_propagates_and_cancels_unstarted(executor: str) -> None:
    @flow(executor=executor)
    def f() -> None:
        raise KeyError("typo in the flow body")

    with pytest.raises(KeyError, match="typo"):
        f()
    assert f.run().state is State.FAILED


def test_a_failure_nothing_handled_fails_the_call_too(executor: str) -> None:
    # The run and its call agree (issue 17): the return value does not need fragile(7), but
    # nothing handled its failure, so the run Failed and its call raises.
    @flow(executor=executor)
    def f() -> int:
        fragile(7)
        return 3

    run = f.run()
    assert run.state is State.FAILED
    with pytest.raises(FlowFailed, match=r"failed that nothing handled .*fragile: ValueError"):
        run.result()
    with pytest.raises(FlowFailed, match=r"nothing handled"):
        f()


def test_task_outside_a_flow_is_the_plain_function() -> None:
    assert score({"depth": 2, "trees": 3}) == 6
    assert total([1, 2]) == 3
    with pytest.raises(RuntimeError, match=r"score\.submit\(\) needs a running flow"):
        score.submit({"depth": 1, "trees": 1})
    with pytest.raises(RuntimeError, match=r"score\.map\(\) needs a running flow"):
        score.map([{"depth": 1, "trees": 1}])


def test_task_keeps_name_docstring_and_signature() -> None:
    def train(params: dict[str, int], seed: int = 0) -> float:
        """Train one model."""
        return 0.0

    wrapped = task(retries=1)(train)
    assert wrapped.__name__ == "train"
    assert wrapped.__doc__ == "Train one model."
    assert inspect.signature(wrapped) == inspect.signature(train)
    assert task(train).name == "train"


def test_with_options_copies() -> None:
    base = task(retries=1, tags=["db"])(lambda x: x)
    changed = base.with_options(retries=3, name="renamed")
    assert (base.retries, base.name) == (1, "<lambda>")
    assert (changed.retries, changed.name, changed.tags) == (3, "renamed", frozenset({"db"}))
    assert changed.fn is base.fn


def test_nested_task_call_inside_a_task_runs_plainly(executor: str) -> None:
    @task
    def inner(x: int) -> int:
        return x + 1

    @task
    def outer(x: int) -> int:
        return inner(x) * 2

    @flow(executor=executor)
    def f() -> int:
        return outer(1)

    assert f() == 4


def test_a_map_over_plain_items_skips_the_search_and_one_naming_futures_waits(
        executor: str) -> None:
    from labloom.core.map_nodes import MapNode
    from labloom.core.mapping import MapSource, holds_no_future

    def node(*sources: MapSource) -> MapNode:
        return MapNode("n", task(lambda *a: None), sources=list(sources))

    assert holds_no_future(node(MapSource("static", range(5), "a"),
                                MapSource("static", [1, "x", None, 2.5], "b"),
                                MapSource("unmapped", {"k": [1, 2]}, "c")))
    assert not holds_no_future(node(MapSource("static", [1, [2]], "a")))  # a list: searched

    @task
    def six() -> int:
        return 6

    @task
    def add(x: int, by: int) -> int:
        return x + by

    @flow(executor=executor)
    def f() -> tuple[list[int], ...]:
        first = six()
        in_a_list = add.map([1, first], by=unmapped(0))
        given_whole = add.map([1, 2], by=unmapped(first))
        # Plain items: no search, and no link made per child unless ``wait_for`` asks one.
        return in_a_list, given_whole, add.map(range(2), by=unmapped(1)), \
            add.map([5], by=unmapped(0), wait_for=[first])

    run = f.run()
    # Each child waited for the future its arguments name, or ``wait_for``.
    assert run.result() == ([1, 6], [7, 8], [1, 2], [5])
    (one,) = [tr for tr in run.tasks if tr.map_index is None]
    upstreams = [list(tr.upstream) for tr in run.tasks if tr.map_index is not None]
    assert upstreams == [[], [one], [one], [one], [], [], [one]]

