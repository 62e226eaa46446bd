"""What the store records, and that it survives crashes and concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labloom import State, ThreadExecutor, flow, task
from labloom.store import open_store
from store_helpers import cli, env_for, wide


@task(retries=1)
def flaky(x: int) -> int:
    print(f"working on {x}")
    if x == 2:
        raise ValueError("two is not allowed")
    return x


@task
def total(values: list[int]) -> int:
    return sum(values)


@flow
def sweep(n: int, label: str = "a") -> int:
    return total(flaky.map(range(n)))  # type: ignore[return-value]


def test_runs_task_runs_states_and_logs_are_recorded() -> None:
    run = sweep.run(n=3, label="exp")
    assert run.state is State.FAILED
    with open_store() as store:
        [record] = store.list_runs()
        assert record.id == run.id and record.flow_name == "sweep"
        assert record.state == "Failed" and "did not succeed" in record.message
        assert record.parameters == {"n": 3, "label": "exp"}
        assert record.origin == "script" and record.host and record.pid == os.getpid()
        assert record.source_hash == sweep.source_hash
        assert record.target is not None and record.target["file"] == __file__
        assert record.counts == {"Completed": 2, "Failed": 1, "UpstreamFailed": 1}
        tasks = {t.name: t for t in store.task_runs(run.id, history=True)}
        bad = tasks["flaky[2]"]
        assert bad.state == "Failed" and bad.attempts == 2 and "two is not allowed" in bad.message
        assert "ValueError" in bad.traceback
        assert [h["state"] for h in bad.history] == [
            "Pending", "Running", "Retrying", "Running", "Failed"
        ]
        assert tasks["total"].state == "UpstreamFailed"
        assert tasks["total"].upstream == []  # a map is a node, not task-run edges
        assert tasks["flaky[0]"].duration is not None
        lines, cuts = store.logs(run.id, "flaky[1]")
        assert [line.text for line in lines] == ["working on 1"] and cuts == []
        assert store.get_run(run.id[:6]) is not None  # a unique prefix is enough
        assert store.get_run("nope") is None


@task
def chatty(n: int) -> None:
    for i in range(n):
        print(f"line {i}")


@flow
def talk(n: int) -> None:
    chatty(n)


def test_log_lines_are_capped_per_task_run_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABLOOM_LOG_LINES", "10")
    run = talk.run(n=25)
    with open_store() as store:
        lines, [cut] = store.logs(run.id)
    assert [line.text for line in lines] == [f"line {i}" for i in range(10)]
    assert (cut.task, cut.kept, cut.cut) == ("chatty", 10, 15)


def test_the_note_counts_lines_past_the_engines_own_cap(tmp_path: Path) -> None:
    # The engine keeps 10,000 lines per task run in memory and only counts the rest; the note
    # must count those too (it said "9000 more" after a million lines).
    run = talk.run(n=25_000, executor="local")
    with open_store() as store:
        lines, [cut] = store.logs(run.id)
    assert len(lines) == 1000 and (cut.kept, cut.cut) == (1000, 24_000)
    shown = cli(Path(os.environ["LABLOOM_HOME"]), "logs", run.id)
    assert "chatty: 24000 more line(s) not stored" in shown.stdout


def test_ten_thousand_task_runs_are_all_written() -> None:
    run = wide.run(n=10_000, executor=ThreadExecutor(8))
    with open_store() as store:
        assert store.get_run(run.id).counts == {"Completed": 10_000}  # type: ignore[union-attr]


SLOW_FLOW = """
import time
from labloom import flow, task

@task
def quick(x):
    return x

@task
def slow(values):
    time.sleep(60)

@flow
def stalls():
    slow(quick.map(range(3)))

if __name__ == "__main__":
    stalls()
"""


def test_sigkill_mid_run_marks_it_crashed_and_keeps_finished_task_runs(tmp_path: Path) -> None:
    script = tmp_path / "stalls.py"
    script.write_text(SLOW_FLOW)
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, str(script)], env=env_for(home))
    os.environ["LABLOOM_HOME"] = str(home)  # read that store (the fixture restores it)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the slow task never started"
            with open_store() as store:
                runs = store.list_runs()
                tasks = store.task_runs(runs[0].id) if runs else []
            if any(t.name == "slow" and t.state == "Running" for t in tasks):
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open_store() as store:
        [run] = store.list_runs()
        assert run.state == "Crashed" and f"pid {proc.pid}" in run.message
        tasks = {t.name: t for t in store.task_runs(run.id)}
    assert [tasks[f"quick[{i}]"].state for i in range(3)] == ["Completed"] * 3
    assert tasks["slow"].state == "Cancelled" and "died" in tasks["slow"].message
    # Its end is when it was last seen alive, not when it stopped: said so, not "took".
    shown = cli(home, "show", run.id).stdout
    assert "last seen alive" in shown and "took" not in shown


MANY_FLOW = """
import sys
from labloom import flow, task

@task
def step(x):
    print("step", x)
    return x

@flow
def many(n, tag):
    return step.map(range(n))

if __name__ == "__main__":
    for _ in range(5):
        many.run(n=200, tag=sys.argv[1])
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text(textwrap.dedent(MANY_FLOW))
    home = tmp_path / "home"
    procs = [
        subprocess.Popen([sys.executable, str(script), tag], env=env_for(home))
        for tag in ("one", "two")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    os.environ["LABLOOM_HOME"] = str(home)
    with open_store() as store:
        runs = store.list_runs(limit=None)
        assert len(runs) == 10
        assert sorted(r.parameters["tag"] for r in runs) == ["one"] * 5 + ["two"] * 5
        assert all(r.state == "Completed" and r.counts == {"Completed": 200} for r in runs)
        for r in runs:
            lines, _ = store.logs(r.id)
            assert len(lines) == 200


def test_a_long_lock_by_another_process_delays_writes_but_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock longer than SQLite's busy timeout (or a
    PostgreSQL table lock) must not make the store stop recording: the writer waits it out and
    writes everything."""
    import threading
    import time

    from labloom import flow, task
    from labloom.store import writer
    from labloom.store.db import get_database

    monkeypatch.setattr(writer, "BUSY_TIMEOUT", 0.05)  # SQLite gives up at once: we retry
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))

    @task
    def step(x: int) -> int:
        time.sleep(0.01)
        return x

    @flow
    def locked(n: int) -> object:
        return step.map(range(n))

    locked.run(n=2)  # creates the store
    blocker = get_database().connect()
    blocker.execute("BEGIN IMMEDIATE" if blocker.kind == "sqlite" else "BEGIN")
    if blocker.kind == "postgresql":  # another session's long lock on the runs
        blocker.execute("LOCK TABLE flow_runs, task_runs IN EXCLUSIVE MODE")
    release = threading.Timer(0.6, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        run = locked.run(n=50)
    finally:
        release.join()
        blocker.close()
    with open_store() as store:
        record = store.get_run(run.id)
        assert record.state == "Completed"
        assert record.counts == {"Completed": 50}


def test_a_run_in_a_new_store_connects_once(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    # A run's fixed costs in a new LABLOOM_HOME (issue 21): the connection that checks the
    # store at the run's start is the one the writer writes with. Closing it, the file's last
    # connection, cost a checkpoint and a sync, then the writer connected again.
    from labloom.store import db as store_db
    from labloom.store import home

    made: list[object] = []
    real = store_db.Database._raw

    def counted(self: store_db.Database, timeout: float) -> object:
        made.append(real(self, timeout))
        return made[-1]

    monkeypatch.setattr(store_db.Database, "_raw", counted)
    run = wide.run(n=20, executor=ThreadExecutor(2))
    assert run.state is State.COMPLETED
    assert len(made) == 1
    assert len(open_store().task_runs(run.id)) == 20
    # A new file goes to WAL without syncing; its connections then sync as usual (NORMAL).
    conn = home.connect(tmp_path / "new.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_run_that_follows_another_makes_no_connection_of_its_own(
        monkeypatch: pytest.MonkeyPatch, store_backend: str) -> None:
    # The writer's thread still holds the connection that wrote the last run to this very
    # file: the next run's start needs none to check the store (issue 21 §2: 0.4 ms a run).
    # Its record is the one made after a check; a store file gone since is checked again.
    import threading

    from labloom.store import db as store_db
    from labloom.store import writer as store_writer
    from labloom.store.writer_registry import writer_for

    if store_backend == "postgresql":  # no file to know again: every run's start checks it
        first = wide.run(n=20, executor=ThreadExecutor(2))
        database = store_db.get_database()
        assert first.state is State.COMPLETED and database.file_id() is None
        assert not writer_for(database).writing_to(database.file_id())
        return

    made: list[str] = []  # by the caller's thread (the cancel watcher polls on its own)
    real = store_db.Database._raw

    def counted(self: store_db.Database, timeout: float) -> object:
        if threading.current_thread() is threading.main_thread():
            made.append(str(self.path))
        return real(self, timeout)

    monkeypatch.setattr(store_db.Database, "_raw", counted)
    # The writer's thread ends after _IDLE_EXIT seconds idle: a loaded machine must not make
    # the following run start after that (it would rightly check the store again).
    monkeypatch.setattr(store_writer, "_IDLE_EXIT", 60.0)
    first = wide.run(n=20, executor=ThreadExecutor(2))
    assert made and first.state is State.COMPLETED
    made.clear()
    following = wide.run(n=20, executor=ThreadExecutor(2))
    assert made == []
    with monkeypatch.context() as forced:  # the same run again, the store checked
        forced.setattr(store_writer.Writer, "writing_to", lambda self, file_id: False)
        checked = wide.run(n=20, executor=ThreadExecutor(2))
    assert len(made) == 1
    with open_store() as store:
        records = [(store.get_run(r.id).state, store.get_run(r.id).counts,
                    sorted((t.name, t.state) for t in store.task_runs(r.id)))
                   for r in (following, checked)]
        path = store_db.get_database().path
    assert records[0] == records[1] == ("Completed", {"Completed": 20}, records[0][2])
    assert len(records[0][2]) == 20
    made.clear()
    assert path is not None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    after = wide.run(n=20, executor=ThreadExecutor(2))
    assert len(made) == 1  # checked: the store file is a new one
    # The writer finds the file replaced and writes its open runs into the new one again,
    # on its own time (``Writer._reopen``).
    deadline = time.monotonic() + 30
    while True:
        with open_store() as store:
            record = store.get_run(after.id)
        if (record is not None and record.counts == {"Completed": 20}) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert record is not None and record.counts == {"Completed": 20}


def test_a_key_known_in_the_write_that_creates_its_task_run_goes_into_its_row() -> None:
    # A map child is keyed as it launches, usually within the same write as its creation: its
    # key rides in its row instead of costing an UPDATE of its own.
    from labloom.core import events as ev
    from labloom.store.rows import Rows

    rows = Rows()
    rec: Any = SimpleNamespace(moves_known=True)  # the folding reads only this of its recorder
    rows.add(rec, ev.TaskRunCreated("r", "r.0", "n0", "sq", 0, (), 1.0))
    rows.add(rec, ev.TaskRunKeyed("r", "r.0", "k0", "/res/k0.pkl", 1.1))
    rows.add(rec, ev.TaskRunKeyed("r", "r.9", "k9", "/res/k9.pkl", 1.2))
    assert rows.tasks.rows == [("r.0", "r", "n0", "sq", 0, "[]", "Pending", 1.0, "k0",
                                "/res/k0.pkl")]
    assert rows.keys.rows == [("k9", "/res/k9.pkl", "r.9")]  # created in an earlier write


def test_the_writer_keeps_nothing_of_a_write_once_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run's last transaction (its events and rows) was held by the idle writer until its
    # next write or its thread's end: memory a following run could have reused.
    import weakref

    from labloom.store import writer as store_writer

    folded: list[weakref.ref[Any]] = []
    real = store_writer.Writer._fold

    def kept(self: store_writer.Writer, items: Any) -> Any:
        rows = real(self, items)
        folded.append(weakref.ref(rows))
        return rows

    monkeypatch.setattr(store_writer.Writer, "_fold", kept)
    monkeypatch.setattr(store_writer, "_IDLE_EXIT", 60.0)  # the thread stays, idle
    run = wide.run(n=20, executor=ThreadExecutor(2))
    assert run.state is State.COMPLETED and folded
    # The run's end waited for its last commit; the writer then lets go of what it wrote.
    deadline = time.monotonic() + 60  # a guard
    while any(ref() is not None for ref in folded) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [ref() for ref in folded] == [None] * len(folded)


FROZEN_FLOW = """
import sys, time
from pathlib import Path
from labloom import flow, task

@task
def wait_for(release):
    while not Path(release).exists():
        time.sleep(0.05)

@flow
def frozen(release):
    wait_for(release)

if __name__ == "__main__":
    frozen.run(release=sys.argv[1])
"""


def _one_run(home: Path) -> Any:
    with open_store() as store:  # a read: it reconciles
        runs = store.list_runs()
        return (runs[0], store.task_runs(runs[0].id)) if runs else (None, [])


def test_a_frozen_process_past_its_heartbeat_is_not_called_crashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A laptop asleep (here SIGSTOP) stops the run's heartbeat; on waking, the first read of
    # the store (the Flows panel polling) marked the run Crashed and its task run Cancelled
    # while its process was about to go on.
    script, home, release = tmp_path / "frozen.py", tmp_path / "home", tmp_path / "release"
    script.write_text(FROZEN_FLOW)
    proc = subprocess.Popen([sys.executable, str(script), str(release)],
                            env={**env_for(home), "LABLOOM_HEARTBEAT_TIMEOUT": "1"})
    os.environ["LABLOOM_HOME"] = str(home)  # read that store (the fixture restores it)
    monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "1")  # as the reader judges it too
    try:
        deadline = time.monotonic() + 60
        while not any(t.state == "Running" for t in _one_run(home)[1]):
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # three heartbeat timeouts without a beat
            run, tasks = _one_run(home)
            assert run.state == "Running", run.message
            assert [t.state for t in tasks] == ["Running"]
        finally:
            proc.send_signal(signal.SIGCONT)
        release.write_text("go")
        proc.wait(timeout=60)
    finally:
        release.write_text("go")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run, tasks = _one_run(home)
    assert run.state == "Completed" and [t.state for t in tasks] == ["Completed"]


def test_a_live_pid_that_started_after_the_run_is_not_its_process(tmp_path: Path) -> None:
    # Its process died and the pid went to another process: that one's life is not the run's.
    run = wide.run(n=2, executor="local")
    with open_store() as store, store.conn.transaction():
        store.conn.execute("UPDATE flow_runs SET state = 'Running', ended = NULL, pid = ?, "
                           "heartbeat = ?, created = ? WHERE id = ?",
                           (os.getpid(), time.time() - 3600, time.time() - 7200, run.id))
    with open_store() as store:
        again = store.get_run(run.id)
    assert again is not None and again.state == "Crashed"
    assert "a later process has its pid" in again.message


@task
def plod(i: int) -> int:
    time.sleep(0.05)
    return i


@flow
def plodding(n: int) -> object:
    return plod.map(range(n))


def test_a_run_marked_crashed_elsewhere_while_it_lives_is_running_again(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # A team's PostgreSQL away for longer than LABLOOM_HEARTBEAT_TIMEOUT (a failover): the
    # first read from another host once it is back (the Flows panel polling) marks the run
    # Crashed, before its writer has caught up. Before, it stayed Crashed until it ended (a
    # run of hours showed Crashed for hours), though it beat again within the second.
    run = plodding.run(n=200, executor=ThreadExecutor(2), background=True)
    deadline = time.monotonic() + 60
    while sum(tr.state is State.COMPLETED for tr in run.tasks) < 10:
        assert time.monotonic() < deadline, "no task run completed"
        time.sleep(0.01)
    deadline = time.monotonic() + 60
    while True:
        with open_store() as store, store.conn.transaction():  # silent for an hour, as it seems
            store.conn.execute("UPDATE flow_runs SET heartbeat = heartbeat - 3600 WHERE id = ?",
                               (run.id,))
        monkeypatch.setenv("LABLOOM_HOST", "another-host")  # where the heartbeat alone decides
        with open_store() as store:
            marked = store.reconcile()
        monkeypatch.delenv("LABLOOM_HOST")
        # A beat of the run's writer (every 5 s) may land between the two: silent again, then.
        if marked or time.monotonic() > deadline:
            break
    assert marked == [run.id]
    deadline = time.monotonic() + 30
    while True:  # its next write says it lives
        with open_store() as store:
            record = store.get_run(run.id)
        assert record is not None
        if record.state == "Running":
            break
        assert not run.state.is_final, "the run ended before its record said it lives"
        assert time.monotonic() < deadline, (record.state, record.message)
        time.sleep(0.05)
    assert "crashed" not in record.message and record.ended is None
    assert run.wait(60) is State.COMPLETED
    with open_store() as store:
        record = store.get_run(run.id)
        assert record is not None and record.state == "Completed"
        assert record.counts == {"Completed": 200}


@task
def held(gate: str) -> None:
    while not Path(gate).exists():
        time.sleep(0.01)


@flow
def holding(gate: str) -> None:
    held(gate)


def test_the_open_runs_beat_at_one_time_each_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer read the store's clock once per open run per write (on PostgreSQL the
    # offset's look-up and lock too): each run's beat had a time of its own.
    monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "1")  # a beat every 1/12 s
    gate = tmp_path / "gate"
    runs = [holding.run(gate=str(gate), background=True) for _ in range(3)]
    try:
        ids = sorted(run.id for run in runs)

        def beats() -> dict[str, float]:
            with open_store() as store:
                rows = store.conn.execute(
                    "SELECT id, heartbeat FROM flow_runs WHERE state = 'Running'").fetchall()
            return {row[0]: row[1] for row in rows}

        deadline = time.monotonic() + 60
        while sorted(beats()) != ids:
            assert time.monotonic() < deadline, "the runs were not all recorded Running"
            time.sleep(0.02)
        since = time.time()  # a beat after this one is a write with all three open
        while min((found := beats()).values()) <= since:
            assert time.monotonic() < deadline, "no beat after all three were open"
            time.sleep(0.02)
        assert len(set(found.values())) == 1, found
    finally:
        gate.touch()
        for run in runs:
            run.wait(60)
    assert all(run.state is State.COMPLETED for run in runs)
