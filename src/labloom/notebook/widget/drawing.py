"""The run's DAG as a static SVG, for the HTML summary: what an exported notebook (nbconvert,
nbviewer, GitHub) and a front end without labloom's Lab extension show once the run is over.

Drawn from the payload the live widget draws (``graph``: boxes laid out, edges as cubic
curves; ``states``: per node), as js/src/dag.js draws it, less what needs a script: no clicks,
no stylesheet of labloom's, so every colour is written on the element. Inline SVG in
``text/html`` rather than a bundle's ``image/svg+xml``: nbconvert's HTML export prefers
``text/html``, and one output keeps the drawing above the table.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ...core.bidi import escape_bidi
from ...core.states import State
from .palette import light_marks

EDGE = "#71717a"  # dag.js's arrow colour
NAME_CHARS = 22  # as dag.js clips a box's name


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _curve(points: list[list[float]]) -> str:
    """dag.js's ``curve``: a start point, then cubic Bézier segments of three points each."""
    if not points:
        return ""
    d = f"M{points[0][0]},{points[0][1]}"
    for i in range(1, len(points) - 2, 3):
        (ax, ay), (bx, by), (cx, cy) = points[i : i + 3]
        d += f" C{ax},{ay} {bx},{by} {cx},{cy}"
    return d


def _arrow(points: list[list[float]]) -> str:
    """A head at the edge's end, pointing along its last segment (no marker: a marker's id
    would be shared by every drawing on the exported page)."""
    if len(points) < 2:
        return ""
    (px, py), (x, y) = points[-2], points[-1]
    length = max(((x - px) ** 2 + (y - py) ** 2) ** 0.5, 1e-9)
    ux, uy = (x - px) / length, (y - py) / length
    bx, by = x - 7 * ux, y - 7 * uy
    corners = [(x, y), (bx - 3.5 * uy, by + 3.5 * ux), (bx + 3.5 * uy, by - 3.5 * ux)]
    return " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners)


def _map_progress(done: int, info: dict[str, Any]) -> str:
    """A map node's line under its name, as dag.js's mapProgress says it: ended with some
    children failed, not all, it counts them ("40/40 · 2 failed") rather than say Failed."""
    failed = int(info["counts"].get(State.FAILED.value, 0))
    ended = State(info["state"]).is_final
    what = f"{failed} failed" if ended and 0 < failed < info["total"] else info["state"]
    return f"{done}/{info['total']} · {what}"


def dag_svg(graph: dict[str, Any], states: dict[str, dict[str, Any]]) -> str:
    """The laid-out ``graph`` with each node in its state; "" before anything is laid out."""
    nodes = graph.get("nodes") or []
    if not nodes:
        return ""
    marks = light_marks()
    width, height = float(graph.get("width") or 0) + 8, float(graph.get("height") or 0) + 8
    parts = [
        f'<svg class="labloom-dag-static" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="the run\'s task graph" width="{width:g}" height="{height:g}" '
        f'viewBox="-4 -4 {width:g} {height:g}" style="max-width:100%;height:auto;'
        f'font:12px sans-serif">'
    ]
    for edge in graph.get("edges") or []:
        points = edge.get("points") or []
        parts.append(f'<path d="{_curve(points)}" fill="none" stroke="{EDGE}" stroke-width="1.5"/>'
                     f'<polygon points="{_arrow(points)}" fill="{EDGE}"/>')
    for node in nodes:
        info = states.get(node["id"], {"state": State.PENDING.value, "counts": {}, "total": 0})
        state = State(info["state"])
        colour = marks[state]
        done = sum(n for s, n in info["counts"].items() if State(s).is_final)
        sub = _map_progress(done, info) if node["kind"] == "map" else state.value
        name = escape_bidi(str(node["name"]))  # then clipped, as dag.js does
        x, y = node["x"] - node["w"] / 2, node["y"] - node["h"] / 2
        parts.append(
            f'<g data-node-id="{escape(node["id"], quote=True)}" data-state="{state.value}" '
            f'transform="translate({x:g},{y:g})"><title>{escape(name)}</title>'
            f'<rect width="{node["w"]:g}" height="{node["h"]:g}" rx="6" fill="#ffffff" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="10" y="17" fill="#18181b" font-weight="bold">{escape(_clip(name, NAME_CHARS))}</text>'
            f'<text x="10" y="32" fill="{colour}">{escape(sub)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
