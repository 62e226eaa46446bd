"""Concurrency limits across processes (issue 10, item 11), on both backends: one limit for every
run on the store whatever the executor, slots granted in arrival order so a busy process cannot
starve another, and holders on other hosts told apart by their heartbeat."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import labloom
from labloom.store import concurrency_slots as store
from store_helpers import env_for, peak

WORKER = """
import json, os, sys, time
from labloom import flow, task
from labloom import DaskExecutor

out, executor, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
gate = sys.argv[5] if len(sys.argv) > 5 else None  # the first link holds its slot till it exists

@task(tags=["db"])
def hold(i):
    started = time.time()
    time.sleep(seconds)
    return started, time.time()

@task(tags=["db"])
def chained(i, previous):
    started = time.time()
    time.sleep(seconds)
    deadline = time.monotonic() + 120
    while i == 0 and gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    return started, time.time()

@flow
def many(n):
    return hold.map(range(n))

@flow
def chain(n):
    spans, previous = [], None
    for i in range(n):  # each link asks for its slot only when the previous one ended
        previous = chained(i, previous)
        spans.append(previous)
    return spans

if executor == "dask":
    chosen = DaskExecutor(n_workers=1, threads_per_worker=4, processes=False,
                          dashboard_address=":0")
else:
    chosen = executor
which = chain if executor == "chain" else many
spans = which.run(n=count, executor="threads" if executor == "chain" else chosen).result(120)
with open(out, "w") as handle:
    json.dump(spans, handle)
"""



def start(home: Path, tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / f"{name}.json"
    proc = subprocess.Popen([sys.executable, str(script), str(out), *args],
                            env=env_for(home, LABLOOM_HOST=name), text=True,
                            stderr=subprocess.PIPE)
    return proc, out


def finish(proc: subprocess.Popen[str], out: Path) -> list[list[float]]:
    import json

    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_waiters_are_served_in_arrival_order_across_processes(labloom_home: Path) -> None:
    labloom.limits.set("db", 1)
    assert store.try_take({"db": 1}, "first")
    other = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, labloom.store.concurrency_slots as s\n"
         "assert not s.try_take({'db': 1}, 'second', queue=True)\n"
         "print('queued', flush=True)\n"
         "while not s.try_take({'db': 1}, 'second', queue=True): time.sleep(0.05)\n"
         "print('granted', flush=True); sys.stdin.readline(); s.give_back('second')"],
        env=env_for(labloom_home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "queued"
        assert not store.try_take({"db": 1}, "third", queue=True)  # arrives after "second"
        store.give_back("first")
        # The slot is free, but "second" arrived first: "third" may not take it.
        for _ in range(20):
            assert not store.try_take({"db": 1}, "third", queue=True)
        assert other.stdout.readline().strip() == "granted"
        assert not store.try_take({"db": 1}, "third", queue=True)
        assert other.stdin is not None
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.wait(30) == 0
        assert store.try_take({"db": 1}, "third", queue=True)
        assert store.waiting("db") == 0
    finally:
        if other.poll() is None:
            other.kill()
        store.give_back("third")


def test_a_busy_process_cannot_starve_another(labloom_home: Path, tmp_path: Path) -> None:
    """A chain of tagged tasks asks for the slot again right after giving it back; another
    process's task that arrived meanwhile goes first.

    The chain's first link holds the slot until the other process stands in line (a file the
    test writes once the store shows the waiter), so "meanwhile" does not depend on how fast
    that process starts on a loaded machine."""
    labloom.limits.set("db", 1)
    gate = tmp_path / "late-is-waiting"
    busy, busy_out = start(labloom_home, tmp_path, "busy", "chain", "6", "0.4", str(gate))
    deadline = time.monotonic() + 60
    while store.holders("db") == 0:  # the chain's first link holds the slot
        assert time.monotonic() < deadline and busy.poll() is None
        time.sleep(0.05)
    late, late_out = start(labloom_home, tmp_path, "late", "threads", "1", "0.1")
    deadline = time.monotonic() + 120
    while store.waiting("db") == 0:  # the late task stands in line behind the first link
        assert time.monotonic() < deadline and late.poll() is None and busy.poll() is None
        time.sleep(0.05)
    gate.write_text("")
    busy_spans, [late_span] = finish(busy, busy_out), finish(late, late_out)
    assert peak([*busy_spans, late_span]) == 1
    # It ran right after the link it waited behind: before the chain's next link asked again.
    assert busy_spans[0][1] <= late_span[0] < busy_spans[1][0]


@pytest.mark.timeout(240)
def test_two_processes_on_their_own_dask_clusters_share_one_limit(
    labloom_home: Path, tmp_path: Path
) -> None:
    labloom.limits.set("db", 2)
    first, first_out = start(labloom_home, tmp_path, "one", "dask", "5", "0.3")
    second, second_out = start(labloom_home, tmp_path, "two", "dask", "5", "0.3")
    spans = finish(first, first_out) + finish(second, second_out)
    assert len(spans) == 10
    assert peak(spans) == 2
    assert store.holders("db") == 0 and store.waiting("db") == 0


def test_a_holder_on_another_host_is_freed_when_its_heartbeat_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labloom.limits.set("db", 1)
    # Generous: the holder must still count as alive at the first look, however slow the
    # machine; its stopped heartbeat is then set far in the past, not waited for.
    monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "60")
    conn = store.connection()
    now = time.time()
    conn.execute(
        "INSERT INTO concurrency_slots (tag, holder, host, pid, acquired, beat) "
        "VALUES ('db', 'remote', 'another-host', 1, ?, ?)", (now, now),
    )
    assert not store.try_take({"db": 1}, "here")  # alive: its pid means nothing here
    conn.execute("UPDATE concurrency_slots SET beat = ? WHERE holder = 'remote'", (now - 300,))
    assert store.try_take({"db": 1}, "here")  # its heartbeat stopped: the slot is freed
    assert store.holders("db") == 1
    store.give_back("here")



LAZY = """
import json, sys, threading, time
import labloom
from labloom import ThreadExecutor, flow, task

running, most, lock = [0], [0], threading.Lock()

def hold(i):
    with lock:
        running[0] += 1
        most[0] = max(most[0], running[0])
    time.sleep(0.05)
    with lock:
        running[0] -= 1
    return i

plain, tagged = task(hold, name="plain"), task(hold, name="tagged", tags=["db"])

@flow
def untagged():
    plain.map(range(4))

@flow
def limited():
    tagged.map(range(4))

untagged.run(executor=ThreadExecutor(4)).wait()
before = "labloom.store.concurrency_limiter" in sys.modules
most[0] = 0
labloom.limits.set("db", 1)
run = limited.run(executor=ThreadExecutor(4))
run.wait()
print(json.dumps({"before": before, "most": most[0], "state": run.state.value,
                  "after": "labloom.store.concurrency_limiter" in sys.modules}))
"""


def test_the_store_limiter_is_loaded_by_the_first_tagged_task_run(labloom_home: Path) -> None:
    # An untagged run passes the limiter without a slot, so it never imports the store's
    # limiter (0.2 ms of a fresh process's first run); a tagged run is limited through it.
    out = subprocess.run([sys.executable, "-c", LAZY], env=env_for(labloom_home),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"before": False, "most": 1, "state": "Completed", "after": True}
