"""The small things a newcomer meets: one exit status for usage errors, one "[labloom]", one
verb for removing, and a flow called in a notebook is recorded as a notebook run."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from cli_helpers import labloom, write
from kernel_helpers import kernel

FLOW = """
    from labloom import flow, task

    @task
    def one():
        return 1

    @flow
    def f():
        return one()
"""


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["run", "flows.py:f"], {"LABLOOM_RESULTS": "bogus"}),
        (["runs"], {"LABLOOM_DATABASE_URL": "mysql://nowhere/x"}),
        (["export", "nb.ipynb", "--flow", "nope"], {}),
        (["export", "missing.ipynb"], {}),
        (["run", "flows.py:nope"], {}),
    ],
    ids=["bad setting", "bad database URL", "export unknown flow", "export no notebook",
         "run unknown flow"],
)
def test_usage_errors_are_one_line_with_status_2(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    write(tmp_path / "flows.py", FLOW)
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nbformat.write(new_notebook(cells=[new_code_cell("%%flow etl\nx = 1")]), tmp_path / "nb.ipynb")
    out = labloom(tmp_path, *args, **env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("labloom: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert "[labloom]" not in out.stderr  # "labloom" said once


BIG = "99999999999999999999"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "--limit", BIG], "--limit must be a whole number from 1 to 2147483647, got '9"),
        (["runs", "--limit", "-5"], "--limit must be a whole number from 1 to 2147483647"),
        (["runs", "--limit", "0"], "--limit must be a whole number from 1"),
        (["runs", "--limit", "ten"], "--limit must be a whole number from 1"),
        (["limit", "set", "db", BIG], "N must be a whole number from 1 to 2147483647"),
        (["limit", "set", "db", "-1"], "N must be a whole number from 1"),
        (["serve", "--grace", "nan"], "--grace must be a finite number of seconds >= 0"),
        (["serve", "--grace", "-1"], "--grace must be a finite number of seconds >= 0"),
        (["serve", "--tick", "0"], "--tick must be a finite number of seconds > 0"),
        (["schedule", "add", "flows.py:f", "--every", f"{BIG}d"],
         "the longest interval is 36500d"),
        (["schedule", "add", "flows.py:f", "--every", "nan"], "it must be longer than zero"),
        (["schedule", "add", "flows.py:f", "--cron", "0 0 30 2 *"],
         "cron expression '0 0 30 2 \\*' never fires"),
        # session 46: an OverflowError traceback from the store's LIMIT; a negative count
        # silently read one run
        (["experiments", "--runs", BIG], "--runs must be a whole number from 1 to 2147483647"),
        (["experiments", "--runs", "-3"], "--runs must be a whole number from 1"),
        (["experiments", "--top", "-1"], "--top must be a whole number from 0 to 2147483647"),
    ],
    ids=["runs limit huge", "runs limit negative", "runs limit zero", "runs limit text",
         "limit set huge", "limit set negative", "serve grace nan", "serve grace negative",
         "serve tick zero", "every huge", "every nan", "cron never fires",
         "experiments runs huge", "experiments runs negative", "experiments top negative"],
)
def test_numbers_out_of_range_are_one_line_with_status_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = labloom(tmp_path, *args, timeout=30)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith("labloom: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert re.search(message, out.stderr), out.stderr
    # nothing half-done: no schedule that can never be listed, no limit stored
    assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []
    assert json.loads(labloom(tmp_path, "limit", "list", "--json").stdout) == []


def test_a_limit_beyond_the_store_is_refused_in_python_too() -> None:
    import labloom as lb

    with pytest.raises(ValueError, match=r"limit for 'db' must be a whole number from 1 to "
                       r"2147483647, got 10{20}; to remove the limit"):
        lb.limits.set("db", 10**20)


def test_an_unreachable_dask_scheduler_is_one_line(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    out = labloom(tmp_path, "run", "flows.py:f", "--address", "tcp://127.0.0.1:9",
                  timeout=120, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "cannot reach tcp://127.0.0.1:9" in out.stderr


def test_limit_and_schedule_share_one_verb(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOW)
    for verb in ("remove", "delete"):
        assert labloom(tmp_path, "limit", "set", "db", "2").returncode == 0
        assert labloom(tmp_path, "limit", verb, "db").returncode == 0
        assert json.loads(labloom(tmp_path, "limit", "list", "--json").stdout) == []
        added = labloom(tmp_path, "schedule", "add", "flows.py:f", "--every", "1h")
        assert added.returncode == 0, added.stderr
        assert labloom(tmp_path, "schedule", verb, "f").returncode == 0
        assert json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"] == []


def test_a_flow_called_from_a_function_in_a_kernel_is_a_notebook_run(tmp_path: Path) -> None:
    with kernel(tmp_path, tmp_path / "home") as k:
        k.ok("from labloom import flow, task\n"
             "@task\ndef one():\n    return 1\n"
             "@flow\ndef called():\n    return one()\n"
             "def helper():\n    return called()\n"
             "assert helper() == 1\n")
    runs = json.loads(labloom(tmp_path / "home", "runs", "--json", cwd=tmp_path).stdout)
    assert [(r["flow_name"], r["origin"]) for r in runs] == [("called", "notebook")]


@pytest.mark.parametrize("url", ["sqlite://labloom.db", "sqlite:///", "sqlite:////"])
@pytest.mark.parametrize("given", ["--database-url", "LABLOOM_DATABASE_URL"])
def test_a_sqlite_url_that_names_no_file_is_refused(tmp_path: Path, url: str, given: str) -> None:
    # Two slashes made a store at "abloom.db" (the path lost its first letter), and the user
    # saw "no runs recorded"; three slashes alone named the working directory (session 46).
    write(tmp_path / "flows.py", FLOW)
    for args in (["runs"], ["run", "flows.py:f"]):
        argv = ["--database-url", url, *args] if given == "--database-url" else args
        env = {"LABLOOM_DATABASE_URL": url} if given != "--database-url" else {}
        out = labloom(tmp_path, *argv, **env)
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert out.stderr == (f"labloom: error: SQLite URL {url!r} names no file: write three "
                              "slashes before a relative path and four before an absolute one "
                              "(sqlite:///labloom.db, sqlite:////home/me/labloom.db)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.py"]  # no store made


def test_a_relative_sqlite_url_reaches_child_processes_absolute(tmp_path: Path) -> None:
    # `labloom --database-url sqlite:///team.db serve` handed its runs the relative URL
    # through the environment, and each ran in its schedule's folder: recorded in a team.db
    # of that folder, not in the store serve read (session 46).
    write(tmp_path / "seen.py", """
        import os
        from pathlib import Path

        from labloom import flow

        Path("seen.txt").write_text(os.environ["LABLOOM_DATABASE_URL"])

        @flow
        def f():
            return 1
    """)
    out = labloom(tmp_path, "--database-url", "sqlite:///team.db", "run", "seen.py:f")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "seen.txt").read_text() == f"sqlite:///{tmp_path / 'team.db'}"
    assert (tmp_path / "team.db").exists()


@pytest.mark.parametrize(("source", "target", "said"), [
    ("def f():\n    return 1\n", "plain.py:f",
     "plain.py: f is not a flow; decorate it with @flow (from labloom import flow)"),
    ("def f():\n    return 1\n", "plain.py",
     "plain.py defines no flow; decorate the function to run with @flow (from labloom import "
     "flow)"),
    ("import argparse\nargparse.ArgumentParser().parse_args()\n" + textwrap.dedent(FLOW),
     "plain.py:f",
     "importing plain.py called sys.exit(2): a script's top-level code runs on import; put it "
     "under `if __name__ == \"__main__\":`"),
], ids=["a function", "no flow", "argparse at import"])
def test_a_target_without_its_flow_says_what_to_do(
    tmp_path: Path, source: str, target: str, said: str
) -> None:
    # Session 46: "has no flow 'f'; its flows are none", "holds 0 flows (none); name one:
    # plain.py:NAME", and a script's top-level argparse ended `labloom run` with its own usage
    # error and status 2, nothing else said.
    (tmp_path / "plain.py").write_text(source)
    out = labloom(tmp_path, "run", target)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.splitlines()[-1] == f"labloom: error: {said}", out.stderr
