"""Named cluster profiles: ``--cluster NAME`` on ``labloom run``, ``schedule add`` and
``%%flow``, from ``c.Labloom.clusters`` (config files, ``%config``) and ``LABLOOM_CLUSTERS``.

The command-line case runs a real ``distributed.SpecCluster``, named by import path in a
Jupyter config file, adapting from 1 to 3 in-process workers under a map."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from cli_helpers import cli_env, labloom, write
from labloom import ClusterConfigError, Flow
from labloom.executors import cluster_profiles, resolve_executor
from labloom.export.exporter import export_notebook
from labloom.export.magic_grammar import parse_flow_line
from labloom.schedule.daemon import run_argv
from labloom.schedule.stored_schedules import get, store

SPEC = {
    "cluster_class": "distributed.SpecCluster",
    "cluster_kwargs": {
        "scheduler": {"cls": "distributed.Scheduler", "options": {"dashboard_address": ":0"}},
        "worker": {"cls": "distributed.Worker", "options": {"nthreads": 1}},
    },
    "adapt_kwargs": {"minimum": 1, "maximum": 3, "interval": "100ms", "target_duration": "1s"},
}
TINY = {"cluster_class": "distributed.LocalCluster",
        "cluster_kwargs": {"n_workers": 1, "processes": False, "dashboard_address": ":0"}}
FLOWS = """
    import time
    from labloom import flow, task

    @task
    def nap(i):
        time.sleep(0.15)
        return i

    @flow
    def sweep(n: int = 24):
        return nap.map(range(n))
"""


@pytest.fixture
def config_dirs(tmp_path: Path) -> dict[str, str]:
    """Jupyter and IPython config folders of this test alone, with the profile ``spec`` in a
    jupyter_config.py as a user would write it."""
    jupyter = tmp_path / "jupyter-config"
    write(jupyter / "jupyter_config.py", f"c.Labloom.clusters = {{'spec': {SPEC!r}}}\n")
    return {"JUPYTER_CONFIG_DIR": str(jupyter), "IPYTHONDIR": str(tmp_path / "ipython"),
            "LABLOOM_PROGRESS": "0"}


@pytest.fixture(autouse=True)
def no_kernel_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel of an earlier test may have left its Labloom.clusters here.
    monkeypatch.setattr(cluster_profiles, "_kernel_profiles", None)
    monkeypatch.delenv(cluster_profiles.ENV, raising=False)


def test_labloom_run_cluster_starts_the_profile_s_cluster_and_show_tells_its_peak(
    tmp_path: Path, config_dirs: dict[str, str]
) -> None:
    write(tmp_path / "flows.py", FLOWS)
    done = labloom(tmp_path, "run", "flows.py:sweep", "--cluster", "spec", timeout=180,
                   **config_dirs)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    shown = json.loads(labloom(tmp_path, "show", run["id"], "--json").stdout)
    metadata = shown["metadata"]
    assert metadata["cluster_class"] == "distributed.SpecCluster"
    assert 1 < metadata["peak_workers"] <= 3, metadata
    text = labloom(tmp_path, "show", run["id"]).stdout
    assert (f"cluster: distributed.SpecCluster for this run, adaptive 1 to 3 workers, "
            f"{metadata['peak_workers']} worker(s) at peak") in text


def test_an_unknown_profile_or_a_second_executor_choice_is_refused_before_running(
    tmp_path: Path, config_dirs: dict[str, str]
) -> None:
    write(tmp_path / "flows.py", FLOWS)
    done = labloom(tmp_path, "run", "flows.py:sweep", "--cluster", "k8s", **config_dirs)
    assert done.returncode == 2
    assert "no cluster profile named 'k8s'; the profiles are spec." in done.stderr
    assert "c.Labloom.clusters" in done.stderr
    done = labloom(tmp_path, "run", "flows.py:sweep", "--cluster", "spec", "--executor",
                   "threads", **config_dirs)
    assert done.returncode == 2
    assert "--cluster starts a cluster for the run, --executor names another" in done.stderr
    assert "Traceback" not in done.stderr
    assert labloom(tmp_path, "runs", "--json").stdout.strip() == "[]"  # nothing ran


def test_a_cluster_that_cannot_start_is_one_line_and_status_2(
    tmp_path: Path, config_dirs: dict[str, str]
) -> None:
    write(tmp_path / "flows.py", FLOWS)
    write(tmp_path / "unreachable.py", """
        from distributed import SpecCluster

        class Unreachable(SpecCluster):  # as a Kubernetes API that refuses the connection
            def __init__(self, **options):
                raise OSError("connection refused by https://k8s.lab.internal")
    """)
    profiles = json.dumps({"down": {"cluster_class": "unreachable.Unreachable"}})
    report = tmp_path / "report.json"
    done = labloom(tmp_path, "run", "flows.py:sweep", "--cluster", "down", "--report",
                   str(report), LABLOOM_CLUSTERS=profiles, **config_dirs)
    assert done.returncode == 2, done.stderr
    assert ("unreachable.Unreachable(**cluster_kwargs) could not start a cluster: OSError: "
            "connection refused by https://k8s.lab.internal; check cluster_kwargs") in done.stderr
    assert "Traceback" not in done.stderr
    # Its run, recorded Failed inside ``flow.run`` (which then raised), is reported: there
    # was no report, and `labloom serve` recorded the slot refused ("the run process refused
    # its target"), with no run; the error named no flow body, which never ran.
    said = json.loads(report.read_text())
    runs = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    assert [(run["id"], run["state"]) for run in runs] == [(said["run_id"], "Failed")]
    assert said["state"] == "Failed"
    assert said["error"] == "the executor could not start (ClusterConfigError)", said
    # Called in a process that goes on (a script's main([...])): SIGTERM's handler is its
    # own again after the error.
    write(tmp_path / "again.py", """
        import signal, sys
        from labloom.cli import main

        status = main(["run", "flows.py:sweep", "--cluster", "down"])
        print(status, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
    """)
    again = subprocess.run([sys.executable, "again.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120,
                           env=cli_env(tmp_path, LABLOOM_CLUSTERS=profiles, **config_dirs))
    assert again.stdout.split() == ["2", "True"], again.stderr


def test_a_schedule_stores_the_profile_name_and_its_runs_ask_for_it(
    tmp_path: Path, config_dirs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "flows.py", FLOWS)
    added = labloom(tmp_path, "schedule", "add", "flows.py:sweep", "--every", "1h",
                    "--cluster", "spec", **config_dirs)
    assert added.returncode == 0, added.stderr
    (row,) = json.loads(labloom(tmp_path, "schedule", "list", "--json").stdout)["schedules"]
    assert row["cluster"] == "spec" and row["executor"] is None
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path))
    with store() as conn:
        argv = run_argv(get(conn, "sweep"))
    assert argv[-2:] == ["--cluster", "spec"]  # the name, not the profile's options
    refused = labloom(tmp_path, "schedule", "add", "flows.py:sweep", "--every", "1h",
                      "--name", "other", "--cluster", "nope", **config_dirs)
    assert refused.returncode == 2 and "no cluster profile named 'nope'" in refused.stderr


def test_profiles_from_the_environment_win_by_name_and_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config_dirs: dict[str, str]
) -> None:
    for key, value in config_dirs.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(cluster_profiles.ENV, json.dumps({"spec": TINY, "tiny": TINY}))
    found, unread = cluster_profiles.profiles()
    assert set(found) == {"spec", "tiny"} and unread == []
    assert found["spec"]["cluster_class"] == "distributed.LocalCluster"
    executor: Any = resolve_executor("cluster:tiny")
    assert executor._per_run.path == "distributed.LocalCluster"
    assert executor._client is None  # made, checked, not started
    monkeypatch.setenv(cluster_profiles.ENV, "{not json")
    with pytest.raises(ClusterConfigError, match="LABLOOM_CLUSTERS is not valid JSON"):
        cluster_profiles.profiles()
    monkeypatch.setenv(cluster_profiles.ENV, json.dumps({"bad": {"cluster_kwargs": {}}}))
    with pytest.raises(ClusterConfigError, match="cluster profile 'bad' needs a cluster_class"):
        cluster_profiles.profiles()
    monkeypatch.setenv(cluster_profiles.ENV, json.dumps(
        {"typo": {"cluster_class": "distributed.LocalCluster", "adapt": {}}}))
    with pytest.raises(ClusterConfigError, match=r"unknown key\(s\) adapt; a profile has "
                       "cluster_class, cluster_kwargs, adapt_kwargs"):
        cluster_profiles.profiles()


def test_flow_cell_cluster_runs_on_a_kernel_profile(ip: Any) -> None:
    ip.run_line_magic("config", f"Labloom.clusters = {{'tiny': {TINY!r}}}")
    ip.run_cell_magic("tasks", "", "def square(x):\n    return x * x")
    ip.run_cell_magic("flow", "squares --cluster tiny", "values = square.map(range(4))")
    assert ip.user_ns["values"] == [0, 1, 4, 9]  # read after the run's cluster closed
    flow: Flow[Any, Any] = ip.user_ns["squares"]
    assert flow.executor == "cluster:tiny"
    run = flow.run(background=False)
    assert run.metadata["cluster_class"] == "distributed.LocalCluster"
    assert run.metadata["peak_workers"] == 1


def test_a_bad_kernel_profile_is_refused_by_config(
    ip: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from traitlets import TraitError

    from labloom.notebook.settings import settings

    with pytest.raises(TraitError, match="cluster profile 'x' needs a cluster_class"):
        settings(ip).clusters = {"x": {"cluster_kwargs": {}}}
    ip.run_cell("%config Labloom.clusters = {'y': {'cluster_class': ''}}")  # logs, keeps
    assert "cluster profile 'y' needs a cluster_class" in caplog.text
    assert "y" not in settings(ip).clusters
    failed = ip.run_cell("%%flow nothing --cluster absent\nx = 1")
    assert isinstance(failed.error_in_exec, ClusterConfigError)
    assert "no cluster profile named 'absent'" in str(failed.error_in_exec)


def test_the_flow_grammar_and_the_export(tmp_path: Path) -> None:
    assert parse_flow_line("sweep --cluster k8s").cluster == "k8s"
    with pytest.raises(ValueError, match="--cluster starts a cluster for each run, --executor"):
        parse_flow_line("sweep --cluster k8s --executor dask")
    with pytest.raises(ValueError, match="--cluster takes a profile name"):
        parse_flow_line("sweep --cluster a:b")
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("%%flow nightly --cluster k8s\nx = 1")]),
                   path)
    source = export_notebook(path, check=False).path.read_text()
    assert '@flow(name="nightly", executor="cluster:k8s")\n' in source


def test_a_retry_of_a_run_on_a_profile_runs_on_that_profile_s_cluster(
    tmp_path: Path, config_dirs: dict[str, str]
) -> None:
    # Session 41's review: `labloom retry` (and the panel's Retry, which calls it) of a run
    # started with --cluster ran on the flow's declared executor (threads here), on the
    # machine that retried it, not on the cluster the user chose.
    write(tmp_path / "flows.py", """
        from pathlib import Path
        from labloom import flow, task

        @task
        def once_broken(i):
            if i == 1 and not Path("fixed").exists():
                raise RuntimeError("not yet")
            return i

        @flow
        def sweep(n: int = 3):
            return once_broken.map(range(n))
    """)
    profiles = json.dumps({"tiny": TINY})
    failed = labloom(tmp_path, "run", "flows.py:sweep", "--cluster", "tiny", timeout=120,
                     LABLOOM_CLUSTERS=profiles, **config_dirs)
    assert failed.returncode == 1, failed.stderr[-3000:]
    (first,) = json.loads(labloom(tmp_path, "runs", "--json").stdout)
    (tmp_path / "fixed").touch()
    retried = labloom(tmp_path, "retry", first["id"], timeout=120, LABLOOM_CLUSTERS=profiles,
                      **config_dirs)
    assert retried.returncode == 0, retried.stderr[-3000:]
    second = next(r for r in json.loads(labloom(tmp_path, "runs", "--json").stdout)
                  if r["id"] != first["id"])
    shown = json.loads(labloom(tmp_path, "show", second["id"], "--json").stdout)
    assert shown["executor"].startswith("dask("), shown["executor"]
    assert shown["metadata"]["cluster_class"] == "distributed.LocalCluster"
    assert shown["metadata"]["profile"] == "tiny"
