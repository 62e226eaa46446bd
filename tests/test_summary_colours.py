"""The static HTML summary a `%%flow` cell's output keeps (for nbconvert and GitHub, where no
widget renders): each state's name readable, at 4.5:1 or more, on white and on a dark page.

Before, each state's text had one fixed colour and lay on the page: Completed green read 2.3:1
on white, Cached 2.5:1, UpstreamFailed 2.8:1, Failed 3.8:1. No single text colour can read
4.5:1 on both white and a dark page, so a badge brings its own white ground and takes the light
theme's shade of the one palette (dag.css, as palette.py reads it).

The notebook is run by a real kernel (nbclient), exported by the real `jupyter nbconvert`
(light, and `--theme dark`), and the export opened in headless Chromium: the browser says what
each badge's text is drawn on after nbconvert's stylesheets (a table row's stripe, the dark
theme's page), which the emitted colours alone do not tell.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from lab_helpers import CHROMIUM_ARGS, shot
from labloom.core.states import State
from labloom.dag.model import ViewGraph
from labloom.notebook.widget.html import BADGE_GROUND, summary_html
from labloom.notebook.widget.palette import light_marks
from system_programs import require_program
from test_lab_state_colours import compose, ratio, rgba
from widget_helpers import finished, node, run_created, run_state, state, task_run

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    "%load_ext labloom",
    '''%%tasks
from labloom import task

@task(cache=True)
def load():
    return 1

@task
def check(x):
    if x == 2:
        raise ValueError("row 2 is malformed")
    return x

@task
def report(a, b):
    return a
''',
    "%%flow nightly --executor threads\nchecked = check.map(range(3))\nr = report(load(), check(2))\n",
    "%%flow nightly --executor threads\nchecked = check.map(range(3))\nr = report(load(), check(2))\n",
]

# Each state badge as drawn: [state, text colour, its ground, the page under it, opaque?].
BADGES = """() => {
  const painted = e => {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  return [...document.querySelectorAll('.labloom-summary .labloom-state')].map(b => [
    b.dataset.state, getComputedStyle(b).color, painted(b), painted(b.parentElement),
    getComputedStyle(b).borderLeftColor]);
}"""


def hex_of(colour: str) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgba(colour)[:3])


@pytest.fixture
def executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The notebook as a real kernel leaves it: the second run's `load` Cached, `check[2]`
    Failed, `report` UpstreamFailed, the run Failed (its cell raises). Saved without the
    widgets' state, as JupyterLab saves a notebook by default (test_widget_export.py exports
    one saved with it)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=240, kernel_name="python3", allow_errors=True,
                   store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "nightly.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=require_program("chromium"),
                                     args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium.new_context(viewport={"width": 1200, "height": 900}).new_page()
        finally:
            chromium.close()


def export(notebook: Path, theme: str) -> Path:
    out = notebook.with_name(f"{notebook.stem}-{theme}.html")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", f"--theme={theme}",
         f"--output={out.name}", str(notebook)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_every_state_s_badge_reads_on_a_white_and_a_dark_page() -> None:
    """Computed from the colours the summary emits, for every state (a finished run shows only
    some): a badge's text on its own ground, or on the page when it brings none. The browser
    test below shows what lies under a badge in nbconvert's pages."""
    events = [run_created(), run_state(State.RUNNING)]
    for st in State:
        events += [node(f"n-{st.value}", st.value), task_run(f"t-{st.value}", f"n-{st.value}",
                                                             st.value), state(f"t-{st.value}", st)]
    graph = ViewGraph()
    graph.apply([*events, finished(State.CRASHED)])
    badges = re.findall(r'class="labloom-state" data-state="(\w+)" style="([^"]*)"',
                        summary_html(graph, now=200.0))
    assert {st for st, _style in badges} == {st.value for st in State}
    low = {}
    for page in ("#ffffff", "#111111"):  # GitHub's and nbconvert's light page; a dark one
        for st, style in badges:
            declared = dict(d.split(":", 1) for d in style.split(";") if d)
            ground = rgba(declared.get("background", page))[:3]
            shown = ratio(rgba(declared["color"])[:3], ground)
            if shown < 4.5:
                low[f"{st} on {page}"] = round(shown, 2)
    assert low == {}, low


@pytest.mark.browser
@pytest.mark.needs("chromium")
def test_the_exported_summary_s_states_read_on_a_light_and_a_dark_page(
    executed: Path, browser: Any
) -> None:
    marks = light_marks()
    for theme, page_is_dark in (("light", False), ("dark", True)):
        html = export(executed, theme)
        # Only the page's own file: nbconvert's page asks CDNs for require.js and MathJax.
        browser.goto(html.as_uri(), wait_until="domcontentloaded")
        badges = browser.evaluate(BADGES)
        shown = {state for state, *_ in badges}
        assert {"Completed", "Cached", "Failed", "UpstreamFailed"} <= shown, (theme, shown)
        low = {}
        for shade, text, ground, page, edge in badges:
            seen = compose([text, ground])
            if ratio(seen, compose([ground])) < 4.5:
                low[shade] = round(ratio(seen, compose([ground])), 2)
            # The palette's light shade, on the badge's own white, whatever the page.
            assert (hex_of(text), hex_of(edge), hex_of(ground)) == (
                marks[State(shade)], marks[State(shade)], BADGE_GROUND), (theme, shade)
            assert (ratio(compose([page]), (255, 255, 255)) > 10) is page_is_dark, (theme, page)
        assert low == {}, (theme, low)
        shot(browser, f"summary-colours-{theme}", browser.locator(".labloom-summary").first)
