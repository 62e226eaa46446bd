"""The engine's work per child in the Dask event dispatcher's thread, without Dask: a
20,000-child no-op map on an executor that only records its calls, their starts and returns
then reported in chunks of 100 from one thread once all are submitted, as ``Dispatcher._route`` (``started_all``) and
``report_chunk`` (``report_returned``) report them. That thread's CPU per child, and the main
thread's for the map's expansion and launch (medians of ``--rounds`` warm maps per process),
trees side by side, in turn. ``LABLOOM_STORE=0 LABLOOM_PROGRESS=0`` leave the engine alone in
the process; ``NO_GC=1`` keeps the collector (run in whichever thread allocates) out.

    python benchmarks/dispatcher_cpu.py --src /work/main/src src [--pairs 3]
"""

from __future__ import annotations

import os
import queue
import threading
import time

from noop_dask_map import compare_per_child

CHUNK = 100


def measure(tasks: int, rounds: int) -> None:
    from labloom import flow, task
    try:
        from labloom.core import sink_registry
    except ImportError:  # trees before session 35 kept the registry in sinks.py
        from labloom.core import sinks as sink_registry
    from labloom.core.executor import Executor, report_returned

    chunks: queue.SimpleQueue = queue.SimpleQueue()

    class Recording(Executor):
        """Submits nothing: hands each block of calls to the reporting thread."""

        def submit(self, call, args, kwargs, on_done, resources=None):
            raise NotImplementedError

        def submit_all(self, calls, resources, handles):
            for start in range(0, len(calls), CHUNK):
                chunks.put([(call, on_done) for call, _, _, on_done in calls[start:start + CHUNK]])
            handles += [object()] * len(calls)

        def value_ref(self, handle):
            return None

        def result(self, handle, timeout=None):
            return None

        def results(self, handles):
            return [None] * len(handles)

    cpu = [0.0]

    def report() -> None:
        while True:
            # The whole map submitted first: the main thread then only waits, and does not
            # take the run's lock nor the GIL from this one.
            submitted = []
            while sum(map(len, submitted)) < tasks:
                submitted.append(chunks.get())
                if submitted[-1] is None:
                    return
            for chunk in submitted:
                report_chunk(chunk)

    def report_chunk(chunk: list) -> None:
        began = time.thread_time()
        call = chunk[0][0]
        sink = sink_registry.local_sink(call.run_id)
        now = time.time()
        sink_registry.started_all(sink, call.run_id, [(c.task_run_id, now, c.attempt, "lane-1")
                                                      for c, _ in chunk])
        report_returned([(on_done, now, now) for _, on_done in chunk])
        cpu[0] += time.thread_time() - began

    @task
    def noop(x: int) -> int:
        return x

    launch = [0.0]

    @flow
    def wide(n: int) -> None:
        began = time.thread_time()
        futures = noop.map(range(n))  # expanded and launched here: nothing ends meanwhile
        launch[0] = time.thread_time() - began
        futures.result()

    if os.environ.get("NO_GC"):
        import gc
        gc.disable()  # the collector runs in whichever thread allocates: noise here
    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    executor = Recording()
    wide.run(n=tasks, executor=executor).wait(300)  # warm
    for _ in range(rounds):
        cpu[0] = 0.0
        wide.run(n=tasks, executor=executor).wait(300)
        print(f"ROUND {cpu[0] / tasks * 1e6:.3f} {launch[0] / tasks * 1e6:.3f}", flush=True)
    chunks.put(None)


def main() -> None:
    compare_per_child(__doc__, __file__, measure,
                      ("the reports (dispatcher's thread)",
                       "the map's expansion and launch (main thread)"))


if __name__ == "__main__":
    main()
