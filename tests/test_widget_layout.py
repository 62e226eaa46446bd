"""Both layouts: graphviz's dot (where installed) and the built-in layered one."""

from __future__ import annotations

import pytest

from labloom.dag.layered import Box, Layout, _crossings, _Vertex, layered_layout
from labloom.dag.layout import layout, parse_plain

DIAMOND = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


def boxes(names: str, width: float = 160.0, height: float = 40.0) -> list[Box]:
    return [Box(n, width, height) for n in names]


def assert_sane(laid: Layout, bxs: list[Box], edges: list[tuple[str, str]]) -> None:
    """Every node inside the drawing, no two overlapping, edges as 3k+1 Bezier points."""
    for b in bxs:
        x, y = laid.centres[b.id]
        assert b.width / 2 - 1 <= x <= laid.width - b.width / 2 + 1
        assert b.height / 2 - 1 <= y <= laid.height - b.height / 2 + 1
    for i, p in enumerate(bxs):
        for q in bxs[i + 1 :]:
            (px, py), (qx, qy) = laid.centres[p.id], laid.centres[q.id]
            apart_x = abs(px - qx) >= (p.width + q.width) / 2
            apart_y = abs(py - qy) >= (p.height + q.height) / 2
            assert apart_x or apart_y, (p.id, q.id)
    assert len(laid.edges) == len(edges)
    for pts in laid.edges:
        assert len(pts) >= 4 and (len(pts) - 1) % 3 == 0


ENGINES = ["builtin", pytest.param("dot", marks=pytest.mark.needs("dot"))]


@pytest.mark.parametrize("engine", ENGINES)
def test_chain_runs_left_to_right(engine: str) -> None:
    bxs = boxes("abcd")
    edges = [("a", "b"), ("b", "c"), ("c", "d")]
    laid = layout(bxs, edges, engine)
    assert laid.engine == engine
    xs = [laid.centres[n][0] for n in "abcd"]
    assert xs == sorted(xs) and len(set(xs)) == 4
    ys = {laid.centres[n][1] for n in "abcd"}
    assert len(ys) == 1  # a chain is straight
    assert_sane(laid, bxs, edges)
    # An edge leaves its source to the right and ends left of its target.
    first = laid.edges[0]
    assert first[0][0] >= laid.centres["a"][0] and first[-1][0] <= laid.centres["b"][0]


@pytest.mark.parametrize("engine", ENGINES)
def test_diamond_and_fan(engine: str) -> None:
    bxs = boxes("abcdefg", height=54.0)
    edges = [*DIAMOND, ("a", "e"), ("a", "f"), ("a", "g"), ("e", "d")]
    laid = layout(bxs, edges, engine)
    assert_sane(laid, bxs, edges)
    x = {n: laid.centres[n][0] for n in "abcdefg"}
    assert x["a"] < x["b"] == x["c"] == x["e"] < x["d"]


def test_builtin_routes_long_edges_through_their_layers() -> None:
    bxs = boxes("abcd")
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]
    laid = layered_layout(bxs, edges)
    assert len(laid.edges[3]) == 1 + 3 * 3  # two dummy points: three curve segments
    assert_sane(laid, bxs, edges)


def test_builtin_ordering_removes_avoidable_crossings() -> None:
    # Listed so that a naive order crosses: a->y, b->x with x before y.
    bxs = boxes("abxy")
    edges = [("a", "y"), ("b", "x")]
    laid = layered_layout(bxs, edges)
    ya, yb = laid.centres["a"][1], laid.centres["b"][1]
    yx, yy = laid.centres["x"][1], laid.centres["y"][1]
    assert (ya < yb) == (yy < yx)


def test_crossing_count() -> None:
    verts = [_Vertex(str(i), 1, 1) for i in range(4)]
    verts[0].succs, verts[1].succs = [3], [2]
    assert _crossings(verts, [[0, 1], [2, 3]]) == 1
    assert _crossings(verts, [[0, 1], [3, 2]]) == 0


def test_builtin_tolerates_cycles_unknown_ends_and_empty_graphs() -> None:
    bxs = boxes("abc")
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("a", "zzz"), ("b", "b")]
    laid = layered_layout(bxs, edges)
    assert laid.edges[3] == [] and laid.edges[4] == []
    # The back edge is drawn from c to a, whatever the layering did.
    back = laid.edges[2]
    assert back[0][0] <= laid.centres["c"][0] + 80 and back[-1][0] >= laid.centres["a"][0] - 80
    empty = layered_layout([], [])
    assert empty.centres == {} and empty.edges == []


def test_builtin_handles_a_wide_graph_quickly_enough_to_not_matter() -> None:
    # 2,000 task nodes fanning out of one: one layer of 2,000; no quadratic blow-up.
    bxs = [Box("root", 160, 40)] + [Box(f"t{i}", 160, 40) for i in range(2000)]
    edges = [("root", f"t{i}") for i in range(2000)]
    laid = layered_layout(bxs, edges)
    assert len(laid.centres) == 2001


@pytest.mark.needs("dot")
def test_auto_prefers_dot_and_falls_back_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert layout(boxes("ab"), [("a", "b")]).engine == "dot"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert layout(boxes("ab"), [("a", "b")]).engine == "builtin"
    with pytest.raises(FileNotFoundError, match="dot"):
        layout(boxes("ab"), [("a", "b")], "dot")


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown layout engine 'neato'"):
        layout(boxes("a"), [], "neato")


def test_parse_plain_flips_y_and_converts_inches() -> None:
    text = (
        "graph 1 3 1\n"
        'node n0 0.5 0.5 1 0.5 "" solid box black lightgrey\n'
        'node n1 2.5 0.75 1 0.5 "" solid box black lightgrey\n'
        "edge n0 n1 4 1 0.5 1.5 0.5 2 0.75 2 0.75 solid black\n"
        "stop\n"
    )
    laid = parse_plain(text, [Box("a", 72, 36), Box("b", 72, 36)], [("a", "b")])
    assert laid.centres == {"a": (36.0, 36.0), "b": (180.0, 18.0)}
    assert laid.width == 216.0 and laid.height == 72.0
    assert laid.edges[0][0] == (72.0, 36.0)
    with pytest.raises(ValueError, match="every node"):
        parse_plain(text, [Box("a", 72, 36), Box("b", 72, 36), Box("c", 1, 1)], [])
