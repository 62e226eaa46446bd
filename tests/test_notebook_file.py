"""A notebook's cells read as JSON (export/notebook_file.py): the same cells nbformat reads,
without importing it (about a second of CPU at each `labloom run x.ipynb:flow`, scheduled
notebook run and export); an old notebook upgraded by nbformat; a file that is not a notebook
refused with its name and what is wrong, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import v3

from labloom.export.exporter import ExportError, export_notebook
from labloom.export.notebook_file import notebook_cells
from test_export import TRICKY, write_notebook

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _nbformat_cells(path: Path) -> list[dict[str, object]]:
    nb = nbformat.read(str(path), as_version=4)
    return [{"cell_type": c.cell_type, "source": c.source, "metadata": dict(c.metadata)}
            for c in nb.cells]


@pytest.mark.parametrize("name", ["sweep.ipynb", "etl.ipynb", "quickstart.ipynb", "tricky"])
def test_the_cells_read_as_json_are_those_nbformat_reads(name: str, tmp_path: Path) -> None:
    path = write_notebook(tmp_path, TRICKY) if name == "tricky" else EXAMPLES / name
    if name != "tricky":  # saved by Lab: sources as lists of lines
        assert any(isinstance(c["source"], list) for c in json.loads(path.read_text())["cells"])
    assert notebook_cells(path) == _nbformat_cells(path)


def test_running_a_notebooks_flow_imports_no_nbformat(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path, ["from labloom import flow, task",
                                         "%%tasks\ndef one():\n    return 1",
                                         "%%flow hello\none()"])
    code = ("import sys; from labloom.export.exporter import load_notebook_flow; "
            f"print(load_notebook_flow({str(notebook)!r}).name, "
            "sorted({'nbformat', 'jsonschema'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hello", "[]"], done.stdout  # before: both imported


def test_a_v3_notebook_is_upgraded_and_exported(tmp_path: Path) -> None:
    cells = [v3.new_code_cell(input="from labloom import flow, task"),
             v3.new_code_cell(input="%%tasks\ndef one():\n    return 1"),
             v3.new_code_cell(input="%%flow old\none()")]
    path = tmp_path / "old.ipynb"
    nbformat.write(v3.new_notebook(worksheets=[v3.new_worksheet(cells=cells)]), str(path),
                   version=3)
    assert json.loads(path.read_text())["nbformat"] == 3
    export_notebook(path, check=False)
    module = (tmp_path / "old.py").read_text()
    assert "def one():" in module and "def old(" in module, module


@pytest.mark.parametrize("content, said", [
    (b"{ not json", "Expecting property name"),
    (b'{"nbformat": 4, "cells": ["\xc3\x28"]}', "'utf-8' codec can't decode"),  # odd bytes
    (b"[1, 2]", 'no "nbformat" version in it'),
    (b'{"nbformat": 4, "cells": {"a": 1}}', 'no list of "cells" in it'),
    (b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}',
     "cell 1 is not a cell with its source as text"),
    (b'{"nbformat": 4, "cells": ["print(1)"]}', "cell 1 is not a cell with its source as text"),
])
def test_a_file_that_is_not_a_notebook_is_refused_naming_what_is_wrong(
    content: bytes, said: str, tmp_path: Path,
) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_bytes(content)
    with pytest.raises(ExportError) as caught:
        export_notebook(path)
    message = str(caught.value)
    assert message.startswith(f"[labloom] cannot export nb.ipynb: {path} is not a readable "
                              "notebook: "), message
    assert said in message, message
    assert not (tmp_path / "nb.py").exists()


def test_a_folder_named_like_a_notebook_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").mkdir()
    with pytest.raises(ExportError, match=r"is not a readable notebook: .*Is a directory"):
        export_notebook(tmp_path / "nb.ipynb")
