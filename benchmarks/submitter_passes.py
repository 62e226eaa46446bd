"""The Dask submitter's own work per child of a decided map, without Dask: 20,000 map children
arriving in blocks of 256 (the launcher's), the next one each time ``_gather_members`` waits
for more, and passes of the submitter's thread as ``_loop`` makes them (``_gather_members``,
then ``_chunks`` as ``_send`` calls it, the unfilled rest put back), chunks of 1,000. That
thread's CPU per child for gathering and for chunking (medians of ``--rounds`` per process),
trees side by side, in turn.

    python benchmarks/submitter_passes.py --src /work/main/src src [--pairs 3]
"""

from __future__ import annotations

import time

from noop_dask_map import compare_per_child

BLOCK = 256
SIZE = 1000


def measure(tasks: int, rounds: int) -> None:
    from labloom.core.attempt import TaskCall
    from labloom.executors import dask_submit
    from labloom.executors.dask_submit import Handle, Submitter

    class Owner:
        client = None
        dispatcher = None

    def noop(x: int) -> int:
        return x

    def handle() -> Handle:
        try:
            return Handle("noop")  # a tree whose handles carry their task's name
        except TypeError:
            return Handle()  # type: ignore[call-arg]  # one where the submitter reads the call's

    def one_round(tag: int) -> tuple[float, float]:
        submitter = Submitter(Owner())
        members = [(TaskCall(noop, f"noop[{i}]", f"run-{tag}", f"tr-{tag}-{i}", batch_size=SIZE),
                    (i,), {}, handle(), print) for i in range(tasks)]
        blocks = [members[start:start + BLOCK] for start in range(0, tasks, BLOCK)]
        blocks.reverse()

        class Arriving:
            """In place of ``time`` in the submitter: its wait lets the next block arrive."""

            @staticmethod
            def sleep(_: float) -> None:
                if blocks:
                    submitter._members += blocks.pop()

        dask_submit.time = Arriving
        gathering = chunking = 0.0
        while blocks or submitter._members:
            if not submitter._members:
                submitter._members += blocks.pop()
            began = time.thread_time()
            growing = submitter._gather_members()
            mid = time.thread_time()
            taken, submitter._members = submitter._members, []
            _, _, rest, held = submitter._chunks(taken, full_only=growing)
            submitter._members[:0] = rest + held
            chunking += time.thread_time() - mid
            gathering += mid - began
        assert not submitter._members
        return gathering, chunking

    one_round(-1)  # warm
    for tag in range(rounds):
        gathering, chunking = one_round(tag)
        print(f"ROUND {gathering / tasks * 1e6:.3f} {chunking / tasks * 1e6:.3f}", flush=True)


def main() -> None:
    compare_per_child(__doc__, __file__, measure,
                      ("gathering", "chunking"))


if __name__ == "__main__":
    main()
