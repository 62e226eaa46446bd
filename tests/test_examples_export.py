"""The example notebooks on the path a user takes them: exported to a module, run with
`labloom run`, scheduled and served, with a failure alert. Every command is the real CLI in a
subprocess, on copies of the notebooks in tmp; every wait is bounded, every process stopped."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Hook, cli_env, first_slot_in, labloom, start_labloom, stop, wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUIET = {"LABLOOM_PROGRESS": "0"}
SECRET = "PATIENT_4711"  # a parameter value no alert may carry


def run_cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return labloom(home, *args, timeout=timeout, **QUIET)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder holding copies of the examples (in examples-copy/), as on a fresh checkout:
    the ETL's demo production database is not there until a flow makes it."""
    copies = tmp_path / "examples-copy"
    copies.mkdir()
    for name in ("etl.ipynb", "sweep.ipynb", "quickstart.ipynb"):
        shutil.copy(EXAMPLES / name, copies / name)
    return tmp_path


OUTPUT = "labloom-output"  # where the examples write, ignored by git


def production_rows(folder: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(folder / OUTPUT / "production.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(f'SELECT * FROM "{table}"')]


def lake_rows(lake: Path, table: str) -> list[dict[str, Any]]:
    lines = (lake / table / "part-0.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def assert_lake(folder: Path, lake: Path, tables: list[str]) -> None:
    """The lake the notebook's flow writes: one folder per table, snake_case columns, text
    trimmed, no negative amounts, a load timestamp."""
    assert sorted(p.name for p in lake.iterdir()) == sorted(t.lower() for t in tables)
    for table in tables:
        source = production_rows(folder, table)
        kept = [r for r in source if r.get("Amount") is None or r["Amount"] >= 0]
        rows = lake_rows(lake, table.lower())
        assert len(rows) == len(kept) > 0
        expected = {k.lower(): v.strip() if isinstance(v, str) else v for k, v in kept[0].items()}
        loaded_at = rows[0].pop("loaded_at")
        assert rows[0] == expected and len(loaded_at) == 19


def runs(home: Path) -> list[dict[str, Any]]:
    out = run_cli(home, "runs", "--json", "--limit", "100")
    assert out.returncode == 0, out.stderr
    data: list[dict[str, Any]] = json.loads(out.stdout)
    return data


def fresh_import(folder: Path, module: str, flow: str) -> None:
    """The exported module imports in a fresh interpreter, and holds the flow."""
    code = f"import {module}; print(type({module}.{flow}).__name__, {module}.{flow}.name)"
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=cli_env(folder),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Flow", flow]


def test_etl_exports_to_a_module_that_runs(work: Path) -> None:
    out = run_cli(work, "export", "examples-copy/etl.ipynb", "-o", "etl_flow.py")
    assert out.returncode == 0, out.stderr
    report = out.stdout
    assert ("flow etl(tables: list = ['Customers', 'Orders', 'Products'], "
            "lake: str = 'labloom-output/lake')") in report
    # what only makes sense in the notebook is listed, not exported
    assert "top-level `for` statement `for path in written:` would run on import" in report
    assert '`again["written"]` is a bare expression shown as output' in report
    assert "line magic `%load_ext labloom`" in report
    source = (work / "etl_flow.py").read_text()
    assert "print(path" not in source
    fresh_import(work, "etl_flow", "etl")
    assert not (work / OUTPUT).exists()  # importing made nothing: the flow makes the database

    tables = ["Orders", "Products"]
    ran = run_cli(work, "run", "etl_flow.py:etl", "--param", json_param("tables", tables),
                  "--param", "lake=lake-cli")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_lake(work, work / "lake-cli", tables)
    (run,) = runs(work)
    assert (run["flow_name"], run["state"], run["origin"]) == ("etl", "Completed", "script")
    assert run["parameters"] == {"tables": tables, "lake": "lake-cli"}


def json_param(name: str, value: object) -> str:
    return f"{name}={json.dumps(value)}"


def test_etl_notebook_runs_directly(work: Path) -> None:
    ran = run_cli(work, "run", "examples-copy/etl.ipynb", "--param", 'tables=["Customers"]',
                  "--param", "lake=lake-nb")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_lake(work, work / "lake-nb", ["Customers"])
    customers = lake_rows(work / "lake-nb", "customers")
    assert customers[0]["name"] == "customer 0"  # trimmed
    (run,) = runs(work)
    assert (run["flow_name"], run["state"], run["origin"]) == ("etl", "Completed", "script")

    # the defaults are the notebook's parameters cell: all three tables into the output lake
    assert run_cli(work, "run", "examples-copy/etl.ipynb").returncode == 0
    assert_lake(work, work / OUTPUT / "lake", ["Customers", "Orders", "Products"])

    bad = run_cli(work, "run", "examples-copy/etl.ipynb", "--param", "table=Orders")
    assert bad.returncode == 2
    assert "unknown parameter(s) table" in bad.stderr and "tables" in bad.stderr

    # without progress (LABLOOM_PROGRESS=0) a failed run still says why on stderr
    failed = run_cli(work, "run", "examples-copy/etl.ipynb", "--param", 'tables=["Nope"]')
    assert failed.returncode == 1
    assert "of flow 'etl' Failed" in failed.stderr and "extract[0]" in failed.stderr


def test_sweep_exports_and_runs_a_tiny_grid(work: Path) -> None:
    out = run_cli(work, "export", "examples-copy/sweep.ipynb", "-o", "sweep_flow.py")
    assert out.returncode == 0, out.stderr
    assert "flow sweep(grid, DB)" in out.stdout
    # The analysis (the run's experiments) stays in the notebook; the logging goes with the task.
    assert "line magic `runs = %flow_runs sweep`" in out.stdout
    assert "experiments: not used by exported code" in out.stdout
    source = (work / "sweep_flow.py").read_text()
    # `%%flow sweep --executor dask` becomes the decorator's option
    assert '@flow(name="sweep", executor="dask")' in source
    assert "labloom.log_metrics(auc=auc)" in source and "flow_runs" not in source
    fresh_import(work, "sweep_flow", "sweep")

    grid = [{"max_depth": 2, "min_samples_leaf": 1, "seed": 0},
            {"max_depth": 3, "min_samples_leaf": 4, "seed": 1}]
    db = work / "tiny.db"
    ran = run_cli(work, "run", "sweep_flow.py:sweep", "--param", json_param("grid", grid),
                  "--param", f"DB={db}", timeout=180)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with sqlite3.connect(db) as conn:
        saved = conn.execute("SELECT max_depth, seed, auc FROM experiments ORDER BY seed")
        rows = saved.fetchall()
    assert [r[:2] for r in rows] == [(2, 0), (3, 1)] and all(0.5 < r[2] <= 1 for r in rows)
    (run,) = runs(work)
    assert run["state"] == "Completed" and run["executor"].startswith("dask")
    logged = run_cli(work, "experiments", run["id"], "--sort", "seed", "--json")
    assert logged.returncode == 0, logged.stderr
    rows = json.loads(logged.stdout)["rows"]
    assert [(r["params"]["max_depth"], r["params"]["seed"]) for r in rows] == [(2, 0), (3, 1)]
    assert all(0.5 < r["metrics"]["auc"] <= 1 for r in rows)


def test_quickstart_exports_and_runs(work: Path) -> None:
    out = run_cli(work, "export", "examples-copy/quickstart.ipynb", "-o", "quickstart_flow.py")
    assert out.returncode == 0, out.stderr
    assert "flow first(numbers)" in out.stdout
    assert "`first(numbers=[1, 2, 3])` is a top-level call" in out.stdout
    fresh_import(work, "quickstart_flow", "first")
    ran = run_cli(work, "run", "quickstart_flow.py:first", "--param", "numbers=[1, 2, 3]")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run,) = runs(work)
    assert (run["flow_name"], run["state"]) == ("first", "Completed")


@pytest.fixture
def served(work: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        # A grace of ten minutes: a scheduler that, once signalled, waited out its grace
        # rather than for the runs under way would hang past ``sigterm``'s guard.
        procs.append(start_labloom(work, "serve", "--tick", "0.1", "--grace", "600", **QUIET,
                                   LABLOOM_NOTIFY_DELAYS="0.2,0.4"))
        return procs[-1]

    yield start
    for proc in procs:
        stop(proc)


def sigterm(proc: subprocess.Popen[str]) -> str:
    """Stop a ``served`` scheduler as a service manager does: it ends its runs under way, then
    exits cleanly (the guard is a hang guard, far below the scheduler's grace)."""
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    return stdout


def test_etl_notebook_on_a_schedule(work: Path, served: Any) -> None:
    added = run_cli(work, "schedule", "add", "examples-copy/etl.ipynb", "--every", "2s",
                    "--param", 'tables=["Products"]', "--param", "lake=lake-nightly",
                    "--name", "nightly-etl")
    assert added.returncode == 0, added.stderr
    assert "first run" in added.stdout
    first_slot_in(work, "nightly-etl", 0.5)  # then every 2 s
    proc = served()

    def scheduled() -> list[dict[str, Any]]:
        return [r for r in runs(work) if r["origin"] == "schedule"]

    try:
        wait_for(lambda: len([r for r in scheduled() if r["state"] == "Completed"]) >= 2,
                 60, "two scheduled runs")
        listing = json.loads(run_cli(work, "schedule", "list", "--json").stdout)
        (row,) = listing["schedules"]
        assert row["name"] == "nightly-etl" and row["next_run"]
        assert listing["scheduler"]["running"]
        stdout = sigterm(proc)
    finally:
        stop(proc)
    assert "scheduler stopped" in stdout
    done = scheduled()
    assert len(done) >= 2 and all(r["state"] == "Completed" for r in done), done
    assert all(r["flow_name"] == "etl" and r["parameters"]["tables"] == ["Products"]
               for r in done)
    assert_lake(work, work / "lake-nightly", ["Products"])  # in the folder it was added from
    after = json.loads(run_cli(work, "schedule", "list", "--json").stdout)
    assert after["schedules"][0]["next_run"] and after["schedules"][0]["last_run"]["status"] in (
        "completed", "terminated")
    assert after["scheduler"]["running"] is False


def failures(hook: Hook) -> list[dict[str, Any]]:
    """The failure alerts, without "overdue" ones: a run slower than its 2 s schedule (a busy
    machine) is also alerted as still going when its next run was due, once, by design."""
    return [body for body in hook.bodies if body["state"] != "overdue"]


def test_failing_scheduled_etl_posts_one_alert_per_run(work: Path, served: Any) -> None:
    hook = Hook([])
    try:
        # A table that is not there: extract fails (after its retries), downstream with it.
        added = run_cli(work, "schedule", "add", "examples-copy/etl.ipynb", "--every", "2s",
                        "--param", json_param("tables", [SECRET]),
                        "--param", f"lake=lake-{SECRET}", "--notify", hook.url)
        assert added.returncode == 0, added.stderr
        assert "secret-token" not in added.stdout
        first_slot_in(work, "etl", 0.5)  # not 2 s after the add
        proc = served()
        try:
            wait_for(lambda: failures(hook), 60, "a failure alert")
            stdout = sigterm(proc)
        finally:
            stop(proc)
    finally:
        hook.close()
    failed = [r for r in runs(work) if r["origin"] == "schedule"]
    assert failed and all(r["state"] == "Failed" for r in failed)
    # one alert for each failed run, none twice
    assert sorted(b["run_id"] for b in failures(hook)) == sorted(r["id"] for r in failed)
    body = failures(hook)[0]
    assert body["flow"] == "etl" and body["schedule"] == "etl" and body["state"] == "Failed"
    assert body["failed_tasks"][0] == "extract[0]"
    assert {"transform[0]", "load[0]"} <= set(body["failed_tasks"])
    assert "extract[0] (OperationalError)" in body["error"]
    assert body["run_id"] in body["text"]
    assert SECRET not in json.dumps(hook.bodies)  # no parameter values, no error messages
    assert "secret-token" not in stdout
