"""A cluster per run: ``DaskExecutor(cluster_class=..., cluster_kwargs=..., adapt_kwargs=...)``.

Mistakes are refused before any task runs. The lifecycle cases run in a fresh Python process
(as in test_thread_owners.py): in-process schedulers and workers are process-wide, so what
earlier tests left would blur "nothing is left". Clusters are real ``distributed`` ones, with
in-process workers and short sleeps, to stay cheap on shared cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from cli_helpers import labloom
from labloom import ClusterConfigError, DaskExecutor, flow, task

LOCAL = "distributed.LocalCluster"
QUIET = {"processes": False, "dashboard_address": ":0"}


@pytest.mark.parametrize(("options", "message"), [
    ({"cluster_class": "dask_kubernetes.operator.KubeCluster"},
     r"cannot import dask_kubernetes.*pip install dask-kubernetes"),
    ({"cluster_class": "LocalCluster"}, r"not an import path; write it as 'package.module.Class'"),
    ({"cluster_class": "distributed.LocalClustr"}, r"distributed has no 'LocalClustr'"),
    ({"cluster_class": "collections.OrderedDict"},
     r"collections.OrderedDict is not a Dask cluster class: it needs close\(\) and get_client"),
    ({"cluster_class": 42}, r"cluster_class takes a class, got 42"),
    ({"cluster_class": "distributed.SpecCluster", "cluster_kwargs": {"n_workers": 2}},
     r"cluster_kwargs for distributed.SpecCluster: got an unexpected keyword argument "
     r"'n_workers'; its options are workers, scheduler, worker"),
    ({"cluster_class": LOCAL, "cluster_kwargs": [("n_workers", 2)]},
     r"cluster_kwargs takes a dict of keyword arguments"),
    ({"cluster_class": LOCAL, "adapt_kwargs": {"minimum": 1, "maximun": 3}},
     r"adapt_kwargs: 'maximun' is not an option of distributed.LocalCluster.adapt\(\); its "
     r"options are .*maximum"),
    ({"cluster_class": LOCAL, "adapt_kwargs": {"minimum": 4, "maximum": 2}},
     r"minimum \(4\) is above maximum \(2\); swap them"),
    ({"cluster_class": LOCAL, "adapt_kwargs": {"maximum": "3"}},
     r"adapt_kwargs maximum must be a number of workers >= 0, got '3'"),
    ({"adapt_kwargs": {"minimum": 1, "maximum": 3}},
     r"adapt_kwargs configure a cluster per run and need cluster_class \(e.g. "
     r"cluster_class='distributed.LocalCluster'\)"),
    ({"cluster_kwargs": {"n_workers": 2}}, r"cluster_kwargs configure a cluster per run and need "
     r"cluster_class.*DaskExecutor\(n_workers=4\)"),
    ({"cluster_class": LOCAL, "address": "tcp://10.0.0.5:8786"},
     r"cluster_class starts a cluster per run, address names one that exists; drop one"),
    ({"cluster_class": LOCAL, "n_workers": 2},
     r"with cluster_class, put the cluster's options \(n_workers\) in cluster_kwargs"),
])
def test_mistakes_are_refused_when_the_executor_is_made(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        DaskExecutor(**options)


def test_a_class_object_is_taken_as_well_as_its_import_path() -> None:
    from distributed import LocalCluster

    executor = DaskExecutor(cluster_class=LocalCluster, cluster_kwargs=QUIET,
                            adapt_kwargs={"minimum": 0, "maximum": 2, "interval": "100ms"})
    assert executor._per_run is not None
    assert executor._per_run.path == "distributed.deploy.local.LocalCluster"
    assert executor._client is None  # nothing starts before a run


def test_adapt_options_are_those_the_class_takes_along_its_adapt_methods() -> None:
    from distributed import SpecCluster

    class JobQueueLike(SpecCluster):  # dask-jobqueue's adapt() counts jobs, then hands on
        def adapt(self, *args: Any, minimum_jobs: int | None = None,
                  maximum_jobs: int | None = None, **kwargs: Any) -> Any:
            return super().adapt(*args, **kwargs)

    DaskExecutor(cluster_class=JobQueueLike,
                 adapt_kwargs={"minimum_jobs": 1, "maximum_jobs": 4, "minimum_cores": 2})
    with pytest.raises(ClusterConfigError, match=r"'maximum_job' is not an option of .*"
                       r"JobQueueLike.adapt\(\); its options are .*maximum_jobs"):
        DaskExecutor(cluster_class=JobQueueLike, adapt_kwargs={"maximum_job": 4})

    class GatewayLike:  # dask-gateway's cluster: not a distributed Cluster, the same surface
        def __init__(self, address: str | None = None, **options: Any) -> None: ...
        def adapt(self, minimum: int | None = None, maximum: int | None = None,
                  active: bool = True, **kwargs: Any) -> None: ...
        def close(self) -> None: ...
        def get_client(self, set_as_default: bool = True) -> Any: ...

    # Its options go to the gateway server, which alone can say which it takes.
    DaskExecutor(cluster_class=GatewayLike, cluster_kwargs={"worker_cores": 2},
                 adapt_kwargs={"minimum": 1, "maximum": 10, "active": True})


def test_options_the_cluster_refuses_on_start_fail_the_run_before_any_task_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"

    @task
    def touch() -> None:
        marker.write_text("ran")

    @flow
    def once() -> None:
        touch()

    executor = DaskExecutor(cluster_class=LOCAL,
                            cluster_kwargs={**QUIET, "n_workers": 1, "no_such_option": 1})
    with pytest.raises(ClusterConfigError, match=r"distributed.LocalCluster\(\*\*cluster_kwargs"
                       r"\) refused its options: .*no_such_option.*; fix cluster_kwargs"):
        once.run(executor=executor)
    assert not marker.exists()
    assert executor._per_run is not None and executor._per_run.cluster is None
    # The run is in the store all the same, Failed, saying why (a scheduled run's history
    # and the Flows panel show the failure, not nothing).
    from labloom.store import open_store

    with open_store() as store:
        (recorded,) = store.list_runs(flow="once")
    assert recorded.state == "Failed"
    assert "the executor could not start" in recorded.message
    assert "no_such_option" in recorded.message


LIFECYCLE = textwrap.dedent("""
    import json, os, sys, threading, time
    from pathlib import Path
    from distributed import Scheduler, Worker
    from labloom import DaskExecutor, State, flow, task
    from labloom.store import open_store

    started = Path(sys.argv[1])
    released = started.with_name("released")

    @task
    def nap(i):
        time.sleep(0.15)
        return i * i

    @task
    def fail(i):
        raise ValueError(f"bad {i}")

    @task
    def long_nap(i):
        # Naps until the test lets it go, after the run ended: no child ends (and wakes the
        # submitting thread) while the run is being cancelled.
        started.write_text("yes")
        end = time.monotonic() + 120
        while not released.exists() and time.monotonic() < end:
            time.sleep(0.02)
        return i

    @flow
    def sweep(n):
        return nap.map(range(n))

    @flow
    def failing(n):
        return fail.map(range(n))

    @flow
    def slow(n):
        return long_nap.map(range(n))

    @flow
    def body_raises():
        raise RuntimeError("before any task")

    def left():
        # Schedulers and workers of this process not closed, waiting a bounded while for a
        # close that is still under way.
        end = time.monotonic() + 60
        while True:
            alive = [s for s in [*Scheduler._instances, *Worker._instances]
                     if s.status.name not in ("closed", "failed")]
            if not alive or time.monotonic() > end:
                return [f"{type(s).__name__} {s.status.name}" for s in alive]
            time.sleep(0.05)

    facts = {}
    executor = DaskExecutor(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": False,
                        "dashboard_address": ":0"},
        adapt_kwargs={"minimum": 1, "maximum": 3, "interval": "100ms",
                      "target_duration": "1s"},
    )
    run = sweep.run(n=24, executor=executor)
    facts["sweep"] = {"state": run.state.value, "value": run.result(),
                      "metadata": run.metadata, "left": left()}
    with open_store() as store:
        facts["sweep"]["stored"] = store.get_run(run.id).metadata
    facts["sweep"]["run_id"] = run.id

    again = sweep.run(n=2, executor=executor)
    facts["again"] = {"state": again.state.value, "address": again.metadata["address"],
                      "left": left()}

    run = failing.run(n=3, executor=executor)
    facts["failing"] = {"state": run.state.value, "left": left()}

    run = body_raises.run(executor=executor)
    facts["body_raises"] = {"state": run.state.value, "left": left()}

    # More children than the probes sent before the task is measured: the rest wait.
    run = slow.run(n=12, executor=executor, background=True)
    end = time.monotonic() + 30
    while not started.exists() and time.monotonic() < end:
        time.sleep(0.02)
    run.cancel("enough")
    # A long deadline: the property is what is left once the run ended, not how fast.
    facts["cancelled"] = {"finished": run.wait_finished(120)}
    released.write_text("yes")
    # The children still waiting to be sent when the cancel came are looked at again by the
    # submitting thread; wait for that thread to be done with them (it ends when idle) before
    # looking: it once started a new cluster for them after the run's own had closed.
    end = time.monotonic() + 60
    while any(t.name == "labloom-dask-submit" for t in threading.enumerate()):
        assert time.monotonic() < end, "the submitting thread never went idle"
        time.sleep(0.05)
    facts["cancelled"].update(state=run.state.value, left=left(),
                              client=executor._client is not None)
    executor.shutdown()
    print("FACTS " + json.dumps(facts), flush=True)
""")


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process, five runs on one executor with a cluster per run."""
    import os

    from cli_helpers import cli_env

    folder = tmp_path_factory.mktemp("lifecycle")
    (folder / "lifecycle.py").write_text(LIFECYCLE)
    env = cli_env(folder / "home", LABLOOM_PROGRESS="0",
                  DASK_TEMPORARY_DIRECTORY=str(folder / "dask"))
    env.pop("LABLOOM_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "lifecycle.py", str(folder / "started")],
                          capture_output=True, text=True, env=env, timeout=240, cwd=folder)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("FACTS "))
    facts: dict[str, Any] = json.loads(line[6:])
    facts["home"] = str(folder / "home")
    assert os.path.isdir(facts["home"])
    return facts


def test_an_adaptive_cluster_grows_under_a_map_and_the_record_says_how_far(
    lifecycle: dict[str, Any],
) -> None:
    sweep = lifecycle["sweep"]
    assert sweep["state"] == "Completed"
    assert sweep["value"] == [i * i for i in range(24)]  # read after the cluster closed
    for metadata in (sweep["metadata"], sweep["stored"]):
        assert metadata["cluster_class"] == "distributed.LocalCluster"
        assert metadata["cluster"] == "LocalCluster per run"
        assert 1 < metadata["peak_workers"] <= 3, metadata
        assert metadata["adapt"] == {"minimum": 1, "maximum": 3}
    assert sweep["left"] == []
    shown = labloom(Path(lifecycle["home"]), "show", sweep["run_id"],
                    LABLOOM_DATABASE_URL="")
    assert shown.returncode == 0, shown.stderr
    peak = sweep["stored"]["peak_workers"]
    assert (f"cluster: distributed.LocalCluster for this run, adaptive 1 to 3 workers, "
            f"{peak} worker(s) at peak") in shown.stdout


def test_each_run_gets_its_own_cluster(lifecycle: dict[str, Any]) -> None:
    assert lifecycle["again"]["state"] == "Completed"
    assert lifecycle["again"]["address"] != lifecycle["sweep"]["metadata"]["address"]
    assert lifecycle["again"]["left"] == []


@pytest.mark.parametrize("case", ["failing", "body_raises", "cancelled"])
def test_the_cluster_is_closed_when_the_run_fails_or_is_cancelled(
    lifecycle: dict[str, Any], case: str
) -> None:
    facts = lifecycle[case]
    assert facts["state"] == ("Cancelled" if case == "cancelled" else "Failed")
    assert facts["left"] == [], facts  # no scheduler, no worker
    if case == "cancelled":
        assert facts["finished"] is True, facts  # wait ended with the run, not its deadline
        assert facts["client"] is False
