"""Three rules decided in issue 17 (item 6), each once for every executor:

- a map refuses a string, whether it is written in the flow body or a task returned it;
- repeated calls of one task are numbered as nodes of the DAG (add, add-2, add-3): a name
  picks one node's task runs and log lines;
- a flow's run and its call agree: it completes and returns, or it fails and its call raises
  ``FlowFailed``. A failure the flow body caught (the error of ``.result()``) is handled, like
  one a task took under ``allow_failure``; a failure nothing handled fails the run (that case:
  ``test_core_flows.test_a_failure_nothing_handled_fails_the_call_too``).
"""

from __future__ import annotations

import contextlib

import pytest

from labloom import FlowFailed, State, UpstreamFailedError, allow_failure, flow, task, unmapped
from labloom.store import open_store

pytestmark = pytest.mark.timeout(120)


@task
def words() -> str:
    return "abc"


@task
def shout(word: str) -> str:
    return word.upper()


def test_a_map_over_a_returned_string_is_refused_as_a_literal_one_is(executor: str) -> None:
    @flow(executor=executor)
    def literal() -> object:
        return shout.map("abc")

    @flow(executor=executor)
    def returned() -> object:
        return shout.map(words())

    with pytest.raises(TypeError, match=r"shout\.map\(\): argument 1 is a string"):
        literal()
    run = returned.run()
    assert run.state is State.FAILED
    [placeholder] = [tr for tr in run.tasks if tr.task.name == "shout"]
    assert placeholder.state is State.FAILED
    assert "cannot iterate the result of 'words'" in placeholder.message
    assert "it is a str, and mapping would iterate its characters" in placeholder.message
    assert "unmapped(future)" in placeholder.message

    @task
    def join(word: str, text: str) -> str:
        return f"{word}:{text}"

    @flow(executor=executor)
    def whole() -> object:
        return join.map(["x", "y"], unmapped(words()))  # the fix the message names

    assert whole() == ["x:abc", "y:abc"]


@task
def add(x: int, y: int) -> int:
    print(f"adding {x} and {y}")
    return x + y


@flow
def repeated() -> object:
    a = add(1, 2)
    b = add(a, 10)
    firsts = add.map([1, 2], y=unmapped(100))
    return add.map(firsts, y=unmapped(b))


def test_repeated_calls_are_numbered_as_nodes(executor: str) -> None:
    run = repeated.run(executor=executor)
    assert run.result() == [114, 115]
    assert [tr.name for tr in run.tasks] == [
        "add", "add-2", "add-3[0]", "add-3[1]", "add-4[0]", "add-4[1]",
    ]
    nodes = [e.name for e in run.events() if type(e).__name__ == "NodeCreated"]
    assert nodes == ["add", "add-2", "add-3", "add-4"]
    assert [line.text for line in run.logs("add")] == ["adding 1 and 2"]
    assert [line.text for line in run.logs("add-2")] == ["adding 3 and 10"]
    assert [line.text for line in run.logs("add-4")] == ["adding 101 and 13",
                                                         "adding 102 and 13"]
    with open_store() as store:
        assert [t.name for t in store.task_runs(run.id)] == [tr.name for tr in run.tasks]
        assert [t.name for t in store.find_task_runs(run.id, "add-2")] == ["add-2"]
        lines, _ = store.logs(run.id, "add-3[1]")
        assert [line.text for line in lines] == ["adding 2 and 100"]


def test_a_task_really_named_like_a_number_keeps_its_name() -> None:
    other = add.with_options(name="add-2")

    @flow
    def f() -> object:
        return other(0, 0), add(1, 1), add(2, 2)

    run = f.run()
    assert [tr.name for tr in run.tasks] == ["add-2", "add", "add-3"]


@task
def fragile() -> int:
    raise ValueError("diverged")


@task
def use(x: int) -> int:
    return x


def test_a_failure_the_body_caught_lets_the_run_complete(executor: str) -> None:
    @flow(executor=executor)
    def f() -> str:
        try:
            return str(use(fragile()).result())
        except UpstreamFailedError:
            return "fallback"

    run = f.run()
    assert run.result() == "fallback"
    assert run.state is State.COMPLETED, run.message
    assert {tr.name: tr.state for tr in run.tasks} == {
        "fragile": State.FAILED, "use": State.UPSTREAM_FAILED,
    }


def test_a_caught_failure_the_return_value_still_needs_fails(executor: str) -> None:
    @flow(executor=executor)
    def f() -> object:
        broken = fragile()
        with contextlib.suppress(ValueError):  # caught, then returned anyway
            broken.result()
        return broken

    run = f.run()
    assert run.state is State.FAILED
    with pytest.raises(FlowFailed, match=r"its return value needs fragile \(Failed\)"):
        run.result()


def test_a_failure_a_task_accepted_still_completes(executor: str) -> None:
    @task
    def summary(value: object) -> str:
        return type(value).__name__

    @flow(executor=executor)
    def f() -> object:
        return summary(allow_failure(fragile()))

    run = f.run()
    assert run.state is State.COMPLETED
    assert run.result() == "ValueError"


def test_reading_a_failed_future_after_the_run_handles_nothing() -> None:
    kept = []

    @flow
    def f() -> int:
        kept.append(fragile())
        return 1

    run = f.run()
    with pytest.raises(ValueError):
        kept[0].result()
    assert run.state is State.FAILED
    with pytest.raises(FlowFailed):
        run.result()



def test_the_three_rules_on_dask(one_worker_cluster) -> None:  # type: ignore[no-untyped-def]
    from labloom import DaskExecutor

    @flow
    def returned() -> object:
        return shout.map(words())

    @flow
    def ignored() -> int:
        fragile()
        return 3

    with DaskExecutor(cluster=one_worker_cluster) as executor:
        run = returned.run(executor=executor)  # the string is checked on the worker
        [placeholder] = [tr for tr in run.tasks if tr.task.name == "shout"]
        assert "it is a str, and mapping would iterate its characters" in placeholder.message
        run = repeated.run(executor=executor)
        assert run.result() == [114, 115]
        assert [line.text for line in run.logs("add-2")] == ["adding 3 and 10"]
        run = ignored.run(executor=executor)
        assert run.state is State.FAILED
        with pytest.raises(FlowFailed, match="nothing handled"):
            run.result()
