"""``labloom.store.stop_writing()``: a store gone for good (a dropped database, a removed
folder) is let go of at once. Its writer retried for ``LABLOOM_STORE_OUTAGE`` seconds (600)
and nothing in a kernel could stop it: its thread, its backlog and a run's end waiting for its
last commit stayed. Now its thread ends, what it could not write is counted (``unrecorded``),
and the next run in that store, once it is back, is recorded by a new writer."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import labloom.store
from cli_helpers import wait_for
from labloom import State, flow, task
from labloom.store import open_store, unrecorded

GATE = threading.Event()


@task
def step(i: int) -> int:
    GATE.wait(60)
    print("step", i)
    return i


@flow
def steps(n: int) -> object:
    return step.map(range(n))


@pytest.fixture(autouse=True)
def gate() -> Any:
    GATE.clear()
    yield
    GATE.set()


def store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "labloom-store"]


def recorded(run_id: str) -> Any:
    with open_store() as store:
        return store.get_run(run_id)


def test_a_store_gone_for_good_is_let_go_of_at_once(
    store_backend: str, labloom_home: Path, request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="labloom")
    monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "12")  # its next write within 1 s, not 5
    run = steps.run(n=3, executor="threads", background=True)
    wait_for(lambda: recorded(run.id), 60, "the run in the store")
    if store_backend == "postgresql":
        server = request.getfixturevalue("postgres_server")
        name = urlsplit(os.environ["LABLOOM_DATABASE_URL"]).path.lstrip("/")
        server.drop_database(name)
    else:
        shutil.rmtree(labloom_home)

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "cannot be written now" in
                r.getMessage()]

    # The warning names the way out.
    assert "labloom.store.stop_writing() gives up now" in wait_for(said, 60, "the retry")[0]
    labloom.store.stop_writing()
    wait_for(lambda: not store_threads(), 60, "the writer's thread to end")
    GATE.set()
    # What the run sends now is dropped and counted: its end does not wait for the store.
    assert run.wait(30) is State.COMPLETED
    lost = unrecorded(run.id, timeout=1)
    assert lost is not None and lost.count > 0, lost
    assert any("labloom.store.stop_writing" in why for why in lost.reasons), lost.reasons

    # The store is back: the next run is recorded whole, by a new writer.
    if store_backend == "postgresql":
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
    else:
        labloom_home.mkdir()
    again = steps.run(n=2, executor="threads")
    record = recorded(again.id)
    assert record is not None and record.counts == {"Completed": 2}, record
    assert unrecorded(again.id) is None
    assert unrecorded(run.id, timeout=1) is not None  # the first run's count is still told


def test_stop_writing_a_store_in_use_drops_nothing_written_and_records_again() -> None:
    GATE.set()
    first = steps.run(n=2, executor="threads")
    labloom.store.stop_writing()
    assert not store_threads()  # at once, not after the writer's 2 s idle
    second = steps.run(n=2, executor="threads")
    for run in (first, second):
        record = recorded(run.id)
        assert record is not None and record.counts == {"Completed": 2}, record
        assert unrecorded(run.id) is None
