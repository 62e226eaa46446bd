"""Node positions for the DAG: graphviz's ``dot`` when it is on PATH, else the built-in layout.

The front end only draws: all geometry is decided here, in the same units (SVG pixels) for
both engines, with edges as cubic Bezier control points (3k+1 of them).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence

from .layered import Box, Layout, Point, layered_layout

log = logging.getLogger("labloom")

_POINTS_PER_INCH = 72.0
DOT_TIMEOUT = 20.0
# dot's network simplex grows quickly with size; past this the built-in layout answers faster.
DOT_MAX_NODES = 400


def dot_path() -> str | None:
    return shutil.which("dot")


def layout(boxes: Sequence[Box], edges: Sequence[tuple[str, str]], engine: str = "auto") -> Layout:
    """Lay out ``boxes`` left to right. ``engine``: "auto", "dot" or "builtin".

    "auto" uses dot when installed (and the graph is not huge) and falls back to the built-in
    layout if dot is missing or fails; "dot" raises instead of falling back.
    """
    if engine not in ("auto", "dot", "builtin"):
        raise ValueError(f"[labloom] unknown layout engine {engine!r}; use auto, dot or builtin")
    dot = dot_path()
    if engine == "dot" or (engine == "auto" and dot and 0 < len(boxes) <= DOT_MAX_NODES):
        if dot is None:
            raise FileNotFoundError("[labloom] graphviz's `dot` is not on PATH")
        try:
            return dot_layout(boxes, edges, dot)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            if engine == "dot":
                raise
            log.debug("[labloom] dot layout failed (%s); using the built-in layout", exc)
    return layered_layout(boxes, edges)


def dot_source(boxes: Sequence[Box], edges: Sequence[tuple[str, str]], labels: bool = False) -> str:
    """DOT text for the graph. Nodes are named n0, n1... so no user text needs quoting rules,
    except labels (for ``visualize``), which are escaped."""
    index = {b.id: i for i, b in enumerate(boxes)}
    lines = [
        "digraph labloom {",
        '  graph [rankdir=LR, nodesep=0.3, ranksep=0.7, fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica",'
        ' fontsize=11, fillcolor="#f4f4f5", color="#71717a"];',
        '  edge [color="#71717a", arrowsize=0.7];',
    ]
    for i, b in enumerate(boxes):
        size = f"width={b.width / _POINTS_PER_INCH:.3f}, height={b.height / _POINTS_PER_INCH:.3f}"
        # The widget needs exact sizes; a drawing for people lets long names widen their box.
        label = f"label={_quote(b.label or b.id)}" if labels else 'fixedsize=true, label=""'
        lines.append(f"  n{i} [{size}, {label}];")
    for u, v in edges:
        if u in index and v in index:
            lines.append(f"  n{index[u]} -> n{index[v]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot_layout(boxes: Sequence[Box], edges: Sequence[tuple[str, str]], dot: str) -> Layout:
    # Not ``graphviz.pipe`` (which ``visualize`` uses): it takes no timeout, and a layout for a
    # live widget must give up on a stuck ``dot`` rather than freeze the view.
    done = subprocess.run(
        [dot, "-Tplain"],
        input=dot_source(boxes, edges),
        capture_output=True,
        text=True,
        timeout=DOT_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise ValueError(f"dot exited with {done.returncode}: {done.stderr.strip()[:200]}")
    return parse_plain(done.stdout, boxes, edges)


def parse_plain(text: str, boxes: Sequence[Box], edges: Sequence[tuple[str, str]]) -> Layout:
    """Read ``dot -Tplain`` output (inches, y upwards) into pixels with y downwards."""
    height = 0.0
    width = 0.0
    by_name: dict[str, Point] = {}
    curves: dict[tuple[str, str], list[Point]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "graph":
            width, height = float(parts[2]) * _POINTS_PER_INCH, float(parts[3]) * _POINTS_PER_INCH
        elif parts[0] == "node":
            by_name[parts[1]] = _point(parts[2], parts[3], height)
        elif parts[0] == "edge":
            n = int(parts[3])
            coords = parts[4 : 4 + 2 * n]
            pts = [_point(coords[2 * k], coords[2 * k + 1], height) for k in range(n)]
            curves.setdefault((parts[1], parts[2]), pts)
    names = {b.id: f"n{i}" for i, b in enumerate(boxes)}
    if len(by_name) != len(boxes):
        raise ValueError("dot output does not place every node")
    centres = {b.id: by_name[names[b.id]] for b in boxes}
    drawn = [
        curves.get((names[u], names[v]), []) if u in names and v in names else [] for u, v in edges
    ]
    return Layout(centres, drawn, width, height, "dot")


def _point(x: str, y: str, height: float) -> Point:
    return (round(float(x) * _POINTS_PER_INCH, 1), round(height - float(y) * _POINTS_PER_INCH, 1))
