"""DaskExecutor on a real LocalCluster with worker processes (one cluster for the module)."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

import labloom  # noqa: E402
from cli_helpers import wait_for  # noqa: E402
from dask_chunks import dask_keys, keys_of, measured_as_tiny  # noqa: E402
from holds import held_until  # noqa: E402
from labloom import DaskExecutor, State, flow, task  # noqa: E402
from labloom.core import events as ev  # noqa: E402
from labloom.core.sinks import RAN_AGAIN  # noqa: E402
from labloom.store import open_store  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    # allowed-failures=1: a worker death reschedules once, a second one is a KilledWorker.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=4,
            processes=True,
            dashboard_address=":0",
            resources={"memory_gb": 8},
        )
    yield cluster
    cluster.close()


@pytest.fixture
def executor(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    return DaskExecutor(cluster=cluster)


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def square(x: int) -> int:
    return x * x


@task
def offset(x: int, by: int) -> int:
    return x + by


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@flow
def three_stages(n: int) -> tuple[int, list[int]]:
    squares = square.map(numbers(n))
    shifted = offset.map(squares, by=labloom.unmapped(3))
    return total(shifted), shifted


def test_import_labloom_does_not_import_distributed():
    # The public API too (DaskExecutor's module included): ``import labloom`` alone imports
    # none of the engine, the store or the executors.
    code = ("import sys, labloom; [getattr(labloom, n) for n in labloom.__all__];"
            " print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(labloom.__file__).parents[1])})
    assert out.stdout.strip() == "False"


def test_three_stage_flow_equals_thread_executor(executor):
    expected = three_stages.run(n=12, executor="threads").result()
    run = three_stages.run(n=12, executor=executor)
    assert run.state is State.COMPLETED
    assert run.result() == expected
    assert run.metadata["dashboard"].startswith("http")
    # data stayed on the cluster: the engine holds futures with readable keys
    keys = [tr.handle.future.key for tr in run.tasks if tr.handle is not None]
    assert any(key.startswith("square-" + run.id) for key in keys)


def test_a_given_executor_keeps_no_subscription_of_finished_runs(executor):
    """A kernel running many flows on one DaskExecutor must not pile up log topics."""
    runs = [three_stages.run(n=3, executor=executor) for _ in range(3)]
    assert all(run.state is State.COMPLETED for run in runs)
    assert executor._topics == set()

    def subscribers(dask_scheduler, topics):  # runs on the scheduler
        known = dask_scheduler._broker._topics
        return {t: sorted(known[t].subscribers) if t in known else [] for t in topics}

    topics = [f"labloom-{run.id}" for run in runs]
    deadline = time.monotonic() + 60  # a guard
    while time.monotonic() < deadline:
        seen = executor.client.run_on_scheduler(subscribers, topics=topics)
        if not any(seen.values()):
            break
        time.sleep(0.05)
    assert not any(seen.values()), seen


class Payload:
    """Bytes that note, in a file, every process that unpickles them."""

    def __init__(self, data: bytes, ledger: str) -> None:
        self.data = data
        self.ledger = ledger

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        with open(self.ledger, "a") as out:
            out.write(f"{os.getpid()}\n")


@task
def payloads(n: int, ledger: str) -> list[Payload]:
    return [Payload(bytes([i]) * 2_000_000, ledger) for i in range(n)]


@task
def checksum(item: Payload) -> int:
    return item.data[0] * len(item.data)


@flow
def over_payloads(n: int, ledger: str) -> int:
    return total(checksum.map(payloads(n, ledger)))


def test_mapping_over_a_future_keeps_the_items_on_the_workers(executor, tmp_path):
    ledger = tmp_path / "unpickled-in"
    ledger.touch()
    run = over_payloads.run(n=6, ledger=str(ledger), executor=executor)
    assert run.result() == sum(i * 2_000_000 for i in range(6))
    # the width and each item were computed on the cluster, as tasks of their own
    children = [tr for tr in run.tasks if tr.name.startswith("checksum[")]
    items = [tr.args[0] for tr in children]
    assert all(isinstance(item, distributed.Future) for item in items)
    upstream = next(tr for tr in run.tasks if tr.name == "payloads").handle.future
    assert [item.key for item in items] == [f"item-{i}-{upstream.key}" for i in range(6)]
    worker_pids = executor.client.run(os.getpid)
    held = executor.client.who_has(items)
    assert all(set(held[item.key]) <= set(worker_pids) and held[item.key] for item in items)
    # and no byte of them was ever unpickled in this process
    assert str(os.getpid()) not in ledger.read_text().split()


@task
def chatty(i: int) -> int:
    for line in range(5):
        print(f"task {i} line {line}")
    logging.getLogger("experiment").warning("task %d warned", i)
    return os.getpid()


@flow
def talk(n: int) -> list[int]:
    return chatty.map(range(n))


def test_worker_logs_reach_the_run_in_order(executor):
    run = talk.run(n=6, executor=executor)
    pids = run.result()
    assert os.getpid() not in pids  # the tasks ran in worker processes
    for i in range(6):
        texts = [line.text for line in run.logs(f"chatty[{i}]")]
        assert texts[:5] == [f"task {i} line {k}" for k in range(5)]
        assert texts[5].endswith(f"task {i} warned")
    warned = [line for line in run.logs("chatty") if line.level == logging.WARNING]
    assert len(warned) == 6


@task
def fans_out(n: int) -> int:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    def part(i: int) -> int:
        print(f"part {i}")
        return i

    with ThreadPoolExecutor(2) as pool:  # the README's recipe: a context copied per call
        parts = [pool.submit(contextvars.copy_context().run, part, i) for i in range(n)]
        got = [p.result() for p in parts]
    done = subprocess.run([sys.executable, "-c", "print('from a subprocess')"],
                          capture_output=True, text=True, check=True)
    print(done.stdout, end="")
    return sum(got)


@flow
def fan_out_once(n: int) -> int:
    return fans_out(n)


def test_lines_of_threads_a_task_starts_and_of_its_subprocess_reach_its_logs_as_documented(
        executor):
    run = fan_out_once.run(n=3, executor=executor)
    assert run.result() == 3
    texts = [line.text for line in run.logs("fans_out")]
    assert sorted(texts[:3]) == ["part 0", "part 1", "part 2"]
    assert texts[3:] == ["from a subprocess"]


@task
def print_then_wait(marker: str) -> str:
    print("started")
    # Ends only once the test saw "started" among the run's events: a line that arrived with
    # the task's completion would leave this waiting until the guard fails it.
    held_until(marker, "the log line never reached the run while the task ran")
    return "done"


@flow
def one_waiting(marker: str) -> str:
    return print_then_wait(marker)


def test_worker_logs_arrive_while_the_task_runs(executor, tmp_path):
    marker = tmp_path / "seen"
    seen: list[str] = []

    def watch(batch):
        for event in batch:
            if isinstance(event, ev.LogRecord) and event.text == "started" and not seen:
                seen.append("log")
                marker.touch()  # releases the task
            elif isinstance(event, ev.StateChanged) and event.state.is_final:
                seen.append(event.state.value)

    run = one_waiting.run(marker=str(marker), executor=executor, background=True)
    run.subscribe(watch, replay=True)
    assert run.result(180) == "done"
    run.wait(60)
    assert seen == ["log", "Completed"]


@task(resources={"memory_gb": 4})
def heavy(x: int) -> int:
    return x * 2


@task(resources={"GPU": 1})
def needs_gpu(x: int) -> int:
    return x


@task(resources={"memory_gb": 4})
def heavy_until(marker: str) -> str:
    # Held until the test saw needs_gpu fail: that failure cannot have waited for this one.
    held_until(marker, "needs_gpu never failed while this task ran")
    return "done"


@flow
def with_resources(marker: str) -> tuple[list[int], int, str]:
    return heavy.map([1, 2, 3]), needs_gpu(1), heavy_until(marker)


def test_unsatisfiable_resource_fails_at_once(executor, tmp_path):
    # Dask would keep the task waiting for good: it fails before it is sent, while a task of
    # the same run still runs (held until the test sees the failure), not when the run ends.
    marker = tmp_path / "gpu-failed"
    names: dict[str, str] = {}
    seen: list[str] = []  # task names, as they reached a final state

    def watch(batch):
        for event in batch:
            if isinstance(event, ev.TaskRunCreated):
                names[event.task_run_id] = event.task_name
            elif isinstance(event, ev.StateChanged) and event.state.is_final:
                seen.append(names[event.task_run_id])
                if seen[-1] == "needs_gpu":
                    marker.touch()  # releases heavy_until

    run = with_resources.run(marker=str(marker), executor=executor, background=True)
    run.subscribe(watch, replay=True)
    assert run.wait(120) is State.FAILED  # a guard: without the check it would never end
    assert seen.index("needs_gpu") < seen.index("heavy_until"), seen
    states = {tr.name: tr.state for tr in run.tasks}
    assert states["heavy_until"] is State.COMPLETED
    assert states["heavy[0]"] is State.COMPLETED
    assert states["needs_gpu"] is State.FAILED
    message = next(tr.message for tr in run.tasks if tr.name == "needs_gpu")
    assert "GPU>=1" in message and "memory_gb=8" in message


@flow
def only_gpu() -> int:
    return needs_gpu(1)


def test_a_resource_no_worker_offers_fails_once_workers_joined_after_an_empty_look(
        tmp_path, monkeypatch):
    """A scheduler without workers yet (they start after it): a task asking a resource waits,
    as they may offer it. Once workers joined without it, a later run on the same executor
    fails at once: the empty look was kept, and every later one waited silently forever."""
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as bare:
        executor = DaskExecutor(cluster=bare)
        early = only_gpu.run(executor=executor, background=True)
        deadline = time.monotonic() + 30
        while not bare.scheduler.tasks and time.monotonic() < deadline:
            time.sleep(0.05)  # sent: the scheduler holds it for a worker to come
        assert bare.scheduler.tasks and early.state is State.RUNNING
        early.cancel()
        early.wait(30)
        bare.scale(1)
        executor.client.wait_for_workers(1, timeout=30)
        later = only_gpu.run(executor=executor, background=True)
        try:
            assert later.wait(30) is State.FAILED
        finally:
            later.cancel()
        (tr,) = later.tasks
        assert "GPU>=1" in tr.message and "1 worker(s) offer: no resources" in tr.message


def test_executors_given_one_cluster_share_one_client(tmp_path, monkeypatch):
    """``f.run(executor=DaskExecutor(cluster=c))`` in a loop: each executor opened a client
    of its own, none ever closed, each connected to the scheduler until the process ended."""
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as own:
        before = len(own.scheduler.clients)
        for n in range(5):
            assert three_stages.run(n=n, executor=DaskExecutor(cluster=own)).result()[1] == [
                i * i + 3 for i in range(n)]
        assert len(own.scheduler.clients) <= before + 1


def test_a_scheduler_without_workers_is_said_once_per_run_and_the_run_goes_on_when_one_joins(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as bare:
        with caplog.at_level(logging.WARNING, logger="labloom"):
            run = three_stages.run(n=3, executor=DaskExecutor(cluster=bare), background=True)
            deadline = time.monotonic() + 30
            while not bare.scheduler.tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            bare.scale(1)
            assert run.result(60) == (14, [3, 4, 7])
        said = [r.getMessage() for r in caplog.records if "has no workers" in r.getMessage()]
        assert len(said) == 1, said
        assert said[0].startswith(f"[labloom] run {run.id}: the Dask scheduler at ")
        assert "dask worker" in said[0]
        caplog.clear()
        assert three_stages.run(n=2, executor=DaskExecutor(cluster=bare)).result()[0] == 7
        assert not [r for r in caplog.records if "has no workers" in r.getMessage()]


@task(batch_size=1)
def half_second(i: int) -> int:
    time.sleep(0.5)
    return i


@flow
def half_seconds(n: int) -> list[int]:
    return half_second.map(range(n))  # type: ignore[return-value]


def test_a_scheduler_that_lost_its_last_worker_is_said_and_the_run_goes_on_when_one_joins(
        tmp_path, monkeypatch, caplog):
    # Session 41's review: every worker gone mid-run (killed, stopped) left the run's task
    # runs Running and Pending for good with nothing said anywhere. Dask waits for a worker
    # to join, and so does labloom, but it says so.
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, \
            caplog.at_level(logging.WARNING, logger="labloom"):
        run = half_seconds.run(n=12, executor=DaskExecutor(cluster=cluster),
                               background=True)
        deadline = time.monotonic() + 60
        while not any(tr.state is State.COMPLETED for tr in run.tasks):
            assert time.monotonic() < deadline, "a first child to end"
            time.sleep(0.05)
        cluster.scale(0)
        deadline = time.monotonic() + 30
        while not [r for r in caplog.records if "no workers left" in r.getMessage()]:
            assert time.monotonic() < deadline, "the lost workers to be said"
            assert run.state is State.RUNNING
            time.sleep(0.1)
        (said,) = [r.getMessage() for r in caplog.records
                   if "no workers left" in r.getMessage()]
        assert said.startswith(f"[labloom] run {run.id}: the Dask scheduler at ")
        assert "dask worker" in said and "cancel the run" in said
        assert "no-workers-timeout" in said
        cluster.scale(1)
        assert run.result(60) == list(range(12))


def test_a_resource_whose_only_worker_left_since_the_last_run_fails_the_next_run_at_once(
        tmp_path, monkeypatch):
    """What the workers offer was looked at once per executor: after the GPU worker left, a
    later run on the same executor waited Pending for good, with other workers idle."""
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0",
                                  resources={"GPU": 1}) as cluster:
        executor = DaskExecutor(cluster=cluster)
        assert only_gpu.run(executor=executor).result() == 1

        async def plain_worker() -> Any:
            return await distributed.Worker(cluster.scheduler_address, nthreads=1)

        plain = cluster.sync(plain_worker)
        cluster.scale(0)  # the GPU worker leaves; the plain one stays
        deadline = time.monotonic() + 30
        while len(cluster.scheduler.workers) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        later = only_gpu.run(executor=executor, background=True)
        try:
            assert later.wait(30) is State.FAILED
        finally:
            later.cancel()
            cluster.sync(plain.close)
        (tr,) = later.tasks
        assert "GPU>=1" in tr.message and "1 worker(s) offer: no resources" in tr.message


@task(tags=["db"])
def tagged(i: int) -> int:
    time.sleep(0.2)  # held long enough that the two runs' children overlap: the limit is tested
    return i


@flow
def use_db(n: int) -> list[int]:
    return tagged.map(range(n))


def test_limit_three_across_two_concurrent_runs(executor):
    labloom.limits.set("db", 3)
    first = use_db.run(n=20, executor=executor, background=True)
    second = use_db.run(n=20, executor=DaskExecutor(cluster=executor.cluster), background=True)
    assert first.result(60) == list(range(20))
    assert second.result(60) == list(range(20))
    edges = []
    for tr in first.tasks + second.tasks:
        assert tr.started is not None and tr.ended is not None
        edges += [(tr.started, 1), (tr.ended, -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    assert peak == 3


@task
def flaky(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        raise RuntimeError("first attempt fails")
    return "ok"


@task(timeout=0.5)
def too_slow(gate: str) -> None:
    # The thing under test: it outlasts its timeout (held until the run is over).
    held_until(gate, "the run never ended", guard=600)


@flow
def retry_and_timeout(marker: str, gate: str) -> tuple[str, None]:
    return flaky.with_options(retries=1, retry_delay=0)(marker), too_slow(gate)


def test_retries_and_timeouts_apply_on_workers(executor, tmp_path):
    gate = tmp_path / "run-over"
    try:
        run = retry_and_timeout.run(marker=str(tmp_path / "marker"), gate=str(gate),
                                    executor=executor)
    finally:
        gate.touch()  # the given-up call's thread on the worker goes
    by_name = {tr.name: tr for tr in run.tasks}
    assert by_name["flaky"].state is State.COMPLETED and by_name["flaky"].attempts == 2
    assert by_name["too_slow"].state is State.FAILED
    assert "timed out after 0.5s" in by_name["too_slow"].message
    # Why the first attempt failed, with the worker's traceback, in the task run's logs.
    [said] = [line.text for line in run.logs("flaky")]
    assert said.startswith("[labloom] attempt 1 of 2 failed; retrying in 0s\n"), said
    raised_at = flaky.fn.__code__.co_firstlineno + 4  # the line of @task
    assert "RuntimeError: first attempt fails" in said and f"line {raised_at}, in flaky" in said
    # A timed-out call's traceback is where it was stuck (its hold), taken on the worker.
    stuck_at = too_slow.fn.__code__.co_firstlineno + 3  # the line of @task
    assert f"line {stuck_at}, in too_slow\n" in by_name["too_slow"].traceback



@task
def fails_once(marker: str, i: int) -> int:
    if i == 1 and not os.path.exists(marker):
        Path(marker).touch()
        raise ValueError("first run")
    return i


@flow
def fails_once_alone_and_in_a_map(marker: str) -> tuple[int, int]:
    return total(fails_once.map(labloom.unmapped(marker), range(3))), fails_once(marker + "-", 1)


def test_a_rerun_runs_the_failed_task_runs_again_on_the_workers(executor, tmp_path):
    """run.retry() starts the failed task run at attempt 1 again: its Dask key was the failed
    attempt's (task, task run, attempt), which the scheduler still held as erred, and the rerun
    "failed" with the first run's error at once, without running."""
    run = fails_once_alone_and_in_a_map.run(marker=str(tmp_path / "marker"), executor=executor)
    assert run.state is State.FAILED
    run.retry()
    assert run.state is State.COMPLETED, [tr.message for tr in run.tasks]
    assert run.result() == (3, 1)


@task
def die_once(marker: str, i: int) -> int:
    if i == 0 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)  # the worker process dies mid-task
    time.sleep(0.1)  # the siblings still run on the dying worker: Dask reschedules them too
    return i


@flow
def survives(marker: str) -> list[int]:
    return die_once.map(labloom.unmapped(marker), range(8))


def test_killed_worker_the_flow_still_completes(executor, tmp_path):
    run = survives.run(marker=str(tmp_path / "killed"), executor=executor)
    assert (tmp_path / "killed").exists()
    assert run.state is State.COMPLETED
    assert run.result() == list(range(8))
    # Dask rescheduled the killed attempt itself: no labloom retry was needed
    assert all(tr.attempts == 1 for tr in run.tasks)


@task
def always_dies() -> None:
    os._exit(1)


@flow
def doomed() -> None:
    return always_dies()


def test_killed_worker_becomes_a_clear_task_failure(executor):
    run = doomed.run(executor=executor)
    tr = run.tasks[0]
    assert tr.state is State.FAILED
    assert tr.message.startswith("WorkerDiedError: the Dask worker running 'always_dies' died")
    assert "check the workers' logs and memory limit" in tr.message


@task(retries=1, retry_delay=0)
def dies_until_retried(ledger: str) -> int:
    with open(ledger, "a") as out:
        out.write("x")
    if os.path.getsize(ledger) <= 2:
        os._exit(1)  # twice: Dask gives up (allowed-failures=1), labloom's retry follows
    return os.getpid()


@flow
def retried_after_deaths(ledger: str) -> int:
    return dies_until_retried(ledger)


def test_killed_worker_is_subject_to_retries(executor, tmp_path):
    ledger = tmp_path / "attempts"
    run = retried_after_deaths.run(ledger=str(ledger), executor=executor)
    tr = run.tasks[0]
    assert run.state is State.COMPLETED and tr.state is State.COMPLETED
    assert ledger.read_text() == "xxx"
    assert tr.attempts == 2
    retrying = [entry for entry in tr.history if entry.state is State.RETRYING]
    assert len(retrying) == 1
    assert retrying[0].message.startswith("WorkerDiedError: the Dask worker running")


@task
def sleepy(i: int, gate: str) -> int:
    # Still running, most still queued, when the test cancels: held until it saw the run
    # cancelled (a guard past that), so the run cannot have waited for them.
    held_until(gate, "the test never saw the run cancelled")
    return i


@flow
def many_sleepy(gate: str) -> list[int]:
    return sleepy.map(range(30), gate=labloom.unmapped(gate))


def test_cancel_cancels_pending_futures(executor, tmp_path):
    gate = tmp_path / "cancelled"
    run = many_sleepy.run(gate=str(gate), executor=executor, background=True)
    wait_for(lambda: any(tr.state is State.RUNNING for tr in run.tasks), 60, "a sleepy to run")
    run.cancel()
    try:
        assert run.wait(120) is State.CANCELLED  # a guard: the running ones are held
    finally:
        gate.touch()
    assert all(tr.state is State.CANCELLED for tr in run.tasks)
    # Children still held back until their task is measured (dask_chunking) never reach
    # Dask, and the cancel keeps them from it for good.
    wait_for(lambda: not executor._submitter._members, 60, "the held children to be dropped")
    statuses = [tr.handle.future.status if tr.handle.future else "never sent"
                for tr in run.tasks]
    assert len(statuses) - statuses.count("finished") >= 20, statuses
    assert set(statuses) <= {"cancelled", "finished", "never sent"}, statuses


@task(batch_size=4)
def gated(i: int, gate: str) -> int:
    # Child 1 of the chunk waits for the test: children 0 and 1 have started, 2 and 3 not.
    deadline = time.monotonic() + 30
    while i == 1 and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(f"gated {i}")
    return i


@flow
def one_gated_chunk(gate: str) -> list[int]:
    return gated.map(range(4), gate=labloom.unmapped(gate))


def test_a_chunks_children_show_running_while_their_chunk_runs(executor, tmp_path):
    # A chunk's starts travel in columns with its next message (``dask_messages``): the
    # worker's flush sends them while the chunk still runs, so each child shows live.
    gate = tmp_path / "gate"
    run = one_gated_chunk.run(gate=str(gate), executor=executor, background=True)
    deadline = time.monotonic() + 20

    def states() -> list[State]:
        return [tr.state for tr in sorted(run.tasks, key=lambda tr: tr.map_index or 0)]
    while states()[:2] != [State.RUNNING] * 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    # Child 0 returned (its outcome comes with its chunk's), child 1 waits, 2 and 3 wait.
    assert states() == [State.RUNNING] * 2 + [State.PENDING] * 2, states()
    gate.touch()
    assert run.wait(20) is State.COMPLETED
    assert run.result() == [0, 1, 2, 3]
    assert [line.text for line in run.logs("gated[2]")] == ["gated 2"]
    assert all(tr.started and tr.ended and tr.worker for tr in run.tasks)


@task
def make_lock(holder: str) -> dict[str, object]:
    return {"holder": holder, "lock": threading.Lock()}


@task
def use_lock(held: dict[str, object]) -> str:
    return str(held["holder"])


@flow
def with_a_lock() -> str:
    return use_lock(make_lock("me"))


def test_a_result_dask_cannot_serialize_fails_its_task_run(executor, caplog):
    with caplog.at_level(logging.CRITICAL, logger="distributed"):
        run = with_a_lock.run(executor=executor)
    tasks = {tr.name: tr for tr in run.tasks}
    assert tasks["make_lock"].state is State.FAILED
    message = tasks["make_lock"].message
    assert "returned a builtins.dict that Dask cannot serialize" in message
    assert "'_thread.lock'" in message and "create the object inside the task" in message
    assert tasks["use_lock"].state is State.UPSTREAM_FAILED
    with pytest.raises(labloom.FlowFailed, match="cannot serialize"):
        run.result()
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]


@task
def given(x: int, resource: object) -> int:
    return x


@flow
def one_argument_cannot_travel() -> list[int]:
    lock = threading.Lock()  # a connection, an open file: what cannot be pickled
    return [square(1), square(2), given(3, lock), square(4)]


def test_an_argument_dask_cannot_serialize_fails_its_task_run_alone_saying_so(executor):
    """Sent in one graph with it, the other task runs failed too, and every message was
    Dask's "Could not serialize object of type LLGExpr" (labloom's graph, not the lock)."""
    run = one_argument_cannot_travel.run(executor=executor)
    states = {tr.name: tr.state for tr in run.tasks}
    assert states.pop("given") is State.FAILED
    assert set(states.values()) == {State.COMPLETED}, states
    (message,) = [tr.message for tr in run.tasks if tr.name == "given"]
    assert "arguments cannot be sent to a Dask worker" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "inside the task that uses it" in message


def test_checking_that_a_large_result_can_travel_makes_no_copy_of_it() -> None:
    """Checked on the worker before Dask keeps it: pickled whole into bytes, a 1.5 GB raw
    result doubled its worker's memory for a moment (a worker near its limit was killed)."""
    import tracemalloc

    from labloom.executors.dask_events import check_serializable

    for value in (b"x" * 50_000_000, [b"z" * 10_000_000] * 3, {"raw": bytearray(30_000_000)}):
        tracemalloc.start()
        try:
            check_serializable("large", value)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5_000_000, peak


def test_the_submitting_thread_ends_when_its_executor_shuts_down(executor) -> None:
    @flow
    def f() -> list[int]:
        return square.map(range(5))  # type: ignore[return-value]

    assert f.run(executor=executor).result() == [0, 1, 4, 9, 16]
    submitting = executor._submitter._thread
    assert submitting is not None  # the executor kept its thread for the next run
    executor.shutdown()
    submitting.join(timeout=60)
    assert not submitting.is_alive()


def test_an_error_while_sending_fails_the_task_runs_instead_of_hanging(executor) -> None:
    from labloom.executors import dask_submit

    def broken(client, watched):
        raise RuntimeError("the client's event loop is gone")

    # Its own patcher: monkeypatch.undo() would also undo the fixture's LABLOOM_HOME and
    # send the next run to the user's real store.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dask_submit, "watch", broken)

        @flow
        def f() -> list[int]:
            return square.map(range(3))  # type: ignore[return-value]

        run = f.run(executor=executor, background=True)
        assert run.wait(timeout=30) is State.FAILED
        children = [tr for tr in run.tasks if tr.task.name == "square"]
        assert children and all(tr.state is State.FAILED for tr in children)
        assert "event loop is gone" in children[0].message
    # the submitting thread survived: the next run goes through it
    assert f.run(executor=executor).result() == [0, 1, 4]


def test_a_task_run_whose_batch_broke_twice_is_told_once(executor, monkeypatch) -> None:
    from labloom.executors import dask_submit

    def refused(client, graph, resources):
        raise RuntimeError("the scheduler refused the graph")

    def broken(client, watched):
        raise RuntimeError("the client's event loop is gone")

    told = threading.Event()
    not_sent = dask_submit.Submitter._not_sent

    def not_sent_then_mark(self, *args):  # the real handler, then a mark to wait on
        not_sent(self, *args)
        told.set()

    monkeypatch.setattr(dask_submit, "send_graph", refused)
    monkeypatch.setattr(dask_submit, "watch", broken)
    monkeypatch.setattr(dask_submit.Submitter, "_not_sent", not_sent_then_mark)
    patient = square.with_options(retries=1, retry_delay=3600)  # an hour: the guard is 2 min

    @flow
    def f() -> int:
        return patient(2)  # type: ignore[return-value]

    run = f.run(executor=executor, background=True)
    assert told.wait(30), "the batch's second break never reached the submitter"
    # Reports reach the run through the dispatcher, in order: once this mark is through,
    # a second report the break caused would be in the task run's history.
    delivered = threading.Event()
    executor.dispatcher.put(delivered.set)
    assert delivered.wait(30), "the dispatcher delivered nothing"
    (tr,) = run.tasks
    assert [h.state for h in tr.history].count(State.RETRYING) == 1
    assert "refused the graph" in tr.message
    run.cancel()
    assert run.wait(timeout=120) is State.CANCELLED  # not after the hour's retry delay


def test_a_run_let_go_releases_its_results_on_the_cluster_at_once(executor) -> None:
    """The engine's objects refer to each other in cycles; dropping the FlowRun must still free
    the cluster's memory now, not whenever Python's cyclic collector runs."""

    def held_keys(run_id: str) -> list[str]:
        def keys(dask_scheduler, run_id):  # runs on the scheduler
            return [str(k) for k in dask_scheduler.tasks if run_id in str(k)]

        return executor.client.run_on_scheduler(keys, run_id=run_id)

    gc.disable()  # as if the collector had not run yet
    try:
        run = three_stages.run(n=4, executor=executor)
        assert run.result() == (26, [3, 4, 7, 12])
        run_id = run.id
        assert held_keys(run_id)  # kept while the run is held: run.result() reads them
        del run
        deadline = time.monotonic() + 60  # a guard
        while held_keys(run_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held_keys(run_id) == []
    finally:
        gc.enable()


def test_a_future_read_after_its_run_was_let_go_says_to_keep_the_run(executor) -> None:
    escaped: list[labloom.TaskFuture[int]] = []

    @flow
    def leaky() -> int:
        future = square(3)
        escaped.append(future)  # outlives the run's handle, which nobody keeps
        return future  # type: ignore[return-value]

    assert leaky.run(executor=executor).result() == 9
    with pytest.raises(labloom.LabloomError, match=r"keep the FlowRun"):
        escaped[0].result()


@task
def nap(x: int, upstream: list[int]) -> int:
    time.sleep(0.05)  # long enough that the map's children queue up behind each other
    return x


def dask_priorities(executor, keys: list[str]) -> list[tuple[float, ...]]:
    """The priority the scheduler gave each key: the order in which it hands them to workers."""
    def read(dask_scheduler, keys):  # runs on the scheduler
        return [list(dask_scheduler.tasks[key].priority) for key in keys]

    return [tuple(p) for p in executor.client.run_on_scheduler(read, keys=keys)]


def test_map_children_run_in_their_order_as_client_map_runs_them(executor) -> None:
    # Dask's own ordering of a graph (dask.order) ran a map's children roughly backwards; a
    # user reading the live DAG, and a sweep's balance at its end, expect the map's order.
    @flow
    def in_order(n: int) -> list[int]:
        # The sweep's shape: a list of parameters, and an upstream result for every child.
        return nap.map(range(n), upstream=labloom.unmapped(numbers(3)))  # type: ignore[return-value]

    n = 48  # more than the module's cluster runs at once (2 workers x 4 threads)
    # First run: nap is not measured, so a few probes go alone and the rest follow once a
    # probe's duration is back (a later batch). Second run: measured, one batch.
    for _ in range(2):
        run = in_order.run(n=n, executor=executor)
        assert run.result() == list(range(n))
        children = sorted((tr for tr in run.tasks if tr.task.name == "nap"),
                          key=lambda tr: tr.map_index)
        # The order itself, for every child, as the scheduler hands them to the workers (start
        # times on a busy machine would only show it roughly).
        order = dask_priorities(executor, [tr.handle.future.key for tr in children])
        jumps = [(i, order[i]) for i in range(1, n) if order[i] < order[i - 1]]
        assert not jumps, f"children ahead of an earlier child (index, priority): {jumps}"


def test_a_map_with_batch_size_runs_in_chunks_and_each_child_keeps_its_task_run(
    executor, tmp_path
) -> None:
    from labloom.store import open_store

    marker = tmp_path / "failed-once"

    @task(batch_size=4, retries=1)
    def tiny(x: int) -> int:
        print(f"child {x}")
        if x == 5 and not marker.exists():
            marker.touch()
            raise ValueError("first attempt of child 5")
        return x * 10

    @flow
    def chunked(n: int) -> tuple[int, list[int]]:
        values = tiny.map(range(n))
        return total(values), offset.map(values, by=labloom.unmapped(1))  # type: ignore[return-value]

    run = chunked.run(n=10, executor=executor)
    assert run.result() == (450, [x * 10 + 1 for x in range(10)])
    children = [tr for tr in run.tasks if tr.task.name == "tiny"]
    assert len(children) == 10 and all(tr.state is State.COMPLETED for tr in children)
    retried = next(tr for tr in children if tr.map_index == 5)
    assert retried.attempts == 2 and State.RETRYING in [h.state for h in retried.history]
    assert [line.text for line in run.logs("tiny[7]")] == ["child 7"]
    assert all(tr.started and tr.ended for tr in children)
    # Ten children, three chunks: the Dask keys say so.
    keys = dask_keys(executor)
    chunk_keys = {k for k in keys if k.startswith("tiny-chunk-")}
    assert len(chunk_keys) == 3 + 1  # three chunks, and the retried child's own
    # Only the chunk where a child failed asked the cluster which one and why.
    asked = {k for k in keys if k.startswith("status-tiny-chunk-")}
    assert len(asked) == 1
    with open_store() as store:
        stored = [t for t in store.task_runs(run.id) if t.name.startswith("tiny[")]
    assert len(stored) == 10 and {t.state for t in stored} == {"Completed"}


def probes_decided(records: list[logging.LogRecord], run_id: str, name: str) -> int:
    """The children per Dask task that ``name``'s probes decided in run ``run_id``, from what
    the product says on its log (debug): the behaviour is checked for that decision."""
    (size,) = [r.labloom_probes[0] for r in records if hasattr(r, "labloom_probes")
               and r.args[:2] == (run_id, name)]
    return int(size)


def test_a_default_map_of_tiny_tasks_shares_dask_tasks_and_reports_every_child(
    executor, caplog
) -> None:
    from labloom.dag.model import ViewGraph
    from labloom.executors.dask_chunking import probe_count

    @task  # no option: chunking is automatic
    def quick(x: int) -> int:
        print(f"child {x}")
        return x + 1

    @flow
    def f(n: int) -> list[int]:
        return quick.map(range(n))  # type: ignore[return-value]

    n = 400
    with caplog.at_level(logging.DEBUG, logger="labloom"):
        first = f.run(n=n, executor=executor)
    assert first.result() == list(range(1, n + 1))
    children = [tr for tr in first.tasks if tr.task.name == "quick"]
    assert len(children) == n
    assert all(tr.state is State.COMPLETED and tr.started and tr.ended for tr in children)
    assert [line.text for line in first.logs("quick[123]")] == ["child 123"]
    graph = ViewGraph()
    graph.apply(first.events())
    (node,) = [node for node in graph.nodes.values() if node.name == "quick"]
    assert node.total == n and node.counts[State.COMPLETED] == n  # the DAG counts children
    # Never measured before: a few probes alone (two per worker thread), the rest as they
    # decided: in chunks, unless the machine paused them past 12.5 ms (then one per Dask task).
    alone, chunks = keys_of(executor, first, "quick")
    threads = sum(executor.client.nthreads().values())
    # Each worker thread's lane is kept once, not once per child (a run of a million holds it).
    assert 1 <= len({id(tr.worker) for tr in children}) <= threads
    if probes_decided(caplog.records, first.id, "quick") > 1:
        assert 1 <= len(alone) <= probe_count(threads)
        # Packed: two or more children a chunk on average. Not "fewer Dask tasks than n / 4":
        # probes read at 10-12.5 ms (a no-op on a loaded machine) decide the smallest chunks,
        # of 4, and 16 probes and 96 chunks of 4 crossed it.
        assert chunks and len(chunks) < (n - len(alone)) / 2
    else:  # every child its own Dask task (its handle's key; the scheduler's log is bounded)
        assert {tr.handle.future.key for tr in children} == {
            f"quick-{tr.id}-1" for tr in children}
    # Measured as tiny now: the next map is chunked from its first child.
    measured_as_tiny(executor, "quick")
    second = f.run(n=n, executor=executor)
    assert second.result() == list(range(1, n + 1))
    alone, chunks = keys_of(executor, second, "quick")
    assert not alone and 0 < len(chunks) < n / 4
    # A chunk's values come back as one pickle, not item by item (``ChunkValues``).
    child = next(tr for tr in second.tasks if tr.task.name == "quick")
    assert type(executor.client.gather(child.handle.future)).__name__ == "ChunkValues"
    # Every child returned: their end events said so, and no chunk asked the cluster again.
    assert not {f"status-{key}" for key in chunks} & dask_keys(executor)


def test_a_default_map_of_slow_tasks_runs_one_child_per_dask_task(executor) -> None:
    @task
    def slow(x: int) -> int:
        time.sleep(0.1)  # the thing under test: slow enough never to be packed into chunks
        return x

    @flow
    def f(n: int) -> list[int]:
        return slow.map(range(n))  # type: ignore[return-value]

    run = f.run(n=30, executor=executor)
    assert run.result() == list(range(30))
    alone, chunks = keys_of(executor, run, "slow")
    assert len(alone) == 30 and not chunks


def test_batch_size_one_opts_out_of_automatic_chunks(executor) -> None:
    @task(batch_size=1)
    def own(x: int) -> int:
        return x

    @flow
    def f(n: int) -> list[int]:
        return own.map(range(n))  # type: ignore[return-value]

    for _ in range(2):  # the second map is measured: still one Dask task per child
        run = f.run(n=100, executor=executor)
        assert run.result() == list(range(100))
        alone, chunks = keys_of(executor, run, "own")
        assert len(alone) == 100 and not chunks


def test_in_an_automatic_chunk_retries_and_timeouts_are_per_child(executor, tmp_path) -> None:
    from labloom.core.errors import TaskTimeoutError

    failed, slept = tmp_path / "failed-once", tmp_path / "slept-once"
    gate = str(tmp_path / "run-over")

    @task(retries=1, timeout=2)
    def tiny(x: int, trouble: bool) -> int:
        if trouble and x == 5 and not failed.exists():
            failed.touch()
            raise ValueError("first attempt of child 5")
        if trouble and x == 7 and not slept.exists():
            slept.touch()
            # Past its timeout (held until the run is over): only this child's attempt fails.
            held_until(gate, "the run never ended", guard=600)
        return x * 10

    @flow
    def f(n: int, trouble: bool) -> list[int]:
        return tiny.map(range(n), trouble=labloom.unmapped(trouble))  # type: ignore[return-value]

    assert f.run(n=50, trouble=False, executor=executor).result() == [x * 10 for x in range(50)]
    measured_as_tiny(executor, "tiny")
    try:
        run = f.run(n=50, trouble=True, executor=executor)  # measured: chunked from the start
    finally:
        Path(gate).touch()  # the given-up attempt's thread on the worker goes
    assert run.result() == [x * 10 for x in range(50)]
    children = {tr.map_index: tr for tr in run.tasks if tr.task.name == "tiny"}
    assert {i for i, tr in children.items() if tr.attempts != 1} == {5, 7}
    assert all(tr.state is State.COMPLETED for tr in children.values())
    timed_out = [h.message for h in children[7].history if h.state is State.RETRYING]
    assert len(timed_out) == 1 and TaskTimeoutError.__name__ in timed_out[0]
    alone, chunks = keys_of(executor, run, "tiny")
    assert chunks  # the first attempts ran in chunks, but for the siblings after child 7 in
    # its chunk: it held them past GIVE_BACK_AFTER, and they went out alone (test_dask_hanging_child)
    assert alone <= {f"tiny-{tr.id}-1" for i, tr in children.items() if i > 7}
    retried = {f"tiny-{children[i].id}-2" for i in (5, 7)} | {
        f"tiny-chunk-{children[i].id}-2" for i in (5, 7)}
    assert len(retried & dask_keys(executor)) == 2  # each retry alone, no sibling rerun


def test_an_automatic_chunk_keeps_cache_and_concurrency_limits_per_child(executor) -> None:
    @task(cache=True)
    def kept(x: int) -> int:
        return x * 2

    @task(tags=["tiny-db"])
    def limited(x: int) -> int:
        return x

    @flow
    def cached(n: int) -> list[int]:
        return kept.map(range(n))  # type: ignore[return-value]

    @flow
    def use_db(n: int) -> list[int]:
        return limited.map(range(n))  # type: ignore[return-value]

    measured_as_tiny(executor, "kept")
    first = cached.run(n=200, executor=executor)
    assert first.result() == [x * 2 for x in range(200)]
    assert keys_of(executor, first, "kept")[1]  # chunked
    again = cached.run(n=200, executor=executor)
    assert again.result() == [x * 2 for x in range(200)]
    assert {tr.state for tr in again.tasks} == {State.CACHED}
    labloom.limits.set("tiny-db", 2)
    measured_as_tiny(executor, "limited")
    for _ in range(2):  # measured, so chunked
        run = use_db.run(n=100, executor=executor)
        assert run.result() == list(range(100))
        edges = [(t, step) for tr in run.tasks for t, step in ((tr.started, 1), (tr.ended, -1))]
        running = peak = 0
        for _, step in sorted(edges):
            running += step
            peak = max(peak, running)
        assert peak <= 2
    assert keys_of(executor, run, "limited")[1]  # chunks of the children holding a slot


def test_batch_size_is_checked_at_decoration() -> None:
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        task(batch_size=0)(lambda: 1)
    with pytest.raises(ValueError, match="batch_size must be"):
        task(batch_size="fast")(lambda: 1)


@task
def patient_step(i: int) -> int:
    time.sleep(0.3)  # most steps still pending when the scheduler goes
    return i


@task(retries=2, retry_delay=0.2)
def stubborn_step() -> int:
    time.sleep(600)  # running when the scheduler goes: the run must not wait for it
    return 0


@flow
def steps(n: int) -> list[int]:
    stubborn_step()
    return patient_step.map(range(n))  # type: ignore[return-value]


def test_a_lost_scheduler_fails_the_run_at_once_and_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    # Its own cluster: this test closes the scheduler under the run. A short connect timeout
    # only shortens the wait at the end, for the workers and client that try to reconnect.
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        executor = DaskExecutor(cluster=cluster)
        with dask.config.set({"distributed.comm.timeouts.connect": "300s"}):
            # Its client made now: it tries to reconnect for longer than the guard below.
            client = executor.client
        run = steps.run(n=60, executor=executor, background=True)
        deadline = time.monotonic() + 60
        while sum(tr.state is State.COMPLETED for tr in run.tasks) < 4:
            assert time.monotonic() < deadline, "four steps to finish"
            time.sleep(0.05)
        cluster.sync(cluster.scheduler.close)
        # Not after the stubborn step: it sleeps five times this guard's length.
        assert run.wait(120) is State.FAILED
    client.close()  # else it tries to reconnect for the 300 s
    unfinished = [tr for tr in run.tasks if tr.state is not State.COMPLETED]
    assert unfinished and all(tr.state is State.FAILED for tr in unfinished)
    # Nor after the client's reconnect timeout: its end would have closed the client, and
    # the runs failed then say "the Dask cluster or client of this run was closed".
    lost = "SchedulerLostError: the Dask scheduler was lost while"
    assert all(tr.message.startswith(lost) for tr in unfinished), {tr.message for tr in unfinished}
    assert "CancelledError" not in run.message and lost in run.message
    (stubborn,) = [tr for tr in run.tasks if tr.name == "stubborn_step"]
    assert stubborn.attempts == 3  # its retries failed at once too, without a scheduler
    assert isinstance(stubborn.error, labloom.SchedulerLostError)


@task(retries=2, retry_delay=0.2)
def brief_stubborn_step() -> int:
    # Running when the cluster closes (its retries must fail at once): held until its worker
    # no longer talks to the scheduler, so its answer can go nowhere; then it returns, as the
    # worker's close waits for it.
    stream = distributed.get_worker().batched_stream
    deadline = time.monotonic() + 120  # a guard
    while not stream.closed() and time.monotonic() < deadline:
        time.sleep(0.01)
    return 0


@flow
def brief_steps(n: int) -> list[int]:
    brief_stubborn_step()
    return patient_step.map(range(n))  # type: ignore[return-value]


def test_a_cluster_closed_under_a_run_fails_its_task_runs_saying_so(tmp_path, monkeypatch):
    # Session 41's review: `cluster.close()` in another cell while a run ran failed every
    # task run with only "CancelledError: patient_step[3] was cancelled": Dask cancels the
    # futures of a client its cluster closed with reason "unknown", as if the run had been
    # cancelled, and nothing said that the cluster was gone or what to do.
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        run = brief_steps.run(n=20, executor=DaskExecutor(cluster=cluster), background=True)
        deadline = time.monotonic() + 60
        while sum(tr.state is State.COMPLETED for tr in run.tasks) < 2 or not any(
                tr.name == "brief_stubborn_step" and tr.state is State.RUNNING for tr in run.tasks):
            assert time.monotonic() < deadline, "two steps to finish, the stubborn one to run"
            time.sleep(0.05)
        cluster.close()
        assert run.wait(20) is State.FAILED
    unfinished = [tr for tr in run.tasks if tr.state is not State.COMPLETED]
    assert unfinished and all(tr.state is State.FAILED for tr in unfinished)
    closed = "SchedulerLostError: the Dask cluster or client of this run was closed while"
    assert all(tr.message.startswith(closed) for tr in unfinished), {
        tr.message for tr in unfinished}
    assert "cluster.close()" in unfinished[0].message and "retry" in unfinished[0].message
    (stubborn,) = [tr for tr in run.tasks if tr.name == "brief_stubborn_step"]
    assert stubborn.attempts == 3 and isinstance(stubborn.error, labloom.SchedulerLostError)


def test_a_run_on_a_client_or_cluster_closed_since_says_so(tmp_path, monkeypatch):
    # Closed in another cell after a first run, then the flow's cell run again: the run was
    # an AttributeError ("'NoneType' object has no attribute 'address'") from inside labloom.
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        client = distributed.Client(cluster, set_as_default=False)
        given_client, given_cluster = DaskExecutor(client=client), DaskExecutor(cluster=cluster)
        assert three_stages.run(n=2, executor=given_client).result()[0] == 7
        assert three_stages.run(n=2, executor=given_cluster).result()[0] == 7
        client.close()
        with pytest.raises(ConnectionError, match=r"the Dask client given to "
                           r"DaskExecutor\(client=\.\.\.\) is closed \(client.close\(\)"):
            three_stages.run(n=2, executor=given_client)
        cluster.close()
        with pytest.raises(ConnectionError, match=r"the Dask cluster given to "
                           r"DaskExecutor\(cluster=\.\.\.\) is closed \(cluster.close\(\)\); "
                           "start a new one"):
            three_stages.run(n=2, executor=given_cluster)


@flow
def sum_of_halves(n: int) -> int:
    return total(half_second.map(range(n)))  # type: ignore[return-value]


def test_a_cluster_restarted_under_a_run_fails_its_task_runs_saying_so(tmp_path, monkeypatch):
    # `client.restart()` (or Restart in the Dask dashboard) while a run ran failed every task
    # run with only "CancelledError: half_second[3] was cancelled", as for a run cancelled on
    # purpose: Dask's reason ("scheduler-restart") was not said.
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        run = half_seconds.run(n=12, executor=DaskExecutor(client=client), background=True)
        deadline = time.monotonic() + 60
        while not any(tr.state is State.COMPLETED for tr in run.tasks):
            assert time.monotonic() < deadline, "a first child to end"
            time.sleep(0.05)
        client.restart()
        assert run.wait(30) is State.FAILED
        unfinished = [tr for tr in run.tasks if tr.state is not State.COMPLETED]
        restarted = "WorkerDiedError: the Dask scheduler restarted while 'half_second["
        assert unfinished and all(tr.message.startswith(restarted) for tr in unfinished), {
            tr.message for tr in unfinished}
        assert "client.restart()" in unfinished[0].message
        # The cluster is there again. A retry runs the children that had completed too:
        # reused, their values lost in the restart, they failed what used them ("cancelled").
        assert run.retry().result(60) == list(range(12))
        assert sum_of_halves.run(n=3, executor=DaskExecutor(client=client)).result() == 3


# --- Faults inside a chunk of several children (helper s, session 39) ----------------------


class HoldsALock(Exception):
    """An error Dask cannot pickle (it keeps a lock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@task(batch_size=4)
def raises_unpicklable(i: int) -> int:
    print(f"child {i}")
    if i == 1:
        raise HoldsALock("child 1 holds a lock")
    return i


@flow
def chunk_with_unpicklable_error() -> list[int]:
    return raises_unpicklable.map(range(4))  # type: ignore[return-value]


def test_a_chunk_child_raising_an_error_dask_cannot_pickle_fails_alone(executor, caplog):
    # The chunk's "which child failed" answer held the error itself: it could not travel, the
    # answer was lost and the run stayed Running for good. As for a task alone, Dask's
    # stand-in (an Exception with the error's repr) travels instead.
    with caplog.at_level(logging.CRITICAL, logger="distributed"):
        run = chunk_with_unpicklable_error.run(executor=executor, background=True)
        assert run.wait(30) is State.FAILED
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert [tr.state for tr in children] == [State.COMPLETED, State.FAILED, State.COMPLETED,
                                             State.COMPLETED]
    assert "HoldsALock('child 1 holds a lock')" in children[1].message
    assert [line.text for line in run.logs("raises_unpicklable[2]")] == ["child 2"]


def _rebuilt_on_a_worker_only(message: str) -> Exception:
    from distributed import get_worker

    get_worker()  # raises in the kernel: as a module installed on the workers alone
    return OnTheWorkersOnly(message)


class OnTheWorkersOnly(Exception):
    def __reduce__(self):  # type: ignore[override]
        return _rebuilt_on_a_worker_only, (str(self),)


@task(batch_size=4)
def raises_unreadable(i: int) -> int:
    if i == 2:
        raise OnTheWorkersOnly("child 2 failed")
    return i


@flow
def chunk_with_unreadable_error() -> list[int]:
    return raises_unreadable.map(range(4))  # type: ignore[return-value]


def test_a_chunk_child_error_the_kernel_cannot_read_still_ends_every_child(executor):
    # The answer saying which child failed could not be read here: the dispatcher logged it
    # and the children waited for good. Each ends, by its own end event where it returned.
    run = chunk_with_unreadable_error.run(executor=executor, background=True)
    assert run.wait(30) is State.FAILED
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert [tr.state for tr in children] == [State.COMPLETED, State.COMPLETED, State.FAILED,
                                             State.COMPLETED]
    assert "No worker found" in children[2].message, children[2].message


@task(batch_size=4)
def one_kills_its_worker(i: int, go: str) -> int:
    print(f"child {i}")
    if i == 2:
        # In its chunk it dies at once; sent alone, once the test saw its siblings complete:
        # a worker's death also fails the tasks running beside it, and only the killer's
        # failure is under test.
        alone = "-chunk-" not in str(distributed.get_worker().get_current_task())
        deadline = time.monotonic() + 30
        while alone and not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(1)
    return i


@flow
def chunk_with_a_worker_killer(go: str) -> list[int]:
    return one_kills_its_worker.map(range(4), go=labloom.unmapped(go))  # type: ignore[return-value]


def test_a_chunk_child_that_kills_its_worker_fails_alone(executor, tmp_path, caplog):
    # Dask gave up on the chunk (KilledWorker) and each of its four children failed with
    # "the worker running it died", where alone (batch_size=1) only the killer fails. The
    # children are sent again alone: the others complete, the killer fails and says so.
    go = tmp_path / "go"
    with caplog.at_level(logging.CRITICAL, logger="distributed"):
        run = chunk_with_a_worker_killer.run(go=str(go), executor=executor, background=True)
        deadline = time.monotonic() + 60
        while run.state is State.RUNNING and time.monotonic() < deadline and sum(
                tr.state is State.COMPLETED for tr in run.tasks) < 3:
            time.sleep(0.02)
        go.touch()
        assert run.wait(120) is State.FAILED
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert [tr.state for tr in children] == [State.COMPLETED, State.COMPLETED, State.FAILED,
                                             State.COMPLETED]
    assert children[2].message.startswith(
        "WorkerDiedError: the Dask worker running 'one_kills_its_worker[2]' died")
    assert [executor.result(tr.handle) for tr in children if tr.map_index != 2] == [0, 1, 3]
    # Its lines, on its task run (twice, with labloom's line between, when its result lived
    # on a worker the killer took down and Dask computed it again: the test below)
    assert {line.text for line in run.logs("one_kills_its_worker[3]")} <= {"child 3", RAN_AGAIN}


@task(batch_size=4)
def waits_in_its_chunk(i: int, gate: str) -> int:
    print(f"child {i}")
    if i == 2 and not os.path.exists(gate + ".pid"):
        Path(gate + ".pid").write_text(str(os.getpid()))  # the first try only: the test kills it
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
    return i


@flow
def a_chunk_to_kill(gate: str) -> list[int]:
    return waits_in_its_chunk.map(range(4), gate=labloom.unmapped(gate))  # type: ignore[return-value]


def test_a_chunk_run_again_after_its_worker_died_says_so_between_its_runs_lines(
        executor, tmp_path, caplog):
    # Dask runs the chunk again elsewhere, as the same attempt: what its children that had run
    # printed is in the store and the views already, and they print again. Each such child's
    # logs say so between the two runs' lines (before, the lines came twice, unexplained).
    gate = tmp_path / "gate"
    with caplog.at_level(logging.CRITICAL, logger="distributed"):
        run = a_chunk_to_kill.run(gate=str(gate), executor=executor, background=True)
        deadline = time.monotonic() + 30
        # Child 2 waits, and its line (with those of the siblings that ran before it) arrived
        while not (Path(f"{gate}.pid").exists() and run.logs("waits_in_its_chunk[2]")):
            assert time.monotonic() < deadline, "child 2 to wait and its line to come"
            time.sleep(0.02)
        pid = int(Path(f"{gate}.pid").read_text())
        (address,) = [a for a, p in executor.client.run(os.getpid).items() if p == pid]
        with pytest.raises(Exception):  # noqa: B017 (the worker dies under the call)
            executor.client.run(os._exit, 1, workers=[address])
        assert run.wait(60) is State.COMPLETED  # Dask ran the chunk again elsewhere
        gate.touch()
    assert run.result() == [0, 1, 2, 3]
    lines = [[line.text for line in run.logs(f"waits_in_its_chunk[{i}]")] for i in range(4)]
    # Live, a line may come in before the start that it follows is applied (both are in
    # flight); the store keeps them in time order.
    assert all(lines[i][0] == f"child {i}" and sorted(lines[i][1:]) in (
        [], sorted([RAN_AGAIN, f"child {i}"])) for i in range(4)), lines
    assert RAN_AGAIN in lines[2]  # child 2 printed, then its worker died
    with open_store() as store:
        stored, _ = store.logs(run.id, task="waits_in_its_chunk[2]")
    assert [line.text for line in stored] == ["child 2", RAN_AGAIN, "child 2"]


@task(batch_size=4)
def misbehaves(i: int) -> object:
    print(f"child {i}")
    labloom.log_metrics(m=i)
    if i == 1:
        return threading.Lock()
    if i == 2:
        raise SystemExit(3)
    if i == 3:
        raise KeyboardInterrupt
    return i


@flow
def a_chunk_that_misbehaves() -> list[object]:
    return misbehaves.map(range(4))  # type: ignore[return-value]


def test_in_a_chunk_a_bad_value_or_base_exception_fails_that_child_alone(executor, caplog):
    # Each fails with its documented error; the chunk's other child keeps its value, and each
    # child's lines and values land on its own task run, the stored ones too.
    with caplog.at_level(logging.CRITICAL, logger="distributed"):
        run = a_chunk_that_misbehaves.run(executor=executor, background=True)
        assert run.wait(30) is State.FAILED
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert [tr.state for tr in children] == [State.COMPLETED] + [State.FAILED] * 3
    assert "returned a _thread.lock that Dask cannot serialize" in children[1].message
    assert children[2].message.startswith("TaskCrashedError: task 'misbehaves[2]' raised "
                                          "SystemExit: 3 (a BaseException")
    assert children[3].message.startswith("TaskCrashedError: task 'misbehaves[3]' raised "
                                          "KeyboardInterrupt (a BaseException")
    assert executor.result(children[0].handle) == 0
    for i in range(4):
        assert [line.text for line in run.logs(f"misbehaves[{i}]")] == [f"child {i}"]
    stored = labloom.experiments(run=run.id)
    rows = stored.to_dict("records") if hasattr(stored, "to_dict") else stored
    assert sorted((row["map_index"], row["m"]) for row in rows) == [(i, i) for i in range(4)]


@task(batch_size=4)
def held_in_its_chunk(i: int, gate: str) -> int:
    with open(f"{gate}.ran.{i}", "a") as ledger:
        ledger.write("x")
    if i == 1:
        Path(f"{gate}.{i}").touch()
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
    return i


@flow
def two_chunks(gate: str) -> list[int]:
    return held_in_its_chunk.map(range(8), gate=labloom.unmapped(gate))  # type: ignore[return-value]


def test_a_cancel_while_a_chunk_runs_ends_the_run_and_its_retry_runs_only_those_cancelled(
    executor, tmp_path
):
    gate = tmp_path / "gate"
    run = two_chunks.run(gate=str(gate), executor=executor, background=True)
    deadline = time.monotonic() + 30
    while not Path(f"{gate}.1").exists():  # child 1 waits in its chunk
        assert time.monotonic() < deadline, "child 1 to start"
        time.sleep(0.02)
    run.cancel()
    assert run.wait(30) is State.CANCELLED  # while child 1 still waits on its worker
    states = {tr.map_index: tr.state for tr in run.tasks}
    assert states[1] is State.CANCELLED
    assert set(states.values()) <= {State.CANCELLED, State.COMPLETED}, states
    gate.touch()
    rerun = run.retry()
    assert rerun.state is State.COMPLETED and rerun.result() == list(range(8))
    # Those completed before the cancel never ran again (the cancelled chunk's own calls,
    # running on after it, and the retry's, are of the cancelled children alone).
    ran = {i: Path(f"{gate}.ran.{i}").read_text() for i in range(8)}
    assert {i for i, state in states.items() if state is State.COMPLETED} == {
        i for i in range(8) if ran[i] == "x" and states[i] is State.COMPLETED}
    assert all(ran[i] for i in range(8))
