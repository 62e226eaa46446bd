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
