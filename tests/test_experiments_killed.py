"""A sweep whose process is SIGKILLed mid-map keeps what it logged (issue 19: nothing already
recorded is lost), on SQLite and PostgreSQL: the children that ended show their params and
metrics, and the one killed mid-task what it had logged (its params, its curve so far), from
the real ``labloom experiments`` and ``labloom.experiments()``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import labloom
from cli_helpers import wait_for
from store_helpers import cli, env_for

SWEEP = """
import time
from labloom import ThreadExecutor, flow, log_metric, log_metrics, log_params, task

@task
def train(depth):
    log_params(depth=depth, criterion="gini")
    log_metric("loss", 1 / depth, step=0)
    if depth == 9:
        time.sleep(300)  # killed here
    log_metrics(auc=depth / 10)

@flow(executor=ThreadExecutor(max_workers=2))
def sweep():
    train.map([1, 2, 3, 4, 9])

if __name__ == "__main__":
    sweep()
"""


@pytest.fixture(autouse=True)
def rows_as_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)


def _rows(home: Path) -> list[dict[str, Any]]:
    done = cli(home, "experiments", "--flow", "sweep", "--json")
    return json.loads(done.stdout)["rows"] if done.returncode == 0 else []


def test_a_sweep_killed_mid_map_keeps_what_it_logged(store_backend: str, labloom_home: Path,
                                                      tmp_path: Path) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    proc = subprocess.Popen([sys.executable, str(script)], env=env_for(labloom_home))
    try:
        # The killed child's values go out within half a second of its call (README), though
        # it has not ended: wait until they are in the store with the others'.
        wait_for(lambda: len(_rows(labloom_home)) == 5, 60, "the five children's rows stored")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    rows = {row["params"]["depth"]: row for row in _rows(labloom_home)}
    assert sorted(rows) == [1, 2, 3, 4, 9]
    for depth in (1, 2, 3, 4):
        assert rows[depth]["state"] == "Completed" and rows[depth]["metrics"] == {
            "loss": 1 / depth, "auc": depth / 10}
    assert rows[9]["params"] == {"depth": 9, "criterion": "gini"}
    assert rows[9]["metrics"] == {"loss": 1 / 9} and rows[9]["state"] != "Completed"
    (run_id,) = {row["run_id"] for row in rows.values()}
    from_python = labloom.experiments(run=run_id, sort="depth")
    assert [(r["depth"], r.get("auc")) for r in from_python] == [
        (1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (9, None)]
