"""A static HTML summary of a run, for places where widgets cannot render.

nbconvert's HTML export and GitHub's notebook preview show ``text/html`` when the widget view
is unavailable, so the saved notebook still says what ran and how it ended.
"""

from __future__ import annotations

from html import escape

from ...core.bidi import escape_bidi
from ...core.states import State
from ...dag.model import ViewGraph
from .palette import light_marks

# Where the summary is shown: GitHub's notebook preview and nbconvert's HTML export (light), but
# also on a dark page: VS Code's dark themes, `jupyter nbconvert --theme dark`. No one text
# colour reads 4.5:1 on both white and a near-black page (it would need a luminance at most 0.18
# for white and at least 0.2 for #111), and no stylesheet of labloom's (nor Lab's variables) is
# there to pick one by theme. So each state's badge brings its own white ground, and its text
# and edge take the light theme's shade (dag.css, palette.py), 4.5:1 or more on white: readable
# on any page. tests/test_summary_colours.py checks it in nbconvert's output in Chromium.
BADGE_GROUND = "#ffffff"


def shown(text: str) -> str:
    """Recorded ``text`` (a name) as HTML shows it: escaped, bidirectional controls too, as the
    live widget and the CLI show them (``core/bidi.py``)."""
    return escape(escape_bidi(text))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _badge(state: State) -> str:
    colour = light_marks()[state]
    return (
        f'<span class="labloom-state" data-state="{state.value}" style="color:{colour};'
        f"background:{BADGE_GROUND};border:1px solid {colour};border-radius:3px;padding:0 4px;"
        f'font-weight:bold">{state.value}</span>'
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {escape(state)}" for state, n in sorted(counts.items()))


def summary_html(graph: ViewGraph, now: float, drawing: str = "") -> str:
    """One header line, the DAG's static ``drawing`` (``drawing.dag_svg``) when given, and a
    table with a row per graph node (never per task run)."""
    head = graph.header_json(now)
    title = shown(head["flow"] or "flow run")
    parts = [
        '<div class="labloom-summary">',
        f"<p><strong>{title}</strong> <code>{shown(head['run_id'])}</code> "
        f"{_badge(graph.state)} &middot; {format_duration(head['elapsed'])} &middot; "
        f"{head['total']} task runs ({_counts(head['counts']) or 'none yet'})",
    ]
    if head["dashboard"]:
        link = escape(str(head["dashboard"]), quote=True)
        parts.append(f' &middot; <a href="{link}" target="_blank">Dask dashboard</a>')
    parts.append("</p>")
    parts.append(drawing)
    parts.append(
        "<table><thead><tr><th>task</th><th>kind</th><th>state</th><th>done</th>"
        "<th>by state</th><th>after</th></tr></thead><tbody>"
    )
    states = graph.states_json()
    for node in graph.nodes.values():
        info = states[node.id]
        done = sum(n for s, n in node.counts.items() if s.is_final)
        upstream = ", ".join(shown(graph.nodes[u].name) for u in node.upstream if u in graph.nodes)
        parts.append(
            f'<tr data-node-id="{escape(node.id, quote=True)}"><td>{shown(node.name)}</td>'
            f"<td>{shown(node.kind)}</td><td>{_badge(State(info['state']))}</td>"
            f"<td>{done}/{node.total}</td><td>{_counts(info['counts'])}</td>"
            f"<td>{upstream}</td></tr>"
        )
    parts.append("</tbody></table></div>")
    return "".join(parts)
