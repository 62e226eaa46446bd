"""Runs made in processes of their own for the tests of a store change that a cut COMMIT left
unknown (``pg_commit_cut``): three runs held running, to cancel; sixty finished, to delete
over two batches. Shared by the CLI's tests and the Lab server's."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from cli_helpers import cli_env, labloom, running_script, wait_for

HELD = """
import os, sys, time
from pathlib import Path
from labloom import flow, task

@task
def hold(stop: str, i: int) -> int:
    Path(f"{stop}.{i}").touch()
    while not Path(stop).exists():
        time.sleep(0.05)
    return i

@flow
def nightly(stop: str, i: int) -> int:
    return hold(stop, i)

runs = [nightly.run(stop=sys.argv[1], i=i, executor="threads", background=True)
        for i in range(3)]
for run in runs:
    run.wait()
print(" ".join(f"{run.id}={run.state.value}" for run in runs), flush=True)
os._exit(0)
"""

MANY = """
from labloom import flow, task

@task
def work(i: int) -> int:
    return i

@flow(executor="local")
def job(i: int) -> int:
    return work(i)

for i in range(60):
    job.run(i=i)
"""


@contextlib.contextmanager
def three_held_runs(home: Path, stop: Path) -> Iterator[subprocess.Popen[str]]:
    """A process whose three runs (parameter ``i`` 0 to 2) each hold a task running until
    ``stop`` exists; it prints ``id=state`` of each as it ends. Killed after the block."""
    with running_script(stop.parent / "held.py", HELD, str(stop), home=home) as proc:
        wait_for(lambda: all(Path(f"{stop}.{i}").exists() for i in range(3)), 60,
                 "the three runs' tasks")
        yield proc


def sixty_runs(home: Path, folder: Path) -> list[str]:
    """Sixty finished runs made in a process of its own: their ids, as `labloom runs` lists
    them."""
    script = folder / "many.py"
    script.write_text(MANY)
    made = subprocess.run([sys.executable, str(script)], text=True, capture_output=True,
                          env=cli_env(home), timeout=120)
    assert made.returncode == 0, made.stderr
    ids = [r["id"] for r in json.loads(labloom(home, "runs", "--json", "--limit", "100").stdout)]
    assert len(ids) == 60
    return ids


def states_of(home: Path, ids: list[str]) -> list[str]:
    """The state `labloom runs` lists for each of ``ids`` ("" if not listed, or if the store
    could not be read)."""
    listed = labloom(home, "runs", "--json", "--limit", "100")
    by_id = {r["id"]: r["state"] for r in json.loads(listed.stdout or "[]")}
    return [by_id.get(run_id, "") for run_id in ids]
