"""A task call with a big argument (session 44): a list of ten million numbers passed to a task
was searched for futures item by item, 1.5 s per search and three searches per call, before its
task ran (benchmarks/big_list_argument.py); a future nested in a list of dicts is still found.
A value that contains itself, or is nested deeper than Python's recursion limit, reaches its task
(session 46: before, a bare RecursionError from the search for futures)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from labloom import State, allow_failure, flow, task
from labloom.core import futures
from labloom.core.futures import find_futures

pytestmark = pytest.mark.timeout(120)


def calls_of_find_futures(value: Any) -> tuple[int, list[Any]]:
    """How many Python calls of ``find_futures`` a search of ``value`` makes, and what it found."""
    code = futures._find.__code__  # the recursive search behind find_futures
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call" and frame.f_code is code:
            count += 1

    found: list[Any] = []
    sys.setprofile(profile)
    try:
        find_futures(value, found)
    finally:
        sys.setprofile(None)
    return count, found


def test_a_long_list_of_numbers_is_searched_without_a_call_per_item() -> None:
    """Before: 100,001 calls for a list of 100,000 ints (one per item)."""
    for value in (list(range(100_000)), [float(i) for i in range(100_000)],
                  tuple(["a", 1, None, 2.5, b"x", True] * 10_000), set(range(50_000))):
        calls, found = calls_of_find_futures(value)
        assert (calls, found) == (1, [])


@task
def ident(x: Any) -> Any:
    return x


@task
def what_arrived(values: list[Any]) -> tuple[str, str]:
    return repr(values[500]["future"]), repr(values[-1][0])


@flow
def nested_future_in_a_long_list() -> tuple[str, str]:
    inner = ident(7)
    values: list[Any] = [{"n": i} for i in range(1_000)] + list(range(1_000))
    values.insert(500, {"future": inner})
    values.append([inner])
    return what_arrived(values)  # type: ignore[return-value]


def test_a_future_nested_in_a_long_list_of_dicts_is_still_found(executor: str) -> None:
    run = nested_future_in_a_long_list.run(executor=executor)
    assert run.result() == ("7", "7")
    (arrived,) = [tr for tr in run.tasks if tr.name == "what_arrived"]
    assert [up.name for up in arrived.upstream] == ["ident"]


def contains_itself() -> list[Any]:
    value: list[Any] = [1, {"lr": 0.1}]
    value.append(value)
    return value


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    inner = value
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return value


@task
def length(values: list[Any], settings: Any = None) -> int:
    return len(values)


@task(cache=True)
def cached_length(values: list[Any]) -> int:
    return len(values)


@flow
def odd_arguments(given: list[Any]) -> list[int]:
    made = contains_itself()
    settings = {"tag": "a"}
    first = length(made, settings)
    settings["tag"] = "b"  # the call before still got its copy: the arguments beside are copied
    return [first, length(nested(5_000)), cached_length(made), cached_length(nested(5_000)),
            length(given), length(given, allow_failure([ident(1)])),
            length([ident(2), made])]  # type: ignore[list-item]


def test_a_value_that_contains_itself_or_nests_deep_reaches_its_task(executor: str) -> None:
    """Before: RecursionError from find_futures (a flow parameter: before anything was
    recorded; a task's argument: the flow body failed at the call)."""
    run = odd_arguments.run(given=contains_itself(), executor=executor)
    assert run.result() == [3, 1, 3, 1, 3, 3, 2]
    assert run.state is State.COMPLETED


@flow
def future_in_a_cycle() -> int:
    value: list[Any] = [ident(1)]
    value.append(value)
    return length(value)  # type: ignore[return-value]


@flow
def allowed_cycle() -> int:
    value: list[Any] = [ident(1)]
    value.append(value)
    return length(allow_failure(value))  # type: ignore[return-value]


def test_a_future_inside_a_value_that_contains_itself_is_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"a future is inside a list, tuple, set or dict that "
                       r"contains itself .* pass the future to the task as an argument of its "
                       r"own"):
        future_in_a_cycle()
    with pytest.raises(TypeError, match=r"allow_failure\(\) was given a list, tuple or dict "
                       r"that contains itself .* wrap each future in it instead"):
        allowed_cycle()
