"""A running run's cell output once labloom's Lab extension says it draws the live widget (the
``{"event": "hosted"}`` message from js/src/cellrun.ts): the output drops the widget view at
once and its summary is refreshed at most every ``SUMMARY_EVERY`` seconds while the run goes,
so a notebook saved mid-run (or whose kernel is killed) shows the tasks' states offline. Without
that message (VS Code, nbclient) the first output keeps the widget view until the run's end.
The browser test is tests/test_widget_saved_midrun_browser.py."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from labloom.core.states import State
from test_widget_export import RUN_MIME, WIDGET_VIEW
from widget_helpers import FakeRun, ManualClock, finished, small_flow, state


@contextlib.contextmanager
def _shown(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeRun, ManualClock, Any, Any]]:
    """A running run's widget shown (its outputs captured), on a clock the test advances."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from labloom.notebook.widget import widget_for

    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # see test_widget_anywidget
    InteractiveShell.instance()
    run, clock = FakeRun(), ManualClock()
    run.emit(*small_flow())
    widget = widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin")
    try:
        with capture_output() as captured:
            widget.show()
            yield run, clock, widget, captured
    finally:
        widget.close()


def test_a_hosted_widgets_output_drops_its_view_and_keeps_its_summary_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from labloom.notebook.widget.anywidget import SUMMARY_EVERY

    with _shown(monkeypatch) as (run, clock, widget, captured):
        widget._on_message(widget, {"event": "hosted"}, [])
        clock.advance(0)
        assert len(captured.outputs) == 2
        hosted = captured.outputs[1]
        assert hosted.update and WIDGET_VIEW not in hosted.data
        assert hosted.data[RUN_MIME]["model_id"] == widget.model_id
        run.emit(state("n-train-1", State.COMPLETED))
        clock.advance(SUMMARY_EVERY / 2)
        assert len(captured.outputs) == 2  # throttled: not every frame
        clock.advance(SUMMARY_EVERY)
        assert len(captured.outputs) == 3
        assert 'data-state="Completed"' in captured.outputs[2].data["text/html"]
        assert 'data-state="Running"' in captured.outputs[2].data["text/html"].split("</p>")[0]
        run.emit(finished(State.COMPLETED, 111.0))
        clock.advance(SUMMARY_EVERY * 2)
        last = captured.outputs[-1]
    assert WIDGET_VIEW not in last.data
    assert 'data-state="Completed"' in last.data["text/html"].split("</p>")[0]


def test_a_widget_not_hosted_keeps_its_first_output_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _shown(monkeypatch) as (run, clock, _widget, captured):
        run.emit(state("n-train-1", State.COMPLETED))
        clock.advance(60)
        [first] = captured.outputs  # the widget view, for front ends that draw only it
    assert WIDGET_VIEW in first.data
