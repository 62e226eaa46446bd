"""@task(cache=True): hits counted by the function's side effect, invalidation, failures."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from labloom import State, flow, task
from labloom.core.results import ResultPlanner
from store_helpers import age_results

CALLS: list[str] = []


@task(cache=True)
def load(n: int) -> list[int]:
    CALLS.append(f"load {n}")
    return list(range(n))


@task(cache=True)
def square(x: int) -> int:
    CALLS.append(f"square {x}")
    return x * x


@task(cache=True)
def total(values: list[int], squares: list[int]) -> int:
    CALLS.append("total")
    return sum(values) + sum(squares)


@flow
def squares(n: int) -> int:
    # A future input (load) and a map's result (square) feed one cached task.
    return total(load(n), square.map(range(n)))  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    CALLS.clear()


def test_a_rerun_is_cached_and_calls_nothing() -> None:
    first = squares.run(n=3)
    assert first.result() == 3 + 5 and len(CALLS) == 5
    second = squares.run(n=3)
    assert second.result() == 8
    assert len(CALLS) == 5  # no function was called again
    assert {tr.state for tr in second.tasks} == {State.CACHED}
    # Different inputs miss; map children whose input is unchanged still hit.
    third = squares.run(n=4)
    assert third.result() == 6 + 14
    assert CALLS[5:] == ["load 4", "square 3", "total"]


def test_keys_of_future_inputs_come_from_upstream_keys() -> None:
    run = squares.run(n=2)
    planner: ResultPlanner = run._engine.results
    keys = {tr.name: tr.cache_key for tr in run.tasks}
    assert all(keys.values()) and len(set(keys.values())) == 4
    # The key of total is made of its upstreams' keys, not of their values.
    load_run = next(tr for tr in run.tasks if tr.name == "load")
    load_run.cache_key = planner._keys[load_run.id] = "pretend"
    total_run = next(tr for tr in run.tasks if tr.name == "total")
    del planner._keys[total_run.id]
    assert planner.key_of(total_run) not in (None, keys["total"])


def test_cache_expiration_bounds_reuse() -> None:
    # Long enough that no load between the first two runs lets the result expire.
    @task(cache=True, cache_expiration=60)
    def stamp(x: int) -> float:
        CALLS.append("stamp")
        return time.time()

    @flow
    def stamps() -> float:
        return stamp(1)  # type: ignore[return-value]

    first = stamps.run()
    stamps()
    assert CALLS == ["stamp"]
    age_results(first, 59)  # not expired yet: still reused
    stamps()
    assert CALLS == ["stamp"]
    age_results(first, 2)  # 61 s old: expired
    stamps()
    assert CALLS == ["stamp", "stamp"]


def test_editing_the_source_invalidates(tmp_path: Path) -> None:
    def make(body: str) -> Any:
        namespace: dict[str, Any] = {"task": task, "CALLS": CALLS}
        source = tmp_path / f"mod_{abs(hash(body))}.py"
        source.write_text(f"@task(cache=True)\ndef f(x):\n    CALLS.append('f')\n    {body}\n")
        exec(compile(source.read_text(), str(source), "exec"), namespace)
        return namespace["f"]

    for fn in (make("return x + 1"), make("return x + 1"), make("return x + 2")):
        @flow
        def one(fn: Any = fn) -> int:
            return fn(1)  # type: ignore[no-any-return]

        one()
    assert CALLS == ["f", "f"]  # the second definition has the same source: a hit


def test_unhashable_input_computes_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    @task(cache=True)
    def locked(lock: Any) -> int:
        CALLS.append("locked")
        return 1

    @flow
    def uses_lock() -> int:
        return locked(threading.Lock())  # type: ignore[return-value]

    with caplog.at_level(logging.WARNING, logger="labloom"):
        run = uses_lock.run()
        uses_lock.run()
    assert run.result() == 1 and CALLS == ["locked", "locked"]
    [line] = run.logs("locked")
    assert "not cached" in line.text and "cannot be hashed" in line.text


def test_corrupt_result_file_recomputes() -> None:
    run = squares.run(n=1)
    from labloom.core.result_files import result_path

    [sq] = [tr for tr in run.tasks if tr.name == "square[0]"]
    Path(result_path(sq.cache_key or "")).write_bytes(b"not a pickle")
    again = squares.run(n=1)
    assert again.result() == 0
    assert {tr.name: tr.state for tr in again.tasks} == {
        "load": State.CACHED, "square[0]": State.COMPLETED, "total": State.CACHED
    }
    assert CALLS == ["load 1", "square 0", "total", "square 0"]
    # One line saying why, and no other: the call run again after the failed read is no
    # Dask worker lost (which a second start of one attempt meant, and said, before).
    [line] = again.logs("square")
    assert "cannot read the stored result" in line.text and "computing it again" in line.text


def test_editing_a_helper_or_a_constant_it_reads_invalidates(tmp_path: Path) -> None:
    # A notebook: the cached task, a helper and a threshold in cells of their own. Editing the
    # helper's cell (or the threshold) returned last run's answer: the task's source was the same.
    cells = iter(range(100))
    space: dict[str, Any] = {"__name__": "notebook_like", "task": task, "CALLS": CALLS}

    def run_cell(text: str) -> None:
        path = tmp_path / f"cell_{next(cells)}.py"
        path.write_text(text)
        exec(compile(text, str(path), "exec"), space)

    run_cell("THRESHOLD = 0.5\n")
    run_cell("def above(x):\n    return x > THRESHOLD\n")
    run_cell("class Rule:\n    @staticmethod\n    def name():\n        return 'gt'\n")
    run_cell("@task(cache=True)\ndef classify(x):\n    CALLS.append('classify')\n"
             "    return [Rule.name(), above(x)]\n")

    @flow
    def one() -> Any:
        return space["classify"](0.6)

    def answer() -> Any:
        run = one.run(executor="local")
        assert run.state is State.COMPLETED, run.message
        return run.result()

    assert answer() == ["gt", True] and answer() == ["gt", True]
    assert CALLS == ["classify"]  # nothing edited: a hit
    run_cell("def above(x):\n    return x > THRESHOLD\n")  # the cell run again, as it was
    assert answer() == ["gt", True] and CALLS == ["classify"]
    run_cell("THRESHOLD = 0.7\n")
    assert answer() == ["gt", False] and CALLS == ["classify"] * 2
    run_cell("def above(x):\n    return x >= THRESHOLD - 0.1\n")
    assert answer() == ["gt", True] and CALLS == ["classify"] * 3
    run_cell("class Rule:\n    @staticmethod\n    def name():\n        return 'ge'\n")
    assert answer() == ["ge", True] and CALLS == ["classify"] * 4


def test_a_default_argument_or_a_closed_over_value_edited_invalidates(tmp_path: Path) -> None:
    """The values a task's source only names: ``factor=FACTOR`` (a default, read once when
    the cell ran) and ``th`` of a task made by a function. Both returned last run's answer
    after the value changed, the source being the same."""
    space: dict[str, Any] = {"__name__": "notebook_like", "task": task, "CALLS": CALLS}
    cell = tmp_path / "cell.py"

    def run_cell(factor: float, th: float) -> None:
        cell.write_text(
            f"FACTOR = {factor}\n"
            "@task(cache=True)\n"
            "def scaled(x, factor=FACTOR, *, offset=FACTOR):\n"
            "    CALLS.append('scaled')\n"
            "    return x * factor + offset\n"
            "def make(th):\n"
            "    @task(cache=True)\n"
            "    def above(x):\n"
            "        CALLS.append('above')\n"
            "        return x > th\n"
            "    return above\n"
            f"above = make({th})\n")
        exec(compile(cell.read_text(), str(cell), "exec"), space)

    @flow
    def both() -> Any:
        return space["scaled"](1.0), space["above"](1.0)

    def answer() -> Any:
        run = both.run(executor="local")
        assert run.state is State.COMPLETED, run.message
        return run.result()

    run_cell(0.5, 0.5)
    assert answer() == (1.0, True) and answer() == (1.0, True)
    assert CALLS == ["scaled", "above"]  # nothing changed: hits
    run_cell(2.0, 0.5)
    assert answer() == (4.0, True) and CALLS == ["scaled", "above", "scaled"]
    run_cell(2.0, 2.0)
    assert answer() == (4.0, False) and CALLS == ["scaled", "above", "scaled", "above"]


def test_editing_a_list_or_dict_of_settings_it_reads_invalidates(tmp_path: Path) -> None:
    # FEATURES = ["age", "bmi"] and PARAMS = {"depth": 3} at the top of a script or a cell:
    # edited, the cached task still returned the old columns' answer (only numbers, strings
    # and tuples of them were in its key).
    space: dict[str, Any] = {"__name__": "script_like", "task": task, "CALLS": CALLS}
    cell = tmp_path / "cell.py"

    def run_cell(features: list[str], params: dict[str, Any]) -> None:
        cell.write_text(
            f"FEATURES = {features!r}\nPARAMS = {params!r}\n"
            "@task(cache=True)\n"
            "def columns(n):\n"
            "    CALLS.append('columns')\n"
            "    return FEATURES[:n], PARAMS['depth']\n")
        exec(compile(cell.read_text(), str(cell), "exec"), space)

    @flow
    def one() -> Any:
        return space["columns"](5)

    def answer() -> Any:
        run = one.run(executor="local")
        assert run.state is State.COMPLETED, run.message
        return run.result()

    run_cell(["age", "bmi"], {"depth": 3})
    assert answer() == (["age", "bmi"], 3) and answer() == (["age", "bmi"], 3)
    assert CALLS == ["columns"]  # nothing edited: a hit
    run_cell(["age", "bmi", "sex"], {"depth": 3})
    assert answer() == (["age", "bmi", "sex"], 3) and CALLS == ["columns"] * 2
    run_cell(["age", "bmi", "sex"], {"depth": 9})
    assert answer() == (["age", "bmi", "sex"], 9) and CALLS == ["columns"] * 3


HELPERS = "SCALE = {scale}\ndef prep(x):\n    return x * SCALE\n"
SCRIPT = """
import helpers
from helpers import prep
from labloom import flow, task

@task(cache=True)
def features(x):
    return prep(x), helpers.prep(x)

@flow
def f():
    return features(5)

run = f.run(executor="local")
print(run.result(), run.tasks[0].state.value)
"""


def test_editing_a_helper_in_the_user_s_own_module_invalidates(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # A script beside a helpers.py of the user's (not a library): edited, the cached task
    # still returned the old answer, as only the task's own module was followed.
    import subprocess
    import sys

    (tmp_path / "flow_script.py").write_text(SCRIPT)

    def run_with(scale: int) -> str:
        (tmp_path / "helpers.py").write_text(HELPERS.format(scale=scale))
        done = subprocess.run([sys.executable, "flow_script.py"], cwd=tmp_path, env=subprocess_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert run_with(2) == "(10, 10) Completed"
    assert run_with(2) == "(10, 10) Cached"  # nothing edited: a hit
    assert run_with(3) == "(15, 15) Completed"


FROZEN = """
from labloom import flow, task
STOP = frozenset({"a", "the", "an", "of", "to", "in", "on", "at"})

@task(cache=True)
def clean(words):
    return [w for w in words if w not in STOP]

@flow
def f():
    return clean(["the", "cat"])

run = f.run(executor="local")
print(run.result(), run.tasks[0].state.value)
"""


def test_a_frozenset_constant_keys_the_same_in_every_process(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # Its repr's order follows the strings' hashes, salted per process: a cached task reading
    # STOPWORDS = frozenset({...}) never hit in a later process.
    import subprocess
    import sys

    (tmp_path / "stop.py").write_text(FROZEN)
    states = [
        subprocess.run([sys.executable, "stop.py"], cwd=tmp_path, capture_output=True, text=True,
                       env={**subprocess_env, "PYTHONHASHSEED": seed}, timeout=120,
                       ).stdout.strip().splitlines()[-1]
        for seed in ("1", "2", "3")
    ]
    assert states == ["['cat'] Completed", "['cat'] Cached", "['cat'] Cached"]


def test_a_large_result_is_saved_and_read_without_a_second_copy_in_memory(tmp_path: Path) -> None:
    # The value's pickle was made whole in memory beside the value to be written, and the
    # file read whole beside the value unpickled from it: a cached 1 GB DataFrame took 2 GB
    # on the worker that saved it and on the one that loaded it.
    import tracemalloc

    from labloom.core.result_files import load_with_calls, save_result

    size = 40_000_000
    path = str(tmp_path / "big.pkl")
    value = bytes(size)
    tracemalloc.start()
    try:
        save_result(path, value, [("metric", 1)])
        _, saving = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        del value
        loaded, calls = load_with_calls(path)
        _, loading = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(loaded) == size and calls == [("metric", 1)]
    assert saving < size / 4, f"saving took {saving / 1e6:.0f} MB more for a {size / 1e6:.0f} MB value"
    assert loading < size * 1.25, f"loading peaked at {loading / 1e6:.0f} MB"


def test_a_result_that_cannot_be_written_is_not_persisted_and_the_task_run_completes(
    labloom_home: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # A full disk, a shared folder without write access, a Dask worker on which the kernel's
    # results folder cannot be made: the task had done its work, and its run failed with the
    # OSError of writing its cache file.
    results = labloom_home / "results"
    results.mkdir(parents=True, exist_ok=True)
    for prefix in range(256):  # each key's folder is a file: no result file can be made
        (results / f"{prefix:02x}").write_text("")

    @flow
    def once() -> list[int]:
        return load(3)  # type: ignore[return-value]

    with caplog.at_level(logging.WARNING):
        run = once.run(executor="threads")
    assert run.state is State.COMPLETED, run.message
    assert run.result() == [0, 1, 2]
    assert "result not persisted" in "\n".join(line.text for line in run.logs())
