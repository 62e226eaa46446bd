"""Flow.visualize's helper: SVG through graphviz, and a clear error without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from labloom.notebook.widget import GraphvizNotFound, visualize
from widget_helpers import node

NODES = [
    node("a", "load"),
    node("b", "train", "map", ("a",)),
    {"node_id": "c", "name": 'best "model"', "kind": "task", "upstream": ["b"]},
]


@pytest.mark.needs("dot")
def test_visualize_draws_svg_with_names_and_edges() -> None:
    svg = visualize(NODES)
    text = svg._repr_svg_()
    assert text.lstrip().startswith("<?xml") or "<svg" in text
    assert "load" in text and "train [map]" in text and "best &quot;model&quot;" in text
    assert text.count('class="edge"') == 2
    assert str(svg) == text


@pytest.mark.needs("dot")
def test_visualize_writes_the_format_the_suffix_names(tmp_path: Path) -> None:
    visualize(NODES, tmp_path / "dag.svg")
    assert "<svg" in (tmp_path / "dag.svg").read_text()
    visualize(NODES, str(tmp_path / "dag.png"))
    assert (tmp_path / "dag.png").read_bytes().startswith(b"\x89PNG")


def test_visualize_without_dot_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizNotFound, match=r"apt-get install graphviz.*conda install graphviz"):
        visualize(NODES)
    with pytest.raises(RuntimeError, match="brew install graphviz"):
        visualize(NODES)
