"""The live DAG widget: a thin anywidget shell around ``RunView``.

Imported only when a widget is asked for, so ``import labloom`` never loads ipywidgets.
"""

from __future__ import annotations

import pathlib
import threading
import time
from typing import Any

import anywidget
import traitlets

from ...core.errors import LabloomError
from ...dag.model import ViewGraph
from . import last_frames
from .drawing import dag_svg
from .html import summary_html
from .palette import stylesheet
from .throttle import Throttle
from .view import Payload, RunHandle, RunView

_HERE = pathlib.Path(__file__).resolve().parent
RUN_MIME = "application/vnd.labloom.run+json"  # in step with js/src/cellrun.ts
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# Seconds between refreshes of a running run's saved output (its summary) once labloom's Lab
# extension draws it: a notebook saved meanwhile, or whose kernel is killed, keeps one this old.
SUMMARY_EVERY = 2.0


def asset(name: str) -> pathlib.Path:
    """The widget's ``widget.js`` or ``widget.css``, from ``static/``.

    ``widget.js`` is a build output: the DAG renderer (js/src/dag.js, as js/src/cellwidget.js
    exports it: the default export only) bundled with its charting library, written there by
    the JS build (``cd js && jlpm build``, which ``pip install .`` and ``pip install -e .``
    run). ``widget.css`` is the stylesheet (``palette.stylesheet``)."""
    if name == "widget.css":
        return stylesheet()
    packaged = _HERE / "static" / name
    if packaged.is_file():
        return packaged
    if name == "widget.js":
        raise LabloomError(
            f"[labloom] the cell widget's module {packaged} is not built: run `cd js && jlpm "
            "install && jlpm build` in labloom's source folder (or `pip install -e .`, which "
            "builds it)"
        )
    raise LabloomError(f"[labloom] the cell widget has no asset {name!r}")


class RunWidget(anywidget.AnyWidget):
    """Shows one flow run as a DAG; synced traits carry only per-node data."""

    _esm = asset("widget.js")
    _css = asset("widget.css")

    graph = traitlets.Dict().tag(sync=True)  # nodes with positions, edges with curves
    states = traitlets.Dict().tag(sync=True)  # node id -> state, counts, total
    header = traitlets.Dict().tag(sync=True)  # run state, times, counts, dashboard link

    def __init__(self, run: RunHandle, **view_options: Any) -> None:
        super().__init__()
        self.pushes = 0  # trait updates sent so far (each is one comm message)
        self._displays: list[Any] = []  # the display handle of each output showing it
        self._hosted = False  # labloom's Lab extension draws it (``_on_message``)
        self._refreshing = threading.Lock()  # outputs refreshed in the order they were made
        self._summaries = Throttle(self._refresh_display, SUMMARY_EVERY,
                                   clock=view_options.get("clock", time.monotonic),
                                   schedule=view_options.get("schedule"))
        view_options.setdefault("on_finished", self._refresh_display)
        self.view = RunView(run, self._push, self._reply, **view_options)
        self.on_msg(self._on_message)
        self.view.start()

    def show(self) -> None:
        """Display the widget in the current cell output.

        When the run ends the same output is refreshed, so a notebook saved afterwards (or run
        by nbclient) holds the final HTML summary, not the one from when the run started.
        """
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        if bundle is None:  # no view to show (ipywidgets: a widget without a view name)
            return
        # Raw: ``display(self)`` would come back here, through ``_ipython_display_``.
        handle = display(bundle[0], metadata=bundle[1], raw=True, display_id=True)  # type: ignore[no-untyped-call]
        self._displays.append(handle)
        last_frames.remember(self)
        # A quick run may be over before it is shown: its end found no display to refresh.
        # Its last frame and the refresh come now, in this cell (``flush``), not from the
        # widget's timer once the cell is done (nbclient listens no more by then).
        self.flush()

    def _ipython_display_(self) -> None:
        # What IPython calls for the widget as a cell's last expression, or given to
        # ``display``: without it, that output kept the widget view when the run was over (no
        # display id to refresh it by), and exported blank offline (``finished_bundle``).
        self.show()

    def _refresh_display(self) -> None:
        # One at a time: a summary refresh made before the run's end, sent after the end's,
        # would leave the output (and a notebook saved then) showing it Running.
        with self._refreshing:
            for handle in list(self._displays):  # every output showing it: shown twice, again
                self._refresh(handle)

    def _refresh(self, handle: Any) -> None:
        bundle = self.finished_bundle()
        if bundle is not None:
            handle.update(bundle[0], metadata=bundle[1], raw=True)

    def _push(self, payload: Payload) -> None:
        self.pushes += 1
        if self._hosted:
            self._summaries.request()
        # One comm message for all the traits that changed in this frame.
        with self.hold_sync():
            for name, value in payload.items():
                setattr(self, name, value)

    def _reply(self, content: Payload) -> None:
        self.send(content)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "hosted":
            # labloom's Lab extension draws the live widget from the model id in labloom's
            # type (js/src/cellrun.ts): the output can drop the widget view now, not only
            # once the run is over, and keep its summary current. Saved mid-run (or its
            # kernel killed), the notebook held the widget view, which exports blank offline,
            # beside the summary drawn as the run started.
            self._hosted = True
            self._summaries.request()
        elif isinstance(content, dict):
            self.view.handle(content)

    def flush(self) -> None:
        """Send what changed now rather than at the next frame (the end of a %%flow cell); a
        finished run's outputs refreshed to its final summary here, in the caller's cell. The
        end seen by the view's timer first refreshes them from that thread, and on a loaded
        machine that message could leave after the cell ended: nbclient had moved on to the
        next cell, and a notebook it saved kept the widget view of a running run."""
        self.view.flush()
        if self.view.finished:
            self._refresh_display()  # (again, when the timer's was sent in time: the same)

    def close(self) -> None:
        last_frames.forget(self)
        self._summaries.close()
        self.view.close()
        super().close()

    def summary_html(self) -> str:
        return self.view.read(self._summary)

    def _summary(self, graph: ViewGraph) -> str:
        # Under the view's lock: the ``graph`` trait is the layout pushed for this model.
        return summary_html(graph, time.time(), dag_svg(self.graph, graph.states_json()))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        html, run_id = self.view.read(lambda graph: (self._summary(graph), graph.run_id))
        # Where widgets cannot render (nbconvert HTML, GitHub), this summary shows instead. The
        # run's id is for labloom's Lab extension: a notebook saved and opened again with a new
        # kernel has no widget model any more, and the extension draws the run from the store
        # (js/src/cellrun.ts). A run not yet created has no id: then the widget alone.
        data = {**data, "text/html": html}
        if run_id:
            data[RUN_MIME] = {"run_id": run_id}
        return data, metadata

    def finished_bundle(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The output a finished run leaves in the notebook: the bundle without the widget view.

        A notebook saved with its widgets' state (nbclient, `jupyter nbconvert --execute`, Lab's
        "Save Widget State Automatically") holds this widget's model, and nbconvert's HTML (and
        nbviewer) then draws the widget view, with a widget manager and anywidget fetched from a
        CDN: with no network out, nothing at all where the DAG was. Without the view, they show
        the summary. labloom's Lab extension still draws the live widget, from the model id in
        labloom's type (js/src/cellrun.ts); other front ends (VS Code) show the summary once the
        run is over. A run's first output keeps the view: it is what draws the run live, except
        in Lab with labloom's extension, which says so (``_on_message``): there the output is
        this bundle from then on, refreshed every ``SUMMARY_EVERY`` seconds while it runs."""
        bundle = self._repr_mimebundle_()
        if bundle is None:
            return None
        data, metadata = bundle
        if RUN_MIME not in data:  # no run id for the extension to draw: the widget alone
            return data, metadata
        data = {k: v for k, v in data.items() if k != WIDGET_MIME}
        data[RUN_MIME] = {**data[RUN_MIME], "model_id": self.model_id}
        return data, metadata
