"""`labloom schedule add/pause/resume/remove`, `labloom limit set/remove` on PostgreSQL whose
change's answer never comes (the server crashed, the network went, right after it committed; or
the connection went just before, nothing landed): the command asks the server whether it landed
and makes it again only if not (``unanswered_commits.written_once``). Before, it failed with
the store's error though its change was made, and run again said "a schedule named 'job'
exists" or "no schedule named 'job'"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, write
from pg_commit_cut import cut_database
from test_schedule_pg_unanswered_commit import FLOW

# Each command, the statement of its change (cut as it commits), what it says when done, and
# what the store then holds: the schedules (whether paused), the limits.
STEPS = [
    (("schedule", "add", "flows.py:job", "--every", "1h"), b"INTO schedules ",
     "added schedule 'job'", ([("job", 0)], [])),
    (("schedule", "pause", "job"), b"UPDATE schedules SET paused = 1", "paused schedule 'job'",
     ([("job", 1)], [])),
    (("schedule", "resume", "job"), b"UPDATE schedules SET paused = 0", "resumed schedule 'job'",
     ([("job", 0)], [])),
    (("limit", "set", "db", "3"), b"INTO concurrency_limits ", "limit db: 3",
     ([("job", 0)], [("db", 3)])),
    (("schedule", "remove", "job"), b"DELETE FROM schedules ", "removed schedule 'job'",
     ([], [("db", 3)])),
    (("limit", "remove", "db"), b"DELETE FROM concurrency_limits ", "limit db deleted", ([], [])),
]

@pytest.mark.parametrize("lands", [True, False], ids=["after the commit", "before the commit"])
def test_a_commands_change_whose_answer_is_lost_is_made_once(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lands: bool
) -> None:
    import psycopg

    write(tmp_path / "flows.py", FLOW)
    with cut_database(postgres_server, monkeypatch, commits=lands, at="alone",
                      writes=tuple(step[1] for step in STEPS)) as proxy:
        labloom(tmp_path, "limit", "list")  # the store made, not in a cut command
        for args, _, said, holds in STEPS:
            proxy.cut.clear()
            proxy.armed.set()
            done = labloom(tmp_path, *args)
            assert proxy.cut.is_set(), f"labloom {' '.join(args)}: nothing was cut"
            assert proxy.answer == (b"I" if lands else b"")  # committed, or never got it
            # Before: exit 2 or 1, the store's "server closed the connection unexpectedly".
            assert done.returncode == 0 and said in done.stdout, (args, done.stdout,
                                                                  done.stderr)
            with psycopg.connect(proxy.direct) as direct:
                names = direct.execute("SELECT name, paused FROM schedules").fetchall()
                limits = direct.execute("SELECT tag, slots FROM concurrency_limits").fetchall()
            assert (names, limits) == holds, args
