"""`labloom run --notify` with its store away at the run's end, served by a `labloom serve` of
another home on the same store (another host sharing a PostgreSQL server; here two homes on
this one, which the serve reads the same way: it cannot see the command's disk). Before, the
command left what it did with the alert on its own home's disk only, and that serve sent a
second alert, saying the command had died. The real CLI, a webhook on 127.0.0.1, a real
PostgreSQL server stopped and started again (SQLite: the file moved aside)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Hook, start_labloom, stop, wait_for
from test_alerts_kept import end, pending_rows
from test_run_alerts_dead import held_at_its_report, next_beat, run_state, wishes
from test_run_alerts_gaps import store_away


def other_home(home: Path, tmp_path: Path, backend: str) -> tuple[Path, dict[str, str]]:
    """A second home on the first one's store; the environment its commands need."""
    other = tmp_path / "other-home"
    other.mkdir()
    if backend == "postgresql":  # the test's database, in LABLOOM_DATABASE_URL already
        return other, {}
    return other, {"LABLOOM_DATABASE_URL": f"sqlite:///{home / 'labloom.db'}"}


def let_go_till_marked(run: subprocess.Popen[str], fifo: Path, mark: Path) -> threading.Thread:
    """The command held at its --report FIFO let go of, until it marked its alert settled on
    its disk (the store could not be told); the FIFO's reader, to join."""
    reader = threading.Thread(target=fifo.read_text)
    reader.start()
    wait_for(lambda: mark.exists() or run.poll() is not None, 120,
             "the command to mark what it did with the alert")
    return reader


def served_by(other: Path, env: dict[str, str], home: Path, hook: Hook, sent: int) -> str:
    """A serve of ``other`` until the store (``home``'s) holds no wish nor alert to send and
    the hook had ``sent`` posts, and two beats more (what it would send, sent); what it said."""
    serve = start_labloom(other, "serve", "--tick", "0.1", **env)
    try:
        wait_for(lambda: not wishes(home) and not pending_rows(home)
                 and len(hook.bodies) >= sent, 60, "the serve to be done")
        next_beat(home)
        next_beat(home)
        return end(serve)[1]
    finally:
        stop(serve)


@pytest.mark.parametrize("posts", ["taken", "refused"])
def test_a_serve_of_another_home_sends_no_second_alert(
    labloom_home: Path, tmp_path: Path, store_backend: str, request: pytest.FixtureRequest,
    posts: str,
) -> None:
    home = labloom_home
    other, env = other_home(home, tmp_path, store_backend)
    refused = posts == "refused"
    hook = Hook([500] * 4 if refused else [])
    run, fifo = held_at_its_report(home, "etl", hook.url, LABLOOM_DB_CONNECT_TIMEOUT="1",
                                   LABLOOM_NOTIFY_DELAYS="0.2,0.4,0.8")
    try:
        wait_for(lambda: run_state(home) == "Failed" and wishes(home), 60,
                 "the run's end, its alert wished for")
        [wish] = wishes(home)
        mark = home / "run-alerts-settled" / str(wish["run_id"])
        with store_away(home, store_backend, request):
            reader = let_go_till_marked(run, fifo, mark)
        # The store is back while the command still waits for it as it exits.
        _, stderr = run.communicate(timeout=120)
        reader.join(timeout=60)
        assert run.returncode == 1, stderr
        posted = 4 if refused else 1
        assert len(hook.bodies) == posted, stderr
        serve_err = served_by(other, env, home, hook, posted + refused)
        assert hook.connections_so_far() == posted + refused, "\n".join([serve_err, stderr, *map(str, hook.bodies)])
    finally:
        stop(run)
        hook.close()
    assert "after its `labloom run --notify` died" not in serve_err, serve_err
    assert not mark.exists()  # the store was told: nothing left for this home's serve
    sent: dict[str, Any] = hook.bodies[-1]
    assert sent["run_id"] == wish["run_id"] and sent["state"] == "Failed", sent
    assert "died" not in sent["error"], sent
