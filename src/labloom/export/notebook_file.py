"""A notebook file's cells, read as JSON. Importing nbformat costs about a second of CPU (it
imports jsonschema, whose format checkers build some 35 parsers as they are imported), and
``labloom run x.ipynb:flow``, each scheduled run of a notebook's flow and ``labloom export``
read a notebook: a v4 notebook is plain JSON whose cells labloom reads by three keys. An older
notebook (v3 and before) is upgraded by nbformat, as before."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ..core.errors import ExportError


def notebook_cells(notebook: Path) -> list[dict[str, Any]]:
    """The cells of ``notebook``, each ``{"cell_type", "source" (one string), "metadata"}``.
    A file that is not a notebook raises ExportError naming what is wrong with it."""
    try:
        data = notebook.read_bytes()
        nb = json.loads(data)  # (bytes: UTF-8, -16 or -32, as the JSON standard allows)
    except FileNotFoundError:
        raise  # as is: the caller says which file to look for
    except (OSError, ValueError) as e:  # a folder, no permission; not JSON, or odd bytes
        raise ExportError(f"{notebook} is not a readable notebook: {e}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("nbformat"), int):
        raise ExportError(f"{notebook} is not a readable notebook: no \"nbformat\" version in it")
    if nb["nbformat"] < 4:
        return _upgraded(notebook, data)
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise ExportError(f"{notebook} is not a readable notebook: no list of \"cells\" in it")
    return [_cell(notebook, number, cell) for number, cell in enumerate(cells, start=1)]


def _cell(notebook: Path, number: int, cell: Any) -> dict[str, Any]:
    source = cell.get("source", "") if isinstance(cell, dict) else None
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)  # the format's multiline form: lines that keep their "\n"
    if not isinstance(source, str):
        raise ExportError(f"{notebook} is not a readable notebook: cell {number} is not a cell "
                          "with its source as text")
    metadata = cell.get("metadata")
    return {"cell_type": cell.get("cell_type"), "source": source,
            "metadata": metadata if isinstance(metadata, dict) else {}}


def _upgraded(notebook: Path, data: bytes) -> list[dict[str, Any]]:
    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old notebooks warn about missing cell ids
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as e:
        raise ExportError(f"{notebook} is not a readable notebook: {e}") from None
    return [_cell(notebook, number, cell) for number, cell in enumerate(nb.cells, start=1)]
