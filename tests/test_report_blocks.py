"""A Dask chunk's ends reach the run as one report, and its events the subscribers as one
block (``executor.report_returned``, ``Launcher.returned``, ``EventBus.holding``), while each
child keeps its own states, in order, its logs, retries, cache and cancel."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import labloom
from dask_chunks import keys_of, measured_as_tiny
from holds import held_until
from labloom import State, flow, task
from labloom.core import events as ev
from labloom.core.executor import Outcome, report_returned


def _changed(i: int, state: State = State.RUNNING) -> ev.StateChanged:
    return ev.StateChanged("r", f"r.{i}", state, float(i))


def _bus() -> tuple[ev.EventBus, list[ev.Event]]:
    """A bus with one subscriber whose queue is delivered only by ``flush`` (no thread)."""
    bus = ev.EventBus(history=False)
    got: list[ev.Event] = []
    bus.subscribe(got.extend, now=False)
    bus.close()
    return bus, got


def test_returned_calls_reach_each_run_as_one_report_and_other_callbacks_alone() -> None:
    class Launcher:  # what report_returned needs of launching.Launcher: returned(items)
        def __init__(self) -> None:
            self.reports: list[list[Any]] = []

        def returned(self, items: list[Any]) -> None:
            self.reports.append(items)

    class Done:  # as call_reports.Done: it names its launcher, task run, attempt and rerun
        def __init__(self, launcher: Launcher, tr: str) -> None:
            self.launcher, self.tr, self.attempt, self.rerun = launcher, tr, 1, 0

    one, two = Launcher(), Launcher()
    alone: list[Outcome] = []
    report_returned([(Done(one, "a"), 1.0, 2.0), (Done(two, "b"), 3.0, 4.0),  # type: ignore
                     (alone.append, 5.0, 6.0), (Done(one, "c"), 7.0, 8.0)])
    assert one.reports == [[("a", 1, 0, 1.0, 2.0), ("c", 1, 0, 7.0, 8.0)]]
    assert two.reports == [[("b", 1, 0, 3.0, 4.0)]]
    assert [(o.ok, o.started, o.ended) for o in alone] == [(True, 5.0, 6.0)]


def test_holding_hands_a_batchs_events_on_at_once_and_in_order() -> None:
    bus, got = _bus()
    bus.emit(_changed(0))
    with bus.holding():
        for i in (1, 2, 3):
            bus.emit(_changed(i))
        bus.flush()
        assert got == [_changed(0)]  # held: not in the subscriber's queue yet
    bus.flush()
    assert got == [_changed(i) for i in range(4)]


def test_holding_nested_hands_them_on_when_the_outermost_ends() -> None:
    bus, got = _bus()
    with bus.holding():
        bus.emit(_changed(0))
        with bus.holding():
            bus.emit(_changed(1))
        bus.flush()
        assert got == []  # the inner hold's end hands nothing on
        bus.emit(_changed(2))
    bus.flush()
    assert got == [_changed(0), _changed(1), _changed(2)]


def test_holding_is_released_on_an_error_and_other_threads_are_not_held() -> None:
    bus, got = _bus()
    with pytest.raises(RuntimeError, match="boom"), bus.holding():
        bus.emit(_changed(0))
        other = threading.Thread(target=bus.emit, args=(_changed(1),))
        other.start()
        other.join()
        bus.flush()
        assert got == [_changed(1)]  # another thread's event went on at once
        raise RuntimeError("boom")
    bus.flush()
    assert got == [_changed(1), _changed(0)]  # the held one was handed on all the same
    bus.emit(_changed(2))  # no hold left behind: delivered as usual
    bus.flush()
    assert got[-1] == _changed(2)


def test_a_block_held_among_events_reaches_subscribers_as_emitted_one_by_one() -> None:
    """A held list with an ``EventBlock`` in it (a map expanded inside a batch of reports) is
    handed on event by event (``Holder.let_go``), as if nothing were held; the next hold of
    the same thread, with no block, goes on at once again."""
    def emit_all(bus: ev.EventBus) -> None:
        bus.emit(_changed(0))
        bus.emit(ev.EventBlock(lambda i: _changed(10 + i), 3))
        bus.emit(_changed(1))

    alone, expected = _bus()
    emit_all(alone)
    alone.flush()
    bus, got = _bus()
    with bus.holding():
        emit_all(bus)
    bus.flush()
    assert got == expected == [_changed(0), *(_changed(10 + i) for i in range(3)), _changed(1)]
    with bus.holding():
        bus.emit(_changed(2))
    assert not bus._holding.blocks  # said for the hold that held a block, and reset
    bus.flush()
    assert got[-1] == _changed(2)


def test_an_inbox_batch_whose_send_raises_still_hands_its_events_on() -> None:
    """``Inbox.drain`` holds a batch's events without a context manager: a ``send_after``
    that raises must not leave the thread holding (its later events would never go out)."""
    from labloom.core.inbox import Inbox

    bus, got = _bus()
    lock = threading.RLock()
    inbox = Inbox(lock, threading.Condition(lock), lambda: None, bus.holder)
    pending = [1]

    def send() -> None:
        raise RuntimeError("send failed")

    inbox.send_after(pending, send)
    with pytest.raises(RuntimeError, match="send failed"):
        inbox.put(bus.emit, _changed(0))
    bus.flush()
    assert got == [_changed(0)]
    assert bus._holding.events is None
    bus.emit(_changed(1))  # not held: goes on at once
    bus.flush()
    assert got == [_changed(0), _changed(1)]


def test_a_blocks_starts_and_returns_change_each_child_as_one_by_one(tmp_path, monkeypatch) -> None:
    """``TaskGraph.set_states`` (a chunk's starts, ``started_all``; its returns,
    ``report_returned``) leaves each child as an outcome reported alone does: the same events
    (state, time, attempt, worker, before, node), history, times and the run's end."""
    from labloom.core import sink_registry
    from labloom.core.executor import Executor

    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    submitted: list[Any] = []
    go = threading.Event()

    class Recording(Executor):  # submits nothing: the test reports each call's end
        def submit(self, call, args, kwargs, on_done, resources=None):  # type: ignore[override]
            submitted.append((call, on_done))
            return call.task_run_id

        def value_ref(self, handle: Any) -> Any:
            return None

        def result(self, handle: Any, timeout: float | None = None) -> Any:
            return None

    @task
    def noop(x: int) -> int:
        return x

    @flow
    def wide(n: int) -> None:
        futures = noop.map(range(n))  # every child launched when map returns
        go.set()
        futures.result()

    def report() -> None:
        go.wait(60)  # a guard
        call = submitted[0][0]
        sink = sink_registry.local_sink(call.run_id)
        assert sink is not None
        block, alone = submitted[:4], submitted[4:]
        sink_registry.started_all(sink, call.run_id,
                                  [(c.task_run_id, 10.0 + i, c.attempt, "lane", c.rerun)
                                   for i, (c, _) in enumerate(block)])
        report_returned([(on_done, 10.0 + i, 20.0 + i) for i, (_, on_done) in enumerate(block)])
        for i, (c, on_done) in enumerate(alone, start=len(block)):
            sink.task_started(call.run_id, c.task_run_id, 10.0 + i, c.attempt, "lane")
            on_done(Outcome(ok=True, started=10.0 + i, ended=20.0 + i))

    got: list[ev.Event] = []
    remove = labloom.core.observers.add_run_observer(lambda run: run.subscribe(got.extend))
    reporter = threading.Thread(target=report)
    reporter.start()
    try:
        run = wide.run(n=8, executor=Recording())
        run.wait(60)
    finally:
        remove()
        reporter.join(60)
    assert run.state is State.COMPLETED
    children = sorted((tr for tr in run.tasks if tr.map_index is not None),
                      key=lambda tr: tr.map_index)
    assert len(children) == 8
    for i, tr in enumerate(children):
        changes = [e for e in got if isinstance(e, ev.StateChanged) and e.task_run_id == tr.id]
        assert changes == [
            ev.StateChanged(run.id, tr.id, State.RUNNING, 10.0 + i, "", 1, "", "lane",
                            State.PENDING, tr.node_id),
            ev.StateChanged(run.id, tr.id, State.COMPLETED, 20.0 + i, "", 1, "", "lane",
                            State.RUNNING, tr.node_id)]
        assert (tr.started, tr.ended, tr.state) == (10.0 + i, 20.0 + i, State.COMPLETED)
        assert [(h.state, h.time) for h in tr.history][1:] == [
            (State.RUNNING, 10.0 + i), (State.COMPLETED, 20.0 + i)]


# --- on a real cluster --------------------------------------------------------------------

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       dashboard_address=":0")
    yield cluster
    cluster.close()


@pytest.fixture
def executor(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    return labloom.DaskExecutor(cluster=cluster)


@pytest.fixture
def held(monkeypatch) -> list[list[ev.Event]]:
    """Every block of events a hold handed on (``EventBus._emit_all``), as it was."""
    blocks: list[list[ev.Event]] = []
    emit_all = ev.EventBus._emit_all

    def record(bus: ev.EventBus, events: list[Any]) -> None:
        blocks.append(list(events))
        emit_all(bus, events)
    monkeypatch.setattr(ev.EventBus, "_emit_all", record)
    return blocks


def _per_task_run(events: list[ev.Event]) -> dict[str, list[str]]:
    """Each task run's events in the order a subscriber got them."""
    seen: dict[str, list[str]] = {}
    for event in events:
        if isinstance(event, ev.TaskRunCreated):
            seen.setdefault(event.task_run_id, []).append("created")
        elif isinstance(event, ev.StateChanged):
            seen.setdefault(event.task_run_id, []).append(event.state.value)
    return seen


@task
def shout(x: int) -> int:
    print(f"child {x}")
    return x + 1


@flow
def shouts(n: int) -> list[int]:
    return shout.map(range(n))  # type: ignore[return-value]


def test_a_chunks_ends_reach_the_subscribers_as_one_block_each_child_in_order(
        executor, held) -> None:
    from labloom.dag.model import ViewGraph

    n = 300
    # Measured as tiny by the test: a first run's durations, read slow under load, could send
    # the map one child per Dask task, with no chunk's ends to come as one block.
    measured_as_tiny(executor, "shout")
    got: list[ev.Event] = []
    remove = labloom.core.observers.add_run_observer(lambda run: run.subscribe(got.extend))
    try:
        run = shouts.run(n=n, executor=executor)
        assert run.result() == list(range(1, n + 1))
        run.wait(60)
    finally:
        remove()
    ids = {tr.id for tr in run.tasks}
    # Children's ends came as blocks of several, never one event at a time.
    ends = [[e for e in block if isinstance(e, ev.StateChanged) and e.state is State.COMPLETED
             and e.task_run_id in ids] for block in held]
    assert sum(len(block) for block in ends) == n and max(len(block) for block in ends) > 1
    # Each child: announced, running, completed, once each and in that order.
    assert {tr: states for tr, states in _per_task_run(got).items() if tr in ids} == {
        tr: ["created", "Running", "Completed"] for tr in ids}
    graph = ViewGraph()
    graph.apply(run.events())
    (node,) = [node for node in graph.nodes.values() if node.name == "shout"]
    assert node.total == n and node.counts[State.COMPLETED] == n
    assert [line.text for line in run.logs("shout[123]")] == ["child 123"]


def test_in_a_chunk_retries_and_the_cache_stay_per_child(executor, tmp_path: Path) -> None:
    failed = tmp_path / "failed-once"

    @task(retries=1)
    def flaky(x: int, trouble: bool) -> int:
        if trouble and x == 3 and not failed.exists():
            failed.touch()
            raise ValueError("first attempt of child 3")
        return x

    @flow
    def retried(n: int, trouble: bool) -> list[int]:
        return flaky.map(range(n), trouble=labloom.unmapped(trouble))  # type: ignore

    @task(cache=True)
    def kept(x: int) -> int:
        return x * 2

    @flow
    def cached(n: int) -> list[int]:
        return kept.map(range(n))  # type: ignore[return-value]

    # Measured as tiny by the test, not by a first run whose durations, read slow under load,
    # sent the maps one child per Dask task: then nothing here ran in a chunk.
    measured_as_tiny(executor, "flaky")
    measured_as_tiny(executor, "kept")
    run = retried.run(n=100, trouble=True, executor=executor)
    assert run.result() == list(range(100))
    assert keys_of(executor, run, "flaky")[1]  # chunked
    by_index = {tr.map_index: tr for tr in run.tasks}
    assert {i for i, tr in by_index.items() if tr.attempts != 1} == {3}
    assert [h.state for h in by_index[3].history][-3:] == [State.RETRYING, State.RUNNING,
                                                           State.COMPLETED]
    assert cached.run(n=100, executor=executor).result() == [2 * x for x in range(100)]
    both = cached.run(n=200, executor=executor)  # children 0-99 stored, 100-199 not
    assert both.result() == [2 * x for x in range(200)]
    children = sorted(both.tasks, key=lambda tr: tr.map_index or 0)
    assert {tr.state for tr in children[:100]} == {State.CACHED}
    assert {tr.state for tr in children[100:]} == {State.COMPLETED}
    assert keys_of(executor, both, "kept")[1]  # those not stored, chunked


def test_in_a_chunk_a_timeout_is_one_childs(executor, tmp_path: Path) -> None:
    from labloom.core.errors import TaskTimeoutError

    slept, gate = tmp_path / "slept-once", str(tmp_path / "run-over")

    @task(retries=1, timeout=1, batch_size=10)
    def napping(x: int) -> int:
        if x == 7 and not slept.exists():
            slept.touch()
            # Past its timeout (held until the run is over): only this child's attempt fails.
            held_until(gate, "the run never ended", guard=600)
        return x

    @flow
    def f(n: int) -> list[int]:
        return napping.map(range(n))  # type: ignore[return-value]

    try:
        run = f.run(n=20, executor=executor)
    finally:
        Path(gate).touch()  # the given-up attempt's thread on the worker goes
    assert run.result() == list(range(20))
    by_index = {tr.map_index: tr for tr in run.tasks}
    assert {i for i, tr in by_index.items() if tr.attempts != 1} == {7}
    timed_out = [h.message for h in by_index[7].history if h.state is State.RETRYING]
    assert len(timed_out) == 1 and TaskTimeoutError.__name__ in timed_out[0]
    assert all(tr.state is State.COMPLETED for tr in by_index.values())


@task(batch_size=4)
def gated(i: int, gate: str) -> int:
    # Child 1 of the chunk waits for the test: children 0 and 1 have started, 2 and 3 not.
    deadline = time.monotonic() + 30
    while i == 1 and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return i


@flow
def one_gated_chunk(gate: str) -> list[int]:
    return gated.map(range(4), gate=labloom.unmapped(gate))


def test_a_cancelled_chunks_children_each_end_once(executor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    got: list[ev.Event] = []
    run = one_gated_chunk.run(gate=str(gate), executor=executor, background=True)
    run.subscribe(got.extend, replay=True)
    deadline = time.monotonic() + 20
    while sum(tr.state is State.RUNNING for tr in run.tasks) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    run.cancel()
    gate.touch()  # the chunk returns after the cancel: its ends must not end anyone again
    assert run.wait(60) is State.CANCELLED
    run.wait(60)
    ids = {tr.id for tr in run.tasks}
    finals = {tr: [s for s in states if s != "created" and State(s).is_final]
              for tr, states in _per_task_run(got).items() if tr in ids}
    assert len(finals) == 4 and all(len(states) == 1 for states in finals.values()), finals
    # The chunk reports when all its children end: at the cancel, none had ended.
    assert all(states == ["Cancelled"] for states in finals.values()), finals
    assert all(tr.state.is_final for tr in run.tasks)

