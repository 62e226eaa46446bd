"""The REST API under load (issue 18, item 3), on a real Jupyter server (pytest-jupyter): a run
followed by cursor, task runs paged, answers bounded by the graph, the panel's lane apart.

Runs are made by real flows in this process writing a real SQLite store, as the server reads it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from labloom import ThreadExecutor, flow, task, unmapped
from labloom.store import open_store
from test_server_api import failing, get, squares, status_of, until

pytest_plugins = ["pytest_jupyter.jupyter_server"]

WIDTH = 12
GATES = [threading.Event() for _ in range(WIDTH)]
LATE = threading.Event()


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


@pytest.fixture(autouse=True)
def gates() -> Any:
    for gate in [*GATES, LATE]:
        gate.clear()
    yield
    for gate in [*GATES, LATE]:
        gate.set()  # a failed test must not leave threads waiting


@task
def prep() -> int:
    return 1


@task
def hold(i: int, base: int) -> int:
    GATES[i].wait(30)
    return i + base


@task
def fail_late(base: int) -> None:
    LATE.wait(30)
    raise ValueError("failed after the view was built")


@flow(executor=ThreadExecutor(WIDTH + 4))
def held() -> list[int]:
    base = prep()
    fail_late(base)
    return hold.map(range(WIDTH), unmapped(base))  # type: ignore[return-value]


def _stored_counts(run_id: str) -> dict[str, int]:
    with open_store() as store:
        record = store.get_run(run_id)
    return {} if record is None else record.counts


def _node(detail: dict[str, Any], name: str) -> str:
    return next(n["id"] for n in detail["graph"]["nodes"] if n["name"] == name)


async def test_a_running_run_is_followed_by_cursor(jp_fetch: Any) -> None:
    run = held.run(background=True)
    try:
        await until(lambda: _stored_counts(run.id).get("Running", 0) == WIDTH + 1)
        first = await get(jp_fetch, "runs", run.id, tasks="0")
        hold_node, late_node = _node(first, "hold"), _node(first, "fail_late")
        assert first["states"][hold_node]["counts"] == {"Running": WIDTH}
        assert first["counts"] == {"Completed": 1, "Running": WIDTH + 1}

        # Nothing changed: nothing but the header and the run's row comes back.
        same = await get(jp_fetch, "runs", run.id, since=first["cursor"])
        assert same["states"] == {} and "graph" not in same and "parameters" not in same
        assert same["cursor"] == first["cursor"] and same["lines"] == []

        for gate in GATES[:5]:
            gate.set()

        async def five_done() -> Any:
            answer = await get(jp_fetch, "runs", run.id, since=first["cursor"])
            return answer["counts"].get("Completed") == 6 and answer

        delta = await five_done() or await until(five_done)
        # Only the node that changed, with the counts a fresh full answer gives.
        assert list(delta["states"]) == [hold_node] and "graph" not in delta
        assert delta["states"][hold_node]["counts"] == {"Completed": 5, "Running": WIDTH - 5}
        assert delta["header"]["counts"] == {"Completed": 6, "Running": WIDTH - 4}
        assert delta["done"] == 6 and delta["total"] == WIDTH + 2
        fresh = await get(jp_fetch, "runs", run.id, tasks="0")
        assert fresh["states"] == {**first["states"], **delta["states"]}
        # The new log lines since the first answer's cursor, in the order they were written.
        assert [line["text"] for line in delta["lines"]] == []

        # The panel's list counts the running run's task runs as the run tab sees them.
        async def listed() -> Any:
            [row] = (await get(jp_fetch, "runs"))["runs"]
            return row["counts"] == delta["counts"] and row

        assert (await until(listed))["done"] == 6

        LATE.set()  # a plain task fails after the graph was built: its traceback is followed
        await until(lambda: _stored_counts(run.id).get("Failed") == 1)

        async def failed_node() -> Any:
            node = await get(jp_fetch, "runs", run.id, "nodes", late_node)
            return node["state"] == "Failed" and node

        node = await until(failed_node)
        assert "ValueError: failed after the view was built" in node["task_run"]["traceback"]
        for gate in GATES:
            gate.set()
        run.wait(30)
        await until(lambda: (_stored_run_state(run.id) or "Running") not in ("Running",))
        last = await get(jp_fetch, "runs", run.id, since=delta["cursor"])
        # The run's state changed: the whole graph and every node's state, to start afresh.
        assert last["state"] == "Failed" and last["graph"] == first["graph"]
        assert set(last["states"]) == set(first["states"])
        assert last["states"][hold_node]["counts"] == {"Completed": WIDTH}
        assert last["states"][late_node]["state"] == "Failed"
        [row] = (await get(jp_fetch, "runs"))["runs"]
        assert row["counts"] == last["counts"] == _stored_counts(run.id)
    finally:
        for gate in [*GATES, LATE]:
            gate.set()
        run.wait(30)


def _stored_run_state(run_id: str) -> str | None:
    with open_store() as store:
        record = store.get_run(run_id)
    return None if record is None else record.state


async def test_polls_of_a_running_run_fold_changes_into_one_graph(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten polls while task runs finish build the run's graph once, then read only changes
    (the server once rebuilt it from every task run for each poll of a running run)."""
    from labloom.dag import model
    from labloom.server_extension import graphs

    built: list[int] = []
    real_init = model.ViewGraph.__init__

    def counting_init(self: Any) -> None:
        built.append(1)
        real_init(self)

    run = held.run(background=True)
    try:
        await until(lambda: _stored_counts(run.id).get("Running", 0) == WIDTH + 1)
        monkeypatch.setattr(model.ViewGraph, "__init__", counting_init)
        cursor = (await get(jp_fetch, "runs", run.id, tasks="0"))["cursor"]
        for i in range(10):
            GATES[i].set()
            await until(lambda n=i: _stored_counts(run.id).get("Completed") == n + 2)
            await asyncio.sleep(graphs.FRESH_FOR + 0.05)  # past the time polls share a look
            answer = await get(jp_fetch, "runs", run.id, since=cursor, lines="0")
            assert answer["states"], i
            cursor = answer["cursor"]
        assert len(built) == 1
    finally:
        for gate in [*GATES, LATE]:
            gate.set()
        run.wait(30)


async def test_task_runs_are_paged_and_the_detail_is_bounded(jp_fetch: Any) -> None:
    narrow = squares.run(n=20)
    wide = squares.run(n=450)
    small = await get(jp_fetch, "runs", narrow.id, tasks="0")
    big = await get(jp_fetch, "runs", wide.id, tasks="0")
    # The run tab's answer grows with the graph's nodes, not with the map's width.
    for answer in (small, big):
        del answer["id"], answer["cursor"], answer["created"], answer["started"]
    assert abs(len(json.dumps(big)) - len(json.dumps(small))) < 400

    detail = await get(jp_fetch, "runs", wide.id)
    assert len(detail["task_runs"]) == 100 and detail["task_runs_next"] is not None
    seen = [t["name"] for t in detail["task_runs"]]
    after = detail["task_runs_next"]
    pages = 0
    while True:
        page = await get(jp_fetch, "runs", wide.id, "tasks", after=after, limit=200)
        seen += [t["name"] for t in page["task_runs"]]
        after, pages = page["next"], pages + 1
        if not page["more"]:
            break
    assert pages == 2 and len(seen) == len(set(seen)) == 451
    assert seen[0] == "load" and seen[1:] == [f"square[{i}]" for i in range(450)]
    everything = await get(jp_fetch, "runs", wide.id, "tasks", limit=1000)
    assert [t["name"] for t in everything["task_runs"]] == seen and not everything["more"]
    past_the_end = await get(jp_fetch, "runs", wide.id, "tasks", after=everything["next"])
    assert past_the_end["task_runs"] == [] and past_the_end["next"] == everything["next"]
    assert (await get(jp_fetch, "runs", narrow.id))["task_runs_next"] is None

    bad = failing.run()
    failed = await get(jp_fetch, "runs", bad.id, "tasks", state="Failed")
    [boom] = failed["task_runs"]
    assert boom["name"] == "explode" and "kaboom" in boom["traceback"]
    assert await status_of(jp_fetch, "runs", bad.id, "tasks", state="Bogus") == 400
    assert await status_of(jp_fetch, "runs", bad.id, "tasks", limit="0") == 400
    assert await status_of(jp_fetch, "runs", "abcdef0123", "tasks") == 404


async def test_cursors_that_do_not_fit_are_refused_or_answered_whole(jp_fetch: Any) -> None:
    run = squares.run(n=3)
    first = await get(jp_fetch, "runs", run.id, tasks="0")
    for bad in ("yesterday", "1.2", "1.2.zz", "-1.0.0"):
        try:
            await jp_fetch("labloom", "api", "runs", run.id, params={"since": bad})
        except HTTPClientError as exc:
            assert exc.code == 400 and exc.response is not None
            assert "cursor of a previous answer" in json.loads(exc.response.body)["message"]
        else:
            raise AssertionError(f"cursor {bad!r} was accepted")
    states, lines, digest = first["cursor"].split(".")
    # A cursor this server cannot vouch for (another store, another run): the whole graph.
    ahead = await get(jp_fetch, "runs", run.id, since=f"{int(states) + 10}.{lines}.{digest}")
    assert ahead["graph"] == first["graph"] and ahead["states"] == first["states"]
    other = await get(jp_fetch, "runs", run.id, since=f"{states}.{lines}.0")
    assert other["graph"] == first["graph"]
    # Log lines by cursor: the run's four lines, two at a time.
    two = await get(jp_fetch, "runs", run.id, since=first["cursor"], lines="2")
    assert [line["text"] for line in two["lines"]] == ["loading 3 rows", "square of 0"]
    assert two["more_lines"] is True and two["lines"][1]["task"] == "square[0]"
    rest = await get(jp_fetch, "runs", run.id, since=two["cursor"], lines="2")
    assert [line["text"] for line in rest["lines"]] == ["square of 1", "square of 2"]
    assert (await get(jp_fetch, "runs", run.id, since=rest["cursor"]))["lines"] == []


async def test_the_runs_list_never_waits_behind_run_tabs(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run tabs fill their pool (here: their reads held up on purpose, as a slow read of a wide
    run would); the Flows panel's list still answers at once."""
    from labloom.server_extension import queries

    run = squares.run(n=2)
    release, inside = threading.Event(), threading.Semaphore(0)
    real_get = queries.LayoutCache.get

    def slow_get(self: Any, *args: Any) -> Any:
        inside.release()
        release.wait(30)
        return real_get(self, *args)

    monkeypatch.setattr(queries.LayoutCache, "get", slow_get)
    tabs = [asyncio.ensure_future(get(jp_fetch, "runs", run.id, tasks="0")) for _ in range(6)]
    try:
        for _ in range(2):  # both of the run tabs' threads are busy, four requests queue
            assert await asyncio.to_thread(inside.acquire, True, 20)
        listing = await asyncio.wait_for(get(jp_fetch, "runs"), timeout=20)
        assert [r["id"] for r in listing["runs"]] == [run.id]
    finally:
        release.set()
    assert all(answer["id"] == run.id for answer in await asyncio.gather(*tabs))


async def test_the_list_counts_an_ended_run_s_task_runs_once(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ended run's counts by state do not change: the list reads them once, not at each
    poll (the panel polls once a second, and a run may have 100,000 task runs)."""
    from labloom.store import follow

    runs = [squares.run(n=3), failing.run()]
    counted: list[str] = []
    real = follow.add_counts

    def spy(store: Any, records: Any) -> None:
        counted.extend(run.id for run in records)
        real(store, records)

    monkeypatch.setattr(follow, "add_counts", spy)
    for _ in range(3):
        listing = await get(jp_fetch, "runs")
        assert [r["counts"] for r in listing["runs"]] == [
            {"Completed": 1, "Failed": 1}, {"Completed": 4}
        ]
    assert sorted(counted) == sorted(run.id for run in runs)
