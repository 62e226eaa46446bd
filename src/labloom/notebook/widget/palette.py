"""Each task run state's colour, read from the widget's stylesheet.

js/style/dag.css (shipped in a wheel as ``static/widget.css``) holds the one palette: each
state's shade for the light and the dark theme, as ``--labloom-mark``. The live DAG, the Lab
run tab and the timeline take it from there in the browser; the static HTML summary
(``html.py``), which is drawn where no stylesheet of labloom's is loaded, reads the light
theme's shades here, so the colours have no second copy to drift from.
"""

from __future__ import annotations

import functools
import pathlib
import re

from ...core.errors import LabloomError
from ...core.states import State

_HERE = pathlib.Path(__file__).resolve().parent

# The light theme's lines, one state a line; the bare [data-state] one is every other state's
# (Pending's). The dark theme's lines start with body[data-jp-theme-light="false"].
_LIGHT_MARK = re.compile(
    r'^\.labloom-widget \[data-state(?:="(\w+)")?\] \{ --labloom-mark: (#[0-9a-fA-F]{6}); \}$',
    re.MULTILINE,
)


def stylesheet() -> pathlib.Path:
    """The widget's stylesheet: ``static/widget.css`` in a wheel, js/style/dag.css in a source
    checkout (editing the style needs no rebuild)."""
    packaged = _HERE / "static" / "widget.css"
    if packaged.is_file():
        return packaged
    return _HERE.parents[3] / "js" / "style" / "dag.css"


@functools.cache
def light_marks() -> dict[State, str]:
    """Each state's line and text colour on a light (white) background, as ``#rrggbb``."""
    path = stylesheet()
    found = {name: colour for name, colour in _LIGHT_MARK.findall(path.read_text())}
    unknown = sorted(set(found) - {"", *(s.value for s in State)})
    if "" not in found or unknown:
        raise LabloomError(
            f"[labloom] {path} does not give each state's --labloom-mark as expected (a line "
            f'`.labloom-widget [data-state] {{ --labloom-mark: #rrggbb; }}` for the default, '
            f"states spelled as labloom's: unknown {unknown}): restore it from labloom's source"
        )
    return {state: found.get(state.value, found[""]) for state in State}
