"""`labloom runs / show / logs / retry` through the real entry point, in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from store_helpers import cli, cli_json, env_for, run_script

FLOW = """
import json
from pathlib import Path
from labloom import flow, task

TRACE = Path(__file__).with_name("trace.txt")

def note(what):
    with TRACE.open("a") as handle:
        handle.write(what + "\\n")

@task
def prepare(n):
    note("prepare")
    return list(range(n))

@task
def side(n):
    note("side")
    return n

@task
def fit(rows):
    note("fit")
    print("fitting", len(rows))
    raise RuntimeError("bad fit")

@task
def report(model, extra):
    note("report")
    return model

@flow
def pipeline(n: int = 3):
    rows = prepare(n)
    return report(fit(rows), side(n))

if __name__ == "__main__":
    pipeline.run(n=3)
"""


def test_runs_show_logs_and_retry_after_a_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = tmp_path / "pipeline.py"
    script.write_text(FLOW)
    done = run_script(home, script, LABLOOM_RESULTS="all")
    assert done.returncode == 0, done.stderr

    [run] = cli_json(home, "runs")
    assert run["flow_name"] == "pipeline" and run["state"] == "Failed"
    assert run["parameters"] == {"n": 3}
    table = cli(home, "runs", "--flow", "pipeline").stdout
    assert run["id"] in table and "Failed" in table and "STATE" in table
    assert cli_json(home, "runs", "--flow", "other") == []

    shown = cli_json(home, "show", run["id"])
    states = {t["name"]: t["state"] for t in shown["task_runs"]}
    assert states == {"prepare": "Completed", "fit": "Failed", "side": "Completed",
                      "report": "UpstreamFailed"}
    # Each state it was in, with the Running the store may leave out put back at its start
    # (``store/implied_states.py``), whether or not its start and end were in one write.
    histories = {t["name"]: [(h["state"], h["time"]) for h in t["history"]]
                 for t in shown["task_runs"]}
    for t in shown["task_runs"]:
        ran = t["started"] is not None
        assert histories[t["name"]] == [
            ("Pending", histories[t["name"]][0][1]),
            *([("Running", t["started"])] if ran else []),
            (t["state"], t["ended"]),
        ], t
    assert [t["name"] for t in shown["task_runs"] if t["started"] is None] == ["report"]
    text = cli(home, "show", run["id"]).stdout
    assert "RuntimeError: bad fit" in text and "UpstreamFailed" in text

    logs = cli_json(home, "logs", run["id"], "--task", "fit")
    assert [line["text"] for line in logs["lines"]] == ["fitting 3"]
    assert "fit | fitting 3" in cli(home, "logs", run["id"]).stdout

    # Fix the failing task, then retry from this (other) process.
    script.write_text(FLOW.replace('raise RuntimeError("bad fit")', 'return "model"'))
    retried = cli(home, "retry", run["id"])
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "reused 2 result(s)" in retried.stdout
    trace = (tmp_path / "trace.txt").read_text().split()
    assert trace.count("prepare") == 1 and trace.count("side") == 1  # reused, not rerun
    assert trace.count("fit") == 2 and trace.count("report") == 1

    newest = cli_json(home, "runs", "--limit", "1")[0]
    assert newest["retry_of"] == run["id"] and newest["state"] == "Completed"
    assert newest["origin"] == "retry"
    # The failed run names its retry: one who reads the failure (an alert's `labloom show`)
    # sees it was retried, and how that went, rather than retrying it again.
    assert f"retried by run {newest['id']} (Completed)" in cli(home, "show", run["id"]).stdout
    assert cli_json(home, "show", run["id"])["retried_by"] == [newest["id"]]
    assert cli_json(home, "show", newest["id"])["retried_by"] == []


def test_retry_reruns_an_upstream_whose_result_is_gone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = tmp_path / "pipeline.py"
    script.write_text(FLOW)
    run_script(home, script, LABLOOM_RESULTS="all")
    [run] = cli_json(home, "runs")
    prepare = next(t for t in cli_json(home, "show", run["id"])["task_runs"]
                   if t["name"] == "prepare")
    Path(prepare["result_path"]).unlink()
    script.write_text(FLOW.replace('raise RuntimeError("bad fit")', 'return "model"'))
    retried = cli(home, "retry", run["id"])
    assert retried.returncode == 0, retried.stderr
    assert "prepare: the result of run" in retried.stdout and "is gone" in retried.stdout
    assert (tmp_path / "trace.txt").read_text().split().count("prepare") == 2


def test_unknown_run_id_is_a_clear_error_with_status_2(tmp_path: Path) -> None:
    for command in ("show", "logs", "retry"):
        done = cli(tmp_path, command, "nosuchrun")
        assert done.returncode == 2
        assert "no run 'nosuchrun'" in done.stderr and "Traceback" not in done.stderr
    assert "no runs recorded" in cli(tmp_path, "runs").stdout


def test_retry_of_notebook_code_says_what_to_do(tmp_path: Path) -> None:
    import os

    os.environ["LABLOOM_HOME"] = str(tmp_path / "home")
    from labloom import flow, task

    @task
    def boom() -> None:
        raise ValueError("x")

    @flow
    def local_flow() -> None:
        boom()

    run = local_flow.run()
    done = cli(tmp_path / "home", "retry", run.id)
    assert done.returncode == 1
    assert "cannot be retried from here" in done.stderr and "run.retry()" in done.stderr


def test_a_prefix_of_several_run_ids_is_ambiguous_and_names_them(tmp_path: Path) -> None:
    # 17 runs: two of them share the first hex digit of their id, whatever the ids are.
    script = tmp_path / "many.py"
    script.write_text(
        "from labloom import flow, task\n"
        "@task\ndef one():\n    return 1\n"
        "@flow(executor='local')\ndef tiny():\n    return one()\n"
        "for _ in range(17):\n    tiny()\n", encoding="utf-8",
    )
    assert run_script(tmp_path, script).returncode == 0
    ids = [run["id"] for run in cli_json(tmp_path, "runs", "--limit", "100")]
    prefix = next(i[0] for i in ids if sum(j.startswith(i[0]) for j in ids) > 1)
    sharing = [i for i in ids if i.startswith(prefix)]
    for command in ("show", "logs", "retry"):
        done = cli(tmp_path, command, prefix)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"run id '{prefix}' is ambiguous" in done.stderr, done.stderr
        assert "give more of the id" in done.stderr
        assert all(run_id in done.stderr for run_id in sharing[:10]), done.stderr
    # the whole id still names its run
    assert cli(tmp_path, "show", sharing[0]).returncode == 0


RETRIED = """
from labloom import flow, task

tries = []

@task(retries=1, retry_delay=0)
def flaky():
    tries.append(1)
    if len(tries) == 1:
        raise KeyError("first attempt")
    return 1

@task
def broken(i):
    raise ValueError(f"broken {i}")

@flow
def pipeline():
    return flaky(), broken.map(range(5))

if __name__ == "__main__":
    pipeline.run()
"""


def test_logs_tell_why_each_attempt_and_task_run_failed(tmp_path: Path) -> None:
    """A task run that Completed on its second attempt has the first's traceback in its logs,
    not shown as its failure; `labloom logs RUN` ends with the failed task runs' tracebacks
    (before: "no log lines" and nothing of why the run failed)."""
    home = tmp_path / "home"
    script = tmp_path / "pipeline.py"
    script.write_text(RETRIED)
    run_script(home, script)
    [run] = cli_json(home, "runs")

    shown = cli(home, "show", run["id"]).stdout
    assert "flaky Completed" not in shown and "KeyError" not in shown, shown
    assert "broken[0] Failed, attempt 1:" in shown and "ValueError: broken 0" in shown

    flaky = cli(home, "logs", run["id"], "--task", "flaky").stdout
    assert "[labloom] attempt 1 of 2 failed; retrying in 0s" in flaky
    assert "KeyError: 'first attempt'" in flaky and "Completed" not in flaky

    whole = cli(home, "logs", run["id"]).stdout
    assert "broken[0] Failed, attempt 1:" in whole and "ValueError: broken 2" in whole
    assert "2 more failed task run(s) have a traceback" in whole
    tracebacks = cli_json(home, "logs", run["id"])["tracebacks"]
    assert sorted(t["task"] for t in tracebacks) == [f"broken[{i}]" for i in range(5)]


FOLLOWED = """
import sys, time
import json
from pathlib import Path
from labloom import flow, task

@task
def step(path):
    print("before the wait")
    while not Path(path).exists():
        time.sleep(0.05)
    print("after the wait")
    return 1

@flow
def watched(path: str):
    return step(path)

watched.run(path=sys.argv[1])
"""


def test_logs_follow_prints_lines_as_written_until_the_run_ends(tmp_path: Path) -> None:
    """`labloom logs RUN -f`: a CLI or scheduled run watched from a terminal; before, a
    running run's logs were read once."""
    home, script, release = tmp_path / "home", tmp_path / "watched.py", tmp_path / "release"
    script.write_text(FOLLOWED)
    run = subprocess.Popen([sys.executable, str(script), str(release)], env=env_for(home),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follower = None
    try:
        deadline = time.monotonic() + 60
        while not (runs := cli_json(home, "runs")):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.1)
        follower = subprocess.Popen(
            [sys.executable, "-m", "labloom", "logs", runs[0]["id"], "--follow", "--json"],
            env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        first = threading.Event()

        def read() -> None:
            assert follower is not None and follower.stdout is not None
            for line in follower.stdout:
                lines.append(line)
                first.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first.wait(30)  # shown while the run still waits
        assert json.loads(lines[0])["text"] == "before the wait" and run.poll() is None
        release.touch()
        assert follower.wait(60) == 0
        reader.join(60)
    finally:
        release.touch()
        run.wait(60)
        if follower is not None and follower.poll() is None:
            follower.kill()
    said = [json.loads(line) for line in lines]
    assert [(s["task"], s["text"]) for s in said] == [("step", "before the wait"),
                                                      ("step", "after the wait")]
    text = cli(home, "logs", runs[0]["id"], "-f", "--task", "step").stdout  # ended: at once
    assert text.endswith(f"run {runs[0]['id']} Completed\n") and "after the wait" in text


def test_a_retry_runs_on_what_its_run_ran_on_unless_the_flow_declares_the_same() -> None:
    from types import SimpleNamespace

    from labloom import DaskExecutor
    from labloom.export.retry import ran_on

    def record(executor: str, **facts: str) -> SimpleNamespace:
        return SimpleNamespace(executor=executor, metadata=facts)

    given = record("dask(tcp://10.0.0.5:8786)", address="tcp://10.0.0.5:8786", cluster="given")
    assert ran_on(given, None) == "tcp://10.0.0.5:8786"
    assert ran_on(given, "threads") == "tcp://10.0.0.5:8786"
    declared = DaskExecutor("tcp://10.0.0.5:8786")
    assert ran_on(given, declared) is declared  # its options kept
    made = DaskExecutor(client=object())  # the flow's code makes its cluster (and client)
    assert ran_on(given, made) is made  # not the address of the one the run's process made
    assert ran_on(given, DaskExecutor()) == "tcp://10.0.0.5:8786"  # run given it: --address
    embedded = record("dask(tcp://127.0.0.1:40000)", address="tcp://127.0.0.1:40000",
                      cluster="embedded LocalCluster")
    assert ran_on(embedded, "threads") == "dask"  # a new embedded cluster, not a dead address
    assert ran_on(embedded, "dask") == "dask"
    per_run = record("dask(tcp://10.0.0.9:8786)", address="tcp://10.0.0.9:8786",
                     cluster="KubeCluster per run", cluster_class="dask_kubernetes.KubeCluster")
    assert ran_on(per_run, "cluster:k8s") == "cluster:k8s"
    assert ran_on(record("threads(auto)"), "dask") == "threads"
    assert ran_on(record("threads(auto)"), None) is None
    assert ran_on(record("local"), None) == "local"
