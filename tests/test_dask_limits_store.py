"""Concurrency limits kept in the store: API, CLI, and slots shared by local/thread runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import labloom
from cli_helpers import stop, wait_for
from labloom import State, flow, task
from labloom.cli import main
from labloom.store import concurrency_slots as store
from store_helpers import peak


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path))
    return tmp_path


def test_limits_persist_in_the_store(home):
    labloom.limits.set("db", 3)
    labloom.limits.set("api", 1)
    assert labloom.limits.list() == {"api": 1, "db": 3}
    code = "import labloom; print(labloom.limits.get('db'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "3"
    labloom.limits.delete("api")
    assert labloom.limits.get("api") is None
    with pytest.raises(KeyError, match="no limit for tag 'api'; limits exist for: \\['db'\\]"):
        labloom.limits.delete("api")
    with pytest.raises(ValueError, match="whole number from 1 to"):
        labloom.limits.set("db", 0)


def test_limit_cli(capsys):
    assert main(["limit", "set", "db", "2"]) == 0
    assert main(["limit", "list", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out) == [{"tag": "db", "limit": 2, "running": 0}]
    assert main(["limit", "list"]) == 0
    assert "db" in capsys.readouterr().out
    assert main(["limit", "delete", "db"]) == 0
    assert main(["limit", "delete", "db"]) == 2
    assert "no limit for tag 'db'" in capsys.readouterr().err
    assert main(["limit", "set", "db", "0"]) == 2


def test_stale_holders_of_dead_processes_are_removed():
    labloom.limits.set("db", 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    conn = store.connection()
    conn.execute(
        "INSERT INTO concurrency_slots (tag, holder, host, pid, acquired, beat) "
        "VALUES ('db', 'ghost', ?, ?, ?, ?)",
        (store._host(), dead.pid, time.time(), time.time()),
    )
    assert store.holders("db") == 1
    assert store.try_take({"db": 1}, "me")
    assert store.holders("db") == 1
    store.give_back("me")


@task(tags=["db"])
def hold(i: int) -> tuple[float, float]:
    started = time.time()
    time.sleep(0.15)
    return started, time.time()


@flow
def holders(n: int) -> list[tuple[float, float]]:
    return hold.map(range(n))



def test_thread_runs_share_slots_with_another_process(home):
    labloom.limits.set("db", 2)
    # Another process holds one of the two slots until the test lets it go (a line on its
    # stdin), and says when it gave it back: what ran meanwhile is known however slow the
    # machine. (It held for 1.5 s: a loaded machine started the runs late, and spans that
    # ended after the hold counted as "while it held".)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, labloom.store.concurrency_slots as s; s.try_take({'db': 2}, 'other');"
         "print('held', flush=True); sys.stdin.readline(); s.give_back('other');"
         "print('given back', flush=True)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        runs = [holders.run(n=6, executor="threads", background=True) for _ in range(2)]
        wait_for(lambda: sum(tr.state is State.COMPLETED for r in runs for tr in r.tasks) >= 3,
                 30, "three tasks done on the one free slot")
        released = time.time()
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "given back"
        spans = runs[0].result(30) + runs[1].result(30)
    finally:
        stop(holder)
    assert peak(spans) == 2
    # while the other process held a slot, only one task ran here at a time
    assert peak([s for s in spans if s[1] < released]) == 1
    assert store.holders("db") == 0


@task(tags=["db"])
def quick_query() -> int:
    return 1


@flow
def one_query() -> int:
    return quick_query()


KILLED_HOLDER = """
import pathlib, sys, time
from labloom import DaskExecutor, flow, task

@task(tags=["db"])
def long_query(marker, gate):
    pathlib.Path(marker).touch()  # on the worker: the lease is held
    # Killed meanwhile (the lease stays with the dead client): it runs on until the test is
    # done, not for a sleep that might end, and the lease with it, before the kill.
    deadline = time.monotonic() + 600
    while not pathlib.Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)

@flow
def holds(marker: str, gate: str):
    long_query(marker, gate)

if __name__ == "__main__":
    holds.run(marker=sys.argv[2], gate=sys.argv[3], executor=DaskExecutor(sys.argv[1]))
"""


def test_a_slot_held_on_the_dask_cluster_by_a_killed_process_is_said_while_a_run_waits(
        home, tmp_path, caplog):
    # Session 41's review: a process killed mid-task (kill -9 of the client) keeps its lease of
    # the cluster's semaphore until Dask's lease timeout (30 s by default, 15 s here); the
    # store's slot comes back at once (its process is dead), so a run started meanwhile waited
    # Pending at the cluster with nothing said anywhere. 15 s: the lease outlives the kill by
    # 12 s at least (its last refresh), for a new client to start, be granted the store's slot
    # and wait SAY_AFTER (2 s) at the cluster; 6 s left under 5, too few on a loaded machine.
    import logging

    import dask
    import distributed

    labloom.limits.set("db", 1)
    (tmp_path / "holder.py").write_text(KILLED_HOLDER)
    with dask.config.set({"distributed.scheduler.locks.lease-timeout": "15s",
                          "distributed.scheduler.locks.lease-validation-interval": "1s"}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                     protocol="tcp", dashboard_address=":0") as cluster:
        held, gate = tmp_path / "held", tmp_path / "gate"
        holder = subprocess.Popen(
            [sys.executable, str(tmp_path / "holder.py"), cluster.scheduler_address, str(held),
             str(gate)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LABLOOM_PROGRESS": "0",
                 # The client that makes the semaphore sets its lease timeout.
                 "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT": "15s"})
        try:
            wait_for(held.exists, 60, "the slot to be held")
            holder.kill()
            holder.wait(60)
            with caplog.at_level(logging.WARNING, logger="labloom"):
                run = one_query.run(executor=labloom.DaskExecutor(cluster.scheduler_address),
                                    background=True)
                said = wait_for(lambda: [line for line in run.logs("quick_query")
                                         if "concurrency limit 'db'" in line.text], 30,
                                "the wait for the slot to be said in the task run's logs")
                assert run.result(120) == 1  # once the dead client's lease expired
        finally:
            gate.touch()  # the killed process's call, in this process's worker, ends
            stop(holder)
    assert "Dask's lease timeout" in said[0].text and "lease-timeout" in said[0].text, said
    assert [r for r in caplog.records if "concurrency limit 'db'" in r.getMessage()]
