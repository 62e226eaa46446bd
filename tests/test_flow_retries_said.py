"""What a run under ``@flow(retries=N)`` says of its attempts where people read it: the
process's output without terminal progress (a scheduler's log), ``labloom show``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_helpers import labloom, read_lines, start_labloom, stop, wait_for, write
from lab_helpers import free_port

FLOWS = """
    from pathlib import Path
    from labloom import flow, task

    @task
    def check(marker: str) -> int:
        tries = Path(marker)
        count = int(tries.read_text()) + 1 if tries.exists() else 1
        tries.write_text(str(count))
        if count < 3:
            raise ValueError(f"attempt {count}: the export is not there yet")
        return count

    @flow(retries=2, retry_delay=60)
    def etl(marker: str) -> int:
        return check(marker)

    @flow(retries=2, retry_delay=0.1)
    def quick(marker: str) -> int:
        return check(marker)

    @task
    def one() -> int:
        return 1

    @flow(retries=1, retry_delay=0)
    def remote() -> int:
        return one()
"""


def test_without_progress_a_failed_attempt_is_said_when_it_fails(tmp_path: Path) -> None:
    """LABLOOM_PROGRESS=0 (cron, `labloom serve`): the process said nothing of the failed
    attempt until its end, 60 s on; the on-call person reading the log saw a silent run."""
    write(tmp_path / "flows.py", FLOWS)
    proc = start_labloom(tmp_path, "run", "flows.py:etl", "-p", f"marker={tmp_path / 'tries'}",
                         LABLOOM_PROGRESS="0")
    lines: list[str] = []
    reader = read_lines(proc.stderr, lines)
    try:
        said = wait_for(lambda: [x for x in lines if "attempt 1 of 3 failed" in x], 60,
                        "the failed attempt's line while the run waits")
        assert proc.poll() is None  # said while it waits, not at the end
        assert re.match(r"labloom: run \w+ of flow 'etl': attempt 1 of 3 failed: 1 task run\(s\) "
                        r"did not succeed; first: check: ValueError: attempt 1: .*; attempt 2 "
                        r"starts in 60s$", said[0].rstrip()), said
        run_id = said[0].split()[2]
        assert labloom(tmp_path, "cancel", run_id).returncode == 0
        proc.wait(timeout=30)
        reader.join(timeout=60)
        assert sum("attempt 1 of 3 failed" in x for x in lines) == 1  # said once
    finally:
        stop(proc)


def test_without_progress_each_attempt_is_said_once(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:quick", "-p", f"marker={tmp_path / 'tries'}",
                  LABLOOM_PROGRESS="0")
    assert out.returncode == 0, out.stderr
    said = re.findall(r"of flow 'quick': (attempt \d of \d(?: failed)?)", out.stderr)
    assert said == ["attempt 1 of 3 failed", "attempt 2 of 3", "attempt 2 of 3 failed",
                    "attempt 3 of 3"], out.stderr


def test_an_executor_that_cannot_start_is_said_once_by_its_attempt(tmp_path: Path) -> None:
    """With the terminal's progress, the run's first line said "the executor could not start:
    ..." and the attempt's note said it again at once: two long lines of the same error."""
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:remote", "--address",
                  f"tcp://127.0.0.1:{free_port()}", timeout=120, LABLOOM_PROGRESS="1",
                  DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    assert out.returncode == 1, out.stderr
    # What each line says before the error: the run's own line said nothing but the error.
    said = [re.sub(r"^labloom: run \w+:? | in [\d.]+s$", "",
                   line.split(": the executor could not start")[0])
            for line in out.stderr.splitlines() if "the executor could not start" in line]
    assert said == ["attempt 1 of 2 failed", "attempt 2 of 2 (attempt 1 failed", "Failed"], \
        out.stderr


def test_show_counts_a_task_runs_attempts_across_the_flows_and_says_the_flows(
    tmp_path: Path,
) -> None:
    """`labloom show` of a run that took 3 attempts said ATTEMPTS 1 for its task run, which
    ran three times: the count started over at each attempt of the flow."""
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:quick", "-p", f"marker={tmp_path / 'tries'}")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(labloom(tmp_path, "runs", "--json").stdout)[0]["id"]
    shown = labloom(tmp_path, "show", run_id).stdout
    assert f"run {run_id} of flow 'quick': Completed, attempt 3 of 3" in shown, shown
    [row] = [line.split() for line in shown.splitlines() if line.startswith("check ")]
    assert row[:3] == ["check", "Completed", "3"], shown
    stored = json.loads(labloom(tmp_path, "show", run_id, "--json").stdout)
    assert stored["task_runs"][0]["attempts"] == 3
    assert stored["metadata"]["attempt"] == 3 and stored["metadata"]["attempts_allowed"] == 3
