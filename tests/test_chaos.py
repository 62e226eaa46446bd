"""The chaos suite: kill what can be killed, damage what can be damaged, then read the store.

Four attacks, each on real parts (a Dask LocalCluster with worker processes, real processes
SIGKILLed, `labloom serve` SIGKILLed and replaced by two servers, a store file overwritten):
nothing finished is lost, nothing runs twice, every error is one line. The figures each attack
produces (how much had finished when it struck, what ran again) go to
test-artifacts/chaos.json, and from there to the Reliability section of benchmarks/README.md.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, labloom, slot_rows, start_labloom, stop, wait_for, write
from labloom import DaskExecutor, State, flow, task, unmapped
from labloom.store import open_store
from side_effects import APPEND_LINE
from store_helpers import env_for
from system_programs import require_system

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
_figures: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def chaos_report() -> Iterator[None]:
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "chaos.json").write_text(json.dumps(_figures, indent=1))


def ledger_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def in_flight(ledger: Path) -> list[int]:
    """The processes running an experiment now: started one they have not ended."""
    open_by_pid: collections.Counter[str] = collections.Counter()
    for entry in ledger_lines(ledger):
        open_by_pid[entry[2]] += 1 if entry[0] == "start" else -1
    return sorted(int(pid) for pid, count in open_by_pid.items() if count > 0)


def one_line_errors(out: subprocess.CompletedProcess[str]) -> bool:
    return out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


# --- 1. a Dask worker killed mid-map -------------------------------------------------------


@task
def experiment(i: int, ledger: str) -> int:
    with open(ledger, "a") as out:
        out.write(f"start {i} {os.getpid()}\n")
    time.sleep(0.2)
    with open(ledger, "a") as out:
        out.write(f"end {i} {os.getpid()}\n")
    return i * i


@flow
def experiments(n: int, ledger: str) -> list[int]:
    return experiment.map(range(n), unmapped(ledger))  # type: ignore[return-value]


def test_a_dask_worker_killed_mid_map(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    ledger = tmp_path / "ledger"
    began = time.monotonic()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  dashboard_address=":0") as cluster:
        run = experiments.run(n=40, ledger=str(ledger), executor=DaskExecutor(cluster=cluster),
                              background=True)
        wait_for(lambda: sum(1 for e in ledger_lines(ledger) if e[0] == "end") >= 8, 60,
                 "eight experiments to finish")
        finished_before = {int(e[1]) for e in ledger_lines(ledger) if e[0] == "end"}
        # A worker process with an experiment started and not ended: killed mid-task (or,
        # if it ends meanwhile, with results Dask said finished and the engine may not have
        # read yet: the moment that left a task run Running for good, test_dask_lost_results)
        victim = wait_for(lambda: in_flight(ledger), 60, "an experiment running")[0]
        os.kill(victim, signal.SIGKILL)
        assert run.wait(120) is State.COMPLETED
        assert run.result() == [i * i for i in range(40)]
    elapsed = time.monotonic() - began
    ends = collections.Counter(int(e[1]) for e in ledger_lines(ledger) if e[0] == "end")
    with open_store() as store:
        tasks = store.task_runs(run.id, history=True)
    assert len(tasks) == 40 and {t.state for t in tasks} == {"Completed"}
    # Recorded once each: one task run per experiment, completed once, never twice.
    assert all([h["state"] for h in t.history].count("Completed") == 1 for t in tasks)
    assert all(ends[i] >= 1 for i in range(40))  # nothing finished was lost
    _figures["dask worker killed mid-map"] = {
        "task runs": 40, "finished before the kill": len(finished_before),
        "executed again by Dask (their worker died)": sum(n - 1 for n in ends.values()),
        "recorded Completed twice": 0, "seconds": round(elapsed, 1),
    }


# --- 2. a process SIGKILLed mid-run, then retried -------------------------------------------

STALLS = """
import os, sys, time
from labloom import flow, task
""" + APPEND_LINE + """
LEDGER = os.environ["CHAOS_LEDGER"]  # also in `labloom retry`, which imports this file

@task
def quick(i):
    append_line(LEDGER, f"quick {i}")
    return i

@task
def slow(values):
    append_line(LEDGER, "slow")
    if not os.path.exists(LEDGER + ".fixed"):
        time.sleep(120)  # killed here the first time
    return sum(values)

@flow
def stalls():
    return slow(quick.map(range(20)))

if __name__ == "__main__":
    stalls()
"""


def completed_in_store(home: Path) -> int:
    if not (home / "labloom.db").exists():
        return 0
    conn = sqlite3.connect(home / "labloom.db", timeout=30)
    try:
        return int(conn.execute(
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Completed'").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def test_a_process_sigkilled_mid_run_then_retried(tmp_path: Path) -> None:
    script, ledger, home = tmp_path / "stalls.py", tmp_path / "ledger", tmp_path / "home"
    script.write_text(STALLS)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script)],
                            env=env_for(home, LABLOOM_RESULTS="all", CHAOS_LEDGER=str(ledger)))
    try:
        wait_for(lambda: completed_in_store(home) == 20, 60,
                 "the quick task runs recorded Completed, the slow one running")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    runs = json.loads(labloom(home, "runs", "--json", cwd=tmp_path).stdout)
    assert [(r["state"], r["origin"]) for r in runs] == [("Crashed", "script")]
    shown = json.loads(labloom(home, "show", runs[0]["id"], "--json", cwd=tmp_path).stdout)
    states = collections.Counter(t["state"] for t in shown["task_runs"])
    assert states == {"Completed": 20, "Cancelled": 1}  # every finished task run kept
    (tmp_path / "ledger.fixed").touch()
    retried = labloom(home, "retry", runs[0]["id"], cwd=tmp_path, CHAOS_LEDGER=str(ledger))
    assert retried.returncode == 0, retried.stderr
    assert "reused 20 result(s); ran 1 task run(s)" in retried.stdout
    counts = collections.Counter(ledger.read_text().splitlines())
    assert all(counts[f"quick {i}"] == 1 for i in range(20))  # nothing ran twice
    assert counts["slow"] == 2  # the one that never finished ran again
    _figures["process SIGKILLed mid-run, then `labloom retry`"] = {
        "task runs finished before the kill": 20, "kept in the store": states["Completed"],
        "ran again on retry": 1, "finished ones ran again": 0,
        "seconds": round(time.monotonic() - began, 1),
    }


# --- 3. `labloom serve` SIGKILLed mid-slot, replaced by two servers ---------------------------

JOB = """
    import os, time
    from labloom import flow, task

    @task
    def work(out):
        slot = os.environ["LABLOOM_SCHEDULED_TIME"]
        with open(out, "a") as f:
            f.write(f"start {slot} {time.time()}\\n")
        time.sleep(1.5)
        with open(out, "a") as f:
            f.write(f"end {slot} {time.time()}\\n")

    @flow
    def job(out: str):
        work(out)
"""


def test_serve_sigkilled_mid_slot_then_two_servers(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", JOB)
    out = tmp_path / "out.txt"
    added = labloom(tmp_path, "schedule", "add", "flows.py:job", "--every", "1s",
                    "-p", f"out={out}")
    assert added.returncode == 0, added.stderr
    began = time.monotonic()
    first = start_labloom(tmp_path, "serve", "--tick", "0.1")
    replacements: list[subprocess.Popen[str]] = []
    try:
        wait_for(lambda: any(r["status"] == "running" and r["run_id"]
                             for r in slot_rows(tmp_path)), 60, "a slot running its run")
        [orphan] = [r for r in slot_rows(tmp_path) if r["status"] == "running"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        replacements = [start_labloom(tmp_path, "serve", "--tick", "0.1") for _ in range(2)]
        wait_for(lambda: sum(r["status"] == "completed" for r in slot_rows(tmp_path)) >= 4, 60,
                 "four completed slots")
        for proc in replacements:
            proc.send_signal(signal.SIGTERM)
        for proc in replacements:
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    finally:
        for proc in [first, *replacements]:
            stop(proc)
    rows = slot_rows(tmp_path)
    by_slot = {r["slot_time"]: r for r in rows}
    assert (by_slot[orphan["slot_time"]]["status"], by_slot[orphan["slot_time"]]["run_id"]) == (
        "completed", orphan["run_id"])  # its run finished; the slot says so, never "lost"
    assert "lost" not in [r["status"] for r in rows]
    starts = collections.Counter(e[1] for e in ledger_lines(out) if e[0] == "start")
    assert starts and max(starts.values()) == 1  # no slot ran twice
    spans = sorted((float(s), float(e)) for s, e in _spans(out).values())
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))  # no overlap
    _figures["`labloom serve` SIGKILLed mid-slot, two servers started"] = {
        "slots run": len(starts), "slots run twice": 0, "overlapping runs": 0,
        "slots lost": 0, "the killed server's slot": "completed, with its run id",
        "seconds": round(time.monotonic() - began, 1),
    }


def _spans(out: Path) -> dict[str, tuple[str, str]]:
    begun: dict[str, str] = {}
    spans: dict[str, tuple[str, str]] = {}
    for kind, slot, when in ledger_lines(out):
        if kind == "start":
            begun[slot] = when
        elif slot in begun:
            spans[slot] = (begun[slot], when)
    return spans


# --- 4. a damaged store and an unwritable home ------------------------------------------------

SMALL = """
    from labloom import flow, task

    @task
    def one():
        return 1

    @flow
    def small():
        return one()
"""
COMMANDS = [["runs"], ["show", "x"], ["logs", "x"], ["retry", "x"], ["schedule", "list"],
            ["limit", "list"]]


def test_a_damaged_store_and_an_unwritable_home(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", SMALL)
    home = tmp_path / "home"
    assert labloom(home, "run", "flows.py:small", cwd=tmp_path).returncode == 0
    (home / "labloom.db").write_bytes(os.urandom(4096))  # overwritten with garbage
    for wal in home.glob("labloom.db-*"):
        wal.unlink()
    errors = [labloom(home, *command, cwd=tmp_path) for command in COMMANDS]
    assert all(e.returncode == 2 and one_line_errors(e) for e in errors), errors
    ran = labloom(home, "run", "flows.py:small", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert ran.returncode == 0 and ran.stderr.count("not being recorded") == 1, ran.stderr
    # The fix the message names: move the file aside; labloom starts a new store.
    (home / "labloom.db").rename(home / "labloom.db.broken")
    assert labloom(home, "run", "flows.py:small", cwd=tmp_path).returncode == 0
    assert [r["state"] for r in json.loads(labloom(home, "runs", "--json").stdout)] == [
        "Completed"]

    (tmp_path / "afile").write_text("")
    nowhere = tmp_path / "afile" / "home"  # cannot be made, even by root
    home_errors = [labloom(nowhere, *command, cwd=tmp_path) for command in COMMANDS]
    assert all(e.returncode == 2 and one_line_errors(e) for e in home_errors), home_errors
    ran = labloom(nowhere, "run", "flows.py:small", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert ran.returncode == 0 and ran.stderr.count("not being recorded") == 1, ran.stderr
    _figures["damaged store file, home that cannot be made"] = {
        "commands tried": 2 * len(COMMANDS), "one-line errors with status 2": 2 * len(COMMANDS),
        "tracebacks": 0, "flows that still ran (with one warning)": 2,
    }


# --- 5. text no database can hold, and a row the database refuses (issue 18, item 1) ---------

UNSTORABLE = """
    import logging
    from labloom import flow, task

    # What os.listdir gives for a file named caf\\xe9.csv on a UTF-8 system: a lone surrogate.
    NAME = b"caf\\xe9.csv".decode("utf-8", "surrogateescape")
    log = logging.getLogger("chaos")

    @task(name="read " + NAME)
    def read(path: str) -> int:
        print("opening", NAME, "and", path)
        print("a NUL here:\\x00 end")
        log.warning("cannot decode %s", NAME)
        return 1

    @task
    def refused() -> int:
        for i in range(60):
            print("line", i)
        log.log(2**70, "a level no INTEGER column holds")  # a row both databases refuse
        return 2

    @task
    def boom(n: int) -> int:
        raise ValueError(f"cannot read {NAME}")

    @flow(name="report " + NAME)
    def report(path: str, fail: bool = True) -> object:
        first = read(path)
        if fail:
            return boom(first)
        return [first, refused()]
"""
ESCAPED = "caf\\udce9.csv"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The environment naming the store: SQLite in LABLOOM_HOME, or a fresh PostgreSQL
    database on the test server."""
    if request.param == "sqlite":
        yield {}
        return
    server = request.getfixturevalue("postgres_server")
    name = server.new_database()
    yield {"LABLOOM_DATABASE_URL": server.url(name)}
    server.drop_database(name)


def run_bytes(home: Path, *args: str | bytes, cwd: Path,
              **extra: str) -> subprocess.CompletedProcess[str]:
    """`labloom ...` with arguments that may be bytes (a file name that is not UTF-8)."""
    return subprocess.run(
        [sys.executable, "-m", "labloom", *args], env=cli_env(home, **extra), cwd=cwd,
        capture_output=True, text=True, errors="replace", timeout=120,
    )


def read_json(home: Path, *args: str, **extra: str) -> Any:
    done = labloom(home, *args, "--json", cwd=home.parent, **extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_text_no_database_holds_and_a_refused_row_cost_nothing_else(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    write(tmp_path / "flows.py", UNSTORABLE)
    home = tmp_path / "home"
    env = {"LABLOOM_PROGRESS": "0", **store_env}
    failed = run_bytes(home, "run", "flows.py:report", "-p", b"path=a\xe9", cwd=tmp_path, **env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "missing" not in failed.stderr  # nothing was lost: it was escaped
    [run] = read_json(home, "runs", **env)
    assert (run["flow_name"], run["state"]) == (f"report {ESCAPED}", "Failed")
    assert run["parameters"]["path"] == "a\\udce9"  # from argv, decoded with surrogateescape
    shown = read_json(home, "show", run["id"], **env)
    tasks = {t["name"]: t for t in shown["task_runs"]}
    assert tasks[f"read {ESCAPED}"]["state"] == "Completed"
    assert tasks["boom"]["state"] == "Failed"
    assert f"cannot read {ESCAPED}" in tasks["boom"]["message"]
    assert f"cannot read {ESCAPED}" in labloom(home, "logs", run["id"], "--task", "boom",
                                                cwd=tmp_path, **env).stdout  # the traceback
    texts = [line["text"] for line in read_json(home, "logs", run["id"], **env)["lines"]]
    assert f"opening {ESCAPED} and a\\udce9" in texts
    assert "a NUL here:\\x00 end" in texts
    assert f"chaos: cannot decode {ESCAPED}" in texts
    assert sum("backslash-escaped" in text for text in texts) == 1  # the note, once

    completed = run_bytes(home, "run", "flows.py:report", "-p", "path=x", "-p", "fail=false",
                          cwd=tmp_path, **env)
    # The run completed but one log line is not in the store: say so, exit 3 (not 0).
    assert completed.returncode == 3, completed.stderr
    assert completed.stderr.count("is missing 1 record(s) of run") == 1, completed.stderr
    newest = read_json(home, "runs", **env)[0]
    assert (newest["state"], newest["counts"]) == ("Completed", {"Completed": 2})
    lines = read_json(home, "logs", newest["id"], "--task", "refused", **env)["lines"]
    assert [line["text"] for line in lines] == [f"line {i}" for i in range(60)]
    _figures.setdefault("text no database holds, a row it refuses", {})[
        "postgresql" if store_env else "sqlite"] = {
        "texts escaped (log, logging, error, traceback, parameter, names)": 7,
        "runs lost": 0, "rows refused and dropped": 1, "other rows of that batch kept": 60,
        "exit status of the completed run missing a row": completed.returncode,
    }


# --- 6. the store's disk full mid-run (issue 18, item 2) --------------------------------------

FILLS = """
    import json, os, sqlite3, subprocess, sys, time
    from labloom import flow, task, unmapped

    def recorded(db: str) -> bool:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0] > 0
        except sqlite3.Error:
            return False

    @task
    def fill(store: str) -> str:
        # Mid-run: once the run is in the store, a task fills its disk with a big file.
        deadline = time.monotonic() + 60
        while not recorded(os.path.join(store, "labloom.db")) and time.monotonic() < deadline:
            time.sleep(0.05)
        ballast = os.path.join(store, "ballast")
        # Unbuffered: a buffered file kept the bytes a short write left (when the room left
        # was not a whole chunk), and closing it raised ENOSPC again, outside the try.
        with open(ballast, "wb", buffering=0) as out:
            try:
                while True:
                    out.write(bytes(65536))
            except OSError:  # ENOSPC: the disk is full
                pass
        return ballast

    @task
    def free(ballast: str, out: str, hold: float) -> None:
        looked = subprocess.run([sys.executable, "-m", "labloom", "runs"], capture_output=True,
                                text=True)
        with open(os.path.join(out, "runs-while-full.json"), "w") as f:
            json.dump({"status": looked.returncode, "stderr": looked.stderr}, f)
        time.sleep(hold)
        os.unlink(ballast)  # space comes back

    @task
    def work(i: int, ballast: str) -> int:
        print(f"line {i} " + "x" * 2000)  # lines that need space the disk no longer has
        time.sleep(0.01)
        return i

    @flow
    def fills(store: str, out: str, hold: float = 3.0) -> object:
        ballast = fill(store)
        free(ballast, out, hold)
        return work.map(range(120), unmapped(ballast))
"""
# Inside a mount namespace of its own: a 4 MB tmpfs holds the store; the results go outside.
IN_NAMESPACE = """
set -e
mount -t tmpfs -o size=4m tmpfs "$LABLOOM_HOME"
cd "$OUT"
set +e
python3 -m labloom run flows.py:fills -p store="$LABLOOM_HOME" -p out="$OUT" $HOLD \
    > run.out 2> run.err
echo $? > run.status
python3 -m labloom runs --json > runs.json
python3 -m labloom logs "$(python3 -c 'import json; print(json.load(open("runs.json"))[0]["id"])')" \
    --json > logs.json
"""


def mount_namespace() -> list[str]:
    """The command that runs a shell where it may mount a tmpfs of its own: a real full disk
    without touching the machine's (root, or unprivileged user namespaces, needed)."""
    unshare = shutil.which("unshare")
    command = [unshare or "unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    with tempfile.TemporaryDirectory() as probe:
        works = unshare is not None and subprocess.run(
            [*command, 'mount -t tmpfs -o size=1m tmpfs "$0"', probe], capture_output=True,
        ).returncode == 0
    require_system(None if works else (
        "a real full disk needs a small tmpfs mounted in a mount namespace: `unshare "
        "--user --map-root-user --mount` must work (root, or unprivileged user namespaces)"))
    return command


def fill_the_disk(tmp_path: Path, hold: float, limited: bool = False,
                  **extra: str) -> dict[str, Any]:
    """``limited``: the 120 task runs tagged ``db``, limited to 2 at once (each take and give
    back is a write of its own: 16 MB, so that their WAL fits once space is back)."""
    flows, script = FILLS, IN_NAMESPACE
    if limited:
        flows = flows.replace("    @task\n    def work(", "    @task(tags=['db'])\n    def work(")
        script = script.replace("size=4m", "size=16m").replace(
            'cd "$OUT"\n', 'cd "$OUT"\npython3 -m labloom limit set db 2 > /dev/null\n').replace(
            "python3 -m labloom run flows", "timeout 120 python3 -m labloom run flows")  # hung
        assert flows != FILLS and script.count("limit set") == script.count("timeout 120") == 1
    write(tmp_path / "flows.py", flows)
    store = tmp_path / "store"
    store.mkdir()
    began = time.monotonic()
    subprocess.run([*mount_namespace(), script], check=True, timeout=300, env=cli_env(
        store, OUT=str(tmp_path), HOLD=f"-p hold={hold}", LABLOOM_PROGRESS="0", **extra))
    return {
        "status": int((tmp_path / "run.status").read_text()),
        "stderr": (tmp_path / "run.err").read_text(),
        "runs": json.loads((tmp_path / "runs.json").read_text()),
        "lines": json.loads((tmp_path / "logs.json").read_text())["lines"],
        "while full": json.loads((tmp_path / "runs-while-full.json").read_text()),
        "seconds": round(time.monotonic() - began, 1),
    }


def test_the_store_disk_full_for_seconds_loses_nothing(tmp_path: Path) -> None:
    got = fill_the_disk(tmp_path, hold=3.0)
    assert got["status"] == 0, got["stderr"]
    # Said once that it waits, once that it is back; nothing else.
    assert got["stderr"].count("cannot be written now") == 1, got["stderr"]
    assert got["stderr"].count("is written again") == 1, got["stderr"]
    assert got["stderr"].count("\n") == 2 and "Traceback" not in got["stderr"], got["stderr"]
    [run] = got["runs"]
    assert (run["state"], run["counts"]) == ("Completed", {"Completed": 122})
    assert sum(line["text"].startswith("line ") for line in got["lines"]) == 120
    # `labloom runs` while the disk was full: the listing (reading needs no space), or one
    # line saying the disk is full; never a traceback.
    looked = got["while full"]
    assert looked["status"] == 0 or (
        looked["status"] == 2 and looked["stderr"].count("\n") == 1
        and "is full" in looked["stderr"]), looked
    _figures["store disk full for 3 s mid-run"] = {
        "log lines": 120, "recorded": 120, "final state": run["state"],
        "exit status": got["status"],
        "`labloom runs` while full": "listed" if looked["status"] == 0 else "one line",
        "seconds": got["seconds"],
    }


def test_the_store_disk_full_under_a_concurrency_limit(tmp_path: Path) -> None:
    # The slots of `labloom limit set` are taken and given back in the store. Before, a give
    # back that met the full disk raised into the task thread (a traceback each) and the run
    # never ended: its waiting task runs were not asked again.
    got = fill_the_disk(tmp_path, hold=3.0, limited=True, LABLOOM_STORE_OUTAGE="60")
    assert got["status"] == 0, got["stderr"]
    assert "Traceback" not in got["stderr"], got["stderr"]
    [run] = got["runs"]
    assert (run["state"], run["counts"]) == ("Completed", {"Completed": 122})
    assert sum(line["text"].startswith("line ") for line in got["lines"]) == 120


@pytest.mark.parametrize("limit", ["LABLOOM_STORE_OUTAGE=1", "LABLOOM_STORE_BACKLOG=50"])
def test_rows_dropped_while_the_disk_was_full_are_counted(tmp_path: Path, limit: str) -> None:
    """Past the patience (rows dropped after 1 s) or the memory bound (log lines dropped past
    50 waiting events), the run says how many records the store is missing and exits 3; its
    final state is still written when space comes back."""
    name, value = limit.split("=")
    got = fill_the_disk(tmp_path, hold=4.0, **{name: value})
    assert got["status"] == 3, got["stderr"]
    missing = [line for line in got["stderr"].splitlines() if "is missing" in line]
    assert len(missing) == 1 and "Traceback" not in got["stderr"], got["stderr"]
    count = int(missing[0].split("is missing ")[1].split()[0])
    [run] = got["runs"]
    assert run["state"] == "Completed"
    kept = sum(line["text"].startswith("line ") for line in got["lines"])
    assert 0 < 120 - kept <= count, (kept, count)
    _figures[f"store disk full for 4 s, {limit}"] = {
        "log lines": 120, "recorded": kept, "records said missing": count,
        "final state": run["state"], "exit status": got["status"],
    }


# --- 7. the store file deleted or replaced mid-run (issue 18, item 2) -------------------------

TAMPERED = """
    import os, sqlite3, time
    from labloom import flow, task, unmapped

    def recorded(db: str) -> int:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return conn.execute("SELECT COUNT(*) FROM task_runs WHERE state = 'Completed'"
                                    ).fetchone()[0]
        except sqlite3.Error:
            return 0

    @task
    def early(i: int) -> int:
        print("early", i)
        return i

    @task
    def tamper(home: str, how: str, early: list) -> str:
        db = os.path.join(home, "labloom.db")
        deadline = time.monotonic() + 60  # once the early ones are recorded:
        while recorded(db) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        if how == "deleted":  # a clean-up script
            os.unlink(db)
        else:  # a backup restored over it
            os.replace(os.path.join(home, "backup.db"), db)
        return how

    @task
    def late(i: int, after: str) -> int:
        print("late", i)
        time.sleep(0.01)
        return i

    @flow
    def tampered(home: str, how: str) -> object:
        done = early.map(range(20))
        return late.map(range(100), unmapped(tamper(home, how, done)))
"""


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_the_store_file_deleted_or_replaced_mid_run(tmp_path: Path, how: str) -> None:
    write(tmp_path / "flows.py", TAMPERED + SMALL)
    home, other = tmp_path / "home", tmp_path / "other"
    assert labloom(other, "run", "flows.py:small", cwd=tmp_path).returncode == 0
    home.mkdir()
    with sqlite3.connect(other / "labloom.db") as source:  # a backup: one run of its own
        source.execute("VACUUM INTO ?", (str(home / "backup.db"),))
    source.close()
    ran = labloom(home, "run", "flows.py:tampered", "-p", f"home={home}", "-p", f"how={how}",
                  cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert ran.returncode == 0, ran.stderr  # the record was made whole again: nothing lost
    assert ran.stderr.count(f"was {how}") == 1 and ran.stderr.count("\n") == 1, ran.stderr
    runs = read_json(home, "runs")
    [run] = [r for r in runs if r["flow_name"] == "tampered"]
    assert (run["state"], run["counts"]) == ("Completed", {"Completed": 121})
    texts = [line["text"] for line in read_json(home, "logs", run["id"])["lines"]]
    assert sorted(texts) == sorted([f"early {i}" for i in range(20)]
                                   + [f"late {i}" for i in range(100)])
    if how == "replaced":  # the backup's own history is still there
        assert [r["flow_name"] for r in runs if r["id"] != run["id"]] == ["small"]
    _figures[f"store file {how} mid-run"] = {
        "task runs": 121, "recorded": sum(run["counts"].values()), "log lines": 120,
        "log lines recorded": len(texts), "warnings": 1, "exit status": ran.returncode,
    }


# --- 8. PostgreSQL unreachable, or refusing the credentials (issue 18, item 4) ----------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_postgresql_unreachable_or_refusing_costs_seconds_and_one_line(
    tmp_path: Path, postgres_server: Any
) -> None:
    write(tmp_path / "flows.py", SMALL)
    home = tmp_path / "home"
    right = postgres_server.password_role("labloom_chaos", "right")
    stores = {
        "nobody listens": (f"postgresql://postgres@127.0.0.1:{free_port()}/labloom",
                           "cannot reach the store"),
        "wrong password": (right.replace(":right@", ":wrong@"), "refused the credentials"),
    }
    figures = {}
    for what, (url, said) in stores.items():
        began = time.monotonic()
        ran = labloom(home, "run", "flows.py:small", cwd=tmp_path, timeout=60,
                      LABLOOM_DATABASE_URL=url, LABLOOM_PROGRESS="0")
        took = time.monotonic() - began
        # The flow ran; one line says what happened and that the run is not recorded.
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr.count("\n") == 1 and said in ran.stderr, ran.stderr
        assert "not being recorded" in ran.stderr and "psycopg" not in ran.stderr, ran.stderr
        assert ("check that the server runs" in ran.stderr) == (what == "nobody listens")
        listed = labloom(home, "runs", cwd=tmp_path, LABLOOM_DATABASE_URL=url)
        assert listed.returncode == 2 and one_line_errors(listed) and said in listed.stderr
        assert ":wrong@" not in ran.stderr + listed.stderr  # the password is never shown
        figures[what] = {"seconds": round(took, 1), "lines on stderr": 1, "exit status": 0}
    ran = labloom(home, "run", "flows.py:small", cwd=tmp_path, LABLOOM_DATABASE_URL=right)
    assert ran.returncode == 0 and "recorded" not in ran.stderr, ran.stderr
    assert [r["state"] for r in read_json(home, "runs", LABLOOM_DATABASE_URL=right)] == [
        "Completed"]
    _figures["PostgreSQL unreachable or refusing at start"] = figures
