"""The chaos suite: kill what can be killed, damage what can be damaged, then read the store.

Four attacks, each on real parts (a Dask LocalCluster with worker processes, real processes
SIGKILLed, `labloom serve` SIGKILLed and replaced by two servers, a store file overwritten):
nothing finished is lost, nothing runs twice, every error is one line. The figures each attack
produces (how much had finished when it struck, what ran again) go to
test-artifacts/chaos.json, and from there to the Reliability section of benchmarks/README.md.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, slot_rows, start_labloom, stop, wait_for, write
from labloom import DaskExecutor, State, flow, task, unmapped
from labloom.store import open_store
from store_helpers import env_for

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
_figures: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def chaos_report() -> Iterator[None]:
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "chaos.json").write_text(json.dumps(_figures, indent=1))


def ledger_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def one_line_errors(out: subprocess.CompletedProcess[str]) -> bool:
    return out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


# --- 1. a Dask worker killed mid-map -------------------------------------------------------


@task
def experiment(i: int, ledger: str) -> int:
    with open(ledger, "a") as out:
        out.write(f"start {i} {os.getpid()}\n")
    time.sleep(0.2)
    with open(ledger, "a") as out:
        out.write(f"end {i} {os.getpid()}\n")
    return i * i


@flow
def experiments(n: int, ledger: str) -> list[int]:
    return experiment.map(range(n), unmapped(ledger))  # type: ignore[return-value]


def test_a_dask_worker_killed_mid_map(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    ledger = tmp_path / "ledger"
    began = time.monotonic()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  dashboard_address=":0") as cluster:
        run = experiments.run(n=40, ledger=str(ledger), executor=DaskExecutor(cluster=cluster),
                              background=True)
        wait_for(lambda: sum(1 for e in ledger_lines(ledger) if e[0] == "end") >= 8, 60,
                 "eight experiments to finish")
        finished_before = {int(e[1]) for e in ledger_lines(ledger) if e[0] == "end"}
        running = {e[2] for e in ledger_lines(ledger) if e[0] == "start"}
        victim = int(sorted(running)[0])
        os.kill(victim, signal.SIGKILL)  # a worker process, mid-task
        assert run.wait(120) is State.COMPLETED
        assert run.result() == [i * i for i in range(40)]
    elapsed = time.monotonic() - began
    ends = collections.Counter(int(e[1]) for e in ledger_lines(ledger) if e[0] == "end")
    with open_store() as store:
        tasks = store.task_runs(run.id, history=True)
    assert len(tasks) == 40 and {t.state for t in tasks} == {"Completed"}
    # Recorded once each: one task run per experiment, completed once, never twice.
    assert all([h["state"] for h in t.history].count("Completed") == 1 for t in tasks)
    assert all(ends[i] >= 1 for i in range(40))  # nothing finished was lost
    _figures["dask worker killed mid-map"] = {
        "task runs": 40, "finished before the kill": len(finished_before),
        "executed again by Dask (their worker died)": sum(n - 1 for n in ends.values()),
        "recorded Completed twice": 0, "seconds": round(elapsed, 1),
    }


# --- 2. a process SIGKILLed mid-run, then retried -------------------------------------------

STALLS = """
import os, sys, time
from labloom import flow, task

LEDGER = os.environ["CHAOS_LEDGER"]  # also in `labloom retry`, which imports this file

@task
def quick(i):
    with open(LEDGER, "a") as out:
        out.write(f"quick {i}\\n")
    return i

@task
def slow(values):
    with open(LEDGER, "a") as out:
        out.write("slow\\n")
    if not os.path.exists(LEDGER + ".fixed"):
        time.sleep(120)  # killed here the first time
    return sum(values)

@flow
def stalls():
    return slow(quick.map(range(20)))

if __name__ == "__main__":
    stalls()
"""


def completed_in_store(home: Path) -> int:
    if not (home / "labloom.db").exists():
        return 0
    conn = sqlite3.connect(home / "labloom.db", timeout=30)
    try:
        return int(conn.execute(
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Completed'").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def test_a_process_sigkilled_mid_run_then_retried(tmp_path: Path) -> None:
    script, ledger, home = tmp_path / "stalls.py", tmp_path / "ledger", tmp_path / "home"
    script.write_text(STALLS)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script)],
                            env=env_for(home, LABLOOM_RESULTS="all", CHAOS_LEDGER=str(ledger)))
    try:
        wait_for(lambda: completed_in_store(home) == 20, 60,
                 "the quick task runs recorded Completed, the slow one running")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    runs = json.loads(labloom(home, "runs", "--json", cwd=tmp_path).stdout)
    assert [(r["state"], r["origin"]) for r in runs] == [("Crashed", "script")]
    shown = json.loads(labloom(home, "show", runs[0]["id"], "--json", cwd=tmp_path).stdout)
    states = collections.Counter(t["state"] for t in shown["task_runs"])
    assert states == {"Completed": 20, "Cancelled": 1}  # every finished task run kept
    (tmp_path / "ledger.fixed").touch()
    retried = labloom(home, "retry", runs[0]["id"], cwd=tmp_path, CHAOS_LEDGER=str(ledger))
    assert retried.returncode == 0, retried.stderr
    assert "reused 20 result(s); ran 1 task run(s)" in retried.stdout
    counts = collections.Counter(ledger.read_text().splitlines())
    assert all(counts[f"quick {i}"] == 1 for i in range(20))  # nothing ran twice
    assert counts["slow"] == 2  # the one that never finished ran again
    _figures["process SIGKILLed mid-run, then `labloom retry`"] = {
        "task runs finished before the kill": 20, "kept in the store": states["Completed"],
        "ran again on retry": 1, "finished ones ran again": 0,
        "seconds": round(time.monotonic() - began, 1),
    }


# --- 3. `labloom serve` SIGKILLed mid-slot, replaced by two servers ---------------------------

JOB = """
    import os, time
    from labloom import flow, task

    @task
    def work(out):
        slot = os.environ["LABLOOM_SCHEDULED_TIME"]
        with open(out, "a") as f:
            f.write(f"start {slot} {time.time()}\\n")
        time.sleep(1.5)
        with open(out, "a") as f:
            f.write(f"end {slot} {time.time()}\\n")

    @flow
    def job(out: str):
        work(out)
"""


def test_serve_sigkilled_mid_slot_then_two_servers(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", JOB)
    out = tmp_path / "out.txt"
    added = labloom(tmp_path, "schedule", "add", "flows.py:job", "--every", "1s",
                    "-p", f"out={out}")
    assert added.returncode == 0, added.stderr
    began = time.monotonic()
    first = start_labloom(tmp_path, "serve", "--tick", "0.1")
    replacements: list[subprocess.Popen[str]] = []
    try:
        wait_for(lambda: any(r["status"] == "running" and r["run_id"]
                             for r in slot_rows(tmp_path)), 60, "a slot running its run")
        [orphan] = [r for r in slot_rows(tmp_path) if r["status"] == "running"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        replacements = [start_labloom(tmp_path, "serve", "--tick", "0.1") for _ in range(2)]
        wait_for(lambda: sum(r["status"] == "completed" for r in slot_rows(tmp_path)) >= 4, 60,
                 "four completed slots")
        for proc in replacements:
            proc.send_signal(signal.SIGTERM)
        for proc in replacements:
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    finally:
        for proc in [first, *replacements]:
            stop(proc)
    rows = slot_rows(tmp_path)
    by_slot = {r["slot_time"]: r for r in rows}
    assert (by_slot[orphan["slot_time"]]["status"], by_slot[orphan["slot_time"]]["run_id"]) == (
        "completed", orphan["run_id"])  # its run finished; the slot says so, never "lost"
    assert "lost" not in [r["status"] for r in rows]
    starts = collections.Counter(e[1] for e in ledger_lines(out) if e[0] == "start")
    assert starts and max(starts.values()) == 1  # no slot ran twice
    spans = sorted((float(s), float(e)) for s, e in _spans(out).values())
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))  # no overlap
    _figures["`labloom serve` SIGKILLed mid-slot, two servers started"] = {
        "slots run": len(starts), "slots run twice": 0, "overlapping runs": 0,
        "slots lost": 0, "the killed server's slot": "completed, with its run id",
        "seconds": round(time.monotonic() - began, 1),
    }


def _spans(out: Path) -> dict[str, tuple[str, str]]:
    begun: dict[str, str] = {}
    spans: dict[str, tuple[str, str]] = {}
    for kind, slot, when in ledger_lines(out):
        if kind == "start":
            begun[slot] = when
        elif slot in begun:
            spans[slot] = (begun[slot], when)
    return spans


# --- 4. a damaged store and an unwritable home ------------------------------------------------

SMALL = """
    from labloom import flow, task

    @task
    def one():
        return 1

    @flow
    def small():
        return one()
"""
COMMANDS = [["runs"], ["show", "x"], ["logs", "x"], ["retry", "x"], ["schedule", "list"],
            ["limit", "list"]]


def test_a_damaged_store_and_an_unwritable_home(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", SMALL)
    home = tmp_path / "home"
    assert labloom(home, "run", "flows.py:small", cwd=tmp_path).returncode == 0
    (home / "labloom.db").write_bytes(os.urandom(4096))  # overwritten with garbage
    for wal in home.glob("labloom.db-*"):
        wal.unlink()
    errors = [labloom(home, *command, cwd=tmp_path) for command in COMMANDS]
    assert all(e.returncode == 2 and one_line_errors(e) for e in errors), errors
    ran = labloom(home, "run", "flows.py:small", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert ran.returncode == 0 and ran.stderr.count("not being recorded") == 1, ran.stderr
    # The fix the message names: move the file aside; labloom starts a new store.
    (home / "labloom.db").rename(home / "labloom.db.broken")
    assert labloom(home, "run", "flows.py:small", cwd=tmp_path).returncode == 0
    assert [r["state"] for r in json.loads(labloom(home, "runs", "--json").stdout)] == [
        "Completed"]

    (tmp_path / "afile").write_text("")
    nowhere = tmp_path / "afile" / "home"  # cannot be made, even by root
    home_errors = [labloom(nowhere, *command, cwd=tmp_path) for command in COMMANDS]
    assert all(e.returncode == 2 and one_line_errors(e) for e in home_errors), home_errors
    ran = labloom(nowhere, "run", "flows.py:small", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert ran.returncode == 0 and ran.stderr.count("not being recorded") == 1, ran.stderr
    _figures["damaged store file, home that cannot be made"] = {
        "commands tried": 2 * len(COMMANDS), "one-line errors with status 2": 2 * len(COMMANDS),
        "tracebacks": 0, "flows that still ran (with one warning)": 2,
    }
