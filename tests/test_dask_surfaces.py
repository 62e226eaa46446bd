"""The Dask executor through its surfaces: the embedded cluster, the CLI, the magics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cli_helpers import labloom

distributed = pytest.importorskip("distributed")

EMBEDDED = r'''
import json, os, sys
from IPython.core.interactiveshell import InteractiveShell
from labloom import DaskExecutor, flow, task
from labloom.executors import dask_shared as dask_executor


@task
def where(i):
    print("on a worker", i)
    return os.getpid()


@flow(executor="dask")
def declared(n):
    return where.map(range(n))


@flow
def plain(n):
    return where.map(range(n))


def facts(run):
    return {"pids": sorted(set(run.result())), "executor": run.executor.describe(),
            "dashboard": run.metadata.get("dashboard")}


if __name__ == "__main__":
    executor = DaskExecutor()
    lazy = "distributed" not in sys.modules and executor._client is None
    runs = [plain.run(n=4, executor=executor), plain.run(n=4, executor=DaskExecutor()),
            declared.run(n=4), plain.run(n=4, executor="dask")]
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "labloom")
    ip.run_line_magic("config", "Labloom.widget = False")
    ip.run_cell_magic("tasks", "", "import os\ndef where_nb(i):\n    return os.getpid()")
    ip.run_cell_magic("flow", "in_notebook --executor dask", "pids = where_nb.map(range(4))")
    print(json.dumps({
        "lazy": lazy,
        "runs": [facts(run) for run in runs],
        "notebook_pids": sorted(set(ip.user_ns["pids"])),
        "clusters": len(dask_executor._embedded),
        "workers": sorted(dask_executor._embedded[next(iter(dask_executor._embedded))][1]
                          .run(os.getpid).values()),
    }))
'''


def test_embedded_cluster_is_started_once_and_reused(subprocess_env, tmp_path):
    script = tmp_path / "embedded.py"
    script.write_text(EMBEDDED)
    env = {**subprocess_env, "LABLOOM_PROGRESS": "0"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["lazy"]
    assert facts["clusters"] == 1
    first = facts["runs"][0]
    assert first["executor"].startswith("dask(tcp://127.0.0.1:")
    assert first["dashboard"].startswith("http://")
    for later in facts["runs"][1:]:
        assert later["executor"] == first["executor"]
        assert later["dashboard"] == first["dashboard"]
    # every run, the %%flow cell's too, ran in the embedded cluster's worker processes
    for pids in [run["pids"] for run in facts["runs"]] + [facts["notebook_pids"]]:
        assert set(pids) <= set(facts["workers"])
    # closing the embedded cluster at exit is quiet, and so is its start with port 8787 busy
    # (another helper's cluster, a dashboard on this machine: ``dask_dashboard``)
    for scary in ("lose", "lost", "Traceback", "Error", "leaked", "already in use"):
        assert scary not in done.stderr, done.stderr


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
    )
    yield cluster
    # %%flow --address left a client connected for later cells; it must not outlive the cluster
    from labloom.executors.dask_shared import _connected

    client = _connected.pop(cluster.scheduler_address, None)
    if client is not None:
        client.close()
    cluster.close()


@pytest.fixture(scope="module")
def worker_pids(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        return set(client.run(os.getpid).values())


FLOWS_FILE = '''
import os
from labloom import flow, task


@task
def where(i):
    print("on pid", os.getpid())
    return i * 10


@task
def total(xs):
    return sum(xs)


@flow
def remote(n: int = 3):
    return total(where.map(range(n)))


@flow(executor="threads")
def declared_threads(n: int = 2):
    return where.map(range(n))
'''


def test_cli_run_with_address_runs_on_that_scheduler(cluster, worker_pids, labloom_home, tmp_path):
    # The file lives where the workers cannot import it: its tasks travel by value.
    (tmp_path / "flows_file.py").write_text(FLOWS_FILE)
    address = cluster.scheduler_address
    done = labloom(labloom_home, "run", "flows_file.py:remote", "--address", address,
                   "-p", "n=4", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    listed = labloom(labloom_home, "runs", "--json")
    (record,) = json.loads(listed.stdout)
    assert record["state"] == "Completed"
    assert record["executor"] == f"dask({address})"
    shown = json.loads(labloom(labloom_home, "show", record["id"], "--json").stdout)
    assert shown["metadata"]["dashboard"] == cluster.dashboard_link
    assert len(shown["task_runs"]) == 5
    logs = json.loads(labloom(labloom_home, "logs", record["id"], "--json").stdout)
    pids = {int(line["text"].split()[-1]) for line in logs["lines"]}
    assert pids and pids <= worker_pids


def test_cli_address_overrides_the_flows_declared_executor(cluster, labloom_home, tmp_path):
    (tmp_path / "flows_file.py").write_text(FLOWS_FILE)
    address = cluster.scheduler_address
    done = labloom(labloom_home, "run", "flows_file.py:declared_threads", "--address", address,
                   cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(labloom(labloom_home, "runs", "--json").stdout)
    assert record["executor"] == f"dask({address})"
    clash = labloom(labloom_home, "run", "flows_file.py:remote", "--executor", "threads",
                    "--address", address, cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert clash.returncode == 2
    assert f"the scheduler address {address} needs the dask executor, not 'threads'" in clash.stderr
    clash = labloom(labloom_home, "schedule", "add", "flows_file.py:remote", "--every", "1h",
                    "--executor", "local", "--address", address, cwd=tmp_path)
    assert clash.returncode == 2
    assert "needs the dask executor, not 'local'; drop --executor or --address" in clash.stderr


def test_cli_run_on_the_embedded_cluster_says_its_dashboard_link(labloom_home, tmp_path):
    """`labloom run` on Dask says where the cluster's dashboard is, as the cell's and Lab's
    "Dask dashboard" links do: the link the run's record keeps (port 8787, or another one when
    8787 is taken), once the cluster is up, before the run's end."""
    (tmp_path / "flows_file.py").write_text(FLOWS_FILE)
    done = labloom(labloom_home, "run", "flows_file.py:remote", "--executor", "dask",
                   cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(labloom(labloom_home, "runs", "--json").stdout)
    shown = json.loads(labloom(labloom_home, "show", record["id"], "--json").stdout)
    link = shown["metadata"]["dashboard"]
    assert link.startswith("http://") and link.endswith("/status")
    lines = done.stderr.splitlines()
    said = [n for n, line in enumerate(lines) if "dashboard" in line]
    assert [lines[n] for n in said] == [f"labloom: Dask dashboard: {link}"], done.stderr
    started = lines.index(f"labloom: flow 'remote' run {record['id']} started on dask")
    ended = next(n for n, line in enumerate(lines)
                 if line.startswith(f"labloom: run {record['id']} Completed"))
    assert started < said[0] < ended, done.stderr


FAILS_ONCE_FILE = '''
import os
from labloom import flow, task


@task
def where(marker: str) -> int:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("fails the first time")
    return os.getpid()


@flow
def sweep(marker: str):
    return where(marker)
'''


def test_a_retry_runs_on_the_scheduler_its_run_was_given(cluster, labloom_home, tmp_path):
    """`labloom retry` (the Flows panel's Retry too) of a run given a scheduler on the command
    line reruns there, not on the declared executor: local threads, the server's machine."""
    (tmp_path / "fails_once.py").write_text(FAILS_ONCE_FILE)
    address = cluster.scheduler_address
    done = labloom(labloom_home, "run", "fails_once.py:sweep", "--address", address,
                   "-p", f"marker={tmp_path / 'marker'}", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert done.returncode == 1, done.stderr
    (failed,) = json.loads(labloom(labloom_home, "runs", "--json").stdout)
    retried = labloom(labloom_home, "retry", failed["id"], cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert retried.returncode == 0, retried.stderr
    rerun = json.loads(labloom(labloom_home, "runs", "--limit", "1", "--json").stdout)[0]
    assert rerun["retry_of"] == failed["id"]
    assert rerun["executor"] == f"dask({address})"
    shown = json.loads(labloom(labloom_home, "show", rerun["id"], "--json").stdout)
    (where,) = shown["task_runs"]
    assert where["state"] == "Completed"


def test_a_retry_whose_scheduler_is_gone_says_how_to_retry_elsewhere(labloom_home, tmp_path):
    (tmp_path / "fails_once.py").write_text(FAILS_ONCE_FILE)
    with distributed.LocalCluster(n_workers=1, processes=False, protocol="tcp",
                                  dashboard_address=":0") as gone:
        done = labloom(labloom_home, "run", "fails_once.py:sweep", "--address",
                       gone.scheduler_address, "-p", f"marker={tmp_path / 'marker'}",
                       cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert done.returncode == 1, done.stderr
    (failed,) = json.loads(labloom(labloom_home, "runs", "--json").stdout)
    retried = labloom(labloom_home, "retry", failed["id"], cwd=tmp_path,
                      DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s")
    assert retried.returncode == 1
    assert "Traceback" not in retried.stderr
    assert f"labloom retry {failed['id']} --executor dask" in retried.stderr
    assert len(json.loads(labloom(labloom_home, "runs", "--json").stdout)) == 1  # no stray run


def test_a_scheduler_address_that_does_not_answer_is_one_clear_error_in_a_notebook(ip):
    import socket

    import dask

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{free.getsockname()[1]}"
    ip.run_cell_magic("tasks", "", NOTEBOOK_TASKS)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(OSError) as caught:
        ip.run_cell_magic("flow", f"typo --address {address}", FLOW_CELL)
    message = str(caught.value)
    assert message.startswith(f"[labloom] cannot reach {address} (a Dask scheduler)")
    assert "--address" in message and "the scheduler is running" in message
    assert caught.value.__suppress_context__  # not three chained tracebacks of Dask's


USES_A_LOCAL_MODULE = '''
import helper_beside_the_flow
from labloom import flow, task


@task
def cleaned(x: int) -> int:
    return helper_beside_the_flow.clean(x)


@flow
def etl():
    return cleaned(1)
'''


@pytest.fixture(params=["scheduler and workers", "workers only"])
def cluster_elsewhere(request, tmp_path):
    """A scheduler and a worker of their own processes, started where the flow's folder
    (``tmp_path``) is not importable (a remote cluster's): by either, or by the worker alone
    (the scheduler started beside the flow). Both import this tree's labloom."""
    from cli_helpers import SRC, dask_scheduler

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plain = dict(os.environ, PYTHONPATH=str(SRC))
    beside = dict(plain, PYTHONPATH=os.pathsep.join([str(SRC), str(tmp_path)]))
    scheduler, address = dask_scheduler(
        elsewhere, plain if request.param == "scheduler and workers" else beside)
    started = [scheduler]
    try:
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
             "--no-dashboard"], cwd=elsewhere, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=plain))
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(30)


def test_a_module_the_cluster_cannot_import_is_named_in_the_task_runs_message(
        cluster_elsewhere, labloom_home, tmp_path):
    """It was only Dask's "Error during deserialization of the task graph ... different
    environments": which module, only a click away, in the traceback. Where the scheduler
    could import it and the workers not (session 41's review), each worker that was given the
    task closed, and the run waited for good for workers that never came back."""
    (tmp_path / "helper_beside_the_flow.py").write_text("def clean(x):\n    return x\n")
    (tmp_path / "local_module.py").write_text(USES_A_LOCAL_MODULE)
    done = labloom(labloom_home, "run", "local_module.py:etl", "--address", cluster_elsewhere,
                   cwd=tmp_path, LABLOOM_PROGRESS="0", timeout=90)
    assert done.returncode == 1, done.stderr
    (record,) = json.loads(labloom(labloom_home, "runs", "--json").stdout)
    (failed,) = json.loads(labloom(labloom_home, "show", record["id"], "--json").stdout)[
        "task_runs"]
    assert failed["message"].startswith(
        "ModuleNotFoundError: No module named 'helper_beside_the_flow' on the Dask worker "
        "tcp://"), failed["message"]
    assert "Install it where the workers run" in failed["message"]


NOTEBOOK_TASKS = """
import os

def double(x):
    return 2 * x

def add(a, b):
    return a + b

def where():
    return os.getpid()
"""

FLOW_CELL = """
doubled = double.map(range(4))
total = add(double(1), double(2))
pid = where()
"""


@pytest.mark.parametrize("options", ["--executor dask --address {address}", "--address {address}"])
def test_flow_magic_runs_on_the_given_scheduler(ip, cluster, worker_pids, options):
    from labloom import Flow

    ip.run_cell_magic("tasks", "", NOTEBOOK_TASKS)
    line = "on_dask " + options.format(address=cluster.scheduler_address)
    ip.run_cell_magic("flow", line, FLOW_CELL)
    assert ip.user_ns["doubled"] == [0, 2, 4, 6]
    assert ip.user_ns["total"] == 6
    assert ip.user_ns["pid"] in worker_pids
    assert isinstance(ip.user_ns["on_dask"], Flow)
    assert ip.user_ns["on_dask"].executor == cluster.scheduler_address
