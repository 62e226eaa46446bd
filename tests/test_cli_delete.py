"""`labloom delete`: ended runs deleted with every row of them, on both backends, through the
real entry point; runs still going and other users' runs kept."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import wait_for
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

@task(cache=True)
def square(i):
    return i * i

@flow
def squares(n: int = 3):
    return square.map(range(n))

if __name__ == "__main__":
    if sys.argv[1] == "sweep":
        sweep.run()
    elif sys.argv[1] == "squares":
        squares.run(n=int(sys.argv[2]))
    else:
        nightly.run(path=sys.argv[2] if len(sys.argv) > 2 else "")
"""

# Every table that holds rows of a run, by its run_id column.
RUN_TABLES = ("task_runs", "task_states", "logs", "log_cuts", "experiment_values", "run_nodes")


def listed_running(home: Path) -> str | None:
    """The id of the nightly run `labloom runs` lists Running. Not as soon as its task has
    started: the run's row is written by its store's writer a moment later (a batch), and
    under load a read then could find no run yet (session 48)."""
    return next((run["id"] for run in cli_json(home, "runs")
                 if run["flow_name"] == "nightly" and run["state"] == "Running"), None)


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
        running = wait_for(lambda: listed_running(labloom_home), 60, "the run in the store")
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


def result_files(home: Path) -> set[str]:
    return {path.name for path in (home / "results").rglob("*.pkl")}


def test_a_deleted_runs_result_files_go_unless_a_kept_run_names_them(
    tmp_path: Path, labloom_home: Path, store_backend: str
) -> None:
    # Deleting old runs is how a team frees disk; the result files (results/, named by
    # cache key and shared by every run with that key) stayed, and only grew.
    script = tmp_path / "flows.py"
    script.write_text(FLOWS)
    assert run_script(labloom_home, script, "squares", "3").returncode == 0
    [first] = [run["id"] for run in cli_json(labloom_home, "runs")]
    all_three = result_files(labloom_home)
    assert len(all_three) == 3
    assert run_script(labloom_home, script, "squares", "2").returncode == 0  # hits 0 and 1
    second = next(run["id"] for run in cli_json(labloom_home, "runs") if run["id"] != first)
    assert cli_json(labloom_home, "show", second)["counts"] == {"Cached": 2}

    dry = cli(labloom_home, "delete", first, "--dry-run")
    assert "would delete 1 run(s) (3 task runs, 1 result file(s))" in dry.stdout, dry
    assert result_files(labloom_home) == all_three
    done = cli_json(labloom_home, "delete", first)
    assert done["deleted"] == [first]
    assert done["result_files"]["deleted"] == 1 and done["result_files"]["kept_shared"] == 2
    assert done["result_files"]["bytes"] > 0
    kept = result_files(labloom_home)
    assert len(kept) == 2 and kept < all_three  # the two the second run loaded
    # The kept run's cache hits still load: a third run hits both files again.
    assert run_script(labloom_home, script, "squares", "2").returncode == 0
    newest = cli_json(labloom_home, "runs")[0]["id"]
    assert cli_json(labloom_home, "show", newest)["counts"] == {"Cached": 2}

    last = cli(labloom_home, "delete", second, newest)
    assert last.returncode == 0 and "2 result file(s)" in last.stdout, last
    assert result_files(labloom_home) == set()


def _fake_crashed(run_id: str, **row: object) -> None:
    conn = get_database().connect()
    try:
        sets = ", ".join(f"{name} = ?" for name in row)
        conn.execute(f"UPDATE flow_runs SET state = 'Crashed', {sets} WHERE id = ?",
                     (*row.values(), run_id))
    finally:
        conn.close()


def test_a_run_marked_crashed_while_its_process_lives_is_kept(
    tmp_path: Path, labloom_home: Path, store_backend: str
) -> None:
    # A run on another host, frozen (SIGSTOP here: a host cut off from the store, a
    # PostgreSQL failover) past the heartbeat timeout: a read here marks it Crashed. Deleting
    # it then deleted the rows of a run whose next beat makes it Running again.
    script, release = tmp_path / "flows.py", tmp_path / "release"
    script.write_text(FLOWS)
    going = subprocess.Popen([sys.executable, str(script), "nightly", str(release)],
                             env=env_for(labloom_home, LABLOOM_HOST="far-host"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not release.with_suffix(".started").exists():
            assert time.monotonic() < deadline and going.poll() is None
            time.sleep(0.05)
        run = {"id": wait_for(lambda: listed_running(labloom_home), 60, "the run in the store")}
        going.send_signal(signal.SIGSTOP)
        try:
            conn = get_database().connect()
            try:  # silent for two minutes, as it seems from here
                conn.execute("UPDATE flow_runs SET heartbeat = ? WHERE id = ?",
                             (time.time() - 120, run["id"]))
            finally:
                conn.close()
            assert cli_json(labloom_home, "show", run["id"])["state"] == "Crashed"
            kept = cli(labloom_home, "delete", run["id"])
            assert kept.returncode == 1, kept
            assert (f"kept run {run['id']}: it was marked Crashed for its silence, but its "
                    "process (pid") in kept.stdout
            assert re.search(r"on far-host\) beat 1[2-4]\ds ago and may still be writing",
                             kept.stdout), kept.stdout  # two minutes and the seconds since
            assert rows_of(run["id"])["flow_runs"] == 1
        finally:
            going.send_signal(signal.SIGCONT)
        release.touch()
        assert going.wait(60) == 0
    finally:
        release.touch()
        if going.poll() is None:
            going.kill()
            going.wait()
    assert cli_json(labloom_home, "show", run["id"])["state"] == "Completed"

    # Its own host saw its process gone (a reader there asked the pid): it is dead for good,
    # whichever host deletes it; past the heartbeat timeout and the store outage its writer
    # waits out, it cannot come back either; and on this host its pid tells at once.
    _fake_crashed(run["id"], heartbeat=time.time() - 90, message=(
        "crashed: its process (pid 4321 on far-host) is gone; finished task runs are kept"))
    assert cli(labloom_home, "delete", run["id"], "--dry-run").returncode == 0
    _fake_crashed(run["id"], heartbeat=time.time() - 700)
    assert cli_json(labloom_home, "delete", run["id"])["deleted"] == [run["id"]]
    assert run_script(labloom_home, script, "nightly").returncode == 0
    [here] = cli_json(labloom_home, "runs")
    _fake_crashed(here["id"], host=socket.gethostname(), pid=os.getpid())  # alive: this test
    alive = cli_json(labloom_home, "delete", here["id"], status=1)
    assert "still lives" in alive["kept_may_live"][here["id"]]
    _fake_crashed(here["id"], pid=going.pid)  # ended
    assert cli_json(labloom_home, "delete", here["id"])["deleted"] == [here["id"]]
