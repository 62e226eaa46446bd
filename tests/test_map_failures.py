"""allow_failure through chained maps (issue 17, item 4): each child of the next map receives its
own upstream child's value or exception, on every executor (Dask: a real LocalCluster with
worker processes); ``allow_failure([a, b])`` allows each element."""

from __future__ import annotations

from typing import Any

import pytest

from labloom import FlowFailed, State, UpstreamFailedError, allow_failure, flow, task


@task
def fragile(i: int) -> int:
    if i == 2:
        raise ValueError(f"item {i} broke")
    return i


@task
def plus_one(x: int) -> int:
    return x + 1


@task
def describe(value: object) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return f"ok {value}"


@task
def describe_all(values: list[object]) -> list[str]:
    return [describe.fn(v) for v in values]


def test_each_child_of_a_chained_map_gets_its_own_upstream_value_or_exception(
    any_executor: Any,
) -> None:
    @flow(executor=any_executor)
    def chain() -> list[str]:
        return describe.map(allow_failure(fragile.map(range(4))))  # type: ignore[return-value]

    run = chain.run()
    assert run.result() == ["ok 0", "ok 1", "ValueError: item 2 broke", "ok 3"]
    # The failure was accepted downstream: the run succeeds, as with a plain reduce.
    assert run.state is State.COMPLETED
    assert {tr.name: tr.state for tr in run.tasks}["fragile[2]"] is State.FAILED


def test_an_upstream_child_that_never_ran_arrives_as_upstream_failed(any_executor: Any) -> None:
    @flow(executor=any_executor)
    def three() -> list[str]:
        mid = plus_one.map(fragile.map(range(4)))  # child 2 of mid never runs
        return describe.map(allow_failure(mid))  # type: ignore[return-value]

    run = three.run()
    values = run.result()
    assert values[:2] == ["ok 1", "ok 2"] and values[3] == "ok 4"
    assert values[2].startswith(UpstreamFailedError.__name__)
    assert {tr.name: tr.state for tr in run.tasks}["plus_one[2]"] is State.UPSTREAM_FAILED


def test_without_allow_failure_only_the_failed_childs_branch_stops(any_executor: Any) -> None:
    @flow(executor=any_executor)
    def chain() -> list[str]:
        return describe.map(fragile.map(range(4)))  # type: ignore[return-value]

    run = chain.run()
    states = {tr.name: tr.state for tr in run.tasks}
    assert states["describe[2]"] is State.UPSTREAM_FAILED
    assert states["describe[3]"] is State.COMPLETED
    with pytest.raises(FlowFailed):
        run.result()


def test_a_flow_returning_failures_under_allow_failure_completes_with_them_in_place(
    any_executor: Any,
) -> None:
    # As the FlowFailed message says ("pass the future on under allow_failure ... in the
    # flow's return value"): before, the run failed all the same.
    @flow(executor=any_executor)
    def gathered() -> list[object]:
        return allow_failure(fragile.map(range(4)))  # type: ignore[return-value]

    @flow(executor=any_executor)
    def chained() -> list[object]:
        return allow_failure(plus_one.map(fragile.map(range(4))))  # type: ignore[return-value]

    run = gathered.run()
    assert run.state is State.COMPLETED, run.message
    values = run.result()
    assert values[:2] == [0, 1] and values[3] == 3
    assert isinstance(values[2], ValueError) and "item 2 broke" in str(values[2])
    run = chained.run()  # fragile[2] fails, plus_one[2] never runs: both handled by the return
    assert run.state is State.COMPLETED, run.message
    values = run.result()
    assert values[:2] == [1, 2] and values[3] == 4
    assert isinstance(values[2], UpstreamFailedError)


def test_a_failure_the_return_value_does_not_take_still_fails_the_run(any_executor: Any) -> None:
    @flow(executor=any_executor)
    def partly() -> list[object]:
        fragile(2)  # nothing takes its failure
        return allow_failure(fragile.map([0, 1]))  # type: ignore[return-value]

    @flow(executor=any_executor)
    def twice() -> tuple[object, object]:
        items = fragile.map(range(4))
        return allow_failure(items), items  # type: ignore[return-value]

    for made in (partly, twice):
        run = made.run()
        assert run.state is State.FAILED, made.name
        with pytest.raises(FlowFailed, match="fragile"):
            run.result()


def test_allow_failure_of_a_list_allows_each_element(any_executor: Any) -> None:
    @flow(executor=any_executor)
    def pair() -> tuple[list[str], list[str]]:
        a, b = fragile(1), fragile(2)
        whole = describe_all(allow_failure([a, b]))
        each = describe.map(allow_failure([a, b]))
        return whole, each  # type: ignore[return-value]

    expected = ["ok 1", "ValueError: item 2 broke"]
    assert pair.run().result() == (expected, expected)


def test_allow_failure_says_what_it_takes() -> None:
    with pytest.raises(TypeError, match="a list, tuple or dict holding them; got list without"):
        allow_failure([1, 2])
    with pytest.raises(TypeError, match="got int"):
        allow_failure(3)

    @flow(executor="local")
    def single() -> object:
        return describe.map(allow_failure(fragile(1)))

    with pytest.raises(TypeError, match=r"allow_failure\(\) of a single task's future.*"
                                        r"allow_failure\(step.map"):
        single()


def test_retry_of_a_map_that_could_not_expand_completes_the_run(tmp_path: Any) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")

    @task
    def items() -> list[int]:
        if flag.exists():
            raise ValueError("not yet")
        return [1, 2]

    @flow(executor="threads")
    def f() -> list[int]:
        return plus_one.map(items())  # type: ignore[return-value]

    run = f.run()
    assert run.state is State.FAILED
    flag.unlink()
    run.retry()
    # The placeholder that said why the map could not expand is history now, not a failure.
    assert run.state is State.COMPLETED, run.message
    assert run.result() == [2, 3]



ERRORS = """
class APIError(Exception):
    def __init__(self, status, body):  # what it reports, not one message: as users write them
        super().__init__(f"{status}: {body}")
        self.status = status
"""
SWEEP = """
import distributed
from errors import APIError
from labloom import DaskExecutor, allow_failure, flow, task

@task
def call_api():
    raise APIError(503, "busy")

@task
def describe(value):
    return f"{type(value).__name__}: {value}"

@task
def other(x):
    return x + 1

@flow
def f():
    return describe(allow_failure(call_api())), other.map(range(3))

if __name__ == "__main__":
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        run = f.run(executor=DaskExecutor(cluster=c))
        print(run.state.value)
        print(run.result() if run.state.value == "Completed" else run.message)
"""


def test_on_dask_an_error_pickle_cannot_rebuild_still_reaches_the_task_allowing_it(
    tmp_path: Any, subprocess_env: dict[str, str]
) -> None:
    # pickle rebuilds an error by calling its class with the message alone: Dask's scheduler
    # failed the task receiving APIError(status, body) with "Error during deserialization of
    # the task graph", and every task sent in the same graph with it.
    import subprocess
    import sys

    (tmp_path / "errors.py").write_text(ERRORS)
    (tmp_path / "sweep.py").write_text(SWEEP)
    env = {**subprocess_env, "PYTHONPATH": f"{tmp_path}:{subprocess_env['PYTHONPATH']}"}
    done = subprocess.run([sys.executable, "sweep.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    state, described = done.stdout.strip().splitlines()[-2:]
    assert state == "Completed", done.stdout[-2000:] + done.stderr[-3000:]
    assert described.startswith(("('", '("'))  # a tuple's repr: the error's text first
    assert described[2:].startswith("RuntimeError: APIError: 503: busy [labloom: this error "
                                    "cannot be sent to a Dask worker"), described
    assert described.endswith("[1, 2, 3])")
