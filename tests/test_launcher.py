"""``Flow.launcher()``: a real ipywidgets form driving real runs."""

from __future__ import annotations

import ipywidgets as w
import pytest

from labloom import State, flow, task


@task
def scale(x: float, factor: float) -> float:
    return x * factor


@flow
def scaled(
    values: list[float], factor: float = 2.0, label: str = "run", repeat: int = 1, dry: bool = False
) -> list[float]:
    """Scale values."""
    return [scale(v, factor) for v in values * repeat]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")


def test_one_input_per_parameter_typed_from_annotations_and_defaults() -> None:
    form = scaled.launcher()
    kinds = {name: type(widget) for name, widget in form.inputs.items()}
    assert kinds == {
        "values": w.Textarea,
        "factor": w.FloatText,
        "label": w.Text,
        "repeat": w.IntText,
        "dry": w.Checkbox,
    }
    assert form.inputs["factor"].value == 2.0 and form.inputs["label"].value == "run"


def test_run_button_starts_a_run_and_shows_its_dag() -> None:
    form = scaled.launcher(executor="local")
    form.inputs["values"].value = "[1, 2]"
    form.inputs["repeat"].value = 2
    form.button.click()
    assert len(form.runs) == 1
    run = form.runs[0]
    assert run.wait(60) is State.COMPLETED
    assert run.result() == [2.0, 4.0, 2.0, 4.0]
    assert run.origin == "notebook"
    (dag,) = form.dag.children
    assert type(dag).__name__ == "RunWidget"
    dag.close()


def test_a_bad_literal_is_reported_in_the_form() -> None:
    form = scaled.launcher()
    form.inputs["values"].value = "[1, 2"
    assert form.start() is None
    assert "values" in form.message.value and "Python literal" in form.message.value
    assert form.runs == []


def test_the_title_shows_the_docstring_as_text() -> None:
    """A docstring saying "rows where depth<5 & auc>0.9" lost its words to the HTML parser
    (and one holding markup ran as markup): the title is text."""

    @flow
    def picky(depth: int = 3) -> int:
        """Keep rows where depth<5 & auc>0.9 <img src=x onerror=alert(1)>"""
        return depth

    title = picky.launcher().children[0]
    assert "depth&lt;5 &amp; auc&gt;0.9 &lt;img" in title.value and "<img" not in title.value
