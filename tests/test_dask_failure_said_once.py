"""`labloom run` says a task's failure on a cluster labloom starts once: labloom's own lines, not
also distributed's "Compute Failed" block from the worker; other worker errors stay.

Session 54: the README's sweep printed, for each failed experiment attempt, the worker's
"distributed.worker - ERROR - Compute Failed" with the task and its traceback, beside labloom's
"Failed" line and the progress line. Session 55: the same on a cluster whose workers run in the
run's own process (``processes=False``, embedded or per run), where the worker's logger is the
user's process's, and on a per-run ``LocalCluster`` a profile names. On a cluster the user
made, distributed's logging is the user's and stays as it is, in-process workers included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli_helpers import cli_env, labloom

FLOW = textwrap.dedent('''
    import logging
    import os

    from labloom import DaskExecutor, flow, task

    @task
    def noisy() -> int:  # another error of the worker's logger: still said
        logging.getLogger("distributed.worker").error("a worker error of the task's own")
        return 1

    @task
    def boom() -> int:
        raise ValueError("boom, as planned")

    def both() -> int:
        noisy()
        return boom()

    embedded = flow(executor="dask", name="embedded")(both)
    in_process = flow(executor=DaskExecutor(processes=False, dashboard_address=None),
                      name="in_process")(both)

    if os.environ.get("TEST_USERS_CLUSTER"):  # the user's own cluster, made as the file loads
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                               processes=os.environ["TEST_USERS_CLUSTER"] == "processes")

        @flow(executor=DaskExecutor(cluster=cluster))
        def users() -> int:
            return boom()
''')

PROFILES = {
    "processes": {"cluster_class": "distributed.LocalCluster",
                  "cluster_kwargs": {"n_workers": 1, "dashboard_address": None}},
    "in_process": {"cluster_class": "distributed.LocalCluster",
                   "cluster_kwargs": {"n_workers": 1, "processes": False,
                                      "dashboard_address": None}},
}


def said_once(tmp_path: Path, *args: str, **env: str) -> None:
    (tmp_path / "failing.py").write_text(FLOW)
    done = labloom(tmp_path, "run", *args, timeout=120, **env)
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert "Failed    boom: ValueError: boom, as planned" in said, said
    assert "Compute Failed" not in said, said
    assert "distributed.worker - ERROR - a worker error of the task's own" in said, said


@pytest.mark.parametrize("name", ["embedded", "in_process"])
def test_failure_on_the_embedded_cluster_is_said_once(tmp_path: Path, name: str) -> None:
    said_once(tmp_path, f"failing.py:{name}")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_failure_on_a_profiles_cluster_per_run_is_said_once(
        tmp_path: Path, profile: str) -> None:
    said_once(tmp_path, "failing.py:embedded", "--cluster", profile,
              LABLOOM_CLUSTERS=json.dumps(PROFILES))


@pytest.mark.parametrize("shape", ["processes", "in_process"])
def test_a_cluster_the_user_made_keeps_distributeds_logging(tmp_path: Path, shape: str) -> None:
    (tmp_path / "failing.py").write_text(FLOW)
    done = labloom(tmp_path, "run", "failing.py:users", timeout=120, TEST_USERS_CLUSTER=shape)
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert "Failed    boom: ValueError: boom, as planned" in said, said
    assert "Compute Failed" in said, said


BOTH = textwrap.dedent('''
    import sys

    from distributed import LocalCluster

    from failing import DaskExecutor, both, boom, flow

    labloom_s = flow(executor=DaskExecutor(processes=False, dashboard_address=None),
                     name="labloom_s")(both)
    users_cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                 dashboard_address=None)

    @flow(executor=DaskExecutor(cluster=users_cluster))
    def users() -> int:
        return boom()

    for run in (labloom_s, users, labloom_s):  # labloom's in-process cluster open throughout
        print(f"=== {run.name}", file=sys.stderr, flush=True)
        try:
            run()
        except Exception as exc:
            print(f"=== raised {type(exc).__name__}", file=sys.stderr, flush=True)
    users_cluster.close()
''')


def test_in_one_process_the_users_in_process_cluster_keeps_distributeds_logging(
        tmp_path: Path) -> None:
    """labloom's in-process cluster and a user's in-process cluster share the process's
    ``distributed.worker`` logger: only the failure on labloom's loses distributed's record."""
    (tmp_path / "failing.py").write_text(FLOW)
    (tmp_path / "both.py").write_text(BOTH)
    done = subprocess.run([sys.executable, "both.py"], env=cli_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    parts = done.stderr.split("=== ")
    names = [part.split("\n", 1)[0] for part in parts[1:]]
    assert names == ["labloom_s", "raised FlowFailed", "users", "raised FlowFailed",
                     "labloom_s", "raised FlowFailed"], done.stderr
    labloom_s, users, again = parts[1], parts[3], parts[5]
    assert "Compute Failed" not in labloom_s + again, done.stderr
    assert "a worker error of the task's own" in labloom_s and (
        "a worker error of the task's own" in again), done.stderr
    assert "Compute Failed" in users and "boom, as planned" in users, done.stderr
