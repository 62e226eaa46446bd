"""A run waiting for its next attempt (``@flow(retries=N)``) while its PostgreSQL store
restarts: the wait, the next attempt and the end are all recorded once the server is back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import wait_for
from labloom import State, flow, task
from labloom.store import open_store
from test_store_postgres import pg_url  # noqa: F401  (the fixture: a database of its own)


@pytest.mark.usefixtures("pg_url")
def test_a_store_restart_during_the_wait_loses_nothing_of_the_attempts(
    postgres_server: Any, tmp_path: Path,
) -> None:
    marker = tmp_path / "failed-once"

    @task
    def fetch() -> int:
        if not marker.exists():
            marker.write_text("once")
            raise ConnectionError("the export is not there yet")
        return 7

    @flow(retries=1, retry_delay=4)
    def nightly() -> int:
        return fetch()

    run = nightly.run(background=True)
    wait_for(lambda: "attempt 2 starts in 4s" in run.message, 30, "the wait")
    postgres_server.stop("fast")
    back = threading.Timer(2, postgres_server.start)  # back before the next attempt
    back.start()
    try:
        assert run.wait(timeout=60) is State.COMPLETED, run.message
    finally:
        back.join()

    def recorded() -> Any:
        with open_store() as store:
            stored = store.get_run(run.id)
            return (stored, store.task_runs(run.id)) if stored and stored.state == "Completed" \
                else None

    stored, tasks = wait_for(recorded, 60, "the run's end in the store")
    assert stored.message.startswith("completed at attempt 2 of 2; attempt 1 failed: ")
    assert stored.metadata["attempt"] == 2
    assert [(t.name, t.state, t.attempts) for t in tasks] == [("fetch", "Completed", 2)]
    with open_store() as store:
        lines, _ = store.logs(run.id)
    said = [line.text for line in lines if line.task_run_id is None]
    assert any("attempt 1 of 2 failed" in text for text in said), said
    assert any("attempt 2 of 2 starts" in text for text in said), said
