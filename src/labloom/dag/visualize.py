"""``Flow.visualize``: the static DAG drawn by graphviz (through the ``graphviz`` package), as SVG
or any format dot writes. The live widget's layout (``layout.py``) calls ``dot`` itself, for
the timeout the package cannot give."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.errors import GraphvizNotFound
from .layered import Box
from .layout import dot_path, dot_source

INSTALL_HINT = (
    "install graphviz (`apt-get install graphviz`, `conda install graphviz` or "
    "`brew install graphviz`) so that `dot` is on PATH"
)


class DagSVG:
    """An SVG drawing that notebooks show inline (``_repr_svg_``); ``str()`` gives the text."""

    def __init__(self, svg: str) -> None:
        self.svg = svg

    def _repr_svg_(self) -> str:
        return self.svg

    def __str__(self) -> str:
        return self.svg


def _field(node: Any, name: str, default: Any = None) -> Any:
    if isinstance(node, Mapping):
        return node.get(name, default)
    return getattr(node, name, default)


def visualize(graph_nodes: Iterable[Any], filename: str | os.PathLike[str] | None = None) -> DagSVG:
    """Draw the nodes of a flow's graph with graphviz.

    ``graph_nodes`` are ``NodeCreated`` events or anything with ``node_id``, ``name``, ``kind``
    and ``upstream`` (attributes or mapping keys). With ``filename`` the drawing is also written
    there, in the format its suffix names (``.svg``, ``.png``, ``.pdf``).

    >>> visualize([{"node_id": "a", "name": "load", "upstream": ()}])  # doctest: +SKIP
    """
    if dot_path() is None:
        raise GraphvizNotFound(f"[labloom] Flow.visualize needs graphviz's `dot`: {INSTALL_HINT}.")
    boxes: list[Box] = []
    edges: list[tuple[str, str]] = []
    for node in graph_nodes:
        node_id = str(_field(node, "node_id"))
        name = str(_field(node, "name", node_id))
        kind = _field(node, "kind", "task")
        boxes.append(Box(node_id, 144.0, 40.0, f"{name} [map]" if kind == "map" else name))
        edges += [(str(u), node_id) for u in _field(node, "upstream", ()) or ()]
    source = dot_source(boxes, edges, labels=True)
    svg = _run_dot("svg", source).decode()
    if filename is not None:
        fmt = os.path.splitext(filename)[1].lstrip(".").lower() or "svg"
        data = svg.encode() if fmt == "svg" else _run_dot(fmt, source)
        with open(filename, "wb") as out:
            out.write(data)
    return DagSVG(svg)


def _run_dot(fmt: str, source: str) -> bytes:
    import graphviz

    try:
        drawn: bytes = graphviz.pipe("dot", fmt, source.encode(), quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound(
            f"[labloom] Flow.visualize needs graphviz's `dot`: {INSTALL_HINT}."
        ) from None
    except graphviz.CalledProcessError as exc:
        message = (exc.stderr or b"").decode(errors="replace").strip()
        raise RuntimeError(f"[labloom] graphviz `dot -T{fmt}` failed: {message}") from None
    return drawn
