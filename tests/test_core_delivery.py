"""Event delivery per subscriber: each has its own queue and pace, and the engine's threads
have owners that stop them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import labloom
from cli_helpers import wait_for
from labloom import flow, task
from labloom.core import events as ev


@task
def step(x: int) -> int:
    return x


@flow(executor="threads")
def small(n: int) -> list[int]:
    return step.map(range(n))  # type: ignore[return-value]


def gated_flow(gate: threading.Event) -> labloom.Flow:
    """A flow whose task runs wait for ``gate``: still going when a subscriber arrives."""

    @task
    def held(x: int) -> int:
        gate.wait(120)  # opened by the test (120 s only if it fails first)
        return x

    @flow(executor="threads")
    def gated(n: int) -> list[int]:
        return held.map(range(n))  # type: ignore[return-value]

    return gated


def test_a_slow_subscriber_never_delays_another_run() -> None:
    first_gate, second_gate, release = threading.Event(), threading.Event(), threading.Event()
    slow_run = gated_flow(first_gate).run(n=3, background=True)
    slow_calls: list[float] = []

    def slow(batch: Sequence[ev.Event]) -> None:
        slow_calls.append(time.time())
        release.wait(30)  # blocked until the other run has ended, however long it takes

    slow_run.subscribe(slow, replay=False)
    first_gate.set()
    wait_for(lambda: slow_calls, 20, "the slow subscriber's first call")  # asleep from here on
    fast_got: list[ev.Event] = []
    second = gated_flow(second_gate).run(n=20, background=True)
    second.subscribe(fast_got.extend, replay=False)
    second_gate.set()
    second.wait()
    # The whole second run, its end included, reaches its subscriber while the slow one is
    # still blocked (up to 30 s). Not a clock bound on each delivery (it was < 0.1 s, which a
    # loaded machine's thread switches can cross): a delivery held behind the slow subscriber
    # would come only after the release.
    try:
        wait_for(lambda: any(isinstance(e, ev.RunFinished) for e in fast_got), 20,
                 "the second run's end, delivered while the slow subscriber blocks")
    finally:
        release.set()
    slow_run.wait()
    assert len(fast_got) > 20


def test_a_slow_subscriber_never_delays_another_subscriber_of_the_same_run() -> None:
    bus = ev.EventBus(history=False)
    gate = threading.Event()
    fast_got: list[ev.Event] = []
    bus.subscribe(lambda batch: gate.wait(30))
    bus.subscribe(fast_got.extend)
    event = ev.RunStateChanged("r", labloom.State.RUNNING, time.time())
    bus.emit(event)
    try:
        # delivered while the other subscriber is still blocked (up to 30 s)
        wait_for(lambda: fast_got, 20, "the event at the fast subscriber")
    finally:
        gate.set()
    assert fast_got == [event]
    bus.close()


def test_a_late_subscriber_gets_the_run_so_far_once() -> None:
    run = small.run(n=4)
    got: list[ev.Event] = []
    unsubscribe = run.subscribe(got.extend, replay=True)
    unsubscribe()
    kinds = [type(e).__name__ for e in got]
    assert kinds[0] == "RunCreated" and kinds[-1] == "RunFinished"
    assert kinds.count("TaskRunCreated") == 4 and kinds.count("NodeCreated") == 1
    # Where each task run stands, not every state it went through; and when (and where) it
    # started running, which a timeline draws.
    states = [e for e in got if isinstance(e, ev.StateChanged)]
    assert [e.state.value for e in states].count("Completed") == 4
    assert [e.state.value for e in states].count("Running") == 4 and len(states) == 8
    assert all(e.worker for e in states if e.state.value == "Running")


def test_a_subscriber_arriving_as_the_run_ends_still_sees_it_end() -> None:
    # The end is emitted before the run is marked finished; a widget shown in that window
    # (a --background cell whose only task failed at once) once stayed "Running" forever.
    ending, proceed = threading.Event(), threading.Event()

    class SlowToEnd(labloom.ThreadExecutor):
        def run_ended(self, run_id: str) -> None:
            ending.set()
            proceed.wait(30)
            super().run_ended(run_id)

    run = small.run(n=2, executor=SlowToEnd(), background=True)
    try:
        assert ending.wait(30)
        got: list[ev.Event] = []
        run.subscribe(got.extend, replay=True)
    finally:
        proceed.set()
    run.wait(30)
    finished = [e for e in got if isinstance(e, ev.RunFinished)]
    assert len(finished) == 1 and finished[0].state is labloom.State.COMPLETED


def test_run_threads_end_with_the_run() -> None:
    before = {t.ident for t in threading.enumerate()}
    run = small.run(n=5)
    run.subscribe(lambda batch: None, replay=True)
    deadline = time.monotonic() + 60  # a guard
    while time.monotonic() < deadline:
        left = [t for t in threading.enumerate()
                if t.ident not in before and t.name.startswith(f"labloom-events-{run.id}")]
        if not left:
            break
        time.sleep(0.05)
    assert not left, left


def test_a_block_of_events_is_made_as_it_is_delivered_in_bounded_batches() -> None:
    # A map of a million children is announced as one EventBlock: each subscriber gets its
    # events in order with the others, at most MAX_BATCH at a time, made only when taken.
    made: list[int] = []

    def make(i: int) -> ev.Event:
        made.append(i)
        return ev.RunStateChanged(f"r{i}", labloom.State.PENDING, float(i))

    bus = ev.EventBus(history=False)
    batches: list[list[ev.Event]] = []
    bus.subscribe(batches.append, now=False)
    bus.close()  # no delivery thread: the queue is drained below, in this thread
    width = 2 * ev.MAX_BATCH + 5
    bus.emit(ev.RunStateChanged("first", labloom.State.RUNNING, 0.0))
    bus.emit(ev.EventBlock(make, width))
    bus.emit(ev.RunStateChanged("last", labloom.State.COMPLETED, 1.0))
    assert made == [] and bus.backlog() == 0  # nothing made yet; a closed bus paces nobody
    bus.flush()
    assert all(len(batch) <= ev.MAX_BATCH for batch in batches) and len(batches) == 3
    delivered = [e.run_id for batch in batches for e in batch]  # type: ignore[union-attr]
    assert delivered == ["first", *(f"r{i}" for i in range(width)), "last"]
    assert made == list(range(width))


class _NewsFirst:
    """A subscriber that takes task runs' news before the rest of a block (as the store's
    recorder does), with room for ``room`` events at a time."""

    news_first = True

    def __init__(self, room: int) -> None:
        self.batches: list[list[ev.Event]] = []
        self._room = room

    def __call__(self, batch: list[ev.Event]) -> None:
        self.batches.append(batch)

    def room(self) -> int:
        return self._room


def test_news_of_announced_task_runs_pass_the_rest_of_their_block() -> None:
    # A map's 100,000 announcements once went to the store before any of its states, which
    # kept every view of the store seconds behind the run (issue 20). A news-first subscriber
    # gets each state once its task run is announced, a slice of the block at a time; what
    # concerns a later child, and what is not a task run's news, keeps its place.
    width = 4 * ev.BLOCK_SLICE
    made: list[int] = []

    def make(i: int) -> ev.Event:
        made.append(i)
        return ev.TaskRunCreated("r", f"r.{10 + i}", "n", "one", i, (), 0.0)

    def changed(i: int, state: labloom.State) -> ev.StateChanged:
        return ev.StateChanged("r", f"r.{10 + i}", state, 1.0)

    bus = ev.EventBus(history=False)
    plain: list[list[ev.Event]] = []
    first = _NewsFirst(room=2 * ev.BLOCK_SLICE)
    bus.subscribe(plain.append, now=False)
    bus.subscribe(first, now=False)
    bus.close()  # no delivery threads: the queues are drained below, in this thread
    bus.emit(ev.EventBlock(make, width, ev.numbered("r.", 10, width)))
    news = [changed(0, labloom.State.RUNNING), changed(0, labloom.State.COMPLETED),
            ev.LogRecord("r", None, 20, 1.0, "the flow body's line"),
            changed(width - 1, labloom.State.RUNNING),  # its announcement comes last
            changed(1, labloom.State.RUNNING)]  # behind it: waits too
    for event in news:
        bus.emit(event)
    bus.emit(ev.RunFinished("r", labloom.State.COMPLETED, 2.0))
    bus.flush()

    order = [e for batch in first.batches for e in batch]
    # Each announcement made once for both subscribers (``EventBlock.events``), both get all.
    assert len(order) == width + len(news) + 1 and sorted(made) == list(range(width))
    assert [e for batch in plain for e in batch] == [*(make(i) for i in range(width)), *news,
                                                     ev.RunFinished("r", labloom.State.COMPLETED,
                                                                    2.0)]
    assert all(len(batch) <= first.room() for batch in first.batches)
    at = {id(e): i for i, e in enumerate(order)}
    announced = {e.task_run_id: i for i, e in enumerate(order)  # type: ignore[union-attr]
                 if isinstance(e, ev.TaskRunCreated)}
    # The first child's states and the flow's line come in the first batch, long before the
    # block's last slice; each state after its own announcement, the news in their order.
    assert order[:len(first.batches[0])][-3:] == news[:3]
    assert at[id(news[0])] < announced[f"r.{10 + width - 1}"]
    for event in news:
        if isinstance(event, ev.StateChanged):
            assert announced[event.task_run_id] < at[id(event)]
    assert [at[id(e)] for e in news] == sorted(at[id(e)] for e in news)
    assert isinstance(order[-1], ev.RunFinished)  # never before the end of the block
    # A subscriber that did not ask keeps the order they were emitted in.
    assert [e for batch in plain for e in batch][width:] == [*news, order[-1]]


def test_a_batch_of_logging_calls_passes_a_block_once_all_its_task_runs_are_announced() -> None:
    """One event carries a batch of reports' logging calls (``ExperimentCalls``, issue 19): as
    news it passes the rest of a map's announcements only when each of its task runs is
    announced, as a state does."""
    width = 4 * ev.BLOCK_SLICE

    def make(i: int) -> ev.Event:
        return ev.TaskRunCreated("r", f"r.{i}", "n", "one", i, (), 0.0)

    def calls(*children: int) -> ev.ExperimentCalls:
        return ev.ExperimentCalls("r", [f"r.{i}" for i in children], ["metric"] * len(children),
                                  [{"auc": i} for i in children], [None] * len(children),
                                  [1.0] * len(children))

    bus = ev.EventBus(history=False)
    first = _NewsFirst(room=2 * ev.BLOCK_SLICE)
    bus.subscribe(first, now=False)
    bus.close()
    bus.emit(ev.EventBlock(make, width, ev.numbered("r.", 0, width)))
    early, late = calls(0, 1), calls(2, width - 1)
    bus.emit(early)
    bus.emit(late)
    bus.flush()
    order = [e for batch in first.batches for e in batch]
    at = {id(e): i for i, e in enumerate(order)}
    assert at[id(early)] < ev.BLOCK_SLICE + 2  # with the first slice
    last = max(i for i, e in enumerate(order) if isinstance(e, ev.TaskRunCreated))
    assert at[id(late)] > last
    assert [(v.task_run_id, v.values) for v in early.each()] == [("r.0", {"auc": 0}),
                                                                  ("r.1", {"auc": 1})]


def test_a_batch_of_logging_calls_waits_for_its_highest_task_run_in_any_order() -> None:
    """The check looks at the batch's highest task run number once (``_announced_after``), not
    at each call: the highest by number ("r.2500" over "r.9", which sorts after it as text),
    wherever it is in the batch; an id outside the block makes it look at each call."""
    width = 4 * ev.BLOCK_SLICE
    late_child = ev.BLOCK_SLICE + 500  # not in the first slice

    def make(i: int) -> ev.Event:
        return ev.TaskRunCreated("r", f"r.{i}", "n", "one", i, (), 0.0)

    def calls(*ids: str) -> ev.ExperimentCalls:
        return ev.ExperimentCalls("r", list(ids), ["metric"] * len(ids), [{}] * len(ids),
                                  [None] * len(ids), [1.0] * len(ids))

    looked: list[str] = []  # what the delivery asked the block about
    numbered = ev.numbered("r.", 0, width)

    def index_of(task_run_id: str) -> int | None:
        looked.append(task_run_id)
        return numbered(task_run_id)

    bus = ev.EventBus(history=False)
    first = _NewsFirst(room=2 * ev.BLOCK_SLICE)
    bus.subscribe(first, now=False)
    bus.close()
    bus.emit(ev.EventBlock(make, width, index_of))
    early = calls("r.9", "r.10", "r.3")
    by_text = calls("r.9", f"r.{late_child}", "r.1")
    outside = calls(f"r.{10 * width}", "r.2", f"r.{late_child}")
    for event in (early, by_text, outside):
        bus.emit(event)
    bus.flush()
    assert "r.10" in looked and "r.3" not in looked  # the batch's highest only
    order = [e for batch in first.batches for e in batch]
    at = {id(e): i for i, e in enumerate(order)}
    announced = {e.task_run_id: i for i, e in enumerate(order) if isinstance(e, ev.TaskRunCreated)}
    assert at[id(early)] < ev.BLOCK_SLICE + 3  # with the first slice
    assert at[id(by_text)] > announced[f"r.{late_child}"]
    assert at[id(outside)] > announced[f"r.{late_child}"]


def test_a_subscriber_may_set_its_own_delivery_interval() -> None:
    # The store's recorder asks for 10 ms (its writer writes along with the run, and a run's
    # end waits for what is left); others keep the bus's 50 ms.
    from labloom.store.recorder import Recorder

    assert Recorder.flush_interval < ev.FLUSH_INTERVAL

    class Patient:
        flush_interval = 3600.0  # its thread never delivers within this test: only the end

        def __init__(self) -> None:
            self.batches: list[list[ev.Event]] = []

        def __call__(self, batch: Sequence[ev.Event]) -> None:
            self.batches.append(list(batch))

    go, gate = threading.Event(), threading.Event()

    @task
    def held(x: int) -> int:
        go.wait(60)  # its start may be reported before the subscribers come: news comes after
        print("going")
        gate.wait(60)
        return x

    @flow(executor="threads")
    def gated(n: int) -> list[int]:
        return held.map(range(n))  # type: ignore[return-value]

    run = gated.run(n=3, background=True)
    patient, eager = Patient(), Patient()
    eager.flush_interval = 0.001
    try:
        run.subscribe(patient, replay=False)
        run.subscribe(eager, replay=False)
        go.set()  # its task runs log a line and wait for the gate: the run goes on meanwhile
        wait_for(lambda: any(isinstance(e, ev.LogRecord) for b in eager.batches for e in b),
                 20, "the eager subscriber's deliveries while the run goes")
        assert patient.batches == []
    finally:
        go.set()
        gate.set()
        run.wait(30)
    # The run's end delivers what waited, at once.
    assert any(isinstance(e, ev.RunFinished) for b in patient.batches for e in b)
