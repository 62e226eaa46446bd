"""Bad input gets a clear error naming the fix, at once."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import labloom
from labloom import flow, task, unmapped


def _f(x: Any = None) -> Any:
    return x


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"retries": -1}, ValueError, r"retries must be a whole number >= 0, got -1"),
        ({"retries": 1.5}, ValueError, r"retries must be a whole number"),
        ({"retries": 1, "retry_delay": [1, 2]}, ValueError, r"2 delays but retries=1"),
        ({"retry_delay": -3}, ValueError, r"retry_delay must be finite seconds >= 0"),
        ({"timeout": 0}, ValueError, r"timeout must be a finite number of seconds > 0"),
        ({"tags": "db"}, TypeError, r"tags must be an iterable of strings such as \['db'\]"),
        ({"tags": [1]}, TypeError, r"tags must be an iterable of non-empty strings"),
        ({"resources": {"GPU": -1}}, TypeError, r"resources must map resource names"),
        ({"resources": ["GPU"]}, TypeError, r"resources must map resource names"),
        ({"cache": "yes"}, TypeError, r"cache must be True or False"),
        ({"cache_expiration": -1}, ValueError, r"cache_expiration must be finite seconds > 0"),
        ({"log_prints": 1}, TypeError, r"log_prints must be True or False"),
        ({"retires": 2}, TypeError, r"unknown option\(s\) retires; the options are name, retries"),
        ({"name": ""}, TypeError, r"name must be a non-empty string"),
        ({"retry_on": "ConnectionError"}, TypeError,
         r"retry_on must be an exception class \(retry_on=ConnectionError\) or a tuple"),
        ({"retry_on": ConnectionError("x")}, TypeError, r"retry_on must be an exception class"),
        ({"retry_on": (ConnectionError, int)}, TypeError, r"retry_on must be an exception"),
        ({"retry_on": ()}, TypeError, r"retry_on must be an exception class"),
        ({"retry_on": lambda exc: True}, TypeError, r"retry_on must be an exception class"),
    ],
)
def test_bad_task_options(options: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        task(**options)(_f)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -1.0, 0, 0.0])
def test_a_timeout_must_be_finite_seconds(value: float) -> None:
    # NaN compares false with everything: it once passed the check and then every call failed.
    with pytest.raises(ValueError, match=r"timeout must be a finite number of seconds > 0, "
                       r"got .*; give timeout=None for no timeout"):
        task(timeout=value)(_f)
    with pytest.raises(ValueError, match=r"timeout must be a finite number"):
        task(_f).with_options(timeout=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_retry_delays_and_cache_expiration_must_be_finite(value: float) -> None:
    with pytest.raises(ValueError, match=r"retry_delay must be finite seconds >= 0"):
        task(retries=1, retry_delay=value)(_f)
    with pytest.raises(ValueError, match=r"retry_delay must hold finite seconds >= 0"):
        task(retries=2, retry_delay=[1, value])(_f)
    with pytest.raises(ValueError, match=r"cache_expiration must be finite seconds > 0"):
        task(cache=True, cache_expiration=value)(_f)


def test_async_and_generator_functions_are_refused() -> None:
    async def fetch() -> None:
        pass

    def rows() -> Any:
        yield 1

    with pytest.raises(TypeError, match=r"async function.*asyncio\.run"):
        task(fetch)
    with pytest.raises(TypeError, match=r"generator function.*return a list"):
        task(rows)
    with pytest.raises(TypeError, match=r"write @task\(name='x'\)"):
        task("x")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"@task decorates a function; got int"):
        task(3)  # type: ignore[call-overload]


@task
def double(x: int) -> int:
    return 2 * x


def test_mapping_over_a_non_iterable() -> None:
    @flow
    def f() -> object:
        return double.map(5)

    with pytest.raises(TypeError, match=r"argument 1 is a int, which is not iterable; wrap it in unmapped"):
        f()


def test_mapping_over_a_string() -> None:
    @flow
    def f() -> object:
        return double.map("abc")

    with pytest.raises(TypeError, match=r"is a string, and mapping would iterate its characters"):
        f()


def test_unequal_map_lengths_known_now() -> None:
    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow
    def f() -> object:
        return add.map([1, 2, 3], b=[1, 2])

    with pytest.raises(ValueError, match=r"argument 1 has 3 items, b= has 2 items"):
        f()


def test_unequal_map_lengths_known_later_fail_the_map() -> None:
    @task
    def items(n: int) -> list[int]:
        return list(range(n))

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow
    def f() -> object:
        return add.map(items(3), b=[1, 2])

    run = f.run()
    (placeholder,) = [tr for tr in run.tasks if tr.task.name == "add"]
    assert placeholder.state is labloom.State.FAILED
    assert "b= has 2 items" in placeholder.message
    with pytest.raises(labloom.FlowFailed):
        run.result()


def test_only_unmapped_arguments() -> None:
    @flow
    def f() -> object:
        return double.map(unmapped([1]))

    with pytest.raises(TypeError, match=r"only unmapped\(\.\.\.\) arguments"):
        f()


def test_unknown_and_missing_flow_parameters() -> None:
    @flow
    def sweep(grid: list[int], folds: int = 3) -> int:
        return len(grid)

    with pytest.raises(TypeError, match=r"flow 'sweep': .*'grid'.*parameters are grid \(required\), folds=3"):
        sweep.run()
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'fold'.*folds=3"):
        sweep.run(grid=[1], fold=2)
    assert sweep([1, 2]) == 2


def test_a_future_used_outside_its_run() -> None:
    kept: list[Any] = []

    @flow
    def first() -> int:
        future = double(1)
        kept.append(future)
        return future  # type: ignore[return-value]

    @flow
    def second() -> int:
        return double(kept[0])

    assert first() == 2
    with pytest.raises(ValueError, match=r"belongs to flow run .* pass its value, future\.result\(\)"):
        second()


def test_bad_wait_for_and_executor_and_flow_options() -> None:
    @flow
    def f() -> object:
        return double(1, wait_for=[3])

    with pytest.raises(TypeError, match=r"wait_for takes futures"):
        f()
    with pytest.raises(ValueError, match=r"unknown executor 'gpu'; use one of local, threads, dask"):
        flow(executor="gpu")(_f)
    with pytest.raises(TypeError, match=r"@flow: unknown option\(s\) retry_delay_seconds; .*"
                       r"the delay is retry_delay="):  # Prefect's spelling
        flow(retry_delay_seconds=2)(_f)


def test_a_future_has_no_truth_value() -> None:
    @flow
    def f() -> None:
        if double(1):
            pass

    with pytest.raises(TypeError, match=r"Truth of a TaskFuture is not supported.* use its value with \.result\(\)"):
        f()


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match=r"whole number from 1 to 2147483647, got 0"):
        labloom.limits.set("db", 0)
    with pytest.raises(KeyError, match=r"no limit for tag 'nope'"):
        labloom.limits.delete("nope")


def test_import_labloom_pulls_in_no_jupyter_or_dask() -> None:
    # Every public name looked up, too: ``import labloom`` alone imports neither the engine
    # nor the store (they come with the first name), so it alone would prove nothing of them.
    code = (
        "import sys, labloom\n"
        "heavy = lambda: [m for m in ('IPython', 'anywidget', 'ipywidgets', 'distributed',"
        " 'dask', 'nbformat', 'pandas') if m in sys.modules]\n"
        "alone = heavy()\n"
        "for name in labloom.__all__:\n"
        "    getattr(labloom, name)\n"
        "print(alone, heavy())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        env={"PYTHONPATH": str(__import__("pathlib").Path(labloom.__file__).parents[1]), "PATH": ""},
    )
    assert out.stdout.strip() == "[] []"


def test_public_names() -> None:
    for name in labloom.__all__:
        assert getattr(labloom, name) is not None, name
    assert {"task", "flow", "unmapped", "allow_failure", "FlowFailed", "limits",
            "StoreUnavailableError", "Secret"} <= set(labloom.__all__)
