"""Cache keys follow values (issue 17, item 2): a cached task whose input comes from an uncached
task is keyed by that input's contents, hashed where the value is (in the task call: on a Dask
worker, never in the kernel); a cached upstream's key stands in for its value; ``cache_key=``
is the user's own policy. On every executor (Dask: a real LocalCluster with worker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labloom import CacheContext, State, flow, task, unmapped
from store_helpers import age_results


def calls(ledger: Path) -> list[str]:
    """What the tasks appended to ``ledger``: worker processes share no memory with the test."""
    return ledger.read_text().split() if ledger.exists() else []


def note(ledger: str, what: str) -> None:
    with open(ledger, "a") as out:
        out.write(what + "\n")


@task
def load(path: str) -> list[int]:
    return [int(x) for x in Path(path).read_text().split()]


@task(cache=True)
def total(values: list[int], ledger: str) -> int:
    note(ledger, "total")
    return sum(values)


@task(cache=True)
def double(x: int, ledger: str) -> int:
    note(ledger, f"double{x}")
    return 2 * x


@task
def parse(text: str) -> int:
    return int(text)


@flow
def summed(path: str, ledger: str) -> int:
    return total(load(path), ledger)  # type: ignore[return-value]


@flow
def doubled(path: str, ledger: str) -> tuple[list[int], list[int]]:
    items = double.map(load(path), ledger=unmapped(ledger))  # items of an uncached task's result
    words = Path(path).read_text().split()
    chained = double.map(parse.map(words), ledger=unmapped(ledger))  # children of an uncached map
    return items, chained  # type: ignore[return-value]


def states(run: Any) -> dict[str, State]:
    return {tr.name: tr.state for tr in run.tasks}


def test_a_changed_uncached_input_is_not_served_from_the_cache(
    any_executor: Any, tmp_path: Path
) -> None:
    data, ledger = tmp_path / "data.txt", tmp_path / "ledger"
    data.write_text("1 2 3")
    assert summed.run(path=str(data), ledger=str(ledger), executor=any_executor).result() == 6
    again = summed.run(path=str(data), ledger=str(ledger), executor=any_executor)
    assert again.result() == 6 and states(again)["total"] is State.CACHED
    data.write_text("10 20 30")  # what load reads changed; load's source and inputs did not
    changed = summed.run(path=str(data), ledger=str(ledger), executor=any_executor)
    assert changed.result() == 60
    assert states(changed)["total"] is State.COMPLETED and calls(ledger) == ["total", "total"]


def test_cached_map_children_follow_their_items(any_executor: Any, tmp_path: Path) -> None:
    data, ledger = tmp_path / "data.txt", tmp_path / "ledger"
    data.write_text("1 2 3")
    run = doubled.run(path=str(data), ledger=str(ledger), executor=any_executor)
    assert run.result() == ([2, 4, 6], [2, 4, 6])
    first = len(calls(ledger))
    assert set(calls(ledger)) == {"double1", "double2", "double3"}
    data.write_text("1 5 3")
    run = doubled.run(path=str(data), ledger=str(ledger), executor=any_executor)
    assert run.result() == ([2, 10, 6], [2, 10, 6])
    # Only the children whose item changed ran again (both maps' share one key: one may hit
    # the file the other wrote).
    assert set(calls(ledger)[first:]) == {"double5"}
    assert [tr.state for tr in run.tasks if tr.name.startswith("double")].count(
        State.CACHED) >= 4


class Opaque:
    """A value with no deterministic content hash."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __dask_tokenize__(self) -> Any:
        raise RuntimeError("no stable token")


@task
def opaque(n: int) -> Opaque:
    return Opaque(n)


@task(cache=True)
def opaque_cached(n: int) -> Opaque:
    return Opaque(n)


@task(cache=True)
def unwrap(value: Opaque, ledger: str) -> int:
    note(ledger, "unwrap")
    return value.n


def test_a_value_without_a_stable_hash_runs_uncached_and_says_why(
    any_executor: Any, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")

    @flow(executor=any_executor)
    def f() -> int:
        return unwrap(opaque(3), ledger)  # type: ignore[return-value]

    first, second = f.run(), f.run()
    assert first.result() == second.result() == 3
    assert calls(Path(ledger)) == ["unwrap", "unwrap"]  # never served a guess
    text = " ".join(line.text for line in second.logs("unwrap"))
    assert "not cached" in text and "test_cache_values.Opaque" in text
    assert "__dask_tokenize__" in text and "cache_key=" in text


def test_a_cached_upstreams_key_stands_in_for_its_value(any_executor: Any, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")

    @flow(executor=any_executor)
    def f() -> int:
        # Opaque cannot be hashed: a hit proves its upstream's key was used instead.
        return unwrap(opaque_cached(4), ledger)  # type: ignore[return-value]

    f.run()
    run = f.run()
    assert run.result() == 4 and states(run) == {"opaque_cached": State.CACHED,
                                                 "unwrap": State.CACHED}
    assert calls(Path(ledger)) == ["unwrap"]


@task(cache=True, cache_expiration=60)
def load_for_a_while(path: str) -> list[int]:
    return [int(x) for x in Path(path).read_text().split()]


def test_an_expiring_upstream_is_hashed_by_value(tmp_path: Path) -> None:
    data, ledger = tmp_path / "data.txt", str(tmp_path / "ledger")
    data.write_text("1 2")

    @flow
    def f() -> int:
        return total(load_for_a_while(str(data)), ledger)  # type: ignore[return-value]

    first = f.run()
    assert first.result() == 3
    data.write_text("5 5")
    assert f() == 3  # load_for_a_while has not expired: the file is not read again
    age_results(first, 61)  # now it has: it reads again, its key is the same
    assert f() == 10


def per_day(ctx: CacheContext, inputs: dict[str, Any]) -> str | None:
    if inputs["day"] == "never":
        return None
    # The rows' count, read where the rows are: equal counts share one result.
    return f"{ctx.task_name}-{ctx.task_source}-{inputs['day']}-{len(inputs['rows'])}"


@task(cache_key=per_day)
def report(day: str, rows: list[int], ledger: str) -> str:
    note(ledger, f"report-{day}")
    return f"{day}: {sum(rows)}"


def test_cache_key_is_the_users_policy(any_executor: Any, tmp_path: Path) -> None:
    data, ledger = tmp_path / "data.txt", tmp_path / "ledger"

    @flow(executor=any_executor)
    def f(day: str) -> str:
        return report(day, load(str(data)), str(ledger))  # type: ignore[return-value]

    data.write_text("1 2")
    assert f("mon") == "mon: 3"
    data.write_text("7 7")  # same day and count: the policy says reuse
    run = f.run(day="mon")
    assert run.result() == "mon: 3" and states(run)["report"] is State.CACHED
    assert f("tue") == "tue: 14"
    f("never"), f("never")  # None: not cached at all
    assert calls(ledger) == ["report-mon", "report-tue", "report-never", "report-never"]


def test_cache_key_must_give_a_str_or_none(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cache_key must be a function"):
        task(cache_key="day")(lambda day: day)
    with pytest.raises(ValueError, match="cache_key= turns caching on"):
        task(cache=False, cache_key=per_day)(lambda day: day)

    @task(cache_key=lambda ctx, inputs: 42)
    def numbered(day: str) -> str:
        return day

    @flow
    def f() -> str:
        return numbered("mon")  # type: ignore[return-value]

    run = f.run()
    assert run.state is State.FAILED
    assert "returned a int; return a str" in run.tasks[0].message


class Ledgered:
    """Bytes that note, in a file, every process that unpickles them."""

    def __init__(self, data: bytes, ledger: str) -> None:
        self.data, self.ledger = data, ledger

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        note(self.ledger, f"pid{os.getpid()}")

    def __dask_tokenize__(self) -> Any:
        return self.data


@task
def big(ledger: str) -> Ledgered:
    return Ledgered(b"x" * 1_000_000, ledger)


@task(cache=True)
def size(value: Ledgered) -> int:
    return len(value.data)


def test_on_dask_the_key_is_made_on_the_worker_not_in_the_kernel(
    dask_cluster: Any, tmp_path: Path
) -> None:
    from labloom import DaskExecutor

    ledger = tmp_path / "ledger"

    @flow(executor=DaskExecutor(cluster=dask_cluster))
    def f() -> int:
        return size(big(str(ledger)))  # type: ignore[return-value]

    run = f.run()
    run.wait()
    assert states(run)["size"] is State.COMPLETED
    assert [tr.cache_key for tr in run.tasks if tr.name == "size"] != [None]
    assert f"pid{os.getpid()}" not in calls(ledger)  # the kernel never held the value
    assert run.result() == 1_000_000


TOKENS = """
import sys; sys.path.insert(0, {src!r})
import numpy
from labloom.core.cache_keys import content_token
print(content_token([{{"b": {{"z", "y", "x"}}, "a": (1.5, None)}}, numpy.arange(10.0), b"raw"]))
"""


def test_content_hashes_are_the_same_in_every_process() -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    tokens = {
        subprocess.run([sys.executable, "-c", TOKENS.format(src=src)], capture_output=True,
                       text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed},
                       ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(tokens) == 1 and len(tokens.pop().strip()) == 32


def test_plain_data_is_hashed_by_content_not_by_which_objects_it_shares() -> None:
    from labloom.core.cache_keys import content_token

    word = "ab" * 3
    assert content_token([word, word]) == content_token(["ab" * 3, "".join(["ab"] * 3)])
    assert content_token([1, 2]) != content_token((1, 2)) != content_token([1.0, 2.0])
    assert content_token({"a": 1}) != content_token({"a": True})
