"""A task call with a big argument (session 44): a list of ten million numbers passed to a task
was searched for futures item by item, 1.5 s per search and three searches per call, before its
task ran (benchmarks/big_list_argument.py); a future nested in a list of dicts is still found."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from labloom import flow, task
from labloom.core import futures
from labloom.core.futures import find_futures

pytestmark = pytest.mark.timeout(120)


def calls_of_find_futures(value: Any) -> tuple[int, list[Any]]:
    """How many Python calls of ``find_futures`` a search of ``value`` makes, and what it found."""
    code = futures.find_futures.__code__
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
