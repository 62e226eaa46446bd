"""A run's timeline (issue 22, item 3): where each task run ran is stored, and the timeline of a
run comes as bars when few, as buckets per lane when dense, bounded at 100,000 task runs; the
cell widget answers the same shape from the live run (one module, ``dag.timeline``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, task
from labloom.dag.timeline import MAX_BARS, MAX_CELLS, Span, timeline
from labloom.notebook.widget.view import RunView
from labloom.server_extension.queries import StoreAccess, run_timeline
from labloom.store import open_store
from labloom.store.reader import RunStore

STATES = ("Completed", "Failed", "Cancelled")


def sweep(n: int, lanes: int, seconds: float = 1.0) -> list[Span]:
    """``n`` task runs spread round-robin over ``lanes`` lanes, back to back in each lane."""
    spans = []
    for i in range(n):
        lane, slot = i % lanes, i // lanes
        start = 1000.0 + slot * seconds
        state = STATES[i % 3] if i < n - lanes else "Running"
        spans.append(Span(f"t{i}", f"train[{i}]", f"worker-{lane}", state, start,
                          None if state == "Running" else start + seconds * 0.9))
    return spans


def test_few_task_runs_come_as_bars_in_lanes_ordered_by_number() -> None:
    spans = [*sweep(30, 12), Span("p", "later", "", "Pending", None, None)]
    answer = timeline(spans, now=2000.0)
    assert answer["mode"] == "bars" and answer["buckets"] is None
    assert answer["lanes"] == [f"worker-{i}" for i in range(12)]  # worker-10 after worker-9
    assert answer["total"] == 30 and answer["unstarted"] == 1
    assert len(answer["bars"]) == 30 and answer["start"] == 1000.0
    bar = answer["bars"][13]
    assert bar == {"lane": 1, "id": "t13", "name": "train[13]", "state": "Failed",
                   "start": 1.0, "end": pytest.approx(1.9)}
    # A running task run's bar reaches "now".
    running = [b for b in answer["bars"] if b["state"] == "Running"]
    assert running and all(b["end"] == 1000.0 for b in running)


def test_no_task_run_started_yet() -> None:
    answer = timeline([Span("a", "a", "", "Pending", None, None)], now=5.0)
    assert answer["lanes"] == [] and answer["bars"] == [] and answer["start"] is None


def test_100000_task_runs_answer_in_bounded_buckets_that_keep_every_count() -> None:
    spans = sweep(100_000, 16)
    began = time.perf_counter()
    answer = timeline(spans, now=1000.0 + 100_000 / 16 + 1)
    took = time.perf_counter() - began
    assert answer["mode"] == "buckets" and answer["bars"] == []
    assert answer["total"] == 100_000 and len(answer["lanes"]) == 16
    buckets = answer["buckets"]
    cells = buckets["cells"]
    assert len(cells) <= MAX_CELLS and buckets["count"] * 16 <= MAX_CELLS
    assert len(json.dumps(answer)) < 600_000, "bounded whatever the run's size"
    # Every task run is counted in each bucket it overlaps (so at least once), by state.
    counted = sum(n for cell in cells for n in cell["counts"].values())
    assert counted >= 100_000
    assert {s for cell in cells for s in cell["counts"]} == {"Completed", "Failed", "Cancelled", "Running"}
    # Busy seconds add up to the task runs' durations: the idle gaps stay visible.
    busy = sum(sum(cell["busy"].values()) for cell in cells)
    expected = sum(((s.end or 1000.0 + 100_000 / 16 + 1) - (s.start or 0)) for s in spans)
    assert busy == pytest.approx(expected, rel=1e-6)
    assert all(sum(c["busy"].values()) <= buckets["width"] * 1.000001 for c in cells)
    print(f"100,000 task runs bucketed in {took:.2f} s")  # seen with -s; never asserted


def test_just_over_the_bar_limit_switches_to_buckets() -> None:
    assert timeline(sweep(MAX_BARS, 4), now=0)["mode"] == "bars"
    assert timeline(sweep(MAX_BARS + 1, 4), now=0)["mode"] == "buckets"


def test_a_bucket_counts_the_children_that_left_their_map_apart() -> None:
    """A map's child that left its map (``TaskRunLeftMap``) is history: a bucket counts it in
    ``left_counts`` / ``left_busy``, not under its state with the map's children (before, a
    bucket said "8 Completed" of a map the DAG counts 6 of), and only where one ran."""
    spans = [span._replace(left=i % 4 == 1) for i, span in enumerate(sweep(16, 2))]
    answer = timeline(spans, now=1100.0, max_bars=10)
    assert answer["mode"] == "buckets" and answer["left"] == 4 and answer["total"] == 16
    cells = answer["buckets"]["cells"]
    # Their busy seconds are theirs alone, the others' the others' (0.9 s each, two running).
    busy = sum(sum(c["busy"].values()) for c in cells)
    left_busy = sum(sum(c.get("left_busy", {}).values()) for c in cells)
    assert left_busy == pytest.approx(4 * 0.9)
    assert busy == pytest.approx(10 * 0.9 + (1100.0 - 1007) * 2)
    # Lane 1 ran every child that left (spans 1, 5, 9, 13); lane 0's cells have no left_ part.
    assert all("left_counts" not in c and "left_busy" not in c for c in cells if c["lane"] == 0)
    assert {s for c in cells for s in c.get("left_counts", {})} == {"Completed", "Failed",
                                                                    "Cancelled"}
    assert all(sum(c["counts"].values()) == 0 for c in cells if "left_counts" in c)
    assert timeline(spans, now=1100.0)["left"] == 4  # bars: each marked, and counted


@task
def nap(i: int) -> int:
    time.sleep(0.05)
    if i == 3:
        raise ValueError("bad input")
    return i


@flow(executor=ThreadExecutor(max_workers=3))
def naps(n: int = 8) -> list[int]:
    return nap.map(range(n))  # type: ignore[return-value]


# PostgreSQL writes 50 updates or more through a staged copy: 60 task runs take that path.
@pytest.mark.parametrize("store_backend", ["sqlite", "postgresql"], indirect=True)
def test_the_store_records_each_task_runs_thread_and_the_api_query_reads_it(
    store_backend: str,
) -> None:
    run = naps.run(n=60, background=True)
    run.wait()
    with open_store() as store:
        workers = {t.task_name + str(t.map_index): w for t, w in zip(
            store.task_runs(run.id),
            [row[0] for row in store.conn.execute(
                "SELECT worker FROM task_runs WHERE run_id = ? ORDER BY created, rowid",
                (run.id,))], strict=True)}
    assert set(workers.values()) <= {f"labloom-task_{i}" for i in range(3)}, workers
    assert len(set(workers.values())) >= 2  # three threads shared sixty naps
    access = StoreAccess(workers=1)
    with RunStore() as store:
        answer = run_timeline(access, store, run.id)
        assert run_timeline(access, store, "0" * 12) is None
    assert answer is not None and answer["run"] == run.id and answer["mode"] == "bars"
    assert set(answer["lanes"]) == set(workers.values())
    states = {b["name"]: b["state"] for b in answer["bars"]}
    assert states["nap[3]"] == "Failed" and states["nap[0]"] == "Completed"
    assert all(b["end"] >= b["start"] >= 0 for b in answer["bars"])


def test_the_cell_widget_answers_the_same_shape_from_the_live_run() -> None:
    run = naps.run(background=True)
    sent: list[dict[str, Any]] = []
    got = threading.Event()

    def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("event") == "timeline":
            got.set()

    view = RunView(run, lambda payload: None, send)
    view.start()
    try:
        run.wait()
        view.flush()
        view.handle({"event": "timeline"})
        assert got.wait(60)  # a guard
    finally:
        view.close()
    answer = next(m for m in sent if m.get("event") == "timeline")
    assert answer["run"] == run.id and answer["total"] == 8 and answer["mode"] == "bars"
    assert all(lane.startswith("labloom-task_") for lane in answer["lanes"])
    with RunStore() as store:
        stored = run_timeline(StoreAccess(workers=1), store, run.id)
    assert stored is not None
    # The widget and the REST route draw the same lanes and states.
    assert set(answer["lanes"]) == set(stored["lanes"])
    assert sorted(b["state"] for b in answer["bars"]) == sorted(
        b["state"] for b in stored["bars"])


def test_on_dask_a_lane_is_a_worker_thread(one_worker_cluster: Any) -> None:
    from labloom import DaskExecutor

    with DaskExecutor(cluster=one_worker_cluster) as executor:
        address = next(iter(executor.client.scheduler_info()["workers"]))
        run = naps.run(n=6, executor=executor, background=True)
        run.wait()
    with RunStore() as store:
        answer = run_timeline(StoreAccess(workers=1), store, run.id)
    assert answer is not None and answer["total"] == 6
    # The worker's address, then the thread (two threads: up to two lanes).
    assert answer["lanes"] and all(lane.startswith(address + " ") for lane in answer["lanes"])
    assert len(answer["lanes"]) <= 2 and all("Dask" in lane for lane in answer["lanes"])


def test_a_widget_opened_after_the_run_ended_still_has_its_bars() -> None:
    run = naps.run(background=True)
    run.wait()
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda payload: None, sent.append)
    view.start()  # replayed from the run's account of itself, not from its live events
    try:
        view.handle({"event": "timeline"})
    finally:
        view.close()
    answer = next(m for m in sent if m.get("event") == "timeline")
    assert answer["total"] == 8 and answer["unstarted"] == 0
    assert {b["state"] for b in answer["bars"]} == {"Completed", "Failed"}
    assert all(lane.startswith("labloom-task_") for lane in answer["lanes"])
