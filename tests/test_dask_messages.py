"""A chunk's task-run starts and ends as columns on the worker, one message each, read back on
the client (``executors/dask_messages.py``), through distributed's own wire format."""

from __future__ import annotations

from typing import Any

from distributed.protocol import dumps, loads

from labloom.executors.dask_messages import Columns, ends_of, starts_of


def _wire(batch: list[list[Any]]) -> Any:
    """What the client receives: the message as the scheduler forwards it."""
    return loads(dumps({"msg": batch}))["msg"]


def _chunk(n: int) -> tuple[Columns, list[list[Any]], list[Any], list[Any]]:
    """As a chunk of ``n`` children leaves them: a start, a log line and an end each."""
    columns, logs, starts, ends = Columns(), [], [], []
    for i in range(n):
        start = (f"r1.{i}", 100.0 + i, 1 + (i == 3), "tcp://w:1 Thread-0", i // 40)
        columns.started(*start)
        logs.append(["l", f"r1.{i}", 20, 100.5 + i, f"child {i}"])
        end = (f"r1.{i}", 1 + (i == 3), 100.0 + i, 100.25 + i, i != 5, i // 40)
        columns.ended(*end)
        starts.append(start)
        ends.append(end)
    return columns, logs, starts, ends


def test_a_chunks_starts_and_ends_travel_as_one_message_each_and_read_back_the_same() -> None:
    columns, logs, starts, ends = _chunk(50)
    packed = _wire(columns.around(logs))
    # Starts first (each before its child's lines), the lines in their order, ends last.
    assert [m[0] for m in packed] == ["S"] + ["l"] * 50 + ["E"]
    assert [m[4] for m in packed[1:-1]] == [f"child {i}" for i in range(50)]
    assert starts_of(packed[0]) == starts
    assert ends_of(packed[-1]) == ends


def test_shared_fields_travel_once_and_differing_ones_each() -> None:
    columns = Columns()
    for i in range(8):
        columns.started(f"t{i}", 1.5, 2, "lane")
        columns.ended(f"t{i}", 2, 1.5, 2.5, None)
    columns.started("u", 3.0, 1, "other lane")
    starts, ends = _wire(columns.around([]))
    assert starts_of(starts)[-1] == ("u", 3.0, 1, "other lane", 0)
    assert {lane for *_, lane, _ in starts_of(starts)} == {"lane", "other lane"}
    assert ends[2] == 2 and {ok for *_, ok, _ in ends_of(ends)} == {None}  # unknown stays so
    assert starts[5] == 0 and ends[6] == 0  # the reruns, one value for all


def test_a_message_of_an_older_worker_reads_its_reruns_as_unknown() -> None:
    """Without the reruns column (a worker of an older labloom) each rerun reads None: the
    engine then checks the attempt alone, as before."""
    columns = Columns()
    columns.started("t", 1.5, 2, "lane")
    columns.ended("t", 2, 1.5, 2.5, True)
    starts, ends = _wire(columns.around([]))
    assert starts_of(starts[:5]) == [("t", 1.5, 2, "lane", None)]
    assert ends_of(ends[:6]) == [("t", 2, 1.5, 2.5, True, None)]


def test_without_starts_or_ends_the_rows_travel_alone() -> None:
    logs = [["l", "r1.1", 20, 1.0, "a line"]]
    assert Columns().around(logs) == logs
