"""A run's graph as JSON for a front end: node boxes with positions and edges with curves.

The same payload feeds the notebook widget's ``graph`` trait and the Lab run view
(``GET labloom/api/runs/{id}``), so the one DAG renderer (``js/src/dag.js``) draws both.
"""

from __future__ import annotations

from typing import Any

from .layered import Box
from .layout import layout
from .model import ViewGraph

NODE_WIDTH = 168.0
TASK_HEIGHT = 40.0
MAP_HEIGHT = 54.0  # room for the progress bar


def graph_payload(graph: ViewGraph, engine: str = "auto") -> dict[str, Any]:
    return lay_out(graph_shape(graph), engine)


def graph_shape(graph: ViewGraph) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """What the layout needs, copied: a view takes it under its lock and lays it out (which
    may run ``dot``) after letting go."""
    return [(n.id, n.name, n.kind) for n in graph.nodes.values()], list(graph.edges())


def lay_out(
    shape: tuple[list[tuple[str, str, str]], list[tuple[str, str]]], engine: str = "auto"
) -> dict[str, Any]:
    nodes, edges = shape
    boxes = [Box(i, NODE_WIDTH, MAP_HEIGHT if kind == "map" else TASK_HEIGHT) for i, _, kind in nodes]
    laid = layout(boxes, edges, engine)
    return {
        "nodes": [
            {
                "id": node_id,
                "name": name,
                "kind": kind,
                "x": round(laid.centres[node_id][0], 1),
                "y": round(laid.centres[node_id][1], 1),
                "w": b.width,
                "h": b.height,
            }
            for (node_id, name, kind), b in zip(nodes, boxes, strict=True)
        ],
        "edges": [
            {"source": u, "target": v, "points": [[round(x, 1), round(y, 1)] for x, y in pts]}
            for (u, v), pts in zip(edges, laid.edges, strict=True)
        ],
        "width": round(laid.width, 1),
        "height": round(laid.height, 1),
        "engine": laid.engine,
    }
