"""Futures in Python expressions inside a flow body (issue 17, item 5).

Indexing a future (``cfg()["lr"]``) is a small node of the DAG, as in Prefect 1; every other
operator, truth test, ``len``, iteration or value attribute raises an error that says what to
do instead. A future passed to a subflow arrives as its value, and a flow called inside a task
runs as a nested flow run of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

import labloom
from labloom import State, allow_failure, flow, task
from labloom.core import events as ev
from labloom.store import open_store
from run_helpers import runs_started

pytestmark = pytest.mark.timeout(120)


@task
def cfg() -> dict[str, Any]:
    return {"lr": 0.1, "layers": [3, 4], "name": "resnet"}


@task
def train(lr: float, depth: int) -> float:
    return lr * depth


@flow
def notebook_style() -> float:
    config = cfg()
    return train(lr=config["lr"], depth=config["layers"][1])


def test_indexing_a_future_is_a_node_of_the_dag(executor: str) -> None:
    run = notebook_style.run(executor=executor)
    assert run.state is State.COMPLETED, run.message
    assert run.result() == pytest.approx(0.4)
    names = [tr.name for tr in run.tasks]
    assert names == ["cfg", "cfg['lr']", "cfg['layers']", "cfg['layers'][1]", "train"]
    nodes = {e.name: e for e in run.events() if isinstance(e, ev.NodeCreated)}
    assert nodes["cfg['lr']"].upstream == (nodes["cfg"].node_id,)
    assert set(nodes["train"].upstream) == {nodes["cfg['lr']"].node_id,
                                           nodes["cfg['layers'][1]"].node_id}
    with open_store() as store:
        stored = [t.name for t in store.task_runs(run.id)]
        assert stored == names
        for name in ("cfg['lr']", "cfg['layers'][1]"):
            assert [t.name for t in store.find_task_runs(run.id, name)] == [name]


def test_a_missing_key_fails_its_node_and_an_upstream_failure_skips_it(executor: str) -> None:
    @task
    def broken() -> dict[str, int]:
        raise ValueError("no config")

    @flow(executor=executor)
    def f() -> object:
        return cfg()["momentum"], allow_failure(broken()["lr"])

    run = f.run()
    by_name = {tr.name: tr for tr in run.tasks}
    assert by_name["cfg['momentum']"].state is State.FAILED
    assert by_name["cfg['momentum']"].message == "KeyError: 'momentum'"
    assert by_name["broken['lr']"].state is State.UPSTREAM_FAILED


def test_indexing_by_a_future_waits_for_both() -> None:
    @task
    def which() -> str:
        return "name"

    @flow
    def f() -> object:
        return cfg()[which()]

    run = f.run()
    assert run.result() == "resnet"
    assert [tr.name for tr in run.tasks][-1] == "cfg[which]"


def test_indexing_outside_the_flow_body_says_to_index_the_value() -> None:
    kept: list[Any] = []

    @flow
    def f() -> None:
        kept.append(cfg())

    f()
    with pytest.raises(TypeError, match=r"only inside the body of its own flow.*"
                                        r"future\.result\(\)\[key\]"):
        kept[0]["lr"]


@pytest.mark.parametrize(
    ("expression", "error", "match"),
    [
        ("one + 1", TypeError, r"Operator \+ on a TaskFuture is not supported: 'one' has no "
                               r"value while the flow is built; pass the future to a task"),
        ("1 + one", TypeError, r"Operator \+ on a TaskFuture"),
        ("one * 2", TypeError, r"Operator \* on a TaskFuture"),
        ("-one", TypeError, r"Operator unary - on a TaskFuture"),
        ("one < 3", TypeError, r"Comparison of a TaskFuture is not supported.*\.result\(\)"),
        ("one == 3", TypeError, r"Comparison of a TaskFuture is not supported"),
        ("one != 3", TypeError, r"Comparison of a TaskFuture is not supported"),
        ("bool(one)", TypeError, r"Truth of a TaskFuture is not supported: 'one'.*"
                                 r"decide inside a task"),
        ("len(one)", TypeError, r"len\(\) of a TaskFuture is not supported"),
        ("list(one)", TypeError, r"Iterating a TaskFuture is not supported.*\.map\(future\)"),
        ("3 in one", TypeError, r"The `in` test on a TaskFuture is not supported"),
        ("float(one)", TypeError, r"Conversion of a TaskFuture to float is not supported"),
        ("range(one)", TypeError, r"Using a TaskFuture as an index is not supported"),
        ("one()", TypeError, r"Calling a TaskFuture is not supported"),
        ("one.bit_length()", AttributeError, r"'TaskFuture' object has no attribute "
                                             r"'bit_length': .*\.result\(\)"),
        ("squares + 1", TypeError, r"Operator \+ on a MappedFuture is not supported"),
        ("bool(squares)", TypeError, r"Truth of a MappedFuture is not supported"),
        ("squares.sum()", AttributeError, r"'MappedFuture' object has no attribute 'sum'"),
    ],
)
def test_other_expressions_say_what_to_do_instead(
    expression: str, error: type[Exception], match: str
) -> None:
    @task
    def one() -> int:
        return 1

    @task
    def square(x: int) -> int:
        return x * x

    @flow(executor="local")
    def f() -> None:
        namespace = {"one": one(), "squares": square.map([1, 2])}
        with pytest.raises(error, match=match):
            eval(expression, {}, namespace)

    f()


def test_futures_compare_and_hash_by_identity() -> None:
    @flow(executor="local")
    def f() -> None:
        a, b = cfg(), cfg()
        assert a == a and a != b
        assert {a: 1, b: 2}[b] == 2
        assert a in [b, a]
        assert not hasattr(a, "_repr_html_")  # display probes still get a plain answer

    f()


@flow
def scale(value: float, errors: list[object]) -> float:
    return train(lr=value, depth=len(errors))


def test_a_future_passed_to_a_subflow_arrives_as_its_value(executor: str) -> None:
    @task
    def fragile(i: int) -> int:
        if i == 1:
            raise ValueError("one")
        return i

    @flow(executor=executor)
    def parent() -> float:
        return scale(cfg()["lr"], allow_failure(fragile.map([0, 1, 2])))

    with runs_started() as runs:
        assert parent() == pytest.approx(0.3)
    # scale got [0, ValueError, 2]: three "errors" in depth, the failed child as its exception
    assert [r.flow_name for r in runs] == ["parent", "scale"]
    assert runs[1].parameters["errors"][0] == 0
    assert isinstance(runs[1].parameters["errors"][1], ValueError)


@flow
def inner(xs: list[int]) -> list[int]:
    return square_it.map(xs)  # type: ignore[return-value]


@task
def square_it(x: int) -> int:
    return x * x


@task
def calls_a_flow(n: int) -> int:
    return sum(inner(list(range(n))))


def test_a_flow_called_inside_a_task_runs_as_a_nested_flow_run(executor: str) -> None:
    @flow(executor=executor)
    def outer() -> int:
        return calls_a_flow(4)

    with runs_started() as runs:
        assert outer() == 0 + 1 + 4 + 9
    assert [r.flow_name for r in runs] == ["outer", "inner"]
    assert [tr.name for tr in runs[1].tasks] == [f"square_it[{i}]" for i in range(4)]
    assert runs[1].state is State.COMPLETED


def test_map_inside_a_task_names_the_fix() -> None:
    @task
    def fans_out() -> object:
        return square_it.map([1, 2])

    @flow
    def f() -> object:
        return fans_out()

    run = f.run()
    [tr] = run.tasks
    assert "square_it.map() was called inside task 'fans_out'" in tr.message
    assert "needs a running flow" not in tr.message
    assert "call that flow from the task" in tr.message



def test_indexing_on_dask_runs_on_the_cluster(one_worker_cluster) -> None:  # type: ignore[no-untyped-def]
    with labloom.DaskExecutor(cluster=one_worker_cluster) as executor:
        run = notebook_style.run(executor=executor)
        assert run.result() == pytest.approx(0.4)
        assert [tr.name for tr in run.tasks][1:4] == ["cfg['lr']", "cfg['layers']",
                                                      "cfg['layers'][1]"]


@flow(executor="dask")
def inner_on_dask(xs: list[int]) -> list[int]:
    return square_it.map(xs)  # type: ignore[return-value]


@task
def calls_a_dask_flow() -> list[int]:
    return inner_on_dask([1, 2])


@flow
def nests(n: int) -> object:
    return calls_a_flow(n)


@flow
def nests_dask() -> object:
    return calls_a_dask_flow()


def test_a_flow_called_in_a_task_on_a_dask_worker(one_worker_cluster) -> None:  # type: ignore[no-untyped-def]
    with labloom.DaskExecutor(cluster=one_worker_cluster) as executor:
        assert nests.run(n=3, executor=executor).result() == 0 + 1 + 4  # threads, in the worker
        run = nests_dask.run(executor=executor)
        [tr] = run.tasks
        assert tr.state is State.FAILED
        assert "cannot start an embedded Dask cluster there; give that flow " \
               'executor="threads"' in tr.message
