"""Flow.visualize: the static DAG of a flow, traced without running any task."""

from __future__ import annotations

from pathlib import Path

import pytest

from labloom import flow, task

calls: list[str] = []


@task
def load(n: int) -> list[int]:
    calls.append("load")
    return list(range(n))


@task
def train(x: int) -> int:
    calls.append("train")
    return x


@task
def pick(xs: list[int]) -> int:
    return max(xs)


@flow
def sweep(n: int = 3) -> int:
    return pick(train.map(load(n)))


@pytest.mark.needs("dot")
def test_visualize_draws_every_node_and_runs_nothing(tmp_path: Path) -> None:
    calls.clear()
    target = tmp_path / "dag.svg"
    drawing = sweep.visualize(str(target))
    svg = drawing._repr_svg_()
    assert calls == [], "visualize must not run tasks"
    for label in ("load", "train [map]", "pick"):
        assert label in svg
    assert svg.count("<g id=\"edge") == 2
    assert target.read_text() == svg


def test_visualize_says_how_to_install_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match=r"needs graphviz's `dot`.*apt-get install graphviz"):
        sweep.visualize()


def test_a_body_that_needs_a_result_cannot_be_traced() -> None:
    @flow
    def eager() -> int:
        return load(2).result()[0]

    with pytest.raises(RuntimeError, match=r"cannot call \.result\(\).*run\.widget\(\)"):
        eager.visualize()
