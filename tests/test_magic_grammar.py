"""One magic-line grammar (``export/magic_grammar.py``) for the kernel and the exporter: a cell
using every option of ``%%tasks`` and ``%%flow`` runs in IPython and exports to a module that
says the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labloom import MagicArgsError, Task
from labloom.export.exporter import export_notebook
from labloom.export.magic_grammar import parse_flow_line, parse_tasks_line
from test_export import write_notebook

TASKS_LINE = "--retries 2 --retry-delay 1,5 --tags db,io --timeout 30 --cache"
FLOW_LINE = "every -p grid,n -p seed --executor dask --address tcp://127.0.0.1:8786 " \
            "--background --no-widget"
TASKS_CELL = f"%%tasks {TASKS_LINE}\ndef load(g):\n    return g * 2"
FLOW_CELL = f"%%flow {FLOW_LINE}\nvalues = load.map(grid)"


def test_the_kernel_takes_every_tasks_option(ip: Any) -> None:
    ip.run_cell_magic("tasks", TASKS_LINE, "def load(g):\n    return g * 2")
    load = ip.user_ns["load"]
    assert isinstance(load, Task)
    assert (load.retries, load.retry_delay, load.tags, load.timeout, load.cache) == (
        2, [1.0, 5.0], frozenset({"db", "io"}), 30.0, True
    )


def test_the_exporter_takes_every_option_of_both(tmp_path: Path) -> None:
    cells = ["%load_ext labloom", "grid = [1, 2]\nn = 3\nseed = 7", TASKS_CELL, FLOW_CELL]
    report = export_notebook(write_notebook(tmp_path, cells), check=False)
    source = report.path.read_text()
    assert '@task(retries=2, retry_delay=[1, 5], tags=["db", "io"], timeout=30, cache=True)' \
        in source
    assert '@flow(name="every", executor=DaskExecutor(address="tcp://127.0.0.1:8786"))' in source
    assert "def every(grid: list = [1, 2], n: int = 3, seed: int = 7):" in source


def test_both_sides_parse_with_the_same_functions() -> None:
    tasks = parse_tasks_line(TASKS_LINE)
    assert tasks.task_kwargs() == {
        "retries": 2, "retry_delay": [1, 5], "tags": ["db", "io"], "timeout": 30, "cache": True
    }
    flow = parse_flow_line(FLOW_LINE)
    assert (flow.name, flow.params, flow.executor, flow.address, flow.background, flow.widget) \
        == ("every", ("grid", "n", "seed"), "dask", "tcp://127.0.0.1:8786", True, False)


@pytest.mark.parametrize(("line", "match"), [
    ("--timeout 0", "more than 0, such as 600"),
    ("--timeout nan", "finite number of seconds, more than 0"),
    ("--timeout inf", "finite number of seconds, more than 0"),
    ("--timeout -5", "finite number of seconds, more than 0"),
    ("--retry-delay nan", "delays must be finite seconds >= 0"),
    ("--retry-delay 1,inf", "delays must be finite seconds >= 0"),
    ("--retries -1", "cannot be negative"),
    ("--retry-delay soon", "not a number of seconds"),
    ("--bogus", "unrecognized arguments"),
])
def test_bad_tasks_lines_fail_the_same_way_in_the_kernel(ip: Any, line: str, match: str) -> None:
    with pytest.raises(MagicArgsError, match=match):
        ip.run_cell_magic("tasks", line, "def f():\n    return 1")


RETRY_ON_CELL = """import socket

def flaky(marks):
    marks.calls += 1  # an object of the notebook's (a list argument is copied at the call)
    if marks.calls < 3:
        raise socket.timeout("slow server")
    return marks.calls

def buggy(marks):
    marks.calls += 1
    raise KeyError("a bug")
"""


def test_retry_on_retries_only_the_named_classes_in_the_kernel(ip: Any) -> None:
    ip.run_cell_magic("tasks", "--retries 3 --retry-on ConnectionError,socket.timeout",
                      RETRY_ON_CELL)
    import socket
    assert ip.user_ns["flaky"].retry_on == (ConnectionError, socket.timeout)
    assert ip.user_ns["buggy"].retry_on == (ConnectionError, socket.timeout)
    ip.run_cell("from types import SimpleNamespace as Marks\n"
                "flaky_marks, buggy_marks = Marks(calls=0), Marks(calls=0)")
    result = ip.run_cell("%%flow both\nok = flaky(flaky_marks)\nbad = buggy(buggy_marks)")
    assert ip.user_ns["flaky_marks"].calls == 3  # retried twice, then it worked
    assert ip.user_ns["buggy_marks"].calls == 1  # a KeyError is not retried
    run = result.error_in_exec.run  # FlowFailed: buggy failed
    states = {t.name: (t.state.value, t.attempts) for t in run.tasks}
    assert states == {"flaky": ("Completed", 3), "buggy": ("Failed", 1)}
    assert [line.text for line in run.logs("buggy")] == [
        "[labloom] attempt 1 of 4 failed, not retried: KeyError is not among retry_on "
        "(ConnectionError, TimeoutError)"]  # socket.timeout is TimeoutError


@pytest.mark.parametrize(("line", "match"), [
    ("--retry-on Nowhere", r"--retry-on Nowhere: no such name in the notebook; import it"),
    ("--retry-on socket.nowhere", r"--retry-on socket.nowhere: no such name"),
    ("--retry-on socket", r"--retry-on socket is module .* not an exception class"),
    ("--retry-on 3x", r"'3x' is not the name of an exception class"),
    ("--retry-on ,", r"name one exception class or more"),
])
def test_bad_retry_on_names_the_fix(ip: Any, line: str, match: str) -> None:
    with pytest.raises(MagicArgsError, match=match):
        ip.run_cell_magic("tasks", line, "import socket\ndef f():\n    return 1")


def test_the_exporter_writes_retry_on_and_keeps_its_import(tmp_path: Path) -> None:
    cells = ["%load_ext labloom", "import socket\nimport os\nfrom types import SimpleNamespace",
             "%%tasks --retries 2 --retry-on socket.timeout\n" + RETRY_ON_CELL.split("\n", 1)[1],
             "%%tasks --retry-on ConnectionError,socket.timeout\ndef other():\n    return 1",
             "%%flow nightly\nvalue = flaky(SimpleNamespace(calls=0))"]
    report = export_notebook(write_notebook(tmp_path, cells), check=False)
    source = report.path.read_text()
    assert "@task(retries=2, retry_on=socket.timeout)\ndef flaky(marks):" in source
    assert "@task(retry_on=(ConnectionError, socket.timeout))\ndef other():" in source
    assert "import socket\n" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, str(report.path), "exec"), namespace)
    import socket
    assert namespace["flaky"].retry_on == socket.timeout
    assert namespace["nightly"]() == {"value": 3}
