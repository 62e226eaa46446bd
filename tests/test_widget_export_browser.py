"""A notebook saved in a real JupyterLab with Settings > Save Widget State Automatically on,
exported by the real `jupyter nbconvert`, and the page opened with no network.

Lab saves every live widget model in the notebook; nbconvert then drew the `%%flow` cell's
widget view (with a widget manager from a CDN) instead of its summary: nothing, offline. A
finished run's output holds no widget view now (test_widget_export.py), and Lab still shows the
live widget in the cell, from the model id in labloom's type (js/src/cellrun.ts).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import wait_for
from lab_helpers import (
    cell_widget,
    in_state,
    open_notebook,
    shot,
    wait_for_idle_kernel,
    wait_or_shot,
)
from test_widget_export import RUN_MIME, WIDGET_STATE, WIDGET_VIEW, offline, shown_task_names
from test_widget_reopen_browser import CELLS, save_widget_state, whole_notebook

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]


def saved_run(path: Path) -> dict[str, Any] | None:
    """The flow cell's saved run output, once the notebook holds its finished run and the
    widgets' state."""
    nb = whole_notebook(path)
    if not nb or WIDGET_STATE not in json.dumps(nb.get("metadata", {})):
        return None
    shown = [o["data"] for o in nb["cells"][2]["outputs"] if RUN_MIME in o.get("data", {})]
    return shown[0] if shown and 'data-state="Completed"' in "".join(shown[0]["text/html"]) else None


def test_a_notebook_saved_with_its_widget_state_exports_the_runs_summary(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    _url, folder = lab
    save_widget_state(tmp_path)
    open_notebook(page, lab, "saved.ipynb", CELLS)
    live = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, live, "Completed"), "failed-export-live", timeout=90)
    wait_for_idle_kernel(page)
    page.keyboard.press("Control+s")
    path = folder / "saved.ipynb"
    data = wait_for(lambda: saved_run(path), 30, "the notebook saved with its widgets' state")
    saved_state = whole_notebook(path)["metadata"]["widgets"][WIDGET_STATE]["state"]  # type: ignore[index]
    assert data[RUN_MIME]["model_id"] in saved_state  # Lab saved the widget's model
    assert WIDGET_VIEW not in data

    # In Lab the cell still shows the live widget, the kernel answering its clicks: not the
    # store's drawing of the run (what a cell without a live model shows).
    cell = page.locator(".jp-CodeCell").nth(2)
    assert cell.locator(".labloom-CellRun").count() == 0
    live.locator('g.labloom-node[data-node-id="n0"]').click()
    live.locator(".labloom-log-line", has_text="log line 1").wait_for(timeout=20_000)
    assert cell.locator(".labloom-CellRun").count() == 0

    with exported_offline(page, path) as (exported, html):
        assert shown_task_names(exported, html, 2) == ["step", "step-2"]
        shot(exported, "export-saved-in-lab", exported.locator(".jp-Cell").nth(2))


@contextlib.contextmanager
def exported_offline(page: Any, path: Path) -> Iterator[tuple[Any, Path]]:
    """The notebook at ``path`` exported by the real `jupyter nbconvert` (no widget view in
    it), and a new page of ``page``'s browser that reaches no network, to open it in."""
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                           str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    html = path.with_suffix(".html")
    assert f'<script type="{WIDGET_VIEW}">' not in html.read_text()
    exported = page.context.new_page()
    try:
        offline(exported)
        yield exported, html
    finally:
        exported.close()
