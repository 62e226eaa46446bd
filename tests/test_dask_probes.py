"""What an unmeasured map's probes decide (``dask_chunking.Probes``): once enough ended, not
from the first to end: their median whether to chunk, the fastest how much. Through the submitting thread's own
decisions (``Submitter._chunks``), with durations given: no cluster, nothing sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from labloom import DaskExecutor, State, flow, task
from labloom.core.attempt import TaskCall
from labloom.core.executor import Outcome
from labloom.executors.dask_chunking import MAX_CHUNK, chunk_size
from labloom.executors.dask_submit import Handle, Submitter


class _Durations:
    """The dispatcher's part: the mean of the durations ended so far (as ``Dispatcher.ended``
    counts a single's before its outcome goes on)."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def mean_duration(self, name: str) -> float | None:
        return sum(self.seen) / len(self.seen) if self.seen else None


class _Owner:
    client = type("Client", (), {"nthreads": lambda self: {"w1": 1, "w2": 1}})()

    def __init__(self) -> None:
        self.dispatcher = _Durations()


def _noop(x: int) -> int:
    return x


def _map(n: int) -> list[Any]:
    return [(TaskCall(_noop, f"noop[{i}]", "r1", f"r1.{i}", batch_size="auto"), (i,), {},
             Handle("noop"), lambda outcome: None) for i in range(n)]


def _probes_out(n: int) -> tuple[Submitter, _Durations, list[Any], list[Any]]:
    """A map of ``n`` launched unmeasured on two worker threads: its probes (sent alone, their
    ends wrapped) and the children held back."""
    owner = _Owner()
    submitter = Submitter(executor=owner)
    chunks, alone, rest, held = submitter._chunks(_map(n))
    assert (len(chunks), len(alone), len(rest), len(held)) == (0, 4, 0, n - 4)
    return submitter, owner.dispatcher, alone, held


def _end(probe: Any, durations: _Durations, seconds: float) -> None:
    durations.seen.append(seconds)
    probe[4](Outcome(ok=True, started=100.0, ended=100.0 + seconds))


def _sizes(submitter: Submitter, held: list[Any]) -> tuple[int | None, int]:
    """The largest Dask task made of the held children (None: none), and how many are still
    held."""
    chunks, alone, _, still = submitter._chunks(held)
    largest = max((len(chunk) for chunk in chunks.values()), default=1 if alone else None)
    return largest, len(still)


def test_the_fastest_probe_decides_once_a_threads_second_call_ended() -> None:
    # A fresh process: each worker's first call (75-90 µs for a no-op) ends before either's
    # second (35 µs). Deciding from the first to end made chunks of 588; a warm map's are 1,000.
    submitter, durations, probes, held = _probes_out(3000)
    _end(probes[0], durations, 85e-6)
    assert _sizes(submitter, held) == (None, 2996)  # one cold call: not yet
    _end(probes[1], durations, 80e-6)
    assert _sizes(submitter, held) == (None, 2996)
    _end(probes[2], durations, 35e-6)  # a thread's second call: half the probes and one more
    assert _sizes(submitter, held) == (MAX_CHUNK, 0)
    assert chunk_size(durations.mean_duration("noop") or 0.0) < MAX_CHUNK  # the mean said less
    _end(probes[3], durations, 20e-6)  # decided once for the map: its children agree
    assert _sizes(submitter, _map(3000)[4:])[0] == MAX_CHUNK


def test_a_probe_paused_by_the_machine_does_not_decide_for_a_map_of_no_ops() -> None:
    # The first probe to end took 13 ms (the process was not running): from the mean of the
    # ends so far, 4,996 no-ops went one per Dask task.
    submitter, durations, probes, held = _probes_out(5000)
    _end(probes[0], durations, 0.013)
    assert _sizes(submitter, held) == (None, 4996)
    _end(probes[1], durations, 80e-6)
    assert _sizes(submitter, held) == (None, 4996)
    _end(probes[2], durations, 40e-6)
    assert _sizes(submitter, held) == (MAX_CHUNK, 0)


def test_slow_probes_keep_the_map_one_child_per_dask_task_as_two_ended() -> None:
    # A sweep: a child failing fast (1 ms) ends first, then a 0.4 s experiment. From the mean
    # of the ends so far the map was packed 50 per Dask task at the first end.
    submitter, durations, probes, held = _probes_out(350)
    _end(probes[0], durations, 0.001)
    assert _sizes(submitter, held) == (None, 346)
    _end(probes[1], durations, 0.4)  # two ended: their median says one per Dask task
    assert _sizes(submitter, held) == (1, 0)
    _end(probes[2], durations, 0.0005)
    assert _sizes(submitter, _map(350)[4:])[0] == 1


def test_the_launching_thread_takes_the_probes_decision_not_the_mean() -> None:
    # Children launched after the first probes ended: sized as the held ones, not from the
    # mean of the probes (their first calls).
    submitter, durations, probes, _ = _probes_out(10)
    call = _map(1)[0][0]
    _end(probes[0], durations, 90e-6)
    assert submitter.known_size(call, "noop") is None
    for probe in probes[1:3]:
        _end(probe, durations, 30e-6)
    assert submitter.known_size(call, "noop") == MAX_CHUNK
    submitter.forget("r1")  # the run ended: a later run decides from the mean
    assert submitter.known_size(call, "noop") == chunk_size(50e-6)


def test_a_failed_probes_duration_does_not_decide() -> None:
    # A sweep whose first configurations fail at once (invalid ones): their 1 ms says nothing
    # of the 0.4 s experiments; counted, they packed the sweep 50 children per Dask task.
    submitter, _, probes, held = _probes_out(350)
    for probe in probes[:2]:
        probe[4](Outcome(ok=False, started=100.0, ended=100.001))
    assert _sizes(submitter, held) == (None, 346)
    probes[2][4](Outcome(ok=True, started=100.0, ended=100.4))
    assert _sizes(submitter, held) == (1, 0)


# --- with a real cluster: what a broken scheduler or send leaves -------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


@task
def inc(i: int) -> int:
    return i + 1


@flow
def incs(n: int) -> None:
    inc.map(range(n))


@task
def add_one(i: int) -> int:  # a task of its own: not measured by the test before
    return i + 1


@flow
def add_ones(n: int) -> None:
    add_one.map(range(n))


def test_a_scheduler_that_cannot_say_its_threads_is_asked_once_and_the_map_runs(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Asked per child, a map of 5,000 held the launching thread for hours behind a connect
    # timeout each (helper a's review, session 34); now the fewest probes go out.
    import distributed

    asked: list[int] = []

    def refused(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(1)
        raise OSError("Timed out trying to connect to the scheduler (simulated)")

    monkeypatch.setattr(distributed.Client, "nthreads", refused)
    run = incs.run(n=200, executor=DaskExecutor(client=client))
    assert run.state is State.COMPLETED, run.message
    assert len(asked) == 1


def test_a_send_that_breaks_after_its_probes_went_out_strands_no_child(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The probes were failed through their plain ends, so their map never counted them as
    # ended, and the children held back for them waited forever (the run stayed Running).
    from labloom.executors import dask_submit

    real, broken = dask_submit.watch, []

    def once(client: Any, watched: Any) -> Any:
        if not broken:
            broken.append(1)
            raise RuntimeError("watch failed (simulated)")
        return real(client, watched)

    monkeypatch.setattr(dask_submit, "watch", once)
    run = add_ones.run(n=100, executor=DaskExecutor(client=client), background=True)
    run.wait(timeout=60)
    assert run.state is State.FAILED, "the run never ended: children stranded"
    states = Counter(tr.state for tr in run.tasks)
    assert states[State.FAILED] <= 10, states  # the probes the broken send took
    assert broken and states[State.COMPLETED] >= 90 and sum(states.values()) == 100
    assert set(states) <= {State.COMPLETED, State.FAILED}
