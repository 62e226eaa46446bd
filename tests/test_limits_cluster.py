"""Concurrency limits on a Dask cluster shared by machines that each have a store of their own
(issue 10, item 11): the cluster keeps the limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store_helpers import env_for, peak
from test_limits_order import finish

SHARED_CLUSTER = """
import json, sys, time
import labloom
from labloom import DaskExecutor, flow, task

out, address = sys.argv[1], sys.argv[2]
labloom.limits.set("db", 2)  # each machine's own store says 2; the cluster keeps it

@task(tags=["db"])
def hold(i):
    started = time.time()
    time.sleep(0.3)
    return started, time.time()

@flow
def many(n):
    return hold.map(range(n))

spans = many.run(n=5, executor=DaskExecutor(address)).result(120)
with open(out, "w") as handle:
    json.dump(spans, handle)
"""


@pytest.mark.timeout(240)
def test_machines_with_their_own_stores_share_a_limit_on_a_shared_cluster(
    tmp_path: Path,
) -> None:
    from distributed import LocalCluster

    script = tmp_path / "shared.py"
    script.write_text(SHARED_CLUSTER)
    with LocalCluster(n_workers=1, threads_per_worker=6, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster:
        procs = []
        for name in ("m1", "m2"):
            env = env_for(tmp_path / f"home-{name}", LABLOOM_HOST=name)
            env.pop("LABLOOM_DATABASE_URL", None)
            procs.append((subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / f"{name}.json"),
                 cluster.scheduler_address], env=env, text=True, stderr=subprocess.PIPE,
            ), tmp_path / f"{name}.json"))
        spans = [span for proc, out in procs for span in finish(proc, out)]
    assert len(spans) == 10 and peak(spans) == 2
