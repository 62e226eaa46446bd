"""`labloom run` on Dask says the dashboard's link before any task's output: users of dask and
prefect see the link first. It was said by the progress's delivery thread, which a loaded
machine lets fall behind a task printing at once (its worker writes the same terminal)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli_helpers import cli_env

pytest.importorskip("distributed")

FLOWS = '''
import os
from labloom import flow, task


@task
def early():
    print("the task's first line", flush=True)
    open(os.environ["PRINTED"], "w").close()  # the command's progress may go on now
    return 1


@flow
def quick():
    return early()
'''

# The command, its progress's delivery thread held back on the run's first event until the
# task has printed: what a loaded machine can do to it, made sure (guard 60 s). The run's own
# thread is not held. A worker process imports this file as __mp_main__: it does nothing there.
LATE_PROGRESS = '''
import os, sys, time

if __name__ == "__main__":
    from labloom.cli import main
    from labloom.core import events as ev
    from labloom.dag import console_progress

    delivered = console_progress.ConsoleProgress.__call__

    def late(self, batch):
        if any(isinstance(event, ev.RunCreated) for event in batch):
            guard = time.monotonic() + 60
            while not os.path.exists(os.environ["PRINTED"]) and time.monotonic() < guard:
                time.sleep(0.05)
        return delivered(self, batch)

    console_progress.ConsoleProgress.__call__ = late
    sys.exit(main())
'''


def test_the_dashboard_line_comes_before_the_first_tasks_output(labloom_home, tmp_path):
    (tmp_path / "flows_file.py").write_text(FLOWS)
    (tmp_path / "late_progress.py").write_text(LATE_PROGRESS)
    printed = tmp_path / "printed"
    # One pipe for stdout and stderr, as a terminal shows them: its order is the writes' order.
    done = subprocess.run(
        [sys.executable, "late_progress.py", "run", "flows_file.py:quick", "--executor", "dask"],
        env=cli_env(labloom_home, PRINTED=str(printed)), cwd=tmp_path, timeout=180,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout
    assert printed.exists()
    lines = done.stdout.splitlines()
    said = [n for n, line in enumerate(lines) if line.startswith("labloom: Dask dashboard: http")]
    task = [n for n, line in enumerate(lines) if line.endswith("the task's first line")]
    assert len(said) == 1 and len(task) == 1, done.stdout
    assert said[0] < task[0], done.stdout
