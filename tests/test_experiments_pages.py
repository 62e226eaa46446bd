"""The pages of ``GET runs/{id}/experiments`` (issue 19), on SQLite and PostgreSQL: a first
look at a big run answers from its first calls (marked partial) while the whole run is read,
then the complete page; ``task=`` keeps one map node's children; the cell's view and the REST
route answer in one shape, row for row; ``sort=index_order`` pages rows as the views show them
unsorted (by task, then map index), also from a first look."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from experiment_server import get, jp_server_config  # noqa: F401  (fixture: see there)
from labloom import ThreadExecutor, flow, log_metrics, log_params, task, unmapped
from labloom.notebook.widget.view import RunView
from labloom.server_extension import experiment_rows
from labloom.store import experiments as store_experiments
from labloom.store import open_store

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@task
def child(i: int) -> None:
    log_params(group=i % 3)
    log_metrics(score=float(i % 5))


@task
def late(i: int) -> None:
    log_metrics(score=float(i), other=i * 2)


@task
def lone() -> None:
    log_metrics(score=-1.0)


@flow
def many(n: int) -> Any:
    return child.map(range(n))


@flow
def two_maps(n: int) -> Any:
    lone()
    child.map(range(n))
    return late.map(range(n))


@pytest.fixture
def small_first_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """A "big" run of a few dozen rows: the writer stores 10 calls a row, and the first look
    reads 100 calls at most (the flow and the server run in this process)."""
    monkeypatch.setattr(store_experiments, "CALLS_PER_ROW", 10)
    monkeypatch.setattr(experiment_rows, "FIRST_LOOK", 100)


async def test_a_first_look_at_a_big_run_is_partial_then_whole(
    jp_fetch: Any, store_backend: str, small_first_look: None
) -> None:
    run = many.run(n=60, executor="local")  # 120 calls, logged in map order
    first = await get(jp_fetch, "runs", run.id, "experiments", limit="5")
    assert first.get("partial") is True, first["total"]
    assert [r["map_index"] for r in first["rows"]] == [0, 1, 2, 3, 4]
    assert first["rows"][3]["params"] == {"group": 0} and first["rows"][3]["metrics"] == {
        "score": 3.0}
    assert first["rows"][0]["state"] == "Completed" and first["rows"][0]["task"] == "child"
    assert 5 <= first["total"] < 60 and first["next"] == 5
    assert {(c["kind"], c["name"]) for c in first["columns"]} == {("param", "group"),
                                                                  ("metric", "score")}
    # Asked again (as the view does on its next tick): the whole run.
    whole = await _whole(jp_fetch, run.id, limit="5", offset="55")
    assert "partial" not in whole and whole["total"] == 60
    assert [r["map_index"] for r in whole["rows"]] == [55, 56, 57, 58, 59]
    again = await get(jp_fetch, "runs", run.id, "experiments", limit="5")
    assert "partial" not in again and again["total"] == 60
    assert again["rows"] == first["rows"]

    # A sorted first look is partial too: the best of the rows read so far, then the whole.
    other = many.run(n=300, executor="local")  # more calls than a first look reads
    top = await get(jp_fetch, "runs", other.id, "experiments", sort="score", desc="1",
                    limit="3")
    assert top.get("partial") is True and 3 <= top["total"] < 300, top["total"]
    assert [r["map_index"] for r in top["rows"]] == [4, 9, 14]  # score 4.0, in logged order
    top = await _whole(jp_fetch, other.id, sort="score", desc="0", limit="3", offset="297")
    assert top["total"] == 300 and [r["map_index"] for r in top["rows"]] == [289, 294, 299]
    # A first look asking for more rows than the first calls hold reads the whole run.
    third = many.run(n=100, executor="local")
    deep = await get(jp_fetch, "runs", third.id, "experiments", limit="80")
    assert "partial" not in deep and deep["total"] == 100 and len(deep["rows"]) == 80


async def _whole(jp_fetch: Any, run_id: str, **params: str) -> Any:
    """The complete answer: asked again, as a view does, until it is no longer partial (the
    whole read runs on the server's pool)."""
    deadline = time.monotonic() + 30
    while True:
        answer = await get(jp_fetch, "runs", run_id, "experiments", **params)
        if "partial" not in answer:
            return answer
        assert time.monotonic() < deadline, "the whole run was never read"
        await asyncio.sleep(0.05)


def test_a_page_while_the_whole_read_goes_on_answers_from_the_rows_so_far(
    small_first_look: None,
) -> None:
    """A question that comes while the run is read whole does not wait for the read: it is
    answered at once, partial, from the rows read by then; once read, pages are complete."""
    run = many.run(n=300, executor="local")
    pages = experiment_rows.ExperimentRows()
    queued: list[Any] = []  # the pool the whole read would run on: run here, when wanted
    with open_store() as store:
        record = store.matching_runs(run.id)[0]

        def ask(**kw: Any) -> dict[str, Any]:
            return pages.page(store, record, kw.get("sort"), True, 5, kw.get("offset", 0),
                              later=lambda fn, *args: queued.append(fn))

        first = ask(sort="score")
        assert first["partial"] is True and len(queued) == 1
        entry = pages._runs[(store.database.url, run.id)]
        with entry.reader:  # the whole read under way: it holds the reader
            during = ask(sort="group")
            assert during["partial"] is True and during["total"] == first["total"]
            assert {r["params"]["group"] for r in during["rows"]} == {2}
            assert len(queued) == 1  # one whole read, not one per question
        queued[0](store)  # the whole read, as the pool runs it
        after = ask(sort="score")
        assert "partial" not in after and after["total"] == 300
        # A sort on a task-run column needs every task run: complete from the first answer.
        fresh = experiment_rows.ExperimentRows()
        by_state = fresh.page(store, record, "map_index", True, 5, 0,
                              later=lambda fn, *args: queued.append(fn))
        assert "partial" not in by_state and by_state["rows"][0]["map_index"] == 299


def _node_ids(run_id: str) -> dict[str, str]:
    with open_store() as store:
        return {node.name: node.id for node in store.nodes(run_id)}


async def test_rest_task_keeps_one_map_nodes_children(jp_fetch: Any, store_backend: str
                                                      ) -> None:
    run = two_maps.run(n=4, executor="local")
    nodes = _node_ids(run.id)
    everything = await get(jp_fetch, "runs", run.id, "experiments")
    assert everything["total"] == 9
    page = await get(jp_fetch, "runs", run.id, "experiments", task=nodes["late"],
                     sort="score", desc="1", limit="3")
    assert page["total"] == 4 and page["next"] == 3
    assert [(r["task"], r["map_index"]) for r in page["rows"]] == [("late", 3), ("late", 2),
                                                                   ("late", 1)]
    assert {c["name"] for c in page["columns"]} == {"score", "other"}
    children = await get(jp_fetch, "runs", run.id, "experiments", task=nodes["child"])
    assert {r["task"] for r in children["rows"]} == {"child"} and children["total"] == 4
    assert {c["name"] for c in children["columns"]} == {"group", "score"}
    by_name = await get(jp_fetch, "runs", run.id, "experiments", task="lone")
    assert [r["metrics"]["score"] for r in by_name["rows"]] == [-1.0]
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("labloom", "api", "runs", run.id, "experiments",
                       params={"task": "no-such-node"})
    assert caught.value.code == 400
    assert "no node or task 'no-such-node'" in caught.value.response.body.decode()
    # "offset must be between 0 and 4611686018427387904": a bound no client meets, as a rule.
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("labloom", "api", "runs", run.id, "experiments", params={"offset": "-1"})
    assert caught.value.code == 400
    assert json.loads(caught.value.response.body)["message"] == "offset must be 0 or more"


def _cell_answer(run: Any, node_name: str, message: dict[str, Any]) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []
    arrived = threading.Condition()

    def reply(answer: dict[str, Any]) -> None:
        with arrived:
            sent.append(answer)
            arrived.notify_all()

    view = RunView(run, lambda _payload: None, reply, layout_engine="builtin")
    view.start()
    try:
        deadline = time.monotonic() + 30
        while not view.read(lambda g: g.state.is_final) and time.monotonic() < deadline:
            time.sleep(0.05)
        node = view.read(lambda g: next(n.id for n in g.nodes.values() if n.name == node_name))
        view.handle({"event": "experiments", "node": node, **message})
        with arrived:
            assert arrived.wait_for(lambda: sent, 60)
        return sent[-1]
    finally:
        view.close()


async def test_the_cell_and_the_route_answer_one_shape(jp_fetch: Any, store_backend: str
                                                       ) -> None:
    run = two_maps.run(n=5, executor="local")
    asked = {"sort": "score", "desc": True, "limit": 3, "offset": 1}
    cell = await asyncio.to_thread(_cell_answer, run, "late", asked)
    rest = await get(jp_fetch, "runs", run.id, "experiments", task=_node_ids(run.id)["late"],
                     sort="score", desc="1", limit="3", offset="1")
    assert set(rest) - set(cell) == {"run_id"}
    assert set(cell) - set(rest) == {"node", "version", "event", "req"}  # curves: marked columns
    for key in ("columns", "total", "offset", "limit", "sort", "desc", "next"):
        assert cell[key] == rest[key], key
    for ours, theirs in zip(cell["rows"], rest["rows"], strict=True):
        assert ours.pop("node")
        ours.pop("duration"), theirs.pop("duration")  # clocks of the event and of the row
        assert ours == theirs


def _cell_answers(run: Any, node_name: str, messages: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """The cell's answers to ``messages`` asked one after another of one view, as it asks a
    big run's pages while the user scrolls."""
    sent: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, sent.append, layout_engine="builtin")
    view.start()
    try:
        node = view.read(lambda g: next(n.id for n in g.nodes.values() if n.name == node_name))
        for message in messages:
            view.handle({"event": "experiments", "node": node, **message})
        return sent
    finally:
        view.close()


@task
def scored(i: int) -> None:
    log_params(group=i % 3)
    log_metrics(score=(i * 7) % 11)


@flow
def scored_map(n: int) -> Any:
    return scored.map(range(n))


@pytest.mark.parametrize("asked", [
    {"sort": "index_order"}, {"sort": "score", "desc": True}, {"filter": "group=1"}, {},
], ids=["index_order", "score", "filtered", "unsorted"])
def test_the_cells_pages_asked_one_after_another_are_its_whole_answer_cut(asked: dict[str, Any]
                                                                          ) -> None:
    """A big run's pages are asked one after another of one view (a scroll): after the first,
    the cell answers them from the order it kept (dag/live_order.py; tests/test_live_order.py
    asks while events arrive), not by sorting every row again; page by
    page they are the rows of one whole answer, and the same columns and total."""
    run = scored_map.run(n=23, executor="local")
    whole, *pages = _cell_answers(run, "scored", [
        {**asked, "limit": 23},
        *({**asked, "offset": offset, "limit": 5} for offset in range(0, 23, 5)),
    ])
    assert whole["total"] == (8 if "filter" in asked else 23)
    paged = [row for page in pages for row in page["rows"]]
    assert paged == whole["rows"] and len(paged) == whole["total"]
    for page in pages:
        assert (page["columns"], page["total"], page["version"]) == (
            whole["columns"], whole["total"], whole["version"])
    assert [page["next"] for page in pages][-2:] == [20 if whole["total"] > 20 else None, None]


@task
def stepped(i: int) -> None:
    log_params(i=i)
    for step in range(3):
        log_metrics(loss=1.0 / (i + step + 1), step=step)


@flow
def curves_flow(n: int) -> Any:
    return stepped.map(range(n))


def test_a_batch_of_calls_is_one_row_and_rows_of_one_call_read_alongside(
    store_backend: str
) -> None:
    """The writer stores a batch's calls of a run in one row (at most ``CALLS_PER_ROW``), not a
    row per call; a row of one call (as stores written before hold) reads alongside."""
    run = curves_flow.run(n=40, executor="threads")  # 160 calls
    with open_store() as store:
        kinds = store.conn.execute(
            "SELECT kind, count(*) FROM experiment_values WHERE run_id = ? GROUP BY kind",
            (run.id,)).fetchall()
        assert [kind for kind, _ in kinds] == ["packed"] and kinds[0][1] < 160
        # A row of one call, as stores written before kept every call.
        one = (run.id, f"{run.id}.0", "metric", 7, 1.5, json.dumps({"loss": float("nan")}))
        with store.conn.transaction():
            store.conn.execute(
                "INSERT INTO experiment_values (run_id, task_run_id, kind, step, time, data) "
                "VALUES (?,?,?,?,?,?)", one)
        rows = {row.map_index: row for row in store_experiments.run_experiments(store, run.id)}
        points, total = store_experiments.metric_points(store, run.id, "loss", [f"{run.id}.0"])
    assert len(rows) == 40 and rows[3].params == {"i": 3}
    assert rows[3].metrics == {"loss": 1.0 / 6}
    assert str(rows[0].metrics["loss"]) == "nan"  # step 7, the curve's highest: the row's value
    assert total == 4 and [p["step"] for p in points] == [0, 1, 2, 7]
    assert points[3]["time"] == 1.5 and all(p["time"] > 1.5 for p in points[:3])


# Child i logs once child i + 1 has: the map's children log from the last index to the first.
_logged: dict[int, threading.Event] = {}


@task
def prepare() -> int:
    log_params(seed=1)  # logs before every child (they take its result)
    return 1


@task
def backwards(i: int, token: int, n: int) -> None:
    if i + 1 < n:
        assert _logged[i + 1].wait(60), f"child {i + 1} never logged"
    log_metrics(score=float(i))
    _logged[i].set()


@flow
def out_of_order(n: int) -> Any:
    return backwards.map(range(n), unmapped(prepare()), unmapped(n))


def run_out_of_order(n: int) -> Any:
    _logged.clear()
    _logged.update({i: threading.Event() for i in range(n)})
    # A thread per child: each waits for the next one's values.
    return out_of_order.run(n=n, executor=ThreadExecutor(max_workers=n + 2))


def _order(answer: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(row["task"], row["map_index"]) for row in answer["rows"]]


async def test_a_runs_rows_by_task_then_map_index(jp_fetch: Any, store_backend: str) -> None:
    run = run_out_of_order(8)
    logged = await get(jp_fetch, "runs", run.id, "experiments", limit="20")
    assert _order(logged) == [("prepare", None)] + [("backwards", i) for i in range(7, -1, -1)]

    page = await get(jp_fetch, "runs", run.id, "experiments", sort="index_order", limit="20")
    assert _order(page) == [("prepare", None)] + [("backwards", i) for i in range(8)]
    assert page["sort"] == "index_order" and page["total"] == 9
    # (by map index alone, the task outside the map came last)
    assert _order(await get(jp_fetch, "runs", run.id, "experiments", sort="map_index", limit="1")) == [
        ("backwards", 0)]
    down = await get(jp_fetch, "runs", run.id, "experiments", sort="index_order", desc="1", limit="3", offset="1")
    assert _order(down) == [("backwards", 6), ("backwards", 5), ("backwards", 4)]
    # A map node's rows, as its run tab's view asks for them.
    with open_store() as store:
        node = next(n.id for n in store.nodes(run.id) if n.name == "backwards")
    children = await get(jp_fetch, "runs", run.id, "experiments", sort="index_order", task=node, limit="3",
                         offset="2")
    assert _order(children) == [("backwards", i) for i in (2, 3, 4)]
    assert children["total"] == 8 and children["next"] == 5


async def test_a_big_runs_first_look_in_index_order_then_the_whole_run(
    jp_fetch: Any, store_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first look (the run's first calls) answers at once in index order, partial; the
    whole read's answer follows."""
    monkeypatch.setattr(store_experiments, "CALLS_PER_ROW", 10)
    monkeypatch.setattr(experiment_rows, "FIRST_LOOK", 100)
    run = run_out_of_order(60)
    first = await get(jp_fetch, "runs", run.id, "experiments", sort="index_order", limit="5")
    assert first.get("partial") is True and 5 <= first["total"] < 61, first["total"]
    shown = _order(first)
    assert shown[0] == ("prepare", None) and shown[1:] == sorted(shown[1:]), shown
    whole = await _whole(jp_fetch, run.id, sort="index_order", limit="5")
    assert _order(whole) == [("prepare", None)] + [("backwards", i) for i in range(4)]
    deep = await _whole(jp_fetch, run.id, sort="index_order", limit="5", offset="56")
    assert _order(deep) == [("backwards", i) for i in range(55, 60)]
    assert deep["total"] == 61
