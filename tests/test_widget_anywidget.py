"""The anywidget shell: traits, messages, the static HTML fallback, the shipped ES module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labloom.core.states import State
from labloom.dag.model import ViewGraph
from labloom.notebook.widget import widget_for
from labloom.notebook.widget.html import summary_html
from widget_helpers import FakeRun, ManualClock, finished, map_events, small_flow, state

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run() -> FakeRun:
    r = FakeRun()
    r.emit(*small_flow())
    return r


def make(run: FakeRun) -> tuple[Any, ManualClock]:
    clock = ManualClock()
    return widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin"), clock


def test_widget_mirrors_the_run_in_synced_traits(run: FakeRun) -> None:
    widget, _ = make(run)
    assert [n["id"] for n in widget.graph["nodes"]] == ["n-load", "n-train", "n-best"]
    assert widget.graph["engine"] == "builtin"
    assert widget.states["n-train"]["total"] == 3
    assert widget.header["flow"] == "sweep"
    state_traits = {"graph", "states", "header"}
    assert state_traits <= set(widget.keys)
    widget.close()


def test_trait_updates_are_throttled(run: FakeRun) -> None:
    widget, clock = make(run)
    changes: list[str] = []
    widget.observe(lambda change: changes.append(change["name"]), names=["states"])
    for i in range(300):
        run.emit(*map_events(f"m{i}", f"m{i}", 1) if i == 0 else [])
        run.emit(state("t-best", State.RUNNING if i % 2 else State.PENDING))
    clock.advance(0)
    assert widget.pushes == 2 and changes == ["states"]
    for _ in range(50):
        run.emit(state("t-best", State.RUNNING), state("t-best", State.RETRYING))
        clock.advance(0.01)
    clock.advance(1)
    assert widget.pushes <= 2 + 6
    assert widget.states["n-best"]["state"] == "Retrying"
    widget.close()


def test_front_end_messages_reach_the_run(run: FakeRun) -> None:
    widget, _ = make(run)
    # What ipywidgets does with a custom message from the browser.
    widget._handle_custom_msg({"event": "cancel"}, [])
    widget._handle_custom_msg({"event": "retry"}, [])
    widget.view.join_actions(5)
    assert sorted(run.calls) == ["cancel", "retry"]
    widget.close()


def test_mimebundle_has_the_widget_view_and_a_static_summary(run: FakeRun) -> None:
    widget, _ = make(run)
    data, _metadata = widget._repr_mimebundle_()
    assert data[WIDGET_MIME]["model_id"] == widget.model_id
    # For labloom's Lab extension: the run, once no kernel holds the widget's model.
    assert data["application/vnd.labloom.run+json"] == {"run_id": run.id}
    html = data["text/html"]
    assert '<tr data-node-id="n-train">' in html
    assert "<td>2/3</td>" in html and "1 Completed, 1 Failed, 1 Running" in html
    assert 'href="http://127.0.0.1:8787/status"' in html
    widget.close()


def test_nbconvert_shows_the_summary_not_the_lab_extensions_run_id(run: FakeRun) -> None:
    """The bundle's labloom type is for the Lab extension alone: an HTML export (and GitHub,
    which renders alike) still shows the summary."""
    import nbformat
    from nbconvert import HTMLExporter

    widget, _ = make(run)
    data, metadata = widget._repr_mimebundle_()
    widget.close()
    output = nbformat.v4.new_output("display_data", data=data, metadata=metadata)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%flow sweep",
                                                                         outputs=[output])])
    body, _resources = HTMLExporter().from_notebook_node(notebook)
    assert '<tr data-node-id="n-train">' in body
    assert "vnd.labloom.run" not in body


def test_summary_is_per_node_and_escapes_user_text() -> None:
    r = FakeRun()
    r.emit(*small_flow())
    r.emit(*map_events("big", "<script>alert(1)</script>", 10_000), finished(State.FAILED))
    graph = ViewGraph()
    graph.apply(r.bus.history)
    html = summary_html(graph, now=200.0)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<tr data-node-id=") == 4
    assert 'data-state="Failed"' in html and "0/10000" in html
    assert len(html) < 5000


def test_the_widget_sends_the_renderer_the_lab_run_view_bundles(run: FakeRun) -> None:
    from labloom.notebook.widget.anywidget import asset

    js = asset("widget.js").read_text()
    assert "labloom-log-line" in js and "labloom-cancel" in js and "labloom-timeline" in js
    # js/src/dag.js bundled (esbuild) with the charting library: one self-contained ES module
    # that imports nothing, so a notebook with no internet draws it.
    assert asset("widget.js") == ROOT / "src" / "labloom" / "notebook" / "widget" / "static" / (
        "widget.js")
    assert "export{" in js.replace(" ", "") and "import " not in js and "from\"" not in js
    # The renderer as the default export only: anywidget warns in the browser console, for
    # every widget shown, when the module also exports `render` by name (a Deprecation Warning).
    [exported] = re.findall(r"export\s*\{([^}]*)\}", js)
    assert [name.split(" as ")[-1].strip() for name in exported.split(",")] == ["default"]
    assert "https://" not in js  # nothing is fetched from a CDN
    assert asset("widget.css").read_bytes() == (ROOT / "js" / "style" / "dag.css").read_bytes()
    widget, _ = make(run)
    assert widget._esm == js
    widget.close()


def test_importing_the_widget_package_does_not_import_anywidget() -> None:
    code = (
        "import sys, labloom.notebook.widget, labloom.notebook.widget.view; "
        "bad = [m for m in ('anywidget', 'ipywidgets', 'IPython') if m in sys.modules]; "
        "assert not bad, bad"
    )
    src = str(Path(__file__).parents[1] / "src")
    done = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": src}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """An IPython shell, for ``display``."""
    from IPython.core.interactiveshell import InteractiveShell

    # The shell installs a __main__ without __spec__: put the real one back afterwards, or
    # the Dask worker processes a later test spawns fail to start.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    InteractiveShell.instance()


def test_show_refreshes_the_saved_output_when_the_run_ends(run: FakeRun, shell: None) -> None:
    from IPython.utils.capture import capture_output

    widget, clock = make(run)
    with capture_output() as captured:
        widget.show()
        run.emit(state("n-train-1", State.COMPLETED), state("t-best", State.COMPLETED))
        clock.advance(1)
        assert len(captured.outputs) == 1  # no refresh while the run goes on
        run.emit(finished(State.FAILED, 111.0))
        clock.advance(1)
        clock.advance(1)
    first, last = captured.outputs
    assert WIDGET_MIME in first.data and 'data-state="Running"' in first.data["text/html"]
    assert last.update and last.transient == first.transient
    assert (
        '<strong>sweep</strong> <code>run-1</code> <span class="labloom-state" '
        in (last.data["text/html"])
    )
    assert 'data-state="Failed"' in last.data["text/html"].split("</p>")[0]
    widget.close()


def test_the_cells_last_flush_refreshes_an_end_the_timer_saw_first(
    run: FakeRun, shell: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The view's timer saw the end first, and its refresh had not gone out yet (a loaded
    # machine) as the %%flow cell sent its last frame: before, the cell's flush found the end
    # already seen and refreshed nothing; the timer's refresh left after the cell ended, which
    # nbclient no longer read (the saved output kept the widget view of a running run).
    from IPython.utils.capture import capture_output

    widget, clock = make(run)
    with capture_output() as captured:
        widget.show()
        run.emit(finished(State.COMPLETED, 111.0))
        with monkeypatch.context() as late:  # the timer's frame; its refresh still to come
            late.setattr(widget.view, "_on_finished", lambda: None)
            clock.advance(1)
        assert widget.view.finished and len(captured.outputs) == 1
        widget.flush()  # the cell's last frame (magics._final_frame)
    first, last = captured.outputs
    assert last.update and last.transient == first.transient
    assert WIDGET_MIME not in last.data
    assert 'data-state="Completed"' in last.data["text/html"].split("</p>")[0]
    widget.close()
