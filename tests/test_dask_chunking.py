"""How many map children share a Dask task by default, decided from given durations."""

from __future__ import annotations

from labloom.executors.dask_chunking import (
    CHUNK_SECONDS,
    MAX_CHUNK,
    MIN_CHUNK,
    MIN_PROBES,
    chunk_size,
    probe_count,
)


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
