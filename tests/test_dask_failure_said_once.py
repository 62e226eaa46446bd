"""`labloom run` says a task's failure on the embedded cluster once: labloom's own lines, not
also distributed's "Compute Failed" block from the worker process; other worker errors stay.

Session 54: the README's sweep printed, for each failed experiment attempt, the worker's
"distributed.worker - ERROR - Compute Failed" with the task and its traceback, beside labloom's
"Failed" line and the progress line. On a cluster the user made, distributed's logging is the
user's and stays as it is.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from cli_helpers import labloom

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

    @flow(executor="dask")
    def embedded() -> int:
        noisy()
        return boom()

    if os.environ.get("TEST_USERS_CLUSTER"):  # the user's own cluster, made as the file loads
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None)

        @flow(executor=DaskExecutor(cluster=cluster))
        def users() -> int:
            return boom()
''')


def test_failure_on_the_embedded_cluster_is_said_once(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FLOW)
    done = labloom(tmp_path, "run", "failing.py:embedded", timeout=120)
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert "Failed    boom: ValueError: boom, as planned" in said, said
    assert "Compute Failed" not in said, said
    assert "distributed.worker - ERROR - a worker error of the task's own" in said, said


def test_a_cluster_the_user_made_keeps_distributeds_logging(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FLOW)
    done = labloom(tmp_path, "run", "failing.py:users", timeout=120,
                   TEST_USERS_CLUSTER="1")
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert "Failed    boom: ValueError: boom, as planned" in said, said
    assert "Compute Failed" in said, said
