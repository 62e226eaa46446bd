"""The worker-side thread labloom starts for Dask has an owner that ends it: the log flush
loop ends when its worker closes."""

from __future__ import annotations

import threading
import time

import distributed

from labloom import DaskExecutor, flow, task

OURS = ("labloom-log-flush",)


@task
def shout(x: int) -> int:
    print(f"value {x}")  # worker-side log lines: the flush loop has work
    return x


@flow
def shouting(n: int) -> list[int]:
    return shout.map(range(n))  # type: ignore[return-value]


def ours(before: set[int | None]) -> list[str]:
    """Our threads started since ``before`` (earlier tests' embedded cluster keeps its own
    until the process exits, as it is meant to)."""
    return [t.name for t in threading.enumerate() if t.name in OURS and t.ident not in before]


def test_the_workers_log_flush_thread_ends_with_its_worker() -> None:
    before = {t.ident for t in threading.enumerate()}
    # In-process workers, so the worker-side threads are visible here too.
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        executor = DaskExecutor(client=client)
        run = shouting.run(n=6, executor=executor)
        assert run.result() == list(range(6))
        assert "labloom-log-flush" in ours(before)  # the workers' sink was installed
        executor.shutdown()
    deadline = time.monotonic() + 10
    while ours(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours(before) == []
