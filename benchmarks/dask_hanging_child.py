"""A chunk with one child that runs long: when do its siblings end?

One map of ``--children`` no-op children in one chunk (``batch_size`` = the map's width),
``timeout=--timeout``; child ``--slow-index`` sleeps ``--sleep`` seconds (inside its timeout,
so it completes). Prints, from the run's start, when the last sibling ended and when the slow
child did. Unchunked, the siblings end at once; a chunk ran them in turn, so before session 40
those after the slow child waited for it (``dask_chunk_ends``: they are given back after
``GIVE_BACK_AFTER``). Each ``--src`` tree runs in a fresh process of its own, in turn.

    python benchmarks/dask_hanging_child.py --src /work/main/src --src /work/wt-c/src
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.src[0])
    os.environ["LABLOOM_HOME"] = tempfile.mkdtemp(prefix="labloom-bench-")
    from distributed import Client, LocalCluster

    import labloom
    from labloom import DaskExecutor, State, flow, task

    slow_index, sleep = args.slow_index, args.sleep

    @task(batch_size=args.children, timeout=args.timeout)
    def maybe_slow(i: int) -> int:
        if i == slow_index:
            time.sleep(sleep)
        return i

    @flow
    def one_chunk(n: int) -> list[int]:
        return maybe_slow.map(range(n))  # type: ignore[return-value]

    with LocalCluster(n_workers=2, threads_per_worker=2, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        executor = DaskExecutor(client=client)
        start = time.perf_counter()
        run = one_chunk.run(n=args.children, executor=executor, background=True)
        siblings_done = None
        while run.state is State.RUNNING:
            states = {tr.map_index: tr.state for tr in run.tasks}
            if siblings_done is None and len(states) == args.children and all(
                    s is State.COMPLETED for i, s in states.items() if i != slow_index):
                siblings_done = time.perf_counter() - start
            time.sleep(0.01)
        ended = time.perf_counter() - start
        assert run.state is State.COMPLETED, run.state
        if siblings_done is None:
            siblings_done = ended
        print(f"labloom from {os.path.dirname(os.path.dirname(labloom.__file__))}: "
              f"{args.children} children in one chunk, child {slow_index} sleeping {sleep:g}s "
              f"(timeout={args.timeout:g}): every sibling ended at {siblings_done:.2f}s, "
              f"the run at {ended:.2f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", action="append", default=None)
    parser.add_argument("--children", type=int, default=50)
    parser.add_argument("--slow-index", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    srcs = args.src or [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")]
    for _ in range(args.rounds):
        for src in srcs:
            subprocess.run([sys.executable, __file__, "--child", "--src", os.path.abspath(src),
                            "--children", str(args.children), "--slow-index",
                            str(args.slow_index), "--sleep", str(args.sleep), "--timeout",
                            str(args.timeout)], check=True)


if __name__ == "__main__":
    main()
