"""A block of launches reaches the executor as one ``submit_all`` (a map's children share the
Dask executor's look-ups), while a call the executor refuses fails alone, as one by one; and
``StateChanged``, now a tuple, stays immutable and equal only to its own kind."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import labloom
from labloom import State, flow, task
from labloom.core import events as ev
from labloom.core.attempt import TaskCall


class _Refusing(labloom.ThreadExecutor):
    """Refuses the call of child 3 (raises in ``submit``); counts the blocks handed over."""

    def __init__(self) -> None:
        super().__init__(2)
        self.blocks: list[int] = []

    def submit_all(self, calls: Any, resources: Any, handles: list[Any]) -> None:
        self.blocks.append(len(calls))
        super().submit_all(calls, resources, handles)

    def submit(self, call: TaskCall, *args: Any, **kwargs: Any) -> Any:
        if call.task_name.endswith("[3]"):
            raise ValueError("no room for child 3")
        return super().submit(call, *args, **kwargs)


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubles(n: int) -> None:
    double.map(range(n))


def test_a_call_the_executor_refuses_fails_alone_and_the_rest_of_its_block_runs() -> None:
    executor = _Refusing()
    with executor:
        run = doubles.run(n=10, executor=executor)
        run.wait(60)
    states = {tr.map_index: tr.state for tr in run.tasks if tr.map_index is not None}
    assert states == {i: State.FAILED if i == 3 else State.COMPLETED for i in range(10)}
    (refused,) = [tr for tr in run.tasks if tr.map_index == 3]
    assert "no room for child 3" in refused.message
    # The map's 10 children came in one block; after the refusal, the 6 after it again.
    assert executor.blocks[:2] == [10, 6]


def test_state_changed_is_immutable_and_equal_only_to_its_own_kind() -> None:
    event = ev.StateChanged("r", "r.1", State.RUNNING, 1.0, "", 1, before=State.PENDING)
    same = ev.StateChanged("r", "r.1", State.RUNNING, 1.0, "", 1, before=State.PENDING)
    with pytest.raises(AttributeError):
        event.state = State.FAILED  # type: ignore[misc]
    assert event == same and hash(event) == hash(same) and len({event, same}) == 1
    assert event != tuple(event) and event != ev.StateChanged("r", "r.1", State.FAILED, 1.0)
    assert pickle.loads(pickle.dumps(event)) == event
    assert event.node_id is None and event.worker == "" and event.before is State.PENDING


def test_task_run_created_is_immutable_and_equal_only_to_its_own_kind() -> None:
    # A tuple too (one is built per task run), compared as the dataclass it was.
    event = ev.TaskRunCreated("r", "r.1", "n0", "sq", 1, ("r.0",), 1.0)
    same = ev.TaskRunCreated("r", "r.1", "n0", "sq", 1, ("r.0",), 1.0)
    with pytest.raises(AttributeError):
        event.node_id = "n1"  # type: ignore[misc]
    assert event == same and hash(event) == hash(same) and len({event, same}) == 1
    assert event != tuple(event) and event != ev.TaskRunCreated("r", "r.1", "n0", "sq", 2, (), 1.0)
    assert pickle.loads(pickle.dumps(event)) == event and event.cache_key is None


def test_a_blocks_calls_carry_their_tasks_options_read_once_per_task() -> None:
    """``handing_over.submit_all`` reads what a task's calls share once per task: each call still
    names its own task's function, timeout, prints, batch size and recording."""
    seen: list[TaskCall] = []

    class Seeing(labloom.ThreadExecutor):
        def submit(self, call: TaskCall, *args: Any, **kwargs: Any) -> Any:
            seen.append(call)
            return super().submit(call, *args, **kwargs)

    @task(timeout=30.0, log_prints=False, params=True)
    def recorded(x: int) -> int:
        return x

    @flow
    def both(n: int) -> None:
        recorded.map(range(n))
        double.map(range(n))

    with Seeing(2) as executor:
        run = both.run(n=3, executor=executor)
        run.wait(60)
    assert run.state is State.COMPLETED
    calls = {call.task_name: call for call in seen}
    assert sorted(calls) == [f"{name}[{i}]" for name in ("double", "recorded") for i in range(3)]
    for i in range(3):
        mine, plain = calls[f"recorded[{i}]"], calls[f"double[{i}]"]
        assert (mine.timeout, mine.log_prints, mine.record is not None) == (30.0, False, True)
        assert (plain.timeout, plain.log_prints, plain.record) == (None, True, None)
        assert mine.fn is recorded.fn and plain.fn is double.fn
        assert mine.run_id == plain.run_id == run.id and mine.batch_size == plain.batch_size
        assert mine.task_run_id.startswith(f"{run.id}.")
