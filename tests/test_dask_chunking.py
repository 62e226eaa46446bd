"""How many map children share a Dask task by default, decided from given durations, and when
the submitting thread says a chunk is full (no cluster needed: sizes decided, nothing sent)."""

from __future__ import annotations

from typing import Any

from labloom.core.attempt import TaskCall
from labloom.core.executor import Outcome
from labloom.executors.dask_chunking import (
    ALONE_SECONDS,
    CHUNK_SECONDS,
    MAX_CHUNK,
    MIN_CHUNK,
    MIN_PROBES,
    Probes,
    chunk_size,
    probe_count,
    runs_next,
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
    chunks, alone, rest, limited = submitter._chunks(members, full_only=True)
    assert sorted(chunks) == sorted(f"{name}-chunk-{run}.{name}.0-1" for run in ("r1", "r2")
                                    for name in ("fit", "score"))
    for key, chunk in chunks.items():
        assert [call.task_name for call, *_ in chunk] == [f"{key.split('-')[0]}[{i}]"
                                                          for i in range(3)]
        assert {call.run_id for call, *_ in chunk} == {key.split("-chunk-")[1].split(".")[0]}
    # The unmeasured map's children after its probes wait too, to fill a limited chunk.
    assert sorted(call.task_run_id for call, *_ in rest) == sorted(
        [f"{run}.{name}.3" for run in ("r1", "r2") for name in ("fit", "score")]
        + ["r1.probe.4", "r1.probe.5"])
    assert not limited
    assert [call.task_name for call, *_ in alone] == [f"probe[{i}]" for i in range(MIN_PROBES)]
    probes = launched[16:16 + MIN_PROBES]
    # A probe's end is wrapped: it counts towards the map's size.
    assert all(sent[4] is not member[4] for sent, member in zip(alone, probes, strict=True))
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

    calls = [TaskCall(_double, f"double[{i}]", "r1", f"r1.{i}", attempt=1 + (i == 3),
                      batch_size=1000, save_to=f"/results/{i:02}/key{i}.pkl") for i in range(50)]
    packed = pack(calls)
    # What the children share travels once; what differs, as columns.
    assert set(packed.columns) == {"task_name", "task_run_id", "attempt", "save_to"}
    assert packed.shared["fn"] is _double and packed.shared["batch_size"] == 1000
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(packed)).calls()
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

    class Done:  # as launching.Done: it names its launcher
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
        dispatcher.times[(call.task_run_id, 1)] = (10.0 + i, 10.5 + i, i != 1)
    assert dispatcher.ended_all(calls) is None  # child 1 raised: its chunk must be asked
    assert len(dispatcher.times) == 3 and not dispatcher.durations  # nothing taken
    dispatcher.times[("r1.1", 1)] = (11.0, 11.5, True)
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
    # The submitting thread, deciding, finds them planned: the first six go alone, the rest in
    # a limited chunk.
    chunks, alone, rest, limited = executor._submitter._chunks(executor._submitter._members)
    assert (len(alone), len(rest)) == (probe_count(3), 0)
    assert limited == set(chunks) and [len(chunk) for chunk in chunks.values()] == [14]
    assert asked_from == [threading.current_thread()]
    executor.shutdown()


def test_a_limited_chunk_runs_children_while_fewer_than_a_chunk_of_their_mean() -> None:
    assert runs_next(0.0, 0)  # the first child always runs
    assert not runs_next(0.4, 1)  # a sweep's experiment: the others go back, each alone
    assert not runs_next(0.02, 1)  # one per Dask task from ALONE_SECONDS on
    assert runs_next(ALONE_SECONDS * 0.9, 1)
    assert runs_next(0.010, 1)  # a fresh worker's first call: spread over those that follow
    assert runs_next(0.010 + 998 * 20e-6, 999) and not runs_next(1000 * 20e-6, 1000)
    assert runs_next(0.005 * 9, 9) and not runs_next(0.005 * 10, 10)  # 5 ms each: 10


def test_children_a_limited_chunk_did_not_run_come_back_first_and_unsent() -> None:
    class Owner:
        client = type("Client", (), {"nthreads": lambda self: {"w1": 1}})()
        dispatcher = type("Dispatcher", (), {"mean_duration": lambda self, name: None})()

    submitter = Submitter(executor=Owner())  # type: ignore[arg-type]
    submitter._start = lambda: None  # type: ignore[method-assign]  # nothing sent
    later = _members("r1", [(3, 2)])
    submitter._members = list(later)
    unrun = _members("r1", [(3, 3)])
    for index, (_, _, _, handle, _) in enumerate(unrun):
        handle.future, handle.index = "the limited chunk's future", index
    unrun[1][3].cancelled = True  # cancelled meanwhile: never sent again
    submitter._take_back(unrun)
    assert submitter._members == [unrun[0], unrun[2], *later]
    assert all(handle.future is None and handle.index is None
               for _, _, _, handle, _ in (unrun[0], unrun[2]))


def test_a_limited_chunks_children_that_ran_are_reported_the_others_taken_back() -> None:
    from labloom.executors.dask_outcomes import report_chunk

    class Dispatcher:
        def __init__(self) -> None:  # the end events of the first two children
            self.times = {("r1.0", 1): (1.0, 2.0, True), ("r1.1", 1): (2.0, 3.0, True)}

        def ended_all(self, calls: list[TaskCall]) -> list[tuple[float, float]] | None:
            return [self.times.pop((call.task_run_id, call.attempt))[:2] for call in calls]

    future = type("Future", (), {"status": "finished"})()
    ended: list[tuple[str, Outcome]] = []
    chunk = [(member[0], lambda outcome, i=i: ended.append((f"r1.{i}", outcome)))
             for i, member in enumerate(_members("r1", [(4, 4)]))]
    taken_back: list[int] = []
    report_chunk(future, chunk, Dispatcher(), taken_back.append)  # type: ignore[arg-type]
    assert taken_back == [2]
    assert [(name, o.ok, o.started, o.ended) for name, o in ended] == [
        ("r1.0", True, 1.0, 2.0), ("r1.1", True, 2.0, 3.0)]
    ended.clear()
    report_chunk(future, chunk, type("Nothing", (), {"times": {}})(),  # type: ignore[arg-type]
                 taken_back.append)  # a worker that found the task slow ran none
    assert taken_back == [2, 0] and not ended
