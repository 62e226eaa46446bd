"""A damaged store file or a state folder that cannot be made: every command says so in one
line (exit 2), and a flow still runs, with one warning that it is not recorded."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import labloom, write
from labloom import flow, task

COMMANDS = [["runs"], ["show", "abc"], ["logs", "abc"], ["retry", "abc"], ["schedule", "list"],
            ["limit", "list"]]

FLOW = """
    from labloom import flow, task

    @task(tags=["db"])
    def one():
        return 1

    @task(cache=True)
    def two(x):
        return x + 1

    @flow
    def f():
        return two(one())
"""


def damaged_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "labloom.db").write_bytes(b"this is not a database" * 300)
    return home


def home_through_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("a file where a folder should be")
    return tmp_path / "afile" / "home"  # cannot be created, whoever runs the test (root too)


CASES = {"damaged store": (damaged_home, "labloom.db cannot be opened (file is not a database)"),
         "unusable home": (home_through_a_file, "afile/home for labloom's state (Not a directory)")}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_commands_say_it_in_one_line_with_status_2(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    make, what = CASES[case]
    home = make(tmp_path)
    out = labloom(home, *command, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("labloom: error: ") and what in out.stderr
    assert "[labloom]" not in out.stderr  # said once, by "labloom: error:"
    assert "LABLOOM_HOME" in out.stderr  # the fix


@pytest.mark.parametrize("case", CASES)
def test_labloom_run_still_runs_the_flow_with_one_warning(tmp_path: Path, case: str) -> None:
    make, what = CASES[case]
    write(tmp_path / "flows.py", FLOW)
    out = labloom(make(tmp_path), "run", "flows.py:f", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len([line for line in lines if "not being recorded" in line]) == 1
    assert all(what in line for line in lines), lines  # store, limits, cache: one line each


@task
def add_one(x: int) -> int:
    return x + 1


@flow
def plain(x: int) -> int:
    return add_one(x)


@pytest.mark.parametrize("case", CASES)
def test_a_plain_flow_call_runs_with_one_warning(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, what = CASES[case]
    os.environ["LABLOOM_HOME"] = str(make(tmp_path))  # the fixture restores it
    with caplog.at_level(logging.WARNING, logger="labloom"):
        assert plain(1) == 2
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert what in warning and "is not being recorded" in warning


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[Path]:
    """A state folder with a store in it that this user may read, not write: a read-only
    mount (a backup, a snapshot). Root writes through permissions, so for root it is a
    read-only tmpfs (CI runs as root)."""
    home = tmp_path / "ro-home"
    home.mkdir()
    made = labloom(home, "limit", "set", "db", "2")  # a store with something in it
    assert made.returncode == 0, made.stderr
    if os.geteuid() != 0:
        (home / "labloom.db").chmod(0o444)
        home.chmod(0o555)
        yield home
        home.chmod(0o755)
        return
    mount = tmp_path / "mount"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (not root in a container that may)")
    try:
        shutil.copytree(home, mount / "home")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount / "home"
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_read_only_store_is_not_called_damaged_and_its_runs_stay_reachable(
    tmp_path: Path, read_only_home: Path
) -> None:
    # Session 46: "cannot be opened (unable to open database file): if it is damaged, move it
    # aside (labloom then starts a new one)", advice that hides the history it names.
    store = read_only_home / "labloom.db"
    for env, args in (({}, ["--database-url", f"sqlite:///{store}", "runs"]),
                      ({"LABLOOM_HOME": str(read_only_home)}, ["runs"])):
        out = labloom(tmp_path / "home", *args, cwd=tmp_path, **env)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "move it aside" not in out.stderr, out.stderr
        assert out.stderr.rstrip().endswith(
            f"the runs in {store} stay readable: `labloom db copy --from {store}` (it reads "
            "the file as it is) brings them into a store you can write"), out.stderr
    copied = labloom(tmp_path / "home", "db", "copy", "--from", str(store), cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
