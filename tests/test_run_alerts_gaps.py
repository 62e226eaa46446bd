"""The two ways `labloom run --notify` lost or doubled an alert after session 50. A command
killed between its run's start and its wish kept (written once ``flow.run`` had returned,
while the run's executor, body and tasks could already go): no alert. A store away at the
run's end: the command posted its alert from memory and its wish stayed, so a later serve sent
a second one. The real CLI in subprocesses, a webhook on 127.0.0.1, a real PostgreSQL server
stopped and started again."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Hook, labloom, start_labloom, stop, wait_for, write
from test_alerts_kept import end, pending_rows
from test_run_alerts_dead import (
    held_at_its_report,
    killed_then_served,
    next_beat,
    run_state,
    shown,
    task_states,
    wishes,
)

# Its executor's start is the first thing a run does once its observers have seen it start:
# before its first event (its record), its body, any task. Held there on a FIFO.
HELD_AT_START = """
    import os
    from pathlib import Path
    from labloom import LocalExecutor, flow, task

    class HeldAtStart(LocalExecutor):
        def start(self):
            Path(os.environ["HELD_MARK"]).write_text("held")
            with open(os.environ["HELD_FIFO"]) as fifo:  # until someone writes: never
                fifo.read()
            super().start()

    @task
    def load():
        return 1

    @flow(executor=HeldAtStart())
    def nightly():
        load()
"""


def test_a_command_killed_as_its_run_starts_leaves_a_wish_a_serve_alerts(
    labloom_home: Path,
) -> None:
    # Before, the wish was written after flow.run returned, so after the executor had
    # started: held there, the command had kept no wish, and its kill alerted nobody.
    home = labloom_home
    write(home / "flows.py", HELD_AT_START)
    os.mkfifo(home / "held.fifo")
    hook = Hook([])
    run = start_labloom(home, "run", "flows.py:nightly", "--notify", hook.url,
                        LABLOOM_PROGRESS="0", HELD_MARK=str(home / "held.txt"),
                        HELD_FIFO=str(home / "held.fifo"))
    try:
        wait_for(lambda: (home / "held.txt").exists() or run.poll() is not None, 60,
                 "the run's executor to start")
        assert run.poll() is None, run.communicate()
        [wish] = wishes(home)  # already there: the run has done nothing yet
        assert wish["flow"] == "nightly" and run_state(home) is None  # nor written its record
    except BaseException:
        stop(run)
        hook.close()
        raise
    body = killed_then_served(home, run, hook)
    assert body["run_id"] == wish["run_id"] and body["flow"] == "nightly", body
    assert body["state"] == "Crashed" and body["failed_tasks"] == [], body
    assert "died before the run's record was written" in body["error"], body
    assert not wishes(home)


CANNOT_START = """
    from labloom import LocalExecutor, flow, task

    class Busy(LocalExecutor):
        def start(self):
            raise OSError("the cluster's nodes are all busy")

    @task
    def load():
        return 1

    @flow(executor=Busy())
    def nightly():
        load()
"""


def test_a_run_whose_executor_cannot_start_is_alerted_by_its_command(
    labloom_home: Path,
) -> None:
    # The run exists (recorded Failed) once its wish is kept, and flow.run raises: the command
    # sends its alert. Before, it sent none; with the wish kept and nothing more, a serve would
    # have, saying the command died.
    home = labloom_home
    write(home / "flows.py", CANNOT_START)
    hook = Hook([])
    try:
        out = labloom(home, "run", "flows.py:nightly", "--notify", hook.url,
                      LABLOOM_PROGRESS="0")
        assert out.returncode == 2 and "nodes are all busy" in out.stderr, out.stderr
        assert "failure alert delivered" in out.stderr, out.stderr
        assert hook.connections_so_far() == 1
    finally:
        hook.close()
    [body] = hook.bodies
    assert body["state"] == "Failed" and body["flow"] == "nightly", body
    assert run_state(home) == "Failed"
    assert not wishes(home) and not pending_rows(home)


SUBFLOWS = """
    from labloom import flow, task

    @task
    def check():
        raise ValueError("bad row")

    @flow
    def part():
        check()

    @flow
    def nightly():
        part()
"""


def test_a_subflow_takes_no_wish_of_its_own(labloom_home: Path) -> None:
    # The wish is the command's run's: the first run that starts, not a subflow it starts.
    home = labloom_home
    write(home / "flows.py", SUBFLOWS)
    hook = Hook([])
    try:
        out = labloom(home, "run", "flows.py:nightly", "--notify", hook.url,
                      LABLOOM_PROGRESS="0")
        assert out.returncode == 1 and "failure alert delivered" in out.stderr, out.stderr
        assert hook.connections_so_far() == 1
    finally:
        hook.close()
    assert [body["flow"] for body in hook.bodies] == ["nightly"]
    assert not wishes(home) and not pending_rows(home)


def served_till_no_wish(home: Path) -> str:
    """A serve until the store's wish is gone, and two ticks more (to send what it would
    have composed); what it said."""
    serve = start_labloom(home, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: not wishes(home), 60, "the serve to drop the wish")
        next_beat(home)
        next_beat(home)
        return end(serve)[1]
    finally:
        stop(serve)


# A command whose store is away for good: it waits 1 s for it at its exit (the store away
# all the while either way), not 5 s (SQLite) or 15 s (PostgreSQL); each connection tried 1 s.
STORE_AWAY_ENV = {"LABLOOM_DB_CONNECT_TIMEOUT": "1", "LABLOOM_STORE_EXIT_WAIT": "1"}


@contextlib.contextmanager
def store_away(home: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """The store cannot be reached meanwhile, the disk can: the PostgreSQL server stopped
    (then started again), or the SQLite file moved aside, a folder in its place that no
    connection opens (a file mode stops no root, and ``chattr +i`` no process that had the
    file open: SQLite reuses its descriptors)."""
    if backend == "postgresql":
        server = request.getfixturevalue("postgres_server")
        server.stop("fast")
        try:
            yield
        finally:
            server.start()
        return
    store = home / "labloom.db"
    aside = store.rename(home / "labloom.db.aside")
    store.mkdir()
    try:
        yield
    finally:
        store.rmdir()
        aside.rename(store)


def let_go(run: subprocess.Popen[str], fifo: Path) -> tuple[dict[str, Any], str]:
    """The command held at its --report FIFO let go of, until it ends: its report, what it
    said."""
    report: list[str] = []
    reader = threading.Thread(target=lambda: report.append(fifo.read_text()))
    reader.start()
    _, stderr = run.communicate(timeout=120)
    reader.join(timeout=60)
    return json.loads(report[0]), stderr


@pytest.mark.parametrize("flow", ["etl", "fine"])
def test_a_store_away_at_the_runs_end_leaves_one_alert_or_none(
    labloom_home: Path, store_backend: str, request: pytest.FixtureRequest, flow: str,
) -> None:
    # The store goes away after the run's end is recorded, before the command keeps its alert
    # (or, for a run that completed, deletes its wish): held there by a --report FIFO. Before,
    # the failed run's alert was posted from memory, its wish stayed, and the next serve sent
    # a second one. (The completed run's case passed before too: the store has its end.)
    home = labloom_home
    hook = Hook([])
    run, fifo = held_at_its_report(home, flow, hook.url, **STORE_AWAY_ENV)
    ended = "Failed" if flow == "etl" else "Completed"
    try:
        wait_for(lambda: run_state(home) == ended and wishes(home), 60,
                 "the run's end, its alert wished for")
        [wish] = wishes(home)
        with store_away(home, store_backend, request):
            report, stderr = let_go(run, fifo)
        assert report["state"] == ended
        assert run.returncode == (1 if flow == "etl" else 0), stderr
        assert ("failure alert delivered" in stderr) is (flow == "etl"), stderr
        assert wishes(home) == [wish]  # the store could not be told
        # `labloom show` on this host says what the command did, before any serve.
        alert, text = shown(home, str(wish["run_id"]))
        assert (alert or {}).get("state") == ("delivered" if flow == "etl" else None), text
        serve_err = served_till_no_wish(home)
        assert hook.connections_so_far() == (1 if flow == "etl" else 0), serve_err
    finally:
        stop(run)
        hook.close()
    assert "after its `labloom run --notify` died" not in serve_err, serve_err
    assert not pending_rows(home)
    alert, text = shown(home, str(wish["run_id"]))
    if flow == "etl":
        assert alert is not None and alert["state"] == "delivered", (alert, text)
    else:
        assert alert is None, alert


def test_an_alert_not_delivered_with_the_store_away_is_sent_once_by_the_next_serve(
    labloom_home: Path, store_backend: str, request: pytest.FixtureRequest,
) -> None:
    # The store away at the run's end and the webhook refusing the command's four posts: the
    # wish stays, and the next serve composes the alert and sends it, once, saying why (the
    # command's mark): before, it said the command had died.
    home = labloom_home
    hook = Hook([500] * 4)
    run, fifo = held_at_its_report(home, "etl", hook.url, **STORE_AWAY_ENV,
                                   LABLOOM_NOTIFY_DELAYS="0.2,0.4,0.8")
    try:
        wait_for(lambda: run_state(home) == "Failed" and wishes(home), 60,
                 "the run's end, its alert wished for")
        [wish] = wishes(home)
        with store_away(home, store_backend, request):
            _, stderr = let_go(run, fifo)
        assert "failure alert not delivered (see the log above)" in stderr, stderr
        assert wishes(home) == [wish] and len(hook.bodies) == 4  # the command's posts
        alert, text = shown(home, str(wish["run_id"]))  # why it waits, on this host
        assert alert is not None and alert["state"] == "pending", text
        assert "could not deliver it (HTTP 500; 4 attempt(s)) nor keep it" in text, text
        serve = start_labloom(home, "serve", "--tick", "0.1")
        try:
            wait_for(lambda: len(hook.bodies) == 5 and not wishes(home)
                     and not pending_rows(home), 60, "the serve to send the alert")
            next_beat(home)  # a tick more of the serve, which must send nothing more
            next_beat(home)
            end_out = end(serve)
        finally:
            stop(serve)
        assert hook.connections_so_far() == 5, end_out
    finally:
        stop(run)
        hook.close()
    sent = hook.bodies[-1]
    assert sent["run_id"] == wish["run_id"] and sent["state"] == "Failed", sent
    # Why the serve sends it: not that the command died, which it did not.
    assert sent["error"].endswith("its `labloom run` could not deliver it (HTTP 500; 4 "
                                  "attempt(s)) nor keep it in the store"), sent
    alert, text = shown(home, str(wish["run_id"]))
    assert alert is not None and alert["state"] == "delivered", (alert, text)


WAITS_FOR_GO = """
    from pathlib import Path
    from labloom import flow, task

    @task
    def load():
        Path("started.txt").write_text("started")
        with open("go.fifo") as go:  # until the test says go
            go.read()
        return 1

    @flow
    def nightly():
        load()
"""


@pytest.mark.postgresql_only  # the server stopped: the run's end cannot be written either
def test_a_run_that_completed_while_the_store_was_away_is_not_alerted_crashed(
    labloom_home: Path, postgres_server: Any,
) -> None:
    # The store goes away while the run's task runs: its end is not recorded, nor its wish
    # deleted. Before, the next serve found the run Running, its command gone, marked it
    # Crashed and alerted it so.
    home = labloom_home
    write(home / "flows.py", WAITS_FOR_GO)
    os.mkfifo(home / "go.fifo")
    hook = Hook([])
    # What the writer cannot write is dropped after 2 s (LABLOOM_STORE_OUTAGE), not 10 min.
    run = start_labloom(home, "run", "flows.py:nightly", "--notify", hook.url,
                        LABLOOM_PROGRESS="0", LABLOOM_STORE_OUTAGE="2", **STORE_AWAY_ENV)
    try:
        wait_for(lambda: (home / "started.txt").exists() and wishes(home)
                 and task_states(home) == ["Running"], 60,
                 "the task to run, in the store too, and the alert wished for")
        [wish] = wishes(home)
        postgres_server.stop("fast")
        try:
            (home / "go.fifo").write_text("go")
            _, stderr = run.communicate(timeout=300)
        finally:
            postgres_server.start()
        assert run.returncode == 3, stderr  # completed, its record incomplete
        assert run_state(home) == "Running" and wishes(home) == [wish]
        serve_err = served_till_no_wish(home)
        assert hook.connections_so_far() == 0, serve_err
    finally:
        stop(run)
        hook.close()
    assert not pending_rows(home)
