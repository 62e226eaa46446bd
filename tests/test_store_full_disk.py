"""A disk filled by a run's own log lines keeps the run's states: the store's reserve of room
(``store/room.py``) on a real small filesystem (a tmpfs of 12 MB), through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import cli_env, labloom, write

CHATTY = """
    import os
    import time

    from labloom import flow, task, unmapped

    @task
    def first():
        return 1

    @task
    def chatty(x):
        for i in range(int(os.environ["LINES"])):
            print(f"line {i} " + "x" * 3000)
            if i % 5 == 0:
                time.sleep(0.002)  # small batches, each of which fits
        return x

    @task
    def after(x, i):
        return x + i

    @flow
    def nightly():
        return after.map(unmapped(chatty(first())), range(20))
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MB filesystem of its own (root mounts a tmpfs), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small disk of its own is a tmpfs that only root can mount here")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {made.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def run_nightly(home: Path, cwd: Path, lines: int) -> tuple[subprocess.CompletedProcess[str],
                                                            dict[str, object]]:
    report = cwd / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "labloom", "run", "flows.py:nightly", "--report", str(report)],
        env=cli_env(home, LABLOOM_PROGRESS="0", LABLOOM_LOG_LINES="100000",
                    LABLOOM_STORE_RESERVE="8", LINES=str(lines)),
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )
    return done, json.loads(report.read_text())


def test_a_disk_filled_by_a_runs_lines_keeps_its_states(tmp_path: Path, small_disk: Path
                                                        ) -> None:
    # A task printing 15 MB in small batches filled the store's disk: each batch fitted, until
    # nothing did, and then neither did the run's later states: it ended "missing N
    # record(s)" and the store showed it Running, then Crashed, its task runs Pending.
    write(tmp_path / "flows.py", CHATTY)
    done, said = run_nightly(small_disk, tmp_path, lines=5000)
    assert done.returncode == 3, done.stderr
    assert said["state"] == "Completed" and said["unrecorded"] > 0
    assert "the runs' states first, in room kept for them" in done.stderr
    assert "log lines and logged values waiting for room: the disk holding the store is full" \
        in done.stderr
    shown = json.loads(labloom(small_disk, "show", said["run_id"], "--json").stdout)
    assert shown["state"] == "Completed"
    assert [t["state"] for t in shown["task_runs"]] == ["Completed"] * 22
    logs = json.loads(labloom(small_disk, "logs", said["run_id"], "--json").stdout)["lines"]
    stored = [line["text"] for line in logs if line["text"].startswith("line ")]
    [note] = [line["text"] for line in logs if "were not stored" in line["text"]]
    assert note.startswith(f"[labloom] {5000 - len(stored)} log line(s)"), note
    assert said["unrecorded"] == 5000 - len(stored)
    assert note in shown["notes"]
    text = labloom(small_disk, "show", said["run_id"]).stdout
    assert note in text

    # Room is back (someone grew the disk): the next run is whole, and the reserve is made.
    subprocess.run(["mount", "-o", "remount,size=48m", str(small_disk)], check=True)
    again, said = run_nightly(small_disk, tmp_path, lines=200)
    assert again.returncode == 0, again.stderr
    assert said["state"] == "Completed" and said["unrecorded"] == 0
    logs = json.loads(labloom(small_disk, "logs", said["run_id"], "--json").stdout)["lines"]
    assert len([line for line in logs if line["text"].startswith("line ")]) == 200
    assert (small_disk / "labloom.db-reserve").stat().st_size == 8 * 2**20
