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
    assert "def every(grid=[1, 2], n=3, seed=7):" in source


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
