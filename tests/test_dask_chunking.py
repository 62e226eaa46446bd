"""How many map children share a Dask task by default, decided from given durations, and when
the submitting thread says a chunk is full (no cluster needed: sizes decided, nothing sent)."""

from __future__ import annotations

from typing import Any

from labloom.core.attempt import TaskCall
from labloom.core.executor import Outcome
from labloom.executors.dask_chunking import (
    CHUNK_SECONDS,
    MAX_CHUNK,
    MIN_CHUNK,
    MIN_PROBES,
    Probes,
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


def test_a_task_not_measured_sends_probes_then_holds_until_they_decide() -> None:
    probes = Probes(4)
    sizes = []
    for _ in range(6):
        sizes.append(probes.next_size())
        probes.sent += sizes[-1] == 1
    assert sizes == [1, 1, 1, 1, None, None]
    assert [probes.end(0.0, 0.0) for _ in range(3)] == [False] * 3
    assert probes.next_size() is None
    # Every probe ended without a duration (cancelled, a lost worker): stop holding.
    assert probes.end(0.0, 0.0)
    assert probes.next_size() == 1


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
            members.append((call, (index,), {}, Handle("noop"), lambda outcome: None))
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


def test_chunks_group_children_by_run_and_task_name_and_probe_an_unmeasured_task() -> None:
    # Each child's task name is read once per pass (``_chunks``): two maps of size 3 in each of
    # two runs, their children interleaved, and a map of a task never measured ("auto").
    class Owner:
        client = type("Client", (), {"nthreads": lambda self: {"w1": 1}})()
        dispatcher = type("Dispatcher", (), {"mean_duration": lambda self, name: None})()

    def child(run_id: str, name: str, index: int, size: int | str) -> Any:
        call = TaskCall(_double, f"{name}[{index}]", run_id, f"{run_id}.{name}.{index}",
                        batch_size=size)
        return (call, (index,), {}, Handle(name), lambda outcome: None)

    members = [child(run, name, index, 3) for index in range(4)
               for run in ("r1", "r2") for name in ("fit", "score")]
    members += [child("r1", "probe", index, "auto") for index in range(MIN_PROBES + 2)]
    submitter = Submitter(executor=Owner())  # type: ignore[arg-type]
    launched = list(members)  # ``_chunks`` puts each probe's wrapped end in its place
    chunks, alone, rest, held = submitter._chunks(members, full_only=True)
    assert sorted(chunks) == sorted(f"{name}-chunk-{run}.{name}.0-1" for run in ("r1", "r2")
                                    for name in ("fit", "score"))
    for key, chunk in chunks.items():
        assert [call.task_name for call, *_ in chunk] == [f"{key.split('-')[0]}[{i}]"
                                                          for i in range(3)]
        assert {call.run_id for call, *_ in chunk} == {key.split("-chunk-")[1].split(".")[0]}
    assert sorted(call.task_run_id for call, *_ in rest) == sorted(
        f"{run}.{name}.3" for run in ("r1", "r2") for name in ("fit", "score"))
    assert [call.task_name for call, *_ in alone] == [f"probe[{i}]" for i in range(MIN_PROBES)]
    probes = launched[16:16 + MIN_PROBES]
    # A probe's end is wrapped: it wakes the submitter to decide for the children held back.
    assert all(sent[4] is not member[4] for sent, member in zip(alone, probes, strict=True))
    assert [call.task_name for call, *_ in held] == ["probe[4]", "probe[5]"]
    # Gathering counts per task too: two children of each of two maps fill no chunk of 3.
    submitter._members = [child("r1", name, index, 3) for index in range(2)
                          for name in ("fit", "score")]
    assert not submitter._gather_members()


def _double(x: int) -> int:
    return 2 * x


def test_a_chunks_calls_travel_packed_and_come_back_as_they_were() -> None:
    import pickle

    import cloudpickle

    from labloom.executors.dask_packing import pack
    from labloom.executors.dask_shipping import unship

    calls = [TaskCall(_double, f"double[{i}]", "r1", f"r1.{i}", attempt=1 + (i == 3),
                      batch_size=1000, save_to=f"/results/{i:02}/key{i}.pkl") for i in range(50)]
    packed = pack(calls)
    # What the children share travels once; what differs, as columns.
    assert set(packed.columns) == {"task_name", "task_run_id", "attempt", "save_to"}
    # The function travels apart, unpickled on the worker by the call (``dask_shipping``).
    assert packed.shared["fn"].fn is _double and packed.shared["batch_size"] == 1000
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(packed)).calls()
        for call in back:
            call.fn = unship(call.fn, call.task_name)
        assert back == calls  # every field of every call (dataclass equality)
    # No call object travels, only strings, numbers and the function (once).
    data = pickle.dumps(packed)
    assert b"TaskCall" not in data and data.count(b"_double") == 1


def test_a_chunks_outcomes_reach_each_run_in_one_step_and_other_callbacks_alone() -> None:
    from labloom.core.executor import Outcome, report_all

    class Launcher:  # what report_all needs of launching.Launcher: outcomes(items)
        def __init__(self) -> None:
            self.steps: list[list[Any]] = []

        def outcomes(self, items: list[Any]) -> None:
            self.steps.append(items)

    class Done:  # as call_reports.Done: it names its launcher
        def __init__(self, launcher: Launcher) -> None:
            self.launcher = launcher

    one, two = Launcher(), Launcher()
    alone: list[Outcome] = []
    ends = [(Done(one), Outcome(ok=True)), (Done(two), Outcome(ok=False)),
            (alone.append, Outcome(ok=True)), (Done(one), Outcome(ok=True))]
    report_all(ends)  # type: ignore[arg-type]
    assert [len(step) for step in one.steps] == [2] and [len(s) for s in two.steps] == [1]
    assert len(alone) == 1


def test_a_chunks_values_travel_as_one_pickle_not_item_by_item() -> None:
    # distributed sends a result that is exactly a list item by item (a header, a pickle and a
    # compression check each: about 20 µs per item on the worker, 6 µs in the kernel).
    from distributed.protocol import dumps, loads, to_serialize

    from labloom.executors.dask_outcomes import ChildFailed, ChunkValues

    values = ChunkValues([*range(999), ChildFailed(ValueError("x"), "tb")])
    frames = dumps({"data": {"chunk": to_serialize(values)}})
    assert len(frames) < 10  # a plain list of the same gives a frame or more per item
    assert len(dumps({"data": {"chunk": to_serialize(list(values))}})) > 1000
    back = loads(frames)["data"]["chunk"]
    assert type(back) is ChunkValues and back[:999] == list(range(999))
    assert isinstance(back[999], ChildFailed) and len(back) == 1000


def test_a_chunks_ends_are_taken_together_only_when_every_child_returned() -> None:
    from labloom.executors.dask_events import Dispatcher

    dispatcher = Dispatcher()
    calls = [TaskCall(_double, f"double[{i}]", "r1", f"r1.{i}", batch_size=100)
             for i in range(3)]
    for i, call in enumerate(calls):  # as the workers' "e" events leave them
        dispatcher.times[(call.task_run_id, 1, 0)] = (10.0 + i, 10.5 + i, i != 1)
    assert dispatcher.ended_all(calls) is None  # child 1 raised: its chunk must be asked
    assert len(dispatcher.times) == 3 and not dispatcher.durations  # nothing taken
    dispatcher.times[("r1.1", 1, 0)] = (11.0, 11.5, True)
    assert dispatcher.ended_all(calls) == [(10.0, 10.5), (11.0, 11.5), (12.0, 12.5)]
    assert not dispatcher.times
    assert dispatcher.durations == {"double": (3, 1.5)}  # counted once for the chunk
    assert dispatcher.mean_duration("double") == 0.5


def test_a_chunks_arguments_are_searched_for_futures_only_when_one_may_be_there() -> None:
    from dask._task_spec import DataNode, TaskRef

    from labloom.executors.dask_internals import task_spec
    from labloom.executors.dask_submit import _plain

    assert _plain([(1, 2.5, "a"), (None, b"x", True), ()])
    assert not _plain([(1,), ([1],)])  # a list may hold a future: searched
    assert not _plain([(1,), (TaskRef("upstream-key"),)])
    # Searched, a future in a child's arguments is a dependency of the chunk; known plain,
    # the list goes as it is.
    searched = task_spec("chunk", _double, [(1,), (TaskRef("upstream-key"),)])
    assert searched.dependencies == {"upstream-key"}
    arguments = [(1,), (2,)]
    spec = task_spec("chunk", _double, arguments, plain=frozenset((0,)))
    assert spec.args[0] is arguments and not spec.dependencies
    assert not isinstance(spec.args[0], DataNode)


def test_an_unmeasured_maps_probes_are_planned_in_the_launching_thread() -> None:
    # The cluster's thread count is a question to the scheduler: asked by the submitting
    # thread, it waited while the launching thread held the interpreter, and no probe went out
    # before the whole map was launched. The launching thread asks it, once per map.
    import threading

    from labloom.executors.dask import DaskExecutor

    asked_from: list[threading.Thread] = []

    class Client:
        id = "test-probes-planned-in-the-launching-thread"
        status = "running"

        def nthreads(self) -> dict[str, int]:
            asked_from.append(threading.current_thread())
            return {"w1": 3}

        def subscribe_topic(self, name: str, handler: Any) -> None:
            pass

        def unsubscribe_topic(self, name: str) -> None:
            pass

        class loop:  # where the workers are watched (dask_worker_watch): not here
            @staticmethod
            def add_callback(*args: Any) -> None:
                pass

    executor = DaskExecutor(client=Client())
    executor._submitter._start = lambda: None  # type: ignore[method-assign]  # nothing sent
    for block in range(2):  # a map's children come in blocks: asked for the first only
        calls = [(TaskCall(_double, f"double[{i}]", "r1", f"r1.double.{i}", batch_size="auto"),
                  (i,), {}, lambda outcome: None) for i in range(10 * block, 10 * block + 10)]
        handles: list[Any] = []
        executor.submit_all(calls, None, handles)
        assert len(handles) == 10
    assert asked_from == [threading.current_thread()]
    assert executor._submitter._probes[("r1", "double")].limit == probe_count(3)
    # The submitting thread, deciding, finds them planned: the first six go alone, the rest wait.
    chunks, alone, rest, held = executor._submitter._chunks(executor._submitter._members)
    assert (len(chunks), len(alone), len(rest), len(held)) == (0, probe_count(3), 0, 14)
    assert asked_from == [threading.current_thread()]
    executor.shutdown()


def test_children_held_back_are_looked_at_again_when_the_probes_decide_not_as_others_arrive() -> None:
    # Kept with the children still arriving, the held ones were decided again on each launch
    # block's wake-up: a first map of 5,000 took up to 40,000 looks at a size.
    import time

    class Owner:
        client = type("Client", (), {"nthreads": lambda self: {"w1": 1}})()
        dispatcher = type("Dispatcher", (), {"mean_duration": lambda self, name: None})()

    submitter = Submitter(executor=Owner())  # type: ignore[arg-type]
    looked_at: list[str] = []
    known_size = submitter.known_size

    def counted(call: TaskCall, name: str) -> int | None:
        looked_at.append(call.task_run_id)
        return known_size(call, name)

    submitter.known_size = counted  # type: ignore[method-assign]

    def children(first: int, n: int) -> list[Any]:
        return [(TaskCall(_double, f"double[{i}]", "r1", f"r1.{i}", batch_size="auto"), (i,), {},
                 Handle("double"), lambda outcome: None) for i in range(first, first + n)]

    def wait_for(condition: Any) -> None:
        deadline = time.monotonic() + 60  # a guard
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.001)

    probes = submitter.plan_probes("r1", "double")
    probe = submitter._probe(children(100, 1)[0], "double")  # one probe out, not ended
    probes.sent = probes.limit  # every probe out: the rest is held, nothing is sent
    submitter.add_members(children(0, 6))
    wait_for(lambda: len(submitter._held) == 6)
    for block in range(3):  # more children arrive: only they are looked at
        submitter.add_members(children(6 + 2 * block, 2))
        wait_for(lambda n=8 + 2 * block: len(submitter._held) == n)
    assert {f"r1.{i}" for i in range(6)}.isdisjoint(looked_at[looked_at.index("r1.6"):])
    assert [call.task_run_id for call, *_ in submitter._held] == [f"r1.{i}" for i in range(12)]
    # A probe's end that decides nothing (three are still out) leaves them be; one that
    # decides puts them back with the children to send.
    sent: list[Any] = []
    submitter._send = (
        lambda batch, members, growing, failed: sent.extend(members))
    probe[4](Outcome(ok=True))  # unmeasured
    assert not submitter._recheck and len(submitter._held) == 12
    probe[4](Outcome(ok=True, started=1.0, ended=1.5))  # one slow child: not yet
    assert not submitter._recheck and len(submitter._held) == 12
    probe[4](Outcome(ok=True, started=2.0, ended=2.5))  # two: one per Dask task, decided
    wait_for(lambda: len(sent) == 12)
    assert not submitter._held
    submitter.forget("r1")
    assert not submitter._held
    submitter.stop()


def test_a_chunk_whose_failure_answer_was_lost_does_not_report_its_failed_child_completed() -> None:
    # The chunk ran (one child raised), but the small task asking which child failed did not
    # finish (its workers died, it was cancelled): each child was then reported from the
    # chunk's own future, "finished", and the failed child showed Completed, its "value" the
    # marker of its failure. Each child's own end event says whether it returned.
    from labloom.executors.dask_events import Dispatcher
    from labloom.executors.dask_outcomes import report_failures

    class Ended:
        def __init__(self, status: str) -> None:
            self.status = status

        key = "status-t-chunk"

        def exception(self) -> BaseException:
            return RuntimeError("the workers running the answer died")

    dispatcher = Dispatcher()
    calls = [TaskCall(fn=print, task_name=f"t[{i}]", run_id="r", task_run_id=f"r.{i}")
             for i in range(3)]
    for i, call in enumerate(calls):
        dispatcher.times[(call.task_run_id, 1, 0)] = (1.0, 2.0, i != 1)  # child 1 raised
    outcomes: dict[int, Outcome] = {}
    chunk = [(call, lambda outcome, i=i: outcomes.__setitem__(i, outcome))
             for i, call in enumerate(calls)]
    report_failures(Ended("error"), Ended("finished"), chunk, dispatcher)  # type: ignore[arg-type]
    assert [outcomes[i].ok for i in range(3)] == [True, False, True]
    assert "the workers running the answer died" in outcomes[1].traceback
