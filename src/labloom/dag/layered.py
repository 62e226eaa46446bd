"""A built-in layered (Sugiyama-style) layout, so no system binary is required.

Left to right: longest-path layering, dummy nodes on long edges, barycentre ordering sweeps,
then coordinates that pull each node towards its neighbours without overlapping. Good enough
for the graphs flows make (chains, fans, diamonds); graphviz's ``dot`` is used when present.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

Point = tuple[float, float]

RANK_GAP = 56.0
NODE_GAP = 20.0
MARGIN = 8.0
_SWEEPS = 6
_DUMMY_SIZE = 6.0


@dataclass
class Box:
    id: str
    width: float
    height: float
    label: str = ""  # only ``visualize`` prints labels; the widget draws its own


@dataclass
class Layout:
    centres: dict[str, Point]
    # One entry per edge, in the order given: cubic Bezier control points (3k+1 of them).
    edges: list[list[Point]]
    width: float
    height: float
    engine: str


@dataclass
class _Vertex:
    id: str
    width: float
    height: float
    dummy: bool = False
    layer: int = 0
    preds: list[int] = field(default_factory=list)
    succs: list[int] = field(default_factory=list)


def layered_layout(boxes: Sequence[Box], edges: Sequence[tuple[str, str]]) -> Layout:
    index = {b.id: i for i, b in enumerate(boxes)}
    verts = [_Vertex(b.id, b.width, b.height) for b in boxes]
    pairs = [(index[u], index[v]) for u, v in edges if u in index and v in index and u != v]
    order = _topological(len(verts), pairs)
    rank = {v: i for i, v in enumerate(order)}
    # Flows are acyclic; a back edge (should one appear) is laid out reversed, drawn as given.
    laid = list(dict.fromkeys((u, v) if rank[u] < rank[v] else (v, u) for u, v in pairs))
    preds: list[list[int]] = [[] for _ in verts]
    for u, v in laid:
        preds[v].append(u)
    for v in order:
        verts[v].layer = max((verts[u].layer + 1 for u in preds[v]), default=0)

    chains = [_add_dummies(verts, u, v) for u, v in laid]
    layers: list[list[int]] = [[] for _ in range(max((v.layer for v in verts), default=-1) + 1)]
    for v in [*order, *range(len(boxes), len(verts))]:
        layers[verts[v].layer].append(v)
    _order_layers(verts, layers)
    xs = _rank_positions(verts, layers)
    ys = _order_positions(verts, layers)

    centres = {verts[i].id: (xs[i], ys[i]) for i in range(len(boxes))}
    by_pair = dict(zip(laid, chains, strict=True))
    drawn: list[list[Point]] = []
    for src, dst in edges:
        if src not in index or dst not in index or src == dst:
            drawn.append([])
            continue
        a, b = index[src], index[dst]
        forward = (a, b) in by_pair
        chain = by_pair[(a, b)] if forward else by_pair[(b, a)]
        pts = [(xs[i], ys[i]) for i in chain]
        # Leave from the right side of the source, arrive at the left side of the target.
        pts[0] = (pts[0][0] + verts[chain[0]].width / 2, pts[0][1])
        pts[-1] = (pts[-1][0] - verts[chain[-1]].width / 2, pts[-1][1])
        curve = _bezier(pts)
        drawn.append(curve if forward else curve[::-1])
    width = max((xs[i] + v.width / 2 for i, v in enumerate(verts)), default=0.0) + MARGIN
    height = max((ys[i] + v.height / 2 for i, v in enumerate(verts)), default=0.0) + MARGIN
    return Layout(centres, drawn, width, height, "builtin")


def _topological(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    indegree = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, v in pairs:
        succs[u].append(v)
        indegree[v] += 1
    ready = [v for v in range(n) if indegree[v] == 0]
    order: list[int] = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in succs[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                ready.append(w)
    seen = set(order)
    return order + [v for v in range(n) if v not in seen]


def _add_dummies(verts: list[_Vertex], u: int, v: int) -> list[int]:
    """Link u to v through one dummy vertex per layer the edge skips; return the chain."""
    chain = [u]
    for layer in range(verts[u].layer + 1, verts[v].layer):
        verts.append(_Vertex(f"~{u}-{v}-{layer}", _DUMMY_SIZE, _DUMMY_SIZE, True, layer))
        chain.append(len(verts) - 1)
    chain.append(v)
    for a, b in itertools.pairwise(chain):
        verts[a].succs.append(b)
        verts[b].preds.append(a)
    return chain


def _order_layers(verts: list[_Vertex], layers: list[list[int]]) -> None:
    """Barycentre sweeps down and up; keep the ordering with the fewest crossings."""
    best = [list(layer) for layer in layers]
    best_crossings = _crossings(verts, layers)
    for sweep in range(_SWEEPS):
        down = sweep % 2 == 0
        span = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for i in span:
            pos = {v: k for k, v in enumerate(layers[i - 1 if down else i + 1])}
            current = {v: k for k, v in enumerate(layers[i])}

            def key(v: int, pos: dict[int, int] = pos, current: dict[int, int] = current) -> float:
                near = [pos[w] for w in verts[v].preds + verts[v].succs if w in pos]
                return sum(near) / len(near) if near else float(current[v])

            layers[i].sort(key=key)
        crossings = _crossings(verts, layers)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in layers], crossings
    layers[:] = best


def _crossings(verts: list[_Vertex], layers: list[list[int]]) -> int:
    """Edge crossings between adjacent layers, counted as inversions (O(E log E))."""
    total = 0
    for upper, lower in itertools.pairwise(layers):
        pos = {v: k for k, v in enumerate(lower)}
        ends = sorted((k, pos[w]) for k, v in enumerate(upper) for w in verts[v].succs if w in pos)
        # Fenwick tree over lower positions: how many earlier edges end strictly further down.
        tree = [0] * (len(lower) + 1)
        for seen, (_, b) in enumerate(ends):
            i, not_above = b + 1, 0
            while i > 0:
                not_above += tree[i]
                i -= i & -i
            total += seen - not_above
            i = b + 1
            while i <= len(lower):
                tree[i] += 1
                i += i & -i
    return total


def _rank_positions(verts: list[_Vertex], layers: list[list[int]]) -> dict[int, float]:
    xs: dict[int, float] = {}
    left = MARGIN
    for layer in layers:
        widest = max(verts[v].width for v in layer)
        for v in layer:
            xs[v] = left + widest / 2
        left += widest + RANK_GAP
    return xs


def _order_positions(verts: list[_Vertex], layers: list[list[int]]) -> dict[int, float]:
    ys: dict[int, float] = {}
    for layer in layers:
        _pack(verts, layer, ys, {v: 0.0 for v in layer})
    # Pull each node towards the mean of its neighbours, alternating direction, so chains run
    # straight and fans centre on their source; packing keeps order and spacing.
    for sweep in range(4):
        down = sweep % 2 == 0
        for layer in layers if down else reversed(layers):
            wanted: dict[int, float] = {}
            for v in layer:
                near = [ys[w] for w in (verts[v].preds if down else verts[v].succs)]
                wanted[v] = sum(near) / len(near) if near else ys[v]
            _pack(verts, layer, ys, wanted)
    top = min((ys[v] - verts[v].height / 2 for v in ys), default=0.0)
    return {v: y - top + MARGIN for v, y in ys.items()}


def _pack(
    verts: list[_Vertex], layer: list[int], ys: dict[int, float], wanted: dict[int, float]
) -> None:
    """Place a layer's nodes in order, as near their wanted positions as spacing allows."""
    placed: list[float] = []
    for k, v in enumerate(layer):
        y = wanted[v]
        if k:
            prev = layer[k - 1]
            y = max(y, placed[-1] + (verts[prev].height + verts[v].height) / 2 + NODE_GAP)
        placed.append(y)
    # Packing only pushes down; shift back so the layer sits on average where it was wanted.
    shift = sum(wanted[v] - y for v, y in zip(layer, placed, strict=True)) / max(1, len(layer))
    for v, y in zip(layer, placed, strict=True):
        ys[v] = y + shift


def _bezier(points: list[Point]) -> list[Point]:
    """A smooth horizontal S-curve through the points: control points at mid-x."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        mid = (x0 + x1) / 2
        out += [(mid, y0), (mid, y1), (x1, y1)]
    return out
