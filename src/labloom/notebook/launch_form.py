"""``Flow.launcher()``: a form with one input per parameter, a Run button, the live DAG below.
(Not the engine's ``Launcher`` in ``core/launching.py``, which submits task runs.)"""

from __future__ import annotations

import ast
import inspect
from typing import Any

import ipywidgets as w

from ..core.bidi import escape_bidi


def _kind(param: inspect.Parameter) -> type | None:
    """The type an input should have: the annotation if it is a simple one, else the default's."""
    annotation = param.annotation
    if isinstance(annotation, str):  # from __future__ import annotations
        annotation = {"int": int, "float": float, "str": str, "bool": bool}.get(annotation)
    if annotation in (bool, int, float, str):
        return annotation  # type: ignore[no-any-return]
    default = param.default
    if default is not inspect.Parameter.empty and type(default) in (bool, int, float, str):
        return type(default)
    return None


def _input(param: inspect.Parameter) -> w.Widget:
    kind = _kind(param)
    has_default = param.default is not inspect.Parameter.empty
    style = {"description_width": "initial"}
    common: dict[str, Any] = {"description": param.name, "style": style}
    if kind is bool:
        return w.Checkbox(value=bool(param.default) if has_default else False, **common)
    if kind is int:
        return w.IntText(value=param.default if has_default else 0, **common)
    if kind is float:
        return w.FloatText(value=param.default if has_default else 0.0, **common)
    if kind is str:
        return w.Text(value=param.default if has_default else "", **common)
    # Anything else (lists, dicts, ...) is typed as a Python literal.
    return w.Textarea(
        value=repr(param.default) if has_default else "",
        placeholder="a Python literal, e.g. [1, 2, 3]",
        layout=w.Layout(width="60%"),
        **common,
    )


class LaunchForm(w.VBox):  # type: ignore[misc]
    """The form; ``.runs`` holds the runs it started, ``.inputs`` the input widgets by name."""

    def __init__(self, flow: Any, executor: Any = None) -> None:
        self.flow = flow
        self.executor = executor
        self.runs: list[Any] = []
        self.inputs = {p.name: _input(p) for p in flow.signature.parameters.values()}
        self.button = w.Button(description=f"Run {escape_bidi(flow.name)}", button_style="primary",
                               icon="play")
        self.button.add_class("labloom-run")
        self.message = w.HTML()
        self.dag = w.Box()
        self.button.on_click(lambda _button: self.start())
        title = w.HTML(f"<b>{_escape(flow.name)}</b> {_escape(flow.description)}".strip())
        super().__init__([title, *self.inputs.values(), self.button, self.message, self.dag])
        self.add_class("labloom-launcher")

    def values(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, widget in self.inputs.items():
            value = widget.value
            if isinstance(widget, w.Textarea):
                try:
                    value = ast.literal_eval(value) if value.strip() else None
                except (ValueError, SyntaxError) as exc:
                    raise ValueError(
                        f"{name}: {value!r} is not a Python literal ({exc}); "
                        "write it as you would in code, e.g. [1, 2] or {'a': 1}"
                    ) from None
            params[name] = value
        return params

    def start(self) -> Any:
        """What the Run button does; returns the new run (None if the form is invalid)."""
        try:
            params = self.values()
            run = self.flow.run(
                executor=self.executor, background=True, origin="notebook", **params
            )
        except (ValueError, TypeError) as exc:
            self.message.value = f"<span class='labloom-error'>{_escape(str(exc))}</span>"
            return None
        self.message.value = ""
        self.runs.append(run)
        from .comms import route_to_subshell
        from .widget import widget_for

        view = widget_for(run)
        route_to_subshell(view)
        self.dag.children = [view]
        return run


def _escape(text: str) -> str:
    """Escaped for HTML, bidirectional controls too (a name holding U+202E reads reversed),
    as every view shows them (``core/bidi.py``)."""
    import html

    return html.escape(escape_bidi(text))


def launch_form(flow: Any, executor: Any = None) -> LaunchForm:
    return LaunchForm(flow, executor)
