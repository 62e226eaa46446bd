"""`labloom cancel` of several runs and `labloom delete` over several batches whose store
server goes away at a later change and stays away past the connection wait: the error says
what became of each run, not only of the change that was cut. Before, a cancel of three said
"the change may or may not have been made" without naming the run, nor that the first was
asked and the third was not; a delete of 60 runs (two transactions of 50 and 10) said the same
of the second, though the first 50 were gone. The proxy lets the first change through
(``skip=1``) and cuts the second's COMMIT (tests/pg_commit_cut.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, labloom, wait_for
from pg_commit_cut import cut_database

_WAIT = "1"  # LABLOOM_DB_CONNECT_TIMEOUT: the server stays away longer than that

HELD = """
import os, sys, time
from pathlib import Path
from labloom import flow, task

@task
def hold(stop: str, i: int) -> int:
    Path(f"{stop}.{i}").touch()
    while not Path(stop).exists():
        time.sleep(0.05)
    return i

@flow
def nightly(stop: str, i: int) -> int:
    return hold(stop, i)

runs = [nightly.run(stop=sys.argv[1], i=i, executor="threads", background=True)
        for i in range(3)]
for run in runs:
    run.wait()
print(" ".join(f"{run.id}={run.state.value}" for run in runs), flush=True)
os._exit(0)
"""

MANY = """
from labloom import flow, task

@task
def work(i: int) -> int:
    return i

@flow(executor="local")
def job(i: int) -> int:
    return work(i)

for i in range(60):
    job.run(i=i)
"""


def test_a_cancel_of_several_runs_says_which_were_asked(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1,
                      writes=(b"INTO cancel_requests ",)) as proxy:
        (tmp_path / "held.py").write_text(HELD)
        stop = tmp_path / "stop"
        proc = subprocess.Popen([sys.executable, str(tmp_path / "held.py"), str(stop)],
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=cli_env(tmp_path))
        try:
            wait_for(lambda: all(Path(f"{stop}.{i}").exists() for i in range(3)), 60,
                     "the three runs' tasks")
            runs = json.loads(labloom(tmp_path, "runs", "--json").stdout)
            first, second, third = sorted(runs, key=lambda r: r["parameters"]["i"])
            ids = [first["id"], second["id"], third["id"]]
            proxy.armed.set()
            done = labloom(tmp_path, "cancel", *ids, LABLOOM_DB_CONNECT_TIMEOUT=_WAIT)
            assert proxy.cut.is_set() and proxy.down.is_set()
            assert done.returncode == 4, (done.stdout, done.stderr)
            err = " ".join(done.stderr.split())
            assert f"cancel of run {ids[1]}: the change may or may not have been made" in err, err
            assert f"cancel requested before it of run(s) {ids[0]};" in err, err
            assert (f"not asked of run(s) {ids[2]} (`labloom cancel {ids[2]}` once the server "
                    "is back)") in err, err
            assert "`labloom runs` tells" in err, err
            proxy.down.clear()  # back: the first two are cancelled, the third never asked
            wait_for(lambda: _states(tmp_path, ids)[:2] == ["Cancelled"] * 2, 60,
                     "the asked runs cancelled")
            stop.touch()
            out, _ = proc.communicate(timeout=120)
            assert out.split() == [f"{ids[0]}=Cancelled", f"{ids[1]}=Cancelled",
                                   f"{ids[2]}=Completed"], out
        finally:
            proc.kill()
            proc.communicate()


def _states(home: Path, ids: list[str]) -> list[str]:
    listed = labloom(home, "runs", "--json")
    by_id = {r["id"]: r["state"] for r in json.loads(listed.stdout or "[]")}
    return [by_id.get(run_id, "") for run_id in ids]


def test_a_delete_over_several_batches_lists_those_deleted(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1,
                      writes=(b"INTO deleted_runs ",)) as proxy:
        (tmp_path / "many.py").write_text(MANY)
        made = subprocess.run([sys.executable, str(tmp_path / "many.py")], text=True,
                              capture_output=True, env=cli_env(tmp_path), timeout=120)
        assert made.returncode == 0, made.stderr
        runs = json.loads(labloom(tmp_path, "runs", "--json", "--limit", "100").stdout)
        ids = [r["id"] for r in runs]
        assert len(ids) == 60
        proxy.armed.set()
        done = labloom(tmp_path, "delete", *ids, LABLOOM_DB_CONNECT_TIMEOUT=_WAIT)
        assert proxy.cut.is_set() and proxy.down.is_set()
        assert done.returncode == 4, (done.stdout, done.stderr)
        err = " ".join(done.stderr.split())
        first, second = ids[:50], ids[50:]
        assert ("deleted before the store's server went away: 50 run(s) ("
                + ", ".join(first[:20]) + " and 30 more); of the next 10 ("
                + ", ".join(second[:3]) + " and 7 more), the change may or may not have been "
                "made") in err, err
        assert "`labloom runs` tells" in err, err
        proxy.down.clear()
        left = json.loads(labloom(tmp_path, "runs", "--json", "--limit", "100").stdout)
        assert not {r["id"] for r in left} & set(first), left  # what it said was deleted is
