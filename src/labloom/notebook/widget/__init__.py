"""The Jupyter view of a run: a live DAG widget, its static HTML fallback, and ``visualize``.

Nothing here is imported by ``import labloom``; anywidget is imported only by ``widget_for``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core.errors import GraphvizNotFound
from ...dag.visualize import DagSVG, visualize

if TYPE_CHECKING:
    from .anywidget import RunWidget
    from .view import RunHandle

__all__ = ["DagSVG", "GraphvizNotFound", "visualize", "widget_for"]


def widget_for(run: RunHandle, **options: Any) -> RunWidget:
    """The live DAG widget for ``run`` (what ``FlowRun.widget()`` returns).

    ``run`` needs ``subscribe(callback, replay=True) -> unsubscribe``, ``cancel()`` and
    ``retry()``. Options go to ``RunView`` (``layout_engine="builtin"``, ``interval``...).
    """
    try:
        from .anywidget import RunWidget
    except ImportError as exc:
        raise ImportError(
            "[labloom] the live DAG widget needs anywidget and ipywidgets: "
            "pip install 'labloom[jupyter]'"
        ) from exc
    return RunWidget(run, **options)
