"""`labloom delete`: ended runs deleted with every row of them, on both backends, through the
real entry point; runs still going and other users' runs kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from labloom.store.db import get_database
from store_helpers import cli, cli_json, env_for, run_script

FLOWS = """
import sys
from pathlib import Path
from labloom import flow, log_metrics, task

@task
def train(i):
    print("training", i)
    log_metrics(auc=0.9 + i / 100)
    if i == 2:
        raise ValueError("diverged")
    return i

@flow
def sweep(n: int = 3):
    return train.map(range(n))

@task
def wait_for(path):
    import time
    Path(path).with_suffix(".started").touch()
    while not Path(path).exists():
        time.sleep(0.05)

@flow
def nightly(path: str = ""):
    return wait_for(path) if path else 1

if __name__ == "__main__":
    if sys.argv[1] == "sweep":
        sweep.run()
    else:
        nightly.run(path=sys.argv[2] if len(sys.argv) > 2 else "")
"""

# Every table that holds rows of a run, by its run_id column.
RUN_TABLES = ("task_runs", "task_states", "logs", "log_cuts", "experiment_values", "run_nodes")


def rows_of(run_id: str) -> dict[str, int]:
    conn = get_database().connect()
    try:
        counts = {table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?",
                                      (run_id,)).fetchone()[0] for table in RUN_TABLES}
        counts["flow_runs"] = conn.execute("SELECT COUNT(*) FROM flow_runs WHERE id = ?",
                                           (run_id,)).fetchone()[0]
        return counts
    finally:
        conn.close()


def age(run_ids: list[str], days: float) -> None:
    """Make runs ``days`` older, as if made then."""
    conn = get_database().connect()
    try:
        for run_id in run_ids:
            conn.execute("UPDATE flow_runs SET created = created - ? WHERE id = ?",
                         (days * 86_400, run_id))
    finally:
        conn.close()


def test_old_runs_are_deleted_with_every_row_and_the_rest_kept(
    tmp_path: Path, labloom_home: Path, store_backend: str
) -> None:
    script = tmp_path / "flows.py"
    script.write_text(FLOWS)
    for _ in range(3):
        run_script(labloom_home, script, "sweep")
    run_script(labloom_home, script, "nightly")
    runs = cli_json(labloom_home, "runs")
    sweeps = [run["id"] for run in runs if run["flow_name"] == "sweep"]
    [nightly] = [run["id"] for run in runs if run["flow_name"] == "nightly"]
    old, kept = sweeps[1:], sweeps[0]  # newest first: the two older ones made 40 days old
    before = rows_of(old[0])
    assert before["logs"] and before["experiment_values"] and before["task_states"] > 3
    age([*old, nightly], 40)

    assert cli_json(labloom_home, "delete", "--older-than", "50")["deleted"] == []
    dry = cli(labloom_home, "delete", "--older-than", "30", "--flow", "sweep", "--dry-run")
    assert dry.returncode == 0 and "would delete 2 run(s) (6 task runs)" in dry.stdout
    assert rows_of(old[0]) == before  # nothing deleted

    done = cli(labloom_home, "delete", "--older-than", "30", "--flow", "sweep")
    assert done.returncode == 0 and "deleted 2 run(s) (6 task runs)" in done.stdout, done
    for run_id in old:
        assert set(rows_of(run_id).values()) == {0}, run_id
    assert {run["id"] for run in cli_json(labloom_home, "runs")} == {kept, nightly}
    # What is kept reads as before: its logs, tracebacks and metrics.
    logs = cli(labloom_home, "logs", kept).stdout
    assert "training 1" in logs and "ValueError: diverged" in logs
    assert len(cli_json(labloom_home, "experiments", kept)) == 3
    gone = cli(labloom_home, "show", old[0])
    assert gone.returncode == 2 and "no run" in gone.stderr

    named = cli(labloom_home, "delete", nightly)
    assert named.returncode == 0 and "deleted 1 run(s)" in named.stdout
    assert [run["id"] for run in cli_json(labloom_home, "runs")] == [kept]


def test_a_run_still_going_and_another_users_run_are_kept(
    tmp_path: Path, labloom_home: Path, store_backend: str
) -> None:
    script, release = tmp_path / "flows.py", tmp_path / "release"
    script.write_text(FLOWS)
    run_script(labloom_home, script, "sweep", USER="alice", LOGNAME="alice")
    [alices] = [run["id"] for run in cli_json(labloom_home, "runs")]
    going = subprocess.Popen([sys.executable, str(script), "nightly", str(release)],
                             env=env_for(labloom_home), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not release.with_suffix(".started").exists():
            assert time.monotonic() < deadline and going.poll() is None
            time.sleep(0.05)
        running = next(run["id"] for run in cli_json(labloom_home, "runs")
                       if run["flow_name"] == "nightly")
        age([alices, running], 40)
        kept = cli(labloom_home, "delete", running, alices, USER="bob", LOGNAME="bob")
        assert kept.returncode == 1
        assert f"kept 1 run(s) still going: {running}" in kept.stdout
        assert f"only an admin may delete them, LABLOOM_ADMINS): {alices}" in kept.stdout
        assert rows_of(running)["flow_runs"] == 1 and rows_of(alices)["flow_runs"] == 1
        by_admin = json.loads(cli(labloom_home, "delete", "--older-than", "30", "--json",
                                  USER="bob", LOGNAME="bob", LABLOOM_ADMINS="bob").stdout)
        assert by_admin["deleted"] == [alices] and by_admin["kept_running"] == [running]
    finally:
        release.touch()
        going.wait(60)
    assert rows_of(alices)["flow_runs"] == 0 and rows_of(running)["flow_runs"] == 1


def test_bad_input_is_one_line_naming_the_fix(labloom_home: Path) -> None:
    for args, says in [
        ((), "name the runs to delete (RUN_ID ...) or give --older-than DAYS"),
        (("abc", "--older-than", "3"), "not both"),
        (("--older-than", "0"), "--older-than must be a finite number of days > 0, got '0'"),
        (("--older-than", "nan"), "--older-than must be a finite number of days > 0"),
        (("nosuchrun",), "no run 'nosuchrun' in the store"),
    ]:
        done = cli(labloom_home, "delete", *args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
