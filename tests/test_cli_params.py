"""`--param` values are checked against the flow's annotations before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import labloom, write

FLOW = """
    import datetime, json, sys
    from typing import Literal
    from labloom import flow, task

    @task
    def record(values):
        with open("got.json", "w") as f:
            json.dump(values, f)

    @flow(executor="dask")
    def sweep(size: int, rate: float = 0.5, name: str = "x", flags: list[int] | None = None,
              day: datetime.date | None = None, mode: Literal["fast", "slow"] = "fast"):
        record({"size": [size, type(size).__name__], "rate": [rate, type(rate).__name__],
                "name": [name, type(name).__name__], "flags": flags, "mode": mode,
                "day": [str(day), type(day).__name__]})
"""


def test_a_value_that_does_not_fit_is_a_usage_error_before_anything_starts(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    for given, said in [
        ("size=abc", "--param size=abc: flow 'sweep' takes size: int, and 'abc' is not one"),
        ("size=1.5", "takes size: int"),
        ("size=true", "takes size: int"),
        ("flags=[1,\"x\"]", "takes flags: list[int] | None"),
        ("day=soon", "takes day: datetime.date | None"),
        ("mode=medium", "takes mode: Literal['fast', 'slow']"),
    ]:
        args = ["-p", given] + ([] if given.startswith("size") else ["-p", "size=3"])
        out = labloom(tmp_path, "run", "flows.py:sweep", *args)
        assert out.returncode == 2, (given, out.stderr)
        assert out.stderr.startswith("labloom: error: ") and said in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1, out.stderr
    # Nothing started: no Dask cluster, no run recorded.
    assert json.loads(labloom(tmp_path, "runs", "--json").stdout) == []


def test_values_that_fit_reach_the_flow_as_their_types(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = labloom(tmp_path, "run", "flows.py:sweep", "--executor", "local", "-p", "size=3",
                  "-p", "rate=1", "-p", "name=123", "-p", "flags=[1,2]",
                  "-p", "day=2026-12-02", "-p", "mode=slow", LABLOOM_PROGRESS="0")
    assert out.returncode == 0, out.stderr
    got = json.loads((tmp_path / "got.json").read_text())
    assert got == {"size": [3, "int"], "rate": [1.0, "float"], "name": ["123", "str"],
                   "flags": [1, 2], "mode": "slow", "day": ["2026-12-02", "date"]}


NOTEBOOK_CELLS = [
    "import json\nfrom typing import Literal\n\nfrom labloom import task",
    'tables = ["Orders"]\nlimit = 3\nday = "2024-01-01"\nfull = False\n'
    'mode: Literal["fast", "slow"] = "fast"',
    "@task\ndef record(values):\n    with open('got.json', 'w') as f:\n"
    "        json.dump(values, f)",
    "%%flow etl -p tables -p limit -p day -p full -p mode\n"
    "record({'tables': tables, 'limit': limit, 'day': day, 'full': full, 'mode': mode})",
]


def _notebook(folder: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    path = folder / "orders.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in NOTEBOOK_CELLS]), path)
    return path


def test_an_exported_notebooks_parameters_are_typed_from_its_defaults(tmp_path: Path) -> None:
    # Before, the exported flow's parameters had no types: `-p tables=Orders` for a list passed
    # the check, a run started, and its flow body failed on the string.
    _notebook(tmp_path)
    exported = labloom(tmp_path, "export", "orders.ipynb")
    assert exported.returncode == 0, exported.stderr
    assert ("def etl(tables: list = ['Orders'], limit: int = 3, day: str = '2024-01-01', "
            "full: bool = False, mode: Literal['fast', 'slow'] = 'fast'):"
            ) in (tmp_path / "orders.py").read_text()
    for command, given, said in [
        (["run", "orders.py:etl"], "tables=Orders",
         """--param tables=Orders: flow 'etl' takes tables: list, and 'Orders' is not one """
         """(e.g. -p 'tables=["Orders"]')"""),
        (["run", "orders.ipynb:etl"], "limit=many", "takes limit: int, and 'many' is not one "
         "(e.g. -p limit=3)"),
        (["run", "orders.ipynb"], "full=yes", "takes full: bool"),
        # the notebook's own annotation, its import kept for it
        (["run", "orders.ipynb"], "mode=medium", "takes mode: Literal['fast', 'slow']"),
        (["schedule", "add", "orders.ipynb:etl", "--every", "1d"], "tables=Orders",
         "takes tables: list"),
    ]:
        out = labloom(tmp_path, *command, "-p", given, "--executor", "local")
        assert out.returncode == 2, (given, out.stderr)
        assert out.stderr.startswith("labloom: error: ") and said in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1, out.stderr
    assert json.loads(labloom(tmp_path, "runs", "--json").stdout) == []
    assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []

    out = labloom(tmp_path, "run", "orders.ipynb", "--executor", "local",
                  "-p", 'tables=["Orders", "Items"]', "-p", "limit=5", "-p", "day=2025",
                  "-p", "full=true", "-p", "mode=slow", LABLOOM_PROGRESS="0")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "got.json").read_text()) == {
        "tables": ["Orders", "Items"], "limit": 5, "day": "2025", "full": True, "mode": "slow"}
