"""How many map children share a Dask task by default, decided from given durations, and when
the submitting thread says a chunk is full (no cluster needed: sizes decided, nothing sent)."""

from __future__ import annotations

from typing import Any

from labloom.core.attempt import TaskCall
from labloom.executors.dask_chunking import (
    CHUNK_SECONDS,
    MAX_CHUNK,
    MIN_CHUNK,
    MIN_PROBES,
    chunk_size,
    probe_count,
)
from labloom.executors.dask_submit import Handle, Submitter


def test_tiny_tasks_fill_a_chunk_of_about_fifty_milliseconds() -> None:
    assert chunk_size(0.001) == 50
    assert chunk_size(0.0001) == 500
    assert chunk_size(1e-6) == MAX_CHUNK  # a no-op: capped
    assert chunk_size(0.0) == MAX_CHUNK


def test_experiments_of_a_tenth_of_a_second_and_more_stay_one_per_dask_task() -> None:
    for seconds in (0.4, 0.1, 0.043, CHUNK_SECONDS / MIN_CHUNK * 1.01):
        assert chunk_size(seconds) == 1
    assert chunk_size(CHUNK_SECONDS / MIN_CHUNK) == MIN_CHUNK  # the smallest chunk made


def test_a_task_not_measured_sends_probes_then_holds_until_one_is_measured() -> None:
    assert [chunk_size(None, sent, 0, probes=4) for sent in range(6)] == [1, 1, 1, 1, None, None]
    assert chunk_size(None, 4, 3, probes=4) is None
    # Every probe ended without a duration (cancelled, a lost worker): stop holding.
    assert chunk_size(None, 4, 4, probes=4) == 1
    assert chunk_size(0.0001, 4, 0, probes=4) == 500  # measured: the probes no longer matter


def test_two_probes_per_worker_thread() -> None:
    assert probe_count(0) == MIN_PROBES  # no workers yet
    assert probe_count(2) == MIN_PROBES
    assert probe_count(8) == 16


def _members(run_id: str, sizes: list[tuple[int, int]]) -> list[Any]:
    """``count`` children of one map (task "noop") per (size, count), their size decided."""
    members: list[Any] = []
    for size, count in sizes:
        for _ in range(count):
            index = len(members)
            call = TaskCall(lambda x: x, f"noop[{index}]", run_id, f"{run_id}.{index}",
                            batch_size=size)
            members.append((call, (index,), {}, Handle(), lambda outcome: None))
    return members


def test_children_given_different_sizes_are_never_said_full_when_no_chunk_is() -> None:
    # Children of one map decided at different moments can get different sizes (the measured
    # mean moved). 300 of size 537 and 346 of size 600 fill no chunk; counted together (646)
    # against the largest size (600) they were said full, no chunk was sent, and the submitting
    # thread spun forever: a 5,000-child map hung with 646 children Pending.
    submitter = Submitter(executor=None)  # type: ignore[arg-type]  # sizes are decided: unused
    submitter._members = _members("r1", [(537, 300), (600, 346)])
    growing = submitter._gather_members()
    chunks, _, rest, _ = submitter._chunks(list(submitter._members), full_only=growing)
    assert chunks or not rest  # whatever it says, this send makes progress
    assert not growing
    assert sorted(len(chunk) for chunk in chunks.values()) == [300, 346]


def test_a_full_chunk_among_unfilled_ones_is_sent_at_once() -> None:
    submitter = Submitter(executor=None)  # type: ignore[arg-type]
    submitter._members = _members("r1", [(100, 250), (600, 10)])
    assert submitter._gather_members()  # two chunks of 100 are full
    chunks, _, rest, _ = submitter._chunks(list(submitter._members), full_only=True)
    assert sorted(len(chunk) for chunk in chunks.values()) == [100, 100]
    assert len(rest) == 60
