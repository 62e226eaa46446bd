"""A test that fails while its run's store cannot be written stays one failure.

Before session 46 such a test left its run going and the store's writer retrying (a PostgreSQL
database the fixture drops, a SQLite folder the test removed) for up to
``LABLOOM_STORE_OUTAGE`` (600 s); every later test of that worker that waits for the store's
thread to end (``labloom-store``; tests/test_server_api.py, test_server_push.py) then timed out.
``tests/conftest.py`` now stops what a test left (``teardown_helpers.py``). Proved here with
pytester: a real pytest session, with this suite's conftest, runs a test that fails that way
and then one that must pass, on both backends, in one process and under xdist.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import pg_server
from system_programs import require_system

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"

INNER = textwrap.dedent('''
    import logging
    import os
    import shutil
    import threading
    import time
    from urllib.parse import urlsplit

    import pytest

    from cli_helpers import wait_for
    from labloom import flow, task
    from labloom.store import open_store

    GATE = threading.Event()


    @task
    def held(i):
        GATE.wait(30)
        return i


    @flow
    def going(n):
        return held.map(range(n))


    @pytest.mark.parametrize("store_backend", [BACKEND], indirect=True)
    def test_fails_mid_run_while_the_writer_retries(store_backend, labloom_home, request, caplog,
                                                    monkeypatch):
        caplog.set_level(logging.WARNING, logger="labloom")
        monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "12")  # its next write within 1 s
        run = going.run(n=2, executor="threads", background=True)

        def recorded():
            with open_store() as store:
                return store.get_run(run.id) is not None

        wait_for(recorded, 60, "the run in the store")
        if store_backend == "postgresql":  # the server refuses the database from now on
            name = urlsplit(os.environ["LABLOOM_DATABASE_URL"]).path.lstrip("/")
            request.getfixturevalue("postgres_server").drop_database(name)
        else:  # the store's folder is gone: it cannot be opened again
            shutil.rmtree(labloom_home)
        wait_for(lambda: any("cannot be written now" in r.getMessage() for r in caplog.records),
                 60, "the writer to retry")
        assert run.state.is_final, "fails mid-run: the run still going, the writer retrying"


    @pytest.mark.parametrize("store_backend", [BACKEND], indirect=True)
    def test_the_next_test_starts_clean(store_backend):
        GATE.set()  # the first test's task threads return: not what is tested
        run = going.run(n=2, executor="threads")
        with open_store() as store:
            assert store.get_run(run.id).state == "Completed"
        # What tests/test_server_api.py waits for: no store thread left (this run's own ends
        # when idle, 2 s).
        wait_for(lambda: "labloom-store" not in {t.name for t in threading.enumerate()}, 30,
                 "every store thread to end")
''')


@pytest.mark.parametrize("how", ["one process", "xdist"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_test_failing_while_its_writer_retries_stays_one_failure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, backend: str, how: str
) -> None:
    if backend == "postgresql":
        require_system(pg_server.missing())
    pytester.makeconftest((TESTS / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner=INNER.replace("[BACKEND]", f"[{backend!r}]"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")])))
    workers = ["-p", "no:xdist"] if how == "one process" else ["-n", "1"]
    result = pytester.runpytest_subprocess(
        *workers, "-p", "no:cacheprovider", "-o", "timeout=240", timeout=600)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: fails mid-run*"])


STUCK = textwrap.dedent('''
    import sqlite3
    import threading

    from cli_helpers import wait_for
    from labloom import flow, task
    from labloom.store import open_store

    LOCKS = []  # the other process's lock, as a module global: it outlives the first test


    @task
    def one(i):
        return i


    @flow
    def quick(n):
        return one.map(range(n))


    def test_leaves_a_writer_stuck_in_a_locked_store(labloom_home, monkeypatch):
        monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "12")
        quick.run(n=2, executor="threads")
        lock = sqlite3.connect(labloom_home / "labloom.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # another process's long write: SQLite waits 30 s
        LOCKS.append(lock)
        run = quick.run(n=2, executor="threads", background=True)  # its writer waits in SQLite
        wait_for(lambda: [tr.state.value for tr in run.tasks] == ["Completed"] * 2, 60,
                 "the run's task runs")


    def test_the_next_test_still_passes():
        LOCKS.pop().rollback()  # the lock goes: the stuck writer's wait ends
        wait_for(lambda: "labloom-store" not in {t.name for t in threading.enumerate()}, 60,
                 "the stuck writer to end")
''')


def test_a_writer_that_cannot_be_stopped_is_named_once_in_its_tests_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite write waiting for another process's lock cannot be cut short (SQLite's busy
    wait ignores ``interrupt()``): the teardown abandons that writer and says so in that
    test's report, once; the next test is not blamed."""
    pytester.makeconftest((TESTS / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner=STUCK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")])))
    # The teardown's wait before it names what is left: the writer waits in SQLite for 30 s,
    # so 3 s, not 10, still find it writing (tests/teardown_helpers.py).
    monkeypatch.setenv("LABLOOM_TEST_SETTLE", "3")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider",
                                           "-o", "timeout=240", timeout=600)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaves_a_writer_stuck_in_a_locked_store*",
        "*left running after the test, abandoned*thread labloom-store*"])
    # Once, in its teardown error (the short summary repeats that error's first line, cut
    # or not by the terminal's width: not counted).
    said = [line for line in result.stdout.lines if line.startswith("left running after")]
    assert len(said) == 1
