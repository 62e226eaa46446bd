"""Where the test suite's time goes: each test's start and end (setup to teardown), per
pytest-xdist worker, then the workers' busy time and the longest modules and tests.

Load it as a pytest plugin, then read what it wrote::

    rm -rf /tmp/suite-timeline
    PYTHONPATH=benchmarks python3 -m pytest -p suite_timeline -q          # add -n 2 to compare
    python3 benchmarks/suite_timeline.py                                  # the summary

``SUITE_TIMELINE`` names another folder than /tmp/suite-timeline."""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(os.environ.get("SUITE_TIMELINE", "/tmp/suite-timeline"))
_out: Any = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Iterator[None]:
    global _out
    if _out is None:  # one file a worker: no two processes write one file
        FOLDER.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _out = (FOLDER / f"times-{worker}.jsonl").open("a", buffering=1)
    started = time.time()
    yield
    _out.write(json.dumps({"id": item.nodeid, "t0": started, "t1": time.time()}) + "\n")


def summary(folder: Path, top: int) -> None:
    rows: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("times-*.jsonl")):
        rows[path.stem.removeprefix("times-")] = [json.loads(line) for line in path.open()]
    if not rows:
        sys.exit(f"no times in {folder}: run pytest with -p suite_timeline first")
    start = min(r["t0"] for runs in rows.values() for r in runs)
    by_module: dict[str, float] = collections.defaultdict(float)
    for worker, runs in rows.items():
        busy = sum(r["t1"] - r["t0"] for r in runs)
        end = max(r["t1"] for r in runs) - start
        print(f"{worker}: {len(runs)} tests, busy {busy:.0f} s, ended at {end:.0f} s")
        for r in runs:
            by_module[r["id"].split("::")[0]] += r["t1"] - r["t0"]
    print(f"tests' own time, all workers: {sum(by_module.values()):.0f} s\n")
    for module, spent in sorted(by_module.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{spent:7.1f} s  {module}")
    print()
    tests = sorted((r for runs in rows.values() for r in runs), key=lambda r: r["t0"] - r["t1"])
    for r in tests[:top]:
        print(f"{r['t1'] - r['t0']:7.1f} s  {r['id']}")


if __name__ == "__main__":
    summary(FOLDER, top=int(sys.argv[1]) if len(sys.argv) > 1 else 30)
