"""Results on shared storage: the result folder as an fsspec URL. Values are written by the
worker that computed them, read back for the cache, and never enter the store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import fsspec
import pytest

from labloom import DaskExecutor, State, flow, task
from labloom.store import open_store

CALLS: list[int] = []


@task(cache=True)
def square(x: int) -> list[int]:
    CALLS.append(x)
    return [x * x] * 1000


@flow
def squares(n: int) -> object:
    return square.map(range(n))


def test_cached_results_live_at_an_fsspec_url(
    monkeypatch: pytest.MonkeyPatch, labloom_home: Path
) -> None:
    monkeypatch.setenv("LABLOOM_RESULTS_URL", "memory://team/results/")
    memory = fsspec.filesystem("memory")
    CALLS.clear()
    first = squares.run(n=3, executor="threads")
    assert first.result() == [[x * x] * 1000 for x in range(3)]
    second = squares.run(n=3, executor="threads")
    assert second.result() == first.result() and sorted(CALLS) == [0, 1, 2]
    assert {tr.state for tr in second.tasks} == {State.CACHED}
    written = memory.find("/team/results")
    assert len(written) == 3 and all(path.endswith(".pkl") for path in written)
    assert not (labloom_home / "results").exists()  # nothing went to the local folder
    with open_store() as store:
        paths = {tr.result_path for tr in store.task_runs(first.id)}
    assert all(str(p).startswith("memory://team/results/") for p in paths)
    memory.rm("/team", recursive=True)


@pytest.mark.timeout(180)
def test_dask_workers_write_results_to_the_shared_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-results"
    monkeypatch.setenv("LABLOOM_RESULTS_URL", f"file://{shared}")
    executor = DaskExecutor(n_workers=1, threads_per_worker=2, dashboard_address=":0")
    CALLS.clear()
    run = squares.run(n=4, executor=executor)
    assert run.state == State.COMPLETED
    assert CALLS == []  # computed in the worker processes, not here
    assert len(list(shared.rglob("*.pkl"))) == 4
    # The workers' folder is this process's: nothing said of results it cannot read.
    assert not [line.text for line in run.logs() if "LABLOOM_RESULTS_URL" in line.text]
    again = squares.run(n=4, executor="threads")  # another executor reads the same folder
    assert {tr.state for tr in again.tasks} == {State.CACHED} and CALLS == []
    executor.shutdown()


@pytest.mark.parametrize("persisting", ["cache", "all"])
def test_a_result_folder_that_cannot_be_written_costs_the_file_not_the_task(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, persisting: str
) -> None:
    # A Dask worker on another host where the kernel's LABLOOM_HOME path cannot be created (no
    # such user there, a read-only mount, a full disk): the value was computed; only its file
    # is missing. It failed the task run with a bare OSError before, every cached task of the run.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the result folder should be")
    monkeypatch.setenv("LABLOOM_RESULTS_URL", str(blocker / "results"))

    @task(cache=persisting == "cache")
    def double(x: int) -> int:
        return 2 * x

    @flow
    def doubles(n: int) -> object:
        return double.map(range(n))

    if persisting == "all":
        monkeypatch.setenv("LABLOOM_RESULTS", "all")
    run = doubles.run(n=2, executor="threads")
    assert run.state == State.COMPLETED and run.result() == [0, 2]
    lines = [line.text for line in run.logs("double")]
    assert len(lines) == 2, lines
    assert all("result not persisted" in text and "not-a-folder" in text
               and "LABLOOM_RESULTS_URL" in text for text in lines), lines


def test_a_shared_result_folder_is_shared_as_its_umask_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A team's folder (group-owned, setgid, umask 002 on JupyterHub): every user's runs write
    # there. Files were 0600 in 0700 folders, so another user's cache hit could not read them
    # nor `labloom retry` reuse them, and a user whose run made a key's folder (results/4c/)
    # locked the others out of writing any result filed under it.
    shared = tmp_path / "team-results"
    shared.mkdir()
    monkeypatch.setenv("LABLOOM_RESULTS_URL", f"file://{shared}")
    before = os.umask(0o002)
    try:
        CALLS.clear()
        run = squares.run(n=2, executor="threads")
    finally:
        os.umask(before)
    assert run.state == State.COMPLETED
    files = list(shared.rglob("*.pkl"))
    assert len(files) == 2
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o664, oct(file.stat().st_mode)
        assert stat.S_IMODE(file.parent.stat().st_mode) == 0o775, oct(file.parent.stat().st_mode)


def test_results_in_the_state_folder_stay_private(labloom_home: Path) -> None:
    # LABLOOM_HOME/results is the owner's alone: the folder itself is 0700, whatever the umask.
    before = os.umask(0o002)
    try:
        run = squares.run(n=1, executor="threads")
    finally:
        os.umask(before)
    assert run.state == State.COMPLETED
    assert stat.S_IMODE((labloom_home / "results").stat().st_mode) == 0o700
    assert stat.S_IMODE(labloom_home.stat().st_mode) == 0o700


def test_a_relative_result_folder_is_where_the_setting_was_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # LABLOOM_RESULTS_URL=results: each Dask worker wrote under its own working directory and
    # the kernel looked under its own, so the cache never hit; the store recorded the relative
    # path, which `labloom retry` or `delete` from elsewhere could not find.
    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.setenv("LABLOOM_RESULTS_URL", "results")
    CALLS.clear()
    first = squares.run(n=2, executor="threads")
    with open_store() as store:
        paths = {tr.result_path for tr in store.task_runs(first.id)}
    assert paths and all(Path(str(p)).is_absolute() for p in paths), paths
    assert all(str(p).startswith(str(tmp_path / "project" / "results")) for p in paths)
    monkeypatch.chdir(tmp_path / "elsewhere")  # a worker's, a scheduler's working directory
    monkeypatch.setenv("LABLOOM_RESULTS_URL", str(tmp_path / "project" / "results"))
    again = squares.run(n=2, executor="threads")
    assert {tr.state for tr in again.tasks} == {State.CACHED} and sorted(CALLS) == [0, 1]


def test_a_relative_state_folder_hands_out_absolute_result_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # LABLOOM_HOME=.labloom (a project's own state): its results/ went to workers as a
    # relative path too, each writing under its own working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABLOOM_HOME", ".labloom-project")
    monkeypatch.delenv("LABLOOM_RESULTS_URL", raising=False)
    run = squares.run(n=1, executor="threads")
    with open_store() as store:
        [path] = {tr.result_path for tr in store.task_runs(run.id)}
    assert str(path).startswith(str(tmp_path / ".labloom-project" / "results")), path


SWEEP = """
from labloom import flow, task

@task(cache=True)
def square(x):
    return x * x

@flow
def squares():
    return square.map(range(3))
"""

# A worker whose result folder, at the kernel's path, is a disk of its own: another host's.
ON_ITS_OWN_DISK = ('mount -t tmpfs tmpfs "$RESULTS" && exec "$PYTHON" -m '
                   'distributed.cli.dask_worker "$ADDRESS" --nthreads 1 --no-dashboard')


@pytest.mark.timeout(240)
def test_results_the_workers_write_where_the_kernel_cannot_read_are_said_once_a_run(
    tmp_path: Path, labloom_home: Path
) -> None:
    # LABLOOM_RESULTS_URL=/scratch/labloom, a folder each host has but not shared: the dask
    # worker processes wrote each result to their own disk, the kernel looked in its own; no
    # run ever hit the cache, and nothing said why.
    import json
    import socket
    import subprocess
    import sys

    from cli_helpers import SRC, dask_scheduler, labloom
    from test_chaos import mount_namespace

    namespace = mount_namespace()
    results, worker_home, elsewhere = (tmp_path / name for name in ("results", "wh", "w"))
    for folder in (results, elsewhere):
        folder.mkdir()
    (tmp_path / "sweep.py").write_text(SWEEP)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("LABLOOM_")}
    plain.update(PYTHONPATH=str(SRC), LABLOOM_HOME=str(worker_home), RESULTS=str(results),
                 PYTHON=sys.executable)
    scheduler, address = dask_scheduler(elsewhere, plain)
    plain["ADDRESS"] = address
    started = [scheduler]
    try:
        started.append(subprocess.Popen([*namespace, ON_ITS_OWN_DISK], cwd=elsewhere,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env=plain))
        for _ in range(2):
            done = labloom(labloom_home, "run", "sweep.py:squares", "--address", address,
                           cwd=tmp_path, timeout=120, LABLOOM_RESULTS_URL=str(results),
                           LABLOOM_PROGRESS="0")
            assert done.returncode == 0, done.stderr
            assert done.stderr.count("LABLOOM_RESULTS_URL") == 1, done.stderr
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(30)
    assert not list(results.rglob("*.pkl"))  # all on the worker's disk, gone with it
    runs = json.loads(labloom(labloom_home, "runs", "--json").stdout)
    assert len(runs) == 2
    for run in runs:
        shown = json.loads(labloom(labloom_home, "show", run["id"], "--json").stdout)
        assert {tr["state"] for tr in shown["task_runs"]} == {"Completed"}  # never Cached
        lines = json.loads(labloom(labloom_home, "logs", run["id"], "--json").stdout)["lines"]
        said = [line["text"] for line in lines if "LABLOOM_RESULTS_URL" in line["text"]]
        assert len(said) == 1, lines
        assert "the Dask worker tcp://127.0.0.1:" in said[0] and str(results) in said[0], said
        assert f"host {socket.gethostname()}" in said[0]
